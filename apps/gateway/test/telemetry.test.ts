/**
 * OpenTelemetry export end to end: the built CLI in front of the real PostgreSQL, exporting
 * OTLP/HTTP JSON to a real receiver; node-postgres as the client. Checks the spans (session,
 * statement, approval wait), their parentage under a caller's traceparent, their attributes,
 * the metrics, and that telemetry off sends nothing at all.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireService } from '@sluice/testkit';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, LOCAL_POSTGRES, psql, startCli, type RunningCli } from './helpers.js';
import {
  METRIC_INTERVAL_MS,
  otlpEnv,
  SPAN_DELAY_MS,
  startOtlpReceiver,
  withoutOtel,
  type OtlpReceiver,
  type ReceivedMetric,
  type ReceivedSpan,
} from './otlp-receiver.js';

const AGENT = { subject: 'etl-agent', token: 'otel-e2e-agent-token-1' } as const;
const APPROVER = { subject: 'olga@example.com', token: 'otel-e2e-approver-token-1' } as const;
const SUFFIX = `${process.pid}_${Date.now().toString(36)}`;
const REVIEW_TABLE = `otel_e2e_review_${SUFFIX}`;
const MISSING_TABLE = `otel_e2e_missing_${SUFFIX}`;
const GUARDED_TABLE = `otel_e2e_guarded_${SUFFIX}`;

/** OTLP span kinds and status codes, as numbers on the wire. */
const SERVER = 2;
const CLIENT = 3;
const INTERNAL = 1;
const ERROR = 2;
const UNSET = 0;

function configText(options: { adminPort: number; telemetry?: string }): string {
  return `listen:
  postgres: 127.0.0.1:0
targets:
  - name: app
    dialect: postgres
    upstream: ${LOCAL_POSTGRES}
identities:
  tokens:
    - subject: ${AGENT.subject}
      kind: agent
      groups: [pipelines]
      token: ${AGENT.token}
    - subject: ${APPROVER.subject}
      kind: human
      groups: [approvers]
      token: ${APPROVER.token}
audit:
  dir: ./audit
approvals:
  dir: ./approvals
  timeoutSeconds: 60
policy:
  rules:
    - name: pipelines-work
      identities: { groups: [pipelines] }
      operations: [read, write, transaction, session-setting]
      effect: allow
    - name: pipelines-schema-review
      identities: { groups: [pipelines] }
      operations: [ddl]
      effect: review
      approvers: { groups: [approvers] }
lineage:
  store: ./lineage.db
${options.telemetry ?? ''}admin: 127.0.0.1:${options.adminPort}
pidFile: ./sluice.pid
log:
  level: info
`;
}

interface Gateway {
  readonly cli: RunningCli;
  readonly dir: string;
  readonly port: number;
  readonly admin: string;
}

async function startGatewayProcess(env: NodeJS.ProcessEnv, telemetry?: string): Promise<Gateway> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-otel-'));
  // `sluice start` prints the gateway's address but not the admin API's: the admin port is picked here.
  const adminPort = await freePort();
  const configFile = join(dir, 'sluice.yaml');
  writeFileSync(configFile, configText({ adminPort, ...(telemetry !== undefined ? { telemetry } : {}) }));
  const cli = startCli(['start', '--config', configFile], withoutOtel(env), dir);
  const out = await cli.waitFor(/sluice: listening on postgres 127\.0\.0\.1:\d+/, 30_000);
  const port = Number(/sluice: listening on postgres 127\.0\.0\.1:(\d+)/.exec(out)![1]);
  return { cli, dir, port, admin: `http://127.0.0.1:${adminPort}` };
}

async function connect(port: number): Promise<pg.Client> {
  const c = new pg.Client({ host: '127.0.0.1', port, database: 'app', user: AGENT.subject, password: AGENT.token });
  c.on('error', () => undefined);
  await c.connect();
  return c;
}

const hex = (bytes: number) => randomBytes(bytes).toString('hex');

