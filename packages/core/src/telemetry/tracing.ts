/**
 * OpenTelemetry for governed sessions, on @opentelemetry/api only (the app owns the SDK): a
 * span per session, a child span per statement following the database semantic conventions,
 * the wait for an approver as a span of its own, and metrics. When a statement carries the
 * caller's W3C traceparent, its span is a child of the caller's span (and links to the session
 * span), so a pipeline's trace shows its database work.
 *
 * The observer is installed only when telemetry is on; off, the governor does no work for it.
 */
import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  TraceFlags,
  createTraceState,
  metrics,
  trace,
  type Attributes,
  type Context,
  type Counter,
  type Histogram,
  type Meter,
  type Span,
  type Tracer,
  type UpDownCounter,
} from '@opentelemetry/api';
import type { Analysis } from '../analysis/types.js';
import { parseTraceparent, type CallerContext } from '../session/caller-context.js';
import type { GovernedSession, StatementHandle, StatementOutcome } from '../session/governor.js';
import type { ApprovalWaitOutcome, GovernanceObserver, SessionObserver, StatementObserver } from '../session/observers.js';

export interface TelemetryOptions {
  /** Defaults to the global tracer provider's `sluice` tracer. */
  readonly tracer?: Tracer;
  /** Defaults to the global meter provider's `sluice` meter. */
  readonly meter?: Meter;
  /** The version reported as the instrumentation scope's. */
  readonly version?: string;
}

/** `db.system.name` of a dialect, per the semantic conventions. */
const SYSTEMS: Readonly<Record<string, string>> = { postgres: 'postgresql', mysql: 'mysql', mongodb: 'mongodb', sqlserver: 'microsoft.sql_server' };

/** The remote parent context a traceparent names, or undefined when it is not a valid one. */
export function callerTraceContext(traceparent: string | undefined, tracestate?: string): Context | undefined {
  if (traceparent === undefined) return undefined;
  const p = parseTraceparent(traceparent);
  if (p === undefined) return undefined;
  return trace.setSpanContext(ROOT_CONTEXT, {
    traceId: p.traceId,
    spanId: p.spanId,
    traceFlags: p.flags & TraceFlags.SAMPLED,
    isRemote: true,
    ...(tracestate !== undefined ? { traceState: createTraceState(tracestate) } : {}),
  });
}

/** A cumulative count for one attribute set, reported by an observable counter. */
interface CountEntry {
  readonly attributes: Attributes;
  value: number;
}

/**
 * Counts kept in the process and reported when metrics are collected: a statement adds to a
 * count entry its shape holds, with no attribute hashing per statement.
 */
class LocalCounts {
  readonly #entries = new Map<string, CountEntry>();

  entry(attributes: Attributes): CountEntry {
    const key = JSON.stringify(Object.entries(attributes).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    let e = this.#entries.get(key);
    if (e === undefined) this.#entries.set(key, (e = { attributes, value: 0 }));
    return e;
  }

  observe(result: { observe(value: number, attributes?: Attributes): void }): void {
    for (const e of this.#entries.values()) result.observe(e.value, e.attributes);
  }
}

interface Instruments {
  readonly statements: LocalCounts;
  readonly maskedValues: Counter;
  readonly approvalWait: Histogram;
  readonly activeSessions: UpDownCounter;
  readonly operationDuration: Histogram;
}

/** Low-cardinality summary of a statement: its command and the tables it names (`SELECT customers`). */
export function querySummary(analysis: Analysis): string {
  const command = analysis.commands[0] ?? 'UNKNOWN';
  const tables: string[] = [];
  for (const o of analysis.objects ?? []) {
    if (o.kind !== 'table') continue;
    const name = o.schema !== undefined ? `${o.schema}.${o.name}` : o.name;
    if (!tables.includes(name)) tables.push(name);
    if (tables.length === 3) break;
  }
  return tables.length > 0 ? `${command} ${tables.join(' ')}` : command;
}

const summaries = new WeakMap<Analysis, Attributes>();

/** The attributes of an analysis, built once per (cached) analysis. */
function analysisAttributes(a: Analysis): Attributes {
  let attrs = summaries.get(a);
  if (attrs === undefined) {
    // A table read and written (UPDATE ... WHERE) is one collection.
    const tables = new Set((a.objects ?? []).filter((o) => o.kind === 'table').map((o) => (o.schema !== undefined ? `${o.schema}.${o.name}` : o.name)));
    attrs = {
      'db.operation.name': a.commands.length === 1 ? a.commands[0]! : a.commands.join(';'),
      'db.query.summary': querySummary(a),
      'db.query.text': a.normalized,
      ...(tables.size === 1 ? { 'db.collection.name': [...tables][0]! } : {}),
    };
    summaries.set(a, attrs);
  }
  return attrs;
}

export class TelemetryObserver implements GovernanceObserver {
  readonly #tracer: Tracer;
  readonly #instruments: Instruments;

  constructor(options: TelemetryOptions = {}) {
    this.#tracer = options.tracer ?? trace.getTracer('sluice', options.version);
    const meter = options.meter ?? metrics.getMeter('sluice', options.version);
    const statements = new LocalCounts();
    meter.createObservableCounter('sluice.statements', { description: 'Statements decided, by decision' }).addCallback((result) => statements.observe(result));
    this.#instruments = {
      statements,
      maskedValues: meter.createCounter('sluice.masking.values', { description: 'Values masked in results (rows times masked columns)' }),
      approvalWait: meter.createHistogram('sluice.approval.wait.duration', { description: 'Time statements waited for an approver', unit: 's' }),
      activeSessions: meter.createUpDownCounter('sluice.sessions.active', { description: 'Open governed sessions' }),
      operationDuration: meter.createHistogram('db.client.operation.duration', {
        description: 'Duration of statements at the upstream database, approval waits excluded',
        unit: 's',
        advice: { explicitBucketBoundaries: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10] },
      }),
    };
  }

