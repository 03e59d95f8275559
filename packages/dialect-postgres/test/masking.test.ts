import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { compileMasking, maskingSchema } from '@sluice/core';
import { requireService, startTestGateway, type TestGateway } from '@sluice/testkit';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { postgresDialect } from '../src/index.js';
import { connectPg } from './pg-driver.js';
import { serialize } from 'pg-protocol';
import { leaksOf, liveTest, rawClient } from './support.js';

/**
 * Masking through the gateway against the real PostgreSQL: resolution through aliases,
 * expressions, views and functions; every way rows leave; type-valid values; exemptions.
 */
const run = promisify(execFile);
const UPSTREAM = 'postgres://postgres@127.0.0.1:5432/test';

const ANALYST = { subject: 'ann@example.com', kind: 'human', groups: ['analysts'], token: 'ann-mask-token' } as const;
const AUDITOR = { subject: 'cy@example.com', kind: 'human', groups: ['compliance'], token: 'cy-mask-token' } as const;
const AGENT = { subject: 'mask-bot', kind: 'agent', groups: ['pipelines'], token: 'bot-mask-token' } as const;

const EMAIL = 'alice.liddell@wonderland.example';
const EMAIL2 = 'bob.builder@construction.example';
const PHONE = '+1 415 555 2671';
const CARD = '4242 4242 4242 4242';
const SSN = '123-45-6789';
const NAME = 'Alice Liddell';
/** Seeded sensitive values: none of them (nor a transformed form) may reach an analyst. */
const SECRETS = [EMAIL, EMAIL2, PHONE, CARD, SSN, NAME];

const MASKING = {
  hashKey: 'a-test-hash-key-of-some-length',
  columns: [
    { column: 'public.sluice_mask_customers.email', strategy: 'partial' },
    { column: 'sluice_mask_customers.phone', strategy: 'partial' },
    { column: '*.sluice_mask_customers.card', strategy: 'partial' },
    { column: 'sluice_mask_customers.ssn', strategy: 'redact', name: 'ssn-redacted' },
    { column: 'sluice_mask_customers.full_name', strategy: 'hash' },
    { column: 'sluice_mask_customers.age', strategy: 'hash' },
    { column: 'sluice_mask_customers.token', strategy: 'hash' },
    { column: 'sluice_mask_customers.born', strategy: 'partial' },
  ],
  scan: ['sluice_mask_tickets.body'],
  exempt: { groups: ['compliance'] },
};

const POLICY = {
  rules: [
    { name: 'everyone', operations: ['read', 'write', 'ddl', 'copy-out', 'transaction', 'session-setting'], effect: 'allow' },
    { name: 'agents-mask-notes', identities: { kinds: ['agent'] }, effect: 'mask', mask: { columns: ['sluice_mask_customers.notes'], strategy: 'redact' } },
  ],
};

let gw: TestGateway;
let available = false;
let direct: pg.Client;

beforeAll(async () => {
  available = await requireService('PostgreSQL', '127.0.0.1', 5432);
  if (!available) return;
  direct = new pg.Client({ connectionString: UPSTREAM });
  await direct.connect();
  await direct.query('DROP VIEW IF EXISTS sluice_mask_v, sluice_mask_v2');
  await direct.query('DROP TABLE IF EXISTS sluice_mask_customers, sluice_mask_tickets');
  await direct.query('DROP FUNCTION IF EXISTS sluice_mask_email_of(int), sluice_mask_opaque(int)');
  await direct.query(`CREATE TABLE sluice_mask_customers (
    id int PRIMARY KEY, full_name text, email varchar(60) UNIQUE, phone text, card char(19), ssn varchar(11),
    age int, token uuid, born date, notes text)`);
  await direct.query(
    `INSERT INTO sluice_mask_customers VALUES
      (1, $1, $2, $3, $4, $5, 42, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '1990-01-02', 'likes tea'),
      (2, 'Bob Builder', $6, NULL, NULL, NULL, 7, NULL, NULL, NULL)`,
    [NAME, EMAIL, PHONE, CARD, SSN, EMAIL2],
  );
  await direct.query('CREATE VIEW sluice_mask_v AS SELECT id, lower(email) AS contact, notes FROM sluice_mask_customers');
  await direct.query('CREATE VIEW sluice_mask_v2 AS SELECT id, contact AS c2 FROM sluice_mask_v');
  await direct.query(`CREATE FUNCTION sluice_mask_email_of(int) RETURNS text LANGUAGE sql AS 'SELECT email FROM sluice_mask_customers WHERE id = $1'`);
  await direct.query(
    `CREATE FUNCTION sluice_mask_opaque(int) RETURNS text LANGUAGE plpgsql AS $$ BEGIN RETURN (SELECT 'write to ' || email FROM sluice_mask_customers WHERE id = $1); END $$`,
  );
  await direct.query('CREATE TABLE sluice_mask_tickets (id int, body text)');
  await direct.query(`INSERT INTO sluice_mask_tickets VALUES (1, 'customer ${EMAIL} paid with ${CARD}'), (2, 'nothing to see')`);
  gw = await startTestGateway({
    dialect: postgresDialect,
    targets: { app: { upstream: UPSTREAM } },
    tokens: [ANALYST, AUDITOR, AGENT],
    policy: POLICY,
    masking: MASKING,
  });
});

