/**
 * Ways a masked value could leave other than a table's rows: the server's own state (SHOW),
 * errors of statements reading through views and stored functions, procedures answering with
 * several result sets in a batch, OUT parameters, and relations made directly on the server
 * after the gateway read its catalog. Each must be masked (or refused) like the table itself.
 */
import { requireService, startTestGateway, type TestGateway } from '@sluice/testkit';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mysqlDialect } from '../src/index.js';
import { connectMysql } from './mysql-driver.js';
import { leaksOf } from './masking-support.js';

const ANALYST = { subject: 'leaks-analyst@example.com', token: 'leaks-analyst-token' };
const NAME = 'Quorra Vantablack';
const EMAIL = 'quorra.vantablack@leaks-realm.example';
const SECRETS = [NAME, EMAIL];

describe('masking: other ways out', () => {
  let available = false;
  let gw: TestGateway | undefined;
  let direct: mysql.Connection | undefined;

  beforeAll(async () => {
    available = await requireService('MariaDB', '127.0.0.1', 3306);
    if (!available) return;
    direct = await mysql.createConnection({ host: '127.0.0.1', port: 3306, user: 'root', database: 'test', multipleStatements: true });
    await direct.query(
      'DROP VIEW IF EXISTS leaks_my_v, leaks_my_late; DROP TABLE IF EXISTS leaks_my_people, leaks_my_plain; DROP FUNCTION IF EXISTS leaks_my_f; DROP PROCEDURE IF EXISTS leaks_my_two; DROP PROCEDURE IF EXISTS leaks_my_out',
    );
    await direct.query('CREATE TABLE leaks_my_people (id INT PRIMARY KEY, full_name VARCHAR(100), email VARCHAR(100), city VARCHAR(40))');
    await direct.query('INSERT INTO leaks_my_people VALUES (1, ?, ?, ?)', [NAME, EMAIL, 'Lisbon']);
    await direct.query('CREATE TABLE leaks_my_plain (id INT PRIMARY KEY, flag INT)');
    await direct.query('CREATE VIEW leaks_my_v AS SELECT id, full_name AS who FROM leaks_my_people');
    await direct.query('CREATE FUNCTION leaks_my_f(i INT) RETURNS VARCHAR(100) READS SQL DATA RETURN (SELECT full_name FROM leaks_my_people WHERE id = i)');
    await direct.query('CREATE PROCEDURE leaks_my_two() BEGIN SELECT city FROM leaks_my_people; SELECT lower(email) AS e, lower(full_name) AS n FROM leaks_my_people; END');
    await direct.query('CREATE PROCEDURE leaks_my_out(OUT v VARCHAR(100)) BEGIN SELECT full_name INTO v FROM leaks_my_people LIMIT 1; END');
    gw = await startTestGateway({
      dialect: mysqlDialect,
      targets: { leaks: { upstream: 'mysql://root@127.0.0.1:3306/test' } },
      tokens: [{ subject: ANALYST.subject, kind: 'human', token: ANALYST.token }],
      masking: {
        hashKey: 'leaks-test-hash-key-0123456789',
        columns: [
          { column: 'leaks_my_people.full_name', strategy: 'hash' },
          { column: 'leaks_my_people.email', strategy: 'partial' },
        ],
      },
    });
  });

  afterAll(async () => {
    await gw?.close();
    await direct?.query(
      'DROP VIEW IF EXISTS leaks_my_v, leaks_my_late; DROP TABLE IF EXISTS leaks_my_people, leaks_my_plain; DROP FUNCTION IF EXISTS leaks_my_f; DROP PROCEDURE IF EXISTS leaks_my_two; DROP PROCEDURE IF EXISTS leaks_my_out',
    );
    await direct?.end();
  });

  const live = (name: string, fn: () => Promise<void>) =>
    it(name, async () => {
      if (!available) return;
      await fn();
    }, 30_000);

  live('SHOW WARNINGS quoting a value is scanned', async () => {
    const c = await connectMysql(gw!, 'leaks', ANALYST.subject, ANALYST.token);
    try {
      await c.query('SELECT email + 0 AS n FROM leaks_my_people');
      const [warnings] = await c.query('SHOW WARNINGS');
      expect(JSON.stringify(warnings)).toContain('Truncated incorrect');
      expect(leaksOf(SECRETS, warnings)).toEqual([]);
    } finally {
      await c.end();
    }
  });

  live('errors of statements reading through a view or a stored function do not quote the value', async () => {
    const c = await connectMysql(gw!, 'leaks', ANALYST.subject, ANALYST.token);
    try {
      for (const sql of ['INSERT INTO leaks_my_plain (id, flag) SELECT 91, who FROM leaks_my_v WHERE id = 1', 'INSERT INTO leaks_my_plain (id, flag) SELECT 92, leaks_my_f(1)']) {
        const err = await c.query(sql).then(
          () => undefined,
          (e: unknown) => e as { errno: number; message: string },
        );
        expect(err, sql).toBeDefined();
        expect(err!.errno, sql).toBe(1366);
        expect(err!.message, sql).toContain('[redacted]');
        expect(leaksOf(SECRETS, err!.message), sql).toEqual([]);
      }
    } finally {
      await c.end();
    }
  });

  live('a procedure with several result sets in a batch keeps each statement to its own lineage', async () => {
    const c = await connectMysql(gw!, 'leaks', ANALYST.subject, ANALYST.token, { multipleStatements: true });
    try {
      const [results] = await c.query('CALL leaks_my_two(); SELECT lower(city) AS c FROM leaks_my_people');
      expect(leaksOf(SECRETS, results)).toEqual([]);
      const sets = results as unknown[];
      expect(JSON.stringify(sets)).toContain('lisbon');
    } finally {
      await c.end();
    }
  });

  live('an OUT parameter into a user variable is refused', async () => {
    const c = await connectMysql(gw!, 'leaks', ANALYST.subject, ANALYST.token);
    try {
      await expect(c.query('CALL leaks_my_out(@v)')).rejects.toMatchObject({ errno: 1142 });
      expect((await c.query('SELECT @v AS v'))[0]).toEqual([{ v: null }]);
    } finally {
      await c.end();
    }
  });

  live('a view made directly on the server after the catalog was read is masked at once', async () => {
    const c = await connectMysql(gw!, 'leaks', ANALYST.subject, ANALYST.token);
    try {
      // The catalog is read by the first statement that may be masked.
      await c.query('SELECT id FROM leaks_my_people');
      await direct!.query('CREATE VIEW leaks_my_late AS SELECT id, full_name AS a, upper(full_name) AS b FROM leaks_my_people');
      const [rows] = await c.query('SELECT a, b FROM leaks_my_late');
      expect(leaksOf(SECRETS, rows)).toEqual([]);
      expect((rows as { b: string }[])[0]!.b).toBe('[redacted]');
    } finally {
      await c.end();
    }
  });
});
