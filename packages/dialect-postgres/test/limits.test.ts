/**
 * Limits, timeouts and the graceful drain of the PostgreSQL dialect, against the real server
 * with node-postgres and psql: connection limits (53300) and statement rates (53400) per
 * identity and per source address, the idle session (57P05) and idle-in-transaction (25P03)
 * timeouts, the auth timeout, message size on COPY data and Parse, and a drain that lets a
 * running statement finish while idle sessions end with 57P01.
 */
import { spawn } from 'node:child_process';
import net from 'node:net';
import { type AuditRecord } from '@sluice/core';
import { eventually, requireService, sendRaw, startTestGateway, type TestGateway } from '@sluice/testkit';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { postgresDialect } from '../src/index.js';
import { firstErrorCode, frontendMessage, passwordMessage, queryMessage, startupMessage } from '../src/testing/index.js';
import { connectPg, pgClientConfig } from './pg-driver.js';
import { identityOf, liveTest, pendingRequest, rawClient } from './support.js';

const UPSTREAM = 'postgres://postgres@127.0.0.1:5432/test';
const ALICE = { subject: 'alice-limits', kind: 'human', groups: ['users'], token: 'alice-limits-token' } as const;
const BOB = { subject: 'bob-limits', kind: 'human', groups: ['users'], token: 'bob-limits-token' } as const;
const CARL = { subject: 'carl-limits', kind: 'agent', groups: ['users'], token: 'carl-limits-token' } as const;
const DBA = { subject: 'dba-limits', kind: 'human', groups: ['dba'], token: 'dba-limits-token' } as const;
const APPROVER = { subject: 'approver-limits', kind: 'human', groups: ['approvers'], token: 'approver-limits-token' } as const;
const TOKENS = [ALICE, BOB, CARL, DBA, APPROVER];
const TABLE = 'sluice_limits_pg';

let available = false;
let direct: pg.Client;
beforeAll(async () => {
  available = await requireService('PostgreSQL', '127.0.0.1', 5432);
  if (!available) return;
  direct = new pg.Client({ connectionString: UPSTREAM });
  await direct.connect();
  await direct.query(`DROP TABLE IF EXISTS ${TABLE}`);
  await direct.query(`CREATE TABLE ${TABLE} (id int primary key, note text)`);
});
afterAll(async () => {
  if (!direct) return;
  await direct.query(`DROP TABLE IF EXISTS ${TABLE}`);
  await direct.end();
});
const live = liveTest(() => available);

type PgError = Error & { code?: string; severity?: string };

async function loginError(gw: TestGateway, who: { subject: string; token: string }, extra: pg.ClientConfig = {}): Promise<PgError | undefined> {
  try {
    const c = await connectPg(gw, 'app', who.subject, who.token, extra);
    await c.end();
    return undefined;
  } catch (e) {
    return e as PgError;
  }
}

