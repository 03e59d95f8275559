/**
 * The lineage recorder: a governance observer that turns each completed statement's analysis
 * (objects, result and write lineage) and outcome (masked columns) into lineage, groups it into
 * runs, aggregates statements of the same shape, and hands it to the lineage store and the
 * OpenLineage emitter.
 *
 * Per statement it does a few map lookups: the lineage of a statement shape is built once per
 * analysis and upstream (cached), and statements of one shape in one run are counted into one
 * observation until the next flush.
 *
 * Runs: a statement belongs to the caller's run when it names one (a `run` in its comment, the
 * session's attributes or application name, or the token), else to its session's run. A run
 * starts (OpenLineage START) at its first statement with lineage, reports growth (RUNNING) at
 * most once per flush interval, and ends when the last session in it ends: COMPLETE when the
 * session ended normally, FAIL otherwise (upstream lost, protocol error, shutdown ...).
 */
import type { Logger } from 'pino';
import type { Analysis, ColumnFlow, ColumnSource } from '../analysis/types.js';
import type { CallerContext } from '../session/caller-context.js';
import { parseTraceparent } from '../session/caller-context.js';
import type { GovernedSession, StatementHandle, StatementOutcome } from '../session/governor.js';
import type { GovernanceObserver, SessionObserver, StatementObserver } from '../session/observers.js';
import { datasetNaming, runIdFor, type DatasetNaming } from './naming.js';
import type {
  DatasetRef,
  FieldFlow,
  FieldRef,
  JobRef,
  LineageActor,
  LineageObservation,
  LineageStore,
  ResultField,
  RunEventSink,
  RunEventType,
  RunLineage,
  RunOutput,
  RunRef,
  WrittenDataset,
} from './types.js';

export interface LineageRecorderOptions {
  readonly logger: Logger;
  readonly store?: LineageStore;
  readonly sink?: RunEventSink;
  /** The OpenLineage namespace of jobs (and of result datasets). Default `sluice`. */
  readonly jobNamespace?: string;
  /** How often observations are written and run growth reported. Default 1000 ms. */
  readonly flushIntervalMs?: number;
  /** Observations kept while the store cannot write, before the oldest are dropped. Default 100,000. */
  readonly maxPending?: number;
  /** How long a caller's run (one with a run key) may go without a statement before it ends. Default 10 minutes. */
  readonly runIdleMs?: number;
  readonly now?: () => number;
}

/** Session ids a run's events list (the first ones; a long run through a pool has many). */
const MAX_RUN_SESSION_IDS = 100;
/** A keyed run with no statement for this long is complete (its sessions may live on in a pool). */
const DEFAULT_RUN_IDLE_MS = 10 * 60_000;
/** Observations written to the store in one call. */
const MAX_BATCH = 2000;

/** Session end reasons after which a run is complete; any other ends it as failed. */
const NORMAL_ENDS: ReadonlySet<string> = new Set(['client', 'change-user']);

/** A statement shape's lineage for one upstream, before masking is known. */
interface Shape {
  readonly inputs: readonly (DatasetRef & { readonly fields: readonly string[] })[];
  readonly result: readonly { readonly name: string; readonly flows: readonly FieldFlow[] }[];
  /** True when the result's positions are unknown (one `*` field carries everything). */
  readonly resultUnknown: boolean;
  readonly resultIndirect: readonly FieldFlow[];
  readonly outputs: readonly WrittenDataset[];
}

const EMPTY: readonly never[] = Object.freeze([]);

function fieldOf(naming: DatasetNaming, s: ColumnSource): FieldRef {
  return { namespace: naming.namespace, name: naming.name(s.schema, s.table), field: s.column };
}

function flowOf(naming: DatasetNaming, f: ColumnFlow): FieldFlow {
  return { from: fieldOf(naming, f.source), type: f.type, subtype: f.subtype };
}

function datasetKey(d: DatasetRef): string {
  return `${d.namespace}\u0000${d.name}`;
}

function flowKey(f: FieldFlow): string {
  return `${f.from.namespace}\u0000${f.from.name}\u0000${f.from.field}\u0000${f.type}\u0000${f.subtype}\u0000${f.masked === true ? 1 : 0}`;
}

