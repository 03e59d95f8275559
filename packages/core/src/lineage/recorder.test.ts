import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { Analysis, ColumnFlow, ColumnSource, OperationClass } from '../analysis/types.js';
import { FileAuditStore } from '../audit/file-store.js';
import type { Identity } from '../identity/types.js';
import { MemoryFailureLimiter } from '../identity/memory-failure-limiter.js';
import { TokenAuthenticator } from '../identity/token-authenticator.js';
import { policySchema } from '../policy/config.js';
import { Policy } from '../policy/engine.js';
import { Governor, type GovernedSession, type SessionStart, type StatementOutcome } from '../session/governor.js';
import { useTempDir } from '../test-support/temp-dir.js';
import { datasetNaming, runIdFor } from './naming.js';
import { LineageRecorder, type LineageRecorderOptions } from './recorder.js';
import type {
  ColumnReport,
  IdentityReport,
  LineageObservation,
  LineageStore,
  RunEvent,
  RunEventSink,
  TableReport,
} from './types.js';

const logger = pino({ level: 'silent' });
const dir = useTempDir('sluice-lineage-');

/** Records the batches it is given; rejects while `failing` is set. */
class RecordingStore implements LineageStore {
  readonly batches: LineageObservation[][] = [];
  attempts = 0;
  failing = false;
  async record(observations: readonly LineageObservation[]): Promise<void> {
    this.attempts++;
    if (this.failing) throw new Error('disk full');
    this.batches.push([...observations]);
  }
  get all(): LineageObservation[] {
    return this.batches.flat();
  }
  column(): Promise<ColumnReport> {
    throw new Error('not used');
  }
  table(): Promise<TableReport> {
    throw new Error('not used');
  }
  identity(): Promise<IdentityReport> {
    throw new Error('not used');
  }
  async prune(): Promise<number> {
    return 0;
  }
  async close(): Promise<void> {}
}

class CollectingSink implements RunEventSink {
  readonly events: RunEvent[] = [];
  flushes = 0;
  emit(event: RunEvent): void {
    this.events.push(event);
  }
  async flush(): Promise<void> {
    this.flushes++;
  }
  async close(): Promise<void> {}
  take(): RunEvent[] {
    return this.events.splice(0);
  }
}

const ann: Identity = { subject: 'ann', kind: 'human', groups: ['analysts'], method: 'token' };
const bob: Identity = { subject: 'bob', kind: 'service', groups: ['etl'], method: 'oidc' };

const PG_NS = 'postgres://db.internal:5432';
const MY_NS = 'mysql://10.0.0.5:3306';
const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const TP = `00-${TRACE_ID}-00f067aa0ba902b7-01`;

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

let gateways = 0;
async function gateway(options: Partial<LineageRecorderOptions> = {}) {
  const store = new RecordingStore();
  const sink = new CollectingSink();
  let clock = 1_000;
  const advance = (ms: number): void => {
    clock += ms;
  };
  const audit = await FileAuditStore.open({ dir: join(dir(), `audit-${gateways++}`), groupCommitMs: 5, logger });
  const recorder = new LineageRecorder({ logger, store, sink, flushIntervalMs: 3_600_000, now: () => clock++, ...options });
  const governor = new Governor({
    authenticator: new TokenAuthenticator([]),
    audit,
    failureLimiter: new MemoryFailureLimiter({ maxAttempts: 5, windowSeconds: 60, lockoutSeconds: 60 }),
    logger,
    policy: new Policy(
      policySchema.parse({
        rules: [
          { name: 'everyone', effect: 'allow' },
          { name: 'no-secrets', effect: 'deny', objects: ['secrets'] },
        ],
      }),
      { approvers: { groups: ['dba'], subjects: [] } },
    ),
    observers: [recorder],
  });
  cleanups.push(async () => {
    await recorder.close();
    await audit.close();
  });
  return { governor, recorder, store, sink, advance };
}

function pg(extra: Partial<SessionStart> = {}): SessionStart {
  return {
    dialect: 'postgres',
    identity: ann,
    username: 'ann',
    target: 'app',
    sourceAddress: '10.1.1.1',
    tls: true,
    database: 'app',
    server: { address: 'db.internal', port: 5432 },
    ...extra,
  };
}

function mysql(extra: Partial<SessionStart> = {}): SessionStart {
  return { ...pg(), dialect: 'mysql', target: 'shop', database: 'shop', server: { address: '10.0.0.5', port: 3306 }, ...extra };
}

