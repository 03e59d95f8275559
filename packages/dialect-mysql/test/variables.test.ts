/**
 * User variables outlive a statement: `SELECT @v` names no table, so a value stored in one
 * could leave unmasked. While masking applies, storing values of a table with masked columns
 * in a variable is refused; other variables work as usual.
 */
import { requireService, startTestGateway, type TestGateway } from '@sluice/testkit';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mysqlDialect } from '../src/index.js';
import { connectMysql } from './mysql-driver.js';

const ANALYST = { subject: 'vars-analyst@example.com', token: 'vars-analyst-token' };
const AUDITOR = { subject: 'vars-auditor@example.com', token: 'vars-auditor-token' };

describe('user variables and masking', () => {
  let available = false;
  let gw: TestGateway | undefined;
  let direct: mysql.Connection | undefined;

  beforeAll(async () => {
    available = await requireService('MariaDB', '127.0.0.1', 3306);
    if (!available) return;
    direct = await mysql.createConnection({ host: '127.0.0.1', port: 3306, user: 'root', database: 'test' });
    await direct.query('DROP TABLE IF EXISTS vars_my_people, vars_my_plain');
    await direct.query('CREATE TABLE vars_my_people (id INT PRIMARY KEY, email VARCHAR(100))');
    await direct.query("INSERT INTO vars_my_people VALUES (1, 'ada@example.com')");
    await direct.query('CREATE TABLE vars_my_plain (id INT PRIMARY KEY, label VARCHAR(20))');
    await direct.query("INSERT INTO vars_my_plain VALUES (1, 'one')");
    gw = await startTestGateway({
      dialect: mysqlDialect,
      targets: { vars: { upstream: 'mysql://root@127.0.0.1:3306/test' } },
      tokens: [
        { subject: ANALYST.subject, kind: 'human', groups: ['analysts'], token: ANALYST.token },
        { subject: AUDITOR.subject, kind: 'human', groups: ['audit'], token: AUDITOR.token },
      ],
      masking: { hashKey: 'variables-test-hash-key-0123456789', columns: [{ column: 'vars_my_people.email', strategy: 'partial' }], exempt: { groups: ['audit'] } },
    });
  });

  afterAll(async () => {
    await gw?.close();
    await direct?.query('DROP TABLE IF EXISTS vars_my_people, vars_my_plain');
    await direct?.end();
  });

  const live = (name: string, fn: () => Promise<void>) =>
    it(name, async () => {
      if (!available) return;
      await fn();
    }, 30_000);

  live('storing a masked table in a variable is refused, in every form, and audited', async () => {
    const c = await connectMysql(gw!, 'vars', ANALYST.subject, ANALYST.token);
    try {
      for (const sql of [
        'SELECT @v := email FROM vars_my_people',
        'SELECT email INTO @v FROM vars_my_people LIMIT 1',
        'SET @v = (SELECT email FROM vars_my_people LIMIT 1)',
      ]) {
        await expect(c.query(sql), sql).rejects.toMatchObject({ errno: 1142, sqlState: '42000' });
      }
      await expect(c.execute('SELECT email INTO @v FROM vars_my_people WHERE id = ?', [1])).rejects.toMatchObject({ errno: 1142 });
      const [rows] = await c.query('SELECT @v AS v');
      expect(rows).toEqual([{ v: null }]);
      // Variables over tables without masked columns work as usual.
      await c.query('SELECT @w := label FROM vars_my_plain');
      expect((await c.query('SELECT @w AS w'))[0]).toEqual([{ w: 'one' }]);
    } finally {
      await c.end();
    }
    const refused = (await gw!.auditRecords()).filter((r) => r.type === 'statement' && r.decision === 'deny');
    expect(refused.length).toBeGreaterThanOrEqual(4);
    expect(refused.at(-1)).toMatchObject({ rule: 'masking', outcome: 'not-executed' });
  });

  live('an exempt identity may store them', async () => {
    const c = await connectMysql(gw!, 'vars', AUDITOR.subject, AUDITOR.token);
    try {
      await c.query('SELECT @v := email FROM vars_my_people');
      expect((await c.query('SELECT @v AS v'))[0]).toEqual([{ v: 'ada@example.com' }]);
    } finally {
      await c.end();
    }
  });
});
