import { join } from 'node:path';
import { SpanKind, SpanStatusCode, type Attributes } from '@opentelemetry/api';
import { MeterProvider, MetricReader, type DataPoint, type Histogram } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { Analysis, OperationClass } from '../analysis/types.js';
import { openApprovals } from '../approvals/service.js';
import type { Approvals } from '../approvals/types.js';
import { FileAuditStore } from '../audit/file-store.js';
import { ClientFacingError } from '../errors.js';
import type { Identity } from '../identity/types.js';
import { MemoryFailureLimiter } from '../identity/memory-failure-limiter.js';
import { TokenAuthenticator } from '../identity/token-authenticator.js';
import { policySchema } from '../policy/config.js';
import { Policy } from '../policy/engine.js';
import { Governor, type GovernedSession, type SessionStart, type StatementHandle, type StatementOutcome } from '../session/governor.js';
import { useTempDir } from '../test-support/temp-dir.js';
import { TelemetryObserver, callerTraceContext, querySummary } from './tracing.js';

const logger = pino({ level: 'silent' });
const dir = useTempDir('sluice-tracing-');

class TestReader extends MetricReader {
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}

const ann: Identity = { subject: 'ann', kind: 'human', groups: ['analysts'], method: 'token' };
const dba: Identity = { subject: 'dora', kind: 'human', groups: ['dba'], method: 'oidc' };

const CALLER_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const CALLER_SPAN = '00f067aa0ba902b7';
const CALLER_TP = `00-${CALLER_TRACE}-${CALLER_SPAN}-01`;
const OTHER_TRACE = '0af7651916cd43dd8448eb211c80319c';
const OTHER_SPAN = 'b7ad6b7169203331';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup() {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  const reader = new TestReader();
  const meterProvider = new MeterProvider({ readers: [reader] });
  const audit = await FileAuditStore.open({ dir: join(dir(), 'audit'), groupCommitMs: 5, logger });
  const approvals = await openApprovals({ dir: join(dir(), 'approvals'), audit, logger, approvers: { groups: ['dba'], subjects: [] } });
  const telemetry = new TelemetryObserver({ tracer: provider.getTracer('sluice'), meter: meterProvider.getMeter('sluice') });
  const governor = new Governor({
    authenticator: new TokenAuthenticator([]),
    audit,
    failureLimiter: new MemoryFailureLimiter({ maxAttempts: 5, windowSeconds: 60, lockoutSeconds: 60 }),
    logger,
    approvals,
    policy: new Policy(
      policySchema.parse({
        rules: [
          { name: 'everyone', effect: 'allow' },
          { name: 'no-secrets', effect: 'deny', objects: ['secrets'] },
          { name: 'ledger-reviewed', effect: 'review', operations: ['write'], objects: ['ledger'] },
        ],
      }),
      { approvers: { groups: ['dba'], subjects: [] } },
    ),
    observers: [telemetry],
  });
  cleanups.push(async () => {
    await approvals.close();
    await audit.close();
    await provider.shutdown();
    await meterProvider.shutdown();
  });
  const spans = (): ReadableSpan[] => exporter.getFinishedSpans();
  const span = (name: string): ReadableSpan => {
    const found = spans().filter((s) => s.name === name);
    expect(found, `one span named ${name}`).toHaveLength(1);
    return found[0]!;
  };
  const points = async (name: string): Promise<DataPoint<number | Histogram>[]> => {
    const { resourceMetrics, errors } = await reader.collect();
    expect(errors).toEqual([]);
    const metric = resourceMetrics.scopeMetrics.flatMap((s) => s.metrics).find((m) => m.descriptor.name === name);
    return (metric?.dataPoints ?? []) as DataPoint<number | Histogram>[];
  };
  return { governor, approvals, spans, span, points };
}

function pg(extra: Partial<SessionStart> = {}): SessionStart {
  return {
    dialect: 'postgres',
    identity: ann,
    username: 'ann',
    target: 'app',
    sourceAddress: '10.1.1.1',
    tls: true,
    application: 'psql',
    database: 'app',
    server: { address: 'db.internal', port: 5432 },
    ...extra,
  };
}

const analysis = (normalized: string, fingerprint: string, operations: OperationClass[], command: string, objects: Analysis['objects']): Analysis => ({
  normalized,
  fingerprint,
  operations,
  statementCount: 1,
  commands: [command],
  objects,
});

