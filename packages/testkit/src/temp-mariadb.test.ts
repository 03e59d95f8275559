import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTempMariaDb, type TempMariaDb } from './temp-mariadb.js';

/** The mariadb client over TCP (no option files, TLS off). */
function clientOverTcp(db: TempMariaDb, user: string, password: string, sql: string): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(
    'mariadb',
    ['--no-defaults', '--protocol=TCP', '-h', db.host, '-P', String(db.port), '-u', user, `-p${password}`, '--ssl=0', '--batch', '--skip-column-names', '-e', sql],
    { encoding: 'utf8', timeout: 20_000 },
  );
  return { status: result.status, stdout: result.stdout.trim(), stderr: result.stderr };
}

describe('startTempMariaDb', () => {
  let db: TempMariaDb;

  beforeAll(async () => {
    db = await startTempMariaDb({ users: [{ name: 'alice', password: "s3cret'pw\\x" }] });
  }, 120_000);

  afterAll(async () => {
    await db?.stop();
  }, 60_000);

  it('listens on 127.0.0.1 at the reported port and runs SQL as root over the socket', async () => {
    expect(db.host).toBe('127.0.0.1');
    expect(db.port).toBeGreaterThan(0);
    expect(db.version).toMatch(/MariaDB/);
    expect((await db.query('SELECT CURRENT_USER(), @@port, @@have_ssl;')).trim()).toBe(`root@localhost\t${db.port}\tDISABLED`);
    expect(db.url('alice')).toBe(`mysql://alice:${encodeURIComponent("s3cret'pw\\x")}@127.0.0.1:${db.port}/test`);
  });

  it('creates users that log in over TCP with their passwords, and nobody else', () => {
    const alice = clientOverTcp(db, 'alice', "s3cret'pw\\x", 'SELECT CURRENT_USER(), DATABASE()');
    expect(alice.stderr).toBe('');
    expect(alice.stdout).toBe('alice@%\tNULL');
    expect(clientOverTcp(db, 'root', db.rootPassword, 'SELECT 1').stdout).toBe('1');
    const wrong = clientOverTcp(db, 'alice', 'nope', 'SELECT 1');
    expect(wrong.status).not.toBe(0);
    expect(wrong.stderr).toMatch(/Access denied/);
    expect(clientOverTcp(db, 'root', '', 'SELECT 1').stderr).toMatch(/Access denied/);
  });

  it('reports a failing statement', async () => {
    await expect(db.query('SELECT * FROM no_such_table;', 'test')).rejects.toThrow(/no_such_table/);
  });

  it('stop() removes the directory and is idempotent', async () => {
    const other = await startTempMariaDb();
    expect(existsSync(other.socketPath)).toBe(true);
    expect((await other.query('SELECT 1;')).trim()).toBe('1');
    expect(other.serverLog()).toMatch(/ready for connections/);
    await other.stop();
    expect(existsSync(other.dir)).toBe(false);
    await other.stop();
  }, 120_000);
});
