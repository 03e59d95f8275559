/**
 * Policy and guardrails through the gateway against the real MariaDB, with mysql2: what is
 * denied never reaches the database and is refused with the native access-denied error naming
 * the rule or guardrail, look-alikes run, and the session stays usable after a refusal.
 */
import { existsSync, rmSync } from 'node:fs';
import { requireService, startTestGateway, type TestGateway } from '@sluice/testkit';
import type mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { mysqlDialect } from '../src/index.js';
import { connectMysql } from './mysql-driver.js';
import { coreOf, directConnection, eventually, liveTest, statementRecords, UPSTREAM } from './support.js';

const ALICE = { subject: 'alice@example.com', kind: 'human', groups: ['analysts'], token: 'alice-policy-my-token' } as const;
const DAVE = { subject: 'dave@example.com', kind: 'human', groups: ['dba'], token: 'dave-policy-my-token' } as const;
const ETL = { subject: 'etl', kind: 'service', groups: ['pipelines'], token: 'etl-policy-my-token' } as const;
const BOT = { subject: 'report-bot', kind: 'agent', groups: ['analysts'], token: 'bot-policy-my-token' } as const;

const POLICY = {
  rules: [
    { name: 'analysts-read', identities: { groups: ['analysts'] }, operations: ['read', 'transaction', 'session-setting'], effect: 'allow' },
    { name: 'agents-no-secrets', identities: { kinds: ['agent'] }, objects: ['policy_my_secrets'], effect: 'deny' },
    {
      name: 'dba-everything',
      identities: { groups: ['dba'] },
      operations: ['read', 'write', 'ddl', 'admin', 'privilege', 'transaction', 'session-setting', 'copy-in', 'copy-out', 'unknown'],
      effect: 'allow',
    },
    { name: 'pipelines-read', identities: { groups: ['pipelines'] }, operations: ['read', 'transaction'], effect: 'allow' },
    { name: 'pipelines-write-staging', identities: { groups: ['pipelines'] }, operations: ['write'], objects: ['policy_my_staging'], effect: 'allow' },
    { name: 'etl-may-truncate-staging', identities: { subjects: ['etl'] }, targets: ['app'], objects: ['policy_my_staging'], guardrails: { truncate: 'off' } },
  ],
};

const OUTFILE = '/tmp/policy_my_outfile.csv';
const DB_USER = "'policy_my_user'@'localhost'";

let gw: TestGateway;
let available = false;
let direct: mysql.Connection;

beforeAll(async () => {
  available = await requireService('MariaDB', '127.0.0.1', 3306);
  if (!available) return;
  gw = await startTestGateway({ dialect: mysqlDialect, targets: { app: { upstream: UPSTREAM } }, tokens: [ALICE, DAVE, ETL, BOT], policy: POLICY });
  direct = await directConnection();
  await dropAll();
  await direct.query('CREATE TABLE policy_my_t (id INT PRIMARY KEY, note VARCHAR(100), extra INT)');
  await direct.query("INSERT INTO policy_my_t VALUES (1, 'a', 1), (2, 'b', 2), (3, 'c', 3)");
  await direct.query('CREATE VIEW policy_my_v AS SELECT id FROM policy_my_t');
  await direct.query('CREATE TABLE policy_my_staging (id INT)');
  await direct.query('INSERT INTO policy_my_staging VALUES (1), (2)');
  await direct.query('CREATE TABLE policy_my_secrets (id INT, secret VARCHAR(40))');
  await direct.query("INSERT INTO policy_my_secrets VALUES (1, 's3cr3t')");
  await direct.query('CREATE TABLE policy_my_drop_log (id INT, what VARCHAR(100))');
  await direct.query('CREATE DATABASE policy_my_db');
  await direct.query(`CREATE USER ${DB_USER}`);
  await direct.query(`GRANT SELECT ON test.policy_my_secrets TO ${DB_USER}`);
  rmSync(OUTFILE, { force: true });
});

