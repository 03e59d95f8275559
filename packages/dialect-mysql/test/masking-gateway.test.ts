import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { compileMasking, hashToInt, maskingSchema, maskText, REDACTED_MARKER, type AuditRecord } from '@sluice/core';
import { requireService, startTestGateway, type TestGateway } from '@sluice/testkit';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { mysqlDialect } from '../src/index.js';
import { ColumnType, ServerStatus } from '../src/protocol/constants.js';
import type { BinaryParam } from '../src/protocol/messages.js';
import { connectMysql } from './mysql-driver.js';
import { DIRECT, leaksOf, liveTest, RawSession, rawValues, UPSTREAM, type RawResult } from './masking-support.js';

/**
 * Masking through the gateway against the real MariaDB 10.11 (127.0.0.1:3306, root, database
 * `test`), with mysql2 (text protocol `query`, binary protocol `execute`), the raw protocol
 * (read-only cursors) and the mysql command-line client: every strategy on text and typed
 * columns, resolution through aliases, expressions, views and stored functions, multi-statement
 * requests, exemptions and policy mask rules, errors, the audit, and schema changes.
 */
const run = promisify(execFile);

const ANALYST = { subject: 'maskgw-analyst@example.com', kind: 'human', groups: ['analysts'], token: 'maskgw-analyst-token' } as const;
const AUDITOR = { subject: 'maskgw-auditor@example.com', kind: 'human', groups: ['compliance'], token: 'maskgw-auditor-token' } as const;
/** Exempt through its group, but a policy mask rule covers agents. */
const AGENT = { subject: 'maskgw-agent', kind: 'agent', groups: ['compliance'], token: 'maskgw-agent-token' } as const;

const NAME = 'Holder Zeta Quillmark';
const NAME2 = 'Holder Eta Brindlewood';
const EMAIL = 'zeta.quillmark@hidden-realm.example';
const EMAIL2 = 'second.holder@other-place.example';
const PHONE = '+1 415 555 2671';
const CARD = '4242 4242 4242 4242';
const SSN = '123-45-6789';
const NOTE = 'vault combination 7-31-55';
const CODE = 'KQ93ZT';
const LATE_HOLDER = 'Holder Theta Vellum';
/** Seeded sensitive values: none of them (nor a transformed form) may reach an identity that is masked. */
const SECRETS = [NAME, NAME2, EMAIL, EMAIL2, PHONE, CARD, SSN, NOTE, CODE, LATE_HOLDER];

const HASH_KEY = 'maskgw-hash-key-0123456789';
const KEY = Buffer.from(HASH_KEY, 'utf8');

const MASKING = {
  hashKey: HASH_KEY,
  columns: [
    { column: 'maskgw_customers.email', strategy: 'partial' },
    { column: 'maskgw_customers.phone', strategy: 'partial' },
    { column: 'test.maskgw_customers.card', strategy: 'partial' },
    { column: '*.maskgw_customers.ssn', strategy: 'redact', name: 'ssn-redacted' },
    { column: 'maskgw_customers.full_name', strategy: 'hash' },
    { column: 'maskgw_customers.secret_note', strategy: 'null' },
    { column: 'maskgw_customers.code', strategy: 'redact' },
    { column: 'maskgw_customers.tag', strategy: 'hash' },
    { column: 'maskgw_customers.age', strategy: 'hash' },
    { column: 'maskgw_customers.big', strategy: 'hash' },
    { column: 'maskgw_customers.small', strategy: 'hash' },
    { column: 'maskgw_customers.born', strategy: 'partial' },
    { column: 'maskgw_customers.balance', strategy: 'hash' },
    { column: 'maskgw_customers.profile', strategy: 'partial' },
    { column: 'maskgw_typed.*', strategy: 'hash' },
    // A table that does not exist when the gateway starts.
    { column: 'maskgw_late.holder', strategy: 'hash' },
  ],
  scan: ['maskgw_tickets.body'],
  exempt: { groups: ['compliance'] },
};

const POLICY = {
  rules: [
    { name: 'everyone', operations: ['read', 'write', 'ddl', 'transaction', 'session-setting'], effect: 'allow' },
    {
      name: 'agents-hash-contact',
      identities: { kinds: ['agent'] },
      effect: 'mask',
      mask: { columns: ['maskgw_customers.email', 'maskgw_customers.notes'], strategy: 'hash' },
    },
  ],
};

const hashOf = (v: string, maxLength?: number): string => maskText(v, 'hash', { hashKey: KEY, ...(maxLength !== undefined ? { maxLength } : {}) })!;
/** The keyed number `hash` gives an integer column of `bits` bits. */
const hashedInt = (v: string, bits: number, unsigned = false): bigint => (unsigned ? BigInt.asUintN(bits, hashToInt(KEY, v, 64)) : BigInt.asIntN(bits, hashToInt(KEY, v, 64)));