async function exec(session: GovernedSession, analysis: Analysis, outcome: StatementOutcome = { outcome: 'ok', rows: 1 }, text?: string): Promise<void> {
  const request = session.beginRequest({ analysis, protocol: 'simple', ...(text !== undefined ? { text } : {}) });
  await request.ready;
  for (const h of request.handles) h.complete(outcome);
}

const src = (table: string, column: string, schema?: string): ColumnSource => ({ ...(schema !== undefined ? { schema } : {}), table, column });
const flow = (source: ColumnSource, type: ColumnFlow['type'], subtype: ColumnFlow['subtype']): ColumnFlow => ({ source, type, subtype });

function base(normalized: string, fingerprint: string, operations: OperationClass[], command: string): Pick<Analysis, 'normalized' | 'fingerprint' | 'operations' | 'statementCount' | 'commands'> {
  return { normalized, fingerprint, operations, statementCount: 1, commands: [command] };
}

/** `SELECT id, email, CASE WHEN region = ? THEN spend END AS tier FROM customers WHERE active` with classified flows. */
const readCustomers: Analysis = {
  ...base('SELECT id, email, CASE WHEN region = ? THEN spend END AS tier FROM customers WHERE active', 'fp-read', ['read'], 'SELECT'),
  objects: [{ name: 'customers', kind: 'table', access: 'read', columns: ['id', 'email', 'region', 'spend', 'active'] }],
  lineage: {
    columns: [
      { name: 'id', sources: [src('customers', 'id')], direct: true, functions: [], flows: [flow(src('customers', 'id'), 'DIRECT', 'IDENTITY')] },
      { name: 'email', sources: [src('customers', 'email')], direct: true, functions: [], flows: [flow(src('customers', 'email'), 'DIRECT', 'IDENTITY')] },
      {
        name: 'tier',
        sources: [src('customers', 'spend'), src('customers', 'region')],
        direct: false,
        functions: [],
        flows: [flow(src('customers', 'spend'), 'DIRECT', 'TRANSFORMATION'), flow(src('customers', 'region'), 'INDIRECT', 'CONDITIONAL')],
      },
    ],
    all: [src('customers', 'id'), src('customers', 'email'), src('customers', 'spend'), src('customers', 'region')],
    predicates: [src('customers', 'active')],
    functions: [],
    indirect: [flow(src('customers', 'active'), 'INDIRECT', 'FILTER')],
  },
};

/** An analysis whose lineage is not classified: flows come from `direct` and `predicates`. */
const readOrders: Analysis = {
  ...base('SELECT o.total, lower(c.name) FROM sales.orders o JOIN customers c ON c.id = o.customer_id', 'fp-orders', ['read'], 'SELECT'),
  objects: [
    { schema: 'sales', name: 'orders', kind: 'table', access: 'read' },
    { name: 'customers', kind: 'table', access: 'read' },
  ],
  lineage: {
    columns: [
      { name: 'total', sources: [src('orders', 'total', 'sales')], direct: true, functions: [] },
      { name: 'lower', sources: [src('customers', 'name')], direct: false, functions: ['lower'] },
    ],
    all: [src('orders', 'total', 'sales'), src('customers', 'name')],
    predicates: [src('customers', 'id'), src('orders', 'customer_id', 'sales')],
    functions: ['lower'],
  },
};

/** `INSERT INTO analytics.summary (email, total) SELECT c.email, sum(o.amount) FROM ... GROUP BY c.email`. */
const writeSummary: Analysis = {
  ...base('INSERT INTO analytics.summary (email, total) SELECT c.email, sum(o.amount) FROM customers c JOIN orders o ON o.cid = c.id GROUP BY c.email', 'fp-write', ['write'], 'INSERT'),
  objects: [
    { schema: 'analytics', name: 'summary', kind: 'table', access: 'write', columns: ['email', 'total'] },
    { name: 'customers', kind: 'table', access: 'read' },
    { name: 'orders', kind: 'table', access: 'read' },
  ],
  writes: [
    {
      schema: 'analytics',
      table: 'summary',
      columns: [
        { name: 'email', flows: [flow(src('customers', 'email'), 'DIRECT', 'IDENTITY')] },
        { name: 'total', flows: [flow(src('orders', 'amount'), 'DIRECT', 'AGGREGATION')] },
      ],
      all: [src('customers', 'email'), src('orders', 'amount')],
      indirect: [flow(src('orders', 'cid'), 'INDIRECT', 'JOIN'), flow(src('customers', 'email'), 'INDIRECT', 'GROUP_BY')],
    },
  ],
};