/** Builds the lineage of an analysis for an upstream; undefined when it touches no dataset. */
export function shapeOf(analysis: Analysis, naming: DatasetNaming): Shape | undefined {
  const inputs = new Map<string, { namespace: string; name: string; fields: Set<string> }>();
  const read = (ref: FieldRef | DatasetRef & { field?: string }): void => {
    const key = datasetKey(ref);
    let d = inputs.get(key);
    if (d === undefined) inputs.set(key, (d = { namespace: ref.namespace, name: ref.name, fields: new Set() }));
    if (ref.field !== undefined) d.fields.add(ref.field);
  };
  for (const o of analysis.objects ?? EMPTY) {
    if (o.kind !== 'table' || o.access !== 'read') continue;
    const ref = { namespace: naming.namespace, name: naming.name(o.schema, o.name) };
    read(ref);
    for (const c of o.columns ?? EMPTY) read({ ...ref, field: c });
  }
  const lineage = analysis.lineage;
  let result: Shape['result'] = EMPTY;
  let resultUnknown = false;
  let resultIndirect: readonly FieldFlow[] = EMPTY;
  if (lineage !== undefined) {
    if (lineage.columns !== undefined) {
      result = lineage.columns.map((c) => {
        const flows =
          c.flows !== undefined
            ? c.flows.map((f) => flowOf(naming, f))
            : c.sources.map((s): FieldFlow => ({ from: fieldOf(naming, s), type: 'DIRECT', subtype: c.direct ? 'IDENTITY' : 'TRANSFORMATION' }));
        return { name: c.name, flows };
      });
    } else if (lineage.all.length > 0) {
      resultUnknown = true;
      result = [{ name: '*', flows: lineage.all.map((s): FieldFlow => ({ from: fieldOf(naming, s), type: 'DIRECT', subtype: 'TRANSFORMATION' })) }];
    }
    resultIndirect =
      lineage.indirect !== undefined
        ? lineage.indirect.map((f) => flowOf(naming, f))
        : lineage.predicates.map((s): FieldFlow => ({ from: fieldOf(naming, s), type: 'INDIRECT', subtype: 'FILTER' }));
    for (const c of result) for (const f of c.flows) read(f.from);
    for (const f of resultIndirect) read(f.from);
  }
  const outputs: WrittenDataset[] = [];
  for (const w of analysis.writes ?? EMPTY) {
    const ref = { namespace: naming.namespace, name: naming.name(w.schema, w.table) };
    const fields =
      w.columns !== undefined
        ? w.columns.map((c) => ({ to: { ...ref, field: c.name }, flows: c.flows.map((f) => flowOf(naming, f)) }))
        : w.all.length > 0
          ? [{ to: { ...ref, field: '*' }, flows: w.all.map((s): FieldFlow => ({ from: fieldOf(naming, s), type: 'DIRECT', subtype: 'TRANSFORMATION' })) }]
          : [];
    const indirect = w.indirect.map((f) => flowOf(naming, f));
    for (const f of fields) for (const fl of f.flows) read(fl.from);
    for (const f of indirect) read(f.from);
    outputs.push({ ...ref, fields, indirect });
  }
  // Tables written without row lineage (a DELETE the analyzer did not describe) still count.
  if (analysis.writes === undefined) {
    for (const o of analysis.objects ?? EMPTY) {
      if (o.kind === 'table' && o.access === 'write') outputs.push({ namespace: naming.namespace, name: naming.name(o.schema, o.name), fields: EMPTY, indirect: EMPTY });
    }
  }
  // A written table is not an input unless it is also read.
  if (inputs.size === 0 && outputs.length === 0) return undefined;
  return {
    inputs: [...inputs.values()].map((d) => ({ namespace: d.namespace, name: d.name, fields: [...d.fields] })),
    result,
    resultUnknown,
    resultIndirect,
    outputs,
  };
}

type MutableObservation = { -readonly [K in keyof LineageObservation]: LineageObservation[K] };