const SETUP = [
  'DROP VIEW IF EXISTS maskgw_v2, maskgw_v, maskgw_late_v',
  'DROP FUNCTION IF EXISTS maskgw_contact_of',
  'DROP TABLE IF EXISTS maskgw_customers, maskgw_tickets, maskgw_plain, maskgw_late, maskgw_typed',
  `CREATE TABLE maskgw_customers (
     id INT PRIMARY KEY, full_name VARCHAR(60), email VARCHAR(80) UNIQUE, phone VARCHAR(30), card CHAR(19), ssn VARCHAR(11),
     secret_note VARCHAR(60), code VARCHAR(6), tag VARCHAR(5), age INT, big BIGINT UNSIGNED, small SMALLINT, born DATE,
     balance DECIMAL(10,2), profile JSON, notes VARCHAR(100), city VARCHAR(30)) DEFAULT CHARSET utf8mb4`,
  `INSERT INTO maskgw_customers VALUES
     (1, '${NAME}', '${EMAIL}', '${PHONE}', '${CARD}', '${SSN}', '${NOTE}', '${CODE}', 'ALPHA', 42, 18446744073709551615, -1234,
      '1990-01-02', 1234.56, '{"mail": "${EMAIL}", "tier": "gold"}', 'likes tea', 'Paris'),
     (2, '${NAME2}', '${EMAIL2}', NULL, NULL, NULL, NULL, NULL, NULL, 7, 5, 3, NULL, NULL, NULL, NULL, 'Lyon')`,
  'CREATE TABLE maskgw_tickets (id INT PRIMARY KEY, customer_id INT, body TEXT, subject VARCHAR(50)) DEFAULT CHARSET utf8mb4',
  `INSERT INTO maskgw_tickets VALUES (1, 1, 'customer ${EMAIL} paid with ${CARD}', 'refund'), (2, 2, 'nothing to see', 'hello')`,
  `CREATE TABLE maskgw_plain (id INT PRIMARY KEY, label VARCHAR(60), amount DECIMAL(10,2), made DATE, ratio DOUBLE, flag TINYINT, n BIGINT, stamp DATETIME(3))
     DEFAULT CHARSET utf8mb4`,
  `INSERT INTO maskgw_plain VALUES (1, 'write to plain.person@public.example', 10.25, '2020-02-29', 0.5, 1, -9000000000, '2021-03-04 05:06:07.890'),
     (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL), (3, 'ünïcödé ✓', -0.01, '1999-12-31', 1e300, -128, 9223372036854775807, '1970-01-01 00:00:01.000')`,
  `CREATE TABLE maskgw_typed (id INT PRIMARY KEY, yr YEAR, tiny TINYINT UNSIGNED, medium MEDIUMINT, seen DATETIME(3), dur TIME, score DOUBLE,
     raw VARBINARY(16), level ENUM('low', 'high'), flags BIT(8), label CHAR(8)) DEFAULT CHARSET utf8mb4`,
  `INSERT INTO maskgw_typed VALUES (1, 1999, 200, -8000000, '2024-05-06 07:08:09.123', '-838:59:59', 2.5, 'raw-bytes', 'high', b'10100101', 'abc')`,
  'CREATE VIEW maskgw_v AS SELECT id, lower(email) AS contact, email AS mail, full_name AS who, notes FROM maskgw_customers',
  'CREATE VIEW maskgw_v2 AS SELECT id, contact AS c2, mail AS m2 FROM maskgw_v',
  `CREATE FUNCTION maskgw_contact_of(x INT) RETURNS VARCHAR(200) READS SQL DATA
     RETURN (SELECT concat('write to ', email) FROM maskgw_customers WHERE id = x)`,
];
const TEARDOWN = [
  'DROP VIEW IF EXISTS maskgw_v2, maskgw_v, maskgw_late_v',
  'DROP FUNCTION IF EXISTS maskgw_contact_of',
  'DROP TABLE IF EXISTS maskgw_customers, maskgw_tickets, maskgw_plain, maskgw_late, maskgw_typed',
];

let gw: TestGateway;
let available = false;
let direct: mysql.Connection;

/** mysql2 options: big integers and dates as text, so values compare exactly. */
const DRIVER = { supportBigNumbers: true, bigNumberStrings: true, dateStrings: true } as const;

beforeAll(async () => {
  available = await requireService('MariaDB', '127.0.0.1', 3306);
  if (!available) return;
  direct = await mysql.createConnection({ ...DIRECT, ...DRIVER });
  for (const sql of SETUP) await direct.query(sql);
  gw = await startTestGateway({
    dialect: mysqlDialect,
    targets: { app: { upstream: UPSTREAM } },
    tokens: [ANALYST, AUDITOR, AGENT],
    policy: POLICY,
    masking: MASKING,
  });
});

afterAll(async () => {
  await gw?.close();
  if (direct) {
    for (const sql of TEARDOWN) await direct.query(sql);
    await direct.end();
  }
});

const live = liveTest(() => available);
const as = (who: { subject: string; token: string }, extra: mysql.ConnectionOptions = {}) => connectMysql(gw, 'app', who.subject, who.token, { ...DRIVER, ...extra });
const leaks = (value: unknown): string[] => leaksOf(SECRETS, value);

type Row = Record<string, unknown>;
/** Rows of a statement in the text protocol (`query`) and the binary protocol (`execute`). */
async function bothProtocols(c: mysql.Connection, sql: string, params: (string | number)[] = []): Promise<{ text: Row[]; binary: Row[] }> {
  const [text] = await c.query(sql, params);
  const [binary] = await c.execute(sql, params);
  return { text: text as Row[], binary: binary as Row[] };
}

const int32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeInt32LE(n);
  return b;
};
const intParam = (n: number): BinaryParam => ({ type: ColumnType.LONG, unsigned: false, value: int32(n) });
const str = (v: Buffer | null | undefined): string | null => (v === null || v === undefined ? null : v.toString('utf8'));

describe('strategies on text columns', () => {
  live('SELECT * masks each configured column with its strategy, keeping row count, names and types, in both protocols', async () => {
    const c = await as(ANALYST);
    const sql = 'SELECT * FROM maskgw_customers ORDER BY id';
    const [rows, fields] = await c.query(sql);
    const [plainRows, plainFields] = await direct.query(sql);
    const definitions = (fs: mysql.FieldPacket[]) => fs.map((f) => [f.name, f.columnType, f.columnLength, f.flags, f.characterSet, f.decimals]);
    expect(definitions(fields)).toEqual(definitions(plainFields));
    const r = rows as Row[];
    expect(r).toHaveLength((plainRows as Row[]).length);
    expect(r[0]).toMatchObject({
      id: 1,
      full_name: hashOf(NAME),
      email: 'z***@h***.example',
      phone: '+* *** *** **71',
      card: '**** **** **** 4242',
      ssn: REDACTED_MARKER,
      secret_note: null,
      notes: 'likes tea',
      city: 'Paris',
    });
    expect(r[0]!.full_name).toMatch(/^h_[0-9a-f]{16}$/);
    expect(r[1]).toMatchObject({ id: 2, full_name: hashOf(NAME2), email: 's***@o***.example', phone: null, card: null, ssn: null, notes: null, city: 'Lyon' });
    expect(leaks(r)).toEqual([]);
    const [binary, binaryFields] = await c.execute(sql);
    expect(definitions(binaryFields)).toEqual(definitions(plainFields));
    expect(binary).toEqual(r);
    // Hashing is deterministic: the same value masks the same way, in another statement too.
    const [again] = await c.query('SELECT full_name AS n FROM maskgw_customers WHERE id = 1');
    expect(again).toEqual([{ n: r[0]!.full_name }]);
    await c.end();
  });

  live('prepared statements executed many times with parameters are masked every time', async () => {
    const c = await as(ANALYST);
    for (let i = 0; i < 3; i++) {
      const [rows] = await c.execute('SELECT email, ssn, full_name, city FROM maskgw_customers WHERE id = ?', [1]);
      expect(rows).toEqual([{ email: 'z***@h***.example', ssn: REDACTED_MARKER, full_name: hashOf(NAME), city: 'Paris' }]);
    }
    const [byEmail] = await c.execute('SELECT id, email FROM maskgw_customers WHERE email LIKE ?', ['second%']);
    expect(byEmail).toEqual([{ id: 2, email: 's***@o***.example' }]);
    await c.end();
  });
});

