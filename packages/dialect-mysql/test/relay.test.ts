/**
 * The MySQL relay through the gateway against the real MariaDB, with mysql2 as the client:
 * results arrive exactly as the server sent them, every protocol command a driver uses works,
 * large and slow results stream, errors keep their native codes, and each statement is audited.
 */
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { Readable } from 'node:stream';
import { requireService, startTestGateway, type TestGateway } from '@sluice/testkit';
import type mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { mysqlDialect } from '../src/index.js';
import { Command } from '../src/protocol/constants.js';
import { decodeErr, encodeComInitDb, encodeComProcessKill, encodeComQuery } from '../src/protocol/messages.js';
import { connectMysql } from './mysql-driver.js';
import {
  clearPasswordPlugin,
  closedSocket,
  coreOf,
  directConnection,
  eventually,
  type InfileTrapServer,
  liveTest,
  rawClient,
  runningUpstream,
  startCountingRelay,
  startInfileTrapServer,
  statementRecords,
  UPSTREAM,
} from './support.js';

const ALICE = { subject: 'alice@example.com', kind: 'human', groups: ['users', 'loaders'], token: 'alice-relay-my-token' } as const;
const BOB = { subject: 'bob@example.com', kind: 'human', groups: ['users'], token: 'bob-relay-my-token' } as const;
const OPS = { subject: 'ops@example.com', kind: 'human', groups: ['users', 'ops'], token: 'ops-relay-my-token' } as const;

const ALL_GUARDRAILS_OFF = Object.fromEntries(
  ['drop-table', 'drop-schema', 'drop-database', 'truncate', 'delete-without-where', 'update-without-where', 'alter-drop', 'grant-revoke', 'role-change', 'alter-system', 'copy-program', 'server-file', 'large-object', 'create-extension', 'dynamic-sql'].map((g) => [g, 'off']),
);

/**
 * Everything a relay test needs, except LOAD DATA LOCAL (copy-in) for those who are not
 * loaders, and KILL of another identity's work (admin) for those who are not operators.
 */
const POLICY = {
  rules: [
    { name: 'relay-users', identities: { groups: ['users'] }, operations: ['read', 'write', 'ddl', 'transaction', 'session-setting', 'privilege', 'copy-out', 'unknown'], effect: 'allow' },
    { name: 'relay-loaders', identities: { groups: ['loaders'] }, operations: ['copy-in'], effect: 'allow' },
    { name: 'relay-ops', identities: { groups: ['ops'] }, operations: ['admin'], effect: 'allow' },
    { name: 'relay-no-guardrails', guardrails: ALL_GUARDRAILS_OFF },
  ],
};

let gw: TestGateway;
let available = false;
let direct: mysql.Connection;
let closedPort = 0;
let trap: InfileTrapServer | undefined;
let counting: Awaited<ReturnType<typeof startCountingRelay>> | undefined;
let maxAllowedPacket: number | undefined;

const BIG_BYTES = 21 * 1024 * 1024;
let bigBlob: Buffer;

beforeAll(async () => {
  available = await requireService('MariaDB', '127.0.0.1', 3306);
  if (!available) return;
  direct = await directConnection({ multipleStatements: true });
  // A row of more than 16 MiB needs a larger packet limit than the server's default; the
  // global value applies to connections opened from now on (the gateway's upstreams).
  const [[row]] = await direct.query<mysql.RowDataPacket[]>('SELECT @@GLOBAL.max_allowed_packet AS v');
  maxAllowedPacket = Number(row!.v);
  if (maxAllowedPacket < 64 * 1024 * 1024) await direct.query('SET GLOBAL max_allowed_packet = 67108864');
  await direct.query('DROP TABLE IF EXISTS relay_my_types, relay_my_t, relay_my_multi, relay_my_load, relay_my_big, relay_my_audit');
  await direct.query('DROP DATABASE IF EXISTS relay_my_db');
  await direct.query(`CREATE TABLE relay_my_types (
    id INT PRIMARY KEY,
    ti TINYINT, si SMALLINT UNSIGNED, mi MEDIUMINT, i INT, bi BIGINT, ubi BIGINT UNSIGNED,
    de DECIMAL(20,6), f FLOAT, d DOUBLE, b BIT(10),
    dt DATE, dtm DATETIME(6), ts TIMESTAMP(3) NULL, tm TIME(3), yr YEAR,
    ch CHAR(5), vc VARCHAR(100), tx TEXT, bl BLOB, vb VARBINARY(16),
    en ENUM('a','b','c'), st SET('x','y','z'), js JSON)`);
  await direct.query(
    `INSERT INTO relay_my_types VALUES
      (1, -128, 65535, -8388608, -2147483648, -9223372036854775808, 18446744073709551615,
       -12345678901234.123456, 3.5, -2.2250738585072014e-308, b'1010101010',
       '2026-02-28', '2026-02-28 23:59:59.123456', '2026-03-01 00:00:00.500', '-838:59:59.000', 2155,
       'abc', 'héllo wörld ☃ 😀', REPEAT('t', 1000), X'00FF00FE', X'',
       'b', 'x,z', '{"k": [1, null, "v"]}'),
      (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
      (3, 127, 0, 8388607, 2147483647, 9223372036854775807, 0,
       0.000001, -0, 1.7976931348623157e308, b'0',
       '1000-01-01', '1000-01-01 00:00:00', NULL, '00:00:00', 1901,
       '', '', '', X'', NULL,
       NULL, '', 'null')`,
  );
  await direct.query('CREATE TABLE relay_my_t (id INT PRIMARY KEY, note VARCHAR(100))');
  await direct.query('CREATE TABLE relay_my_multi (id INT PRIMARY KEY)');
  await direct.query('CREATE TABLE relay_my_load (id INT PRIMARY KEY, name VARCHAR(40), score DECIMAL(6,2))');
  await direct.query('CREATE TABLE relay_my_big (id INT PRIMARY KEY, payload LONGBLOB)');
  await direct.query('CREATE TABLE relay_my_audit (id INT PRIMARY KEY, email VARCHAR(100))');
  await direct.query('DROP PROCEDURE IF EXISTS relay_my_two_results');
  await direct.query("CREATE PROCEDURE relay_my_two_results() BEGIN SELECT 'first' AS a UNION ALL SELECT 'set'; SELECT 3 AS b; END");
  await direct.query('CREATE DATABASE relay_my_db');
  await direct.query('CREATE TABLE relay_my_db.relay_my_elsewhere (id INT)');
  await direct.query('INSERT INTO relay_my_db.relay_my_elsewhere VALUES (7)');
  // Random bytes: a misplaced packet boundary cannot go unnoticed.
  bigBlob = randomBytes(BIG_BYTES);
  const loader = await directConnection();
  await loader.query('INSERT INTO relay_my_big VALUES (1, ?)', [bigBlob]);
  await loader.end();

  // A port where nothing listens: an upstream that is down.
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  closedPort = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((r) => probe.close(() => r()));

  trap = await startInfileTrapServer();
  counting = await startCountingRelay(3306);

  gw = await startTestGateway({
    dialect: mysqlDialect,
    targets: {
      app: { upstream: UPSTREAM },
      down: { upstream: `mysql://root@127.0.0.1:${closedPort}/test`, connectTimeoutMs: 2000 },
      trap: { upstream: `mysql://root@127.0.0.1:${trap.port}/test` },
      elsewhere: { upstream: 'mysql://root@127.0.0.1:3306/relay_my_db' },
      counted: { upstream: `mysql://root@127.0.0.1:${counting.port}/test` },
    },
    tokens: [ALICE, BOB, OPS],
    policy: POLICY,
  });
}, 120_000);

