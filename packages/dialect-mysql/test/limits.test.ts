/**
 * Limits, timeouts and the graceful drain of the MySQL dialect, against the real MariaDB with
 * mysql2 and the mysql command-line client: connection limits (1040) and statement rates (1226)
 * per identity and per source address, the idle session and idle-in-transaction timeouts (4031
 * ER_CLIENT_INTERACTION_TIMEOUT, then close), the auth timeout, message size on one packet and
 * on a command joined across 16 MiB packets (1153), and a drain that lets a running statement
 * finish while idle sessions end with 1053.
 */
import net from 'node:net';
import type { AuditRecord } from '@sluice/core';
import { requireService, startTestGateway, type TestGateway } from '@sluice/testkit';
import type mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { mysqlDialect } from '../src/index.js';
import { connectMysql } from './mysql-driver.js';
import { closedSocket, coreOf, directConnection, eventually, liveTest, mysqlCli, UPSTREAM } from './support.js';

const ALICE = { subject: 'alice-mylimits', kind: 'human', groups: ['users'], token: 'alice-mylimits-token' } as const;
const BOB = { subject: 'bob-mylimits', kind: 'human', groups: ['users'], token: 'bob-mylimits-token' } as const;
const CARL = { subject: 'carl-mylimits', kind: 'agent', groups: ['users'], token: 'carl-mylimits-token' } as const;
const TOKENS = [ALICE, BOB, CARL];
const TABLE = 'sluice_limits_my';

let available = false;
let direct: mysql.Connection;
beforeAll(async () => {
  available = await requireService('MariaDB', '127.0.0.1', 3306);
  if (!available) return;
  direct = await directConnection();
  await direct.query(`DROP TABLE IF EXISTS ${TABLE}`);
  await direct.query(`CREATE TABLE ${TABLE} (id int primary key, note longtext) ENGINE=InnoDB`);
});
afterAll(async () => {
  if (!direct) return;
  await direct.query(`DROP TABLE IF EXISTS ${TABLE}`);
  await direct.end();
});
const live = liveTest(() => available);

type MyError = Error & { errno?: number; sqlState?: string; code?: string; fatal?: boolean };

async function loginError(gw: TestGateway, who: { subject: string; token: string }, extra: mysql.ConnectionOptions = {}): Promise<MyError | undefined> {
  try {
    const c = await connectMysql(gw, 'app', who.subject, who.token, extra);
    await c.end();
    return undefined;
  } catch (e) {
    return e as MyError;
  }
}

const as = (gw: TestGateway, who: { subject: string; token: string }, extra: mysql.ConnectionOptions = {}) => connectMysql(gw, 'app', who.subject, who.token, extra);
const cli = (gw: TestGateway, who: { subject: string; token: string }, extra: string[] = []) => ['-h', '127.0.0.1', '-P', String(gw.port), '-u', who.subject, `-p${who.token}`, ...extra, 'app'];

/**
 * Resolves with the error a connection gets when the gateway ends it, and when. An error packet
 * the client did not ask for reaches mysql2 as a fatal error whose `code` is the error number.
 */
function ended(c: mysql.Connection): Promise<{ err: MyError; errno: number | undefined; afterMs: number }> {
  const t0 = Date.now();
  const core = coreOf(c);
  core.removeAllListeners('error');
  return new Promise((resolve) =>
    core.on('error', (err: MyError) => {
      const code = err.code as unknown;
      resolve({ err, errno: err.errno ?? (typeof code === 'number' ? code : undefined), afterMs: Date.now() - t0 });
    }),
  );
}