describe('typed columns', () => {
  live('integers under hash keep their type and get the same keyed value in the text and the binary protocol', async () => {
    const c = await as(ANALYST);
    const sql = 'SELECT id, age, big, small FROM maskgw_customers ORDER BY id';
    const { text, binary } = await bothProtocols(c, sql);
    expect(text).toEqual([
      { id: 1, age: Number(hashedInt('42', 32)), big: hashedInt('18446744073709551615', 64, true).toString(), small: Number(hashedInt('-1234', 16)) },
      { id: 2, age: Number(hashedInt('7', 32)), big: hashedInt('5', 64, true).toString(), small: Number(hashedInt('3', 16)) },
    ]);
    expect(binary).toEqual(text);
    expect(text[0]!.age).not.toBe(42);
    // The column definitions are the server's.
    const [, fields] = await c.query(sql);
    const [, plainFields] = await direct.query(sql);
    expect(fields.map((f) => [f.columnType, f.flags, f.columnLength])).toEqual(plainFields.map((f) => [f.columnType, f.flags, f.columnLength]));
    expect(fields.map((f) => f.columnType)).toEqual([ColumnType.LONG, ColumnType.LONG, ColumnType.LONGLONG, ColumnType.SHORT]);
    await c.end();
  });

  live('DATE and DECIMAL become NULL; VARCHAR(n) stays within n characters; a JSON column keeps nothing of the document', async () => {
    const c = await as(ANALYST);
    const { text, binary } = await bothProtocols(c, 'SELECT born, balance, code, tag, profile FROM maskgw_customers WHERE id = 1');
    expect(binary).toEqual(text);
    const r = text[0]!;
    expect(r.born).toBeNull();
    expect(r.balance).toBeNull();
    // `redact` in six characters: the marker does not fit, stars do.
    expect(r.code).toBe('******');
    // `hash` cut to five characters.
    expect(r.tag).toBe(hashOf('ALPHA', 5));
    expect(String(r.tag)).toMatch(/^h_[0-9a-f]{3}$/);
    // MariaDB's JSON is LONGTEXT on the wire: masked text, nothing of the document.
    expect(typeof r.profile).toBe('string');
    expect(String(r.profile)).not.toMatch(/gold|mail/);
    expect(leaks(text)).toEqual([]);
    await c.end();
  });

  live('every other type under hash: a keyed number of the same width for integers (YEAR a valid year), text cut to its length, NULL for the rest', async () => {
    const c = await as(ANALYST);
    const sql = 'SELECT id, yr, tiny, medium, seen, dur, score, raw, level, flags, label FROM maskgw_typed';
    const { text, binary } = await bothProtocols(c, sql);
    expect(binary).toEqual(text);
    const year = 1901n + (BigInt.asUintN(64, hashToInt(KEY, '1999', 64)) % 255n);
    expect(text[0]).toEqual({
      id: Number(hashedInt('1', 32)),
      yr: Number(year),
      tiny: Number(hashedInt('200', 8, true)),
      medium: Number(hashedInt('-8000000', 24)),
      seen: null,
      dur: null,
      score: null,
      raw: Buffer.from(hashOf('raw-bytes', 16)),
      level: hashOf('high', 4),
      flags: null,
      label: hashOf('abc', 8),
    });
    const [, fields] = await c.query(sql);
    const [, plainFields] = await direct.query(sql);
    expect(fields.map((f) => [f.name, f.columnType, f.flags, f.columnLength])).toEqual(plainFields.map((f) => [f.name, f.columnType, f.flags, f.columnLength]));
    await c.end();
  });
});