/** Connects from another loopback source address (the gateway sees another client IP). */
async function connectFrom(gw: TestGateway, localAddress: string, who: { subject: string; token: string }): Promise<pg.Client> {
  const socket = net.connect({ host: gw.host, port: gw.port, localAddress });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const client = new pg.Client({ ...pgClientConfig(gw, 'app', who.subject, who.token), stream: () => socket as never });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

/** Runs psql (asynchronously: the gateway answers from this process) with `input` on stdin. */
function psql(url: string, password: string, args: string[], input = ''): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn('psql', [url, '-X', '-At', ...args], { env: { ...process.env, PGPASSWORD: password, PGCONNECT_TIMEOUT: '10' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
    child.stdin.end(input);
  });
}

const connects = (records: AuditRecord[]) => records.filter((r) => r.type === 'connect');

describe('connection limits (PostgreSQL)', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    if (!available) return;
    gw = await startTestGateway({
      dialect: postgresDialect,
      targets: { app: { upstream: UPSTREAM } },
      tokens: TOKENS,
      limits: { connections: { perIdentity: 2, perSource: 4 }, identities: { [CARL.subject]: { connections: 1 } } },
    });
  });
  afterAll(async () => gw?.close());

  live('per identity: the third session is refused with 53300 and audited; other identities, and the identity after a session ends, connect', async () => {
    const a1 = await connectPg(gw, 'app', ALICE.subject, ALICE.token);
    const a2 = await connectPg(gw, 'app', ALICE.subject, ALICE.token);
    const refused = await loginError(gw, ALICE);
    expect(refused?.code).toBe('53300');
    expect(refused?.severity).toBe('FATAL');
    expect(refused?.message).toMatch(/too many connections for identity alice-limits: the gateway allows 2 at a time/);
    const b = await connectPg(gw, 'app', BOB.subject, BOB.token);
    expect((await b.query('SELECT 1 AS one')).rows[0].one).toBe(1);
    expect((await a1.query('SELECT 2 AS two')).rows[0].two).toBe(2);
    await a1.end();
    // The count is released when the session ends: alice connects again.
    const a3 = await eventually('a session after one ended', async () => {
      try {
        return await connectPg(gw, 'app', ALICE.subject, ALICE.token);
      } catch {
        return undefined;
      }
    });
    // A client that vanishes without Terminate releases its place too.
    const raw = net.connect({ host: gw.host, port: gw.port });
    await new Promise((r) => raw.once('connect', r));
    expect(await loginError(gw, ALICE)).toMatchObject({ code: '53300' });
    a2.connection.stream.destroy();
    const a4 = await eventually('a session after a client vanished', async () => {
      try {
        return await connectPg(gw, 'app', ALICE.subject, ALICE.token);
      } catch {
        return undefined;
      }
    });
    raw.destroy();
    const records = await gw.auditRecords();
    const refusals = connects(records).filter((r) => r.type === 'connect' && r.outcome === 'refused' && /too many connections/.test(r.reason ?? ''));
    expect(refusals.length).toBeGreaterThanOrEqual(2);
    expect(refusals[0]).toMatchObject({ actor: { subject: ALICE.subject }, reason: expect.stringMatching(/identity alice-limits/) });
    for (const c of [b, a3, a4]) await c.end();
  }, 60_000);

  live('per source address and per-identity overrides: another source address is not affected', async () => {
    const carl = await connectPg(gw, 'app', CARL.subject, CARL.token);
    // carl's own limit is 1 (an override of the default 2).
    expect(await loginError(gw, CARL)).toMatchObject({ code: '53300', message: expect.stringMatching(/identity carl-limits: the gateway allows 1/) });
    const others = [
      await connectPg(gw, 'app', ALICE.subject, ALICE.token),
      await connectPg(gw, 'app', ALICE.subject, ALICE.token),
      await connectPg(gw, 'app', BOB.subject, BOB.token),
    ];
    // Four sessions from 127.0.0.1: the fifth is refused whoever asks.
    expect(await loginError(gw, BOB)).toMatchObject({ code: '53300', message: expect.stringMatching(/source address 127\.0\.0\.1: the gateway allows 4/) });
    // psql from the same address gets the same native error.
    const viaPsql = await psql(`postgresql://${BOB.subject}@${gw.host}:${gw.port}/app`, BOB.token, ['-c', 'SELECT 1']);
    expect(viaPsql.status).not.toBe(0);
    expect(viaPsql.stderr).toMatch(/too many connections for source address 127\.0\.0\.1/);
    // Another source address has its own count.
    const elsewhere = await connectFrom(gw, '127.0.0.2', BOB);
    expect((await elsewhere.query('SELECT 3 AS three')).rows[0].three).toBe(3);
    const records = await gw.auditRecords();
    expect(records.filter((r) => r.type === 'connect' && r.outcome === 'refused' && /source address 127\.0\.0\.1/.test(r.reason ?? '')).length).toBeGreaterThanOrEqual(2);
    expect(records.filter((r) => r.type === 'connect' && r.outcome === 'accepted' && (r.sourceAddress ?? '').endsWith('127.0.0.2'))).toHaveLength(1);
    for (const c of [carl, ...others, elsewhere]) await c.end();
  }, 60_000);
});

