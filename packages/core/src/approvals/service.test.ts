import { readFileSync } from 'node:fs';
import { appendFile, readFile, symlink, mkdir } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { FileAuditStore } from '../audit/file-store.js';
import { readAuditRecords } from '../audit/reader.js';
import type { ApprovalEvent, AuditRecord } from '../audit/types.js';
import type { Identity } from '../identity/types.js';
import { useTempDir } from '../test-support/temp-dir.js';
import { openApprovals, RESTART_REASON, SHUTDOWN_REASON, type ApprovalsOptions } from './service.js';
import { JOURNAL_FILE } from './store.js';
import { ApprovalError, type Approvals, type ReviewInput } from './types.js';

const logger = pino({ level: 'silent' });
const dir = useTempDir('sluice-approvals-');

const alice: Identity = { subject: 'alice', kind: 'human', groups: ['eng'], method: 'oidc' };
const bob: Identity = { subject: 'bob', kind: 'human', groups: ['dba'], method: 'oidc' };
const carol: Identity = { subject: 'carol', kind: 'human', groups: ['eng'], method: 'oidc' };
const dana: Identity = { subject: 'dana', kind: 'service', groups: [], method: 'token' };
const DIGEST = 'a1'.repeat(32);

function input(overrides: Partial<ReviewInput> = {}): ReviewInput {
  return {
    dialect: 'postgres',
    sessionId: 's-1',
    statementId: 'st-1',
    requester: alice,
    target: 'prod',
    statement: "DROP TABLE public.orders_2019 -- reason: archived in 'cold'",
    normalized: 'DROP TABLE public.orders_2019',
    fingerprint: 'f0'.repeat(8),
    digest: DIGEST,
    operations: ['ddl'],
    objects: [
      { schema: 'public', name: 'orders_2019', kind: 'table', access: 'ddl' },
      { name: 'audit_tmp', kind: 'table', access: 'write' },
    ],
    hazards: ['drop-table'],
    rule: 'guardrail:drop-table',
    why: 'DROP TABLE needs a second person',
    reason: 'archived in cold storage',
    approvers: { groups: ['dba'], subjects: ['dana'] },
    timeoutMs: 60_000,
    ...overrides,
  };
}