async function dropAll(): Promise<void> {
  await direct.query('DROP VIEW IF EXISTS policy_my_v');
  await direct.query('DROP TABLE IF EXISTS policy_my_t, policy_my_staging, policy_my_secrets, policy_my_drop_log, policy_my_created');
  await direct.query('DROP DATABASE IF EXISTS policy_my_db');
  await direct.query(`DROP USER IF EXISTS ${DB_USER}, 'policy_my_never'@'localhost'`);
}

afterAll(async () => {
  if (direct) {
    await dropAll();
    await direct.end();
  }
  await gw?.close();
  rmSync(OUTFILE, { force: true });
});

const live = liveTest(() => available);

const as = (who: { subject: string; token: string }, extra: mysql.ConnectionOptions = {}) => connectMysql(gw, 'app', who.subject, who.token, extra);

const one = async <T = number>(sql: string, values: unknown[] = []): Promise<T> => {
  const [rows] = await direct.query<mysql.RowDataPacket[]>(sql, values);
  return Object.values(rows[0] ?? {})[0] as T;
};
const count = (table: string) => one(`SELECT COUNT(*) FROM ${table}`);
const tableExists = async (table: string) => (await one('SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?', ['test', table])) === 1;
const grants = async () => {
  const [rows] = await direct.query<mysql.RowDataPacket[]>(`SHOW GRANTS FOR ${DB_USER}`);
  return rows.map((r) => String(Object.values(r)[0])).join('\n');
};
const unchanged = async () => {
  expect(await tableExists('policy_my_t')).toBe(true);
  expect(await count('policy_my_t')).toBe(3);
  expect(await one("SELECT COUNT(*) FROM policy_my_t WHERE note = 'gone'")).toBe(0);
};

