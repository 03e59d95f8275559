import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireService, startTestGateway, type TestGateway } from '@sluice/testkit';
import pg from 'pg';
import { serialize } from 'pg-protocol';
import { postgresDialect } from '../src/index.js';
import { frontendMessage, passwordMessage, startupMessage } from '../src/testing/index.js';

const EMPTY = Buffer.alloc(0);
import { connectPg } from './pg-driver.js';

const ALICE = { subject: 'alice@example.com', token: 'alice-relay-token' };
const UPSTREAM = 'postgres://postgres@127.0.0.1:5432/test';

let gw: TestGateway;
let available = false;

beforeAll(async () => {
  available = await requireService('PostgreSQL', '127.0.0.1', 5432);
  if (!available) return;
  gw = await startTestGateway({
    dialect: postgresDialect,
    targets: { app: { upstream: UPSTREAM }, pgdb: { upstream: 'postgres://postgres@127.0.0.1:5432/postgres' } },
    tokens: [{ subject: ALICE.subject, kind: 'human', groups: ['analysts'], token: ALICE.token }],
    maxMessageBytes: 1 << 20,
  });
  const setup = await connectPg(gw, 'app', ALICE.subject, ALICE.token);
  await setup.query('DROP TABLE IF EXISTS sluice_relay_t');
  await setup.query('CREATE TABLE sluice_relay_t (id int primary key, note text)');
  await setup.end();
});

afterAll(async () => {
  await gw?.close();
});

const live = (name: string, body: () => Promise<void>, timeout?: number) =>
  it(name, async () => {
    if (!available) return;
    await body();
  }, timeout);

const alice = (db = 'app', extra: pg.ClientConfig = {}) => connectPg(gw, db, ALICE.subject, ALICE.token, extra);

/** A raw protocol client: authenticates, then exchanges bytes. */
async function rawSession(database = 'app'): Promise<{ socket: net.Socket; read: (until: (frames: { type: string }[]) => boolean) => Promise<{ type: string; frame: Buffer }[]>; close: () => void }> {
  const socket = net.connect({ host: gw.host, port: gw.port });
  await new Promise((r) => socket.once('connect', r));
  // Frames are split off as they arrive, so a large result costs linear time.
  let partial = Buffer.alloc(0);
  let frames: { type: string; frame: Buffer }[] = [];
  const waiters: (() => void)[] = [];
  socket.on('data', (c) => {
    const buf = partial.length ? Buffer.concat([partial, c]) : c;
    let at = 0;
    while (at + 5 <= buf.length) {
      const end = at + 1 + buf.readInt32BE(at + 1);
      if (end > buf.length) break;
      const type = String.fromCharCode(buf[at]!);
      // DataRows are kept as type only; their bytes are not needed.
      frames.push({ type, frame: type === 'D' ? EMPTY : buf.subarray(at, end) });
      at = end;
    }
    partial = Buffer.from(buf.subarray(at));
    for (const w of waiters.splice(0)) w();
  });
  const read = async (until: (frames: { type: string }[]) => boolean) => {
    for (;;) {
      if (until(frames)) {
        const got = frames;
        frames = [];
        return got;
      }
      await new Promise<void>((r) => waiters.push(r));
    }
  };
  socket.write(startupMessage({ user: ALICE.subject, database }));
  await read((f) => f.some((x) => x.type === 'R'));
  socket.write(passwordMessage(ALICE.token));
  await read((f) => f.some((x) => x.type === 'Z'));
  return { socket, read, close: () => socket.destroy() };
}