/** A run's accumulated lineage, for OpenLineage events. */
class RunState {
  readonly sessions = new Set<string>();
  readonly sessionIds: string[] = [];
  readonly shapes = new Set<string>();
  readonly inputs = new Map<string, { namespace: string; name: string; fields: Set<string> }>();
  readonly outputs = new Map<string, { namespace: string; name: string; fields: Map<string, Map<string, FieldFlow>>; indirect: Map<string, FieldFlow>; query?: string }>();
  started = false;
  dirty = false;
  /** Set once its last event was sent: a session still holding it leaves it alone. */
  ended = false;
  lastSeen = 0;
  failure: string | undefined;

  constructor(
    readonly run: RunRef,
    readonly job: JobRef,
    readonly actor: LineageActor,
    readonly target: string,
    readonly dialect: string,
    readonly traceparent: string | undefined,
  ) {}

  add(shape: Shape, result: readonly ResultField[], resultDataset: DatasetRef | undefined, query: string): void {
    for (const i of shape.inputs) {
      const key = datasetKey(i);
      let d = this.inputs.get(key);
      if (d === undefined) this.inputs.set(key, (d = { namespace: i.namespace, name: i.name, fields: new Set() }));
      for (const f of i.fields) d.fields.add(f);
    }
    const output = (ref: DatasetRef, q?: string) => {
      const key = datasetKey(ref);
      let o = this.outputs.get(key);
      if (o === undefined) this.outputs.set(key, (o = { namespace: ref.namespace, name: ref.name, fields: new Map(), indirect: new Map(), ...(q !== undefined ? { query: q } : {}) }));
      return o;
    };
    const addFlows = (target: Map<string, Map<string, FieldFlow>>, field: string, flows: readonly FieldFlow[]) => {
      let m = target.get(field);
      if (m === undefined) target.set(field, (m = new Map()));
      for (const f of flows) m.set(flowKey(f), f);
    };
    for (const w of shape.outputs) {
      const o = output(w);
      for (const f of w.fields) addFlows(o.fields, f.to.field, f.flows);
      for (const f of w.indirect) o.indirect.set(flowKey(f), f);
    }
    if (resultDataset !== undefined && result.length > 0) {
      const o = output(resultDataset, query);
      for (const r of result) addFlows(o.fields, r.name, r.flows);
      for (const f of shape.resultIndirect) o.indirect.set(flowKey(f), f);
    }
  }

  snapshot(): RunLineage {
    return {
      run: this.run,
      job: this.job,
      actor: this.actor,
      sessionIds: [...this.sessionIds],
      target: this.target,
      dialect: this.dialect,
      ...(this.traceparent !== undefined ? { traceparent: this.traceparent } : {}),
      inputs: [...this.inputs.values()].map((d) => ({ namespace: d.namespace, name: d.name, fields: [...d.fields] })),
      outputs: [...this.outputs.values()].map(
        (o): RunOutput => ({
          namespace: o.namespace,
          name: o.name,
          fields: Object.fromEntries([...o.fields].map(([k, v]) => [k, [...v.values()]])),
          indirect: [...o.indirect.values()],
          ...(o.query !== undefined ? { query: o.query } : {}),
        }),
      ),
    };
  }
}

export class LineageRecorder implements GovernanceObserver {
  readonly #logger: Logger;
  readonly #store: LineageStore | undefined;
  readonly #sink: RunEventSink | undefined;
  readonly #jobNamespace: string;
  readonly #maxPending: number;
  readonly #runIdleMs: number;
  #droppedLogged = 0;
  readonly #now: () => number;
  /** Shapes by analysis and upstream naming (undefined: the statement touches no dataset). */
  readonly #shapes = new WeakMap<Analysis, Map<string, Shape | null>>();
  #pending = new Map<string, MutableObservation>();
  /** Observations a failed write left, written again at the next flush. */
  #retry: LineageObservation[] = [];
  readonly #runs = new Map<string, RunState>();
  readonly #timer: NodeJS.Timeout;
  #flushing: Promise<void> | undefined;
  #closed = false;
  /** Counters for metrics and tests. */
  readonly stats = { observed: 0, observations: 0, dropped: 0, storeErrors: 0, events: 0 };