const readSecrets: Analysis = {
  ...base('SELECT * FROM secrets', 'fp-secrets', ['read'], 'SELECT'),
  objects: [{ name: 'secrets', kind: 'table', access: 'read', columns: ['*'] }],
  lineage: { all: [src('secrets', '*')], predicates: [], functions: [] },
};

const selectOne: Analysis = {
  ...base('SELECT ?', 'fp-one', ['read'], 'SELECT'),
  objects: [],
  lineage: { columns: [{ name: '?column?', sources: [], direct: false, functions: [] }], all: [], predicates: [], functions: [] },
};

const readMyOrders: Analysis = {
  ...base('SELECT id, total FROM orders JOIN billing.invoices i ON i.order_id = orders.id', 'fp-my', ['read'], 'SELECT'),
  objects: [
    { name: 'orders', kind: 'table', access: 'read' },
    { schema: 'billing', name: 'invoices', kind: 'table', access: 'read' },
  ],
  lineage: {
    columns: [
      { name: 'id', sources: [src('orders', 'id')], direct: true, functions: [] },
      { name: 'total', sources: [src('orders', 'total')], direct: true, functions: [] },
    ],
    all: [src('orders', 'id'), src('orders', 'total')],
    predicates: [src('invoices', 'order_id', 'billing'), src('orders', 'id')],
    functions: [],
  },
};

const pgField = (name: string, field: string) => ({ namespace: PG_NS, name, field });

