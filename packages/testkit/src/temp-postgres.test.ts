import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTempPostgres, type TempPostgres } from './temp-postgres.js';

function psqlOverTcp(url: string, sql: string): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync('psql', ['-X', '-A', '-t', '-d', url, '-c', sql], {
    encoding: 'utf8',
    env: { ...process.env, PGSSLMODE: 'disable', PGCONNECT_TIMEOUT: '10' },
  });
  return { status: result.status, stdout: result.stdout.trim(), stderr: result.stderr };
}

describe('startTempPostgres', () => {
  let pg: TempPostgres;

  beforeAll(async () => {
    pg = await startTempPostgres({
      auth: 'md5',
      users: [
        { name: 'alice', password: "s3cret'pw", encryption: 'scram-sha-256' },
        { name: 'bob', password: 'hunter2', encryption: 'md5' },
      ],
    });
  }, 120_000);

  afterAll(async () => {
    await pg?.stop();
  }, 60_000);

  it('listens on 127.0.0.1 at the reported port', () => {
    expect(pg.host).toBe('127.0.0.1');
    expect(pg.port).toBeGreaterThan(0);
    expect(pg.version).toBeGreaterThanOrEqual(12);
    expect(pg.url('alice')).toBe(`postgresql://alice:s3cret'pw@127.0.0.1:${pg.port}/postgres`);
  });

  it('lets SCRAM-stored and md5-stored users log in with their passwords', () => {
    const alice = psqlOverTcp(pg.url('alice'), 'select current_user');
    expect(alice.stderr).toBe('');
    expect(alice.stdout).toBe('alice');
    const bob = psqlOverTcp(pg.url('bob'), 'select current_user');
    expect(bob.stdout).toBe('bob');
    const su = psqlOverTcp(pg.url(), 'select current_user');
    expect(su.stdout).toBe('postgres');
  });

  it('stores the passwords with the requested method', async () => {
    const out = await pg.psql(
      "select rolname || ':' || split_part(rolpassword, '$', 1) from pg_authid where rolname in ('alice','bob') order by 1",
    );
    const lines = out.trim().split('\n');
    expect(lines[0]).toBe('alice:SCRAM-SHA-256');
    expect(lines[1]?.startsWith('bob:md5')).toBe(true);
  });

  it('rejects a wrong password', () => {
    const wrong = psqlOverTcp(pg.url('alice', 'nope'), 'select 1');
    expect(wrong.status).not.toBe(0);
    expect(wrong.stderr).toMatch(/password authentication failed/);
  });

  it('restart, pause and resume keep the port and the data; a paused server refuses connections', async () => {
    await pg.psql('CREATE TABLE IF NOT EXISTS kept (n int); INSERT INTO kept VALUES (7);');
    await pg.restart('fast');
    expect(psqlOverTcp(pg.url('alice'), 'select 1').stdout).toBe('1');
    await pg.restart('immediate');
    expect((await pg.psql('SELECT sum(n) FROM kept')).trim()).toBe('7');
    await pg.pause();
    const refused = psqlOverTcp(pg.url('alice'), 'select 1');
    expect(refused.status).not.toBe(0);
    expect(refused.stderr).toMatch(/refused|could not connect/i);
    await pg.resume();
    expect(psqlOverTcp(pg.url('alice'), 'select 1').stdout).toBe('1');
    expect((await pg.psql('SELECT sum(n) FROM kept')).trim()).toBe('7');
  }, 120_000);

  it('stop() removes the directory and is idempotent', async () => {
    const other = await startTempPostgres();
    expect(existsSync(other.dataDir)).toBe(true);
    expect(psqlOverTcp(other.url(), 'select 1').stdout).toBe('1');
    await other.stop();
    expect(existsSync(other.socketDir)).toBe(false);
    await other.stop();
  }, 120_000);
});
