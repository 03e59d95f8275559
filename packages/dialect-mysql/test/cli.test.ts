/**
 * The mysql command-line client (MariaDB 10.11) end to end through the gateway against the real
 * MariaDB: what a person at a terminal or a script fed to it sees. The client runs as a child
 * process; the gateway runs in this process and keeps serving while it waits.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireService, startTestGateway, type TestGateway } from '@sluice/testkit';
import type mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { mysqlDialect } from '../src/index.js';
import { directConnection, liveTest, mysqlCli, statementRecords, UPSTREAM } from './support.js';

const DEV = { subject: 'dev@example.com', kind: 'human', groups: ['developers'], token: 'dev-cli-my-token' } as const;
const VIEWER = { subject: 'viewer@example.com', kind: 'human', groups: ['viewers'], token: 'viewer-cli-my-token' } as const;

const POLICY = {
  rules: [
    { name: 'developers-data', identities: { groups: ['developers'] }, operations: ['read', 'write', 'ddl', 'transaction', 'session-setting'], effect: 'allow' },
    { name: 'viewers-read', identities: { groups: ['viewers'] }, operations: ['read', 'session-setting'], effect: 'allow' },
  ],
};

let gw: TestGateway;
let available = false;
let direct: mysql.Connection;
let scripts: string;

beforeAll(async () => {
  available = await requireService('MariaDB', '127.0.0.1', 3306);
  if (!available) return;
  gw = await startTestGateway({ dialect: mysqlDialect, targets: { app: { upstream: UPSTREAM } }, tokens: [DEV, VIEWER], policy: POLICY });
  direct = await directConnection();
  await direct.query('DROP TABLE IF EXISTS cli_my_t, cli_my_script');
  await direct.query('DROP DATABASE IF EXISTS cli_my_db');
  await direct.query('CREATE TABLE cli_my_t (id INT PRIMARY KEY, note VARCHAR(40))');
  await direct.query("INSERT INTO cli_my_t VALUES (1, 'one'), (2, NULL), (3, 'drei ☃')");
  await direct.query('CREATE DATABASE cli_my_db');
  await direct.query('CREATE TABLE cli_my_db.cli_my_elsewhere (id INT)');
  scripts = mkdtempSync(join(tmpdir(), 'sluice-cli-my-'));
});

afterAll(async () => {
  if (direct) {
    await direct.query('DROP TABLE IF EXISTS cli_my_t, cli_my_script');
    await direct.query('DROP DATABASE IF EXISTS cli_my_db');
    await direct.end();
  }
  await gw?.close();
  if (scripts) rmSync(scripts, { recursive: true, force: true });
});

const live = liveTest(() => available);

/** The mysql client logged in as `who` to target `app`. */
const cli = (who: { subject: string; token: string }, args: readonly string[], input?: string) =>
  mysqlCli(['-h', '127.0.0.1', '-P', String(gw.port), '-u', who.subject, `-p${who.token}`, 'app', ...args], input);

const tableExists = async (table: string) => {
  const [rows] = await direct.query<mysql.RowDataPacket[]>("SELECT COUNT(*) AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'test' AND TABLE_NAME = ?", [table]);
  return rows[0]!.n === 1;
};