describe('LineageRecorder: observations', () => {
  it('records a read: inputs, result fields with their flows, indirect flows, masking per column', async () => {
    const { governor, recorder, store } = await gateway();
    const session = await governor.openSession(pg());
    await exec(session, readCustomers, { outcome: 'ok', rows: 3, command: 'SELECT 3', masked: [{ column: 'email', by: 'pii' }, { column: 'tier', by: 'detector:number' }] });
    await recorder.flush();
    expect(store.batches).toHaveLength(1);
    const [o] = store.batches[0]!;
    expect(o).toEqual({
      firstSeen: 1_000,
      lastSeen: 1_000,
      count: 1,
      actor: { subject: 'ann', kind: 'human', groups: ['analysts'], method: 'token' },
      job: { namespace: 'sluice', name: 'ann' },
      run: { id: session.id },
      sessionId: session.id,
      target: 'app',
      dialect: 'postgres',
      operation: 'SELECT',
      fingerprint: 'fp-read',
      normalized: readCustomers.normalized,
      inputs: [{ namespace: PG_NS, name: 'app.public.customers' }],
      result: [
        { name: 'id', masked: false, flows: [{ from: pgField('app.public.customers', 'id'), type: 'DIRECT', subtype: 'IDENTITY' }] },
        { name: 'email', masked: true, flows: [{ from: pgField('app.public.customers', 'email'), type: 'DIRECT', subtype: 'IDENTITY', masked: true }] },
        {
          name: 'tier',
          masked: true,
          flows: [
            { from: pgField('app.public.customers', 'spend'), type: 'DIRECT', subtype: 'TRANSFORMATION', masked: true },
            { from: pgField('app.public.customers', 'region'), type: 'INDIRECT', subtype: 'CONDITIONAL' },
          ],
        },
      ],
      resultIndirect: [{ from: pgField('app.public.customers', 'active'), type: 'INDIRECT', subtype: 'FILTER' }],
      outputs: [],
    });
    expect(recorder.stats).toMatchObject({ observed: 1, observations: 1, storeErrors: 0 });
  });

  it('derives flows from `direct` and predicates (as FILTER) when the analysis does not classify them', async () => {
    const { governor, recorder, store } = await gateway();
    const session = await governor.openSession(pg());
    await exec(session, readOrders);
    await recorder.flush();
    const [o] = store.all;
    expect(o!.inputs).toEqual([
      { namespace: PG_NS, name: 'app.sales.orders' },
      { namespace: PG_NS, name: 'app.public.customers' },
    ]);
    expect(o!.result).toEqual([
      { name: 'total', masked: false, flows: [{ from: pgField('app.sales.orders', 'total'), type: 'DIRECT', subtype: 'IDENTITY' }] },
      { name: 'lower', masked: false, flows: [{ from: pgField('app.public.customers', 'name'), type: 'DIRECT', subtype: 'TRANSFORMATION' }] },
    ]);
    expect(o!.resultIndirect).toEqual([
      { from: pgField('app.public.customers', 'id'), type: 'INDIRECT', subtype: 'FILTER' },
      { from: pgField('app.sales.orders', 'customer_id'), type: 'INDIRECT', subtype: 'FILTER' },
    ]);
  });

  it('marks every flow of an unknown-position result masked when any column was masked', async () => {
    const { governor, recorder, store } = await gateway();
    const session = await governor.openSession(pg());
    const star: Analysis = {
      ...base('SELECT * FROM customers', 'fp-star', ['read'], 'SELECT'),
      objects: [{ name: 'customers', kind: 'table', access: 'read', columns: ['*'] }],
      lineage: { all: [src('customers', '*')], predicates: [], functions: [] },
    };
    await exec(session, star, { outcome: 'ok', rows: 2, masked: [{ column: 'email', by: 'pii' }] });
    await recorder.flush();
    expect(store.all[0]!.result).toEqual([{ name: '*', masked: true, flows: [{ from: pgField('app.public.customers', '*'), type: 'DIRECT', subtype: 'TRANSFORMATION', masked: true }] }]);
  });

  it('records a write: outputs with column flows and statement-level indirect flows', async () => {
    const { governor, recorder, store } = await gateway();
    const session = await governor.openSession(pg());
    await exec(session, writeSummary, { outcome: 'ok', rows: 12, command: 'INSERT 0 12' });
    await recorder.flush();
    const [o] = store.all;
    expect(o!.operation).toBe('INSERT');
    expect(o!.inputs).toEqual([
      { namespace: PG_NS, name: 'app.public.customers' },
      { namespace: PG_NS, name: 'app.public.orders' },
    ]);
    expect(o!.result).toEqual([]);
    expect(o!.resultIndirect).toEqual([]);
    expect(o!.outputs).toEqual([
      {
        namespace: PG_NS,
        name: 'app.analytics.summary',
        fields: [
          { to: pgField('app.analytics.summary', 'email'), flows: [{ from: pgField('app.public.customers', 'email'), type: 'DIRECT', subtype: 'IDENTITY' }] },
          { to: pgField('app.analytics.summary', 'total'), flows: [{ from: pgField('app.public.orders', 'amount'), type: 'DIRECT', subtype: 'AGGREGATION' }] },
        ],
        indirect: [
          { from: pgField('app.public.orders', 'cid'), type: 'INDIRECT', subtype: 'JOIN' },
          { from: pgField('app.public.customers', 'email'), type: 'INDIRECT', subtype: 'GROUP_BY' },
        ],
      },
    ]);
  });

  it('names MySQL datasets schema.table, unqualified ones in the session database, following a database switch', async () => {
    const { governor, recorder, store, sink } = await gateway();
    const session = await governor.openSession(mysql());
    await exec(session, readMyOrders);
    session.database = 'other';
    await exec(session, readMyOrders);
    await recorder.flush();
    const observations = store.all;
    expect(observations.map((o) => [o.count, o.inputs.map((i) => `${i.namespace} ${i.name}`)])).toEqual([
      [1, [`${MY_NS} shop.orders`, `${MY_NS} billing.invoices`]],
      [1, [`${MY_NS} other.orders`, `${MY_NS} billing.invoices`]],
    ]);
    expect(observations[1]!.result[0]!.flows[0]!.from).toEqual({ namespace: MY_NS, name: 'other.orders', field: 'id' });
    expect(observations[0]!.resultIndirect).toEqual([
      { from: { namespace: MY_NS, name: 'billing.invoices', field: 'order_id' }, type: 'INDIRECT', subtype: 'FILTER' },
      { from: { namespace: MY_NS, name: 'shop.orders', field: 'id' }, type: 'INDIRECT', subtype: 'FILTER' },
    ]);
    // The run's lineage has both databases' tables.
    const [start] = sink.take();
    expect(start!.lineage.inputs).toEqual([
      { namespace: MY_NS, name: 'shop.orders', fields: ['id', 'total'] },
      { namespace: MY_NS, name: 'billing.invoices', fields: ['order_id'] },
      { namespace: MY_NS, name: 'other.orders', fields: ['id', 'total'] },
    ]);
  });

  it('counts a statement shape repeated within a flush interval into one observation', async () => {
    const { governor, recorder, store } = await gateway();
    const session = await governor.openSession(pg());
    for (let i = 0; i < 5; i++) await exec(session, readCustomers, { outcome: 'ok', rows: i });
    // The same shape from a fresh analysis object (a dialect re-analysing the text) counts too.
    await exec(session, { ...readCustomers });
    await recorder.flush();
    expect(store.batches).toHaveLength(1);
    expect(store.all).toHaveLength(1);
    expect(store.all[0]).toMatchObject({ count: 6, firstSeen: 1_000, lastSeen: 1_005 });
    expect(recorder.stats).toMatchObject({ observed: 6, observations: 1 });
    // The next interval starts a new observation.
    await exec(session, readCustomers);
    await recorder.flush();
    expect(store.batches.map((b) => b.map((o) => o.count))).toEqual([[6], [1]]);
  });

  it('keeps statements masked differently in separate observations', async () => {
    const { governor, recorder, store } = await gateway();
    const session = await governor.openSession(pg());
    await exec(session, readCustomers, { outcome: 'ok', rows: 1 });
    await exec(session, readCustomers, { outcome: 'ok', rows: 1, masked: [{ column: 'email', by: 'pii' }] });
    await exec(session, readCustomers, { outcome: 'ok', rows: 1, masked: [] });
    await exec(session, readCustomers, { outcome: 'ok', rows: 1, masked: [{ column: 'email', by: 'pii' }] });
    await recorder.flush();
    expect(store.all.map((o) => [o.count, o.result.map((r) => r.masked)])).toEqual([
      [2, [false, false, false]],
      [2, [false, true, false]],
    ]);
  });

  it('records nothing for denied, failed, cancelled or not-executed statements', async () => {
    const { governor, recorder, store, sink } = await gateway();
    const session = await governor.openSession(pg());
    expect(() => session.beginRequest({ analysis: readSecrets, protocol: 'simple' })).toThrow(/denied|no-secrets/);
    await exec(session, readCustomers, { outcome: 'error', errorCode: '42501' });
    await exec(session, readCustomers, { outcome: 'cancelled' });
    await exec(session, readCustomers, { outcome: 'not-executed' });
    await exec(session, readCustomers, { outcome: 'aborted' });
    await recorder.flush();
    await session.end('client');
    expect(store.attempts).toBe(0);
    expect(sink.events).toEqual([]);
    expect(recorder.stats.observed).toBe(0);
  });

  it('records nothing for statements that touch no table', async () => {
    const { governor, recorder, store, sink } = await gateway();
    const session = await governor.openSession(pg());
    await exec(session, selectOne);
    await exec(session, { ...base('BEGIN', 'fp-begin', ['transaction'], 'BEGIN'), objects: [] });
    await recorder.flush();
    await session.end('client');
    expect(store.attempts).toBe(0);
    expect(sink.events).toEqual([]);
  });

  it('records the caller trace id of the statement', async () => {
    const { governor, recorder, store } = await gateway();
    const session = await governor.openSession(pg());
    await exec(session, readCustomers, { outcome: 'ok' }, `SELECT id, email FROM customers /*traceparent='${TP}'*/`);
    await recorder.flush();
    expect(store.all[0]!.traceId).toBe(TRACE_ID);
  });

  it('keeps the observations a failed store write left and writes them at the next flush', async () => {
    const { governor, recorder, store } = await gateway();
    const session = await governor.openSession(pg());
    store.failing = true;
    await exec(session, readCustomers);
    await exec(session, readCustomers);
    await recorder.flush();
    expect(store.attempts).toBe(1);
    expect(store.batches).toEqual([]);
    expect(recorder.stats).toMatchObject({ storeErrors: 1, observations: 0, dropped: 0 });
    store.failing = false;
    await exec(session, writeSummary);
    await recorder.flush();
    expect(store.attempts).toBe(2);
    expect(store.batches.map((b) => b.map((o) => `${o.fingerprint}x${o.count}`))).toEqual([['fp-readx2', 'fp-writex1']]);
    expect(recorder.stats).toMatchObject({ storeErrors: 1, observations: 2 });
  });

  it('writes what is pending on close and flushes the event sink', async () => {
    const { governor, recorder, store, sink } = await gateway();
    const session = await governor.openSession(pg());
    await exec(session, readCustomers);
    await recorder.close();
    expect(store.all.map((o) => o.fingerprint)).toEqual(['fp-read']);
    expect(sink.flushes).toBe(1);
    await recorder.close();
    expect(sink.flushes).toBe(1);
  });
});