afterAll(async () => {
  if (direct) {
    await direct.query('DROP VIEW IF EXISTS sluice_mask_v2, sluice_mask_v');
    await direct.query('DROP TABLE IF EXISTS sluice_mask_customers, sluice_mask_tickets');
    await direct.query('DROP FUNCTION IF EXISTS sluice_mask_email_of(int), sluice_mask_opaque(int)');
    await direct.end();
  }
  await gw?.close();
});

const live = liveTest(() => available);
const as = (who: { subject: string; token: string }) => connectPg(gw, 'app', who.subject, who.token);

/** Every seeded value and its easy transforms. */
const leaks = (value: unknown): string[] => leaksOf(SECRETS, value);

describe('masking through the gateway', () => {
  live('SELECT * masks each configured column with its strategy, keeping row count, names and types', async () => {
    const c = await as(ANALYST);
    const viaGateway = await c.query('SELECT * FROM sluice_mask_customers ORDER BY id');
    const plain = await direct.query('SELECT * FROM sluice_mask_customers ORDER BY id');
    expect(viaGateway.rows.length).toBe(plain.rows.length);
    expect(viaGateway.fields.map((f) => [f.name, f.dataTypeID])).toEqual(plain.fields.map((f) => [f.name, f.dataTypeID]));
    const r = viaGateway.rows[0];
    expect(r.id).toBe(1);
    expect(r.email).toBe('a***@w***.example');
    expect(r.phone).toBe('+* *** *** **71');
    expect(r.card).toBe('**** **** **** 4242');
    expect(r.ssn).toBe('[redacted]');
    expect(r.full_name).toMatch(/^h_[0-9a-f]{16}$/);
    expect(typeof r.age).toBe('number');
    expect(r.age).not.toBe(42);
    expect(r.token).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(r.born).toBeNull();
    expect(r.notes).toBe('likes tea');
    expect(viaGateway.rows[1].phone).toBeNull();
    expect(leaks(viaGateway.rows)).toEqual([]);
    // Hashing is deterministic: the same value masks the same way.
    const again = await c.query('SELECT full_name, age FROM sluice_mask_customers WHERE id = 1');
    expect(again.rows[0]).toEqual({ full_name: r.full_name, age: r.age });
    await c.end();
  });

  live('aliases, expressions, subqueries, CTEs, set operations, whole rows and JSON builders cannot hide a column', async () => {
    const c = await as(ANALYST);
    const queries = [
      'SELECT email AS e, lower(email) AS x, upper(email) u, reverse(email) r, email || \'\' AS cat FROM sluice_mask_customers',
      "SELECT substr(email, 1, 40) s, md5(email) m, coalesce(email, 'none') co, CASE WHEN id > 0 THEN email END ca FROM sluice_mask_customers",
      'SELECT (SELECT email FROM sluice_mask_customers WHERE id = 1) AS sub',
      'WITH t AS (SELECT id, lower(email) AS e FROM sluice_mask_customers) SELECT upper(e) FROM t',
      'SELECT * FROM (SELECT reverse(email) AS r, full_name n FROM sluice_mask_customers) s',
      'SELECT email FROM sluice_mask_customers UNION ALL SELECT body FROM sluice_mask_tickets',
      'SELECT row_to_json(c) AS j FROM sluice_mask_customers c',
      "SELECT json_build_object('who', full_name, 'mail', email) AS j FROM sluice_mask_customers",
      'SELECT string_agg(email, \',\') AS all_mail, array_agg(phone) AS phones FROM sluice_mask_customers',
      'SELECT encode(convert_to(email, \'UTF8\'), \'base64\') AS b64, encode(convert_to(ssn, \'UTF8\'), \'hex\') AS hx FROM sluice_mask_customers',
      'SELECT c FROM sluice_mask_customers c',
      'SELECT t.*, c.* FROM sluice_mask_tickets t JOIN sluice_mask_customers c ON c.id = t.id',
    ];
    for (const q of queries) {
      const r = await c.query(q);
      expect({ q, leaks: leaks(r.rows) }).toEqual({ q, leaks: [] });
      expect(r.rows.length).toBeGreaterThan(0);
    }
    await c.end();
  });

  live('views and SQL functions are resolved through the catalog; an opaque function is scanned', async () => {
    const c = await as(ANALYST);
    const v = await c.query('SELECT contact, notes FROM sluice_mask_v ORDER BY id');
    expect(v.rows[0].contact).toBe('a***@w***.example');
    expect(v.rows[0].notes).toBe('likes tea');
    const v2 = await c.query('SELECT upper(c2) AS x FROM sluice_mask_v2');
    expect(leaks(v2.rows)).toEqual([]);
    // A computed value (a function's result) is redacted: partial and hash are for stored values.
    const f = await c.query('SELECT sluice_mask_email_of(1) AS e');
    expect(f.rows[0].e).toBe('[redacted]');
    const o = await c.query('SELECT sluice_mask_opaque(1) AS o');
    expect(o.rows[0].o).toBe('write to a***@w***.example');
    await c.end();
  });

  live('free-text columns are scanned by the detectors; a result without sensitive columns is unchanged', async () => {
    const c = await as(ANALYST);
    const t = await c.query('SELECT body FROM sluice_mask_tickets ORDER BY id');
    expect(t.rows[0].body).toBe('customer a***@w***.example paid with **** **** **** 4242');
    expect(t.rows[1].body).toBe('nothing to see');
    const plain = await direct.query("SELECT id, notes, 'x@y.example' AS lit FROM sluice_mask_customers ORDER BY id");
    const via = await c.query("SELECT id, notes, 'x@y.example' AS lit FROM sluice_mask_customers ORDER BY id");
    expect(via.rows).toEqual(plain.rows);
    await c.end();
  });

  live('an exempt identity sees clear values; a policy mask rule masks for the identities it names', async () => {
    const auditor = await as(AUDITOR);
    const r = await auditor.query('SELECT email, ssn, notes FROM sluice_mask_customers WHERE id = 1');
    expect(r.rows[0]).toEqual({ email: EMAIL, ssn: SSN, notes: 'likes tea' });
    await auditor.end();
    const bot = await as(AGENT);
    const b = await bot.query('SELECT email, notes FROM sluice_mask_customers WHERE id = 1');
    expect(b.rows[0]).toEqual({ email: 'a***@w***.example', notes: '[redacted]' });
    await bot.end();
  });

  live('extended protocol: parameters, named statements run many times, binary results', async () => {
    const c = await as(ANALYST);
    for (let i = 0; i < 3; i++) {
      const r = await c.query({ name: 'by-id', text: 'SELECT email, age, token FROM sluice_mask_customers WHERE id = $1', values: [1] });
      expect(r.rows[0].email).toBe('a***@w***.example');
      expect(r.rows[0].age).not.toBe(42);
    }
    await c.end();
    const b = await as(ANALYST);
    const binary = await b.query({ text: 'SELECT email, age, token, card FROM sluice_mask_customers WHERE id = $1', values: [1], binary: true } as pg.QueryConfig);
    expect(binary.rows[0].email).toBe('a***@w***.example');
    expect(binary.rows[0].card).toBe('**** **** **** 4242');
    expect(typeof binary.rows[0].age).toBe('number');
    expect(binary.rows[0].age).not.toBe(42);
    await b.end();
  });

  live('cursors, RETURNING and COPY TO STDOUT are masked', async () => {
    const c = await as(ANALYST);
    await c.query('BEGIN');
    await c.query('DECLARE cur CURSOR FOR SELECT lower(email) AS e FROM sluice_mask_customers ORDER BY id');
    const f1 = await c.query('FETCH 1 FROM cur');
    const f2 = await c.query('FETCH 1 FROM cur');
    expect(leaks([f1.rows, f2.rows])).toEqual([]);
    expect(f1.rows[0].e).toBe('[redacted]');
    await c.query('COMMIT');
    const u = await c.query("UPDATE sluice_mask_customers SET notes = notes WHERE id = 1 RETURNING email, ssn");
    expect(u.rows[0]).toEqual({ email: 'a***@w***.example', ssn: '[redacted]' });
    await c.end();
    const url = `postgres://${encodeURIComponent(ANALYST.subject)}:${ANALYST.token}@${gw.host}:${gw.port}/app`;
    const copy = await run('psql', [url, '-X', '-c', 'COPY sluice_mask_customers TO STDOUT']);
    expect(leaks(copy.stdout)).toEqual([]);
    expect(copy.stdout).toContain('a***@w***.example');
    expect(copy.stdout.trim().split('\n')).toHaveLength(2);
    const csv = await run('psql', [url, '-X', '-c', 'COPY (SELECT id, upper(email), body FROM sluice_mask_customers JOIN sluice_mask_tickets USING (id)) TO STDOUT WITH (FORMAT csv, HEADER)']);
    expect(leaks(csv.stdout)).toEqual([]);
    expect(csv.stdout.split('\n')[0]).toBe('id,upper,body');
  });

  live('errors that echo a sensitive value do not carry it', async () => {
    const c = await as(ANALYST);
    const cast = await c.query('SELECT email::int FROM sluice_mask_customers').catch((e: unknown) => e as pg.DatabaseError);
    expect(cast).toBeInstanceOf(Error);
    expect(leaks([(cast as pg.DatabaseError).message, (cast as pg.DatabaseError).detail])).toEqual([]);
    const dup = await c.query('UPDATE sluice_mask_customers SET email = (SELECT email FROM sluice_mask_customers WHERE id = 1) WHERE id = 2').catch((e: unknown) => e as pg.DatabaseError);
    expect((dup as pg.DatabaseError).code).toBe('23505');
    expect(leaks([(dup as pg.DatabaseError).message, (dup as pg.DatabaseError).detail])).toEqual([]);
    expect((await c.query('SELECT 1 AS one')).rows[0].one).toBe(1);
    await c.end();
  });

  live('the audit record lists masked columns and what masked them, never the values', async () => {
    const c = await as(ANALYST);
    await c.query('SELECT id, email AS contact, ssn FROM sluice_mask_customers');
    await c.end();
    const records = await gw.auditRecords();
    const rec = records.filter((r) => r.type === 'statement' && r.phase === 'complete' && /email as contact/i.test(r.text)).at(-1);
    expect(rec && rec.type === 'statement' ? rec.masked : undefined).toEqual([
      { column: 'contact', by: 'column:public.sluice_mask_customers.email' },
      { column: 'ssn', by: 'ssn-redacted' },
    ]);
    expect(leaks(records)).toEqual([]);
  });

  live('a portal fetched in batches is masked in every batch', async () => {
    const raw = await rawClient(gw, ANALYST);
    raw.send(
      serialize.parse({ name: '', text: 'SELECT email FROM sluice_mask_customers ORDER BY id', types: [] }),
      serialize.bind({ portal: 'p', statement: '', values: [] }),
      serialize.execute({ portal: 'p', rows: 1 }),
      serialize.execute({ portal: 'p', rows: 1 }),
      serialize.sync(),
    );
    await raw.take((t) => t.endsWith('Z'));
    const rows = raw.frames().filter((f) => f.type === 'D').map((f) => f.frame.toString('utf8'));
    expect(rows).toHaveLength(2);
    expect(leaks(rows)).toEqual([]);
    expect(rows[0]).toContain('a***@w***.example');
    raw.close();
  });

  live('a schema change through the gateway is seen by the next statement', async () => {
    const c = await as(ANALYST);
    await direct.query('DROP VIEW IF EXISTS sluice_mask_late');
    await c.query('CREATE VIEW sluice_mask_late AS SELECT id, initcap(full_name) AS who FROM sluice_mask_customers');
    const r = await c.query('SELECT who FROM sluice_mask_late ORDER BY id');
    expect(leaks(r.rows)).toEqual([]);
    expect(r.rows[0].who).toMatch(/^h_/);
    await direct.query('DROP VIEW sluice_mask_late');
    await c.end();
  });

  live('COPY in the binary format is refused when it would need masking', async () => {
    const url = `postgres://${encodeURIComponent(ANALYST.subject)}:${ANALYST.token}@${gw.host}:${gw.port}/app`;
    const out = await run('psql', [url, '-X', '-c', 'COPY sluice_mask_customers TO STDOUT (FORMAT binary)']).catch((e: { stderr: string }) => e);
    expect((out as { stderr: string }).stderr).toMatch(/binary format cannot be masked/);
  });

  live('a table made directly on the database, after the catalog was read, is masked (then precisely, once the catalog is read again)', async () => {
    const c = await as(ANALYST);
    await c.query('SELECT 1');
    await direct.query('DROP SCHEMA IF EXISTS sluice_mask_other CASCADE');
    await direct.query('CREATE SCHEMA sluice_mask_other');
    await direct.query('CREATE TABLE sluice_mask_other.sluice_mask_customers (id int, card char(19))');
    await direct.query('INSERT INTO sluice_mask_other.sluice_mask_customers VALUES (7, $1)', [CARD]);
    try {
      // Unknown to the catalog: it may hold anything the statement reads, so everything is masked.
      const first = await c.query('SELECT * FROM sluice_mask_other.sluice_mask_customers');
      expect(leaks(first.rows)).toEqual([]);
      expect(first.rows[0].id).toBeNull();
      const second = await c.query('SELECT * FROM sluice_mask_other.sluice_mask_customers');
      expect(second.rows).toEqual([{ id: 7, card: '**** **** **** 4242' }]);
    } finally {
      await direct.query('DROP SCHEMA sluice_mask_other CASCADE');
      await c.end();
    }
  });

  live('rows larger than a network chunk, and many rows across chunk boundaries, are masked whole', async () => {
    const c = await as(ANALYST);
    const big = await c.query(`SELECT repeat('x', 300000) || email AS e, id FROM sluice_mask_customers ORDER BY id`);
    expect(big.rows.map((r) => r.e)).toEqual(['[redacted]', '[redacted]']);
    const many = await c.query('SELECT g, email, ssn FROM sluice_mask_customers, generate_series(1, 20000) g WHERE id = 1');
    expect(many.rows).toHaveLength(20000);
    expect(many.rows.every((r) => r.email === 'a***@w***.example' && r.ssn === '[redacted]')).toBe(true);
    await c.end();
  });

  live('a JDBC client (pgjdbc, server-prepared statements, binary transfer) reads type-valid masked values', async () => {
    const jar = '/usr/share/java/postgresql.jar';
    if (!existsSync(jar)) {
      const message = `pgjdbc is not installed (${jar}; Debian package libpostgresql-jdbc-java): the JDBC masking check cannot run`;
      if (process.env.SLUICE_REQUIRE_SERVICES === '1') throw new Error(message);
      console.warn(`WARNING: ${message}`);
      return;
    }
    const url = `jdbc:postgresql://${gw.host}:${gw.port}/app?prepareThreshold=1&sslmode=disable`;
    const source = fileURLToPath(new URL('./jdbc/JdbcMasking.java', import.meta.url));
    const out = await run('java', ['-cp', jar, source, url, ANALYST.subject, ANALYST.token], { timeout: 60_000 });
    const lines = out.stdout.trim().split('\n');
    expect(lines).toHaveLength(6);
    expect(new Set(lines).size).toBe(1);
    const [id, email, age, token, born, card, x] = lines[0]!.split('|');
    expect([id, email, born, card, x]).toEqual(['1', 'a***@w***.example', 'null', '**** **** **** 4242', '[redacted]']);
    expect(Number(age)).not.toBe(42);
    expect(token).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(leaks(out.stdout)).toEqual([]);
  }, 90_000);

  live('a cursor declared again under the same name is masked by its new query', async () => {
    const c = await as(ANALYST);
    await c.query('BEGIN');
    await c.query("DECLARE cur2 CURSOR FOR SELECT 'plain text' AS v");
    expect((await c.query('FETCH 1 FROM cur2')).rows).toEqual([{ v: 'plain text' }]);
    await c.query('CLOSE cur2');
    await c.query('DECLARE cur2 CURSOR FOR SELECT reverse(email) AS v FROM sluice_mask_customers ORDER BY id');
    const r = await c.query('FETCH 1 FROM cur2');
    expect(leaks(r.rows)).toEqual([]);
    await c.query('COMMIT');
    await c.end();
  });

  live('masking switched on by a reload applies to sessions already open', async () => {
    const plain = await startTestGateway({ dialect: postgresDialect, targets: { app: { upstream: UPSTREAM } }, tokens: [ANALYST], policy: POLICY });
    try {
      const c = await connectPg(plain, 'app', ANALYST.subject, ANALYST.token);
      expect((await c.query('SELECT email FROM sluice_mask_customers WHERE id = 1')).rows[0].email).toBe(EMAIL);
      plain.governor.setMasking(compileMasking(maskingSchema.parse(MASKING)));
      expect((await c.query('SELECT email FROM sluice_mask_customers WHERE id = 1')).rows[0].email).toBe('a***@w***.example');
      expect((await c.query({ text: 'SELECT email FROM sluice_mask_customers WHERE id = $1', values: [1] })).rows[0].email).toBe('a***@w***.example');
      await c.end();
    } finally {
      await plain.close();
    }
  });

  live('a computed value cannot rebuild a partially masked one: partial and hash apply to stored values only', async () => {
    const c = await as(ANALYST);
    const rows = (await c.query("SELECT substr(email, g) || '#####' AS s FROM sluice_mask_customers, generate_series(1, 40) g WHERE id = 1")).rows;
    expect(new Set(rows.map((r) => r.s))).toEqual(new Set(['[redacted]']));
    const oracle = (await c.query("SELECT g || left(notes, 0) AS h, full_name FROM sluice_mask_customers, (VALUES ($1)) v(g) WHERE id = 1", [NAME])).rows[0];
    expect(oracle.h).not.toBe(oracle.full_name);
    await c.end();
  });

  live('FETCH through the extended protocol is described at run time, not when the FETCH was parsed', async () => {
    const raw = await rawClient(gw, ANALYST);
    raw.send(serialize.parse({ name: 'f', text: 'FETCH ALL FROM late_cur', types: [] }), serialize.describe({ type: 'S', name: 'f' }), serialize.sync());
    await raw.take((t) => t.endsWith('Z'));
    raw.send(
      serialize.query('BEGIN'),
      serialize.query('DECLARE late_cur CURSOR FOR SELECT id, email, ssn FROM sluice_mask_customers ORDER BY id'),
    );
    await raw.take((t) => (t.match(/Z/g) ?? []).length >= 2);
    raw.send(serialize.bind({ portal: '', statement: 'f', values: [] }), serialize.execute({ portal: '' }), serialize.sync(), serialize.query('COMMIT'));
    await raw.take((t) => (t.match(/Z/g) ?? []).length >= 2);
    const rows = raw.frames().filter((f) => f.type === 'D').map((f) => f.frame.toString('utf8'));
    expect(rows.length).toBeGreaterThan(0);
    expect(leaks(rows)).toEqual([]);
    raw.close();
  });

  live('COPY with a delimiter that appears in a value keeps its columns apart', async () => {
    const url = `postgres://${encodeURIComponent(ANALYST.subject)}:${ANALYST.token}@${gw.host}:${gw.port}/app`;
    const out = await run('psql', [url, '-X', '-c', "COPY (SELECT '|' AS sep, email, ssn FROM sluice_mask_customers WHERE id = 1) TO STDOUT (DELIMITER '|')"]);
    expect(leaks(out.stdout)).toEqual([]);
    // Three fields: the escaped delimiter, then the masked columns (of a query: NULL).
    expect(out.stdout.trim()).toBe('\\||\\N|\\N');
  });

  live('errors of any class built from a sensitive column are redacted', async () => {
    const c = await as(ANALYST);
    const e = await c.query('SELECT current_setting(ssn) FROM sluice_mask_customers WHERE id = 1').catch((err: unknown) => err as pg.DatabaseError);
    expect(e).toBeInstanceOf(Error);
    expect(leaks([(e as pg.DatabaseError).message])).toEqual([]);
    await c.end();
  });
});