describe('policy through the gateway (MySQL)', () => {
  live('allows what a rule allows and denies the rest by default with 1142 (42000), naming why', async () => {
    const c = await as(ALICE);
    try {
      expect((await c.query('SELECT COUNT(*) AS n FROM policy_my_t'))[0]).toEqual([{ n: 3 }]);
      await expect(c.query("UPDATE policy_my_t SET note = 'x' WHERE id = 1")).rejects.toMatchObject({
        errno: 1142,
        sqlState: '42000',
        message: expect.stringMatching(/^denied: no policy rule allows write \(policy_my_t\) for alice@example\.com on target "app" \(the policy denies by default\); ask the gateway operator/),
      });
      await expect(c.query('INSERT INTO policy_my_t VALUES (4, NULL, NULL)')).rejects.toMatchObject({ errno: 1142, message: expect.stringContaining('write') });
      await expect(c.query('CREATE TABLE policy_my_created (a INT)')).rejects.toMatchObject({ errno: 1142, message: expect.stringContaining('ddl') });
      // A refusal does not end the session.
      expect((await c.query('SELECT 1 AS one'))[0]).toEqual([{ one: 1 }]);
    } finally {
      await c.end();
    }
    expect(await one('SELECT note FROM policy_my_t WHERE id = 1')).toBe('a');
    expect(await tableExists('policy_my_created')).toBe(false);
    const denied = statementRecords(await gw.auditRecords(), (r) => r.actor.subject === ALICE.subject && r.decision === 'deny');
    expect(denied.map((r) => [r.rule, r.outcome, r.operations.join()])).toEqual([
      // An UPDATE with a WHERE reads the rows it filters.
      ['default', 'not-executed', 'write,read'],
      ['default', 'not-executed', 'write'],
      ['default', 'not-executed', 'ddl'],
    ]);
  });

  live('a prepared statement (COM_STMT_PREPARE) of a denied statement is refused at prepare time and never reaches the server', async () => {
    const c = await as(ALICE);
    try {
      await expect(c.execute('DELETE FROM policy_my_t WHERE id = ?', [1])).rejects.toMatchObject({ errno: 1142, sqlState: '42000', message: expect.stringContaining('write') });
      await expect(c.prepare('UPDATE policy_my_t SET note = ? WHERE id = ?')).rejects.toMatchObject({ errno: 1142 });
      // The upstream session never prepared anything.
      const [[prepares]] = await c.query<mysql.RowDataPacket[]>("SHOW SESSION STATUS LIKE 'Com_stmt_prepare'");
      expect(Number(prepares!.Value)).toBe(0);
      // Allowed statements prepare and run as usual.
      expect((await c.execute('SELECT note FROM policy_my_t WHERE id = ?', [2]))[0]).toEqual([{ note: 'b' }]);
    } finally {
      await c.end();
    }
    await unchanged();
    const rec = statementRecords(await gw.auditRecords(), (r) => r.protocol === 'prepare' && r.actor.subject === ALICE.subject);
    expect(rec.map((r) => [r.text, r.decision, r.outcome])).toEqual([
      ['delete from policy_my_t where id = ?', 'deny', 'not-executed'],
      ['update policy_my_t set note = ? where id = ?', 'deny', 'not-executed'],
    ]);
  });

  live('an explicit deny rule for an identity kind wins over allows, however the table is named', async () => {
    const c = await as(BOT);
    try {
      expect((await c.query('SELECT COUNT(*) AS n FROM policy_my_t'))[0]).toEqual([{ n: 3 }]);
      for (const sql of [
        'SELECT * FROM policy_my_secrets',
        'SELECT * FROM `test`.`policy_my_secrets`',
        'SELECT t.id FROM policy_my_t t JOIN policy_my_secrets s ON s.id = t.id',
        'SELECT (SELECT MAX(secret) FROM test.policy_my_secrets) AS s',
        'WITH x AS (SELECT * FROM policy_my_secrets) SELECT COUNT(*) FROM x',
      ]) {
        await expect(c.query(sql), sql).rejects.toMatchObject({ errno: 1142, sqlState: '42000', message: expect.stringContaining('denied by rule "agents-no-secrets"') });
      }
      await expect(c.execute('SELECT secret FROM policy_my_secrets WHERE id = ?', [1])).rejects.toMatchObject({ errno: 1142 });
    } finally {
      await c.end();
    }
    // A human analyst reads it: the rule is about the agent.
    const human = await as(ALICE);
    expect((await human.query('SELECT secret FROM policy_my_secrets'))[0]).toEqual([{ secret: 's3cr3t' }]);
    await human.end();
  });

  live('a rule scoped to a table allows writes there only; a guardrail switched off for one identity and table stays on elsewhere', async () => {
    const etl = await as(ETL);
    try {
      await etl.query('INSERT INTO policy_my_staging VALUES (3)');
      await etl.query('INSERT INTO policy_my_staging SELECT id + 10 FROM policy_my_t WHERE id = 1');
      expect(await count('policy_my_staging')).toBe(4);
      await expect(etl.query("INSERT INTO policy_my_t VALUES (9, 'no', 0)")).rejects.toMatchObject({ errno: 1142, message: expect.stringContaining('write') });
      await etl.query('TRUNCATE TABLE policy_my_staging');
      expect(await count('policy_my_staging')).toBe(0);
      await expect(etl.query('TRUNCATE TABLE policy_my_t')).rejects.toMatchObject({ errno: 1142, message: expect.stringContaining('guardrail "truncate"') });
    } finally {
      await etl.end();
    }
    const dave = await as(DAVE);
    try {
      await expect(dave.query('TRUNCATE TABLE policy_my_staging')).rejects.toMatchObject({ errno: 1142, message: expect.stringContaining('guardrail "truncate"') });
    } finally {
      await dave.end();
    }
    await unchanged();
  });

  const guardrailCases: [guardrail: string, sql: string, check: () => Promise<void>][] = [
    ['drop-table', 'DROP TABLE policy_my_t', unchanged],
    ['drop-table', 'DROP TABLE IF EXISTS `policy_my_t`', unchanged],
    ['drop-table', 'DROP VIEW policy_my_v', async () => expect(await tableExists('policy_my_v')).toBe(true)],
    ['drop-database', 'DROP DATABASE policy_my_db', async () => expect(await one("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'policy_my_db'")).toBe(1)],
    ['drop-database', 'DROP SCHEMA IF EXISTS policy_my_db', async () => expect(await one("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'policy_my_db'")).toBe(1)],
    ['truncate', 'TRUNCATE TABLE policy_my_t', unchanged],
    ['delete-without-where', 'DELETE FROM policy_my_t', unchanged],
    ['delete-without-where', 'DELETE FROM policy_my_t WHERE 1=1', unchanged],
    ['delete-without-where', 'delete from policy_my_t where id = 5 or true', unchanged],
    ['delete-without-where', 'DELETE FROM policy_my_t LIMIT 2', unchanged],
    ['update-without-where', "UPDATE policy_my_t SET note = 'gone'", unchanged],
    ['update-without-where', "UPDATE policy_my_t SET note = 'gone' WHERE 1=1", unchanged],
    ['update-without-where', "UPDATE policy_my_t SET note = 'gone' WHERE 'a' = 'a'", unchanged],
    ['alter-drop', 'ALTER TABLE policy_my_t DROP COLUMN extra', async () => expect(await one("SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_NAME = 'policy_my_t' AND COLUMN_NAME = 'extra'")).toBe(1)],
    ['alter-drop', 'ALTER TABLE policy_my_t ADD COLUMN tmp INT, DROP COLUMN extra', async () => expect(await one("SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_NAME = 'policy_my_t' AND COLUMN_NAME = 'tmp'")).toBe(0)],
    ['grant-revoke', `GRANT SELECT ON test.policy_my_t TO ${DB_USER}`, async () => expect(await grants()).not.toContain('policy_my_t`')],
    ['grant-revoke', `REVOKE SELECT ON test.policy_my_secrets FROM ${DB_USER}`, async () => expect(await grants()).toContain('policy_my_secrets')],
    ['role-change', "CREATE USER 'policy_my_never'@'localhost'", async () => expect(await one("SELECT COUNT(*) FROM mysql.user WHERE User = 'policy_my_never'")).toBe(0)],
    ['role-change', `SET PASSWORD FOR ${DB_USER} = PASSWORD('policy-my-changed')`, async () => expect(await one("SELECT authentication_string FROM mysql.user WHERE User = 'policy_my_user'")).toBe('')],
    ['alter-system', 'SET GLOBAL max_connections = 12', async () => expect(await one('SELECT @@GLOBAL.max_connections')).not.toBe(12)],
    ['server-file', `SELECT * FROM policy_my_t INTO OUTFILE '${OUTFILE}'`, async () => expect(existsSync(OUTFILE)).toBe(false)],
    ['server-file', "LOAD DATA INFILE '/etc/hostname' INTO TABLE policy_my_drop_log", async () => expect(await count('policy_my_drop_log')).toBe(0)],
    ['server-file', "SELECT LOAD_FILE('/etc/hostname') AS f", async () => undefined],
    ['copy-program', "SELECT sys_exec('touch /tmp/policy_my_never')", async () => expect(existsSync('/tmp/policy_my_never')).toBe(false)],
    ['create-extension', "INSTALL PLUGIN policy_my_never SONAME 'policy_my_never.so'", async () => undefined],
    ['dynamic-sql', 'PREPARE policy_stmt FROM @policy_q', unchanged],
    ['dynamic-sql', 'EXECUTE IMMEDIATE @policy_q', unchanged],
    ['drop-table', "PREPARE policy_stmt FROM 'DROP TABLE policy_my_t'", unchanged],
    ['delete-without-where', "PREPARE policy_stmt FROM 'DELETE FROM policy_my_t'", unchanged],
    ['drop-table', "EXECUTE IMMEDIATE 'DROP TABLE policy_my_t'", unchanged],
    // Executable comments are code to the server.
    ['drop-table', '/*!50000 DROP TABLE policy_my_t */', unchanged],
    ['drop-table', '/*!DROP TABLE policy_my_t*/', unchanged],
    ['drop-table', '/*M!100100 DROP TABLE policy_my_t */', unchanged],
    ['truncate', "SELECT 'x' AS a; /*!40101 TRUNCATE policy_my_t */", unchanged],
    // One refused statement refuses the whole request: the SELECT before it does not run either.
    ['drop-table', "INSERT INTO policy_my_drop_log VALUES (1, 'first'); DROP TABLE policy_my_t", async () => {
      await unchanged();
      expect(await count('policy_my_drop_log')).toBe(0);
    }],
  ];

  for (const [guardrail, sql, check] of guardrailCases) {
    live(`guardrail ${guardrail} blocks: ${sql}`, async () => {
      const c = await as(DAVE, { multipleStatements: true });
      try {
        // A statement for the dynamic ones to run, were they let through.
        await c.query("SET @policy_q = 'DROP TABLE policy_my_t'");
        await expect(c.query(sql)).rejects.toMatchObject({
          errno: 1142,
          sqlState: '42000',
          message: expect.stringContaining(`blocked by guardrail "${guardrail}"`),
        });
        expect((await c.query('SELECT 1 AS ok'))[0]).toEqual([{ ok: 1 }]);
      } finally {
        await c.end();
      }
      await check();
      const rec = statementRecords(await gw.auditRecords(), (r) => r.actor.subject === DAVE.subject && r.decision === 'deny').at(-1);
      expect(rec).toMatchObject({ rule: `guardrail:${guardrail}`, guardrail, outcome: 'not-executed' });
    });
  }

  live('the refusal carries a hint naming the guardrail', async () => {
    const c = await as(DAVE);
    try {
      await expect(c.query('DROP TABLE policy_my_t')).rejects.toMatchObject({
        message: expect.stringMatching(/^blocked by guardrail "drop-table": .*policy_my_t.*; guardrail "drop-table" can be switched off/),
      });
    } finally {
      await c.end();
    }
  });

  const lookAlikes = [
    "SELECT 'DROP TABLE policy_my_t' AS text",
    'SELECT "DROP DATABASE policy_my_db" AS text',
    'SELECT 1 /* DROP TABLE policy_my_t */',
    '/* TRUNCATE policy_my_t */ SELECT 2',
    '-- DELETE FROM policy_my_t\nSELECT 3',
    '# DROP SCHEMA policy_my_db\nSELECT 4',
    "SELECT 'a\\'; DROP TABLE policy_my_t; -- ' AS backslashed",
    "SELECT 'GRANT ALL ON *.* TO x', 'INTO OUTFILE ''/tmp/x''' AS q",
    "INSERT INTO policy_my_drop_log VALUES (1, 'drop table policy_my_t')",
    'SELECT * FROM policy_my_drop_log',
    "UPDATE policy_my_t SET note = note WHERE id = 3 AND note <> 'WHERE 1=1'",
    "DELETE FROM policy_my_t WHERE note = 'x OR 1=1'",
    'DELETE FROM policy_my_t WHERE id = 99',
    'DELETE FROM policy_my_t WHERE 1 = 2',
    'ALTER TABLE policy_my_t ADD COLUMN IF NOT EXISTS dropped_flag INT',
    "ALTER TABLE policy_my_t COMMENT = 'drop table policy_my_t'",
    "SET @policy_text = 'TRUNCATE policy_my_t'",
    "PREPARE policy_ok FROM 'SELECT id FROM policy_my_t WHERE id = ?'",
    "SELECT note INTO @policy_note FROM policy_my_t WHERE id = 1",
    'SHOW GRANTS',
    "SELECT '/*!50000 DROP TABLE policy_my_t */' AS executable_in_a_string",
  ];
  for (const sql of lookAlikes) {
    live(`look-alike runs: ${sql.replace(/\n/g, ' ')}`, async () => {
      const c = await as(DAVE);
      try {
        await c.query(sql);
      } finally {
        await c.end();
      }
      await unchanged();
      expect(await one("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'policy_my_db'")).toBe(1);
      const rec = statementRecords(await gw.auditRecords(), (r) => r.actor.subject === DAVE.subject && r.phase === 'complete').at(-1);
      expect(rec).toMatchObject({ decision: 'allow', outcome: 'ok' });
    });
  }

  live('statements are read with the session\'s sql_mode: after NO_BACKSLASH_ESCAPES a backslash no longer hides a statement', async () => {
    const c = await as(ALICE, { multipleStatements: true });
    try {
      const sneaky = "SELECT 'a\\'; DELETE FROM policy_my_t; -- ' AS s";
      // With backslash escapes (the default) this is one string: a read.
      expect((await c.query(sneaky))[0]).toEqual([{ s: "a'; DELETE FROM policy_my_t; -- " }]);
      await c.query("SET sql_mode = 'NO_BACKSLASH_ESCAPES'");
      // Now the server would run a DELETE: the gateway reads it so too.
      await expect(c.query(sneaky)).rejects.toMatchObject({ errno: 1142, message: expect.stringContaining('guardrail "delete-without-where"') });
      // A request that changes how text is read and goes on in the same text is refused whole.
      await expect(c.query("SET sql_mode = ''; SELECT 1")).rejects.toMatchObject({ errno: 1142, message: expect.stringContaining('must be sent on its own') });
      expect((await c.query('SELECT @@SESSION.sql_mode AS m'))[0]).toEqual([{ m: 'NO_BACKSLASH_ESCAPES' }]);
    } finally {
      await c.end();
    }
    await unchanged();
    const rec = statementRecords(await gw.auditRecords(), (r) => r.actor.subject === ALICE.subject && r.rule === 'analysis').at(-1);
    expect(rec).toMatchObject({ decision: 'deny', outcome: 'not-executed' });
  });

  for (const via of ['a prepared statement (COM_STMT_EXECUTE)', 'SQL PREPARE and EXECUTE'] as const) {
    live(`sql_mode changed through ${via} is followed too`, async () => {
      const c = await as(ALICE, { multipleStatements: true });
      try {
        if (via === 'SQL PREPARE and EXECUTE') {
          await c.query("PREPARE policy_mode FROM 'SET sql_mode = ''NO_BACKSLASH_ESCAPES'''");
          await c.query('EXECUTE policy_mode');
        } else {
          await c.execute("SET sql_mode = 'NO_BACKSLASH_ESCAPES'");
        }
        expect((await c.query('SELECT @@SESSION.sql_mode AS m'))[0]).toEqual([{ m: 'NO_BACKSLASH_ESCAPES' }]);
        // A read-only identity cannot hide a DELETE behind a backslash the server no longer reads.
        await expect(c.query("SELECT 'a\\'; DELETE FROM policy_my_t; -- ' AS s")).rejects.toMatchObject({ errno: 1142 });
      } finally {
        await c.end();
      }
      await unchanged();
    });
  }

  for (const via of ['a query', 'a prepared statement'] as const) {
    live(`a character set in which a byte can look like a quote ends the session (set through ${via})`, async () => {
      const c = await as(DAVE);
      // The server has switched already: the gateway can no longer read the session's text.
      const ended = new Promise<Error>((resolve) => coreOf(c).once('error', resolve));
      if (via === 'a query') await c.query('SET NAMES gbk');
      else await c.execute('SET NAMES gbk');
      expect((await ended).message).toBe('the character set gbk (a byte of one of its characters can look like a quote or a backslash; use utf8mb4) is not supported by the gateway');
      await expect(c.query('SELECT 1')).rejects.toThrow();
      c.destroy();
      const session = statementRecords(await gw.auditRecords(), (r) => r.actor.subject === DAVE.subject && r.text === 'set names gbk').at(-1)!.sessionId;
      const disconnect = await eventually('the session end to be audited', async () => (await gw.auditRecords()).find((r) => r.type === 'disconnect' && r.sessionId === session));
      expect(disconnect).toMatchObject({ reason: 'error' });
    });
  }

  live('a refusal inside a transaction is an error like the server\'s own: the transaction goes on', async () => {
    const c = await as(DAVE);
    try {
      await c.query('START TRANSACTION');
      await c.query("INSERT INTO policy_my_drop_log VALUES (42, 'in a transaction')");
      await expect(c.query('DROP TABLE policy_my_t')).rejects.toMatchObject({ errno: 1142 });
      await c.query('COMMIT');
      await c.query('START TRANSACTION');
      await c.query("INSERT INTO policy_my_drop_log VALUES (43, 'rolled back')");
      await expect(c.query('TRUNCATE TABLE policy_my_t')).rejects.toMatchObject({ errno: 1142 });
      await c.query('ROLLBACK');
    } finally {
      await c.end();
    }
    const [rows] = await direct.query<mysql.RowDataPacket[]>('SELECT id FROM policy_my_drop_log WHERE id IN (42, 43) ORDER BY id');
    expect(rows.map((r) => r.id)).toEqual([42]);
    await direct.query('DELETE FROM policy_my_drop_log WHERE id = 42');
    await unchanged();
  });

  live('SQL PREPARE ... FROM is decided as the statement it prepares, and EXECUTE as the statement prepared', async () => {
    const alice = await as(ALICE);
    try {
      // A read-only identity may not prepare a write, so it cannot run one through EXECUTE.
      await expect(alice.query("PREPARE policy_del FROM 'DELETE FROM policy_my_t WHERE id = 1'")).rejects.toMatchObject({ errno: 1142, message: expect.stringContaining('write') });
      await expect(alice.query('EXECUTE policy_del')).rejects.toMatchObject({ errno: 1142 });
      await alice.query("PREPARE policy_sel FROM 'SELECT note FROM policy_my_t WHERE id = ?'");
      await alice.query('SET @policy_id = 2');
      expect((await alice.query('EXECUTE policy_sel USING @policy_id'))[0]).toEqual([{ note: 'b' }]);
    } finally {
      await alice.end();
    }
    await unchanged();
    const dave = await as(DAVE);
    try {
      await dave.query("PREPARE policy_upd FROM 'UPDATE policy_my_t SET extra = extra + 1 WHERE id = 3'");
      const [result] = await dave.query<mysql.ResultSetHeader>('EXECUTE policy_upd');
      expect(result.affectedRows).toBe(1);
      await dave.query('DEALLOCATE PREPARE policy_upd');
      // Once deallocated the name is unknown again: dynamic, refused.
      await expect(dave.query('EXECUTE policy_upd')).rejects.toMatchObject({ errno: 1142, message: expect.stringContaining('guardrail "dynamic-sql"') });
    } finally {
      await dave.end();
    }
    expect(await one('SELECT extra FROM policy_my_t WHERE id = 3')).toBe(4);
    await direct.query('UPDATE policy_my_t SET extra = 3 WHERE id = 3');
    // A PREPARE runs on the server even when a later statement of its request fails: the name
    // then means the new statement, and EXECUTE is decided (and audited) as that one.
    const multi = await as(DAVE, { multipleStatements: true });
    try {
      await multi.query("PREPARE policy_swap FROM 'SELECT id FROM policy_my_t'");
      await expect(multi.query("PREPARE policy_swap FROM 'UPDATE policy_my_t SET extra = extra WHERE id = 1'; SELECT * FROM policy_my_missing")).rejects.toMatchObject({
        errno: 1146,
      });
      await multi.query('EXECUTE policy_swap');
    } finally {
      await multi.end();
    }
    const records = await gw.auditRecords();
    const executes = statementRecords(records, (r) => r.phase === 'complete' && /^execute policy_(del|sel|upd|swap)/.test(r.text));
    expect(executes.map((r) => [r.actor.subject, r.text, r.operations.join(), r.decision, r.outcome])).toEqual([
      [ALICE.subject, 'execute policy_del', 'unknown', 'deny', 'not-executed'],
      [ALICE.subject, 'execute policy_sel using @policy_id', 'read', 'allow', 'ok'],
      [DAVE.subject, 'execute policy_upd', 'write,read', 'allow', 'ok'],
      [DAVE.subject, 'execute policy_upd', 'unknown', 'deny', 'not-executed'],
      [DAVE.subject, 'execute policy_swap', 'write,read', 'allow', 'ok'],
    ]);
  });
});
