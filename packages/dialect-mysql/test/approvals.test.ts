/**
 * Inline approvals through the MySQL dialect against the real MariaDB, with mysql2: a statement
 * under a `review` rule is held while the client waits (MySQL has no message to tell it why),
 * and runs, fails or is withdrawn as the approver, the clock or the client decides.
 */
import type { AuditRecord } from '@sluice/core';
import { requireService, startTestGateway, type TestGateway } from '@sluice/testkit';
import type mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { mysqlDialect } from '../src/index.js';
import { encodeComProcessKill } from '../src/protocol/messages.js';
import { connectMysql } from './mysql-driver.js';
import { closedSocket, directConnection, eventually, identityOf as identity, liveTest, mysqlCli, pendingRequest as pending, rawClient, statementRecords, UPSTREAM } from './support.js';

const DAVE = { subject: 'dave@example.com', kind: 'human', groups: ['dba'], token: 'dave-approvals-my-token' } as const;
const ERIN = { subject: 'erin@example.com', kind: 'human', groups: ['dba', 'approvers'], token: 'erin-approvals-my-token' } as const;
const CAROL = { subject: 'carol@example.com', kind: 'human', groups: ['approvers'], token: 'carol-approvals-my-token' } as const;
const ALICE = { subject: 'alice@example.com', kind: 'human', groups: ['analysts'], token: 'alice-approvals-my-token' } as const;

const POLICY = {
  rules: [
    { name: 'analysts-read', identities: { groups: ['analysts'] }, operations: ['read', 'transaction', 'session-setting'], effect: 'allow' },
    { name: 'dba-data', identities: { groups: ['dba'] }, operations: ['read', 'write', 'transaction', 'session-setting'], effect: 'allow' },
    { name: 'dba-ddl-reviewed', identities: { groups: ['dba'] }, operations: ['ddl'], effect: 'review' },
    { name: 'payroll-writes-reviewed', identities: { groups: ['dba'] }, operations: ['write'], objects: ['approvals_my_payroll'], effect: 'review' },
  ],
};

let gw: TestGateway;
let available = false;
let direct: mysql.Connection;

beforeAll(async () => {
  available = await requireService('MariaDB', '127.0.0.1', 3306);
  if (!available) return;
  gw = await startTestGateway({
    dialect: mysqlDialect,
    targets: { app: { upstream: UPSTREAM } },
    tokens: [DAVE, ERIN, CAROL, ALICE],
    policy: POLICY,
    approvals: { approvers: { groups: ['approvers'] }, timeoutMs: 10_000 },
  });
  direct = await directConnection();
  await direct.query('DROP TABLE IF EXISTS approvals_my_t, approvals_my_payroll');
  await direct.query('CREATE TABLE approvals_my_t (id INT PRIMARY KEY)');
  await direct.query('CREATE TABLE approvals_my_payroll (id INT PRIMARY KEY, amount INT)');
  await direct.query('INSERT INTO approvals_my_payroll VALUES (1, 10), (2, 20), (3, 30)');
});

afterAll(async () => {
  if (direct) {
    await direct.query('DROP TABLE IF EXISTS approvals_my_t, approvals_my_payroll');
    await direct.end();
  }
  await gw?.close();
});

const live = liveTest(() => available);

const as = (who: { subject: string; token: string }, extra: mysql.ConnectionOptions = {}) => connectMysql(gw, 'app', who.subject, who.token, extra);

const pendingRequest = (statement: RegExp, timeoutMs?: number) => pending(gw.approvals!, statement, timeoutMs);
const columnExists = async (column: string) => {
  const [rows] = await direct.query<mysql.RowDataPacket[]>(
    "SELECT COUNT(*) AS n FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'test' AND TABLE_NAME = 'approvals_my_t' AND COLUMN_NAME = ?",
    [column],
  );
  return rows[0]!.n === 1;
};
const amount = async (id: number) => {
  const [rows] = await direct.query<mysql.RowDataPacket[]>('SELECT amount FROM approvals_my_payroll WHERE id = ?', [id]);
  return rows[0]!.amount as number;
};

const approvalEvents = (records: AuditRecord[], requestId: string) =>
  records.filter((r) => r.type === 'approval' && r.requestId === requestId).map((r) => (r.type === 'approval' ? r.action : ''));

/** Tracks whether a promise has settled, without letting a rejection go unhandled. */
function watch<T>(p: Promise<T>): { readonly settled: () => boolean; readonly result: Promise<T> } {
  let done = false;
  const result = p.finally(() => {
    done = true;
  });
  result.catch(() => undefined);
  return { settled: () => done, result };
}

