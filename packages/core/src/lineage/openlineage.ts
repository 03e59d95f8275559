/**
 * Run events as OpenLineage RunEvents (spec 2-0-2).
 *
 * What an event carries:
 * - `run.facets.sluice_identity` (custom run facet): who ran it (subject, kind, groups,
 *   authentication method), the gateway sessions, target and dialect, the caller's run key and
 *   W3C traceparent when given.
 * - `run.facets.errorMessage` on FAIL (programming language `SQL`).
 * - `job.facets.jobType`: processing type BATCH (a run has a start and an end), integration
 *   SLUICE, job type QUERY.
 * - `inputs`: the datasets read, with a `schema` facet listing the columns read (no types: the
 *   gateway does not know them).
 * - `outputs`: the tables written and the result sets returned to clients, each with a `schema`
 *   facet (its columns) and a `columnLineage` facet (per column the source columns and how
 *   they flowed, masked flows with `masking: true`; dataset-level INDIRECT flows under
 *   `dataset`). The SQL facet of the spec is a job facet, and a job here runs many statements,
 *   so the statement text of a result dataset goes into a custom dataset facet, `sluice_query`
 *   (query, dialect): the spec allows any named facet at dataset level.
 *
 * Every facet carries `_producer` and `_schemaURL`. The custom facets' schemas are shipped in
 * the repository under `packages/core/test/openlineage-schema/`; their `_schemaURL` is that
 * directory under `facetSchemaBaseURL`, which defaults to the producer URI (a source tree URL
 * such as `https://github.com/sluice-gateway/sluice/tree/<version>`). Empty optional parts
 * (no inputs, no facets, no lineage) are left out.
 */
import type { FieldFlow, FieldRef, RunEvent, RunEventSink, RunOutput } from './types.js';

export const OPENLINEAGE_SPEC_VERSION = '2-0-2';
export const OPENLINEAGE_RUN_EVENT_SCHEMA_URL = 'https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent';

/** The standard facet schemas the events refer to (versions shipped in test/openlineage-schema). */
export const OPENLINEAGE_FACET_SCHEMA_URLS = {
  schema: 'https://openlineage.io/spec/facets/1-2-0/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet',
  columnLineage: 'https://openlineage.io/spec/facets/1-2-0/ColumnLineageDatasetFacet.json#/$defs/ColumnLineageDatasetFacet',
  errorMessage: 'https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet',
  jobType: 'https://openlineage.io/spec/facets/2-0-4/JobTypeJobFacet.json#/$defs/JobTypeJobFacet',
} as const;

/** Where the custom facet schemas live inside the source tree. */
export const SLUICE_FACET_SCHEMA_DIR = 'packages/core/test/openlineage-schema/';
export const SLUICE_IDENTITY_FACET_SCHEMA = 'SluiceIdentityRunFacet.json#/$defs/SluiceIdentityRunFacet';
export const SLUICE_QUERY_FACET_SCHEMA = 'SluiceQueryDatasetFacet.json#/$defs/SluiceQueryDatasetFacet';

export interface OpenLineageEventOptions {
  /** URI of the producer, e.g. `https://github.com/sluice-gateway/sluice/tree/<version>`. */
  readonly producer: string;
  /**
   * Base URL of the custom facet schemas, ending in `/`. Default: the producer URI followed by
   * `/packages/core/test/openlineage-schema/`.
   */
  readonly facetSchemaBaseURL?: string;
}

/** The JSON of an OpenLineage facet: `_producer`, `_schemaURL` and its own fields. */
export type OpenLineageFacet = { readonly _producer: string; readonly _schemaURL: string } & Record<string, unknown>;

export interface OpenLineageInputField {
  readonly namespace: string;
  readonly name: string;
  readonly field: string;
  readonly transformations: readonly { readonly type: string; readonly subtype: string; readonly masking: boolean }[];
}

export interface OpenLineageDataset {
  readonly namespace: string;
  readonly name: string;
  readonly facets?: Readonly<Record<string, OpenLineageFacet>>;
}

/** An OpenLineage RunEvent as this module writes it. */
export interface OpenLineageRunEvent {
  readonly eventType: RunEvent['eventType'];
  readonly eventTime: string;
  readonly producer: string;
  readonly schemaURL: string;
  readonly run: { readonly runId: string; readonly facets?: Readonly<Record<string, OpenLineageFacet>> };
  readonly job: { readonly namespace: string; readonly name: string; readonly facets?: Readonly<Record<string, OpenLineageFacet>> };
  readonly inputs?: readonly OpenLineageDataset[];
  readonly outputs?: readonly OpenLineageDataset[];
}

