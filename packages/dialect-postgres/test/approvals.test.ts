import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { AuditRecord } from '@sluice/core';
import { requireService, startTestGateway, type TestGateway } from '@sluice/testkit';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { postgresDialect } from '../src/index.js';
import { connectPg } from './pg-driver.js';
import { columnNames, identityOf, liveTest, pendingRequest as pending } from './support.js';
import net from 'node:net';
import { encodeCancelRequest } from '../src/messages/startup-message.js';

/**
 * Inline approvals through the gateway, with node-postgres and psql against the real
 * PostgreSQL: a statement held for review waits inside the client's session until an approver
 * decides.
 */
const run = promisify(execFile);
const UPSTREAM = 'postgres://postgres@127.0.0.1:5432/test';

const DAVE = { subject: 'dave@example.com', kind: 'human', groups: ['dba'], token: 'dave-approvals-token' } as const;
const ERIN = { subject: 'erin@example.com', kind: 'human', groups: ['dba', 'approvers'], token: 'erin-approvals-token' } as const;
const CAROL = { subject: 'carol@example.com', kind: 'human', groups: ['approvers'], token: 'carol-approvals-token' } as const;
const ALICE = { subject: 'alice@example.com', kind: 'human', groups: ['analysts'], token: 'alice-approvals-token' } as const;
const identity = identityOf;

const POLICY = {
  rules: [
    { name: 'analysts-read', identities: { groups: ['analysts'] }, operations: ['read', 'transaction', 'session-setting'], effect: 'allow' },
    { name: 'dba-data', identities: { groups: ['dba'] }, operations: ['read', 'write', 'transaction', 'session-setting'], effect: 'allow' },
    { name: 'dba-ddl-reviewed', identities: { groups: ['dba'] }, operations: ['ddl'], effect: 'review' },
    { name: 'payroll-writes-reviewed', identities: { groups: ['dba'] }, operations: ['write'], objects: ['sluice_appr_payroll'], effect: 'review' },
  ],
};

let gw: TestGateway;
let available = false;
let direct: pg.Client;

beforeAll(async () => {
  available = await requireService('PostgreSQL', '127.0.0.1', 5432);
  if (!available) return;
  gw = await startTestGateway({
    dialect: postgresDialect,
    targets: { app: { upstream: UPSTREAM } },
    tokens: [DAVE, ERIN, CAROL, ALICE],
    policy: POLICY,
    approvals: { approvers: { groups: ['approvers'] }, timeoutMs: 10_000 },
  });
  direct = new pg.Client({ connectionString: UPSTREAM });
  await direct.connect();
  await direct.query('DROP TABLE IF EXISTS sluice_appr_t, sluice_appr_payroll');
  await direct.query('CREATE TABLE sluice_appr_t (id int primary key)');
  await direct.query('CREATE TABLE sluice_appr_payroll (id int primary key, amount int)');
  await direct.query('INSERT INTO sluice_appr_payroll VALUES (1, 10), (2, 20)');
});

afterAll(async () => {
  if (direct) {
    await direct.query('DROP TABLE IF EXISTS sluice_appr_t, sluice_appr_payroll');
    await direct.end();
  }
  await gw?.close();
});

const live = liveTest(() => available);

const as = (who: { subject: string; token: string }) => connectPg(gw, 'app', who.subject, who.token);

const pendingRequest = (statement: RegExp, timeoutMs?: number) => pending(gw.approvals!, statement, timeoutMs);
const columnExists = async (table: string, column: string) => (await columnNames(direct, table)).includes(column);

const approvalEvents = (records: AuditRecord[], requestId: string) =>
  records.filter((r) => r.type === 'approval' && r.requestId === requestId).map((r) => (r.type === 'approval' ? r.action : ''));