const readCustomers = analysis('SELECT id, email FROM customers WHERE region = $1', 'fp-customers', ['read'], 'SELECT', [
  { name: 'customers', kind: 'table', access: 'read', columns: ['id', 'email', 'region'] },
]);
const joinOrders = analysis('SELECT * FROM sales.orders o JOIN customers c ON c.id = o.cid', 'fp-join', ['read'], 'SELECT', [
  { schema: 'sales', name: 'orders', kind: 'table', access: 'read' },
  { name: 'customers', kind: 'table', access: 'read' },
]);
const updateAccounts = analysis('UPDATE accounts SET balance = balance + $1 WHERE id = $2', 'fp-update', ['write'], 'UPDATE', [
  { name: 'accounts', kind: 'table', access: 'write', columns: ['balance'] },
  { name: 'accounts', kind: 'table', access: 'read', columns: ['balance', 'id'] },
]);
const readSecrets = analysis('SELECT * FROM secrets', 'fp-secrets', ['read'], 'SELECT', [{ name: 'secrets', kind: 'table', access: 'read' }]);
const writeLedger = analysis('INSERT INTO ledger (amount) VALUES ($1)', 'fp-ledger', ['write'], 'INSERT', [
  { name: 'ledger', kind: 'table', access: 'write', columns: ['amount'] },
]);

async function exec(session: GovernedSession, a: Analysis, outcome: StatementOutcome = { outcome: 'ok', rows: 1 }, text?: string): Promise<StatementHandle> {
  const request = session.beginRequest({ analysis: a, protocol: 'simple', ...(text !== undefined ? { text } : {}) });
  await request.ready;
  const handle = request.handles[0]!;
  handle.complete(outcome);
  return handle;
}

const sessionAttributes = (session: GovernedSession): Attributes => ({
  'db.system.name': 'postgresql',
  'db.namespace': 'app',
  'server.address': 'db.internal',
  'server.port': 5432,
  'enduser.id': 'ann',
  'sluice.identity.kind': 'human',
  'sluice.target': 'app',
  'sluice.session.id': session.id,
});

/** What a statement span repeats of its session's attributes (not the identity's kind). */
const statementAttributes = (session: GovernedSession): Attributes => {
  const { 'sluice.identity.kind': _kind, ...rest } = sessionAttributes(session);
  return rest;
};

