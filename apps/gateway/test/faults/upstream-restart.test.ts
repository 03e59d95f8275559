/**
 * The upstream restarts under load: sessions run statements through the built gateway while a
 * throwaway PostgreSQL is restarted (`pg_ctl restart -m fast`, then `-m immediate`), and while
 * a throwaway MariaDB is stopped and started (SIGTERM, then SIGKILL). Every session in flight
 * gets an error within a bound (none hangs), the gateway stays up, and a new session works as
 * soon as the server is back. Measured: how long the sessions took to get their error, and the
 * time from the server accepting connections again to the first new session that ran a
 * statement through the gateway.
 */
import { startTempMariaDb, startTempPostgres, type TempMariaDb, type TempPostgres } from '@sluice/testkit';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { myClientOptions, pgClientOptions, startGatewayProcess, waitUntil, within, type GatewayProcess } from './support.js';

const SESSIONS = 8;
/** Longest a statement in flight may wait for its error once the restart began. */
const SETTLE_MS = 15_000;
/** Longest from the server being back to a working new session. */
const RECOVER_MS = 15_000;

interface Session {
  query(sql: string): Promise<unknown>;
  close(): Promise<void>;
}

interface Driver {
  open(): Promise<Session>;
  /** A statement that keeps the session busy for a while. */
  readonly slow: string;
}

function pgDriver(gw: GatewayProcess): Driver {
  return {
    slow: 'SELECT pg_sleep(0.3) AS slept',
    async open() {
      const c = new pg.Client(pgClientOptions(gw));
      c.on('error', () => undefined);
      await c.connect();
      return { query: (sql) => c.query(sql), close: () => c.end().catch(() => undefined) };
    },
  };
}

function myDriver(gw: GatewayProcess): Driver {
  return {
    slow: 'SELECT SLEEP(0.3) AS slept',
    async open() {
      const c = await mysql.createConnection(myClientOptions(gw));
      c.on('error', () => undefined);
      return {
        query: (sql) => c.query(sql),
        async close() {
          c.destroy();
        },
      };
    },
  };
}

interface Outcome {
  /** Longest time from the start of the restart to a session's error. */
  readonly slowestErrorMs: number;
  /** Distinct error messages the sessions got. */
  readonly errors: string[];
  /** Time from the server accepting again to the first statement through a new session. */
  readonly recoverMs: number;
  readonly restartMs: number;
}

/** Load on SESSIONS sessions, `restart()`, then: errors settle, a new session works. */
async function restartUnderLoad(driver: Driver, restart: () => Promise<void>, gw: GatewayProcess): Promise<Outcome> {
  const sessions = await Promise.all(Array.from({ length: SESSIONS }, () => driver.open()));
  let restarting = 0;
  let okBefore = 0;
  const settled: { at: number; message: string }[] = [];
  const loops = sessions.map(async (s, i) => {
    for (let n = 0; ; n++) {
      try {
        await s.query(n % 2 === i % 2 ? driver.slow : 'SELECT 1 AS one');
        if (restarting === 0) okBefore++;
      } catch (err) {
        // SQLSTATE (node-postgres) or error number (mysql2).
        const code = (err as { code?: string }).code ?? (err as { errno?: number }).errno;
        settled.push({ at: Date.now(), message: `${code === undefined ? '' : `${code} `}${(err as Error).message}` });
        return;
      }
    }
  });
  await waitUntil(() => okBefore >= SESSIONS * 3 || settled.length > 0, 30_000, 'statements to run before the restart');
  expect(settled, 'no statement failed before the restart').toEqual([]);

  restarting = Date.now();
  await restart();
  const back = Date.now();
  // Every session in flight (all of them: each runs statements back to back) gets its error.
  await within(Promise.all(loops), SETTLE_MS, 'the sessions in flight during the restart');
  await Promise.all(sessions.map((s) => s.close()));
  expect(settled).toHaveLength(SESSIONS);
  for (const s of settled) expect(s.at - restarting).toBeLessThan(SETTLE_MS);
  expect(gw.cli.child.exitCode, 'the gateway is still running').toBeNull();

  // A new session as soon as the server is back.
  let recoverMs = -1;
  while (recoverMs < 0) {
    expect(Date.now() - back, `no new session worked within ${RECOVER_MS} ms of the server being back`).toBeLessThan(RECOVER_MS);
    try {
      const s = await within(driver.open(), RECOVER_MS, 'a new session');
      try {
        await within(s.query('SELECT 1 AS one'), RECOVER_MS, 'a statement on a new session');
        recoverMs = Date.now() - back;
      } finally {
        await s.close();
      }
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
  // And sessions keep working afterwards.
  const after = await driver.open();
  for (let i = 0; i < 20; i++) await after.query('SELECT 1 AS one');
  await after.close();
  expect(gw.cli.child.exitCode).toBeNull();
  return {
    slowestErrorMs: Math.max(...settled.map((s) => s.at - restarting)),
    errors: [...new Set(settled.map((s) => s.message))],
    recoverMs,
    restartMs: back - restarting,
  };
}

function report(name: string, o: Outcome): void {
  process.stdout.write(
    `[faults/upstream-restart] ${name}: ${SESSIONS} sessions in flight all got an error, the slowest ${o.slowestErrorMs} ms after the restart began ` +
      `(restart took ${o.restartMs} ms); first new session ${o.recoverMs} ms after the server was back; errors: ${o.errors.map((e) => JSON.stringify(e)).join(', ')}\n`,
  );
}

describe('upstream PostgreSQL restarts under load (throwaway server)', () => {
  let server: TempPostgres;
  let gw: GatewayProcess;

  beforeAll(async () => {
    server = await startTempPostgres({ config: ['max_connections = 60'] });
    gw = await startGatewayProcess({ postgres: server.url('postgres', undefined, 'postgres') });
  }, 120_000);

  afterAll(async () => {
    await gw?.cli.stop();
    await server?.stop();
  }, 60_000);

  it('pg_ctl restart -m fast: sessions in flight get an error, new sessions work once it is back', async () => {
    report('PostgreSQL restart -m fast', await restartUnderLoad(pgDriver(gw), () => server.restart('fast'), gw));
  }, 120_000);

  it('pg_ctl restart -m immediate (a crash): the same', async () => {
    report('PostgreSQL restart -m immediate', await restartUnderLoad(pgDriver(gw), () => server.restart('immediate'), gw));
  }, 120_000);
});

describe('upstream MariaDB stops and starts under load (throwaway server)', () => {
  let server: TempMariaDb;
  let gw: GatewayProcess;

  beforeAll(async () => {
    server = await startTempMariaDb();
    gw = await startGatewayProcess({ mysql: server.url('root') });
  }, 120_000);

  afterAll(async () => {
    await gw?.cli.stop();
    await server?.stop();
  }, 60_000);

  it('stop (SIGTERM) and start: sessions in flight get an error, new sessions work once it is back', async () => {
    report('MariaDB stop/start', await restartUnderLoad(myDriver(gw), () => server.restart(), gw));
  }, 120_000);

  it('killed (SIGKILL) and started: the same', async () => {
    report('MariaDB kill/start', await restartUnderLoad(myDriver(gw), () => server.restart({ kill: true }), gw));
  }, 120_000);
});