afterAll(async () => {
  await gw?.close();
  await trap?.close();
  await counting?.close();
  if (direct) {
    await direct.query('DROP TABLE IF EXISTS relay_my_types, relay_my_t, relay_my_multi, relay_my_load, relay_my_big, relay_my_audit');
    await direct.query('DROP DATABASE IF EXISTS relay_my_db');
    await direct.query('DROP PROCEDURE IF EXISTS relay_my_two_results');
    if (maxAllowedPacket !== undefined) await direct.query('SET GLOBAL max_allowed_packet = ?', [maxAllowedPacket]);
    await direct.end();
  }
});

const live = liveTest(() => available);

const as = (who: { subject: string; token: string }, extra: mysql.ConnectionOptions = {}, database = 'app') => connectMysql(gw, database, who.subject, who.token, extra);

/**
 * Result options that make values comparable as text (no time zone or float conversion). JSON
 * as text: MariaDB names a JSON column only in its extended metadata, which the gateway does
 * not offer, so mysql2 would parse it directly but not through the gateway.
 */
const TEXTUAL: mysql.ConnectionOptions = { supportBigNumbers: true, bigNumberStrings: true, dateStrings: true, decimalNumbers: false, jsonStrings: true };

const fieldShape = (fields: mysql.FieldPacket[]) =>
  fields.map((f) => ({ name: f.name, table: f.table, orgName: f.orgName, type: f.type, flags: f.flags, length: f.length, decimals: f.decimals, charset: f.characterSet }));

