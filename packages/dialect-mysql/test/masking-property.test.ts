import { requireService, startTestGateway, type TestGateway } from '@sluice/testkit';
import fc from 'fast-check';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { mysqlDialect } from '../src/index.js';
import { connectMysql } from './mysql-driver.js';
import { decodedLeaks, DIRECT, leaksOf, liveTest, UPSTREAM } from './masking-support.js';

/**
 * Generated queries over a seeded table with sensitive columns, through the gateway against
 * the real MariaDB 10.11: projections wrapped in functions, aliases, nesting, subqueries,
 * derived tables, CTEs, unions, aggregates, joins and views. No seeded value, nor its
 * upper-case, lower-case, reversed, base64 or hex form (decoded from any result value), reaches
 * the client, in the text protocol and the binary protocol, alone or among the statements of a
 * multi-statement request.
 */
const ANALYST = { subject: 'maskgw-prop@example.com', kind: 'human', groups: ['analysts'], token: 'maskgw-prop-token' } as const;

const SEEDS = [
  { email: 'quartz.vole@hidden-domain.example', phone: '+44 20 7946 0958', ssn: '219-09-9999', full_name: 'Velvet Ampersand', card: '5555 5555 5555 4444', city: 'Paris' },
  { email: 'amber.newt@secret-place.example', phone: '+1 212 555 0147', ssn: '078-05-1120', full_name: 'Cobalt Semicolon', card: '4111 1111 1111 1111', city: 'Lyon' },
] as const;
const SECRETS = SEEDS.flatMap((s) => [s.email, s.phone, s.ssn, s.full_name, s.card]);
/** The name-like values: no detector finds them, so only the configured masks keep them in. */
const CITY_OF = new Map<number, string>([
  [1, 'paris'],
  [2, 'lyon'],
]);

let gw: TestGateway;
let available = false;
let direct: mysql.Connection;

const SETUP = [
  'DROP VIEW IF EXISTS maskgw_prop_v2, maskgw_prop_v',
  'DROP TABLE IF EXISTS maskgw_prop_people',
  `CREATE TABLE maskgw_prop_people (id INT PRIMARY KEY, email VARCHAR(80), phone VARCHAR(30), ssn VARCHAR(11), full_name VARCHAR(60),
     card VARCHAR(25), city VARCHAR(30)) DEFAULT CHARSET utf8mb4`,
  'CREATE VIEW maskgw_prop_v AS SELECT id, email, phone, ssn, full_name, card, city FROM maskgw_prop_people',
  // A view over the view, renaming and computing.
  "CREATE VIEW maskgw_prop_v2 AS SELECT id, lower(email) AS email, phone, concat(ssn, '') AS ssn, full_name, card, city FROM maskgw_prop_v",
];

beforeAll(async () => {
  available = await requireService('MariaDB', '127.0.0.1', 3306);
  if (!available) return;
  direct = await mysql.createConnection(DIRECT);
  for (const sql of SETUP) await direct.query(sql);
  for (const [i, s] of SEEDS.entries()) {
    await direct.query('INSERT INTO maskgw_prop_people VALUES (?, ?, ?, ?, ?, ?, ?)', [i + 1, s.email, s.phone, s.ssn, s.full_name, s.card, s.city]);
  }
  gw = await startTestGateway({
    dialect: mysqlDialect,
    targets: { app: { upstream: UPSTREAM } },
    tokens: [ANALYST],
    policy: { rules: [{ name: 'read', operations: ['read', 'transaction'], effect: 'allow' }] },
    masking: {
      hashKey: 'maskgw-property-hash-key-42',
      columns: [
        { column: 'maskgw_prop_people.email', strategy: 'partial' },
        { column: 'maskgw_prop_people.phone', strategy: 'partial' },
        { column: 'maskgw_prop_people.ssn', strategy: 'redact' },
        { column: 'maskgw_prop_people.full_name', strategy: 'hash' },
        { column: 'maskgw_prop_people.card', strategy: 'null' },
      ],
    },
  });
});

afterAll(async () => {
  await gw?.close();
  if (direct) {
    await direct.query('DROP VIEW IF EXISTS maskgw_prop_v2, maskgw_prop_v');
    await direct.query('DROP TABLE IF EXISTS maskgw_prop_people');
    await direct.end();
  }
});

const live = liveTest(() => available);
/** The connection collation is the columns' own, so that computed text and stored text mix in a UNION. */
const connect = (extra: mysql.ConnectionOptions = {}) => connectMysql(gw, 'app', ANALYST.subject, ANALYST.token, { charset: 'UTF8MB4_GENERAL_CI', ...extra });