describe('inline approvals (PostgreSQL)', () => {
  live('a statement waits in the live session until an approver approves it, then runs exactly as approved', async () => {
    const c = await as(DAVE);
    const notices: string[] = [];
    c.on('notice', (n) => notices.push(n.message ?? ''));
    let settled = false;
    const held = c.query('ALTER TABLE sluice_appr_t ADD COLUMN approved_col int').finally(() => {
      settled = true;
    });
    const req = await pendingRequest(/approved_col/);
    expect(req.statement).toBe('ALTER TABLE sluice_appr_t ADD COLUMN approved_col int');
    expect(req.requester.subject).toBe(DAVE.subject);
    expect(req.rule).toBe('dba-ddl-reviewed');
    // The client is still waiting and nothing has run.
    await new Promise((r) => setTimeout(r, 200));
    expect(settled).toBe(false);
    expect(await columnExists('sluice_appr_t', 'approved_col')).toBe(false);
    expect(notices.some((n) => n.includes(req.id))).toBe(true);

    await gw.approvals!.approve(req.id, identity(CAROL), { reason: 'planned change' });
    await held;
    expect(await columnExists('sluice_appr_t', 'approved_col')).toBe(true);
    // The session goes on as usual.
    expect((await c.query('SELECT 1 AS one')).rows[0].one).toBe(1);
    await c.end();

    const records = await gw.auditRecords();
    expect(approvalEvents(records, req.id)).toEqual(['requested', 'approved', 'executed']);
    const ran = records.filter((r) => r.type === 'statement' && r.approval === req.id);
    expect(ran.map((r) => r.type === 'statement' && [r.phase, r.decision, r.outcome ?? null])).toEqual([
      ['intent', 'review', null],
      ['complete', 'review', 'ok'],
    ]);
    // The statement that ran is the one that was approved.
    for (const r of ran) expect(r.type === 'statement' && r.digest).toBe(req.digest);
    const approved = records.find((r) => r.type === 'approval' && r.requestId === req.id && r.action === 'approved');
    expect(approved?.type === 'approval' && approved.approver?.subject).toBe(CAROL.subject);
  });

  live('a rejected statement does not run; the client gets 42501 saying who rejected it and why', async () => {
    const c = await as(DAVE);
    const held = c.query('ALTER TABLE sluice_appr_t ADD COLUMN rejected_col int');
    const req = await pendingRequest(/rejected_col/);
    await gw.approvals!.reject(req.id, identity(CAROL), { reason: 'not during business hours' });
    await expect(held).rejects.toMatchObject({
      code: '42501',
      message: expect.stringMatching(/rejected by carol@example\.com: not during business hours/),
    });
    expect(await columnExists('sluice_appr_t', 'rejected_col')).toBe(false);
    expect((await c.query('SELECT 2 AS two')).rows[0].two).toBe(2);
    await c.end();
    const records = await gw.auditRecords();
    expect(approvalEvents(records, req.id)).toEqual(['requested', 'rejected']);
    const done = records.filter((r) => r.type === 'statement' && r.approval === req.id);
    expect(done.map((r) => r.type === 'statement' && [r.phase, r.outcome])).toEqual([['complete', 'not-executed']]);
  });

  live('nobody approves their own request', async () => {
    const c = await as(ERIN);
    const held = c.query('ALTER TABLE sluice_appr_t ADD COLUMN self_col int');
    const req = await pendingRequest(/self_col/);
    await expect(gw.approvals!.approve(req.id, identity(ERIN))).rejects.toMatchObject({ code: 'self-approval' });
    // An identity outside the approvers may not decide either.
    await expect(gw.approvals!.approve(req.id, identity(DAVE))).rejects.toMatchObject({ code: 'not-an-approver' });
    expect(gw.approvals!.get(req.id)?.status).toBe('pending');
    await gw.approvals!.approve(req.id, identity(CAROL));
    await held;
    await c.end();
  });

  live('an approval is single-use and bound to its statement: it cannot release another one', async () => {
    const c = await as(DAVE);
    const first = c.query('ALTER TABLE sluice_appr_t ADD COLUMN once_col int');
    const req = await pendingRequest(/once_col/);
    await gw.approvals!.approve(req.id, identity(CAROL));
    await first;
    // Approving it again, or using it for a different statement, is refused.
    await expect(gw.approvals!.approve(req.id, identity(CAROL))).rejects.toMatchObject({ code: 'not-pending' });
    expect(await gw.approvals!.consume(req.id, req.digest)).toBe(false);
    // A different statement of the same session gets a request of its own and waits again.
    const second = c.query('ALTER TABLE sluice_appr_t ADD COLUMN twice_col int');
    const other = await pendingRequest(/twice_col/);
    expect(other.id).not.toBe(req.id);
    expect(other.digest).not.toBe(req.digest);
    expect(await gw.approvals!.consume(req.id, other.digest)).toBe(false);
    await new Promise((r) => setTimeout(r, 100));
    expect(await columnExists('sluice_appr_t', 'twice_col')).toBe(false);
    await gw.approvals!.reject(other.id, identity(CAROL), { reason: 'one is enough' });
    await expect(second).rejects.toMatchObject({ code: '42501' });
    await c.end();
    const records = await gw.auditRecords();
    expect(approvalEvents(records, req.id)).toEqual(['requested', 'approved', 'executed', 'refused-reuse', 'refused-reuse']);
  });

  live('a request nobody decides expires; the client is told and the statement does not run', async () => {
    const short = await startTestGateway({
      dialect: postgresDialect,
      targets: { app: { upstream: UPSTREAM } },
      tokens: [DAVE, CAROL],
      policy: POLICY,
      approvals: { approvers: { groups: ['approvers'] }, timeoutMs: 700 },
    });
    try {
      const c = await connectPg(short, 'app', DAVE.subject, DAVE.token);
      await expect(c.query('ALTER TABLE sluice_appr_t ADD COLUMN expired_col int')).rejects.toMatchObject({
        code: '42501',
        message: expect.stringMatching(/no approver decided within 1 s/),
      });
      expect(await columnExists('sluice_appr_t', 'expired_col')).toBe(false);
      const [req] = short.approvals!.list();
      expect(req?.status).toBe('expired');
      expect((await c.query('SELECT 3 AS three')).rows[0].three).toBe(3);
      await c.end();
    } finally {
      await short.close();
    }
  });

  live('parameters are part of what is approved (extended protocol)', async () => {
    const c = await as(DAVE);
    const held = c.query('UPDATE sluice_appr_payroll SET amount = $1 WHERE id = $2', [99, 1]);
    const req = await pendingRequest(/sluice_appr_payroll/);
    expect(req.statement).toBe('UPDATE sluice_appr_payroll SET amount = $1 WHERE id = $2');
    expect(req.parameters).toEqual(['99', '1']);
    await gw.approvals!.approve(req.id, identity(CAROL));
    expect((await held).rowCount).toBe(1);
    expect((await direct.query('SELECT amount FROM sluice_appr_payroll WHERE id = 1')).rows[0].amount).toBe(99);
    // The same statement with other values is another request.
    const again = c.query('UPDATE sluice_appr_payroll SET amount = $1 WHERE id = $2', [0, 2]);
    const next = await pendingRequest(/sluice_appr_payroll/);
    expect(next.parameters).toEqual(['0', '2']);
    expect(next.digest).not.toBe(req.digest);
    await gw.approvals!.reject(next.id, identity(CAROL));
    await expect(again).rejects.toMatchObject({ code: '42501' });
    expect((await direct.query('SELECT amount FROM sluice_appr_payroll WHERE id = 2')).rows[0].amount).toBe(20);
    await c.end();
  });

  live('an approver can grant a time-boxed policy instead of one statement: covered statements then run without review', async () => {
    const c = await as(DAVE);
    const held = c.query('ALTER TABLE sluice_appr_t ADD COLUMN granted_a int');
    const req = await pendingRequest(/granted_a/);
    await gw.approvals!.approve(req.id, identity(CAROL), { reason: 'migration window', grantForMs: 60_000 });
    await held;
    const grant = gw.approvals!.activeGrants(DAVE.subject, 'app')[0];
    expect(grant).toMatchObject({ subject: DAVE.subject, operations: expect.arrayContaining(['ddl']) });
    // Within the grant, the same kind of change on the same table runs at once.
    await c.query('ALTER TABLE sluice_appr_t ADD COLUMN granted_b int');
    expect(await columnExists('sluice_appr_t', 'granted_b')).toBe(true);
    expect(gw.approvals!.list({ status: 'pending' })).toHaveLength(0);
    // A grant never lifts a blocking guardrail.
    await expect(c.query('DROP TABLE sluice_appr_t')).rejects.toMatchObject({ code: '42501', message: expect.stringContaining('guardrail "drop-table"') });
    // Once revoked, changes wait for review again.
    await gw.approvals!.revokeGrant(grant!.id, identity(CAROL));
    const again = c.query('ALTER TABLE sluice_appr_t ADD COLUMN granted_c int');
    const next = await pendingRequest(/granted_c/);
    await gw.approvals!.reject(next.id, identity(CAROL));
    await expect(again).rejects.toMatchObject({ code: '42501' });
    await c.end();
    const records = await gw.auditRecords();
    const viaGrant = records.find((r) => r.type === 'statement' && r.phase === 'intent' && r.text.includes('granted_b'));
    expect(viaGrant?.type === 'statement' && [viaGrant.decision, viaGrant.rule, viaGrant.approval]).toEqual(['allow', `grant:${grant!.id}`, `grant:${grant!.id}`]);
    expect(records.some((r) => r.type === 'approval' && r.action === 'grant-created' && r.grantId === grant!.id)).toBe(true);
  });

  live('a client that disconnects while waiting abandons its request', async () => {
    const c = await as(DAVE);
    const held = c.query('ALTER TABLE sluice_appr_t ADD COLUMN gone_col int').catch(() => undefined);
    const req = await pendingRequest(/gone_col/);
    (c as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
    await held;
    const until = Date.now() + 5000;
    while (gw.approvals!.get(req.id)?.status === 'pending' && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    expect(gw.approvals!.get(req.id)?.status).toBe('abandoned');
    await expect(gw.approvals!.approve(req.id, identity(CAROL))).rejects.toMatchObject({ code: 'not-pending' });
    expect(await columnExists('sluice_appr_t', 'gone_col')).toBe(false);
  });

  live('a CancelRequest withdraws a held statement: 57014, and the request is abandoned', async () => {
    const c = await as(DAVE);
    const held = c.query('ALTER TABLE sluice_appr_t ADD COLUMN cancelled_col int');
    const req = await pendingRequest(/cancelled_col/);
    const keys = c as unknown as { processID: number; secretKey: number };
    const sock = net.connect({ host: gw.host, port: gw.port });
    await new Promise((r) => sock.once('connect', r));
    sock.end(encodeCancelRequest(keys.processID, keys.secretKey));
    await expect(held).rejects.toMatchObject({ code: '57014' });
    expect(gw.approvals!.get(req.id)?.status).toBe('abandoned');
    expect(await columnExists('sluice_appr_t', 'cancelled_col')).toBe(false);
    expect((await c.query('SELECT 4 AS four')).rows[0].four).toBe(4);
    await c.end();
  });

  live('psql waits on a held statement and prints the notice, then the result once approved', async () => {
    const url = `postgres://${encodeURIComponent(DAVE.subject)}:${DAVE.token}@${gw.host}:${gw.port}/app`;
    const child = run('psql', [url, '-X', '-v', 'ON_ERROR_STOP=1', '-c', 'ALTER TABLE sluice_appr_t ADD COLUMN psql_col int'], {
      env: { ...process.env, PGCONNECT_TIMEOUT: '10' },
    });
    const req = await pendingRequest(/psql_col/, 10_000);
    await gw.approvals!.approve(req.id, identity(CAROL));
    const { stdout, stderr } = await child;
    expect(stdout).toContain('ALTER TABLE');
    expect(stderr).toContain(`statement held for approval as request ${req.id}`);
    expect(stderr).toContain(`sluice approvals approve ${req.id}`);
    expect(await columnExists('sluice_appr_t', 'psql_col')).toBe(true);
  });

  live('without a rule, a statement is denied with 42501 naming why; the session stays usable', async () => {
    const c = await as(ALICE);
    await expect(c.query('INSERT INTO sluice_appr_t VALUES (1)')).rejects.toMatchObject({
      code: '42501',
      message: expect.stringMatching(/no policy rule allows write.*alice@example\.com.*denies by default/),
    });
    await expect(c.query('INSERT INTO sluice_appr_t VALUES ($1)', [2])).rejects.toMatchObject({ code: '42501' });
    expect((await c.query('SELECT count(*)::int AS n FROM sluice_appr_t')).rows[0].n).toBe(0);
    await c.end();
  });
});