describe('TelemetryObserver spans', () => {
  it('traces a session (SERVER) and its statements (CLIENT, children of the session span)', async () => {
    const { governor, span, spans } = await setup();
    const session = await governor.openSession(pg());
    const handle = await exec(session, readCustomers, {
      outcome: 'ok',
      rows: 3,
      command: 'SELECT 3',
      masked: [{ column: 'email', by: 'pii' }],
    });
    await session.end('client');

    const root = span('SESSION app');
    expect(root.kind).toBe(SpanKind.SERVER);
    expect(root.parentSpanContext).toBeUndefined();
    expect(root.status.code).toBe(SpanStatusCode.UNSET);
    expect(root.attributes).toEqual({
      ...sessionAttributes(session),
      'client.address': '10.1.1.1',
      'sluice.application': 'psql',
      'sluice.session.end': 'client',
      'sluice.statements': 1,
    });

    const st = span('SELECT customers');
    expect(st.kind).toBe(SpanKind.CLIENT);
    expect(st.spanContext().traceId).toBe(root.spanContext().traceId);
    expect(st.parentSpanContext?.spanId).toBe(root.spanContext().spanId);
    expect(st.links).toEqual([]);
    expect(st.status.code).toBe(SpanStatusCode.UNSET);
    expect(st.attributes).toEqual({
      ...statementAttributes(session),
      'db.operation.name': 'SELECT',
      'db.query.summary': 'SELECT customers',
      'db.query.text': 'SELECT id, email FROM customers WHERE region = $1',
      'db.collection.name': 'customers',
      'sluice.decision': 'allow',
      'sluice.rule': 'everyone',
      'sluice.statement.id': handle.id,
      'sluice.masked_columns': 1,
      'db.response.returned_rows': 3,
    });
    expect(spans()).toHaveLength(2);
  });

  it('names one collection only when the statement touches one table', async () => {
    const { governor, span } = await setup();
    const session = await governor.openSession(pg());
    await exec(session, joinOrders);
    await exec(session, updateAccounts, { outcome: 'ok', rows: 1, command: 'UPDATE 1' });
    await session.end('client');
    const join = span('SELECT sales.orders customers');
    expect(join.attributes['db.query.summary']).toBe('SELECT sales.orders customers');
    expect(join.attributes).not.toHaveProperty('db.collection.name');
    // An UPDATE reads and writes the same table: one collection.
    const update = span('UPDATE accounts');
    expect(update.attributes['db.collection.name']).toBe('accounts');
    expect(update.attributes['db.operation.name']).toBe('UPDATE');
  });

  it('follows a database switch in db.namespace', async () => {
    const { governor, span } = await setup();
    const session = await governor.openSession(pg({ dialect: 'mysql', database: 'shop', server: { address: '10.0.0.5', port: 3306 } }));
    session.database = 'archive';
    await exec(session, readCustomers);
    await session.end('client');
    expect(span('SELECT customers').attributes).toMatchObject({ 'db.system.name': 'mysql', 'db.namespace': 'archive', 'server.port': 3306 });
    expect(span('SESSION app').attributes['db.namespace']).toBe('shop');
  });

  it('makes a statement with a traceparent comment a child of the caller span, linked to its session', async () => {
    const { governor, span } = await setup();
    const session = await governor.openSession(pg());
    await exec(session, readCustomers, { outcome: 'ok', rows: 0 }, `SELECT id, email FROM customers WHERE region = 'eu' /*traceparent='${CALLER_TP}',job='retrain-churn',run='42'*/`);
    await session.end('client');
    const root = span('SESSION app');
    const st = span('SELECT customers');
    expect(st.spanContext().traceId).toBe(CALLER_TRACE);
    expect(st.parentSpanContext).toMatchObject({ traceId: CALLER_TRACE, spanId: CALLER_SPAN, isRemote: true });
    expect(root.spanContext().traceId).not.toBe(CALLER_TRACE);
    expect(st.links.map((l) => [l.context.traceId, l.context.spanId])).toEqual([[root.spanContext().traceId, root.spanContext().spanId]]);
    expect(st.attributes).toMatchObject({ 'sluice.job': 'retrain-churn', 'sluice.run': '42', 'db.response.returned_rows': 0 });
    // The literal in the text is not in the span.
    expect(JSON.stringify(st.attributes)).not.toContain("'eu'");
  });

  it('makes a session with a traceparent a child of the caller span, and its statements children of the session span', async () => {
    const { governor, span, spans } = await setup();
    const session = await governor.openSession(pg({ attributes: { traceparent: CALLER_TP, tracestate: 'vendor=1', job: 'loader' } }));
    await exec(session, readCustomers);
    await exec(session, joinOrders, { outcome: 'ok', rows: 2 }, `SELECT 1 /*traceparent='00-${OTHER_TRACE}-${OTHER_SPAN}-01'*/`);
    await session.end('client');
    const root = span('SESSION app');
    expect(root.spanContext().traceId).toBe(CALLER_TRACE);
    expect(root.parentSpanContext).toMatchObject({ traceId: CALLER_TRACE, spanId: CALLER_SPAN, isRemote: true });
    expect(root.parentSpanContext?.traceState?.get('vendor')).toBe('1');
    expect(root.attributes['sluice.job']).toBe('loader');

    const own = span('SELECT customers');
    expect(own.spanContext().traceId).toBe(CALLER_TRACE);
    expect(own.parentSpanContext?.spanId).toBe(root.spanContext().spanId);
    expect(own.links).toEqual([]);
    expect(own.attributes['sluice.job']).toBe('loader');

    const other = span('SELECT sales.orders customers');
    expect(other.spanContext().traceId).toBe(OTHER_TRACE);
    expect(other.parentSpanContext?.spanId).toBe(OTHER_SPAN);
    expect(other.links.map((l) => l.context.spanId)).toEqual([root.spanContext().spanId]);
    expect(spans()).toHaveLength(3);
  });

  it('marks a denied statement as an error', async () => {
    const { governor, span } = await setup();
    const session = await governor.openSession(pg());
    const err = (() => {
      try {
        session.beginRequest({ analysis: readSecrets, protocol: 'simple' });
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(ClientFacingError.is(err)).toBe(true);
    await session.end('client');
    const st = span('SELECT secrets');
    expect(st.status).toEqual({ code: SpanStatusCode.ERROR, message: 'denied by rule "no-secrets"' });
    expect(st.attributes).toMatchObject({ 'sluice.decision': 'deny', 'sluice.rule': 'no-secrets', 'sluice.outcome': 'not-executed', 'error.type': 'denied' });
  });

  it('records a database error code', async () => {
    const { governor, span } = await setup();
    const session = await governor.openSession(pg());
    await exec(session, readCustomers, { outcome: 'error', errorCode: '42P01' });
    await session.end('upstream-lost');
    const st = span('SELECT customers');
    expect(st.status).toEqual({ code: SpanStatusCode.ERROR, message: 'database error 42P01' });
    expect(st.attributes).toMatchObject({ 'db.response.status_code': '42P01', 'error.type': '42P01', 'sluice.outcome': 'error' });
    expect(st.attributes).not.toHaveProperty('db.response.returned_rows');
    const root = span('SESSION app');
    expect(root.status).toEqual({ code: SpanStatusCode.ERROR, message: 'session ended: upstream-lost' });
    expect(root.attributes['sluice.session.end']).toBe('upstream-lost');
  });

  it('traces the wait for an approver as a child of the statement span', async () => {
    const { governor, approvals, span, points } = await setup();
    const session = await governor.openSession(pg());
    let decided: Promise<unknown> | undefined;
    let requestId: string | undefined;
    const request = session.beginRequest({
      analysis: writeLedger,
      protocol: 'simple',
      text: 'INSERT INTO ledger (amount) VALUES (10)',
      onHeld: (held) => {
        requestId = held.requestId;
        decided = approvals.approve(held.requestId, dba);
      },
    });
    await request.ready;
    await decided;
    const handle = request.handles[0]!;
    handle.complete({ outcome: 'ok', rows: 1, command: 'INSERT 0 1' });
    await session.end('client');

    const st = span('INSERT ledger');
    const wait = span('sluice.approval.wait');
    expect(requestId).toMatch(/^r-[0-9a-z]{6}$/);
    expect(handle.approval).toBe(requestId);
    expect(wait.kind).toBe(SpanKind.INTERNAL);
    expect(wait.parentSpanContext?.spanId).toBe(st.spanContext().spanId);
    expect(wait.spanContext().traceId).toBe(st.spanContext().traceId);
    expect(wait.attributes).toEqual({ 'sluice.approval.id': requestId, 'sluice.approval.outcome': 'approved' });
    expect(wait.status.code).toBe(SpanStatusCode.UNSET);
    expect(st.attributes).toMatchObject({ 'sluice.decision': 'review', 'sluice.rule': 'ledger-reviewed', 'sluice.approval.id': requestId });
    expect(st.attributes['sluice.outcome']).toBeUndefined();
    expect(st.status.code).toBe(SpanStatusCode.UNSET);

    const waits = await points('sluice.approval.wait.duration');
    expect(waits.map((p) => [p.attributes, (p.value as Histogram).count])).toEqual([
      [{ 'db.system.name': 'postgresql', 'sluice.target': 'app', 'sluice.approval.outcome': 'approved' }, 1],
    ]);
    expect((waits[0]!.value as Histogram).sum).toBeGreaterThan(0);
  });

  it('names the grant of each statement a grant allowed, and counts them under one decision', async () => {
    const { governor, approvals, spans, points } = await setup();
    const session = await governor.openSession(pg());
    // A grant's decision is made anew for every statement (grants come and go).
    const g = await approvals.grant({ subject: 'ann', operations: ['write'], objects: ['ledger'], durationMs: 60_000 }, dba);
    await exec(session, writeLedger);
    await exec(session, writeLedger);
    const ledger = spans().filter((s) => s.name === 'INSERT ledger');
    expect(ledger).toHaveLength(2);
    for (const st of ledger) expect(st.attributes).toMatchObject({ 'sluice.decision': 'allow', 'sluice.rule': `grant:${g.id}` });
    const allowed = (await points('sluice.statements')).filter((p) => p.attributes['sluice.decision'] === 'allow');
    expect(allowed.map((p) => p.value)).toEqual([2]);
    await session.end('client');
  });

  it('marks a rejected wait and its statement as errors', async () => {
    const { governor, approvals, span } = await setup();
    const session = await governor.openSession(pg());
    let decided: Promise<unknown> | undefined;
    const request = session.beginRequest({
      analysis: writeLedger,
      protocol: 'simple',
      text: 'INSERT INTO ledger (amount) VALUES (10)',
      onHeld: (held) => {
        decided = approvals.reject(held.requestId, dba, { reason: 'not today' });
      },
    });
    await expect(request.ready).rejects.toThrow(/rejected/);
    await decided;
    await session.end('client');
    const wait = span('sluice.approval.wait');
    expect(wait.attributes['sluice.approval.outcome']).toBe('rejected');
    expect(wait.status).toEqual({ code: SpanStatusCode.ERROR, message: 'approval rejected' });
    const st = span('INSERT ledger');
    expect(st.status).toEqual({ code: SpanStatusCode.ERROR, message: 'statement not-executed' });
  });
});

describe('TelemetryObserver metrics', () => {
  it('counts statements by decision, active sessions, durations and masked values', async () => {
    const { governor, points } = await setup();
    const common = { 'db.system.name': 'postgresql', 'sluice.target': 'app' };
    const a = await governor.openSession(pg());
    const b = await governor.openSession(pg());
    expect((await points('sluice.sessions.active')).map((p) => [p.attributes, p.value])).toEqual([[common, 2]]);

    await exec(a, readCustomers, { outcome: 'ok', rows: 4, masked: [{ column: 'email', by: 'pii' }, { column: 'id', by: 'detector:number' }] });
    await exec(a, readCustomers, { outcome: 'ok', rows: 3, masked: [{ column: 'email', by: 'pii' }] });
    await exec(b, updateAccounts, { outcome: 'error', errorCode: '23505' });
    await exec(b, readCustomers, { outcome: 'cancelled' });
    expect(() => b.beginRequest({ analysis: readSecrets, protocol: 'simple' })).toThrow(/no-secrets|denied/);

    const statements = await points('sluice.statements');
    expect(statements.map((p) => [p.attributes['sluice.decision'], p.value])).toEqual([
      ['allow', 4],
      ['deny', 1],
    ]);
    expect(statements[0]!.attributes).toEqual({ ...common, 'sluice.decision': 'allow' });

    expect((await points('sluice.masking.values')).map((p) => [p.attributes, p.value])).toEqual([[common, 4 * 2 + 3 * 1]]);

    const durations = await points('db.client.operation.duration');
    expect(durations.map((p) => [p.attributes, (p.value as Histogram).count])).toEqual([
      [{ ...common, 'db.operation.name': 'SELECT' }, 2],
      [{ ...common, 'db.operation.name': 'UPDATE', 'error.type': '23505' }, 1],
    ]);
    const select = durations[0]!.value as Histogram;
    expect(select.min).toBeGreaterThanOrEqual(0);
    expect(select.max).toBeLessThan(5);
    expect(select.buckets.boundaries).toEqual([0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10]);

    await a.end('client');
    expect((await points('sluice.sessions.active')).map((p) => p.value)).toEqual([1]);
    await b.end('client');
    await b.end('client');
    expect((await points('sluice.sessions.active')).map((p) => p.value)).toEqual([0]);
  });
});

describe('callerTraceContext and querySummary', () => {
  it('builds a remote parent from a valid traceparent only', async () => {
    const { trace } = await import('@opentelemetry/api');
    const ctx = callerTraceContext(`00-${CALLER_TRACE}-${CALLER_SPAN}-03`, 'a=1');
    expect(trace.getSpanContext(ctx!)).toMatchObject({ traceId: CALLER_TRACE, spanId: CALLER_SPAN, traceFlags: 1, isRemote: true });
    expect(callerTraceContext(undefined)).toBeUndefined();
    expect(callerTraceContext(`ff-${CALLER_TRACE}-${CALLER_SPAN}-01`)).toBeUndefined();
  });

  it('summarizes a statement by its command and at most three tables', () => {
    expect(querySummary(joinOrders)).toBe('SELECT sales.orders customers');
    expect(querySummary(updateAccounts)).toBe('UPDATE accounts');
    expect(querySummary(analysis('SELECT 1', 'f', ['read'], 'SELECT', []))).toBe('SELECT');
    expect(querySummary({ ...analysis('x', 'f', ['unknown'], 'X', undefined), commands: [] })).toBe('UNKNOWN');
    const many = analysis('SELECT ...', 'f', ['read'], 'SELECT', ['a', 'b', 'c', 'd'].map((name) => ({ name, kind: 'table' as const, access: 'read' as const })));
    expect(querySummary(many)).toBe('SELECT a b c');
  });
});