  constructor(options: LineageRecorderOptions) {
    this.#logger = options.logger;
    this.#store = options.store;
    this.#sink = options.sink;
    this.#jobNamespace = options.jobNamespace ?? 'sluice';
    this.#maxPending = options.maxPending ?? 100_000;
    this.#runIdleMs = options.runIdleMs ?? DEFAULT_RUN_IDLE_MS;
    this.#now = options.now ?? Date.now;
    this.#timer = setInterval(() => void this.flush(), options.flushIntervalMs ?? 1000);
    this.#timer.unref();
  }

  get jobNamespace(): string {
    return this.#jobNamespace;
  }

  session(session: GovernedSession): SessionObserver {
    return new SessionLineage(this, session);
  }

  /** @internal The shape of an analysis for a naming, cached. */
  shape(analysis: Analysis, naming: DatasetNaming): Shape | undefined {
    let byNaming = this.#shapes.get(analysis);
    if (byNaming === undefined) this.#shapes.set(analysis, (byNaming = new Map()));
    let s = byNaming.get(naming.key);
    if (s === undefined) {
      s = shapeOf(analysis, naming) ?? null;
      byNaming.set(naming.key, s);
    }
    return s ?? undefined;
  }

  /** @internal The run a statement belongs to (created on first use). */
  run(session: GovernedSession, context: CallerContext | undefined): RunState {
    const subject = session.identity.subject;
    const sessionJob = session.context?.job ?? plainApplication(session.application) ?? subject;
    const job = context?.job ?? sessionJob;
    const runKey = context?.run;
    // A caller's run key is its identity's: another identity naming the same key gets a run of
    // its own (a label cannot put statements into someone else's run). Without a key the run is
    // the session's (its id is the session id), one per job when statements name other jobs.
    const id =
      runKey !== undefined
        ? runIdFor(this.#jobNamespace, job, runKey, subject)
        : job === sessionJob
          ? session.id
          : runIdFor(this.#jobNamespace, job, `session:${session.id}`, subject);
    let run = this.#runs.get(id);
    if (run === undefined) {
      run = new RunState(
        runKey !== undefined ? { id, key: runKey } : { id },
        { namespace: this.#jobNamespace, name: job },
        actorOf(session),
        session.target,
        session.dialect,
        context?.traceparent,
      );
      this.#runs.set(id, run);
    }
    if (!run.sessions.has(session.id)) {
      run.sessions.add(session.id);
      if (run.sessionIds.length < MAX_RUN_SESSION_IDS) run.sessionIds.push(session.id);
    }
    return run;
  }

  /** @internal Counts one completed statement. */
  observe(
    session: GovernedSession,
    run: RunState,
    handle: StatementHandle,
    shape: Shape,
    naming: DatasetNaming,
    outcome: StatementOutcome,
    context: CallerContext | undefined,
  ): void {
    this.stats.observed++;
    const analysis = handle.analysis;
    const masked = outcome.masked;
    let maskKey = '';
    if (masked !== undefined && masked.length > 0) for (const m of masked) maskKey += `${m.column}\u0000`;
    // The shape's datasets depend on the session's naming (its current database), and every
    // observation is of the identity that ran the statement, whoever else shares the run.
    const shapeKey = `${session.target}\u0000${naming.key}\u0000${analysis.fingerprint}\u0000${maskKey}`;
    const key = `${run.run.id}\u0000${session.identity.subject}\u0000${shapeKey}`;
    const now = this.#now();
    const traceId = context?.traceparent !== undefined ? parseTraceparent(context.traceparent)?.traceId : undefined;
    run.lastSeen = now;
    const known = this.#pending.get(key);
    if (known !== undefined) {
      known.count++;
      known.lastSeen = now;
      if (traceId !== undefined) known.traceId = traceId;
      return;
    }
    if (this.#pending.size + this.#retry.length >= this.#maxPending) {
      // The store has not kept up: drop rather than grow without bound, and say so.
      this.stats.dropped++;
      if (now - this.#droppedLogged > 10_000) {
        this.#droppedLogged = now;
        this.#logger.error({ pending: this.#pending.size + this.#retry.length, dropped: this.stats.dropped }, 'lineage observations dropped: the lineage store is not keeping up');
      }
      return;
    }
    const result = resultFields(shape, masked);
    const observation: MutableObservation = {
      firstSeen: now,
      lastSeen: now,
      count: 1,
      actor: actorOf(session),
      job: run.job,
      run: run.run,
      sessionId: session.id,
      target: session.target,
      dialect: session.dialect,
      operation: analysis.commands[0] ?? '',
      fingerprint: analysis.fingerprint,
      normalized: analysis.normalized,
      inputs: shape.inputs.map((i) => ({ namespace: i.namespace, name: i.name })),
      result,
      resultIndirect: shape.resultIndirect,
      outputs: shape.outputs,
      ...(traceId !== undefined ? { traceId } : {}),
    };
    this.#pending.set(key, observation);
    if (!run.shapes.has(shapeKey)) {
      run.shapes.add(shapeKey);
      const resultDataset = result.length > 0 ? { namespace: this.#jobNamespace, name: `results.${analysis.fingerprint}` } : undefined;
      run.add(shape, result, resultDataset, analysis.normalized);
      run.dirty = true;
    }
  }

  /** @internal A session left a run. */
  leave(sessionId: string, runs: Iterable<RunState>, reason: string): void {
    for (const run of runs) {
      if (run.ended) continue;
      run.sessions.delete(sessionId);
      if (!NORMAL_ENDS.has(reason)) run.failure ??= `the session ended: ${reason}`;
      if (run.sessions.size > 0) continue;
      this.#end(run);
    }
  }

  /** Sends a run's last event and forgets it. */
  #end(run: RunState): void {
    run.ended = true;
    if (this.#runs.get(run.run.id) === run) this.#runs.delete(run.run.id);
    if (!run.started && !run.dirty) return;
    if (!run.started) this.#emit(run, 'START');
    this.#emit(run, run.failure === undefined ? 'COMPLETE' : 'FAIL', run.failure);
  }

  #emit(run: RunState, type: RunEventType, error?: string): void {
    if (type === 'START') run.started = true;
    run.dirty = false;
    if (this.#sink === undefined) return;
    this.stats.events++;
    try {
      this.#sink.emit({ eventType: type, eventTime: this.#now(), lineage: run.snapshot(), ...(error !== undefined ? { error } : {}) });
    } catch (err) {
      this.#logger.error({ err, runId: run.run.id }, 'an OpenLineage event could not be queued');
    }
  }

  /** Writes pending observations to the store and reports runs that grew. */
  flush(): Promise<void> {
    if (this.#flushing !== undefined) return this.#flushing;
    const idleBefore = this.#now() - this.#runIdleMs;
    for (const run of [...this.#runs.values()]) {
      // A caller's run whose sessions live on (a pool) ends when it has been idle a while.
      if (run.run.key !== undefined && run.lastSeen < idleBefore) {
        this.#end(run);
        continue;
      }
      if (!run.dirty) continue;
      this.#emit(run, run.started ? 'RUNNING' : 'START');
    }
    const all = this.#retry.concat([...this.#pending.values()]);
    this.#pending = new Map();
    // One bounded write per flush (the embedded store writes on this thread); the rest waits.
    const batch = all.length > MAX_BATCH ? all.slice(0, MAX_BATCH) : all;
    this.#retry = all.length > MAX_BATCH ? all.slice(MAX_BATCH) : [];
    if (batch.length === 0 || this.#store === undefined) return Promise.resolve();
    const store = this.#store;
    this.#flushing = store
      .record(batch)
      .then(
        () => {
          this.stats.observations += batch.length;
        },
        (err: unknown) => {
          this.stats.storeErrors++;
          const room = Math.max(0, this.#maxPending - this.#retry.length);
          const keep = batch.length > room ? batch.slice(batch.length - room) : batch;
          this.stats.dropped += batch.length - keep.length;
          this.#retry = keep.concat(this.#retry);
          this.#logger.error({ err, observations: batch.length, dropped: batch.length - keep.length }, 'the lineage store could not write; retrying at the next flush');
        },
      )
      .finally(() => {
        this.#flushing = undefined;
      });
    return this.#flushing;
  }

  /** Ends every open run, writes what is pending and flushes the emitter. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    // Sessions end before the recorder closes; a run still open here was cut short.
    for (const run of [...this.#runs.values()]) {
      this.#runs.delete(run.run.id);
      if (!run.started && !run.dirty) continue;
      if (!run.started) this.#emit(run, 'START');
      this.#emit(run, 'FAIL', run.failure ?? 'the gateway stopped while the run was open');
    }
    await this.#flushing;
    await this.flush();
    await this.#sink?.flush(5000);
  }
}

function actorOf(session: GovernedSession): LineageActor {
  return { subject: session.identity.subject, kind: session.identity.kind, groups: session.identity.groups, method: session.identity.method };
}

function plainApplication(application: string | undefined): string | undefined {
  if (application === undefined || application.length === 0 || application.includes('=')) return undefined;
  return application;
}

function resultFields(shape: Shape, masked: StatementOutcome['masked']): readonly ResultField[] {
  if (shape.result.length === 0) return EMPTY;
  // Masked columns are reported by name. A name the result holds more often than it was
  // masked cannot be told apart: none of its columns counts as masked (the record then says
  // a clear read happened, never the reverse).
  let maskedNames: Map<string, number> | undefined;
  if (masked !== undefined && masked.length > 0) {
    maskedNames = new Map();
    for (const m of masked) maskedNames.set(m.column, (maskedNames.get(m.column) ?? 0) + 1);
  }
  const occurrences = new Map<string, number>();
  if (maskedNames !== undefined) for (const r of shape.result) occurrences.set(r.name, (occurrences.get(r.name) ?? 0) + 1);
  return shape.result.map((r) => {
    const isMasked = maskedNames !== undefined && (shape.resultUnknown || (maskedNames.get(r.name) ?? 0) >= (occurrences.get(r.name) ?? 1));
    return {
      name: r.name,
      masked: isMasked,
      flows: isMasked ? r.flows.map((f) => (f.type === 'DIRECT' ? { ...f, masked: true } : f)) : r.flows,
    };
  });
}

class SessionLineage implements SessionObserver {
  readonly #recorder: LineageRecorder;
  readonly #session: GovernedSession;
  readonly #runs = new Set<RunState>();
  #naming: DatasetNaming;
  #namingDatabase: string | undefined;

  constructor(recorder: LineageRecorder, session: GovernedSession) {
    this.#recorder = recorder;
    this.#session = session;
    this.#namingDatabase = session.database;
    this.#naming = datasetNaming(session.dialect, session.server, session.database);
  }

  statement(handle: StatementHandle, context: CallerContext | undefined): StatementObserver | undefined {
    if (handle.decision === 'deny') return undefined;
    const session = this.#session;
    if (session.database !== this.#namingDatabase) {
      this.#namingDatabase = session.database;
      this.#naming = datasetNaming(session.dialect, session.server, session.database);
    }
    const naming = this.#naming;
    const shape = this.#recorder.shape(handle.analysis, naming);
    if (shape === undefined) return undefined;
    const recorder = this.#recorder;
    const runs = this.#runs;
    return {
      complete(outcome: StatementOutcome): void {
        if (outcome.outcome !== 'ok') return;
        const run = recorder.run(session, context);
        if (!runs.has(run)) {
          // Ended runs are let go when the set grows (not on every statement of a known run).
          if (runs.size > 64) for (const r of runs) if (r.ended) runs.delete(r);
          runs.add(run);
        }
        recorder.observe(session, run, handle, shape, naming, outcome, context);
      },
    };
  }

  end(reason: string): void {
    this.#recorder.leave(this.#session.id, this.#runs, reason);
  }
}

/** The recorder as a governance observer over a lineage store and an event sink. */
export function createLineageRecorder(options: LineageRecorderOptions): LineageRecorder {
  return new LineageRecorder(options);
}

export type { Shape as LineageShape };