describe('inline approvals (MySQL)', () => {
  live('a statement waits while the client waits; approved, it runs exactly as approved and returns its result', async () => {
    const c = await as(DAVE);
    try {
      const held = watch(c.query('ALTER TABLE approvals_my_t ADD COLUMN approved_col INT'));
      const req = await pendingRequest(/approved_col/);
      expect(req).toMatchObject({
        statement: 'ALTER TABLE approvals_my_t ADD COLUMN approved_col INT',
        requester: { subject: DAVE.subject },
        rule: 'dba-ddl-reviewed',
        target: 'app',
      });
      // Held: the client has no answer and nothing reached the server.
      expect(held.settled()).toBe(false);
      expect(await columnExists('approved_col')).toBe(false);

      await gw.approvals!.approve(req.id, identity(CAROL), { reason: 'planned change' });
      const [result] = await held.result;
      expect(result).toMatchObject({ affectedRows: 0 });
      expect(await columnExists('approved_col')).toBe(true);
      // The session goes on as usual.
      expect((await c.query('SELECT 1 AS one'))[0]).toEqual([{ one: 1 }]);

      const records = await gw.auditRecords();
      expect(approvalEvents(records, req.id)).toEqual(['requested', 'approved', 'executed']);
      const ran = statementRecords(records, (r) => r.approval === req.id);
      expect(ran.map((r) => [r.phase, r.decision, r.rule, r.outcome ?? null])).toEqual([
        ['intent', 'review', 'dba-ddl-reviewed', null],
        ['complete', 'review', 'dba-ddl-reviewed', 'ok'],
      ]);
      // What ran is what was approved.
      for (const r of ran) expect(r.digest).toBe(req.digest);
      const approved = records.find((r) => r.type === 'approval' && r.requestId === req.id && r.action === 'approved');
      expect(approved?.type === 'approval' && approved.approver?.subject).toBe(CAROL.subject);
    } finally {
      await c.end();
    }
  });

  live('a held write returns its row count once approved; the parameters of a prepared statement are part of what is approved', async () => {
    const c = await as(DAVE);
    try {
      const held = watch(c.execute('UPDATE approvals_my_payroll SET amount = ? WHERE id = ?', [99, 1]));
      const req = await pendingRequest(/approvals_my_payroll/);
      expect(req.statement).toBe('UPDATE approvals_my_payroll SET amount = ? WHERE id = ?');
      expect(req.parameters).toEqual(['99', '1']);
      expect(req.rule).toBe('payroll-writes-reviewed');
      expect(await amount(1)).toBe(10);
      await gw.approvals!.approve(req.id, identity(CAROL));
      const [result] = (await held.result) as [mysql.ResultSetHeader, unknown];
      expect(result.affectedRows).toBe(1);
      expect(await amount(1)).toBe(99);

      // The same statement with other values is another request, with another digest.
      const again = watch(c.execute('UPDATE approvals_my_payroll SET amount = ? WHERE id = ?', [0, 2]));
      const next = await pendingRequest(/approvals_my_payroll/);
      expect(next.id).not.toBe(req.id);
      expect(next.parameters).toEqual(['0', '2']);
      expect(next.digest).not.toBe(req.digest);
      await gw.approvals!.reject(next.id, identity(CAROL));
      await expect(again.result).rejects.toMatchObject({ errno: 1142 });
      expect(await amount(2)).toBe(20);
    } finally {
      await c.end();
    }
  });

  live('a rejected statement does not run; the client gets 1142 saying who rejected it and why', async () => {
    const c = await as(DAVE);
    try {
      const held = watch(c.query('ALTER TABLE approvals_my_t ADD COLUMN rejected_col INT'));
      const req = await pendingRequest(/rejected_col/);
      await gw.approvals!.reject(req.id, identity(CAROL), { reason: 'not during business hours' });
      await expect(held.result).rejects.toMatchObject({
        errno: 1142,
        sqlState: '42000',
        message: expect.stringContaining(`the statement was rejected by carol@example.com: not during business hours (review request ${req.id}); it was not run`),
      });
      expect(await columnExists('rejected_col')).toBe(false);
      expect((await c.query('SELECT 2 AS two'))[0]).toEqual([{ two: 2 }]);
      const records = await gw.auditRecords();
      expect(approvalEvents(records, req.id)).toEqual(['requested', 'rejected']);
      expect(statementRecords(records, (r) => r.approval === req.id).map((r) => [r.phase, r.outcome])).toEqual([['complete', 'not-executed']]);
    } finally {
      await c.end();
    }
  });

  live('nobody approves their own request, and only approvers decide', async () => {
    const c = await as(ERIN);
    try {
      const held = watch(c.query('ALTER TABLE approvals_my_t ADD COLUMN self_col INT'));
      const req = await pendingRequest(/self_col/);
      await expect(gw.approvals!.approve(req.id, identity(ERIN))).rejects.toMatchObject({ code: 'self-approval' });
      await expect(gw.approvals!.approve(req.id, identity(DAVE))).rejects.toMatchObject({ code: 'not-an-approver' });
      expect(gw.approvals!.get(req.id)?.status).toBe('pending');
      expect(held.settled()).toBe(false);
      await gw.approvals!.approve(req.id, identity(CAROL));
      await held.result;
      expect(await columnExists('self_col')).toBe(true);
    } finally {
      await c.end();
    }
  });

  live('an approval is single-use and bound to its statement', async () => {
    const c = await as(DAVE);
    let onceId = '';
    try {
      const first = watch(c.query('ALTER TABLE approvals_my_t ADD COLUMN once_col INT'));
      const req = await pendingRequest(/once_col/);
      onceId = req.id;
      await gw.approvals!.approve(req.id, identity(CAROL));
      await first.result;
      await expect(gw.approvals!.approve(req.id, identity(CAROL))).rejects.toMatchObject({ code: 'not-pending' });
      expect(await gw.approvals!.consume(req.id, req.digest)).toBe(false);
      // The same statement again waits for a request of its own.
      const second = watch(c.query('ALTER TABLE approvals_my_t ADD COLUMN twice_col INT'));
      const other = await pendingRequest(/twice_col/);
      expect(other.id).not.toBe(req.id);
      expect(await gw.approvals!.consume(req.id, other.digest)).toBe(false);
      expect(second.settled()).toBe(false);
      expect(await columnExists('twice_col')).toBe(false);
      await gw.approvals!.reject(other.id, identity(CAROL), { reason: 'one is enough' });
      await expect(second.result).rejects.toMatchObject({ errno: 1142 });
    } finally {
      await c.end();
    }
    expect(approvalEvents(await gw.auditRecords(), onceId)).toEqual([
      'requested',
      'approved',
      'executed',
      'refused-reuse',
      'refused-reuse',
    ]);
  });

  live('a request nobody decides expires: the client gets 1142 saying so, and the statement does not run', async () => {
    const short = await startTestGateway({
      dialect: mysqlDialect,
      targets: { app: { upstream: UPSTREAM } },
      tokens: [DAVE, CAROL],
      policy: POLICY,
      approvals: { approvers: { groups: ['approvers'] }, timeoutMs: 700 },
    });
    try {
      const c = await connectMysql(short, 'app', DAVE.subject, DAVE.token);
      try {
        const started = Date.now();
        await expect(c.query('ALTER TABLE approvals_my_t ADD COLUMN expired_col INT')).rejects.toMatchObject({
          errno: 1142,
          sqlState: '42000',
          message: expect.stringMatching(/^no approver decided within 1 s \(review request [^)]+\); the statement was not run/),
        });
        expect(Date.now() - started).toBeGreaterThanOrEqual(600);
        expect(await columnExists('expired_col')).toBe(false);
        expect(short.approvals!.list()[0]?.status).toBe('expired');
        expect((await c.query('SELECT 3 AS three'))[0]).toEqual([{ three: 3 }]);
      } finally {
        await c.end();
      }
    } finally {
      await short.close();
    }
  });

  live('an approver can grant a time-boxed policy: covered statements then run without review, never past a guardrail', async () => {
    const c = await as(DAVE);
    try {
      const held = watch(c.query('ALTER TABLE approvals_my_t ADD COLUMN granted_a INT'));
      const req = await pendingRequest(/granted_a/);
      await gw.approvals!.approve(req.id, identity(CAROL), { reason: 'migration window', grantForMs: 60_000 });
      await held.result;
      const grant = gw.approvals!.activeGrants(DAVE.subject, 'app')[0];
      expect(grant).toMatchObject({ subject: DAVE.subject, operations: expect.arrayContaining(['ddl']) });
      await c.query('ALTER TABLE approvals_my_t ADD COLUMN granted_b INT');
      expect(await columnExists('granted_b')).toBe(true);
      expect(gw.approvals!.list({ status: 'pending' })).toHaveLength(0);
      await expect(c.query('DROP TABLE approvals_my_t')).rejects.toMatchObject({ errno: 1142, message: expect.stringContaining('guardrail "drop-table"') });
      await gw.approvals!.revokeGrant(grant!.id, identity(CAROL));
      const again = watch(c.query('ALTER TABLE approvals_my_t ADD COLUMN granted_c INT'));
      const next = await pendingRequest(/granted_c/);
      await gw.approvals!.reject(next.id, identity(CAROL));
      await expect(again.result).rejects.toMatchObject({ errno: 1142 });
      const records = await gw.auditRecords();
      const viaGrant = statementRecords(records, (r) => r.phase === 'intent' && r.text.includes('granted_b')).at(-1);
      expect(viaGrant && [viaGrant.decision, viaGrant.rule, viaGrant.approval]).toEqual(['allow', `grant:${grant!.id}`, `grant:${grant!.id}`]);
    } finally {
      await c.end();
    }
  });

  live('a client that disconnects while waiting abandons its request; approving it later runs nothing', async () => {
    const c = await as(DAVE);
    const closed = closedSocket(c);
    void c.query('ALTER TABLE approvals_my_t ADD COLUMN gone_col INT').catch(() => undefined);
    const req = await pendingRequest(/gone_col/);
    c.destroy();
    await closed;
    await eventually('the request to be abandoned', () => (gw.approvals!.get(req.id)?.status === 'abandoned' ? true : undefined));
    await expect(gw.approvals!.approve(req.id, identity(CAROL))).rejects.toMatchObject({ code: 'not-pending' });
    expect(await columnExists('gone_col')).toBe(false);
  });

  live('KILL QUERY from a second connection withdraws a held statement: 1317, the request is abandoned, the session goes on', async () => {
    const c = await as(DAVE);
    const killer = await as(DAVE);
    try {
      const held = watch(c.query('ALTER TABLE approvals_my_t ADD COLUMN withdrawn_col INT'));
      const req = await pendingRequest(/withdrawn_col/);
      await killer.query(`KILL QUERY ${c.threadId}`);
      await expect(held.result).rejects.toMatchObject({ errno: 1317, sqlState: '70100', message: expect.stringContaining(`review request ${req.id} withdrawn`) });
      await eventually('the request to be abandoned', () => (gw.approvals!.get(req.id)?.status === 'abandoned' ? true : undefined));
      await expect(gw.approvals!.approve(req.id, identity(CAROL))).rejects.toMatchObject({ code: 'not-pending' });
      expect(await columnExists('withdrawn_col')).toBe(false);
      expect((await c.query('SELECT 4 AS four'))[0]).toEqual([{ four: 4 }]);
      const records = await gw.auditRecords();
      expect(approvalEvents(records, req.id)).toEqual(['requested', 'abandoned']);
      expect(statementRecords(records, (r) => r.approval === req.id).map((r) => [r.phase, r.outcome])).toEqual([['complete', 'not-executed']]);
    } finally {
      await c.end();
      await killer.end();
    }
  });

  live('killing the waiting connection (COM_PROCESS_KILL from another connection of the identity) abandons its request', async () => {
    const c = await as(DAVE);
    const closed = closedSocket(c);
    const killer = await rawClient(gw, 'app', DAVE.subject, DAVE.token);
    try {
      const held = watch(c.query('ALTER TABLE approvals_my_t ADD COLUMN killed_col INT'));
      const req = await pendingRequest(/killed_col/);
      expect((await killer.command(encodeComProcessKill(c.threadId))).payload[0]).toBe(0x00);
      await expect(held.result).rejects.toMatchObject({ errno: 1317, sqlState: '70100' });
      await closed;
      await eventually('the request to be abandoned', () => (gw.approvals!.get(req.id)?.status === 'abandoned' ? true : undefined));
      await expect(gw.approvals!.approve(req.id, identity(CAROL))).rejects.toMatchObject({ code: 'not-pending' });
      expect(await columnExists('killed_col')).toBe(false);
    } finally {
      c.destroy();
      killer.close();
    }
  });

  live('the mysql client waits on a held statement and prints the result once approved', async () => {
    const child = mysqlCli(['-h', '127.0.0.1', '-P', String(gw.port), '-u', DAVE.subject, `-p${DAVE.token}`, 'app', '-e', 'ALTER TABLE approvals_my_t ADD COLUMN cli_col INT; SELECT 42 AS answer']);
    const req = await pendingRequest(/cli_col/, 10_000);
    expect(await columnExists('cli_col')).toBe(false);
    await gw.approvals!.approve(req.id, identity(CAROL));
    const { code, stdout, stderr } = await child;
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout).toBe('answer\n42\n');
    expect(await columnExists('cli_col')).toBe(true);
  });

  live('without a rule, a statement is denied with 1142 naming why; nothing is held', async () => {
    const c = await as(ALICE);
    try {
      await expect(c.query('INSERT INTO approvals_my_t VALUES (1)')).rejects.toMatchObject({
        errno: 1142,
        message: expect.stringMatching(/no policy rule allows write.*alice@example\.com.*denies by default/),
      });
      await expect(c.execute('INSERT INTO approvals_my_t VALUES (?)', [2])).rejects.toMatchObject({ errno: 1142 });
      expect((await c.query('SELECT COUNT(*) AS n FROM approvals_my_t'))[0]).toEqual([{ n: 0 }]);
      expect(gw.approvals!.list({ status: 'pending' })).toHaveLength(0);
    } finally {
      await c.end();
    }
  });
});