describe('LineageRecorder: runs', () => {
  it('puts statements without a run key in the session run and reports START, RUNNING and COMPLETE', async () => {
    const { governor, recorder, store, sink } = await gateway();
    const session = await governor.openSession(pg({ application: 'reporting' }));
    await recorder.flush();
    expect(sink.take()).toEqual([]);
    await exec(session, readCustomers, { outcome: 'ok', rows: 1, masked: [{ column: 'email', by: 'pii' }] });
    await recorder.flush();
    const [start, ...rest] = sink.take();
    expect(rest).toEqual([]);
    expect(start).toEqual({
      eventType: 'START',
      eventTime: expect.any(Number),
      lineage: {
        run: { id: session.id },
        job: { namespace: 'sluice', name: 'reporting' },
        actor: { subject: 'ann', kind: 'human', groups: ['analysts'], method: 'token' },
        sessionIds: [session.id],
        target: 'app',
        dialect: 'postgres',
        inputs: [{ namespace: PG_NS, name: 'app.public.customers', fields: ['id', 'email', 'region', 'spend', 'active'] }],
        outputs: [
          {
            namespace: 'sluice',
            name: 'results.fp-read',
            query: readCustomers.normalized,
            fields: {
              id: [{ from: pgField('app.public.customers', 'id'), type: 'DIRECT', subtype: 'IDENTITY' }],
              email: [{ from: pgField('app.public.customers', 'email'), type: 'DIRECT', subtype: 'IDENTITY', masked: true }],
              tier: [
                { from: pgField('app.public.customers', 'spend'), type: 'DIRECT', subtype: 'TRANSFORMATION' },
                { from: pgField('app.public.customers', 'region'), type: 'INDIRECT', subtype: 'CONDITIONAL' },
              ],
            },
            indirect: [{ from: pgField('app.public.customers', 'active'), type: 'INDIRECT', subtype: 'FILTER' }],
          },
        ],
      },
    });
    expect(store.all[0]!.job).toEqual({ namespace: 'sluice', name: 'reporting' });

    // The same shape again is no new lineage: no event.
    await exec(session, readCustomers, { outcome: 'ok', rows: 1, masked: [{ column: 'email', by: 'pii' }] });
    await recorder.flush();
    expect(sink.take()).toEqual([]);

    // A new shape is: one RUNNING at the next flush.
    await exec(session, writeSummary);
    await recorder.flush();
    await recorder.flush();
    const running = sink.take();
    expect(running.map((e) => e.eventType)).toEqual(['RUNNING']);
    expect(running[0]!.lineage.outputs.map((o) => o.name)).toEqual(['results.fp-read', 'app.analytics.summary']);
    expect(running[0]!.lineage.inputs.map((i) => i.name)).toEqual(['app.public.customers', 'app.public.orders']);

    await session.end('client');
    const [complete, ...more] = sink.take();
    expect(more).toEqual([]);
    expect(complete!.eventType).toBe('COMPLETE');
    expect(complete!.error).toBeUndefined();
    expect(complete!.lineage.run).toEqual({ id: session.id });
  });

  it('emits START and COMPLETE together when the session ends before a flush', async () => {
    const { governor, sink } = await gateway();
    const session = await governor.openSession(pg());
    await exec(session, readOrders);
    await session.end('client');
    expect(sink.take().map((e) => e.eventType)).toEqual(['START', 'COMPLETE']);
  });

  it('fails a run whose session lost its upstream', async () => {
    const { governor, recorder, sink } = await gateway();
    const session = await governor.openSession(pg());
    await exec(session, readOrders);
    await recorder.flush();
    expect(sink.take().map((e) => e.eventType)).toEqual(['START']);
    await session.end('upstream-lost');
    const events = sink.take();
    expect(events.map((e) => [e.eventType, e.error])).toEqual([['FAIL', 'the session ended: upstream-lost']]);
  });

  it('groups two sessions naming the same run into one run, the same on every gateway, complete when both ended', async () => {
    const one = await gateway();
    const two = await gateway();
    const text = `SELECT id, email FROM customers /*traceparent='${TP}',job='retrain-churn',run='42'*/`;
    const runId = runIdFor('sluice', 'retrain-churn', '42', 'ann');
    expect(runId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);

    const a = await one.governor.openSession(pg({ application: 'psql' }));
    const b = await one.governor.openSession(pg());
    const c = await two.governor.openSession(pg());
    await exec(a, readCustomers, { outcome: 'ok' }, text);
    await exec(b, readCustomers, { outcome: 'ok' }, text);
    await exec(b, readOrders);
    await exec(c, readCustomers, { outcome: 'ok' }, text);
    await one.recorder.flush();
    await two.recorder.flush();

    const runOf = (o: LineageObservation) => [o.fingerprint, o.count, o.run, o.job.name];
    expect(one.store.all.map(runOf)).toEqual([
      ['fp-read', 2, { id: runId, key: '42' }, 'retrain-churn'],
      // Without a run key of its own, a statement is in its session's run.
      ['fp-orders', 1, { id: b.id }, 'ann'],
    ]);
    expect(two.store.all.map(runOf)).toEqual([['fp-read', 1, { id: runId, key: '42' }, 'retrain-churn']]);

    const started = one.sink.take();
    expect(started.map((e) => [e.eventType, e.lineage.run.id])).toEqual([
      ['START', runId],
      ['START', b.id],
    ]);
    expect(started[0]!.lineage.sessionIds).toEqual([a.id, b.id]);
    expect(started[0]!.lineage.traceparent).toBe(TP);
    expect(started[0]!.lineage.job).toEqual({ namespace: 'sluice', name: 'retrain-churn' });
    expect(two.sink.take().map((e) => [e.eventType, e.lineage.run.id])).toEqual([['START', runId]]);

    await a.end('client');
    expect(one.sink.take()).toEqual([]);
    await b.end('client');
    expect(one.sink.take().map((e) => [e.eventType, e.lineage.run.id])).toEqual([
      ['COMPLETE', runId],
      ['COMPLETE', b.id],
    ]);
    await c.end('client');
    expect(two.sink.take().map((e) => [e.eventType, e.lineage.run.id])).toEqual([['COMPLETE', runId]]);
  });

  it('gives each identity naming the same run key a run of its own, attributed to it', async () => {
    const { governor, recorder, store } = await gateway();
    const text = `SELECT id, email FROM customers /*job='retrain-churn',run='42'*/`;
    const a = await governor.openSession(pg());
    const b = await governor.openSession(pg({ identity: bob, username: 'bob' }));
    await exec(a, readCustomers, { outcome: 'ok' }, text);
    await exec(b, readCustomers, { outcome: 'ok' }, text);
    await exec(b, readCustomers, { outcome: 'ok' }, text);
    await recorder.flush();
    expect(store.all.map((o) => [o.actor.subject, o.count, o.run.id, o.sessionId])).toEqual([
      ['ann', 1, runIdFor('sluice', 'retrain-churn', '42', 'ann'), a.id],
      ['bob', 2, runIdFor('sluice', 'retrain-churn', '42', 'bob'), b.id],
    ]);
    expect(runIdFor('sluice', 'retrain-churn', '42', 'ann')).not.toBe(runIdFor('sluice', 'retrain-churn', '42', 'bob'));
  });

  it('takes the run key from the session context when the statement has none', async () => {
    const { governor, recorder, store } = await gateway();
    const claims = { ...ann, claims: { job: 'nightly', run: 7 } };
    const session = await governor.openSession(pg({ identity: claims, application: 'job=loader;run=2024-06-01' }));
    await exec(session, readOrders);
    await exec(session, readCustomers, { outcome: 'ok' }, `SELECT 1 /*run='override'*/`);
    await recorder.flush();
    expect(store.all.map((o) => [o.job.name, o.run])).toEqual([
      ['loader', { id: runIdFor('sluice', 'loader', '2024-06-01', 'ann'), key: '2024-06-01' }],
      ['loader', { id: runIdFor('sluice', 'loader', 'override', 'ann'), key: 'override' }],
    ]);
  });
});