describe('statement rate limits (PostgreSQL)', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    if (!available) return;
    gw = await startTestGateway({
      dialect: postgresDialect,
      targets: { app: { upstream: UPSTREAM } },
      tokens: TOKENS,
      limits: { statementsPerSecond: { perIdentity: 5, perSource: 1000, burstSeconds: 1 } },
    });
  });
  afterAll(async () => gw?.close());

  live('past its burst an identity gets 53400 (simple and extended protocol), the session stays usable, others are not slowed, each refusal is recorded', async () => {
    const a = await connectPg(gw, 'app', ALICE.subject, ALICE.token);
    const b = await connectPg(gw, 'app', BOB.subject, BOB.token);
    const errors: PgError[] = [];
    let ok = 0;
    for (let i = 0; i < 12; i++) {
      try {
        // Alternate the simple and the extended protocol.
        if (i % 2 === 0) await a.query(`SELECT ${i} AS n`);
        else await a.query('SELECT $1::int AS n', [i]);
        ok++;
      } catch (e) {
        errors.push(e as PgError);
      }
    }
    expect(ok).toBeGreaterThanOrEqual(5);
    expect(errors.length).toBeGreaterThanOrEqual(1);
    for (const e of errors) {
      expect(e.code).toBe('53400');
      expect(e.severity).toBe('ERROR');
      expect(e.message).toMatch(/statement rate limit reached for identity alice-limits: the gateway allows 5 statements per second/);
    }
    // Bob has his own bucket.
    for (let i = 0; i < 5; i++) expect((await b.query('SELECT 1 AS one')).rows[0].one).toBe(1);
    // Alice's session is still usable once the bucket refills.
    const after = await eventually('a statement after the bucket refilled', async () => {
      try {
        return (await a.query('SELECT 42 AS answer')).rows[0].answer as number;
      } catch (e) {
        expect((e as PgError).code).toBe('53400');
        return undefined;
      }
    });
    expect(after).toBe(42);
    const records = await gw.auditRecords();
    const limited = records.filter((r) => r.type === 'statement' && r.rule === 'rate-limit');
    expect(limited.length).toBeGreaterThanOrEqual(errors.length);
    expect(limited[0]).toMatchObject({ actor: { subject: ALICE.subject }, decision: 'deny', outcome: 'not-executed', reason: 'statement rate limit of 5/s for identity alice-limits reached' });
    await a.end();
    await b.end();
  }, 60_000);

  live('a simple query of more statements than the burst is refused as such (53400, nothing run), and a smaller one runs', async () => {
    const b = await connectPg(gw, 'app', BOB.subject, BOB.token);
    const script = Array.from({ length: 6 }, (_, i) => `SELECT ${i} AS n`).join('; ');
    const err = (await b.query(script).catch((e: unknown) => e)) as PgError;
    expect(err.code).toBe('53400');
    expect(err.message).toMatch(/a request of 6 statements is more than the 5 the gateway lets run at once/);
    const two = await eventually('a request the bucket can hold', async () => {
      try {
        return (await b.query('SELECT 1 AS one; SELECT 2 AS two')) as unknown as unknown[];
      } catch (e) {
        expect((e as PgError).code).toBe('53400');
        return undefined;
      }
    });
    expect(two).toHaveLength(2);
    await b.end();
  }, 60_000);

  live('psql: statements past the rate are refused one by one and the later ones run', async () => {
    const script = Array.from({ length: 15 }, (_, i) => `SELECT ${i} AS n;`).join('\n');
    const r = await psql(`postgresql://${CARL.subject}@${gw.host}:${gw.port}/app`, CARL.token, [], `${script}\n\\! sleep 1.5\nSELECT 'after the pause' AS tail;\n`);
    expect(r.stderr).toMatch(/statement rate limit reached for identity carl-limits/);
    expect(r.stdout).toMatch(/after the pause/);
  }, 60_000);
});

