import { describe, expect, it } from 'vitest';
import { createOpenLineageValidator } from '../../test/openlineage-schema/validate.js';
import {
  OPENLINEAGE_FACET_SCHEMA_URLS,
  OPENLINEAGE_RUN_EVENT_SCHEMA_URL,
  combineSinks,
  inputFieldsOf,
  toOpenLineageEvent,
  type OpenLineageRunEvent,
} from './openlineage.js';
import { openLineageFixtures } from '../../test/openlineage-schema/fixtures.js';
import type { RunEvent, RunEventSink, RunEventType } from './types.js';

const PRODUCER = 'https://github.com/sluice-gateway/sluice/tree/0.1.0';
const validator = createOpenLineageValidator();
const { lineage, emptyLineage, PG, JOB_NS } = openLineageFixtures;

function event(eventType: RunEventType, error?: string): RunEvent {
  return { eventType, eventTime: Date.UTC(2025, 0, 2, 3, 4, 5, 678), lineage, ...(error === undefined ? {} : { error }) };
}

function convert(e: RunEvent): OpenLineageRunEvent {
  // Through JSON, as it is sent.
  return JSON.parse(JSON.stringify(toOpenLineageEvent(e, { producer: PRODUCER }))) as OpenLineageRunEvent;
}

describe('toOpenLineageEvent', () => {
  it.each(['START', 'RUNNING', 'COMPLETE', 'FAIL'] as const)('a %s event is valid against the spec and the facet schemas', (type) => {
    const ol = convert(event(type, type === 'FAIL' ? 'relation "nope" does not exist' : undefined));
    expect(validator.validate(ol)).toEqual([]);
    expect(ol.eventType).toBe(type);
  });

  it('writes the event envelope, run and job', () => {
    const ol = convert(event('START'));
    expect(ol.eventTime).toBe('2025-01-02T03:04:05.678Z');
    expect(ol.producer).toBe(PRODUCER);
    expect(ol.schemaURL).toBe(OPENLINEAGE_RUN_EVENT_SCHEMA_URL);
    expect(ol.run.runId).toBe(lineage.run.id);
    expect(ol.run.facets?.['sluice_identity']).toEqual({
      _producer: PRODUCER,
      _schemaURL: `${PRODUCER}/packages/core/test/openlineage-schema/SluiceIdentityRunFacet.json#/$defs/SluiceIdentityRunFacet`,
      subject: 'alice@example.com',
      kind: 'user',
      groups: ['analysts'],
      method: 'oidc',
      sessionIds: ['s-1', 's-2'],
      target: 'app',
      dialect: 'postgres',
      runKey: 'nightly-2025-01-02',
      traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
    });
    expect(ol.run.facets?.['errorMessage']).toBeUndefined();
    expect(ol.job).toEqual({
      namespace: JOB_NS,
      name: 'reporting',
      facets: {
        jobType: { _producer: PRODUCER, _schemaURL: OPENLINEAGE_FACET_SCHEMA_URLS.jobType, processingType: 'BATCH', integration: 'SLUICE', jobType: 'QUERY' },
      },
    });
  });

  it('puts the error of a FAIL event into an errorMessage facet', () => {
    const ol = convert(event('FAIL', 'permission denied'));
    expect(ol.run.facets?.['errorMessage']).toEqual({
      _producer: PRODUCER,
      _schemaURL: OPENLINEAGE_FACET_SCHEMA_URLS.errorMessage,
      message: 'permission denied',
      programmingLanguage: 'SQL',
    });
    expect(validator.validate(convert(event('FAIL')))).toEqual([]);
  });

  it('lists the columns read in a schema facet of each input', () => {
    const ol = convert(event('RUNNING'));
    expect(ol.inputs).toEqual([
      {
        namespace: PG,
        name: 'app.public.customers',
        facets: { schema: { _producer: PRODUCER, _schemaURL: OPENLINEAGE_FACET_SCHEMA_URLS.schema, fields: [{ name: 'id' }, { name: 'email' }, { name: 'region' }] } },
      },
      { namespace: PG, name: 'app.public.orders', facets: expect.any(Object) },
      { namespace: PG, name: 'app.public.audit' },
    ]);
  });

  it('writes column lineage of written tables, with dataset-level INDIRECT flows', () => {
    const ol = convert(event('COMPLETE'));
    const written = ol.outputs?.find((o) => o.name === 'app.public.customer_totals');
    expect(written?.facets?.['columnLineage']).toEqual({
      _producer: PRODUCER,
      _schemaURL: OPENLINEAGE_FACET_SCHEMA_URLS.columnLineage,
      fields: {
        customer_id: { inputFields: [{ namespace: PG, name: 'app.public.orders', field: 'customer_id', transformations: [{ type: 'DIRECT', subtype: 'IDENTITY', masking: false }] }] },
        total: { inputFields: [{ namespace: PG, name: 'app.public.orders', field: 'amount', transformations: [{ type: 'DIRECT', subtype: 'AGGREGATION', masking: false }] }] },
      },
      dataset: [
        {
          namespace: PG,
          name: 'app.public.orders',
          field: 'customer_id',
          transformations: [{ type: 'INDIRECT', subtype: 'GROUP_BY', masking: false }],
        },
        {
          namespace: PG,
          name: 'app.public.orders',
          field: 'status',
          transformations: [{ type: 'INDIRECT', subtype: 'FILTER', masking: false }],
        },
      ],
    });
    expect(written?.facets?.['schema']).toMatchObject({ fields: [{ name: 'customer_id' }, { name: 'total' }] });
    expect(written?.facets?.['sluice_query']).toBeUndefined();
  });

  it('marks masked result columns and carries the statement of a result dataset', () => {
    const ol = convert(event('COMPLETE'));
    const result = ol.outputs?.find((o) => o.name.startsWith('results.'));
    const columnLineage = result?.facets?.['columnLineage'] as unknown as { fields: Record<string, { inputFields: { field: string; transformations: { masking: boolean }[] }[] }> };
    expect(columnLineage.fields['email']?.inputFields).toEqual([
      { namespace: PG, name: 'app.public.customers', field: 'email', transformations: [{ type: 'DIRECT', subtype: 'IDENTITY', masking: true }] },
    ]);
    expect(columnLineage.fields['id']?.inputFields[0]?.transformations).toEqual([{ type: 'DIRECT', subtype: 'IDENTITY', masking: false }]);
    expect(result?.facets?.['sluice_query']).toEqual({
      _producer: PRODUCER,
      _schemaURL: `${PRODUCER}/packages/core/test/openlineage-schema/SluiceQueryDatasetFacet.json#/$defs/SluiceQueryDatasetFacet`,
      query: 'SELECT id, email FROM customers WHERE region = ?',
      dialect: 'postgres',
    });
    // The column with no flow (a literal) is in the schema but has no lineage.
    expect(columnLineage.fields['one']).toBeUndefined();
    expect(result?.facets?.['schema']).toMatchObject({ fields: [{ name: 'id' }, { name: 'email' }, { name: 'one' }] });
  });

  it('gives every facet a producer and the schema URL of the shipped schema', () => {
    const ol = convert(event('FAIL', 'boom'));
    const facets = [ol.run.facets, ol.job.facets, ...(ol.inputs ?? []).map((d) => d.facets), ...(ol.outputs ?? []).map((d) => d.facets)];
    const names = new Set<string>();
    for (const group of facets) {
      for (const [name, facet] of Object.entries(group ?? {})) {
        names.add(name);
        expect(facet._producer).toBe(PRODUCER);
        const schema = validator.facetSchemas.get(name);
        expect(schema, name).toBeDefined();
        const [file, pointer] = (schema ?? '').split('#');
        expect(facet._schemaURL.endsWith(`${file?.slice(file.lastIndexOf('/'))}#${pointer}`), `${name}: ${facet._schemaURL}`).toBe(true);
      }
    }
    expect([...names].sort()).toEqual(['columnLineage', 'errorMessage', 'jobType', 'schema', 'sluice_identity', 'sluice_query']);
  });

  it('leaves out empty parts', () => {
    const ol = convert({ eventType: 'START', eventTime: 0, lineage: emptyLineage });
    expect(ol.inputs).toBeUndefined();
    expect(ol.outputs).toBeUndefined();
    expect(Object.keys(ol.run.facets?.['sluice_identity'] ?? {})).not.toContain('traceparent');
    expect(Object.keys(ol.run.facets?.['sluice_identity'] ?? {})).not.toContain('runKey');
    expect(validator.validate(ol)).toEqual([]);

    const bare = convert({
      eventType: 'RUNNING',
      eventTime: 0,
      lineage: { ...emptyLineage, inputs: [{ namespace: PG, name: 'app.public.t', fields: [] }], outputs: [{ namespace: PG, name: 'app.public.u', fields: {}, indirect: [] }] },
    });
    expect(bare.inputs).toEqual([{ namespace: PG, name: 'app.public.t' }]);
    expect(bare.outputs).toEqual([{ namespace: PG, name: 'app.public.u' }]);
    expect(validator.validate(bare)).toEqual([]);
  });

  it('keeps only dataset-level lineage when no column has flows', () => {
    const flow = { from: { namespace: PG, name: 'app.public.t', field: 'k' }, type: 'INDIRECT', subtype: 'FILTER' } as const;
    const ol = convert({
      eventType: 'RUNNING',
      eventTime: 0,
      lineage: { ...emptyLineage, outputs: [{ namespace: PG, name: 'app.public.u', fields: { c: [] }, indirect: [flow] }] },
    });
    expect(ol.outputs?.[0]?.facets?.['columnLineage']).toMatchObject({ fields: {}, dataset: [{ field: 'k' }] });
    expect(validator.validate(ol)).toEqual([]);
  });

  it('uses the given base URL for the custom facet schemas', () => {
    const ol = toOpenLineageEvent(event('START'), { producer: PRODUCER, facetSchemaBaseURL: 'https://schemas.example.com/ol/' });
    expect(ol.run.facets?.['sluice_identity']?._schemaURL).toBe('https://schemas.example.com/ol/SluiceIdentityRunFacet.json#/$defs/SluiceIdentityRunFacet');
  });
});