describe('connection limits (MySQL)', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    if (!available) return;
    gw = await startTestGateway({
      dialect: mysqlDialect,
      targets: { app: { upstream: UPSTREAM } },
      tokens: TOKENS,
      limits: { connections: { perIdentity: 2, perSource: 4 }, identities: { [CARL.subject]: { connections: 1 } } },
    });
  });
  afterAll(async () => gw?.close());

  live('per identity: 1040 for the third session (audited); the place comes back when a session ends or its client vanishes', async () => {
    const a1 = await as(gw, ALICE);
    const a2 = await as(gw, ALICE);
    const refused = await loginError(gw, ALICE);
    expect(refused?.errno).toBe(1040);
    expect(refused?.message).toMatch(/too many connections for identity alice-mylimits: the gateway allows 2 at a time/);
    const b = await as(gw, BOB);
    expect((await b.query('SELECT 1 AS one'))[0]).toEqual([{ one: 1 }]);
    await a1.end();
    // The place comes back when a session ends, and when its client vanishes without a word.
    const aliceSession = async () => {
      try {
        return await as(gw, ALICE);
      } catch {
        return undefined;
      }
    };
    const a3 = await eventually('a session after one ended', aliceSession, 15_000);
    (coreOf(a2) as unknown as { stream: net.Socket }).stream.destroy();
    const a4 = await eventually('a session after a client vanished', aliceSession, 15_000);
    const records = await gw.auditRecords();
    const refusals = records.filter((r) => r.type === 'connect' && r.outcome === 'refused' && /too many connections/.test(r.reason ?? ''));
    expect(refusals.length).toBeGreaterThanOrEqual(1);
    expect(refusals[0]).toMatchObject({ dialect: 'mysql', actor: { subject: ALICE.subject } });
    for (const c of [b, a3, a4]) await c.end();
  }, 60_000);

  live('per source address and a per-identity override; the mysql CLI gets the same error; another source address is not affected', async () => {
    const carl = await as(gw, CARL);
    expect(await loginError(gw, CARL)).toMatchObject({ errno: 1040, message: expect.stringMatching(/identity carl-mylimits: the gateway allows 1/) });
    const others = [await as(gw, ALICE), await as(gw, ALICE), await as(gw, BOB)];
    expect(await loginError(gw, BOB)).toMatchObject({ errno: 1040, message: expect.stringMatching(/source address 127\.0\.0\.1: the gateway allows 4/) });
    const viaCli = await mysqlCli([...cli(gw, BOB), '--enable-cleartext-plugin', '-e', 'SELECT 1']);
    expect(viaCli.code).not.toBe(0);
    expect(viaCli.stderr).toMatch(/1040.*too many connections for source address 127\.0\.0\.1/s);
    // Another loopback address is another source for the gateway.
    const elsewhere = await as(gw, BOB, { stream: () => net.connect({ host: gw.host, port: gw.port, localAddress: '127.0.0.2' }) });
    expect((await elsewhere.query('SELECT 3 AS three'))[0]).toEqual([{ three: 3 }]);
    for (const c of [carl, ...others, elsewhere]) await c.end();
  }, 60_000);
});