describe('idle timeouts (PostgreSQL)', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    if (!available) return;
    gw = await startTestGateway({
      dialect: postgresDialect,
      targets: { app: { upstream: UPSTREAM } },
      tokens: TOKENS,
      policy: {
        rules: [
          { name: 'users', identities: { groups: ['users', 'dba'] }, operations: ['read', 'write', 'transaction', 'session-setting'], effect: 'allow' },
          { name: 'ddl-reviewed', identities: { groups: ['dba'] }, operations: ['ddl'], effect: 'review' },
        ],
      },
      approvals: { approvers: { groups: ['approvers'] }, timeoutMs: 30_000 },
      limits: { idleSessionTimeoutMs: 300, idleInTransactionTimeoutMs: 400 },
    });
  });
  afterAll(async () => gw?.close());

  const ended = (c: pg.Client) =>
    new Promise<{ err: PgError; afterMs: number }>((resolve) => {
      const t0 = Date.now();
      c.removeAllListeners('error');
      c.on('error', (err: PgError) => resolve({ err, afterMs: Date.now() - t0 }));
    });

  live('an idle session ends with FATAL 57P05 after the timeout; a statement running longer is not idle', async () => {
    const busy = await connectPg(gw, 'app', BOB.subject, BOB.token);
    const c = await connectPg(gw, 'app', ALICE.subject, ALICE.token);
    const gone = ended(c);
    // pg_sleep(1) runs longer than the timeout: it completes.
    const slept = await busy.query('SELECT pg_sleep(1), 7 AS seven');
    expect(slept.rows[0].seven).toBe(7);
    const { err, afterMs } = await gone;
    expect(err.code).toBe('57P05');
    expect(err.message).toMatch(/idle-session timeout/);
    expect(afterMs).toBeGreaterThanOrEqual(250);
    expect(afterMs).toBeLessThan(10_000);
    console.log(`[figure] pg idle-session timeout 300 ms: session ended after ${afterMs} ms`);
    const records = await gw.auditRecords();
    expect(records.find((r) => r.type === 'disconnect' && r.actor.subject === ALICE.subject)).toMatchObject({ reason: 'idle-timeout' });
    busy.removeAllListeners('error');
    busy.on('error', () => undefined);
  }, 60_000);

  live('idle inside a transaction: FATAL 25P03, the transaction is rolled back and the upstream connection closed', async () => {
    const c = await connectPg(gw, 'app', ALICE.subject, ALICE.token, { application_name: 'sluice-limits-idle-tx' });
    await c.query('BEGIN');
    await c.query(`INSERT INTO ${TABLE} VALUES (1, 'in a transaction left open')`);
    const { err, afterMs } = await ended(c);
    expect(err.code).toBe('25P03');
    expect(afterMs).toBeLessThan(10_000);
    console.log(`[figure] pg idle-in-transaction timeout 400 ms: session ended after ${afterMs} ms`);
    await eventually('the upstream backend to be gone', async () => {
      const r = await direct.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'sluice-limits-idle-tx'`);
      return r.rows[0].n === 0 ? true : undefined;
    });
    expect((await direct.query(`SELECT count(*)::int AS n FROM ${TABLE} WHERE id = 1`)).rows[0].n).toBe(0);
    const records = await gw.auditRecords();
    expect(records.filter((r) => r.type === 'disconnect' && r.reason === 'idle-in-transaction-timeout')).toHaveLength(1);
  }, 60_000);

  live('a statement held for an approver is not idle: it runs once approved, after more than the timeout', async () => {
    const c = await connectPg(gw, 'app', DBA.subject, DBA.token);
    const held = c.query(`ALTER TABLE ${TABLE} ADD COLUMN IF NOT EXISTS approved_late int`);
    const req = await pendingRequest(gw.approvals!, /approved_late/, 10_000);
    await new Promise((r) => setTimeout(r, 1000));
    await gw.approvals!.approve(req.id, identityOf(APPROVER), { reason: 'checked' });
    await held;
    expect((await c.query('SELECT 1 AS one')).rows[0].one).toBe(1);
    await c.end();
  }, 60_000);
});

describe('auth timeout and message size (PostgreSQL)', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    if (!available) return;
    gw = await startTestGateway({
      dialect: postgresDialect,
      targets: { app: { upstream: UPSTREAM } },
      tokens: TOKENS,
      authTimeoutMs: 300,
      maxMessageBytes: 64 * 1024,
    });
  });
  afterAll(async () => gw?.close());

  live('a client that does not finish its login within authTimeoutMs gets FATAL 28P01 and is closed (silent, or after its startup packet)', async () => {
    const t0 = Date.now();
    const silent = await sendRaw(gw, Buffer.alloc(0));
    expect(silent.closed).toBe(true);
    const halfway = await sendRaw(gw, startupMessage({ user: ALICE.subject, database: 'app' }));
    expect(halfway.closed).toBe(true);
    expect(firstErrorCode(halfway.response)).toBe('28P01');
    expect(halfway.response.toString()).toMatch(/authentication did not complete within 300 ms/);
    expect(Date.now() - t0).toBeLessThan(20_000);
    const records = await gw.auditRecords();
    expect(records.find((r) => r.type === 'connect' && r.outcome === 'refused' && /did not complete/.test(r.reason ?? ''))).toBeDefined();
  }, 60_000);

  live('an oversized Parse and oversized COPY data end only their own session with 08P01; the gateway keeps serving', async () => {
    const bystander = await connectPg(gw, 'app', BOB.subject, BOB.token);
    const login = Buffer.concat([startupMessage({ user: ALICE.subject, database: 'app' }), passwordMessage(ALICE.token)]);
    const parse = frontendMessage(0x50, Buffer.concat([Buffer.from('\0'), Buffer.from(`select '${'p'.repeat(70_000)}'\0`), Buffer.alloc(2)]));
    const bigParse = await sendRaw(gw, Buffer.concat([login, parse]));
    expect(bigParse.closed).toBe(true);
    expect(firstErrorCode(bigParse.response)).toBe('08P01');
    // COPY data: the limit holds inside a COPY too (after login, once the server asked for the data).
    const copier = await rawClient(gw, ALICE);
    copier.send(queryMessage(`COPY ${TABLE} (id, note) FROM STDIN`));
    await copier.take((t) => t.includes('G'));
    copier.send(frontendMessage(0x64, Buffer.from(`2\t${'c'.repeat(70_000)}\n`)));
    await copier.take((t) => t.includes('E'));
    const fatal = copier.frames().find((f) => f.type === 'E')!.frame;
    expect(firstErrorCode(fatal)).toBe('08P01');
    expect(fatal.toString()).toMatch(/exceeds the gateway's limit of 65536 bytes/);
    copier.close();
    expect((await direct.query(`SELECT count(*)::int AS n FROM ${TABLE} WHERE id = 2`)).rows[0].n).toBe(0);
    expect((await bystander.query('SELECT 9 AS nine')).rows[0].nine).toBe(9);
    await bystander.end();
  }, 60_000);
});

describe('graceful drain (PostgreSQL)', () => {
  live('a running statement finishes and its client gets the result; an idle session ends at once with 57P01; new connections are refused', async () => {
    const gw = await startTestGateway({ dialect: postgresDialect, targets: { app: { upstream: UPSTREAM } }, tokens: TOKENS });
    const running = await connectPg(gw, 'app', ALICE.subject, ALICE.token);
    const idle = await connectPg(gw, 'app', BOB.subject, BOB.token);
    const idleEnded = new Promise<{ code?: string; at: number }>((resolve) => {
      idle.removeAllListeners('error');
      idle.on('error', (e: PgError) => resolve({ ...(e.code ? { code: e.code } : {}), at: Date.now() }));
    });
    running.removeAllListeners('error');
    running.on('error', () => undefined);
    const result = running.query('SELECT pg_sleep(1), 11 AS eleven').then((r) => ({ eleven: r.rows[0].eleven as number, at: Date.now() }));
    await eventually('the statement to be running', async () => {
      const r = await direct.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(1), 11%' AND state = 'active'`);
      return r.rows[0].n > 0 ? true : undefined;
    });
    const t0 = Date.now();
    const closing = gw.close({ graceMs: 10_000 });
    const done = await result;
    expect(done.eleven).toBe(11);
    const idleOutcome = await idleEnded;
    expect(idleOutcome.code).toBe('57P01');
    expect(idleOutcome.at).toBeLessThanOrEqual(done.at);
    await closing;
    console.log(`[figure] pg drain of a 1 s statement: close() took ${Date.now() - t0} ms`);
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(await loginError(gw, CARL)).toBeDefined();
  }, 60_000);
});