describe('resolution cannot be talked around', () => {
  const QUERIES = [
    "SELECT email AS e, lower(email) AS l, upper(email) u, concat(email, '') c, concat('<', full_name, '>') n, substr(email, 2) s, substring(ssn, 1, 6) s2 FROM maskgw_customers",
    'SELECT hex(email) h, to_base64(email) b, reverse(email) r, reverse(phone) rp, hex(card) hc, to_base64(full_name) bn, hex(secret_note) hs FROM maskgw_customers',
    "SELECT insert(email, 1, 0, '') a, replace(email, '@', ' at ') b, lpad(ssn, 20, '-') c, trim(phone) d, left(card, 19) e, mid(email, 1, 40) f, cast(email AS CHAR(200)) g FROM maskgw_customers",
    'SELECT convert(full_name USING latin1) AS n, email COLLATE utf8mb4_bin AS e, binary code AS b, cast(phone AS BINARY) AS p FROM maskgw_customers',
    "SELECT CASE WHEN id = 1 THEN email ELSE full_name END AS a, CASE WHEN ssn LIKE '1%' THEN 'y' ELSE 'n' END AS b, IF(id > 0, phone, NULL) AS c, coalesce(secret_note, code) AS d FROM maskgw_customers",
    'SELECT (SELECT email FROM maskgw_customers WHERE id = 1) AS s, (SELECT max(full_name) FROM maskgw_customers) AS m, (SELECT group_concat(body) FROM maskgw_tickets) AS b',
    'SELECT d.e, d.n, d.x FROM (SELECT email AS e, full_name AS n, lower(ssn) AS x FROM maskgw_customers) AS d',
    'SELECT * FROM (SELECT reverse(email) AS r, card, code FROM maskgw_customers) AS d',
    'WITH c AS (SELECT id, email AS e, lower(full_name) AS n FROM maskgw_customers) SELECT upper(e), n, id FROM c',
    'WITH RECURSIVE r AS (SELECT 1 AS n, email AS e FROM maskgw_customers WHERE id = 1 UNION ALL SELECT n + 1, e FROM r WHERE n < 3) SELECT * FROM r',
    'SELECT email FROM maskgw_customers UNION SELECT subject FROM maskgw_tickets',
    'SELECT subject FROM maskgw_tickets UNION ALL SELECT phone FROM maskgw_customers UNION ALL SELECT ssn FROM maskgw_customers',
    'SELECT x FROM (SELECT email AS x FROM maskgw_customers UNION ALL SELECT full_name FROM maskgw_customers) u',
    "SELECT GROUP_CONCAT(email SEPARATOR ',') AS g, GROUP_CONCAT(DISTINCT full_name ORDER BY id) AS h, GROUP_CONCAT(reverse(ssn)) AS s FROM maskgw_customers",
    "SELECT JSON_OBJECT('mail', email, 'who', full_name) AS j, JSON_ARRAY(ssn, card) AS a, JSON_QUOTE(phone) AS q FROM maskgw_customers",
    'SELECT JSON_ARRAYAGG(email) AS a, JSON_OBJECTAGG(id, phone) AS o FROM maskgw_customers',
    'SELECT first_value(email) OVER (ORDER BY id) AS f, lag(full_name) OVER (ORDER BY id) AS l, max(ssn) OVER () AS m FROM maskgw_customers',
    'SELECT * FROM maskgw_customers c JOIN maskgw_tickets t ON t.customer_id = c.id',
    'SELECT t.*, c.* FROM maskgw_tickets t JOIN maskgw_customers c ON c.id = t.customer_id',
    'SELECT c.*, t.body FROM maskgw_customers c LEFT JOIN maskgw_tickets t USING (id)',
    'SELECT c.email, x.mail, x.who FROM maskgw_customers c JOIN maskgw_v x ON x.id = c.id',
    'SELECT email AS id, full_name AS city FROM maskgw_customers',
    'SELECT email, ssn FROM maskgw_customers AS maskgw_tickets',
    'SELECT EMAIL, Full_Name, `Ssn` FROM maskgw_customers',
    'SELECT test.maskgw_customers.email, maskgw_customers.phone FROM test.maskgw_customers',
    'SELECT profile, JSON_EXTRACT(profile, "$.mail") AS m, JSON_UNQUOTE(JSON_EXTRACT(profile, "$.mail")) AS u FROM maskgw_customers',
  ];

  live('aliases, expressions, CASE, subqueries, derived tables, CTEs, UNION, GROUP_CONCAT, JSON builders and joins: nothing leaks, in either protocol', async () => {
    const c = await as(ANALYST);
    for (const q of QUERIES) {
      const { text, binary } = await bothProtocols(c, q);
      expect({ q, leaks: leaks(text) }).toEqual({ q, leaks: [] });
      expect({ q, leaks: leaks(binary) }).toEqual({ q, leaks: [] });
      expect({ q, rows: text.length }).not.toEqual({ q, rows: 0 });
      expect({ q, rows: binary.length }).toEqual({ q, rows: text.length });
    }
    await c.end();
  });

  live('a stored value keeps its strategy through aliases, derived tables and CTEs; a computed one is redacted', async () => {
    const c = await as(ANALYST);
    const [a] = await c.query('SELECT d.e, d.n, d.x FROM (SELECT email AS e, full_name AS n, lower(ssn) AS x FROM maskgw_customers WHERE id = 1) AS d');
    expect(a).toEqual([{ e: 'z***@h***.example', n: hashOf(NAME), x: REDACTED_MARKER }]);
    const [b] = await c.query('WITH w AS (SELECT id, email AS e, phone AS p FROM maskgw_customers) SELECT e, p, upper(e) AS u FROM w WHERE id = 1');
    expect(b).toEqual([{ e: 'z***@h***.example', p: '+* *** *** **71', u: REDACTED_MARKER }]);
    const [d] = await c.query("SELECT lower(email) AS l, concat(full_name, '') AS n, substr(card, 1, 4) AS s FROM maskgw_customers WHERE id = 1");
    // The marker does not fit in the four characters of the result column: stars do.
    expect(d).toEqual([{ l: REDACTED_MARKER, n: REDACTED_MARKER, s: '****' }]);
    // A query cannot rebuild a partially masked value one slice per row.
    const [slices] = await c.query("SELECT substr(email, n) AS s FROM maskgw_customers, (SELECT 1 AS n UNION SELECT 2 UNION SELECT 3 UNION SELECT 20) g WHERE id = 1");
    expect(new Set((slices as Row[]).map((r) => r.s))).toEqual(new Set([REDACTED_MARKER]));
    // Nor test a guess against a hash.
    const [oracle] = await c.execute("SELECT concat(?, left(full_name, 0)) AS guess, full_name FROM maskgw_customers WHERE id = 1", [NAME]);
    expect((oracle as Row[])[0]!.guess).not.toBe((oracle as Row[])[0]!.full_name);
    // A column of the same name in a derived table over plain data is not masked.
    const [plain] = await c.query('SELECT t.email FROM (SELECT city AS email FROM maskgw_customers WHERE id = 1) t');
    expect(plain).toEqual([{ email: 'Paris' }]);
    await c.end();
  });

  live('UNION, GROUP_CONCAT and JSON builders over sensitive columns are redacted', async () => {
    const c = await as(ANALYST);
    const { text } = await bothProtocols(c, "SELECT GROUP_CONCAT(email ORDER BY id) AS g, JSON_OBJECT('m', email) AS j FROM maskgw_customers");
    expect(text).toEqual([{ g: REDACTED_MARKER, j: REDACTED_MARKER }]);
    const [u] = await c.query('SELECT email AS v FROM maskgw_customers WHERE id = 1 UNION ALL SELECT subject FROM maskgw_tickets WHERE id = 1');
    expect(u).toEqual([{ v: REDACTED_MARKER }, { v: REDACTED_MARKER }]);
    await c.end();
  });
});