const leaks = (value: unknown): string[] => [...new Set([...leaksOf(SECRETS, value), ...decodedLeaks(SECRETS, value)])];

const COLUMNS = ['email', 'phone', 'ssn', 'full_name', 'card'] as const;
const NAMES = /(?<![.\w`'])(id|email|phone|ssn|full_name|card|city)\b/g;
/** The column references of an expression, qualified by `alias`. */
const qualify = (e: string, alias: string): string => e.replace(NAMES, `${alias}.$1`);

const wrappers: ((e: string) => string)[] = [
  (e) => `lower(${e})`,
  (e) => `upper(${e})`,
  (e) => `reverse(${e})`,
  (e) => `trim(${e})`,
  (e) => `ltrim(concat(' ', ${e}))`,
  (e) => `concat(${e}, '')`,
  (e) => `concat('<', ${e}, '>')`,
  (e) => `concat_ws(',', ${e}, 'x')`,
  (e) => `coalesce(${e}, 'none')`,
  (e) => `ifnull(${e}, 'none')`,
  (e) => `nullif(${e}, 'zzz')`,
  (e) => `IF(id > 0, ${e}, 'x')`,
  (e) => `CASE WHEN id > 0 THEN ${e} ELSE 'x' END`,
  (e) => `replace(${e}, 'zzz', 'zzz')`,
  (e) => `regexp_replace(${e}, 'zzz', 'zzz')`,
  (e) => `to_base64(${e})`,
  (e) => `hex(${e})`,
  (e) => `convert(from_base64(to_base64(${e})) USING utf8mb4)`,
  (e) => `convert(unhex(hex(${e})) USING utf8mb4)`,
  (e) => `substr(${e}, 1)`,
  (e) => `substring(${e}, 1, 200)`,
  (e) => `left(${e}, 200)`,
  (e) => `right(${e}, 200)`,
  (e) => `lpad(${e}, 90, ' ')`,
  (e) => `insert(${e}, 1, 0, '')`,
  (e) => `substring_index(${e}, '#', 3)`,
  (e) => `repeat(${e}, 1)`,
  (e) => `elt(1, ${e})`,
  (e) => `quote(${e})`,
  (e) => `CAST(${e} AS CHAR(200))`,
  (e) => `convert(CAST(${e} AS BINARY) USING utf8mb4)`,
  (e) => `convert(${e} USING utf8mb4)`,
  (e) => `convert(aes_decrypt(aes_encrypt(${e}, 'k'), 'k') USING utf8mb4)`,
  (e) => `json_unquote(json_extract(json_object('v', ${e}), '$.v'))`,
  (e) => `json_array(${e})`,
  (e) => `json_quote(${e})`,
  (e) => `(SELECT ${qualify(e, 'i')} FROM maskgw_prop_people i ORDER BY i.id LIMIT 1)`,
  (e) => `(SELECT group_concat(${qualify(e, 'i')}) FROM maskgw_prop_people i)`,
];

const expression = fc
  .tuple(fc.constantFrom(...COLUMNS), fc.array(fc.integer({ min: 0, max: wrappers.length - 1 }), { maxLength: 4 }))
  .map(([c, ws]) => ws.reduce<string>((e, w) => wrappers[w]!(e), c));

/** What a query reads from: the table, a view, a view over a view, a derived table, a CTE. */
const RELATIONS = ['maskgw_prop_people', 'maskgw_prop_v', 'maskgw_prop_v2', '(SELECT * FROM maskgw_prop_people) AS d', 'w'] as const;
const withClause = (rel: string): string => (rel === 'w' ? 'WITH w AS (SELECT * FROM maskgw_prop_people) ' : '');

const shapes: ((e: string, rel: string) => string)[] = [
  (e, rel) => `${withClause(rel)}SELECT ${e} AS a FROM ${rel}`,
  (e, rel) => `${withClause(rel)}SELECT id, ${e}, city FROM ${rel}`,
  (e, rel) => `${withClause(rel)}SELECT a FROM (SELECT ${e} AS a FROM ${rel}) s`,
  (e, rel) => `${withClause(rel)}SELECT * FROM (SELECT city, ${e} AS a FROM ${rel}) s`,
  (e, rel) => `${withClause(rel)}SELECT s.* FROM (SELECT ${e} AS a, id FROM ${rel}) AS s ORDER BY s.id`,
  (e, rel) => (rel === 'w' ? `WITH w AS (SELECT * FROM maskgw_prop_people), x AS (SELECT ${e} AS a FROM w) SELECT upper(a) FROM x` : `WITH x AS (SELECT ${e} AS a FROM ${rel}) SELECT upper(a) FROM x`),
  (e, rel) => `${withClause(rel)}SELECT ${e} FROM ${rel} UNION ALL SELECT city FROM maskgw_prop_people`,
  (e, rel) => `${withClause(rel)}SELECT city FROM maskgw_prop_people UNION SELECT ${e} FROM ${rel}`,
  (e, rel) => `${withClause(rel)}SELECT u.a FROM (SELECT ${e} AS a FROM ${rel} UNION ALL SELECT city FROM maskgw_prop_people) AS u`,
  (e, rel) => `${withClause(rel)}SELECT (SELECT ${e} FROM ${rel} LIMIT 1) AS scalar`,
  (e, rel) => `${withClause(rel)}SELECT group_concat(${e} SEPARATOR '|') AS g FROM ${rel}`,
  (e, rel) => `${withClause(rel)}SELECT json_arrayagg(${e}) AS j FROM ${rel}`,
  (e, rel) => `${withClause(rel)}SELECT first_value(${e}) OVER (ORDER BY id) AS f, id FROM ${rel}`,
  (e, rel) => `${withClause(rel)}SELECT max(${e}) AS m FROM ${rel} GROUP BY city`,
  (e) => `SELECT ${qualify(e, 'p')} AS a, q.city FROM maskgw_prop_people p JOIN maskgw_prop_v q ON q.id = p.id`,
  (e) => `SELECT x.id, ${qualify(e, 'x')} AS a FROM maskgw_prop_v2 AS x`,
  (e) => `SELECT * FROM maskgw_prop_people p JOIN (SELECT id AS k, ${e} AS a FROM maskgw_prop_people) AS s ON s.k = p.id`,
  (e, rel) => `${withClause(rel)}SELECT CASE WHEN ${e} IS NULL THEN 'none' ELSE ${e} END AS c FROM ${rel}`,
];

/** A generated statement over sensitive columns. */
const sensitiveQuery = fc
  .tuple(expression, fc.integer({ min: 0, max: shapes.length - 1 }), fc.constantFrom(...RELATIONS))
  .map(([e, s, rel]) => shapes[s]!(e, rel));

/** A statement over a plain column, and what it returns. */
const plainQuery = fc.constantFrom(
  { sql: 'SELECT lower(city) AS p FROM maskgw_prop_people WHERE id = 1', rows: [{ p: CITY_OF.get(1) }] },
  { sql: 'SELECT concat(city, id) AS p FROM maskgw_prop_v WHERE id = 2', rows: [{ p: 'Lyon2' }] },
  { sql: 'SELECT reverse(city) AS p FROM maskgw_prop_v2 WHERE id = 1', rows: [{ p: 'siraP' }] },
  { sql: 'SELECT upper(c) AS p FROM (SELECT city AS c FROM maskgw_prop_people WHERE id = 2) AS t', rows: [{ p: 'LYON' }] },
);

describe('masking cannot be talked around', () => {
  live('no generated query returns a seeded value, in the text or the binary protocol', async () => {
    const c = await connect();
    try {
      await fc.assert(
        fc.asyncProperty(sensitiveQuery, async (sql) => {
          const [text] = await c.query(sql);
          const [binary] = await c.execute(sql);
          expect({ sql, rows: (text as unknown[]).length > 0 }).toEqual({ sql, rows: true });
          expect({ sql, leaks: leaks(text) }).toEqual({ sql, leaks: [] });
          expect({ sql, leaks: leaks(binary) }).toEqual({ sql, leaks: [] });
          expect({ sql, binary }).toEqual({ sql, binary: text });
        }),
        { numRuns: Number(process.env.MASKGW_RUNS ?? 100) },
      );
    } finally {
      await c.end();
    }
  }, 60_000);

  live('in a multi-statement request each statement is masked by its own lineage: nothing leaks and plain results stay clear', async () => {
    const c = await connect({ multipleStatements: true });
    try {
      await fc.assert(
        fc.asyncProperty(fc.array(fc.oneof(sensitiveQuery.map((sql) => ({ sql, rows: undefined })), plainQuery), { minLength: 2, maxLength: 4 }), async (statements) => {
          const request = statements.map((s) => s.sql).join('; ');
          const [results] = await c.query(request);
          const sets = results as unknown[][];
          expect({ request, results: sets.length }).toEqual({ request, results: statements.length });
          expect({ request, leaks: leaks(sets) }).toEqual({ request, leaks: [] });
          statements.forEach((s, i) => {
            if (s.rows !== undefined) expect({ request, i, rows: sets[i] }).toEqual({ request, i, rows: s.rows });
          });
        }),
        { numRuns: Math.ceil(Number(process.env.MASKGW_RUNS ?? 100) * 0.4) },
      );
    } finally {
      await c.end();
    }
  }, 60_000);
});