describe('PostgreSQL relay through the gateway (real server)', () => {
  live('runs simple and extended queries, with parameters', async () => {
    const c = await alice();
    expect((await c.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    expect((await c.query('SELECT $1::int + $2::int AS s', [2, 3])).rows).toEqual([{ s: 5 }]);
    expect((await c.query('SELECT current_database() AS db')).rows[0].db).toBe('test');
    await c.end();
  });

  live('the database name selects the target', async () => {
    const c = await alice('pgdb');
    expect((await c.query('SELECT current_database() AS db')).rows[0].db).toBe('postgres');
    await c.end();
  });

  live('named prepared statements run many times and are audited each time', async () => {
    const c = await alice();
    for (let i = 0; i < 5; i++) {
      const r = await c.query({ name: 'by-id', text: 'SELECT $1::int * 2 AS v', values: [i] });
      expect(r.rows[0].v).toBe(i * 2);
    }
    await c.end();
    const recs = (await gw.auditRecords()).filter((r) => r.type === 'statement' && r.protocol === 'extended' && r.text.includes('$1::int * ?'));
    expect(recs.length).toBeGreaterThanOrEqual(5);
  });

  live('pipelines several extended-protocol batches in one write, named and unnamed portals', async () => {
    const s = await rawSession();
    const batch = Buffer.concat([
      serialize.parse({ name: 's1', text: 'SELECT $1::int AS a', types: [] }),
      serialize.bind({ portal: 'p1', statement: 's1', values: ['7'] }),
      serialize.execute({ portal: 'p1' }),
      serialize.sync(),
      serialize.parse({ text: 'SELECT 1/0' }),
      serialize.bind({}),
      serialize.execute({}),
      serialize.sync(),
      serialize.bind({ portal: '', statement: 's1', values: ['9'] }),
      serialize.describe({ type: 'P', name: '' }),
      serialize.execute({}),
      serialize.sync(),
    ]);
    s.socket.write(batch);
    const frames = await s.read((f) => f.filter((x) => x.type === 'Z').length === 3);
    const types = frames.map((f) => f.type).join('');
    expect(types).toBe('12DCZ1EZ2TDCZ');
    const err = frames.find((f) => f.type === 'E')!;
    expect(err.frame.toString()).toContain('22012');
    s.close();
  });

  live('a rejected re-Parse of a statement name cannot make the audit record another statement', async () => {
    const setup = await alice();
    await setup.query('DROP TABLE IF EXISTS sluice_victim; CREATE TABLE sluice_victim (id int); INSERT INTO sluice_victim VALUES (1), (2), (3)');
    await setup.end();
    const s = await rawSession();
    s.socket.write(Buffer.concat([serialize.parse({ name: 's1', text: 'DELETE FROM sluice_victim' }), serialize.sync()]));
    await s.read((f) => f.some((x) => x.type === 'Z'));
    s.socket.write(Buffer.concat([serialize.parse({ name: 's1', text: 'SELECT 1' }), serialize.sync()]));
    const refused = await s.read((f) => f.some((x) => x.type === 'Z'));
    expect(refused.find((f) => f.type === 'E')!.frame.toString()).toContain('42P05');
    s.socket.write(Buffer.concat([serialize.bind({ statement: 's1' }), serialize.execute({}), serialize.sync()]));
    const ran = await s.read((f) => f.some((x) => x.type === 'Z'));
    expect(ran.find((f) => f.type === 'C')!.frame.toString()).toContain('DELETE 3');
    s.close();
    const recs = (await gw.auditRecords()).filter((r) => r.type === 'statement' && r.protocol === 'extended' && r.text === 'delete from sluice_victim');
    expect(recs.map((r) => r.type === 'statement' && [r.phase, r.operations.join()])).toEqual([
      ['intent', 'write'],
      ['complete', 'write'],
    ]);
  });

  live('COPY FROM STDIN in the extended protocol (Sync during copy-in is ignored) keeps outcomes aligned', async () => {
    const setup = await alice();
    await setup.query('DROP TABLE IF EXISTS sluice_copy_ext; CREATE TABLE sluice_copy_ext (id int, note text)');
    await setup.end();
    const s = await rawSession();
    // As libpq's PQexecParams does it: P B D E S, then the data, CopyDone and another Sync.
    s.socket.write(Buffer.concat([
      serialize.parse({ text: 'COPY sluice_copy_ext (id, note) FROM STDIN' }),
      serialize.bind({}),
      serialize.describe({ type: 'P' }),
      serialize.execute({}),
      serialize.sync(),
    ]));
    await s.read((f) => f.some((x) => x.type === 'G'));
    s.socket.write(Buffer.concat([serialize.copyData(Buffer.from('20\ttwenty\n')), serialize.copyDone(), serialize.sync()]));
    await s.read((f) => f.some((x) => x.type === 'Z'));
    for (const q of ["SELECT 'eleven-11'", 'SELECT 1/0', 'SELECT generate_series(1, 5)']) {
      s.socket.write(serialize.query(q));
      await s.read((f) => f.some((x) => x.type === 'Z'));
    }
    s.close();
    await new Promise((r) => setTimeout(r, 50));
    const recs = (await gw.auditRecords()).filter((r) => r.type === 'statement' && r.phase === 'complete');
    const last = recs.slice(-4).map((r) => r.type === 'statement' && [r.text, r.outcome, r.rows ?? null]);
    expect(last).toEqual([
      ['copy sluice_copy_ext(id, note) from stdin', 'ok', 1],
      ['select ?', 'ok', 1],
      ['select ? / ?', 'error', null],
      ['select generate_series(?, ?)', 'ok', 5],
    ]);
  });

  live('a simple Query skipped after an extended-protocol error is audited as not executed', async () => {
    const s = await rawSession();
    s.socket.write(Buffer.concat([serialize.parse({ text: 'SELEC broken' }), serialize.query('SELECT 42'), serialize.sync()]));
    const frames = await s.read((f) => f.some((x) => x.type === 'Z'));
    expect(frames.map((f) => f.type)).toEqual(['E', 'Z']);
    s.socket.write(serialize.query('SELECT 43'));
    const after = await s.read((f) => f.some((x) => x.type === 'Z'));
    expect(after.map((f) => f.type)).toEqual(['T', 'D', 'C', 'Z']);
    s.close();
    await new Promise((r) => setTimeout(r, 50));
    const recs = (await gw.auditRecords()).filter((r) => r.type === 'statement' && r.phase === 'complete');
    expect(recs.slice(-2).map((r) => r.type === 'statement' && [r.text, r.outcome])).toEqual([
      ['select ?', 'not-executed'],
      ['select ?', 'ok'],
    ]);
  });

  live('each statement of a query string gets its own record; after a failure the rest did not run', async () => {
    const s = await rawSession();
    s.socket.write(serialize.query("SELECT 'multi-1'; INSERT INTO sluice_relay_t VALUES (77, 'multi'); SELECT 1/0; SELECT 'never'"));
    await s.read((f) => f.some((x) => x.type === 'Z'));
    s.close();
    await new Promise((r) => setTimeout(r, 50));
    const recs = (await gw.auditRecords()).filter((r) => r.type === 'statement' && r.protocol === 'simple');
    const last = recs.slice(-5).map((r) => r.type === 'statement' && [r.phase, r.text, r.outcome ?? null, r.operations.join()]);
    expect(last).toEqual([
      ['intent', 'insert into sluice_relay_t values (?, ?)', null, 'write'],
      ['complete', 'select ?', 'ok', 'read'],
      ['complete', 'insert into sluice_relay_t values (?, ?)', 'ok', 'write'],
      ['complete', 'select ? / ?', 'error', 'read'],
      ['complete', 'select ?', 'not-executed', 'read'],
    ]);
  });

  live('relays errors with their SQLSTATE and keeps the session usable', async () => {
    const c = await alice();
    await expect(c.query('SELECT * FROM no_such_table_xyz')).rejects.toMatchObject({ code: '42P01' });
    expect((await c.query('SELECT 2 AS two')).rows[0].two).toBe(2);
    await c.end();
  });

  live('transactions commit and roll back', async () => {
    const c = await alice();
    await c.query('BEGIN');
    await c.query("INSERT INTO sluice_relay_t VALUES (1, 'rolled back')");
    await c.query('ROLLBACK');
    await c.query('BEGIN');
    await c.query("INSERT INTO sluice_relay_t VALUES (2, 'kept')");
    await c.query('COMMIT');
    const r = await c.query('SELECT id FROM sluice_relay_t ORDER BY id');
    expect(r.rows.map((x) => x.id)).toEqual([2]);
    await c.query('BEGIN');
    await expect(c.query('SELECT 1/0')).rejects.toMatchObject({ code: '22012' });
    await expect(c.query('SELECT 1')).rejects.toMatchObject({ code: '25P02' });
    await c.query('ROLLBACK');
    await c.end();
  });

  live('LISTEN/NOTIFY reaches the listening session', async () => {
    const a = await alice();
    const b = await alice();
    await a.query('LISTEN sluice_channel');
    const got = new Promise<pg.Notification>((resolve) => a.on('notification', resolve));
    await b.query("NOTIFY sluice_channel, 'hello'");
    const n = await got;
    expect(n.channel).toBe('sluice_channel');
    expect(n.payload).toBe('hello');
    await a.end();
    await b.end();
  });

  live('a cancel reaches its own upstream backend and nobody else', async () => {
    const victim = await alice();
    const bystander = await alice();
    const slow = victim.query('SELECT pg_sleep(20)');
    const calm = bystander.query('SELECT pg_sleep(1.5) AS done');
    await new Promise((r) => setTimeout(r, 300));
    const key = victim as unknown as { processID: number; secretKey: number };
    // A wrong secret must not cancel anything.
    await sendCancel(key.processID, key.secretKey ^ 1);
    await sendCancel(key.processID, key.secretKey);
    await expect(slow).rejects.toMatchObject({ code: '57014' });
    expect((await calm).rows[0]).toHaveProperty('done');
    await victim.end();
    await bystander.end();
    const cancels = (await gw.auditRecords()).filter((r) => r.type === 'cancel');
    expect(cancels.some((c) => c.type === 'cancel' && c.outcome === 'forwarded')).toBe(true);
    expect(cancels.some((c) => c.type === 'cancel' && c.outcome === 'ignored')).toBe(true);
  });

  live('streams a large result with backpressure: the gateway does not buffer it', async () => {
    const s = await rawSession();
    s.socket.pause();
    s.socket.write(serialize.query('SELECT g, repeat(\'x\', 200) FROM generate_series(1, 300000) g'));
    // The client reads nothing for a while: the gateway must stop reading the upstream.
    const before = process.memoryUsage().arrayBuffers;
    await new Promise((r) => setTimeout(r, 1500));
    const during = process.memoryUsage().arrayBuffers;
    // ~60 MB of rows are waiting upstream; only socket buffers may sit in the gateway.
    expect(during - before).toBeLessThan(16 * 1024 * 1024);
    s.socket.resume();
    const frames = await s.read((f) => f.some((x) => x.type === 'Z'));
    expect(frames.filter((f) => f.type === 'D').length).toBe(300000);
    s.close();
  }, 60_000);

  live('COPY FROM STDIN and COPY TO STDOUT', async () => {
    const s = await rawSession();
    s.socket.write(serialize.query('COPY sluice_relay_t (id, note) FROM STDIN'));
    await s.read((f) => f.some((x) => x.type === 'G'));
    s.socket.write(Buffer.concat([serialize.copyData(Buffer.from('10\tten\n11\televen\n')), serialize.copyDone()]));
    const done = await s.read((f) => f.some((x) => x.type === 'Z'));
    expect(done.find((f) => f.type === 'C')!.frame.toString()).toContain('COPY 2');
    s.socket.write(serialize.query('COPY (SELECT id, note FROM sluice_relay_t WHERE id >= 10 ORDER BY id) TO STDOUT'));
    const out = await s.read((f) => f.some((x) => x.type === 'Z'));
    const data = out.filter((f) => f.type === 'd').map((f) => f.frame.subarray(5).toString()).join('');
    expect(data).toBe('10\tten\n11\televen\n');
    s.close();
    const recs = (await gw.auditRecords()).filter((r) => r.type === 'statement' && r.text.startsWith('copy sluice_relay_t'));
    expect(recs.some((r) => r.type === 'statement' && r.phase === 'intent')).toBe(true);
    expect(recs.some((r) => r.type === 'statement' && r.phase === 'complete' && r.rows === 2)).toBe(true);
  });

  live('a FunctionCall by OID is relayed and audited as unknown, durably before it runs', async () => {
    const s = await rawSession();
    // FunctionCall: Int32 oid | Int16 0 arg formats | Int16 0 args | Int16 0 (text result).
    const body = Buffer.alloc(10);
    body.writeInt32BE(2026, 0); // pg_backend_pid()
    s.socket.write(frontendMessage('FunctionCall', body));
    const frames = await s.read((f) => f.some((x) => x.type === 'Z'));
    expect(frames.map((f) => f.type)).toEqual(['V', 'Z']);
    s.close();
    const recs = (await gw.auditRecords()).filter((r) => r.type === 'statement' && r.protocol === 'function-call');
    expect(recs.map((r) => r.type === 'statement' && [r.phase, r.operations[0]])).toEqual([
      ['intent', 'unknown'],
      ['complete', 'unknown'],
    ]);
  });

  live('startup options that would set server settings are not passed upstream', async () => {
    const c = await alice('app', { options: '-c statement_timeout=1234' });
    expect((await c.query('SHOW statement_timeout')).rows[0].statement_timeout).not.toBe('1234ms');
    await c.end();
  });

  live('audits writes durably before they run, and never stores literals', async () => {
    const c = await alice();
    await c.query("INSERT INTO sluice_relay_t VALUES (42, 'very-private-note@example.com')");
    await c.end();
    const all = await gw.auditRecords();
    const insert = all.filter((r) => r.type === 'statement' && r.text.startsWith('insert into sluice_relay_t'));
    const last = insert.slice(-2);
    expect(last.map((r) => r.type === 'statement' && r.phase)).toEqual(['intent', 'complete']);
    // The intent record precedes the outcome in the chain.
    expect(last[0]!.seq).toBeLessThan(last[1]!.seq);
    expect(JSON.stringify(all)).not.toContain('very-private-note');
  });
});

function sendCancel(processId: number, secretKey: number): Promise<void> {
  return new Promise((resolve) => {
    const s = net.connect({ host: gw.host, port: gw.port }, () => s.write(serialize.cancel(processId, secretKey)));
    s.on('close', () => resolve());
    s.on('error', () => resolve());
  });
}