describe('views, stored functions and free text', () => {
  live('views, views over views and an aliased view are traced to the table columns', async () => {
    const c = await as(ANALYST);
    const v = await bothProtocols(c, 'SELECT id, contact, mail, who, notes FROM maskgw_v ORDER BY id');
    expect(v.text[0]).toEqual({ id: 1, contact: REDACTED_MARKER, mail: 'z***@h***.example', who: hashOf(NAME), notes: 'likes tea' });
    expect(v.binary).toEqual(v.text);
    const v2 = await bothProtocols(c, 'SELECT c2, m2 FROM maskgw_v2 WHERE id = 1');
    expect(v2.text).toEqual([{ c2: REDACTED_MARKER, m2: 'z***@h***.example' }]);
    expect(v2.binary).toEqual(v2.text);
    const x = await bothProtocols(c, 'SELECT x.mail AS m, x.contact, x.who FROM maskgw_v AS x WHERE x.id = 1');
    expect(x.text).toEqual([{ m: 'z***@h***.example', contact: REDACTED_MARKER, who: hashOf(NAME) }]);
    expect(x.binary).toEqual(x.text);
    const star = await bothProtocols(c, 'SELECT * FROM maskgw_v2 AS y');
    expect(leaks(star)).toEqual([]);
    await c.end();
  });

  live('a stored function draws on what its body reads: its value is masked like a computed one', async () => {
    const c = await as(ANALYST);
    const f = await bothProtocols(c, 'SELECT maskgw_contact_of(1) AS f');
    expect(f.text).toEqual([{ f: '[redacted]' }]);
    expect(f.binary).toEqual(f.text);
    const [all] = await c.query('SELECT id, maskgw_contact_of(id) AS f FROM maskgw_customers ORDER BY id');
    expect(all).toEqual([
      { id: 1, f: '[redacted]' },
      { id: 2, f: '[redacted]' },
    ]);
    await c.end();
  });

  live('free-text columns are scanned: detected values are masked inside the text, the rest is unchanged', async () => {
    const c = await as(ANALYST);
    const t = await bothProtocols(c, 'SELECT id, body, subject FROM maskgw_tickets ORDER BY id');
    expect(t.text).toEqual([
      { id: 1, body: 'customer z***@h***.example paid with **** **** **** 4242', subject: 'refund' },
      { id: 2, body: 'nothing to see', subject: 'hello' },
    ]);
    expect(t.binary).toEqual(t.text);
    const [up] = await c.query('SELECT upper(body) AS b FROM maskgw_tickets WHERE id = 1');
    expect(leaks(up)).toEqual([]);
    await c.end();
  });
});

describe('other ways rows leave', () => {
  live('HANDLER ... READ is masked as the table it reads', async () => {
    const c = await as(ANALYST);
    await c.query('HANDLER maskgw_customers OPEN AS h');
    const [first] = await c.query('HANDLER h READ `PRIMARY` FIRST');
    const [next] = await c.query('HANDLER h READ `PRIMARY` NEXT');
    await c.query('HANDLER h CLOSE');
    expect(first).toMatchObject([{ id: 1, email: 'z***@h***.example', ssn: REDACTED_MARKER, full_name: hashOf(NAME), secret_note: null, city: 'Paris' }]);
    expect(next).toMatchObject([{ id: 2, email: 's***@o***.example', full_name: hashOf(NAME2), city: 'Lyon' }]);
    expect(leaks([first, next])).toEqual([]);
    await c.end();
  });

  live('SQL PREPARE and EXECUTE are masked as the statement they run, also when a name is prepared again', async () => {
    const c = await as(ANALYST);
    await c.query("PREPARE maskgw_s FROM 'SELECT city, lower(email) AS l, full_name FROM maskgw_customers WHERE id = ?'");
    await c.query('SET @maskgw_id = 1');
    const [first] = await c.query('EXECUTE maskgw_s USING @maskgw_id');
    expect(first).toEqual([{ city: 'Paris', l: REDACTED_MARKER, full_name: hashOf(NAME) }]);
    await c.query("PREPARE maskgw_s FROM 'SELECT lower(city) AS l FROM maskgw_customers WHERE id = ?'");
    expect((await c.query('EXECUTE maskgw_s USING @maskgw_id'))[0]).toEqual([{ l: 'paris' }]);
    await c.query("PREPARE maskgw_s FROM 'SELECT reverse(full_name) AS l FROM maskgw_customers WHERE id = ?'");
    expect((await c.query('EXECUTE maskgw_s USING @maskgw_id'))[0]).toEqual([{ l: REDACTED_MARKER }]);
    await c.query('DEALLOCATE PREPARE maskgw_s');
    await c.end();
  });

  live('INSERT and DELETE ... RETURNING are masked', async () => {
    const c = await as(ANALYST);
    try {
      const [ins] = await c.query(
        "INSERT INTO maskgw_customers (id, full_name, email, city) SELECT 70, full_name, 'copy@elsewhere.example', city FROM maskgw_customers WHERE id = 1 RETURNING id, full_name, lower(full_name) AS l, city",
      );
      const [del] = await c.query('DELETE FROM maskgw_customers WHERE id = 70 RETURNING full_name, email, reverse(full_name) AS r');
      expect(leaks([ins, del])).toEqual([]);
      expect((ins as Row[])[0]).toMatchObject({ id: 70, l: REDACTED_MARKER, city: 'Paris' });
      expect((del as Row[])[0]).toMatchObject({ full_name: hashOf(NAME), email: 'c***@e***.example', r: REDACTED_MARKER });
    } finally {
      await direct.query('DELETE FROM maskgw_customers WHERE id = 70');
      await c.end();
    }
  });
});

