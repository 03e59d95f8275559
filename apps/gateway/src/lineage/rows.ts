/**
 * How a `LineageObservation` is laid out in the store's tables: one observation row, one read
 * row per source column × flow × masking, one flow row per written column × source × flow, and
 * one row per dataset read or written. Both stores (SQLite and PostgreSQL) write these rows.
 */
import { createHash } from 'node:crypto';
import type { DatasetRef, FieldFlow, FlowSubtype, FlowType, LineageObservation } from '@sluice/core';

export interface ObservationRow {
  /** Identifies observations to merge: same actor, job, run, target, statement shape and lineage (masking included). */
  readonly key: string;
  firstSeen: number;
  lastSeen: number;
  count: number;
  readonly subject: string;
  readonly kind: string;
  /** JSON array of the actor's groups. */
  readonly groups: string;
  readonly method: string;
  readonly jobNamespace: string;
  readonly jobName: string;
  readonly runId: string;
  readonly runKey: string | null;
  readonly sessionId: string;
  readonly target: string;
  readonly dialect: string;
  readonly operation: string;
  readonly fingerprint: string;
  readonly normalized: string;
  readonly traceId: string | null;
}

/**
 * A source column a statement used. DIRECT reads returned its values to the client (`masked`
 * 1 when they left masked, 0 when in clear); INDIRECT ones (masked null) filtered, joined,
 * grouped or sorted rows, in a read or in a write.
 */
export interface ReadRow {
  readonly namespace: string;
  readonly dataset: string;
  readonly field: string;
  readonly type: FlowType;
  readonly subtype: FlowSubtype;
  readonly masked: 0 | 1 | null;
}

/** Values of a source column flowing into a written column. */
export interface FlowRow {
  readonly fromNamespace: string;
  readonly fromDataset: string;
  readonly fromField: string;
  readonly toNamespace: string;
  readonly toDataset: string;
  readonly toField: string;
  readonly type: FlowType;
  readonly subtype: FlowSubtype;
}

export interface DatasetRow {
  readonly direction: 'input' | 'output';
  readonly namespace: string;
  readonly name: string;
}

export interface ObservationRows {
  readonly observation: ObservationRow;
  readonly reads: readonly ReadRow[];
  readonly flows: readonly FlowRow[];
  readonly datasets: readonly DatasetRow[];
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Adds values once each, keyed by `key`, and lists them in key order (a stable layout for the merge key). */
class Distinct<T> {
  readonly #items = new Map<string, T>();
  constructor(readonly key: (value: T) => string) {}
  add(value: T): void {
    const k = this.key(value);
    if (!this.#items.has(k)) this.#items.set(k, value);
  }
  sorted(): T[] {
    return [...this.#items.entries()].sort(([a], [b]) => compare(a, b)).map(([, v]) => v);
  }
}

const SEP = '\u0000';

/** The rows of one observation. */
export function observationRows(o: LineageObservation): ObservationRows {
  const reads = new Distinct<ReadRow>((r) => [r.namespace, r.dataset, r.field, r.type, r.subtype, String(r.masked)].join(SEP));
  const flows = new Distinct<FlowRow>((f) =>
    [f.fromNamespace, f.fromDataset, f.fromField, f.toNamespace, f.toDataset, f.toField, f.type, f.subtype].join(SEP),
  );
  const datasets = new Distinct<DatasetRow>((d) => [d.direction, d.namespace, d.name].join(SEP));

  const read = (flow: FieldFlow, resultMasked: boolean | undefined) => {
    const masked = flow.type === 'DIRECT' ? ((flow.masked ?? resultMasked ?? false) ? 1 : 0) : null;
    reads.add({ namespace: flow.from.namespace, dataset: flow.from.name, field: flow.from.field, type: flow.type, subtype: flow.subtype, masked });
    datasets.add({ direction: 'input', namespace: flow.from.namespace, name: flow.from.name });
  };
  const input = (d: DatasetRef) => datasets.add({ direction: 'input', namespace: d.namespace, name: d.name });

  o.inputs.forEach(input);
  for (const field of o.result) for (const flow of field.flows) read(flow, field.masked);
  for (const flow of o.resultIndirect) read(flow, undefined);
  for (const out of o.outputs) {
    datasets.add({ direction: 'output', namespace: out.namespace, name: out.name });
    for (const flow of out.indirect) read(flow, undefined);
    for (const written of out.fields) {
      for (const flow of written.flows) {
        flows.add({
          fromNamespace: flow.from.namespace,
          fromDataset: flow.from.name,
          fromField: flow.from.field,
          toNamespace: written.to.namespace,
          toDataset: written.to.name,
          toField: written.to.field,
          type: flow.type,
          subtype: flow.subtype,
        });
        input(flow.from);
      }
    }
  }

  const readRows = reads.sorted();
  const flowRows = flows.sorted();
  const datasetRows = datasets.sorted();
  const key = createHash('sha256')
    .update(
      JSON.stringify([
        o.actor.subject,
        o.actor.kind,
        o.job.namespace,
        o.job.name,
        o.run.id,
        o.run.key ?? null,
        o.target,
        o.dialect,
        o.operation,
        o.fingerprint,
        readRows,
        flowRows,
        datasetRows,
      ]),
    )
    .digest('hex');

  return {
    observation: {
      key,
      firstSeen: o.firstSeen,
      lastSeen: o.lastSeen,
      count: o.count,
      subject: o.actor.subject,
      kind: o.actor.kind,
      groups: JSON.stringify(o.actor.groups),
      method: o.actor.method,
      jobNamespace: o.job.namespace,
      jobName: o.job.name,
      runId: o.run.id,
      runKey: o.run.key ?? null,
      sessionId: o.sessionId,
      target: o.target,
      dialect: o.dialect,
      operation: o.operation,
      fingerprint: o.fingerprint,
      normalized: o.normalized,
      traceId: o.traceId ?? null,
    },
    reads: readRows,
    flows: flowRows,
    datasets: datasetRows,
  };
}

/**
 * The rows of a batch, observations of the same key merged (counts added, first and last seen
 * widened), in key order so that concurrent writers take row locks in the same order.
 */
export function batchRows(observations: readonly LineageObservation[]): ObservationRows[] {
  const byKey = new Map<string, ObservationRows>();
  for (const o of observations) {
    if (!(o.count > 0) || !Number.isFinite(o.firstSeen) || !Number.isFinite(o.lastSeen)) continue;
    const rows = observationRows(o);
    const seen = byKey.get(rows.observation.key);
    if (seen === undefined) {
      byKey.set(rows.observation.key, rows);
      continue;
    }
    seen.observation.count += rows.observation.count;
    seen.observation.firstSeen = Math.min(seen.observation.firstSeen, rows.observation.firstSeen);
    seen.observation.lastSeen = Math.max(seen.observation.lastSeen, rows.observation.lastSeen);
  }
  return [...byKey.values()].sort((a, b) => compare(a.observation.key, b.observation.key));
}
