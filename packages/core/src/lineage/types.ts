/**
 * The lineage model: what the gateway records about which identity, job and run read or wrote
 * which columns, and which columns flowed into which. Names follow the OpenLineage naming
 * spec: a dataset is a namespace (the data source, `postgres://host:5432`, `mysql://host:3306`)
 * and a name (`database.schema.table` for PostgreSQL, `database.table` for MySQL).
 */
import type { FlowSubtype, FlowType } from '../analysis/types.js';

/** A dataset as OpenLineage names it. */
export interface DatasetRef {
  readonly namespace: string;
  readonly name: string;
}

/** A column of a dataset. */
export interface FieldRef extends DatasetRef {
  readonly field: string;
}

/** The job a statement runs for: the caller's `job`, else its application name, else the identity. */
export interface JobRef {
  readonly namespace: string;
  readonly name: string;
}

/**
 * The run a statement belongs to. `id` is a UUID: derived from the caller's run key (the same
 * key gives the same id on every gateway) or, without one, from the session.
 */
export interface RunRef {
  readonly id: string;
  /** The caller's run key, when it gave one. */
  readonly key?: string;
}

export interface LineageActor {
  readonly subject: string;
  readonly kind: string;
  readonly groups: readonly string[];
  readonly method: string;
}

/** A source column's flow into a result or written column. */
export interface FieldFlow {
  readonly from: FieldRef;
  readonly type: FlowType;
  readonly subtype: FlowSubtype;
  /** True when the gateway masked the values of this flow before they left (results only). */
  readonly masked?: boolean;
}

/** One result column of a read: where its values came from and whether they were masked. */
export interface ResultField {
  readonly name: string;
  readonly flows: readonly FieldFlow[];
  /** True when the gateway masked this result column. */
  readonly masked: boolean;
}

/** One written column: where its values came from. */
export interface WrittenField {
  readonly to: FieldRef;
  readonly flows: readonly FieldFlow[];
}

/** A table a statement wrote, with column lineage. */
export interface WrittenDataset extends DatasetRef {
  readonly fields: readonly WrittenField[];
  /** Statement-level INDIRECT flows (WHERE, JOIN ... ON, GROUP BY ... of the writing statement). */
  readonly indirect: readonly FieldFlow[];
}

/**
 * What the gateway observed of one statement shape within one run over an interval: `count`
 * executions between `firstSeen` and `lastSeen` with the same lineage and the same masking.
 * Statements of the same shape are aggregated so that a busy session does not write one row
 * per statement.
 */
export interface LineageObservation {
  /** Epoch milliseconds of the first and last execution observed. */
  readonly firstSeen: number;
  readonly lastSeen: number;
  readonly count: number;
  readonly actor: LineageActor;
  readonly job: JobRef;
  readonly run: RunRef;
  readonly sessionId: string;
  /** Gateway target name and dialect. */
  readonly target: string;
  readonly dialect: string;
  /** Leading command (SELECT, INSERT ...). */
  readonly operation: string;
  readonly fingerprint: string;
  /** Statement text with literals removed. */
  readonly normalized: string;
  /** Datasets read. */
  readonly inputs: readonly DatasetRef[];
  /** Result columns returned to the client (reads). Empty when the statement returned no rows. */
  readonly result: readonly ResultField[];
  /** Statement-level INDIRECT flows of a read (JOIN, FILTER, GROUP_BY, SORT, WINDOW). */
  readonly resultIndirect: readonly FieldFlow[];
  /** Tables written, with the flows into their columns. */
  readonly outputs: readonly WrittenDataset[];
  /** The caller's W3C trace id, when it sent a traceparent. */
  readonly traceId?: string;
}

/** Filters of a lineage query. Times are epoch milliseconds. */
export interface LineageQuery {
  readonly since?: number;
  readonly until?: number;
  /** Largest number of entries per list in the answer. Default 100. */
  readonly limit?: number;
}

/** One identity/job/run's reads of a column, aggregated. */
export interface ColumnReadEntry {
  readonly subject: string;
  readonly kind: string;
  readonly job: string;
  readonly runId: string;
  readonly runKey?: string;
  /** DIRECT reads return values (masked or not); INDIRECT ones only filter, join, group or sort. */
  readonly type: FlowType;
  readonly subtype: FlowSubtype;
  /** For DIRECT reads: whether the values left masked. */
  readonly masked?: boolean;
  readonly count: number;
  readonly firstSeen: string;
  readonly lastSeen: string;
}

