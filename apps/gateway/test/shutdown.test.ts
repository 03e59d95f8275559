/**
 * Graceful shutdown of the built `sluice start` process, against the real PostgreSQL and
 * MariaDB: on SIGTERM it stops accepting at once, ends idle sessions with the native error
 * (57P01, 1053), lets statements already running finish (their clients get the results) within
 * limits.shutdownGraceMs, flushes and closes the audit trail (intact, with the statements'
 * complete records) and exits 0.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventually, requireService } from '@sluice/testkit';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, runCli, startCli, type RunningCli } from './helpers.js';

const TOKEN = 'shutdown-test-token-0123456789';

let pgUp = false;
let myUp = false;
beforeAll(async () => {
  pgUp = await requireService('PostgreSQL', '127.0.0.1', 5432);
  myUp = await requireService('MariaDB', '127.0.0.1', 3306);
});

type AuditLine = { type: string; reason?: string; phase?: string; outcome?: string; text?: string; dialect?: string; actor?: { subject: string } };

describe('SIGTERM drains the gateway process (real PostgreSQL and MariaDB)', () => {
  let dir: string;
  let gw: RunningCli | undefined;
  afterAll(async () => {
    await gw?.stop('SIGKILL');
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('running statements finish and are delivered, idle sessions get 57P01 / 1053, new connections are refused, the trail is intact, exit 0', async () => {
    if (!pgUp || !myUp) return;
    dir = mkdtempSync(join(tmpdir(), 'sluice-drain-'));
    const pgPort = await freePort();
    const myPort = await freePort();
    const configFile = join(dir, 'sluice.yaml');
    writeFileSync(
      configFile,
      `listen:
  postgres: 127.0.0.1:${pgPort}
  mysql: 127.0.0.1:${myPort}
allowPlaintextLoopback: true
targets:
  - { name: app, dialect: postgres, upstream: postgres://postgres@127.0.0.1:5432/test }
  - { name: shop, dialect: mysql, upstream: mysql://root@127.0.0.1:3306/test }
identities:
  tokens:
    - { subject: drainer, kind: agent, groups: [pipelines], token: ${TOKEN} }
policy:
  rules:
    - { name: pipelines, identities: { groups: [pipelines] }, operations: [read, transaction, session-setting], effect: allow }
limits:
  shutdownGraceMs: 10000
lineage:
  enabled: false
telemetry:
  enabled: false
audit:
  dir: ${join(dir, 'audit')}
approvals:
  dir: ${join(dir, 'approvals')}
pidFile: ${join(dir, 'sluice.pid')}
log:
  level: warn
`,
    );
    gw = startCli(['start', '--config', configFile]);
    await gw.waitFor(/listening on/);

    const pgConfig = { host: '127.0.0.1', port: pgPort, database: 'app', user: 'drainer', password: TOKEN, application_name: 'sluice-drain-test' };
    const pgRunning = new pg.Client(pgConfig);
    const pgIdle = new pg.Client(pgConfig);
    const pgIdleEnded = new Promise<string | undefined>((resolve) => pgIdle.on('error', (e: Error & { code?: string }) => resolve(e.code)));
    pgRunning.on('error', () => undefined);
    await pgRunning.connect();
    await pgIdle.connect();
    const myOptions = {
      host: '127.0.0.1',
      port: myPort,
      user: 'drainer',
      password: TOKEN,
      database: 'shop',
      authPlugins: { mysql_clear_password: () => () => Buffer.from(`${TOKEN}\0`) },
    };
    const myRunning = await mysql.createConnection(myOptions);
    const myIdle = await mysql.createConnection(myOptions);
    myRunning.on('error', () => undefined);
    const myIdleEnded = new Promise<number | undefined>((resolve) =>
      myIdle.on('error', (e: Error & { errno?: number; code?: unknown }) => resolve(e.errno ?? (typeof e.code === 'number' ? e.code : undefined))),
    );

    const pgResult = pgRunning.query('SELECT pg_sleep(1), 21 AS answer').then((r) => r.rows[0].answer as number);
    const myResult = myRunning.query('SELECT SLEEP(1) AS s, 22 AS answer').then(([rows]) => (rows as { answer: number }[])[0]!.answer);
    // Both statements are running in their servers before the signal.
    const directPg = new pg.Client({ connectionString: 'postgres://postgres@127.0.0.1:5432/test' });
    await directPg.connect();
    const directMy = await mysql.createConnection({ host: '127.0.0.1', port: 3306, user: 'root', database: 'test' });
    await eventually('the PostgreSQL statement to run', async () => {
      const r = await directPg.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'sluice-drain-test' AND state = 'active'");
      return r.rows[0].n > 0 ? true : undefined;
    });
    await eventually('the MariaDB statement to run', async () => {
      const [rows] = await directMy.query("SELECT count(*) AS n FROM information_schema.processlist WHERE info LIKE 'SELECT SLEEP(1) AS s, 22%'");
      return (rows as { n: number }[])[0]!.n > 0 ? true : undefined;
    });

    const exited = new Promise<number | null>((resolve) => gw!.child.once('exit', (code) => resolve(code)));
    const t0 = Date.now();
    gw.child.kill('SIGTERM');
    // Idle sessions end at once with the native shutdown errors.
    expect(await pgIdleEnded).toBe('57P01');
    expect(await myIdleEnded).toBe(1053);
    // New connections are refused while the running statements drain.
    const refused = await new pg.Client({ ...pgConfig, connectionTimeoutMillis: 5000 }).connect().then(
      () => 'connected',
      (e: Error & { code?: string }) => e.code ?? e.message,
    );
    expect(refused).toBe('ECONNREFUSED');
    // The running statements finish and their results are delivered.
    expect(await pgResult).toBe(21);
    expect(await myResult).toBe(22);
    // One signal only: a second one would exit at once (130).
    const code = await exited;
    const drainMs = Date.now() - t0;
    expect(code).toBe(0);
    expect(drainMs).toBeLessThan(10_000);
    // It exits once the 1 s statements are done, not at the end of the 10 s grace.
    expect(drainMs).toBeLessThan(6_000);
    console.log(`[figure] sluice start, SIGTERM with a 1 s statement running on each dialect: exit 0 after ${drainMs} ms`);
    await directPg.end();
    await directMy.end();

    const verify = runCli(['audit', 'verify', '--config', configFile]);
    expect(verify.code).toBe(0);
    const tail = runCli(['audit', 'tail', '--config', configFile, '-n', '100', '--json']);
    const records = tail.stdout.trim().split('\n').map((l) => JSON.parse(l) as AuditLine);
    const completes = records.filter((r) => r.type === 'statement' && r.phase === 'complete' && r.outcome === 'ok' && /sleep/i.test(r.text ?? ''));
    expect(completes.map((r) => r.dialect).sort()).toEqual(['mysql', 'postgres']);
    const shutdowns = records.filter((r) => r.type === 'disconnect' && r.reason === 'shutdown');
    expect(shutdowns).toHaveLength(4);
  }, 120_000);
});