describe('MySQL relay through the gateway (real MariaDB)', () => {
  live('text protocol: every column type and NULLs arrive as the server sends them', async () => {
    const c = await as(ALICE, TEXTUAL);
    const plain = await directConnection(TEXTUAL);
    try {
      const sql = 'SELECT * FROM relay_my_types ORDER BY id';
      const [rows, fields] = await c.query<mysql.RowDataPacket[]>(sql);
      const [want, wantFields] = await plain.query<mysql.RowDataPacket[]>(sql);
      expect(rows).toEqual(want);
      expect(fieldShape(fields)).toEqual(fieldShape(wantFields));
      // And they are the values that were stored, not just the same garbage twice.
      expect(rows[0]).toMatchObject({
        ti: -128,
        si: 65535,
        bi: '-9223372036854775808',
        ubi: '18446744073709551615',
        de: '-12345678901234.123456',
        dtm: '2026-02-28 23:59:59.123456',
        tm: '-838:59:59.000',
        vc: 'héllo wörld ☃ 😀',
        en: 'b',
        st: 'x,z',
      });
      expect(rows[0]!.bl).toEqual(Buffer.from([0, 0xff, 0, 0xfe]));
      expect(Object.entries(rows[1]!).filter(([k, v]) => k !== 'id' && v !== null)).toEqual([]);
      expect(rows[2]).toMatchObject({ ch: '', vc: '', vb: null, st: '' });
    } finally {
      await c.end();
      await plain.end();
    }
  });

  live('multi-statements: several result sets, row counts and OKs in one request', async () => {
    const c = await as(ALICE, { multipleStatements: true });
    try {
      const [results] = await c.query<mysql.RowDataPacket[][]>(
        "SELECT 1 AS a, NULL AS n; INSERT INTO relay_my_multi VALUES (1), (2); SELECT id FROM relay_my_multi ORDER BY id; SELECT 'two' AS b UNION ALL SELECT 'rows'; DELETE FROM relay_my_multi WHERE id = 2",
      );
      expect(results).toHaveLength(5);
      expect(results[0]).toEqual([{ a: 1, n: null }]);
      expect(results[1]).toMatchObject({ affectedRows: 2 });
      expect(results[2]).toEqual([{ id: 1 }, { id: 2 }]);
      expect(results[3]).toEqual([{ b: 'two' }, { b: 'rows' }]);
      expect(results[4]).toMatchObject({ affectedRows: 1 });
      // The session goes on with the next request.
      expect((await c.query('SELECT 2 AS two'))[0]).toEqual([{ two: 2 }]);
    } finally {
      await c.end();
    }
    const recs = statementRecords(await gw.auditRecords(), (r) => r.phase === 'complete' && r.actor.subject === ALICE.subject && /relay_my_multi|select \? as (a|b)/.test(r.text));
    expect(recs.slice(-5).map((r) => [r.outcome, r.rows])).toEqual([
      ['ok', 1],
      ['ok', 2],
      ['ok', 2],
      ['ok', 2],
      ['ok', 1],
    ]);
  });

  live('multi-statements: an error in the middle stops the request; the audit says what ran and what did not', async () => {
    const c = await as(ALICE, { multipleStatements: true });
    try {
      await expect(
        c.query('INSERT INTO relay_my_multi VALUES (10); SELECT * FROM relay_my_no_such_table; INSERT INTO relay_my_multi VALUES (11); SELECT 99 AS never'),
      ).rejects.toMatchObject({ errno: 1146, sqlState: '42S02' });
      expect((await c.query('SELECT 3 AS three'))[0]).toEqual([{ three: 3 }]);
    } finally {
      await c.end();
    }
    const [ids] = await direct.query<mysql.RowDataPacket[]>('SELECT id FROM relay_my_multi WHERE id >= 10 ORDER BY id');
    expect(ids.map((r) => r.id)).toEqual([10]);
    const recs = statementRecords(await gw.auditRecords(), (r) => r.phase === 'complete' && /relay_my_multi values|relay_my_no_such_table|select \? as never/.test(r.text));
    expect(recs.slice(-4).map((r) => [r.text, r.outcome, r.errorCode ?? null])).toEqual([
      ['insert into relay_my_multi values (?)', 'ok', null],
      ['select * from relay_my_no_such_table', 'error', '1146'],
      ['insert into relay_my_multi values (?)', 'not-executed', null],
      ['select ? as never', 'not-executed', null],
    ]);
  });

  live('a procedure returning several result sets: each arrives, then the final OK', async () => {
    const c = await as(ALICE, { multipleStatements: true });
    try {
      const [results] = await c.query<mysql.RowDataPacket[][]>('CALL relay_my_two_results()');
      expect(results.slice(0, 2)).toEqual([[{ a: 'first' }, { a: 'set' }], [{ b: 3 }]]);
      expect(results[2]).toMatchObject({ affectedRows: 0 });
      expect((await c.query('SELECT 4 AS four'))[0]).toEqual([{ four: 4 }]);
    } finally {
      await c.end();
    }
    const rec = statementRecords(await gw.auditRecords(), (r) => r.phase === 'complete' && r.text === 'call relay_my_two_results()').at(-1);
    expect(rec).toMatchObject({ outcome: 'ok', actor: { subject: ALICE.subject } });
  });

  live("a procedure's result sets in a multi-statement request stay with the CALL: each statement after it gets its own outcome", async () => {
    const c = await as(ALICE, { multipleStatements: true });
    try {
      const [results] = await c.query<mysql.RowDataPacket[][]>('CALL relay_my_two_results(); SELECT 5 AS relay_after_call FROM seq_1_to_3');
      expect(results.slice(0, 2)).toEqual([[{ a: 'first' }, { a: 'set' }], [{ b: 3 }]]);
      expect(results[3]).toEqual([{ relay_after_call: 5 }, { relay_after_call: 5 }, { relay_after_call: 5 }]);
      await expect(c.query('CALL relay_my_two_results(); SELECT * FROM relay_my_after_call_missing; INSERT INTO relay_my_multi VALUES (30)')).rejects.toMatchObject({ errno: 1146 });
    } finally {
      await c.end();
    }
    const recs = statementRecords(await gw.auditRecords(), (r) => r.phase === 'complete' && /relay_my_two_results|relay_after_call|relay_my_after_call_missing|relay_my_multi values \(\?\)$/.test(r.text)).slice(-5);
    expect(recs.map((r) => [r.text, r.outcome, r.errorCode ?? null])).toEqual([
      ['call relay_my_two_results()', 'ok', null],
      ['select ? as relay_after_call from seq_1_to_3', 'ok', null],
      ['call relay_my_two_results()', 'ok', null],
      ['select * from relay_my_after_call_missing', 'error', '1146'],
      ['insert into relay_my_multi values (?)', 'not-executed', null],
    ]);
    expect(recs[1]!.rows).toBe(3);
  });

  live('prepared statements: parameters of many types, binary rows with NULLs, re-executed, closed', async () => {
    const c = await as(ALICE, TEXTUAL);
    const plain = await directConnection(TEXTUAL);
    try {
      // Binary rows (the NULL bitmap, every binary layout) are what the server sends.
      const sql = 'SELECT * FROM relay_my_types WHERE id >= ? ORDER BY id';
      const [rows] = await c.execute<mysql.RowDataPacket[]>(sql, [1]);
      const [want] = await plain.execute<mysql.RowDataPacket[]>(sql, [1]);
      expect(rows).toEqual(want);
      expect(rows).toHaveLength(3);
      expect(Object.entries(rows[1]!).filter(([k, v]) => k !== 'id' && v !== null)).toEqual([]);

      // Parameters of each type the driver sends, echoed back.
      const echo = 'SELECT ? AS i, ? AS neg, ? AS dbl, ? AS s, ? AS n, ? AS bin, ? AS flag, ? AS big, CAST(? AS DATETIME(3)) AS dt';
      const params = [42, -7, 1.5, 'ünïcode ☃ 😀', null, Buffer.from([0, 1, 2, 255]), true, '9223372036854775807', '2026-05-06 07:08:09.125'];
      const [got] = await c.execute<mysql.RowDataPacket[]>(echo, params);
      const [expected] = await plain.execute<mysql.RowDataPacket[]>(echo, params);
      expect(got).toEqual(expected);
      const echoed = got[0]!;
      expect([echoed.i, echoed.neg, echoed.flag, echoed.big].map(String)).toEqual(['42', '-7', '1', '9223372036854775807']);
      expect(echoed).toMatchObject({ s: 'ünïcode ☃ 😀', n: null, dt: '2026-05-06 07:08:09.125' });
      expect(Number(echoed.dbl)).toBe(1.5);
      expect(got[0]!.bin).toEqual(Buffer.from([0, 1, 2, 255]));

      // The same statement again (mysql2 reuses the server's statement id) with other values.
      for (const id of [2, 3, 1]) {
        const [r] = await c.execute<mysql.RowDataPacket[]>('SELECT id, vc FROM relay_my_types WHERE id = ?', [id]);
        expect(r.map((x) => x.id)).toEqual([id]);
      }
      // An explicit prepare, executed, then closed (COM_STMT_CLOSE has no answer: the next
      // command must not wait for one).
      const stmt = await c.prepare('SELECT ? + 1 AS next');
      expect((await stmt.execute([41]))[0]).toEqual([{ next: 42 }]);
      await stmt.close();
      c.unprepare('SELECT id, vc FROM relay_my_types WHERE id = ?');
      await c.ping();
      const [[closes]] = await c.query<mysql.RowDataPacket[]>("SHOW SESSION STATUS LIKE 'Com_stmt_close'");
      expect(Number(closes!.Value)).toBe(2);
      // Executing after the close prepares again.
      const [again] = await c.execute<mysql.RowDataPacket[]>('SELECT id, vc FROM relay_my_types WHERE id = ?', [3]);
      expect(again).toEqual([{ id: 3, vc: '' }]);
    } finally {
      await c.end();
      await plain.end();
    }
    const recs = statementRecords(await gw.auditRecords(), (r) => r.phase === 'complete' && r.protocol === 'execute' && r.text.includes('select id, vc from relay_my_types'));
    expect(recs.map((r) => [r.outcome, r.rows])).toEqual([
      ['ok', 1],
      ['ok', 1],
      ['ok', 1],
      ['ok', 1],
    ]);
  });

  live('COM_PING, COM_INIT_DB and USE: the default schema changes and the next statement reads it', async () => {
    const c = await as(ALICE);
    await c.ping();
    await c.end();
    const raw = await rawClient(gw, 'app', ALICE.subject, ALICE.token);
    try {
      expect((await raw.command(Buffer.from([Command.PING]))).payload[0]).toBe(0x00);
      expect((await raw.command(encodeComInitDb('relay_my_db'))).payload[0]).toBe(0x00);
      expect((await raw.query('SELECT DATABASE() AS db, (SELECT id FROM relay_my_elsewhere) AS seven')).rows).toEqual([['relay_my_db', '7']]);
      // A schema that does not exist: the server's own error.
      const err = await raw.command(encodeComInitDb('relay_my_no_such_db'));
      expect(decodeErr(err.payload)).toMatchObject({ errno: 1049, sqlstate: '42000' });
      expect((await raw.query('SELECT DATABASE() AS db')).rows).toEqual([['relay_my_db']]);
      await raw.query('USE test');
      expect((await raw.query('SELECT DATABASE() AS db')).rows).toEqual([['test']]);
    } finally {
      raw.close();
    }
    const recs = statementRecords(await gw.auditRecords(), (r) => r.phase === 'complete' && r.protocol === 'init-db');
    expect(recs.slice(-2).map((r) => [r.outcome, r.errorCode ?? null])).toEqual([
      ['ok', null],
      ['error', '1049'],
    ]);
  });

  live('COM_RESET_CONNECTION: variables, temporary tables and prepared statements are gone; the session goes on', async () => {
    const c = await as(ALICE);
    try {
      await c.query('SET @relay_v = 5');
      await c.query('CREATE TEMPORARY TABLE relay_my_tmp (a INT)');
      await c.query("PREPARE relay_reset_s FROM 'SELECT 1'");
      await c.execute('SELECT ? AS p', [1]);
      await c.reset();
      expect((await c.query('SELECT @relay_v AS v'))[0]).toEqual([{ v: null }]);
      await expect(c.query('SELECT * FROM relay_my_tmp')).rejects.toMatchObject({ errno: 1146 });
      await expect(c.query('EXECUTE relay_reset_s')).rejects.toMatchObject({ errno: 1243 });
      expect((await c.execute('SELECT ? AS p', [2]))[0]).toEqual([{ p: 2 }]);
    } finally {
      await c.end();
    }
  });

  live('COM_CHANGE_USER to another identity: the old session ends (change-user), a new one starts for the new subject', async () => {
    const c = await as(ALICE, { authPlugins: clearPasswordPlugin });
    let aliceSession: string | undefined;
    try {
      await c.query('SET @relay_owner = 1');
      await c.query('SELECT 1 AS relay_before_change');
      aliceSession = statementRecords(await gw.auditRecords(), (r) => r.text.includes('relay_before_change')).at(-1)?.sessionId;
      await c.changeUser({ user: BOB.subject, password: BOB.token });
      // The upstream session was reset: nothing of the old identity's state is left.
      expect((await c.query('SELECT @relay_owner AS v, 2 AS relay_after_change'))[0]).toEqual([{ v: null, relay_after_change: 2 }]);
    } finally {
      await c.end();
    }
    const records = await gw.auditRecords();
    expect(aliceSession).toBeDefined();
    const ended = records.find((r) => r.type === 'disconnect' && r.sessionId === aliceSession);
    expect(ended).toMatchObject({ reason: 'change-user', actor: { subject: ALICE.subject } });
    const after = statementRecords(records, (r) => r.text.includes('relay_after_change')).at(-1);
    expect(after).toMatchObject({ actor: { subject: BOB.subject }, target: 'app', outcome: 'ok' });
    expect(after!.sessionId).not.toBe(aliceSession);
    const opened = records.find((r) => r.type === 'connect' && r.outcome === 'accepted' && r.sessionId === after!.sessionId);
    expect(opened).toMatchObject({ actor: { subject: BOB.subject } });
  });

  live('COM_CHANGE_USER naming another target replaces the upstream', async () => {
    const c = await as(ALICE, { authPlugins: clearPasswordPlugin });
    try {
      await c.changeUser({ user: BOB.subject, password: BOB.token, database: 'elsewhere' });
      expect((await c.query('SELECT DATABASE() AS db, COUNT(*) AS n FROM relay_my_elsewhere AS relay_switched'))[0]).toEqual([{ db: 'relay_my_db', n: 1 }]);
    } finally {
      await c.end();
    }
    const rec = statementRecords(await gw.auditRecords(), (r) => r.text.includes('relay_switched')).at(-1);
    expect(rec).toMatchObject({ target: 'elsewhere', actor: { subject: BOB.subject }, outcome: 'ok' });
  });

  live('COM_CHANGE_USER with a wrong token is refused with 1045 and ends the connection', async () => {
    const c = await as(ALICE, { authPlugins: clearPasswordPlugin });
    await expect(c.changeUser({ user: BOB.subject, password: 'not-bobs-token' })).rejects.toMatchObject({ errno: 1045, sqlState: '28000' });
    await expect(c.query('SELECT 1')).rejects.toThrow();
    c.destroy();
    const refused = (await gw.auditRecords()).filter((r) => r.type === 'connect' && r.outcome === 'refused' && r.username === BOB.subject);
    expect(refused.length).toBeGreaterThan(0);
    expect(JSON.stringify(refused)).not.toContain('not-bobs-token');
  });

  live('COM_CHANGE_USER naming an unknown target is refused with 1049 and audited as a refused login', async () => {
    const c = await as(ALICE, { authPlugins: clearPasswordPlugin });
    await expect(c.changeUser({ user: BOB.subject, password: BOB.token, database: 'relay_no_such_target' })).rejects.toMatchObject({ errno: 1049 });
    c.destroy();
    const refused = (await gw.auditRecords()).filter((r) => r.type === 'connect' && r.outcome === 'refused' && r.username === BOB.subject);
    expect(refused.at(-1)).toMatchObject({ reason: expect.stringContaining('no target named "relay_no_such_target"'), actor: { subject: BOB.subject } });
  });

  live('a result of 200,000 rows arrives complete, in the text and the binary protocol', async () => {
    const c = await as(ALICE);
    try {
      const [rows] = await c.query<mysql.RowDataPacket[]>('SELECT seq AS n, REPEAT(CHAR(65 + seq % 26 USING ascii), 40) AS pad FROM seq_1_to_200000');
      expect(rows).toHaveLength(200_000);
      let sum = 0;
      for (const r of rows) sum += r.n as number;
      expect(sum).toBe((200_000 * 200_001) / 2);
      expect(rows[199_999]).toEqual({ n: 200_000, pad: String.fromCharCode(65 + (200_000 % 26)).repeat(40) });
      const [binary] = await c.execute<mysql.RowDataPacket[]>('SELECT seq AS n FROM seq_1_to_200000 WHERE seq > ?', [0]);
      expect(binary).toHaveLength(200_000);
      expect(binary[123_456]).toEqual({ n: 123_457 });
    } finally {
      await c.end();
    }
    const recs = statementRecords(await gw.auditRecords(), (r) => r.phase === 'complete' && r.text.includes('seq_1_to_200000'));
    expect(recs.slice(-2).map((r) => r.rows)).toEqual([200_000, 200_000]);
  }, 60_000);

  live('rows longer than a packet (16 MiB) arrive intact, in the text and the binary protocol', async () => {
    const c = await as(ALICE);
    try {
      const [text] = await c.query<mysql.RowDataPacket[]>("SELECT id, payload FROM relay_my_big WHERE id = 1 UNION ALL SELECT 2, 'after'");
      expect(text).toHaveLength(2);
      expect(Buffer.compare(text[0]!.payload as Buffer, bigBlob)).toBe(0);
      expect(text[1]).toEqual({ id: 2, payload: Buffer.from('after') });
      const [binary] = await c.execute<mysql.RowDataPacket[]>('SELECT payload, LENGTH(payload) AS len FROM relay_my_big WHERE id = ?', [1]);
      expect(binary[0]!.len).toBe(BIG_BYTES);
      expect(createHash('sha256').update(binary[0]!.payload as Buffer).digest('hex')).toBe(createHash('sha256').update(bigBlob).digest('hex'));
      // A row of exactly 0xFFFFFF bytes is followed by an empty packet; the result still ends.
      // Text row: a 4-byte length prefix; binary row: the header byte, the NULL bitmap and the prefix.
      const [exactText] = await c.query<mysql.RowDataPacket[]>('SELECT SUBSTRING(payload, 1, 16777211) AS p FROM relay_my_big');
      expect(Buffer.compare(exactText[0]!.p as Buffer, bigBlob.subarray(0, 16_777_211))).toBe(0);
      const [exactBinary] = await c.execute<mysql.RowDataPacket[]>('SELECT SUBSTRING(payload, 1, 16777209) AS p FROM relay_my_big WHERE id = ?', [1]);
      expect(Buffer.compare(exactBinary[0]!.p as Buffer, bigBlob.subarray(0, 16_777_209))).toBe(0);
      expect((await c.query('SELECT 5 AS five'))[0]).toEqual([{ five: 5 }]);
    } finally {
      await c.end();
    }
  }, 60_000);

  live('a client that reads slowly: the gateway stops reading the server instead of buffering the result', async () => {
    const c = await as(ALICE, {}, 'counted');
    try {
      const before = process.memoryUsage().arrayBuffers;
      const start = counting!.fromServer();
      // About 100 MB of rows, read by nobody for now.
      const stream = coreOf(c).query("SELECT seq AS n, REPEAT('r', 1000) AS pad FROM seq_1_to_100000").stream({ highWaterMark: 16 });
      let received = 0;
      stream.on('data', () => received++);
      stream.pause();
      // The bytes the server hands to the gateway stop growing, far short of the result (no
      // event marks a stall: the count is compared across polls a moment apart).
      let last = -1;
      const stalledAt = await eventually(
        'the server to stall',
        async () => {
          await new Promise((r) => setTimeout(r, 100));
          const now = counting!.fromServer() - start;
          const stalled = now > 0 && now === last;
          last = now;
          return stalled ? now : undefined;
        },
        15_000,
      );
      // What is in flight is what socket buffers on three loopback hops hold: a few MB each.
      expect(stalledAt).toBeLessThan(40 * 1024 * 1024);
      // And this process (the gateway, the relay and the client) holds no more meanwhile.
      expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(32 * 1024 * 1024);
      expect(received).toBeLessThan(100_000);
      stream.resume();
      await new Promise<void>((resolve, reject) => {
        stream.on('end', () => resolve());
        stream.on('error', reject);
      });
      expect(received).toBe(100_000);
      expect(counting!.fromServer() - start).toBeGreaterThan(100_000 * 1000);
    } finally {
      await c.end();
    }
  }, 60_000);

  live('errors arrive with their errno, SQLSTATE and message, in both protocols, and the session goes on', async () => {
    const c = await as(ALICE);
    try {
      await expect(c.query('SELECT * FROM relay_my_no_such')).rejects.toMatchObject({
        errno: 1146,
        sqlState: '42S02',
        message: "Table 'test.relay_my_no_such' doesn't exist",
      });
      await expect(c.query('SELEC 1 AS relay_typo')).rejects.toMatchObject({ errno: 1064, sqlState: '42000', message: expect.stringContaining('SQL syntax') });
      await c.query("INSERT INTO relay_my_t VALUES (1, 'first')");
      await expect(c.query("INSERT INTO relay_my_t VALUES (1, 'again')")).rejects.toMatchObject({
        errno: 1062,
        sqlState: '23000',
        message: "Duplicate entry '1' for key 'PRIMARY'",
      });
      await expect(c.execute('INSERT INTO relay_my_t VALUES (?, ?)', [1, 'prepared'])).rejects.toMatchObject({ errno: 1062, sqlState: '23000' });
      await expect(c.execute('SELEC ? AS relay_prepared_typo', [1])).rejects.toMatchObject({ errno: 1064, sqlState: '42000' });
      expect((await c.query('SELECT note FROM relay_my_t WHERE id = 1'))[0]).toEqual([{ note: 'first' }]);
    } finally {
      await c.end();
    }
    const recs = statementRecords(await gw.auditRecords(), (r) => r.phase === 'complete' && r.outcome === 'error' && r.actor.subject === ALICE.subject);
    const codes = recs.map((r) => r.errorCode);
    expect(codes).toContain('1146');
    expect(codes).toContain('1064');
    expect(codes.filter((x) => x === '1062').length).toBeGreaterThanOrEqual(2);
  });

  live('an unreachable upstream gives a clear native error at login, and the gateway keeps serving', async () => {
    const started = Date.now();
    const err = await as(ALICE, {}, 'down').then(
      (c) => {
        c.destroy();
        return undefined;
      },
      (e: { errno?: number; sqlState?: string; message: string }) => e,
    );
    expect(err).toMatchObject({ errno: 2013, message: expect.stringContaining('the database behind target "down" is unavailable') });
    expect(Date.now() - started).toBeLessThan(5000);
    const c = await as(ALICE);
    expect((await c.query('SELECT 1 AS still_serving'))[0]).toEqual([{ still_serving: 1 }]);
    await c.end();
    const refused = (await gw.auditRecords()).filter((r) => r.type === 'connect' && r.outcome === 'refused' && r.target === 'down');
    expect(refused.at(-1)).toMatchObject({ actor: { subject: ALICE.subject }, reason: expect.stringContaining('unavailable') });
  });

  live('an upstream connection lost during a statement: the client gets 2013, the session ends as upstream-lost, others go on', async () => {
    const c = await as(ALICE);
    const bystander = await as(ALICE);
    try {
      const [[own]] = await c.query<mysql.RowDataPacket[]>('SELECT CONNECTION_ID() AS id, 1 AS relay_upstream_lost_before');
      const slow = c.query('SELECT SLEEP(20) AS relay_upstream_lost').then(
        () => undefined,
        (e: unknown) => e,
      );
      await runningUpstream(direct, '%relay_upstream_lost%');
      // CONNECTION_ID() is the upstream thread: ended on the server itself.
      await direct.query(`KILL ${Number(own!.id)}`);
      expect(await slow).toMatchObject({ errno: 2013, sqlState: 'HY000', message: 'the database behind target "app" is unavailable' });
      await expect(c.query('SELECT 1')).rejects.toThrow();
      expect((await bystander.query('SELECT 1 AS unaffected'))[0]).toEqual([{ unaffected: 1 }]);
    } finally {
      c.destroy();
      await bystander.end();
    }
    const session = statementRecords(await gw.auditRecords(), (r) => r.text.includes('relay_upstream_lost_before')).at(-1)!.sessionId;
    expect(await eventually('the session end to be audited', async () => (await gw.auditRecords()).find((r) => r.type === 'disconnect' && r.sessionId === session))).toMatchObject({
      reason: 'upstream-lost',
    });
    const rec = statementRecords(await gw.auditRecords(), (r) => r.phase === 'complete' && r.text.includes('relay_upstream_lost')).at(-1);
    expect(rec).toMatchObject({ outcome: 'aborted' });
  });

  live('LOAD DATA LOCAL INFILE is refused with 1142 when the policy does not allow copy-in; the client file is never read', async () => {
    const asked: string[] = [];
    const c = await as(BOB, {
      infileStreamFactory: (path: string) => {
        asked.push(path);
        return Readable.from([Buffer.from('1,ann,1.50\n')]);
      },
    });
    try {
      await expect(c.query("LOAD DATA LOCAL INFILE 'relay-refused.csv' INTO TABLE relay_my_load FIELDS TERMINATED BY ','")).rejects.toMatchObject({
        errno: 1142,
        sqlState: '42000',
        message: expect.stringContaining('copy-in'),
      });
      expect((await c.query('SELECT COUNT(*) AS n FROM relay_my_load'))[0]).toEqual([{ n: 0 }]);
    } finally {
      await c.end();
    }
    expect(asked).toEqual([]);
    const rec = statementRecords(await gw.auditRecords(), (r) => r.actor.subject === BOB.subject && r.text.startsWith('load data local infile')).at(-1);
    expect(rec).toMatchObject({ decision: 'deny', outcome: 'not-executed', operations: ['copy-in'] });
  });

  live('LOAD DATA LOCAL INFILE loads the client file when the policy allows copy-in', async () => {
    const asked: string[] = [];
    const c = await as(ALICE, {
      infileStreamFactory: (path: string) => {
        asked.push(path);
        return Readable.from([Buffer.from('1,ann,1.50\n'), Buffer.from('2,bo,2.25\n3,cy,3.00\n')]);
      },
    });
    try {
      const [result] = await c.query<mysql.ResultSetHeader>("LOAD DATA LOCAL INFILE 'relay-rows.csv' INTO TABLE relay_my_load FIELDS TERMINATED BY ','");
      expect(result.affectedRows).toBe(3);
      // The session goes on after the file's content.
      expect((await c.query('SELECT 6 AS six'))[0]).toEqual([{ six: 6 }]);
    } finally {
      await c.end();
    }
    expect(asked).toEqual(['relay-rows.csv']);
    const [rows] = await direct.query<mysql.RowDataPacket[]>('SELECT id, name, score FROM relay_my_load ORDER BY id');
    expect(rows.map((r) => [r.id, r.name, r.score])).toEqual([
      [1, 'ann', '1.50'],
      [2, 'bo', '2.25'],
      [3, 'cy', '3.00'],
    ]);
    const recs = statementRecords(await gw.auditRecords(), (r) => r.actor.subject === ALICE.subject && r.text.startsWith('load data local infile'));
    expect(recs.map((r) => [r.phase, r.decision, r.outcome ?? null, r.rows ?? null])).toEqual([
      ['intent', 'allow', null, null],
      ['complete', 'allow', 'ok', 3],
    ]);
  });

  live('LOAD DATA LOCAL INFILE of 100,000 rows in many packets loads them all', async () => {
    function* file(): Generator<Buffer> {
      let chunk = '';
      for (let i = 1; i <= 100_000; i++) {
        chunk += `${1000 + i},row-${i},${(i % 10000) / 100}\n`;
        if (chunk.length > 60_000) {
          yield Buffer.from(chunk);
          chunk = '';
        }
      }
      if (chunk) yield Buffer.from(chunk);
    }
    const c = await as(ALICE, { infileStreamFactory: () => Readable.from(file()) });
    try {
      const [result] = await c.query<mysql.ResultSetHeader>("LOAD DATA LOCAL INFILE 'relay-many.csv' INTO TABLE relay_my_load FIELDS TERMINATED BY ','");
      expect(result.affectedRows).toBe(100_000);
    } finally {
      await c.end();
    }
    const [[row]] = await direct.query<mysql.RowDataPacket[]>('SELECT COUNT(*) AS n, SUM(id) AS s, MAX(name) AS m FROM relay_my_load WHERE id > 1000');
    expect([row!.n, Number(row!.s), row!.m]).toEqual([100_000, 100_000 * 1000 + (100_000 * 100_001) / 2, 'row-99999']);
    const rec = statementRecords(await gw.auditRecords(), (r) => r.phase === 'complete' && r.text.startsWith('load data local infile')).at(-1);
    expect(rec).toMatchObject({ outcome: 'ok', rows: 100_000 });
  }, 60_000);

  live('a server asking for a client file for a statement that is not LOAD DATA LOCAL gets an empty file, and the client an error', async () => {
    // ALICE may run LOAD DATA LOCAL: what counts is what the statement was decided as.
    const raw = await rawClient(gw, 'trap', ALICE.subject, ALICE.token);
    try {
      const reply = await raw.command(encodeComQuery("SELECT 'a harmless trap' AS x"));
      // The first thing the client hears is the refusal, never the server's file request, and
      // in sequence: the answer's first packet (strict clients check it).
      expect(reply.payload[0]).toBe(0xff);
      expect(reply.sequenceId).toBe(1);
      expect(decodeErr(reply.payload)).toMatchObject({ errno: 1148, sqlstate: '42000', message: expect.stringContaining('refused by the gateway') });
      // The server got an empty file in the client's place: nothing of the client's.
      expect(trap!.fileAnswers).toEqual([{ sequenceId: 2, payload: Buffer.alloc(0) }]);
      expect((await raw.query('SELECT 1 AS still_usable')).rows).toEqual([['1']]);
    } finally {
      raw.close();
    }
    const rec = statementRecords(await gw.auditRecords(), (r) => r.phase === 'complete' && r.target === 'trap' && r.text === 'select ? as x').at(-1);
    expect(rec).toMatchObject({ outcome: 'not-executed', actor: { subject: ALICE.subject } });
  });

  live('KILL QUERY <id> from a second connection of the same identity stops a running statement with 1317', async () => {
    const victim = await as(ALICE);
    const killer = await as(ALICE);
    try {
      const started = Date.now();
      const slow = victim.query('SELECT SLEEP(20) AS relay_kill_same').then(
        () => undefined,
        (e: unknown) => e,
      );
      await runningUpstream(direct, '%relay_kill_same%');
      // threadId is the gateway's connection id, the one KILL names.
      await killer.query(`KILL QUERY ${victim.threadId}`);
      expect(await slow).toMatchObject({ errno: 1317, sqlState: '70100' });
      expect(Date.now() - started).toBeLessThan(10_000);
      // Only the statement was stopped: both sessions go on.
      expect((await victim.query('SELECT 1 AS survived'))[0]).toEqual([{ survived: 1 }]);
      expect((await killer.query('SELECT 2 AS killer'))[0]).toEqual([{ killer: 2 }]);
    } finally {
      victim.destroy();
      killer.destroy();
    }
    const records = await gw.auditRecords();
    const rec = statementRecords(records, (r) => r.phase === 'complete' && r.text.includes('relay_kill_same')).at(-1);
    expect(rec).toMatchObject({ outcome: 'error', errorCode: '1317' });
    expect(records.some((r) => r.type === 'cancel' && r.outcome === 'forwarded' && r.sessionId === rec!.sessionId)).toBe(true);
  });

  live("KILL QUERY of another identity's statement is decided by the policy (admin); an unknown id gives 1094", async () => {
    const victim = await as(ALICE);
    const stranger = await as(BOB);
    const operator = await as(OPS);
    try {
      const slow = victim.query('SELECT SLEEP(20) AS relay_kill_other').then(
        () => undefined,
        (e: unknown) => e,
      );
      await runningUpstream(direct, '%relay_kill_other%');
      // Without the admin class: refused, and the statement goes on.
      await expect(stranger.query(`KILL QUERY ${victim.threadId}`)).rejects.toMatchObject({ errno: 1142, sqlState: '42000', message: expect.stringContaining('admin') });
      await expect(stranger.query('KILL QUERY 4000000000')).rejects.toMatchObject({ errno: 1142 });
      await runningUpstream(direct, '%relay_kill_other%');
      await expect(operator.query('KILL QUERY 4000000000')).rejects.toMatchObject({ errno: 1094, message: 'Unknown thread id: 4000000000' });
      // With it: stopped.
      await operator.query(`KILL QUERY ${victim.threadId}`);
      expect(await slow).toMatchObject({ errno: 1317 });
    } finally {
      victim.destroy();
      stranger.destroy();
      operator.destroy();
    }
    const kills = statementRecords(await gw.auditRecords(), (r) => r.phase === 'complete' && r.text === 'kill query ?');
    expect(kills.slice(-4).map((r) => [r.actor.subject, r.decision, r.outcome, r.errorCode ?? null])).toEqual([
      [BOB.subject, 'deny', 'not-executed', null],
      [BOB.subject, 'deny', 'not-executed', null],
      [OPS.subject, 'allow', 'error', '1094'],
      [OPS.subject, 'allow', 'ok', null],
    ]);
  });

  live('KILL <id> ends another connection of the same identity, and the statement it was running', async () => {
    const victim = await as(ALICE);
    const closed = closedSocket(victim);
    const killer = await as(ALICE);
    try {
      await victim.query('SELECT 1 AS relay_kill_conn_before');
      const slow = victim.query('SELECT SLEEP(20) AS relay_kill_conn_running').then(
        () => undefined,
        (e: unknown) => e,
      );
      const upstreamThread = await runningUpstream(direct, '%relay_kill_conn_running%');
      await killer.query(`KILL CONNECTION ${victim.threadId}`);
      expect(await slow).toMatchObject({ errno: 1317 });
      await closed;
      await expect(victim.query('SELECT 1')).rejects.toThrow();
      // As the server's own KILL CONNECTION: the statement does not go on running upstream.
      await eventually('the upstream statement to stop', async () => {
        const [rows] = await direct.query<mysql.RowDataPacket[]>("SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE ID = ? AND COMMAND = 'Query'", [upstreamThread]);
        return rows[0]!.n === 0 ? true : undefined;
      });
      expect((await killer.query('SELECT 1 AS alive'))[0]).toEqual([{ alive: 1 }]);
    } finally {
      victim.destroy();
      await killer.end();
    }
    const session = statementRecords(await gw.auditRecords(), (r) => r.text.includes('relay_kill_conn_before')).at(-1)!.sessionId;
    expect(await eventually('the killed session to be audited', async () => (await gw.auditRecords()).find((r) => r.type === 'disconnect' && r.sessionId === session))).toMatchObject({
      reason: 'killed',
    });
  });

  live('other forms of KILL would name the upstream account\'s threads: refused, even for an operator, and never sent', async () => {
    const c = await as(OPS, { multipleStatements: true });
    try {
      for (const sql of ["KILL USER 'root'", 'KILL QUERY ID 5', 'SELECT 1; KILL 5', "PREPARE relay_k FROM 'KILL 5'"]) {
        await expect(c.query(sql), sql).rejects.toMatchObject({ errno: 1142, sqlState: '42000', message: expect.stringContaining('the gateway accepts KILL only on its own') });
      }
      await expect(c.execute('KILL ?', [5])).rejects.toMatchObject({ errno: 1142 });
      expect((await c.query('SELECT 1 AS one'))[0]).toEqual([{ one: 1 }]);
    } finally {
      await c.end();
    }
    const refused = statementRecords(await gw.auditRecords(), (r) => r.actor.subject === OPS.subject && r.rule === 'kill');
    expect(refused.length).toBeGreaterThanOrEqual(5);
    for (const r of refused) expect(r).toMatchObject({ decision: 'deny', outcome: 'not-executed' });
  });

  live('COM_PROCESS_KILL (the protocol form of KILL, as mysqladmin sends it) ends another connection of the same identity', async () => {
    const victim = await as(ALICE);
    const closed = closedSocket(victim);
    const killer = await rawClient(gw, 'app', ALICE.subject, ALICE.token);
    try {
      await victim.query('SELECT 1 AS relay_process_kill_before');
      // threadId is the gateway's connection id, the one KILL names.
      const reply = await killer.command(encodeComProcessKill(victim.threadId));
      expect(reply).toMatchObject({ sequenceId: 1 });
      expect(reply.payload[0]).toBe(0x00);
      await closed;
      await expect(victim.query('SELECT 1')).rejects.toThrow();
      // The killer's own session goes on.
      expect((await killer.query('SELECT 1 AS alive')).rows).toEqual([['1']]);
    } finally {
      victim.destroy();
      killer.close();
    }
    const records = await gw.auditRecords();
    const session = statementRecords(records, (r) => r.text.includes('relay_process_kill_before')).at(-1)!.sessionId;
    expect(await eventually('the killed session to be audited', async () => (await gw.auditRecords()).find((r) => r.type === 'disconnect' && r.sessionId === session))).toMatchObject({
      reason: 'killed',
      actor: { subject: ALICE.subject },
    });
    expect(records.some((r) => r.type === 'cancel' && r.outcome === 'forwarded' && r.sessionId === session)).toBe(true);
  });

  live("COM_PROCESS_KILL of another identity's connection is decided by the policy (admin); an unknown id gives 1094", async () => {
    const victim = await as(ALICE);
    const closed = closedSocket(victim);
    const stranger = await rawClient(gw, 'app', BOB.subject, BOB.token);
    const operator = await rawClient(gw, 'app', OPS.subject, OPS.token);
    try {
      const refused = decodeErr((await stranger.command(encodeComProcessKill(victim.threadId))).payload);
      expect(refused).toMatchObject({ errno: 1142, sqlstate: '42000', message: expect.stringContaining('admin') });
      // An id nobody has is refused the same way to an identity that may not kill others:
      // it cannot learn which ids are in use.
      expect(decodeErr((await stranger.command(encodeComProcessKill(4_000_000_000))).payload)).toMatchObject({ errno: 1142 });
      expect((await victim.query('SELECT 1 AS untouched'))[0]).toEqual([{ untouched: 1 }]);
      expect(decodeErr((await operator.command(encodeComProcessKill(4_000_000_000))).payload)).toMatchObject({ errno: 1094, message: 'Unknown thread id: 4000000000' });
      expect((await operator.command(encodeComProcessKill(victim.threadId))).payload[0]).toBe(0x00);
      await closed;
    } finally {
      victim.destroy();
      stranger.close();
      operator.close();
    }
    const kills = statementRecords(await gw.auditRecords(), (r) => r.phase === 'complete' && r.protocol === 'query' && /^kill \?$/.test(r.text));
    expect(kills.slice(-4).map((r) => [r.actor.subject, r.decision, r.outcome, r.errorCode ?? null])).toEqual([
      [BOB.subject, 'deny', 'not-executed', null],
      [BOB.subject, 'deny', 'not-executed', null],
      [OPS.subject, 'allow', 'error', '1094'],
      [OPS.subject, 'allow', 'ok', null],
    ]);
  });

  live('each statement is audited: subject, target, outcome, rows, native error code, fingerprint, never a literal', async () => {
    const c = await as(ALICE);
    try {
      await c.query("INSERT INTO relay_my_audit VALUES (1, 'very-private-relay@example.com'), (2, 'other-private@example.com')");
      await c.query("SELECT id FROM relay_my_audit WHERE email LIKE '%very-private-relay%'");
      await c.execute('SELECT id, email FROM relay_my_audit WHERE id > ?', [0]);
      await expect(c.query("INSERT INTO relay_my_audit VALUES (1, 'very-private-relay@example.com')")).rejects.toMatchObject({ errno: 1062 });
    } finally {
      await c.end();
    }
    const records = await gw.auditRecords();
    const recs = statementRecords(records, (r) => r.text.includes('relay_my_audit'));
    expect(recs.map((r) => [r.phase, r.protocol, r.text, r.outcome ?? null, r.rows ?? null, r.errorCode ?? null])).toEqual([
      ['intent', 'query', 'insert into relay_my_audit values (?, ?), (?, ?)', null, null, null],
      ['complete', 'query', 'insert into relay_my_audit values (?, ?), (?, ?)', 'ok', 2, null],
      ['complete', 'query', 'select id from relay_my_audit where email like ?', 'ok', 1, null],
      ['complete', 'execute', 'select id, email from relay_my_audit where id > ?', 'ok', 2, null],
      ['intent', 'query', 'insert into relay_my_audit values (?, ?)', null, null, null],
      ['complete', 'query', 'insert into relay_my_audit values (?, ?)', 'error', null, '1062'],
    ]);
    for (const r of recs) {
      expect(r).toMatchObject({ dialect: 'mysql', actor: { subject: ALICE.subject, kind: 'human', method: 'token' }, target: 'app', decision: 'allow' });
      expect(r.fingerprint).toMatch(/^[0-9a-f]{16}$/);
    }
    // The same statement shape has the same fingerprint, whatever its literals.
    expect(recs[0]!.fingerprint).toBe(recs[1]!.fingerprint);
    expect(recs[4]!.fingerprint).not.toBe(recs[0]!.fingerprint);
    expect(JSON.stringify(records)).not.toMatch(/very-private-relay|other-private/);
  });
});