/** The statement spans of a session, in the order they started. */
function statementSpans(receiver: OtlpReceiver, sessionId: string): ReceivedSpan[] {
  return receiver
    .spans()
    .filter((s) => s.kind === CLIENT && s.attributes['sluice.session.id'] === sessionId)
    .sort((a, b) => (a.startTimeUnixNano < b.startTimeUnixNano ? -1 : 1));
}

const isSessionSpan = (sessionId: string) => (s: ReceivedSpan) => s.name === 'SESSION app' && s.attributes['sluice.session.id'] === sessionId;

/** The statement span whose normalized text is `text` (optionally of one session). */
const statementWith = (text: string, sessionId?: string) => (s: ReceivedSpan) =>
  s.kind === CLIENT && s.attributes['db.query.text'] === text && (sessionId === undefined || s.attributes['sluice.session.id'] === sessionId);

/** Polls until `check` returns a value (not undefined), or fails with `what` after the deadline. */
async function until<T>(check: () => T | undefined | Promise<T | undefined>, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const METRICS = {
  statements: 'sluice.statements',
  sessions: 'sluice.sessions.active',
  durations: 'db.client.operation.duration',
  waits: 'sluice.approval.wait.duration',
} as const;

/**
 * The gateway's metrics in the first export collected after `afterNs` (gateway clock, as span
 * times); a metric with nothing recorded yet is there with no data points.
 */
async function metricsAfter(receiver: OtlpReceiver, afterNs: bigint): Promise<Record<keyof typeof METRICS, ReceivedMetric>> {
  const anchor = await receiver.waitForMetric(
    (m) => m.name === METRICS.statements && m.dataPoints.length > 0 && m.dataPoints.every((p) => p.timeUnixNano > afterNs),
    10_000,
    `${METRICS.statements} collected after ${afterNs}`,
  );
  const sameExport = receiver.metrics().filter((m) => m.export === anchor.export);
  const out: Partial<Record<keyof typeof METRICS, ReceivedMetric>> = {};
  for (const [key, name] of Object.entries(METRICS) as [keyof typeof METRICS, string][]) {
    out[key] = sameExport.find((m) => m.name === name) ?? { name, unit: '', description: '', type: 'unknown', dataPoints: [], resource: anchor.resource, scope: anchor.scope, export: anchor.export };
  }
  return out as Record<keyof typeof METRICS, ReceivedMetric>;
}

/** A data point's value or count (0 when the metric has no point with these attributes, exactly). */
function pointOf(metric: ReceivedMetric, attributes: Record<string, unknown>, field: 'value' | 'count'): number {
  const keys = Object.keys(attributes);
  const point = metric.dataPoints.find(
    (p) => Object.keys(p.attributes).length === keys.length && keys.every((k) => p.attributes[k] === attributes[k]),
  );
  return point?.[field] ?? 0;
}

interface ApprovalView {
  readonly id: string;
  readonly status: string;
  readonly statement: string;
  readonly requester: { readonly subject: string };
}

const approverHeaders = { authorization: `Bearer ${APPROVER.token}`, 'content-type': 'application/json' };

/** The pending review request of a statement naming `table`, as the approver lists it on the admin API. */
function pendingRequest(admin: string, table: string): Promise<ApprovalView> {
  return until(
    async () => {
      const r = await fetch(`${admin}/v1/approvals`, { headers: approverHeaders });
      if (r.status !== 200) throw new Error(`GET /v1/approvals answered ${r.status}: ${await r.text()}`);
      const body = (await r.json()) as { approvals: ApprovalView[] };
      const named = new RegExp(`\\b${table}\\b`);
      return body.approvals.find((a) => named.test(a.statement) && a.status === 'pending');
    },
    15_000,
    `the review request for ${table}`,
  );
}

function decide(admin: string, id: string, action: 'approve' | 'reject'): Promise<Response> {
  return fetch(`${admin}/v1/approvals/${id}/${action}`, { method: 'POST', headers: approverHeaders, body: JSON.stringify({ reason: 'end-to-end test' }) });
}

describe('OpenTelemetry export of the gateway (real PostgreSQL, OTLP/HTTP JSON to a real receiver)', () => {
  let available = false;
  let receiver: OtlpReceiver;
  let gw: Gateway;

  beforeAll(async () => {
    available = await requireService('PostgreSQL', '127.0.0.1', 5432);
    if (!available) return;
    psql(LOCAL_POSTGRES, `DROP TABLE IF EXISTS ${REVIEW_TABLE}, ${REVIEW_TABLE}_rejected, ${GUARDED_TABLE}; CREATE TABLE ${GUARDED_TABLE} (id int)`);
    receiver = await startOtlpReceiver();
    gw = await startGatewayProcess(otlpEnv(receiver, 'sluice-e2e'));
  });

  afterAll(async () => {
    if (!available) return;
    await gw?.cli.stop();
    await receiver?.close();
    psql(LOCAL_POSTGRES, `DROP TABLE IF EXISTS ${REVIEW_TABLE}, ${REVIEW_TABLE}_rejected, ${GUARDED_TABLE}`);
    if (gw) rmSync(gw.dir, { recursive: true, force: true });
  });

  const live = (name: string, body: () => Promise<void>, timeoutMs?: number) =>
    it(
      name,
      async () => {
        if (!available) return;
        await body();
      },
      timeoutMs,
    );

  live('says it is on, with the endpoint and protocol, and sends OTLP JSON with hex ids', async () => {
    expect(gw.cli.output()).toMatch(new RegExp(`"endpoint":"${receiver.url.replace(/[.]/g, '\\.')}","protocol":"http/json".*"msg":"OpenTelemetry traces and metrics are on"`));
    const c = await connect(gw.port);
    await c.query('SELECT 1 AS otel_warmup');
    await c.end();
    await receiver.waitForSpan(statementWith('select ? as otel_warmup'), 10_000, 'the warm-up statement span');
    const traces = receiver.requests().filter((r) => r.path === '/v1/traces');
    expect(traces.length).toBeGreaterThan(0);
    for (const r of traces) expect(r).toMatchObject({ method: 'POST', status: 200, contentType: expect.stringMatching(/^application\/json/) });
    expect(receiver.requests().filter((r) => r.status !== 200)).toEqual([]);
    expect(new Set(receiver.spans().map((s) => s.idEncoding))).toEqual(new Set(['hex']));
  });

  live("(a) a statement with a traceparent comment is a child of the caller's span, links to its session, and carries the conventions' attributes", async () => {
    const traceId = hex(16);
    const callerSpan = hex(8);
    const c = await connect(gw.port);
    const r = await c.query(`SELECT 4217 AS otel_answer_a /*traceparent='00-${traceId}-${callerSpan}-01',job='nightly-load',run='7'*/`);
    expect(r.rows).toEqual([{ otel_answer_a: 4217 }]);
    await c.end();

    const span = await receiver.waitForSpan((s) => s.kind === CLIENT && s.traceId === traceId, 10_000, 'the statement span in the caller trace');
    expect(span.parentSpanId).toBe(callerSpan);
    expect(span.name).toBe('SELECT');
    expect(span.status.code).toBe(UNSET);
    expect(span.resource['service.name']).toBe('sluice-e2e');
    expect(span.scope.name).toBe('sluice');
    const text = span.attributes['db.query.text'];
    expect(text).toBe('select ? as otel_answer_a');
    expect(String(text)).not.toContain('4217');
    expect(String(text)).not.toContain(traceId);
    expect(span.attributes).toMatchObject({
      'db.system.name': 'postgresql',
      'db.namespace': 'test',
      'db.operation.name': 'SELECT',
      'db.query.summary': 'SELECT',
      'server.address': '127.0.0.1',
      'server.port': 5432,
      'enduser.id': AGENT.subject,
      'sluice.target': 'app',
      'sluice.decision': 'allow',
      'sluice.rule': 'pipelines-work',
      'sluice.job': 'nightly-load',
      'sluice.run': '7',
      'sluice.masked_columns': 0,
      'db.response.returned_rows': 1,
    });
    expect(span.attributes).not.toHaveProperty('db.response.status_code');
    expect(span.attributes).not.toHaveProperty('db.collection.name');
    expect(span.attributes).not.toHaveProperty('sluice.outcome');

    const sessionId = String(span.attributes['sluice.session.id']);
    const session = await receiver.waitForSpan(isSessionSpan(sessionId), 10_000, 'the session span');
    expect(session.traceId).not.toBe(traceId);
    expect(span.links).toEqual([{ traceId: session.traceId, spanId: session.spanId, attributes: {} }]);
    expect(session.resource['service.name']).toBe('sluice-e2e');
  });

  live('(b) a statement without a comment is a child of its session span, also after a statement with one', async () => {
    const c = await connect(gw.port);
    await c.query('SELECT 1 AS otel_plain_b1');
    await c.query(`SELECT 2 AS otel_commented_b /*traceparent='00-${hex(16)}-${hex(8)}-01'*/`);
    await c.query('SELECT 3 AS otel_plain_b2');
    await c.end();

    const first = await receiver.waitForSpan(statementWith('select ? as otel_plain_b1'), 10_000, 'the first plain statement span');
    const sessionId = String(first.attributes['sluice.session.id']);
    const session = await receiver.waitForSpan(isSessionSpan(sessionId), 10_000, 'the session span');
    const second = await receiver.waitForSpan(statementWith('select ? as otel_plain_b2', sessionId), 10_000, 'the second plain statement span');
    for (const span of [first, second]) {
      expect(span.traceId).toBe(session.traceId);
      expect(span.parentSpanId).toBe(session.spanId);
      expect(span.links).toEqual([]);
      expect(span.attributes).not.toHaveProperty('sluice.job');
    }
    const commented = await receiver.waitForSpan(statementWith('select ? as otel_commented_b', sessionId), 10_000, 'the commented statement span');
    expect(commented.traceId).not.toBe(session.traceId);
    expect(statementSpans(receiver, sessionId).map((s) => s.attributes['db.query.text'])).toEqual([
      'select ? as otel_plain_b1',
      'select ? as otel_commented_b',
      'select ? as otel_plain_b2',
    ]);
  });

  live('(c) a session is a SERVER span "SESSION app" that ends when the client disconnects', async () => {
    const c = await connect(gw.port);
    await c.query('SELECT 1 AS otel_session_c');
    const statement = await receiver.waitForSpan(statementWith('select ? as otel_session_c'), 10_000, 'the statement span');
    const sessionId = String(statement.attributes['sluice.session.id']);
    // The statement's batch went out; three more batch periods go by with the client connected.
    await new Promise((r) => setTimeout(r, 3 * SPAN_DELAY_MS + 50));
    expect(receiver.spans().filter(isSessionSpan(sessionId))).toEqual([]);
    const disconnectedAt = process.hrtime.bigint();
    await c.end();
    const session = await receiver.waitForSpan(isSessionSpan(sessionId), 10_000, 'the session span after the disconnect');
    const received = process.hrtime.bigint();
    expect(session.kind).toBe(SERVER);
    expect(session.parentSpanId).toBeUndefined();
    expect(session.status.code).toBe(UNSET);
    expect(session.endTimeUnixNano).toBeGreaterThan(statement.endTimeUnixNano);
    expect(session.startTimeUnixNano).toBeLessThanOrEqual(statement.startTimeUnixNano);
    // It ended after the client left (within the time it took to arrive).
    expect(received - disconnectedAt).toBeLessThan(5_000_000_000n);
    expect(session.attributes).toMatchObject({
      'db.system.name': 'postgresql',
      'db.namespace': 'test',
      'server.address': '127.0.0.1',
      'server.port': 5432,
      'enduser.id': AGENT.subject,
      'sluice.identity.kind': 'agent',
      'sluice.target': 'app',
      'client.address': '127.0.0.1',
      'sluice.session.end': 'client',
      'sluice.statements': 1,
    });
  });

  live('(d) a statement the guardrail blocks is an ERROR span with decision deny', async () => {
    const c = await connect(gw.port);
    await expect(c.query(`DROP TABLE ${GUARDED_TABLE}`)).rejects.toMatchObject({ code: '42501', message: expect.stringContaining('blocked by guardrail "drop-table"') });
    await c.end();
    const span = await receiver.waitForSpan(statementWith(`drop table ${GUARDED_TABLE}`), 10_000, 'the denied statement span');
    expect(span.name).toBe(`DROP ${GUARDED_TABLE}`);
    expect(span.status).toEqual({ code: ERROR, message: 'denied by rule "guardrail:drop-table"' });
    expect(span.attributes).toMatchObject({
      'sluice.decision': 'deny',
      'sluice.rule': 'guardrail:drop-table',
      'sluice.outcome': 'not-executed',
      'error.type': 'denied',
      'db.operation.name': 'DROP',
      'db.query.summary': `DROP ${GUARDED_TABLE}`,
      'db.collection.name': GUARDED_TABLE,
    });
    expect(span.attributes).not.toHaveProperty('db.response.returned_rows');
    expect(psql(LOCAL_POSTGRES, `SELECT count(*) FROM ${GUARDED_TABLE}`).stdout.trim()).toBe('0');
  });

  live('(e) a database error carries its SQLSTATE', async () => {
    const c = await connect(gw.port);
    await expect(c.query(`SELECT id FROM ${MISSING_TABLE}`)).rejects.toMatchObject({ code: '42P01' });
    await c.end();
    const span = await receiver.waitForSpan(statementWith(`select id from ${MISSING_TABLE}`), 10_000, 'the failed statement span');
    expect(span.name).toBe(`SELECT ${MISSING_TABLE}`);
    expect(span.status).toEqual({ code: ERROR, message: 'database error 42P01' });
    expect(span.attributes).toMatchObject({
      'db.response.status_code': '42P01',
      'error.type': '42P01',
      'sluice.decision': 'allow',
      'sluice.outcome': 'error',
      'db.collection.name': MISSING_TABLE,
    });
  });

  live('(f) a statement held for review has a sluice.approval.wait span under it, approved through the admin API', async () => {
    const c = await connect(gw.port);
    const held = c.query(`CREATE TABLE ${REVIEW_TABLE} (id int)`);
    const request = await pendingRequest(gw.admin, REVIEW_TABLE);
    expect(request.requester.subject).toBe(AGENT.subject);
    const approved = await decide(gw.admin, request.id, 'approve');
    expect(approved.status).toBe(200);
    await held;
    await c.end();
    expect(psql(LOCAL_POSTGRES, `SELECT count(*) FROM ${REVIEW_TABLE}`).stdout.trim()).toBe('0');

    const statement = await receiver.waitForSpan(statementWith(`create table ${REVIEW_TABLE}(id int)`), 10_000, 'the reviewed statement span');
    const wait = await receiver.waitForSpan((s) => s.name === 'sluice.approval.wait' && s.parentSpanId === statement.spanId, 10_000, 'the approval wait span');
    expect(wait.traceId).toBe(statement.traceId);
    expect(wait.kind).toBe(INTERNAL);
    expect(wait.status.code).toBe(UNSET);
    expect(wait.attributes).toEqual({ 'sluice.approval.id': request.id, 'sluice.approval.outcome': 'approved' });
    expect(wait.startTimeUnixNano).toBeGreaterThanOrEqual(statement.startTimeUnixNano);
    expect(wait.endTimeUnixNano).toBeLessThanOrEqual(statement.endTimeUnixNano);
    expect(statement.attributes).toMatchObject({
      'sluice.decision': 'review',
      'sluice.rule': 'pipelines-schema-review',
      'sluice.approval.id': request.id,
      'db.operation.name': 'CREATE',
      'db.query.summary': `CREATE ${REVIEW_TABLE}`,
      'db.collection.name': REVIEW_TABLE,
    });
    expect(statement.status.code).toBe(UNSET);
  });

  live('(g) metrics: statements by decision, open sessions, operation durations and approval waits reach /v1/metrics', async () => {
    const app = { 'db.system.name': 'postgresql', 'sluice.target': 'app' };
    const c = await connect(gw.port);
    await c.query('SELECT 1 AS otel_metrics_before');
    const before = await receiver.waitForSpan(statementWith('select ? as otel_metrics_before'), 10_000, 'the first marker span');
    // Exports collected after the marker ended count everything that happened before it.
    const base = await metricsAfter(receiver, before.endTimeUnixNano);

    await c.query('SELECT 1 AS otel_metrics_one');
    await c.query('SELECT 2 AS otel_metrics_two');
    await expect(c.query(`SELECT id FROM ${MISSING_TABLE}`)).rejects.toMatchObject({ code: '42P01' });
    await expect(c.query(`DROP TABLE ${GUARDED_TABLE}`)).rejects.toMatchObject({ code: '42501' });
    const table = `${REVIEW_TABLE}_rejected`;
    const held = c.query(`CREATE TABLE ${table} (id int)`);
    held.catch(() => undefined);
    const request = await pendingRequest(gw.admin, table);
    expect((await decide(gw.admin, request.id, 'reject')).status).toBe(200);
    await expect(held).rejects.toMatchObject({ message: expect.stringContaining('rejected') });
    expect(psql(LOCAL_POSTGRES, `SELECT to_regclass('${table}') IS NULL`).stdout.trim()).toBe('t');
    await c.query('SELECT 1 AS otel_metrics_after');
    const after = await receiver.waitForSpan(statementWith('select ? as otel_metrics_after'), 10_000, 'the second marker span');
    const now = await metricsAfter(receiver, after.endTimeUnixNano);

    const delta = (name: keyof typeof now, attributes: Record<string, unknown>, field: 'value' | 'count') =>
      pointOf(now[name], attributes, field) - pointOf(base[name], attributes, field);
    expect(now.statements).toMatchObject({ type: 'sum', isMonotonic: true, aggregationTemporality: 2, unit: '' });
    expect(now.statements.resource['service.name']).toBe('sluice-e2e');
    expect(now.statements.scope.name).toBe('sluice');
    // Two SELECTs, the failed one and the marker; the DROP; the rejected CREATE.
    expect(delta('statements', { ...app, 'sluice.decision': 'allow' }, 'value')).toBe(4);
    expect(delta('statements', { ...app, 'sluice.decision': 'deny' }, 'value')).toBe(1);
    expect(delta('statements', { ...app, 'sluice.decision': 'review' }, 'value')).toBe(1);
    expect(new Set(now.statements.dataPoints.map((p) => p.attributes['sluice.decision']))).toEqual(new Set(['allow', 'deny', 'review']));

    expect(now.sessions).toMatchObject({ type: 'sum', isMonotonic: false, aggregationTemporality: 2 });
    expect(pointOf(now.sessions, app, 'value')).toBe(1);

    expect(now.durations).toMatchObject({ type: 'histogram', unit: 's', aggregationTemporality: 2 });
    const ok = now.durations.dataPoints.find((p) => p.attributes['db.operation.name'] === 'SELECT' && p.attributes['error.type'] === undefined);
    expect(ok?.explicitBounds).toEqual([0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10]);
    expect(delta('durations', { ...app, 'db.operation.name': 'SELECT' }, 'count')).toBe(3);
    expect(delta('durations', { ...app, 'db.operation.name': 'SELECT', 'error.type': '42P01' }, 'count')).toBe(1);
    // Neither the denied nor the rejected statement reached the database.
    expect(now.durations.dataPoints.filter((p) => p.attributes['db.operation.name'] === 'DROP')).toEqual([]);
    expect(delta('durations', { ...app, 'db.operation.name': 'CREATE' }, 'count')).toBe(0);

    expect(now.waits).toMatchObject({ type: 'histogram', unit: 's' });
    expect(delta('waits', { ...app, 'sluice.approval.outcome': 'rejected' }, 'count')).toBe(1);
    const rejected = await receiver.waitForSpan(statementWith(`create table ${table}(id int)`), 10_000, 'the rejected statement span');
    const wait = await receiver.waitForSpan((s) => s.name === 'sluice.approval.wait' && s.parentSpanId === rejected.spanId, 10_000, 'its approval wait span');
    expect(wait.status).toEqual({ code: ERROR, message: 'approval rejected' });
    expect(wait.attributes['sluice.approval.outcome']).toBe('rejected');

    await c.end();
    const session = await receiver.waitForSpan(isSessionSpan(String(after.attributes['sluice.session.id'])), 10_000, 'the session span');
    const closed = await metricsAfter(receiver, session.endTimeUnixNano);
    expect(pointOf(closed.sessions, app, 'value')).toBe(0);
    expect(receiver.requests().filter((r) => r.path === '/v1/metrics').every((r) => r.status === 200)).toBe(true);
  });

  live('stops on SIGTERM with exit 0, ending open sessions and exporting what is pending', async () => {
    const c = await connect(gw.port);
    await c.query('SELECT 1 AS otel_last');
    const statement = await receiver.waitForSpan(statementWith('select ? as otel_last'), 10_000, 'the last statement span');
    const sessionId = String(statement.attributes['sluice.session.id']);
    expect(await gw.cli.stop('SIGTERM')).toBe(0);
    await c.end().catch(() => undefined);
    const session = receiver.spans().find(isSessionSpan(sessionId));
    expect(session?.attributes['sluice.session.end']).toBe('shutdown');
    expect(session?.status).toEqual({ code: ERROR, message: 'session ended: shutdown' });
  });
});

describe('OpenTelemetry off costs nothing: nothing reaches a receiver', () => {
  let available = false;
  beforeAll(async () => {
    available = await requireService('PostgreSQL', '127.0.0.1', 5432);
  });

  /** Runs statements through a gateway started with `env`, waits out several export periods, stops it. */
  async function exercise(env: NodeJS.ProcessEnv, telemetry?: string): Promise<string> {
    const gw = await startGatewayProcess(env, telemetry);
    try {
      const c = await connect(gw.port);
      await c.query('SELECT 1 AS otel_off');
      await expect(c.query(`SELECT id FROM ${MISSING_TABLE}`)).rejects.toMatchObject({ code: '42P01' });
      await c.end();
      // Three metric intervals and many span batches go by.
      await new Promise((r) => setTimeout(r, 3 * METRIC_INTERVAL_MS + 100));
    } finally {
      // Stopping flushes an SDK that would be running: after it, anything pending would have been sent.
      expect(await gw.cli.stop('SIGTERM')).toBe(0);
      rmSync(gw.dir, { recursive: true, force: true });
    }
    return gw.cli.output();
  }

  const live = (name: string, body: () => Promise<void>) =>
    it(name, async () => {
      if (!available) return;
      await body();
    });

  live('OTEL_SDK_DISABLED=true with an endpoint set (telemetry auto)', async () => {
    const receiver = await startOtlpReceiver();
    try {
      const out = await exercise({ ...otlpEnv(receiver, 'sluice-e2e'), OTEL_SDK_DISABLED: 'true' });
      expect(receiver.requests()).toEqual([]);
      expect(out).not.toContain('OpenTelemetry traces and metrics are on');
    } finally {
      await receiver.close();
    }
  });

  live('OTEL_SDK_DISABLED=true wins over telemetry.enabled: true', async () => {
    const receiver = await startOtlpReceiver();
    try {
      const out = await exercise({ ...otlpEnv(receiver, 'sluice-e2e'), OTEL_SDK_DISABLED: 'TRUE' }, 'telemetry:\n  enabled: true\n');
      expect(receiver.requests()).toEqual([]);
      expect(out).not.toContain('OpenTelemetry traces and metrics are on');
    } finally {
      await receiver.close();
    }
  });

  live('no OTEL_* variable at all, telemetry auto: nothing at the default endpoint either', async () => {
    // The SDK's default endpoint is http://localhost:4318: listen there (both loopbacks) when free.
    const defaults: OtlpReceiver[] = [];
    for (const host of ['127.0.0.1', '::1']) {
      try {
        defaults.push(await startOtlpReceiver({ host, port: 4318 }));
      } catch (err) {
        process.stderr.write(`note: cannot listen on [${host}]:4318 (${(err as NodeJS.ErrnoException).code}); only the log is checked there\n`);
      }
    }
    try {
      const out = await exercise({});
      for (const r of defaults) expect(r.requests()).toEqual([]);
      expect(out).not.toContain('OpenTelemetry');
    } finally {
      for (const r of defaults) await r.close();
    }
  });
});