/** Turns a run event of the recorder into an OpenLineage RunEvent. */
export function toOpenLineageEvent(event: RunEvent, options: OpenLineageEventOptions): OpenLineageRunEvent {
  const { producer } = options;
  const base = options.facetSchemaBaseURL ?? `${producer.replace(/\/+$/, '')}/${SLUICE_FACET_SCHEMA_DIR}`;
  const facet = (schemaURL: string, fields: Record<string, unknown>): OpenLineageFacet => ({
    _producer: producer,
    _schemaURL: schemaURL,
    ...fields,
  });
  const { lineage } = event;

  const identity: Record<string, unknown> = {
    subject: lineage.actor.subject,
    kind: lineage.actor.kind,
    groups: [...lineage.actor.groups],
    method: lineage.actor.method,
    sessionIds: [...lineage.sessionIds],
    target: lineage.target,
    dialect: lineage.dialect,
  };
  if (lineage.run.key !== undefined) identity['runKey'] = lineage.run.key;
  if (lineage.traceparent !== undefined) identity['traceparent'] = lineage.traceparent;
  const runFacets: Record<string, OpenLineageFacet> = { sluice_identity: facet(base + SLUICE_IDENTITY_FACET_SCHEMA, identity) };
  if (event.eventType === 'FAIL') {
    runFacets['errorMessage'] = facet(OPENLINEAGE_FACET_SCHEMA_URLS.errorMessage, {
      message: event.error ?? 'the run failed',
      programmingLanguage: 'SQL',
    });
  }

  const inputs: OpenLineageDataset[] = lineage.inputs.map((input) =>
    withFacets(input.namespace, input.name, input.fields.length === 0 ? {} : { schema: schemaFacet(facet, input.fields) }),
  );

  const outputs: OpenLineageDataset[] = lineage.outputs.map((output) => {
    const facets: Record<string, OpenLineageFacet> = {};
    const columns = Object.keys(output.fields);
    if (columns.length > 0) facets['schema'] = schemaFacet(facet, columns);
    const columnLineage = columnLineageFields(output);
    if (columnLineage !== undefined) facets['columnLineage'] = facet(OPENLINEAGE_FACET_SCHEMA_URLS.columnLineage, columnLineage);
    if (output.query !== undefined) {
      facets['sluice_query'] = facet(base + SLUICE_QUERY_FACET_SCHEMA, { query: output.query, dialect: lineage.dialect });
    }
    return withFacets(output.namespace, output.name, facets);
  });

  return {
    eventType: event.eventType,
    eventTime: new Date(event.eventTime).toISOString(),
    producer,
    schemaURL: OPENLINEAGE_RUN_EVENT_SCHEMA_URL,
    run: { runId: lineage.run.id, facets: runFacets },
    job: {
      namespace: lineage.job.namespace,
      name: lineage.job.name,
      facets: {
        jobType: facet(OPENLINEAGE_FACET_SCHEMA_URLS.jobType, { processingType: 'BATCH', integration: 'SLUICE', jobType: 'QUERY' }),
      },
    },
    ...(inputs.length > 0 ? { inputs } : {}),
    ...(outputs.length > 0 ? { outputs } : {}),
  };
}

function withFacets(namespace: string, name: string, facets: Record<string, OpenLineageFacet>): OpenLineageDataset {
  return Object.keys(facets).length === 0 ? { namespace, name } : { namespace, name, facets };
}

function schemaFacet(
  facet: (schemaURL: string, fields: Record<string, unknown>) => OpenLineageFacet,
  columns: readonly string[],
): OpenLineageFacet {
  return facet(OPENLINEAGE_FACET_SCHEMA_URLS.schema, { fields: columns.map((name) => ({ name })) });
}

/** The `fields` and `dataset` of a columnLineage facet; undefined when there is no lineage at all. */
function columnLineageFields(output: RunOutput): Record<string, unknown> | undefined {
  // Built from entries: a column named __proto__ is a field like any other.
  const fields: Record<string, { inputFields: OpenLineageInputField[] }> = Object.fromEntries(
    Object.entries(output.fields)
      .filter(([, flows]) => flows.length > 0)
      .map(([column, flows]) => [column, { inputFields: inputFieldsOf(flows) }]),
  );
  const dataset = inputFieldsOf(output.indirect);
  if (Object.keys(fields).length === 0 && dataset.length === 0) return undefined;
  return dataset.length > 0 ? { fields, dataset } : { fields };
}

/**
 * Groups flows by source column, in the order the columns first appear: one input field per
 * source column, with one transformation per distinct (type, subtype, masking).
 */
export function inputFieldsOf(flows: readonly FieldFlow[]): OpenLineageInputField[] {
  const byField = new Map<string, { from: FieldRef; transformations: { type: string; subtype: string; masking: boolean }[] }>();
  for (const flow of flows) {
    const key = JSON.stringify([flow.from.namespace, flow.from.name, flow.from.field]);
    let entry = byField.get(key);
    if (entry === undefined) {
      entry = { from: flow.from, transformations: [] };
      byField.set(key, entry);
    }
    const masking = flow.masked === true;
    if (!entry.transformations.some((t) => t.type === flow.type && t.subtype === flow.subtype && t.masking === masking)) {
      entry.transformations.push({ type: flow.type, subtype: flow.subtype, masking });
    }
  }
  return [...byField.values()].map(({ from, transformations }) => ({
    namespace: from.namespace,
    name: from.name,
    field: from.field,
    transformations,
  }));
}

/** One sink that hands every event to each of `sinks`. */
export function combineSinks(...sinks: readonly RunEventSink[]): RunEventSink {
  return {
    emit(event: RunEvent): void {
      for (const sink of sinks) {
        try {
          sink.emit(event);
        } catch {
          // A sink's emit must not throw; one that does must not keep the event from the others.
        }
      }
    },
    async flush(timeoutMs?: number): Promise<void> {
      await Promise.allSettled(sinks.map((sink) => sink.flush(timeoutMs)));
    },
    async close(): Promise<void> {
      await Promise.allSettled(sinks.map((sink) => sink.close()));
    },
  };
}