  session(session: GovernedSession, context: CallerContext | undefined): SessionObserver {
    return new SessionTelemetry(this.#tracer, this.#instruments, session, context);
  }
}

interface StatementShape {
  /** What of the decision the attributes hold (a grant's decision is a new object per statement). */
  readonly effect: StatementHandle['decisionDetail']['effect'];
  readonly rule: StatementHandle['decisionDetail']['rule'];
  readonly database: string | undefined;
  readonly attributes: Attributes;
  readonly name: string;
  /** The `sluice.statements` count, and the attributes of `db.client.operation.duration`. */
  readonly count: CountEntry;
  readonly duration: Attributes;
}

class SessionTelemetry implements SessionObserver {
  readonly #tracer: Tracer;
  readonly #instruments: Instruments;
  readonly #session: GovernedSession;
  readonly #span: Span;
  readonly #spanContext: Context;
  readonly #common: Attributes;
  /** The session attributes every statement span repeats (the semantic conventions' and the identity). */
  readonly #statementCommon: Attributes;
  readonly #metricAttributes: Attributes;
  readonly #shapes = new WeakMap<Analysis, StatementShape>();

  constructor(tracer: Tracer, instruments: Instruments, session: GovernedSession, context: CallerContext | undefined) {
    this.#tracer = tracer;
    this.#instruments = instruments;
    this.#session = session;
    const system = session.system ?? SYSTEMS[session.dialect] ?? session.dialect;
    this.#common = {
      'db.system.name': system,
      ...(session.database !== undefined ? { 'db.namespace': session.database } : {}),
      ...(session.server !== undefined ? { 'server.address': session.server.address, 'server.port': session.server.port } : {}),
      'enduser.id': session.identity.subject,
      'sluice.identity.kind': session.identity.kind,
      'sluice.target': session.target,
      'sluice.session.id': session.id,
    };
    this.#statementCommon = {
      'db.system.name': system,
      ...(session.server !== undefined ? { 'server.address': session.server.address, 'server.port': session.server.port } : {}),
      'enduser.id': session.identity.subject,
      'sluice.target': session.target,
      'sluice.session.id': session.id,
    };
    this.#metricAttributes = { 'db.system.name': system, 'sluice.target': session.target };
    const parent = callerTraceContext(context?.traceparent, context?.tracestate) ?? ROOT_CONTEXT;
    this.#span = tracer.startSpan(
      `SESSION ${session.target}`,
      {
        kind: SpanKind.SERVER,
        attributes: {
          ...this.#common,
          'client.address': session.sourceAddress,
          ...(session.application !== undefined ? { 'sluice.application': session.application } : {}),
          ...(context?.job !== undefined ? { 'sluice.job': context.job } : {}),
          ...(context?.run !== undefined ? { 'sluice.run': context.run } : {}),
        },
      },
      parent,
    );
    this.#spanContext = trace.setSpan(ROOT_CONTEXT, this.#span);
    instruments.activeSessions.add(1, this.#metricAttributes);
  }

  /**
   * A statement's span name and attributes, and its metrics' attributes, built once per
   * analysis, decision (effect and rule) and database (statements of one shape reuse them: the
   * SDK copies what it is given).
   */
  #shape(handle: StatementHandle): StatementShape {
    const analysis = handle.analysis;
    const { effect, rule } = handle.decisionDetail;
    const database = this.#session.database;
    const known = this.#shapes.get(analysis);
    if (known !== undefined && known.effect === effect && known.rule === rule && known.database === database) return known;
    const described = analysisAttributes(analysis);
    const shape: StatementShape = {
      effect,
      rule,
      database,
      attributes: {
        ...this.#statementCommon,
        ...(database !== undefined ? { 'db.namespace': database } : {}),
        ...described,
        'sluice.decision': effect,
        'sluice.rule': rule,
      },
      name: described['db.query.summary'] as string,
      count: this.#instruments.statements.entry({ ...this.#metricAttributes, 'sluice.decision': effect }),
      duration: { ...this.#metricAttributes, 'db.operation.name': described['db.operation.name']! },
    };
    this.#shapes.set(analysis, shape);
    return shape;
  }

  statement(handle: StatementHandle, context: CallerContext | undefined): StatementObserver {
    const shape = this.#shape(handle);
    // A traceparent of the statement's own (not the session's) makes it a child of the caller's span.
    const traceparent = context?.traceparent;
    const caller = traceparent !== undefined && traceparent !== this.#session.context?.traceparent ? callerTraceContext(traceparent, context?.tracestate) : undefined;
    const span = this.#tracer.startSpan(
      shape.name,
      caller !== undefined
        ? // A statement under the caller's span still points at its session.
          { kind: SpanKind.CLIENT, attributes: shape.attributes, links: [{ context: this.#span.spanContext() }] }
        : { kind: SpanKind.CLIENT, attributes: shape.attributes },
      caller ?? this.#spanContext,
    );
    // A span the sampler dropped records nothing: skip building what it would ignore.
    const recording = span.isRecording();
    if (recording) {
      span.setAttribute('sluice.statement.id', handle.id);
      if (context?.job !== undefined) span.setAttribute('sluice.job', context.job);
      if (context?.run !== undefined) span.setAttribute('sluice.run', context.run);
    }
    const started = performance.now();
    let waited = 0;
    const instruments = this.#instruments;
    const metricAttributes = this.#metricAttributes;
    const tracer = this.#tracer;
    return {
      held(): (outcome: ApprovalWaitOutcome) => void {
        const from = performance.now();
        const wait = tracer.startSpan('sluice.approval.wait', { kind: SpanKind.INTERNAL }, trace.setSpan(ROOT_CONTEXT, span));
        return (outcome) => {
          const seconds = (performance.now() - from) / 1000;
          waited += seconds;
          if (handle.approval !== undefined) wait.setAttribute('sluice.approval.id', handle.approval);
          wait.setAttribute('sluice.approval.outcome', outcome);
          if (outcome !== 'approved') wait.setStatus({ code: SpanStatusCode.ERROR, message: `approval ${outcome}` });
          wait.end();
          instruments.approvalWait.record(seconds, { ...metricAttributes, 'sluice.approval.outcome': outcome });
        };
      },
      complete(outcome: StatementOutcome): void {
        const maskedColumns = outcome.masked?.length ?? 0;
        if (recording) span.setAttribute('sluice.masked_columns', maskedColumns);
        if (outcome.rows !== undefined) span.setAttribute('db.response.returned_rows', outcome.rows);
        if (handle.approval !== undefined) span.setAttribute('sluice.approval.id', handle.approval);
        if (outcome.errorCode !== undefined) {
          span.setAttribute('db.response.status_code', outcome.errorCode);
          span.setAttribute('error.type', outcome.errorCode);
        }
        if (outcome.outcome !== 'ok') span.setAttribute('sluice.outcome', outcome.outcome);
        if (handle.decision === 'deny') {
          span.setStatus({ code: SpanStatusCode.ERROR, message: `denied by rule "${handle.rule}"` });
          span.setAttribute('error.type', 'denied');
        } else if (outcome.outcome === 'error') {
          span.setStatus({ code: SpanStatusCode.ERROR, message: `database error ${outcome.errorCode ?? ''}`.trim() });
        } else if (outcome.outcome === 'not-executed' || outcome.outcome === 'aborted' || outcome.outcome === 'cancelled') {
          span.setStatus({ code: SpanStatusCode.ERROR, message: `statement ${outcome.outcome}` });
        }
        span.end();
        shape.count.value++;
        if (maskedColumns > 0 && outcome.rows !== undefined && outcome.rows > 0) instruments.maskedValues.add(maskedColumns * outcome.rows, metricAttributes);
        if (outcome.outcome === 'ok' || outcome.outcome === 'error') {
          const seconds = Math.max(0, (performance.now() - started) / 1000 - waited);
          instruments.operationDuration.record(seconds, outcome.errorCode === undefined ? shape.duration : { ...shape.duration, 'error.type': outcome.errorCode });
        }
      },
    };
  }

  end(reason: string): void {
    this.#span.setAttribute('sluice.session.end', reason);
    this.#span.setAttribute('sluice.statements', this.#session.statementCount);
    if (reason !== 'client' && reason !== 'change-user') this.#span.setStatus({ code: SpanStatusCode.ERROR, message: `session ended: ${reason}` });
    this.#span.end();
    this.#instruments.activeSessions.add(-1, this.#metricAttributes);
  }
}