describe('multi-statement requests', () => {
  live('each statement of a request is masked by its own lineage', async () => {
    const c = await as(ANALYST, { multipleStatements: true });
    const [results] = await c.query(
      'SELECT lower(city) AS a FROM maskgw_customers WHERE id = 1; SELECT lower(email) AS a FROM maskgw_customers WHERE id = 1; ' +
        'SELECT subject AS a FROM maskgw_tickets WHERE id = 1; SELECT email AS a, city FROM maskgw_customers WHERE id = 1; ' +
        'SELECT 1 AS one; SELECT full_name AS a FROM maskgw_customers WHERE id = 1; SELECT upper(city) AS a FROM maskgw_customers WHERE id = 1',
    );
    expect(results).toEqual([
      [{ a: 'paris' }],
      [{ a: REDACTED_MARKER }],
      [{ a: 'refund' }],
      [{ a: 'z***@h***.example', city: 'Paris' }],
      [{ one: 1 }],
      [{ a: hashOf(NAME) }],
      [{ a: 'PARIS' }],
    ]);
    // Statements that return no rows in between (their OKs) do not shift the lineages.
    const [mixed] = await c.query(
      'SET @plain := 1; SELECT lower(city) AS a FROM maskgw_customers WHERE id = 1; DO 1; SELECT reverse(email) AS a FROM maskgw_customers WHERE id = 1; SELECT reverse(city) AS a FROM maskgw_customers WHERE id = 1',
    );
    const sets = (mixed as unknown[]).filter(Array.isArray);
    expect(sets).toEqual([[{ a: 'paris' }], [{ a: REDACTED_MARKER }], [{ a: 'siraP' }]]);
    await c.end();
  });
});

/** A prepared statement with a read-only cursor, fetched one row at a time through the raw protocol. */
async function cursorRows(raw: RawSession, sql: string, params: readonly BinaryParam[]): Promise<{ columns: RawResult['columns']; batches: (Buffer | null)[][][]; last: number }> {
  const st = await raw.prepare(sql);
  const opened = await raw.execute(st.id, params, true);
  expect(opened.rows).toEqual([]);
  expect(opened.status & ServerStatus.CURSOR_EXISTS).toBe(ServerStatus.CURSOR_EXISTS);
  const batches: (Buffer | null)[][][] = [];
  let status = 0;
  for (let i = 0; i < 10 && (status & ServerStatus.LAST_ROW_SENT) === 0; i++) {
    const f = await raw.fetch(st.id, 1);
    status = f.status;
    if (f.rows.length > 0) batches.push(rawValues({ columns: opened.columns, rows: f.rows, status }, true));
  }
  raw.closeStatement(st.id);
  return { columns: opened.columns, batches, last: status };
}

describe('read-only cursors (COM_STMT_EXECUTE with a cursor, then COM_STMT_FETCH)', () => {
  for (const deprecateEof of [true, false]) {
    live(`rows fetched from a cursor are masked in every batch (${deprecateEof ? 'with' : 'without'} CLIENT_DEPRECATE_EOF)`, async () => {
      const raw = await RawSession.open(gw, 'app', ANALYST.subject, ANALYST.token, deprecateEof);
      try {
        const r = await cursorRows(raw, 'SELECT id, email, full_name, age, ssn, lower(phone) AS p, city FROM maskgw_customers WHERE id >= ? ORDER BY id', [intParam(1)]);
        expect(r.batches).toHaveLength(2);
        const [first, second] = r.batches.map((b) => b[0]!);
        expect(first![0]!.readInt32LE(0)).toBe(1);
        expect([str(first![1]), str(first![2]), str(first![4]), str(first![5]), str(first![6])]).toEqual([
          'z***@h***.example',
          hashOf(NAME),
          REDACTED_MARKER,
          REDACTED_MARKER,
          'Paris',
        ]);
        expect(first![3]!.readInt32LE(0)).toBe(Number(hashedInt('42', 32)));
        expect([str(second![1]), str(second![2]), second![4], second![5], str(second![6])]).toEqual(['s***@o***.example', hashOf(NAME2), null, null, 'Lyon']);
        expect(leaks(r.batches)).toEqual([]);
        // A cursor over plain data is relayed as it is.
        const plain = await cursorRows(raw, 'SELECT label FROM maskgw_plain WHERE id = ?', [intParam(1)]);
        expect(plain.batches.map((b) => str(b[0]![0]))).toEqual(['write to plain.person@public.example']);
        // The session is still usable and masking.
        const [after] = await raw.query('SELECT email FROM maskgw_customers WHERE id = 1');
        expect(rawValues(after!, false).map((row) => str(row[0]))).toEqual(['z***@h***.example']);
      } finally {
        raw.close();
      }
    });
  }
});

describe('exemptions and policy mask rules', () => {
  live('an exempt identity sees clear values in both protocols and the free text unscanned', async () => {
    const c = await as(AUDITOR);
    const sql = 'SELECT email, ssn, full_name, age, born, secret_note, notes FROM maskgw_customers WHERE id = 1';
    const { text, binary } = await bothProtocols(c, sql);
    expect(text).toEqual([{ email: EMAIL, ssn: SSN, full_name: NAME, age: 42, born: '1990-01-02', secret_note: NOTE, notes: 'likes tea' }]);
    expect(binary).toEqual(text);
    const [t] = await c.query('SELECT body FROM maskgw_tickets WHERE id = 1');
    expect(t).toEqual([{ body: `customer ${EMAIL} paid with ${CARD}` }]);
    await c.end();
  });

  live('a policy mask rule masks for an exempt identity too, only the columns it names', async () => {
    const c = await as(AGENT);
    const { text, binary } = await bothProtocols(c, 'SELECT email, notes, ssn, full_name FROM maskgw_customers WHERE id = 1');
    expect(text).toEqual([{ email: hashOf(EMAIL), notes: hashOf('likes tea'), ssn: SSN, full_name: NAME }]);
    expect(binary).toEqual(text);
    // Through a view and an expression as well.
    const [v] = await c.query('SELECT mail, contact, notes FROM maskgw_v WHERE id = 1');
    expect(v).toEqual([{ mail: hashOf(EMAIL), contact: REDACTED_MARKER, notes: hashOf('likes tea') }]);
    await c.end();
  });
});