describe('inputFieldsOf', () => {
  it('groups the flows of one source column and keeps each distinct transformation once', () => {
    const from = { namespace: PG, name: 'app.public.t', field: 'a' };
    expect(
      inputFieldsOf([
        { from, type: 'DIRECT', subtype: 'TRANSFORMATION' },
        { from: { ...from, field: 'b' }, type: 'INDIRECT', subtype: 'JOIN' },
        { from, type: 'INDIRECT', subtype: 'CONDITIONAL' },
        { from, type: 'DIRECT', subtype: 'TRANSFORMATION', masked: false },
      ]),
    ).toEqual([
      {
        ...from,
        transformations: [
          { type: 'DIRECT', subtype: 'TRANSFORMATION', masking: false },
          { type: 'INDIRECT', subtype: 'CONDITIONAL', masking: false },
        ],
      },
      { ...from, field: 'b', transformations: [{ type: 'INDIRECT', subtype: 'JOIN', masking: false }] },
    ]);
  });
});

describe('the schema check', () => {
  const valid = (): Record<string, unknown> => convert(event('COMPLETE')) as unknown as Record<string, unknown>;

  it('finds a broken event', () => {
    expect(validator.validate({ ...valid(), eventType: 'DONE' })).not.toEqual([]);
    const noRunId = valid();
    noRunId['run'] = { facets: (noRunId['run'] as { facets: unknown }).facets };
    expect(validator.validate(noRunId)).not.toEqual([]);
    expect(validator.validate({ ...valid(), eventTime: 'yesterday' })).not.toEqual([]);
    expect(validator.validate({ ...valid(), producer: 'not a uri' })).not.toEqual([]);
  });

  it('finds a broken facet', () => {
    const noProducer = convert(event('COMPLETE')) as unknown as { job: { facets: { jobType: Record<string, unknown> } } };
    delete noProducer.job.facets.jobType['_producer'];
    expect(validator.validate(noProducer)).not.toEqual([]);

    const noFields = convert(event('COMPLETE')) as unknown as { outputs: { facets: { columnLineage: Record<string, unknown> } }[] };
    delete noFields.outputs[0]?.facets.columnLineage['fields'];
    expect(validator.validate(noFields)).not.toEqual([]);

    const noType = convert(event('COMPLETE')) as unknown as { outputs: { facets: { columnLineage: { dataset: { transformations: Record<string, unknown>[] }[] } } }[] };
    delete noType.outputs[0]?.facets.columnLineage.dataset[0]?.transformations[0]?.['type'];
    expect(validator.validate(noType)).not.toEqual([]);

    const noSubject = convert(event('COMPLETE')) as unknown as { run: { facets: { sluice_identity: Record<string, unknown> } } };
    delete noSubject.run.facets.sluice_identity['subject'];
    expect(validator.validate(noSubject)).not.toEqual([]);

    const unknownFacet = convert(event('COMPLETE')) as unknown as { run: { facets: Record<string, unknown> } };
    unknownFacet.run.facets['mystery'] = { _producer: PRODUCER, _schemaURL: 'https://example.com/x.json' };
    expect(validator.validate(unknownFacet)).toEqual(['run.facets.mystery: no schema for this facet']);
  });
});

describe('combineSinks', () => {
  it('hands every event to each sink, even when one throws, and flushes and closes them all', async () => {
    const seen: string[] = [];
    const calls: string[] = [];
    const sink = (name: string, throws = false): RunEventSink => ({
      emit(e) {
        if (throws) throw new Error('broken');
        seen.push(`${name}:${e.eventType}`);
      },
      async flush(timeoutMs) {
        calls.push(`flush ${name} ${timeoutMs}`);
      },
      async close() {
        calls.push(`close ${name}`);
        if (throws) throw new Error('broken');
      },
    });
    const combined = combineSinks(sink('a'), sink('b', true), sink('c'));
    combined.emit(event('START'));
    await combined.flush(50);
    await combined.close();
    expect(seen).toEqual(['a:START', 'c:START']);
    expect(calls).toEqual(['flush a 50', 'flush b 50', 'flush c 50', 'close a', 'close b', 'close c']);
  });
});