interface Harness {
  readonly approvals: Approvals;
  readonly audit: FileAuditStore;
  readonly auditDir: string;
  readonly stateDir: string;
  open(extra?: Partial<ApprovalsOptions>): Promise<Approvals>;
  events(): Promise<(ApprovalEvent & AuditRecord)[]>;
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function harness(extra: Partial<ApprovalsOptions> = {}, auditDir = join(dir(), 'audit')): Promise<Harness> {
  const audit = await FileAuditStore.open({ dir: auditDir, groupCommitMs: 5, logger });
  const stateDir = join(dir(), 'approvals');
  const open = async (more: Partial<ApprovalsOptions> = {}) => {
    const a = await openApprovals({ dir: stateDir, audit, logger, approvers: { groups: ['dba'], subjects: [] }, ...extra, ...more });
    cleanups.push(() => a.close());
    return a;
  };
  cleanups.push(() => audit.close().catch(() => undefined));
  const approvals = await open();
  return {
    approvals,
    audit,
    auditDir,
    stateDir,
    open,
    async events() {
      await audit.flush();
      const out: (ApprovalEvent & AuditRecord)[] = [];
      for await (const r of readAuditRecords(auditDir)) if (r.type === 'approval') out.push(r);
      return out;
    },
  };
}

async function refusal(p: Promise<unknown>): Promise<ApprovalError> {
  const err = await p.then(
    () => {
      throw new Error('expected a refusal');
    },
    (e: unknown) => e,
  );
  if (!(err instanceof ApprovalError)) throw err;
  return err;
}

/** Whether a promise has settled after pending I/O got a chance to run. */
async function isSettled(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  void p.then(() => (done = true));
  await new Promise((r) => setTimeout(r, 30));
  return done;
}

describe('review requests', () => {
  it('holds the ticket until an approver approves, with every step durably audited first', async () => {
    const h = await harness();
    const ticket = await h.approvals.request(input());
    expect(ticket.request).toMatchObject({ status: 'pending', requester: { subject: 'alice' }, target: 'prod', digest: DIGEST });
    expect(ticket.request.id).toMatch(/^r-[0-9a-hjkmnp-tv-z]{6}$/);
    expect(h.approvals.get(ticket.request.id)).toBe(ticket.request);
    expect(h.approvals.list({ status: 'pending' })).toEqual([ticket.request]);
    expect(await isSettled(ticket.settled)).toBe(false);

    // When the ticket settles, the approval is already on disk in the audit trail.
    let auditedWhenSettled = '';
    const seen = ticket.settled.then((res) => {
      auditedWhenSettled = readFileSync(join(h.auditDir, 'audit-000001.jsonl'), 'utf8');
      return res;
    });
    const approved = await h.approvals.approve(ticket.request.id, bob, { reason: 'archived, ticket OPS-7' });
    expect(approved).toMatchObject({ status: 'approved', decidedBy: { subject: 'bob' }, decisionReason: 'archived, ticket OPS-7' });
    const res = await seen;
    expect(res.status).toBe('approved');
    expect(res.request).toBe(approved);
    expect(auditedWhenSettled).toContain('"action":"approved"');

    const events = await h.events();
    expect(events.map((e) => e.action)).toEqual(['requested', 'approved']);
    expect(events[0]).toMatchObject({
      requestId: ticket.request.id,
      actor: { subject: 'alice' },
      target: 'prod',
      sessionId: 's-1',
      statementId: 'st-1',
      statement: input().statement,
      text: 'DROP TABLE public.orders_2019',
      fingerprint: input().fingerprint,
      digest: DIGEST,
      rule: 'guardrail:drop-table',
      reason: "DROP TABLE needs a second person; requester's reason: archived in cold storage",
    });
    expect(events[1]).toMatchObject({ approver: { subject: 'bob' }, reason: 'archived, ticket OPS-7', digest: DIGEST });
  });

  it('settles rejected when an approver rejects', async () => {
    const h = await harness();
    const ticket = await h.approvals.request(input());
    // An approver named by subject, outside every group.
    const rejected = await h.approvals.reject(ticket.request.id, dana, { reason: 'not during the freeze' });
    expect(rejected).toMatchObject({ status: 'rejected', decidedBy: { subject: 'dana' }, decisionReason: 'not during the freeze' });
    await expect(ticket.settled).resolves.toMatchObject({ status: 'rejected', request: { id: ticket.request.id } });
    expect(await h.approvals.consume(ticket.request.id, DIGEST)).toBe(false);
    expect((await h.events()).map((e) => e.action)).toEqual(['requested', 'rejected', 'refused-reuse']);
  });

  it('expires when nobody decides in time', async () => {
    const h = await harness();
    const ticket = await h.approvals.request(input({ timeoutMs: 40 }));
    const res = await ticket.settled;
    expect(res.status).toBe('expired');
    expect(res.request.decisionReason).toMatch(/nobody decided within 40 ms/);
    expect(h.approvals.get(ticket.request.id)?.status).toBe('expired');
    const err = await refusal(h.approvals.approve(ticket.request.id, bob));
    expect(err.code).toBe('not-pending');
    expect(err.message).toMatch(/expired at .*nobody decided in time/);
    const events = await h.events();
    expect(events.map((e) => e.action)).toEqual(['requested', 'expired']);
  });

  it('refuses self-approval, even to an approver', async () => {
    const h = await harness();
    const ticket = await h.approvals.request(input({ requester: bob }));
    const err = await refusal(h.approvals.approve(ticket.request.id, bob));
    expect(err.code).toBe('self-approval');
    expect(err.message).toMatch(/nobody approves their own request/);
    expect((await refusal(h.approvals.reject(ticket.request.id, bob))).code).toBe('self-approval');
    expect(h.approvals.get(ticket.request.id)?.status).toBe('pending');
  });

  it('refuses someone who is not an approver of the request', async () => {
    const h = await harness();
    const ticket = await h.approvals.request(input());
    const err = await refusal(h.approvals.approve(ticket.request.id, carol));
    expect(err.code).toBe('not-an-approver');
    expect(err.message).toMatch(/carol may not decide .* groups dba; subjects dana/);
    expect((await refusal(h.approvals.approve('r-zzzzzz', bob))).code).toBe('not-found');
    expect(h.approvals.get(ticket.request.id)?.status).toBe('pending');
  });

  it('says who decided when a request is decided twice', async () => {
    const h = await harness();
    const ticket = await h.approvals.request(input());
    const [first, second] = await Promise.allSettled([
      h.approvals.approve(ticket.request.id, bob),
      h.approvals.approve(ticket.request.id, dana),
    ]);
    expect(first.status).toBe('fulfilled');
    expect(second.status).toBe('rejected');
    const err = (second as PromiseRejectedResult).reason as ApprovalError;
    expect(err.code).toBe('not-pending');
    expect(err.message).toMatch(/was already approved by bob at 20/);
    expect((await refusal(h.approvals.reject(ticket.request.id, dana))).code).toBe('not-pending');
  });

  it('releases an approved statement once, and only for the approved digest', async () => {
    const h = await harness();
    const ticket = await h.approvals.request(input());
    const id = ticket.request.id;
    expect(await h.approvals.consume(id, DIGEST)).toBe(false); // still pending
    await h.approvals.approve(id, bob);
    const other = 'b2'.repeat(32);
    expect(await h.approvals.consume(id, other)).toBe(false);
    expect(h.approvals.get(id)?.status).toBe('approved');
    expect(await h.approvals.consume(id, DIGEST)).toBe(true);
    expect(h.approvals.get(id)?.status).toBe('executed');
    expect(await h.approvals.consume(id, DIGEST)).toBe(false);
    expect(await h.approvals.consume('r-nonexi', DIGEST)).toBe(false);

    const events = await h.events();
    expect(events.map((e) => e.action)).toEqual(['requested', 'refused-reuse', 'approved', 'refused-reuse', 'executed', 'refused-reuse']);
    expect(events[1]).toMatchObject({ reason: 'the request is pending, not approved' });
    expect(events[3]).toMatchObject({ digest: other, reason: expect.stringMatching(/not the one approved/) });
    expect(events[4]).toMatchObject({ digest: DIGEST, approver: { subject: 'bob' }, text: 'DROP TABLE public.orders_2019' });
    expect(events[5]).toMatchObject({ digest: DIGEST, reason: expect.stringMatching(/already used/) });
    const err = await refusal(h.approvals.approve(id, dana));
    expect(err.message).toMatch(/approved by bob at .* the statement has run/);
  });

  it('abandons a waiting request when its session ends; idempotent, a no-op once decided', async () => {
    const h = await harness();
    const ticket = await h.approvals.request(input());
    await h.approvals.abandon(ticket.request.id, 'the client disconnected');
    await h.approvals.abandon(ticket.request.id, 'the client disconnected');
    await expect(ticket.settled).resolves.toMatchObject({ status: 'abandoned', request: { decisionReason: 'the client disconnected' } });
    const decided = await h.approvals.request(input({ statementId: 'st-2' }));
    await h.approvals.reject(decided.request.id, bob);
    await h.approvals.abandon(decided.request.id, 'late');
    expect(h.approvals.get(decided.request.id)?.status).toBe('rejected');
    // An approved statement whose session ends before it runs can never run.
    const approved = await h.approvals.request(input({ statementId: 'st-3' }));
    await h.approvals.approve(approved.request.id, bob);
    await h.approvals.abandon(approved.request.id, 'the client disconnected');
    expect(await h.approvals.consume(approved.request.id, DIGEST)).toBe(false);
    const actions = (await h.events()).map((e) => e.action);
    expect(actions.filter((a) => a === 'abandoned')).toHaveLength(2);
  });

  it('lists newest first, filtered by status and target', async () => {
    let t = Date.parse('2024-05-01T12:00:00.000Z');
    const h = await harness({ now: () => t });
    const a = await h.approvals.request(input({ statementId: 'a' }));
    t += 1000;
    const b = await h.approvals.request(input({ statementId: 'b', target: 'staging' }));
    t += 1000;
    const c = await h.approvals.request(input({ statementId: 'c' }));
    await h.approvals.reject(c.request.id, bob);
    expect(h.approvals.list().map((r) => r.statementId)).toEqual(['c', 'b', 'a']);
    expect(h.approvals.list({ status: 'pending' }).map((r) => r.statementId)).toEqual(['b', 'a']);
    expect(h.approvals.list({ status: ['pending', 'rejected'], target: 'prod' }).map((r) => r.statementId)).toEqual(['c', 'a']);
    expect(h.approvals.list({ limit: 1 }).map((r) => r.id)).toEqual([c.request.id]);
    expect(a.request.expiresAt).toBe('2024-05-01T12:01:00.000Z');
    expect(b.request.createdAt).toBe('2024-05-01T12:00:01.000Z');
  });

  it('refuses malformed requests', async () => {
    const h = await harness();
    expect((await refusal(h.approvals.request(input({ timeoutMs: 0 })))).code).toBe('invalid');
    expect((await refusal(h.approvals.request(input({ approvers: { groups: [], subjects: [] } })))).code).toBe('invalid');
    expect((await refusal(h.approvals.request(input({ digest: '' })))).code).toBe('invalid');
    expect(h.approvals.list()).toEqual([]);
  });
});

describe('grants', () => {
  it('creates a grant that is active for its subject and target until it expires', async () => {
    let t = Date.parse('2024-05-01T12:00:00.000Z');
    const h = await harness({ now: () => t });
    const g = await h.approvals.grant(
      { subject: 'alice', targets: ['prod'], operations: ['write'], objects: ['public.*'], durationMs: 3600_000, reason: 'migration' },
      bob,
    );
    expect(g).toMatchObject({ subject: 'alice', targets: ['prod'], expiresAt: '2024-05-01T13:00:00.000Z', grantedBy: { subject: 'bob' } });
    expect(g.id).toMatch(/^g-[0-9a-hjkmnp-tv-z]{6}$/);
    const everywhere = await h.approvals.grant({ subject: 'alice', operations: ['read'], durationMs: 60_000 }, bob);
    expect(h.approvals.activeGrants('alice', 'prod').map((x) => x.id)).toEqual([g.id, everywhere.id]);
    expect(h.approvals.activeGrants('alice', 'staging').map((x) => x.id)).toEqual([everywhere.id]);
    expect(h.approvals.activeGrants('carol', 'prod')).toEqual([]);
    t += 60_000;
    expect(h.approvals.activeGrants('alice', 'staging')).toEqual([]);
    expect(h.approvals.listGrants().map((x) => x.id)).toEqual([g.id]);
    expect(h.approvals.listGrants({ includeExpired: true })).toHaveLength(2);
    t += 3600_000;
    expect(h.approvals.activeGrants('alice', 'prod')).toEqual([]);

    const events = await h.events();
    expect(events[0]).toMatchObject({
      action: 'grant-created',
      grantId: g.id,
      actor: { subject: 'alice' },
      approver: { subject: 'bob' },
      operations: ['write'],
      expiresAt: '2024-05-01T13:00:00.000Z',
    });
  });

  it('revokes a grant at once', async () => {
    const h = await harness();
    const g = await h.approvals.grant({ subject: 'alice', operations: ['write'], durationMs: 3600_000 }, bob);
    expect((await refusal(h.approvals.revokeGrant(g.id, carol))).code).toBe('not-an-approver');
    const revoked = await h.approvals.revokeGrant(g.id, bob);
    expect(revoked.revokedBy?.subject).toBe('bob');
    expect(h.approvals.activeGrants('alice', 'prod')).toEqual([]);
    expect(h.approvals.listGrants()).toEqual([]);
    expect(h.approvals.listGrants({ includeExpired: true })).toEqual([revoked]);
    expect((await refusal(h.approvals.revokeGrant(g.id, bob))).code).toBe('not-pending');
    expect((await refusal(h.approvals.revokeGrant('g-none00', bob))).code).toBe('not-found');
    expect((await h.events()).map((e) => e.action)).toEqual(['grant-created', 'grant-revoked']);
  });

  it('refuses self-grants, non-approvers and bad durations', async () => {
    const h = await harness();
    expect((await refusal(h.approvals.grant({ subject: 'bob', operations: ['write'], durationMs: 60_000 }, bob))).code).toBe(
      'self-approval',
    );
    expect((await refusal(h.approvals.grant({ subject: 'alice', operations: ['write'], durationMs: 60_000 }, carol))).code).toBe(
      'not-an-approver',
    );
    for (const durationMs of [0, -1, 31 * 24 * 3600_000, Number.NaN]) {
      expect((await refusal(h.approvals.grant({ subject: 'alice', operations: ['write'], durationMs }, bob))).code).toBe('invalid');
    }
    expect((await refusal(h.approvals.grant({ subject: 'alice', operations: [], durationMs: 60_000 }, bob))).code).toBe('invalid');
    expect(h.approvals.listGrants({ includeExpired: true })).toEqual([]);
  });

  it('approving with grantForMs grants the requester what the request covers', async () => {
    let t = Date.parse('2024-05-01T12:00:00.000Z');
    const h = await harness({ now: () => t });
    const ticket = await h.approvals.request(input());
    // dana may approve this request (its spec names her) but is not a grant approver.
    expect((await refusal(h.approvals.approve(ticket.request.id, dana, { grantForMs: 60_000 }))).code).toBe('not-an-approver');
    expect((await refusal(h.approvals.approve(ticket.request.id, bob, { grantForMs: 40 * 24 * 3600_000 }))).code).toBe('invalid');
    const approved = await h.approvals.approve(ticket.request.id, bob, { grantForMs: 2 * 3600_000, reason: 'cleanup week' });
    expect(approved.grantId).toMatch(/^g-/);
    const [g] = h.approvals.activeGrants('alice', 'prod');
    expect(g).toMatchObject({
      id: approved.grantId,
      subject: 'alice',
      targets: ['prod'],
      operations: ['ddl'],
      objects: ['public.orders_2019', 'public.audit_tmp'],
      guardrails: ['drop-table'],
      requestId: ticket.request.id,
      expiresAt: '2024-05-01T14:00:00.000Z',
      grantedBy: { subject: 'bob' },
    });
    await expect(ticket.settled).resolves.toMatchObject({ status: 'approved', request: { grantId: approved.grantId } });
    t += 2 * 3600_000;
    expect(h.approvals.activeGrants('alice', 'prod')).toEqual([]);
    const events = await h.events();
    expect(events.map((e) => e.action)).toEqual(['requested', 'approved', 'grant-created']);
    expect(events[2]).toMatchObject({ requestId: ticket.request.id, grantId: approved.grantId, actor: alice, dialect: 'postgres' });
  });

  it('keeps grants across a restart', async () => {
    const h = await harness();
    const g = await h.approvals.grant({ subject: 'alice', targets: ['prod'], operations: ['write'], durationMs: 3600_000 }, bob);
    await h.approvals.close();
    const again = await h.open();
    expect(again.activeGrants('alice', 'prod')).toEqual([g]);
  });
});

describe('restarts and failures', () => {
  it('abandons what waits when the service closes, and it stays abandoned after reopening', async () => {
    const h = await harness();
    const ticket = await h.approvals.request(input());
    await h.approvals.close();
    await expect(ticket.settled).resolves.toMatchObject({ status: 'abandoned', request: { decisionReason: SHUTDOWN_REASON } });
    expect((await refusal(h.approvals.request(input()))).code).toBe('unavailable');
    const again = await h.open();
    expect(again.get(ticket.request.id)).toMatchObject({ status: 'abandoned', decisionReason: SHUTDOWN_REASON });
    expect((await h.events()).map((e) => e.action)).toEqual(['requested', 'abandoned']);
  });

  it('a reopen after a crash abandons pending and approved requests: nothing is released', async () => {
    const h = await harness();
    const pending = await h.approvals.request(input());
    const approved = await h.approvals.request(input({ statementId: 'st-2' }));
    await h.approvals.approve(approved.request.id, bob);
    // As if the process had died: a new service opens the same directory.
    const after = await h.open();
    for (const id of [pending.request.id, approved.request.id]) {
      expect(after.get(id)).toMatchObject({ status: 'abandoned', decisionReason: RESTART_REASON });
    }
    expect(await after.consume(approved.request.id, DIGEST)).toBe(false);
    expect((await refusal(after.approve(pending.request.id, bob))).code).toBe('not-pending');
    const abandoned = (await h.events()).filter((e) => e.action === 'abandoned');
    expect(abandoned.map((e) => [e.requestId, e.reason]).sort()).toEqual(
      [
        [pending.request.id, RESTART_REASON],
        [approved.request.id, RESTART_REASON],
      ].sort(),
    );
  });

  it('tolerates a torn last journal line', async () => {
    const h = await harness();
    const ticket = await h.approvals.request(input());
    await h.approvals.reject(ticket.request.id, bob);
    await h.approvals.close();
    await appendFile(join(h.stateDir, JOURNAL_FILE), '{"kind":"request","record":{"id":"r-torn');
    const again = await h.open();
    expect(again.list().map((r) => [r.id, r.status])).toEqual([[ticket.request.id, 'rejected']]);
    const next = await again.request(input());
    expect(next.request.status).toBe('pending');
    expect((await readFile(join(h.stateDir, JOURNAL_FILE), 'utf8')).includes('r-torn')).toBe(false);
  });

  it('rejects a request as unavailable when the audit trail cannot take it, leaving nothing pending', async () => {
    const auditDir = join(dir(), 'broken-audit');
    await mkdir(auditDir);
    // Writes to /dev/full fail with ENOSPC.
    await symlink('/dev/full', join(auditDir, 'audit-000001.jsonl'));
    const h = await harness({}, auditDir);
    const err = await refusal(h.approvals.request(input()));
    expect(err.code).toBe('unavailable');
    expect(err.message).toMatch(/could not be recorded in the audit trail.*ENOSPC/);
    expect(h.approvals.list({ status: ['pending', 'approved'] })).toEqual([]);
    expect(h.approvals.list().map((r) => r.status)).toEqual(['abandoned']);
    // Grants fail closed too.
    expect((await refusal(h.approvals.grant({ subject: 'alice', operations: ['write'], durationMs: 60_000 }, bob))).code).toBe(
      'unavailable',
    );
    expect(h.approvals.activeGrants('alice', 'prod')).toEqual([]);
    await h.approvals.close();

    const healthy = await FileAuditStore.open({ dir: join(dir(), 'audit-2'), logger });
    cleanups.push(() => healthy.close());
    const again = await openApprovals({ dir: h.stateDir, audit: healthy, logger, approvers: { groups: ['dba'], subjects: [] } });
    cleanups.push(() => again.close());
    expect(again.list({ status: ['pending', 'approved'] })).toEqual([]);
    const grants = again.listGrants({ includeExpired: true });
    expect(grants).toHaveLength(1);
    expect(grants[0]?.revokedAt).toBeDefined();
    expect(again.activeGrants('alice', 'prod')).toEqual([]);
  });

  it('abandons a request whose approval cannot be audited: nothing is released on it', async () => {
    const h = await harness();
    const ticket = await h.approvals.request(input());
    const approved = await h.approvals.request(input({ statementId: 'st-2' }));
    await h.approvals.approve(approved.request.id, bob);
    await h.audit.close(); // from now on every append is refused
    const err = await refusal(h.approvals.approve(ticket.request.id, bob, { grantForMs: 60_000 }));
    expect(err.code).toBe('unavailable');
    expect(err.message).toMatch(/could not be recorded in the audit trail/);
    await expect(ticket.settled).resolves.toMatchObject({ status: 'abandoned' });
    expect(h.approvals.activeGrants('alice', 'prod')).toEqual([]);
    // The release of an approved statement must be audited too.
    expect(await h.approvals.consume(approved.request.id, DIGEST)).toBe(false);
    expect(h.approvals.get(approved.request.id)?.status).toBe('abandoned');
    await h.approvals.close();
    const healthy = await FileAuditStore.open({ dir: join(dir(), 'audit-2'), logger });
    cleanups.push(() => healthy.close());
    const again = await openApprovals({ dir: h.stateDir, audit: healthy, logger, approvers: { groups: ['dba'], subjects: [] } });
    cleanups.push(() => again.close());
    expect(again.list().map((r) => r.status)).toEqual(['abandoned', 'abandoned']);
    expect(again.activeGrants('alice', 'prod')).toEqual([]);
  });

  it('a notifier that cannot be reached neither delays nor fails the flow', async () => {
    const server: Server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const h = await harness({
      notifiers: [
        { kind: 'webhook', url: `http://127.0.0.1:${port}/hook`, secret: 's3cret' },
        { kind: 'slack', url: `http://127.0.0.1:${port}/services/T/B/X`, timeoutMs: 200 },
      ],
      notifyGraceMs: 50,
    });
    const started = performance.now();
    const ticket = await h.approvals.request(input());
    await h.approvals.approve(ticket.request.id, bob);
    expect(await h.approvals.consume(ticket.request.id, DIGEST)).toBe(true);
    expect(performance.now() - started).toBeLessThan(1000);
    await expect(ticket.settled).resolves.toMatchObject({ status: 'approved' });
  });

  it('notifies a webhook of each step', async () => {
    const bodies: { event: string; request: { id: string; status: string } }[] = [];
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString('utf8')));
      req.on('end', () => {
        bodies.push(JSON.parse(body) as (typeof bodies)[number]);
        res.end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const { port } = server.address() as AddressInfo;
    const h = await harness({ notifiers: [{ kind: 'webhook', url: `http://127.0.0.1:${port}/hook` }] });
    const ticket = await h.approvals.request(input());
    await h.approvals.approve(ticket.request.id, bob);
    const other = await h.approvals.request(input({ statementId: 'st-2', timeoutMs: 20 }));
    await other.settled;
    for (let i = 0; i < 100 && bodies.length < 4; i++) await new Promise((r) => setTimeout(r, 10));
    const seen = bodies.map((b) => `${b.event} ${b.request.id} ${b.request.status}`).sort();
    expect(seen).toEqual(
      [
        `approval.requested ${ticket.request.id} pending`,
        `approval.approved ${ticket.request.id} approved`,
        `approval.requested ${other.request.id} pending`,
        `approval.expired ${other.request.id} expired`,
      ].sort(),
    );
  });
});