describe('errors', () => {
  live('a duplicate key on a sensitive table does not echo the value, in either protocol', async () => {
    const c = await as(ANALYST);
    const attempts: Promise<unknown>[] = [
      c.query('INSERT INTO maskgw_customers (id, email) SELECT 3, email FROM maskgw_customers WHERE id = 1'),
      c.query('UPDATE maskgw_customers SET email = (SELECT e FROM (SELECT email AS e FROM maskgw_customers WHERE id = 1) q) WHERE id = 2'),
      c.execute('INSERT INTO maskgw_customers (id, email) SELECT ?, email FROM maskgw_customers WHERE id = 1', [3]),
    ];
    for (const attempt of attempts) {
      const err = (await attempt.then(
        () => undefined,
        (e: unknown) => e,
      )) as { errno?: number; message?: string } | undefined;
      expect(err?.errno).toBe(1062);
      expect(err?.message).toMatch(/^Duplicate entry '\[redacted\]' for key/);
      expect(leaks(err?.message)).toEqual([]);
    }
    const [ok] = await c.query('SELECT 1 AS one');
    expect(ok).toEqual([{ one: 1 }]);
    await c.end();
  });

  live('a value quoted by any error of a statement reading a sensitive table is redacted', async () => {
    const c = await as(ANALYST);
    // Strict mode: a name that is not a number is an error quoting the value.
    const e = await c.query('INSERT INTO maskgw_plain (id, flag) SELECT 90, full_name FROM maskgw_customers WHERE id = 1').catch((err: unknown) => err as { errno: number; message: string });
    expect((e as { errno: number }).errno).toBe(1366);
    expect(leaks((e as { message: string }).message)).toEqual([]);
    await c.end();
  });

  live('the detectors run over every error, whatever the statement', async () => {
    const c = await as(ANALYST);
    const probe = 'signal.only@elsewhere.example';
    const e = await c.query(`SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'contact ${probe}'`).catch((err: unknown) => err as { message: string });
    expect((e as { message: string }).message).toBe('contact s***@e***.example');
    await c.end();
  });
});

describe('results with nothing sensitive', () => {
  live('are byte-identical to the server\'s, in the text and the binary protocol', async () => {
    const via = await RawSession.open(gw, 'app', ANALYST.subject, ANALYST.token);
    const own = await RawSession.direct();
    try {
      for (const sql of [
        'SELECT * FROM maskgw_plain ORDER BY id',
        "SELECT id, city, notes, 'x.literal@example.org' AS lit FROM maskgw_customers ORDER BY id",
        'SELECT id FROM maskgw_customers WHERE email LIKE \'z%\'',
      ]) {
        const [a] = await via.query(sql);
        const [b] = await own.query(sql);
        expect(a!.columns).toEqual(b!.columns);
        expect(a!.rows.length).toBeGreaterThan(0);
        expect({ sql, rows: a!.rows }).toEqual({ sql, rows: b!.rows });
        const sa = await via.prepare(sql);
        const sb = await own.prepare(sql);
        const ea = await via.execute(sa.id, []);
        const eb = await own.execute(sb.id, []);
        expect({ sql, rows: ea.rows }).toEqual({ sql, rows: eb.rows });
        via.closeStatement(sa.id);
        own.closeStatement(sb.id);
      }
    } finally {
      via.close();
      own.close();
    }
    // And through the driver, row for row.
    const c = await as(ANALYST);
    const sql = 'SELECT m.*, c.city, c.notes FROM maskgw_plain m LEFT JOIN maskgw_customers c ON c.id = m.id ORDER BY m.id';
    expect((await c.query(sql))[0]).toEqual((await direct.query(sql))[0]);
    expect((await c.execute(sql))[0]).toEqual((await direct.execute(sql))[0]);
    await c.end();
  });
});

describe('the audit', () => {
  live('the complete record lists the masked columns and what masked them, never a value', async () => {
    const c = await as(ANALYST);
    await c.query('SELECT id, email AS contact, ssn, lower(full_name) AS n, city FROM maskgw_customers');
    await c.query('SELECT body FROM maskgw_tickets ORDER BY id');
    await c.query('SELECT id, city FROM maskgw_customers');
    await c.end();
    const m = await as(ANALYST, { multipleStatements: true });
    await m.query('SELECT email AS multi_a FROM maskgw_customers; SELECT city AS multi_b FROM maskgw_customers; SELECT lower(ssn) AS multi_c FROM maskgw_customers');
    await m.end();
    const raw = await RawSession.open(gw, 'app', ANALYST.subject, ANALYST.token);
    await cursorRows(raw, 'SELECT id, email AS cursor_mail FROM maskgw_customers WHERE id >= ?', [intParam(1)]);
    raw.close();
    const a = await as(AGENT);
    await a.query('SELECT email AS agent_mail, ssn FROM maskgw_customers');
    await a.end();
    const auditor = await as(AUDITOR);
    await auditor.query('SELECT email AS exempt_mail FROM maskgw_customers');
    await auditor.end();
    const records = await gw.auditRecords();
    const complete = (text: RegExp) => {
      const rec = records.filter((r): r is Extract<AuditRecord, { type: 'statement' }> => r.type === 'statement' && r.phase === 'complete' && text.test(r.text)).at(-1);
      expect(rec, String(text)).toBeDefined();
      return rec!;
    };
    expect(complete(/email as contact/i).masked).toEqual([
      { column: 'contact', by: 'column:maskgw_customers.email' },
      { column: 'ssn', by: 'ssn-redacted' },
      { column: 'n', by: 'column:maskgw_customers.full_name' },
    ]);
    expect(complete(/select body from maskgw_tickets/i).masked).toEqual([
      { column: 'body', by: 'detector:email' },
      { column: 'body', by: 'detector:payment-card' },
    ]);
    expect(complete(/^select id, city from maskgw_customers$/i).masked).toBeUndefined();
    expect(complete(/multi_a/).masked).toEqual([{ column: 'multi_a', by: 'column:maskgw_customers.email' }]);
    expect(complete(/multi_b/).masked).toBeUndefined();
    expect(complete(/multi_c/).masked).toEqual([{ column: 'multi_c', by: 'ssn-redacted' }]);
    const cursor = complete(/cursor_mail/);
    expect(cursor.protocol).toBe('execute');
    expect(cursor.masked).toEqual([{ column: 'cursor_mail', by: 'column:maskgw_customers.email' }]);
    expect(complete(/exempt_mail/).masked).toBeUndefined();
    const agent = complete(/agent_mail/).masked;
    expect(agent).toHaveLength(1);
    expect(agent![0]!.column).toBe('agent_mail');
    expect(agent![0]!.by).toMatch(/agents-hash-contact/);
    expect(leaks(records)).toEqual([]);
  });
});