/** A flow between two columns, aggregated. */
export interface ColumnFlowEntry {
  readonly from: FieldRef;
  readonly to: FieldRef;
  readonly type: FlowType;
  readonly subtype: FlowSubtype;
  readonly subject: string;
  readonly job: string;
  readonly runId: string;
  readonly count: number;
  readonly firstSeen: string;
  readonly lastSeen: string;
}

/** The answer to "who read this column, and where did it go?". */
export interface ColumnReport {
  readonly column: FieldRef | { readonly name: string; readonly field: string };
  readonly reads: readonly ColumnReadEntry[];
  /** Columns this one flowed into (writes whose sources include it). */
  readonly flowedInto: readonly ColumnFlowEntry[];
  /** Columns this one was written from. */
  readonly cameFrom: readonly ColumnFlowEntry[];
}

/** The answer to "who read and wrote this table?". */
export interface TableReport {
  readonly table: DatasetRef | { readonly name: string };
  /** Per column read: who, how, masked or not. */
  readonly reads: readonly (ColumnReadEntry & { readonly field: string })[];
  /** Writes into the table's columns, and from them into others. */
  readonly writtenFrom: readonly ColumnFlowEntry[];
  readonly flowedInto: readonly ColumnFlowEntry[];
  /** Statement shapes that touched the table. */
  readonly statements: readonly {
    readonly subject: string;
    readonly job: string;
    readonly runId: string;
    readonly operation: string;
    readonly normalized: string;
    readonly count: number;
    readonly lastSeen: string;
  }[];
}

/** The answer to "what did this identity read and write?". */
export interface IdentityReport {
  readonly subject: string;
  readonly runs: readonly { readonly runId: string; readonly runKey?: string; readonly job: string; readonly firstSeen: string; readonly lastSeen: string; readonly statements: number }[];
  readonly reads: readonly (ColumnReadEntry & { readonly column: FieldRef })[];
  readonly writes: readonly ColumnFlowEntry[];
}

/**
 * Where lineage is kept. `record` takes observations in batches; the answers are built from
 * what is stored. Implementations: an embedded SQLite file (default) and PostgreSQL.
 */
export interface LineageStore {
  record(observations: readonly LineageObservation[]): Promise<void>;
  /**
   * `name` is `dataset.field` (`app.public.customers.email`); with `namespace` only that data
   * source, otherwise every namespace with such a dataset.
   */
  column(name: string, query?: LineageQuery & { readonly namespace?: string }): Promise<ColumnReport>;
  table(name: string, query?: LineageQuery & { readonly namespace?: string }): Promise<TableReport>;
  identity(subject: string, query?: LineageQuery): Promise<IdentityReport>;
  /** Deletes observations last seen before `before` (epoch ms); returns how many went. */
  prune(before: number): Promise<number>;
  close(): Promise<void>;
}

/** A snapshot of a run's lineage, as an OpenLineage event carries it. */
export interface RunLineage {
  readonly run: RunRef;
  readonly job: JobRef;
  readonly actor: LineageActor;
  readonly sessionIds: readonly string[];
  readonly target: string;
  readonly dialect: string;
  /** The caller's W3C traceparent, when it sent one. */
  readonly traceparent?: string;
  /** Datasets read, with the columns read when known. */
  readonly inputs: readonly (DatasetRef & { readonly fields: readonly string[] })[];
  /**
   * Datasets written with column lineage, plus the results returned to clients: one dataset
   * per statement shape, in the job's namespace, named `results.<fingerprint>`.
   */
  readonly outputs: readonly RunOutput[];
}

export interface RunOutput extends DatasetRef {
  /** Per output column, its flows (masked ones say so). */
  readonly fields: Readonly<Record<string, readonly FieldFlow[]>>;
  /** Dataset-level INDIRECT flows. */
  readonly indirect: readonly FieldFlow[];
  /** For result datasets: the statement text with literals removed. */
  readonly query?: string;
}

export type RunEventType = 'START' | 'RUNNING' | 'COMPLETE' | 'FAIL';

/** What the recorder hands to an OpenLineage emitter. */
export interface RunEvent {
  readonly eventType: RunEventType;
  /** Epoch milliseconds. */
  readonly eventTime: number;
  readonly lineage: RunLineage;
  /** For FAIL: why the run failed. */
  readonly error?: string;
}

/** Sends run events somewhere (HTTP, a file). `emit` never throws and never waits. */
export interface RunEventSink {
  emit(event: RunEvent): void;
  /** Sends or persists what is queued; resolves when done or when `timeoutMs` passed. */
  flush(timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}