describe('the mysql command-line client through the gateway', () => {
  live('runs a query and prints the rows, NULLs and UTF-8 as against the server itself', async () => {
    const r = await cli(DEV, ['-e', 'SELECT id, note FROM cli_my_t ORDER BY id']);
    expect(r).toEqual({ code: 0, stdout: 'id\tnote\n1\tone\n2\tNULL\n3\tdrei ☃\n', stderr: '' });
    const table = await cli(DEV, ['--table', '-e', 'SELECT COUNT(*) AS n FROM cli_my_t']);
    expect(table.stdout).toBe('+---+\n| n |\n+---+\n| 3 |\n+---+\n');
    // --enable-cleartext-plugin is accepted (MariaDB's client only says it is obsolete).
    const vertical = await cli(DEV, ['--enable-cleartext-plugin', '-e', 'SELECT id, note FROM cli_my_t WHERE id = 3\\G']);
    expect(vertical).toEqual({
      code: 0,
      stdout: "WARNING: option '--enable-cleartext-plugin' is obsolete.\n*************************** 1. row ***************************\n  id: 3\nnote: drei ☃\n",
      stderr: '',
    });
    const rec = statementRecords(await gw.auditRecords(), (r) => r.text === 'select id, note from cli_my_t order by id').at(-1);
    expect(rec).toMatchObject({ actor: { subject: DEV.subject }, target: 'app', outcome: 'ok', rows: 3 });
  });

  live('a refused DROP TABLE shows ERROR 1142 (42000) with the guardrail, and nothing is dropped', async () => {
    const r = await cli(DEV, ['-e', 'DROP TABLE cli_my_t']);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    // The client echoes a failed statement, then the error, as it does for the server's own.
    expect(r.stderr).toMatch(/^-+\nDROP TABLE cli_my_t\n-+\n\nERROR 1142 \(42000\) at line 1: blocked by guardrail "drop-table": .*cli_my_t.*; guardrail "drop-table" can be switched off/);
    expect(await tableExists('cli_my_t')).toBe(true);
    // A read-only identity is refused a write the same way, naming the reason.
    const write = await cli(VIEWER, ['-e', "UPDATE cli_my_t SET note = 'x' WHERE id = 1"]);
    expect(write.stderr).toMatch(/\nERROR 1142 \(42000\) at line 1: denied: no policy rule allows write/);
  });

  live('a batch of statements runs in order; an error stops it unless --force, with the line of the statement', async () => {
    const batch = "INSERT INTO cli_my_t VALUES (10, 'ten'); SELECT note FROM cli_my_t WHERE id = 10; UPDATE cli_my_t SET note = 'TEN' WHERE id = 10; SELECT note FROM cli_my_t WHERE id = 10; DELETE FROM cli_my_t WHERE id = 10";
    expect(await cli(DEV, ['-N', '-e', batch])).toEqual({ code: 0, stdout: 'ten\nTEN\n', stderr: '' });
    const script = "SELECT 'before';\nSELECT * FROM cli_my_nope;\nSELECT 'after';\n";
    const stopped = await cli(DEV, ['-N'], script);
    // Exactly what the same script gives against the server itself.
    const without = await mysqlCli(['-h', '127.0.0.1', '-P', '3306', '-u', 'root', 'test', '-N'], script);
    expect(without.stderr).toContain('ERROR 1146 (42S02) at line 2');
    expect(stopped).toEqual(without);
    expect(stopped.code).toBe(1);
    expect(stopped.stdout).toBe('before\n');
    const forced = await cli(DEV, ['-N', '--force'], "SELECT 'before';\nDROP TABLE cli_my_t;\nSELECT 'after';\n");
    expect(forced.stdout).toBe('before\nafter\n');
    expect(forced.stderr).toMatch(/\nERROR 1142 \(42000\) at line 2: blocked by guardrail "drop-table"/);
    expect(await tableExists('cli_my_t')).toBe(true);
  });

  live('several statements in one request (a custom delimiter) come back as several results', async () => {
    const r = await cli(DEV, ['-N'], "DELIMITER //\nSELECT 1; SELECT 'two' UNION ALL SELECT 'three'; INSERT INTO cli_my_t VALUES (20, 'twenty'); SELECT note FROM cli_my_t WHERE id = 20 //\nDELIMITER ;\nDELETE FROM cli_my_t WHERE id = 20;\n");
    expect(r).toEqual({ code: 0, stdout: '1\ntwo\nthree\ntwenty\n', stderr: '' });
    const parts = statementRecords(await gw.auditRecords(), (r) => r.phase === 'complete' && r.actor.subject === DEV.subject).slice(-5);
    expect(parts.map((p) => [p.text, p.outcome])).toEqual([
      ['select ?', 'ok'],
      ['select ? union all select ?', 'ok'],
      ['insert into cli_my_t values (?, ?)', 'ok'],
      ['select note from cli_my_t where id = ?', 'ok'],
      ['delete from cli_my_t where id = ?', 'ok'],
    ]);
    // A request with one refused statement runs none of it.
    const refused = await cli(DEV, ['-N'], "DELIMITER //\nINSERT INTO cli_my_t VALUES (21, 'never'); DROP TABLE cli_my_t //\n");
    expect(refused.stderr).toMatch(/\nERROR 1142 \(42000\) at line 2: blocked by guardrail "drop-table"/);
    const [rows] = await direct.query<mysql.RowDataPacket[]>('SELECT COUNT(*) AS n FROM cli_my_t WHERE id = 21');
    expect(rows[0]!.n).toBe(0);
  });

  live('a script on stdin and one read with source: comments, a procedure body, use and status', async () => {
    const file = join(scripts, 'setup.sql');
    writeFileSync(
      file,
      [
        '-- a script as a migration tool writes it',
        'CREATE TABLE cli_my_script (id INT PRIMARY KEY, label VARCHAR(20));',
        "/* several rows */ INSERT INTO cli_my_script VALUES (1, 'a'), (2, 'b;c');",
        '# a MySQL-style comment',
        "SELECT COUNT(*), GROUP_CONCAT(label ORDER BY id SEPARATOR '|') FROM cli_my_script;",
        '',
      ].join('\n'),
    );
    const r = await cli(DEV, ['-N'], `source ${file}\nuse cli_my_db\nSELECT DATABASE(), COUNT(*) FROM cli_my_elsewhere;\nuse test\nstatus\n`);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    const lines = r.stdout.split('\n');
    expect(lines.slice(0, 2)).toEqual(['2\ta|b;c', 'cli_my_db\t0']);
    // `status` asks the server (COM_STATISTICS) and shows the gateway's connection id.
    expect(r.stdout).toMatch(/Connection id:\s+\d+/);
    expect(r.stdout).toMatch(/Current database:\s+test/);
    expect(r.stdout).toMatch(/Uptime:\s+/);
    expect(r.stdout).toMatch(/Threads: \d+\s+Questions: \d+/);
    expect(await tableExists('cli_my_script')).toBe(true);
    // `use` went as COM_INIT_DB, decided as the USE it stands for.
    const initDb = statementRecords(await gw.auditRecords(), (x) => x.protocol === 'init-db' && x.phase === 'complete').slice(-2);
    expect(initDb.map((x) => [x.text, x.outcome])).toEqual([
      ['use `cli_my_db`', 'ok'],
      ['use `test`', 'ok'],
    ]);
  });

  live('a login with a wrong token is refused with ERROR 1045 (28000) and exit code 1', async () => {
    const r = await mysqlCli(['-h', '127.0.0.1', '-P', String(gw.port), '-u', DEV.subject, '-pnot-the-token', 'app', '-e', 'SELECT 1']);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^ERROR 1045 \(28000\): authentication failed/);
    const unknown = await mysqlCli(['-h', '127.0.0.1', '-P', String(gw.port), '-u', DEV.subject, `-p${DEV.token}`, 'nope', '-e', 'SELECT 1']);
    expect(unknown.stderr).toMatch(/^ERROR 1049 \(42000\): no target named "nope"/);
    const refused = (await gw.auditRecords()).filter((x) => x.type === 'connect' && x.outcome === 'refused');
    expect(refused.slice(-2).map((x) => x.type === 'connect' && x.username)).toEqual([DEV.subject, DEV.subject]);
    expect(JSON.stringify(refused)).not.toContain('not-the-token');
  });
});