describe('statement rate limits (MySQL)', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    if (!available) return;
    gw = await startTestGateway({
      dialect: mysqlDialect,
      targets: { app: { upstream: UPSTREAM } },
      tokens: TOKENS,
      limits: { statementsPerSecond: { perIdentity: 5, burstSeconds: 1 } },
    });
  });
  afterAll(async () => gw?.close());

  live('past its burst an identity gets 1226 (text and prepared statements), the session stays usable, others are not slowed, refusals are recorded', async () => {
    const a = await as(gw, ALICE);
    const b = await as(gw, BOB);
    const errors: MyError[] = [];
    let ok = 0;
    for (let i = 0; i < 12; i++) {
      try {
        if (i % 2 === 0) await a.query(`SELECT ${i} AS n`);
        else await a.execute('SELECT ? AS n', [i]);
        ok++;
      } catch (e) {
        errors.push(e as MyError);
      }
    }
    expect(ok).toBeGreaterThanOrEqual(4);
    expect(errors.length).toBeGreaterThanOrEqual(1);
    for (const e of errors) {
      expect(e.errno).toBe(1226);
      expect(e.message).toMatch(/statement rate limit reached for identity alice-mylimits/);
    }
    for (let i = 0; i < 5; i++) expect((await b.query('SELECT 1 AS one'))[0]).toEqual([{ one: 1 }]);
    const answer = await eventually('a statement after the bucket refilled', async () => {
      try {
        return ((await a.query('SELECT 42 AS answer'))[0] as { answer: number }[])[0]!.answer;
      } catch (e) {
        expect((e as MyError).errno).toBe(1226);
        return undefined;
      }
    }, 15_000);
    expect(answer).toBe(42);
    const records: AuditRecord[] = await gw.auditRecords();
    const limited = records.filter((r) => r.type === 'statement' && r.rule === 'rate-limit');
    expect(limited.length).toBeGreaterThanOrEqual(errors.length);
    expect(limited[0]).toMatchObject({ dialect: 'mysql', decision: 'deny', outcome: 'not-executed', reason: 'statement rate limit of 5/s for identity alice-mylimits reached' });
    await a.end();
    await b.end();
  }, 60_000);

  live('the mysql CLI with --force: statements past the rate fail with 1226 and the later ones run', async () => {
    const script = `${Array.from({ length: 15 }, (_, i) => `SELECT ${i} AS n;`).join('\n')}\nSELECT SLEEP(0);\n`;
    const first = await mysqlCli([...cli(gw, CARL), '--enable-cleartext-plugin', '--force', '-N', '-B'], script);
    expect(first.stderr).toMatch(/ERROR 1226/);
    await new Promise((r) => setTimeout(r, 1500));
    const later = await mysqlCli([...cli(gw, CARL), '--enable-cleartext-plugin', '-N', '-B', '-e', "SELECT 'after the pause'"]);
    expect(later.stdout).toMatch(/after the pause/);
  }, 60_000);
});

describe('idle timeouts (MySQL)', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    if (!available) return;
    gw = await startTestGateway({
      dialect: mysqlDialect,
      targets: { app: { upstream: UPSTREAM } },
      tokens: TOKENS,
      limits: { idleSessionTimeoutMs: 300, idleInTransactionTimeoutMs: 400 },
    });
  });
  afterAll(async () => gw?.close());

  live('an idle session gets 4031 and is closed after the timeout; a statement running longer is not idle', async () => {
    const busy = await as(gw, BOB);
    const c = await as(gw, ALICE);
    const gone = ended(c);
    const [rows] = await busy.query('SELECT SLEEP(1) AS s, 7 AS seven');
    expect(rows).toEqual([{ s: 0, seven: 7 }]);
    const { err, errno, afterMs } = await gone;
    expect(errno).toBe(4031);
    expect(err.message).toMatch(/idle-session timeout/);
    expect(afterMs).toBeGreaterThanOrEqual(250);
    expect(afterMs).toBeLessThan(10_000);
    console.log(`[figure] mysql idle-session timeout 300 ms: session ended after ${afterMs} ms`);
    await closedSocket(c);
    const records = await gw.auditRecords();
    expect(records.find((r) => r.type === 'disconnect' && r.actor.subject === ALICE.subject)).toMatchObject({ reason: 'idle-timeout' });
    coreOf(busy).removeAllListeners('error');
    coreOf(busy).on('error', () => undefined);
  }, 60_000);

  live('idle inside a transaction (SERVER_STATUS_IN_TRANS): 4031, the transaction rolled back and the upstream connection gone', async () => {
    const c = await as(gw, ALICE);
    await c.query('START TRANSACTION');
    await c.query(`INSERT INTO ${TABLE} VALUES (1, 'in a transaction left open')`);
    const { err, errno, afterMs } = await ended(c);
    expect(errno).toBe(4031);
    expect(err.message).toMatch(/idle-in-transaction timeout/);
    expect(afterMs).toBeLessThan(10_000);
    console.log(`[figure] mysql idle-in-transaction timeout 400 ms: session ended after ${afterMs} ms`);
    const [rows] = await direct.query(`SELECT count(*) AS n FROM ${TABLE} WHERE id = 1`);
    expect(rows).toEqual([{ n: 0 }]);
    const records = await gw.auditRecords();
    expect(records.filter((r) => r.type === 'disconnect' && r.reason === 'idle-in-transaction-timeout')).toHaveLength(1);
  }, 60_000);
});