describe('LineageRecorder: bounds', () => {
  it('puts statements naming another job into a run of their own, still tied to the session', async () => {
    const { governor, recorder, store } = await gateway();
    const session = await governor.openSession(pg({ application: 'psql' }));
    await exec(session, readOrders);
    await exec(session, readCustomers, { outcome: 'ok' }, `SELECT id, email FROM customers /*job='audit-sample'*/`);
    await recorder.flush();
    expect(store.all.map((o) => [o.job.name, o.run.id])).toEqual([
      ['psql', session.id],
      ['audit-sample', runIdFor('sluice', 'audit-sample', `session:${session.id}`, 'ann')],
    ]);
  });

  it('ends a caller run idle longer than runIdleMs while its session stays open, and starts it again when used', async () => {
    const { governor, recorder, sink, advance } = await gateway({ runIdleMs: 60_000 });
    const session = await governor.openSession(pg());
    const text = `SELECT id, email FROM customers /*job='load',run='r1'*/`;
    await exec(session, readCustomers, { outcome: 'ok' }, text);
    await recorder.flush();
    expect(sink.take().map((e) => e.eventType)).toEqual(['START']);
    advance(30_000);
    await recorder.flush();
    expect(sink.take()).toEqual([]);
    advance(61_000);
    await recorder.flush();
    expect(sink.take().map((e) => [e.eventType, e.lineage.run.key])).toEqual([['COMPLETE', 'r1']]);
    await exec(session, readCustomers, { outcome: 'ok' }, text);
    await recorder.flush();
    expect(sink.take().map((e) => e.eventType)).toEqual(['START']);
    await session.end('client');
    expect(sink.take().map((e) => e.eventType)).toEqual(['COMPLETE']);
  });

  it('drops observations past maxPending while the store cannot write, and counts them', async () => {
    const { governor, recorder, store } = await gateway({ maxPending: 2 });
    store.failing = true;
    const session = await governor.openSession(pg());
    await exec(session, readCustomers, { outcome: 'ok' }, `SELECT id, email FROM customers /*run='1'*/`);
    await exec(session, readCustomers, { outcome: 'ok' }, `SELECT id, email FROM customers /*run='2'*/`);
    await exec(session, readCustomers, { outcome: 'ok' }, `SELECT id, email FROM customers /*run='3'*/`);
    expect(recorder.stats.dropped).toBe(1);
    await recorder.flush();
    expect(recorder.stats.storeErrors).toBe(1);
    await exec(session, readCustomers, { outcome: 'ok' }, `SELECT id, email FROM customers /*run='4'*/`);
    expect(recorder.stats.dropped).toBe(2);
    store.failing = false;
    await recorder.flush();
    expect(store.all.map((o) => o.run.key)).toEqual(['1', '2']);
  });

  it('does not call a result column masked when another column of the same name was the one masked', async () => {
    const { governor, recorder, store } = await gateway();
    const session = await governor.openSession(pg());
    const twoEmails: Analysis = {
      ...readCustomers,
      fingerprint: 'fp-two',
      lineage: {
        columns: [
          { name: 'email', sources: [src('customers', 'email')], direct: true, functions: [] },
          { name: 'email', sources: [src('customers', 'id')], direct: false, functions: [] },
        ],
        all: [src('customers', 'email'), src('customers', 'id')],
        predicates: [],
        functions: [],
      },
    };
    await exec(session, twoEmails, { outcome: 'ok', rows: 1, masked: [{ column: 'email', by: 'pii' }] });
    await exec(session, twoEmails, { outcome: 'ok', rows: 1, masked: [{ column: 'email', by: 'pii' }, { column: 'email', by: 'pii' }] });
    await recorder.flush();
    expect(store.all.map((o) => o.result.map((r) => r.masked))).toEqual([
      [false, false],
      [true, true],
    ]);
  });
});