describe('schema and configuration changes', () => {
  live('masking switched on by a reload applies to sessions already open, and to statements prepared before it', async () => {
    const plain = await startTestGateway({ dialect: mysqlDialect, targets: { app: { upstream: UPSTREAM } }, tokens: [ANALYST], policy: POLICY });
    try {
      const c = await connectMysql(plain, 'app', ANALYST.subject, ANALYST.token, DRIVER);
      const raw = await RawSession.open(plain, 'app', ANALYST.subject, ANALYST.token);
      const sql = 'SELECT email, full_name FROM maskgw_customers WHERE id = ?';
      expect((await c.query(sql, [1]))[0]).toEqual([{ email: EMAIL, full_name: NAME }]);
      expect((await c.execute(sql, [1]))[0]).toEqual([{ email: EMAIL, full_name: NAME }]);
      const st = await raw.prepare(sql);
      plain.governor.setMasking(compileMasking(maskingSchema.parse(MASKING)));
      const masked = [{ email: 'z***@h***.example', full_name: hashOf(NAME) }];
      expect((await c.query(sql, [1]))[0]).toEqual(masked);
      // mysql2 executes the statement it prepared before the reload.
      expect((await c.execute(sql, [1]))[0]).toEqual(masked);
      const opened = await raw.execute(st.id, [intParam(1)], true);
      const fetched = await raw.fetch(st.id, 10);
      expect(rawValues({ columns: opened.columns, rows: fetched.rows, status: fetched.status }, true).map((r) => r.map(str))).toEqual([['z***@h***.example', hashOf(NAME)]]);
      // And switched off again.
      plain.governor.setMasking(undefined);
      expect((await c.query(sql, [1]))[0]).toEqual([{ email: EMAIL, full_name: NAME }]);
      raw.close();
      await c.end();
    } finally {
      await plain.close();
    }
  });

  live('a view created through the gateway is traced by the next statement', async () => {
    const c = await as(ANALYST);
    // The catalog is loaded before the view exists.
    await c.query('SELECT email FROM maskgw_customers WHERE id = 1');
    await direct.query('DROP VIEW IF EXISTS maskgw_late_v');
    await c.query('CREATE VIEW maskgw_late_v AS SELECT id, full_name AS holder, upper(full_name) AS shout, city FROM maskgw_customers');
    const { text, binary } = await bothProtocols(c, 'SELECT holder, shout, city FROM maskgw_late_v WHERE id = 1');
    expect(text).toEqual([{ holder: hashOf(NAME), shout: REDACTED_MARKER, city: 'Paris' }]);
    expect(binary).toEqual(text);
    await c.end();
  });

  live('a table created directly on the server after the catalog was read is masked', async () => {
    const c = await as(ANALYST);
    await c.query('SELECT email FROM maskgw_customers WHERE id = 1');
    await direct.query('DROP TABLE IF EXISTS maskgw_late');
    await direct.query('CREATE TABLE maskgw_late (id INT PRIMARY KEY, holder VARCHAR(40), note VARCHAR(40)) DEFAULT CHARSET utf8mb4');
    await direct.query(`INSERT INTO maskgw_late VALUES (1, '${LATE_HOLDER}', 'plain note')`);
    for (const sql of ['SELECT * FROM maskgw_late', 'SELECT id, holder, note FROM maskgw_late', 'SELECT h.holder AS x, note FROM maskgw_late h']) {
      const { text, binary } = await bothProtocols(c, sql);
      expect({ sql, leaks: leaks([text, binary]) }).toEqual({ sql, leaks: [] });
      expect(binary).toEqual(text);
      expect(Object.values(text[0]!)).toContain(hashOf(LATE_HOLDER));
    }
    const [computed] = await c.query('SELECT upper(holder) AS u, concat(note, \'\') AS n FROM maskgw_late');
    expect(computed).toEqual([{ u: REDACTED_MARKER, n: 'plain note' }]);
    await c.end();
  });
});

describe('the mysql command-line client', () => {
  live('reads masked values (the token sent in clear when the gateway asks)', async () => {
    const args = ['-h', gw.host, '-P', String(gw.port), '-u', ANALYST.subject, `-p${ANALYST.token}`, 'app', '--batch', '-e'];
    const out = await run('mysql', [...args, 'SELECT id, email, ssn, full_name, lower(phone) AS p, secret_note, city FROM maskgw_customers ORDER BY id; SELECT body FROM maskgw_tickets ORDER BY id']);
    expect(leaks(out.stdout)).toEqual([]);
    expect(out.stdout.trim().split('\n')).toEqual([
      'id\temail\tssn\tfull_name\tp\tsecret_note\tcity',
      `1\tz***@h***.example\t[redacted]\t${hashOf(NAME)}\t[redacted]\tNULL\tParis`,
      `2\ts***@o***.example\tNULL\t${hashOf(NAME2)}\tNULL\tNULL\tLyon`,
      'body',
      'customer z***@h***.example paid with **** **** **** 4242',
      'nothing to see',
    ]);
    const exempt = await run('mysql', ['-h', gw.host, '-P', String(gw.port), '-u', AUDITOR.subject, `-p${AUDITOR.token}`, 'app', '--batch', '-N', '-e', 'SELECT email FROM maskgw_customers WHERE id = 1']);
    expect(exempt.stdout.trim()).toBe(EMAIL);
  });
});