describe('auth timeout and message size (MySQL)', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    if (!available) return;
    gw = await startTestGateway({
      dialect: mysqlDialect,
      targets: { app: { upstream: UPSTREAM } },
      tokens: TOKENS,
      authTimeoutMs: 300,
      maxMessageBytes: 17 * 1024 * 1024,
    });
  });
  afterAll(async () => gw?.close());

  live('a client that sends no handshake response within authTimeoutMs gets an error and is closed', async () => {
    const s = net.connect({ host: gw.host, port: gw.port });
    let received = Buffer.alloc(0);
    s.on('data', (d: Buffer) => (received = Buffer.concat([received, d])));
    const t0 = Date.now();
    await new Promise((r) => s.once('close', r));
    expect(Date.now() - t0).toBeLessThan(10_000);
    // The greeting, then an ERR packet (0xff) saying why.
    expect(received.includes(Buffer.from('authentication did not complete within 300 ms'))).toBe(true);
  }, 30_000);

  live('a command over the limit, as one packet and joined across 16 MiB packets, gets 1153 and ends only its session', async () => {
    const bystander = await as(gw, BOB);
    // One packet of 18 MiB would be split by the client: mysql2 sends 16 MiB, then the rest.
    const big = await as(gw, ALICE);
    const gone = ended(big);
    const err = await big.query(`SELECT '${'x'.repeat(18 * 1024 * 1024)}' AS big`).then(
      () => undefined,
      (e: MyError) => e,
    );
    expect(err?.errno ?? (await gone).errno).toBe(1153);
    expect(err?.message ?? '').toMatch(/exceeds the gateway's limit of 17825792 bytes/);
    await closedSocket(big);
    // The gateway keeps serving: a new session of the same identity, and the bystander.
    const fits = await as(gw, ALICE);
    const [rows] = await fits.query(`SELECT length('${'y'.repeat(1024 * 1024)}') AS n`);
    expect(rows).toEqual([{ n: 1024 * 1024 }]);
    expect((await bystander.query('SELECT 9 AS nine'))[0]).toEqual([{ nine: 9 }]);
    await fits.end();
    await bystander.end();
  }, 120_000);
});

describe('graceful drain (MySQL)', () => {
  live('a running statement finishes and its client gets the result; an idle session gets 1053 at once; new connections are refused', async () => {
    const gw = await startTestGateway({ dialect: mysqlDialect, targets: { app: { upstream: UPSTREAM } }, tokens: TOKENS });
    const running = await as(gw, ALICE);
    const idle = await as(gw, BOB);
    const idleEnded = ended(idle).then((e) => ({ ...e, at: Date.now() }));
    coreOf(running).removeAllListeners('error');
    coreOf(running).on('error', () => undefined);
    const result = running.query('SELECT SLEEP(1) AS s, 11 AS eleven').then(([rows]) => ({ rows, at: Date.now() }));
    await eventually('the statement to be running', async () => {
      const [rows] = await direct.query("SELECT count(*) AS n FROM information_schema.processlist WHERE info LIKE 'SELECT SLEEP(1) AS s, 11%'");
      return (rows as { n: number }[])[0]!.n > 0 || undefined;
    });
    const t0 = Date.now();
    const closing = gw.close({ graceMs: 10_000 });
    const done = await result;
    expect(done.rows).toEqual([{ s: 0, eleven: 11 }]);
    const idleOutcome = await idleEnded;
    expect(idleOutcome.errno).toBe(1053);
    expect(idleOutcome.at).toBeLessThanOrEqual(done.at);
    await closing;
    console.log(`[figure] mysql drain of a 1 s statement: close() took ${Date.now() - t0} ms`);
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(await loginError(gw, CARL)).toBeDefined();
  }, 60_000);
});