describe('datasetNaming and runIdFor', () => {
  it('names datasets of PostgreSQL, MySQL and an unknown server', () => {
    const p = datasetNaming('postgres', { address: 'db.internal', port: 5432 }, 'app');
    expect([p.namespace, p.name(undefined, 't'), p.name('s', 't')]).toEqual([PG_NS, 'app.public.t', 'app.s.t']);
    const m = datasetNaming('mysql', { address: '::1', port: 3306 }, undefined);
    expect([m.namespace, m.name(undefined, 't'), m.name('s', 't')]).toEqual(['mysql://[::1]:3306', 'default.t', 's.t']);
    expect(datasetNaming('postgres', undefined, 'app').namespace).toBe('postgres://unknown');
    expect(p.key).not.toBe(datasetNaming('postgres', { address: 'db.internal', port: 5432 }, 'other').key);
  });

  it('derives the same run id from the same job and key only', () => {
    expect(runIdFor('sluice', 'j', '1', 'a')).toBe(runIdFor('sluice', 'j', '1', 'a'));
    expect(runIdFor('sluice', 'j', '1', 'a')).not.toBe(runIdFor('sluice', 'j', '2', 'a'));
    expect(runIdFor('sluice', 'j', '1', 'a')).not.toBe(runIdFor('other', 'j', '1', 'a'));
    expect(runIdFor('sluice', 'j', '1', 'a')).not.toBe(runIdFor('sluice', 'k', '1', 'a'));
    expect(runIdFor('sluice', 'j', '1', 'a')).not.toBe(runIdFor('sluice', 'j', '1', 'b'));
  });
});
