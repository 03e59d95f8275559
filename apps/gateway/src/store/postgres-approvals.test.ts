/**
 * Approvals shared by gateway replicas through PostgreSQL: two (or more) approvals services in
 * this process, each with its own backend (own pool, own LISTEN connection, own replica id) and
 * its own audit trail, on one database: the real server at 127.0.0.1:5432 (schema of this file
 * only), and a throwaway server for the outage.
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ApprovalError,
  FileAuditStore,
  openApprovals,
  readAuditRecords,
  RESTART_REASON,
  SHUTDOWN_REASON,
  SWEEP_REASON,
  type ApprovalEvent,
  type Approvals,
  type AuditRecord,
  type Identity,
  type ReviewInput,
} from '@sluice/core';
import { requireService, startTempPostgres, type TempPostgres } from '@sluice/testkit';
import pg from 'pg';
import { pino, type Logger } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openPostgresApprovalBackend, type PostgresApprovalBackend } from './postgres-approvals.js';

const SCHEMA = 'sluice_approvals_test';
const URL = process.env.SLUICE_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const logger = pino({ level: 'silent' });

const alice: Identity = { subject: 'alice', kind: 'human', groups: ['eng'], method: 'oidc' };
const bob: Identity = { subject: 'bob', kind: 'human', groups: ['dba'], method: 'oidc' };
const dana: Identity = { subject: 'dana', kind: 'human', groups: ['dba'], method: 'oidc' };
const DIGEST = 'c3'.repeat(32);

function input(overrides: Partial<ReviewInput> = {}): ReviewInput {
  return {
    dialect: 'postgres',
    sessionId: 's-1',
    statementId: 'st-1',
    requester: alice,
    target: 'prod',
    statement: 'DELETE FROM public.approvals_test_orders WHERE id = 7',
    normalized: 'DELETE FROM public.approvals_test_orders WHERE id = $1',
    fingerprint: 'ab'.repeat(8),
    digest: DIGEST,
    operations: ['write'],
    objects: [{ schema: 'public', name: 'approvals_test_orders', kind: 'table', access: 'write' }],
    hazards: [],
    rule: 'rule:review-deletes',
    why: 'deletes need a second person',
    approvers: { groups: ['dba'], subjects: [] },
    timeoutMs: 60_000,
    ...overrides,
  };
}

interface Replica {
  readonly id: string;
  readonly approvals: Approvals;
  readonly backend: PostgresApprovalBackend;
  readonly audit: FileAuditStore;
  events(): Promise<(ApprovalEvent & AuditRecord)[]>;
}

interface ReplicaOptions {
  readonly url?: string;
  readonly schema?: string;
  readonly pollIntervalMs?: number;
  readonly listen?: boolean;
  readonly sweepGraceMs?: number;
  readonly sweepIntervalMs?: number;
  /** Reuse an audit directory (a restarted replica keeps its trail). */
  readonly auditDir?: string;
  /** The approvals service's logger (default silent). */
  readonly logger?: Logger;
}

let tmp = '';
const cleanups: (() => Promise<unknown>)[] = [];
let available = false;

async function replica(id: string, options: ReplicaOptions = {}): Promise<Replica & { readonly auditDir: string }> {
  const auditDir = options.auditDir ?? (await mkdtemp(join(tmp, `audit-${id}-`)));
  const audit = await FileAuditStore.open({ dir: auditDir, groupCommitMs: 5, logger });
  const backend = await openPostgresApprovalBackend({
    url: options.url ?? URL,
    replicaId: id,
    logger,
    schema: options.schema ?? SCHEMA,
    pollIntervalMs: options.pollIntervalMs ?? 300,
    ...(options.listen !== undefined ? { listen: options.listen } : {}),
    connectTimeoutMs: 3_000,
    queryTimeoutMs: 5_000,
  });
  const approvals = await openApprovals({
    backend,
    replicaId: id,
    audit,
    logger: options.logger ?? logger,
    approvers: { groups: ['dba'], subjects: [] },
    ...(options.sweepGraceMs !== undefined ? { sweepGraceMs: options.sweepGraceMs } : {}),
    ...(options.sweepIntervalMs !== undefined ? { sweepIntervalMs: options.sweepIntervalMs } : {}),
  });
  cleanups.push(async () => {
    await approvals.close().catch(() => undefined);
    await audit.close().catch(() => undefined);
  });
  return {
    id,
    approvals,
    backend,
    audit,
    auditDir,
    async events() {
      await audit.flush();
      const out: (ApprovalEvent & AuditRecord)[] = [];
      for await (const r of readAuditRecords(auditDir)) if (r.type === 'approval') out.push(r);
      return out;
    },
  };
}

/** Polls until `check` returns something other than undefined/false, or fails after `ms`. */
async function until<T>(what: string, check: () => T | undefined | false | Promise<T | undefined | false>, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
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

/** Approval events of the given request across the replicas' trails, as `replica action`. */
async function trail(replicas: readonly Replica[], requestId: string): Promise<string[]> {
  const out: string[] = [];
  for (const r of replicas) for (const e of await r.events()) if (e.requestId === requestId) out.push(`${r.id} ${e.action}`);
  return out.sort();
}

async function dropSchema(url = URL, schema = SCHEMA): Promise<void> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  } finally {
    await client.end();
  }
}

async function sql<T extends pg.QueryResultRow>(text: string, params: unknown[] = [], url = URL): Promise<T[]> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  await client.connect();
  try {
    return (await client.query<T>(text, params)).rows;
  } finally {
    await client.end();
  }
}

beforeAll(async () => {
  available = await requireService('PostgreSQL', '127.0.0.1', 5432);
  tmp = await mkdtemp(join(tmpdir(), 'sluice-approvals-pg-'));
  if (available) await dropSchema();
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

afterAll(async () => {
  if (available) await dropSchema();
  await rm(tmp, { recursive: true, force: true });
});

describe('approvals shared by replicas on PostgreSQL', () => {
  it('a statement held on A is approved through B and released on A, once', async ({ skip }) => {
    if (!available) return skip('PostgreSQL is not reachable');
    const a = await replica('replica-a');
    const b = await replica('replica-b');
    const ticket = await a.approvals.request(input());
    const id = ticket.request.id;
    expect(ticket.request.owner).toBe('replica-a');
    const seen = await until('B to see the request', () => b.approvals.get(id));
    expect(seen).toMatchObject({ id, status: 'pending', owner: 'replica-a', digest: DIGEST });
    expect(b.approvals.list({ status: 'pending' }).map((r) => r.id)).toContain(id);

    await b.approvals.approve(id, bob, { reason: 'checked' });
    const settled = await ticket.settled;
    expect(settled).toMatchObject({ status: 'approved', request: { id, decidedBy: { subject: 'bob' }, decisionReason: 'checked' } });
    expect(await a.approvals.consume(id, 'ff'.repeat(32))).toBe(false); // not the approved statement
    expect(await a.approvals.consume(id, DIGEST)).toBe(true);
    expect(await a.approvals.consume(id, DIGEST)).toBe(false);
    await until('B to see it executed', () => b.approvals.get(id)?.status === 'executed');
    // B cannot release it either.
    expect(await b.approvals.consume(id, DIGEST)).toBe(false);

    expect(await trail([a, b], id)).toEqual(
      ['replica-a requested', 'replica-b approved', 'replica-a refused-reuse', 'replica-a executed', 'replica-a refused-reuse', 'replica-b refused-reuse'].sort(),
    );
  });

  it("B's rejection settles A's ticket rejected; a request B has not heard of yet is read from the store", async ({ skip }) => {
    if (!available) return skip('PostgreSQL is not reachable');
    const a = await replica('replica-a');
    // B only polls, rarely: its mirror lags, so the decision must read the store.
    const b = await replica('replica-b', { listen: false, pollIntervalMs: 60_000 });
    const ticket = await a.approvals.request(input());
    const id = ticket.request.id;
    await b.approvals.reject(id, bob, { reason: 'not today' });
    await expect(ticket.settled).resolves.toMatchObject({ status: 'rejected', request: { decisionReason: 'not today' } });
    expect(await a.approvals.consume(id, DIGEST)).toBe(false);
    expect((await refusal(b.approvals.approve(id, dana))).code).toBe('not-pending');
    expect((await refusal(b.approvals.approve('r-zzzzzz', dana))).code).toBe('not-found');
    expect(await trail([a, b], id)).toEqual(['replica-a refused-reuse', 'replica-a requested', 'replica-b rejected']);
  });

  it('two replicas approving the same request at once: exactly one wins and audits it', async ({ skip }) => {
    if (!available) return skip('PostgreSQL is not reachable');
    const a = await replica('replica-a');
    const b = await replica('replica-b');
    for (let i = 0; i < 5; i++) {
      const ticket = await a.approvals.request(input({ statementId: `st-${i}` }));
      const id = ticket.request.id;
      await until('B to see the request', () => b.approvals.get(id));
      const results = await Promise.allSettled([a.approvals.approve(id, bob), b.approvals.approve(id, dana)]);
      const won = results.filter((r) => r.status === 'fulfilled');
      const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
      expect(won).toHaveLength(1);
      expect(lost).toHaveLength(1);
      expect(lost[0]!.reason).toBeInstanceOf(ApprovalError);
      expect((lost[0]!.reason as ApprovalError).code).toBe('not-pending');
      const resolution = await ticket.settled;
      expect(resolution.status).toBe('approved');
      const events = await trail([a, b], id);
      expect(events.filter((e) => e.endsWith(' approved'))).toHaveLength(1);
      expect(await a.approvals.consume(id, DIGEST)).toBe(true);
    }
  });

  it('a grant created on B is in force on A; revoked on A, it stops on B', async ({ skip }) => {
    if (!available) return skip('PostgreSQL is not reachable');
    const a = await replica('replica-a');
    const b = await replica('replica-b');
    const grant = await b.approvals.grant({ subject: 'alice', targets: ['prod'], operations: ['write'], durationMs: 600_000 }, bob);
    const onA = await until('A to see the grant', () => a.approvals.activeGrants('alice', 'prod')[0]);
    expect(onA.id).toBe(grant.id);
    expect(a.approvals.activeGrants('alice', 'staging')).toEqual([]);

    await a.approvals.revokeGrant(grant.id, dana);
    await until('B to stop the grant', () => b.approvals.activeGrants('alice', 'prod').length === 0);
    // Revoking again, on either replica, says it is done.
    expect((await refusal(b.approvals.revokeGrant(grant.id, bob))).code).toBe('not-pending');
    expect((await refusal(a.approvals.revokeGrant(grant.id, bob))).code).toBe('not-pending');

    // A grant made with an approval on B covers the requester on A at once after the release.
    const ticket = await a.approvals.request(input({ statementId: 'st-grant' }));
    await until('B to see the request', () => b.approvals.get(ticket.request.id));
    const approved = await b.approvals.approve(ticket.request.id, bob, { grantForMs: 600_000 });
    await ticket.settled;
    const fromApproval = await until('A to see the grant of the approval', () =>
      a.approvals.activeGrants('alice', 'prod').find((g) => g.id === approved.grantId),
    );
    expect(fromApproval.requestId).toBe(ticket.request.id);

    const grantEvents = [...(await a.events()), ...(await b.events())].filter((e) => e.grantId === grant.id).map((e) => e.action);
    expect(grantEvents.sort()).toEqual(['grant-created', 'grant-revoked']);
  });

  it('a replica that restarts abandons its own waiting requests, not those of the others', async ({ skip }) => {
    if (!available) return skip('PostgreSQL is not reachable');
    const a = await replica('replica-a');
    const b = await replica('replica-b');
    const held = await a.approvals.request(input({ statementId: 'st-a' }));
    const approvedOnA = await a.approvals.request(input({ statementId: 'st-a2' }));
    const other = await b.approvals.request(input({ statementId: 'st-b' }));
    await until('A to see B\'s request', () => a.approvals.get(other.request.id));
    await b.approvals.approve(approvedOnA.request.id, bob);
    await approvedOnA.settled;

    // A crashes: its store connection and its audit file are gone, and nothing of it ends its requests.
    await a.backend.close();
    await a.audit.close();
    const again = await replica('replica-a', { auditDir: a.auditDir });
    for (const id of [held.request.id, approvedOnA.request.id]) {
      expect(again.approvals.get(id)).toMatchObject({ status: 'abandoned', decisionReason: RESTART_REASON });
    }
    expect(again.approvals.get(other.request.id)?.status).toBe('pending');
    expect(await again.approvals.consume(approvedOnA.request.id, DIGEST)).toBe(false);
    await until('B to see the abandonment', () => b.approvals.get(held.request.id)?.status === 'abandoned');
    expect(b.approvals.get(other.request.id)?.status).toBe('pending');

    // B's request is still B's to be decided and released.
    await again.approvals.approve(other.request.id, dana);
    await expect(other.settled).resolves.toMatchObject({ status: 'approved' });
    expect(await b.approvals.consume(other.request.id, DIGEST)).toBe(true);

    // A clean shutdown abandons what A holds (and nothing of B's).
    const last = await again.approvals.request(input({ statementId: 'st-a3' }));
    const bLast = await b.approvals.request(input({ statementId: 'st-b2' }));
    await again.approvals.close();
    await expect(last.settled).resolves.toMatchObject({ status: 'abandoned', request: { decisionReason: SHUTDOWN_REASON } });
    await until('B to see the shutdown', () => b.approvals.get(last.request.id)?.status === 'abandoned');
    expect(b.approvals.get(bLast.request.id)?.status).toBe('pending');

    const abandoned = (await again.events()).filter((e) => e.action === 'abandoned').map((e) => e.requestId).sort();
    expect(abandoned).toEqual([held.request.id, approvedOnA.request.id, last.request.id].sort());
  });

  it('requests of a replica that never comes back are expired by the sweep of exactly one other replica', async ({ skip }) => {
    if (!available) return skip('PostgreSQL is not reachable');
    const grace = 800;
    const a = await replica('replica-a', { sweepGraceMs: grace, sweepIntervalMs: 200 });
    const b = await replica('replica-b', { sweepGraceMs: grace, sweepIntervalMs: 200 });
    const ghost = await replica('replica-ghost');
    const pending = await ghost.approvals.request(input({ statementId: 'st-g1', timeoutMs: 400 }));
    const approved = await ghost.approvals.request(input({ statementId: 'st-g2', timeoutMs: 400 }));
    await until('B to see the requests', () => b.approvals.get(approved.request.id));
    await b.approvals.approve(approved.request.id, bob);
    // The ghost replica dies before its timers fire: nothing of it can end its requests.
    await ghost.backend.close();
    await ghost.audit.close();

    for (const ticket of [pending, approved]) {
      const id = ticket.request.id;
      const expired = await until('the sweep', () => {
        const r = a.approvals.get(id);
        return r?.status === 'expired' ? r : undefined;
      });
      expect(expired.decisionReason).toBe(SWEEP_REASON);
      expect(Date.parse(expired.decidedAt!)).toBeGreaterThanOrEqual(Date.parse(expired.expiresAt) + grace);
      await until('B to see it expired', () => b.approvals.get(id)?.status === 'expired');
      const expiries = (await trail([a, b], id)).filter((e) => e.endsWith(' expired'));
      expect(expiries).toHaveLength(1);
    }
    const [row] = await sql<{ status: string; owner: string }>(`SELECT status, owner FROM "${SCHEMA}".approval_requests WHERE id = $1`, [
      pending.request.id,
    ]);
    expect(row).toEqual({ status: 'expired', owner: 'replica-ghost' });
  });

  it('a sweep that loses to the release of the statement neither expires nor announces it', async ({ skip }) => {
    if (!available) return skip('PostgreSQL is not reachable');
    const messages: { msg: string; requestId?: string }[] = [];
    const captured = pino({ level: 'info' }, { write: (line: string) => void messages.push(JSON.parse(line)) });
    const a = await replica('replica-a');
    // B hears nothing of A: its mirror still shows the request approved when its sweep comes.
    const b = await replica('replica-b', { listen: false, pollIntervalMs: 600_000, sweepGraceMs: 1_000, sweepIntervalMs: 100, logger: captured });
    const ticket = await a.approvals.request(input({ timeoutMs: 200 }));
    const id = ticket.request.id;
    await b.approvals.approve(id, bob);
    expect(await a.approvals.consume(id, DIGEST)).toBe(true);
    expect(b.approvals.get(id)?.status).toBe('approved');

    const lost = await until('B to sweep', () => messages.find((m) => m.requestId === id && m.msg.includes('before it could be expired')));
    expect(lost.msg).toBe('approvals: request was executed before it could be expired');
    expect(messages.filter((m) => m.requestId === id && m.msg === 'approvals: request expired')).toEqual([]);
    expect(b.approvals.get(id)?.status).toBe('executed');
    expect((await trail([a, b], id)).filter((e) => e.endsWith(' expired'))).toEqual([]);
  });

  it("A's own expiry that loses to an approval made just then settles approved", async ({ skip }) => {
    if (!available) return skip('PostgreSQL is not reachable');
    const a = await replica('replica-a');
    // B hears nothing of A except what it reads from the store when asked.
    const b = await replica('replica-b', { listen: false, pollIntervalMs: 60_000 });
    const ticket = await a.approvals.request(input({ timeoutMs: 4_000 }));
    const id = ticket.request.id;
    // Hold A's row lock with a transaction of our own, so that A's timer and B's approval queue
    // behind it; B's UPDATE was queued first and wins.
    const blocker = new pg.Client({ connectionString: URL });
    await blocker.connect();
    try {
      await blocker.query('BEGIN');
      await blocker.query(`SELECT 1 FROM "${SCHEMA}".approval_requests WHERE id = $1 FOR UPDATE`, [id]);
      const waiting = async (replicaId: string): Promise<boolean> => {
        const rows = await sql<{ n: string }>(
          `SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND application_name = $1`,
          [`sluice-approvals ${replicaId}`],
        );
        return Number(rows[0]!.n) > 0;
      };
      const approving = b.approvals.approve(id, bob);
      await until('B to wait for the row', () => waiting('replica-b'));
      // The premise: B queued before A's timer fired.
      expect(await waiting('replica-a')).toBe(false);
      await until("A's timer to wait for the row too", () => waiting('replica-a'));
      await blocker.query('COMMIT');
      await approving;
    } finally {
      await blocker.end();
    }
    await expect(ticket.settled).resolves.toMatchObject({ status: 'approved' });
    expect(await a.approvals.consume(id, DIGEST)).toBe(true);
    expect((await trail([a, b], id)).filter((e) => !e.endsWith('requested'))).toEqual(['replica-a executed', 'replica-b approved']);
  });

  it('releases within the poll bound when the LISTEN connection is killed, and when there is no LISTEN at all', async ({ skip }) => {
    if (!available) return skip('PostgreSQL is not reachable');
    const pollIntervalMs = 500;
    const a = await replica('replica-a', { pollIntervalMs });
    const quiet = await replica('replica-quiet', { pollIntervalMs, listen: false });
    const b = await replica('replica-b');
    await until('A to listen', () => a.backend.listening);
    const killed = await sql<{ ok: boolean }>(
      `SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = 'sluice-approvals-listen replica-a'`,
    );
    expect(killed).toEqual([{ ok: true }]);
    await until('A to notice', () => !a.backend.listening);

    for (const holder of [a, quiet]) {
      const ticket = await holder.approvals.request(input({ statementId: `st-${holder.id}` }));
      const started = performance.now();
      await b.approvals.approve(ticket.request.id, bob);
      await ticket.settled;
      const ms = performance.now() - started;
      // The poll interval plus a generous margin for a busy machine.
      expect(ms).toBeLessThan(pollIntervalMs + 9_500);
      expect(await holder.approvals.consume(ticket.request.id, DIGEST)).toBe(true);
    }
    // The LISTEN connection comes back by itself.
    await until('A to listen again', () => a.backend.listening);
    const rows = await sql(`SELECT pid FROM pg_stat_activity WHERE application_name = 'sluice-approvals-listen replica-a'`);
    expect(rows).toHaveLength(1);
  });
});

describe('the approvals tables', () => {
  it('drop decided requests and ended grants past the retention at open, and refuse a newer schema', async ({ skip }) => {
    if (!available) return skip('PostgreSQL is not reachable');
    const a = await replica('replica-a');
    const open = await a.approvals.request(input({ statementId: 'st-open' }));
    const rejected = await a.approvals.request(input({ statementId: 'st-rejected' }));
    await a.approvals.reject(rejected.request.id, bob);
    const revoked = await a.approvals.grant({ subject: 'alice', operations: ['write'], durationMs: 600_000 }, bob);
    await a.approvals.revokeGrant(revoked.id, bob);
    const kept = await a.approvals.grant({ subject: 'alice', operations: ['write'], durationMs: 3 * 86_400_000 }, bob);

    // Two days later, with a retention of one day.
    const later = await openPostgresApprovalBackend({
      url: URL,
      replicaId: 'replica-later',
      logger,
      schema: SCHEMA,
      retentionMs: 86_400_000,
      now: () => Date.now() + 2 * 86_400_000,
    });
    try {
      const { requests, grants } = await later.load();
      const ids = new Set(requests.map((r) => r.id));
      expect(ids.has(open.request.id)).toBe(true);
      expect(ids.has(rejected.request.id)).toBe(false);
      const grantIds = new Set(grants.map((g) => g.id));
      expect(grantIds.has(kept.id)).toBe(true);
      expect(grantIds.has(revoked.id)).toBe(false);
    } finally {
      await later.close();
    }

    await sql(`INSERT INTO "${SCHEMA}".approvals_schema_version (version, applied_at) VALUES (99, 0)`);
    try {
      await expect(openPostgresApprovalBackend({ url: URL, replicaId: 'replica-old', logger, schema: SCHEMA })).rejects.toThrow(
        /schema version 99, newer than this gateway knows/,
      );
    } finally {
      await sql(`DELETE FROM "${SCHEMA}".approvals_schema_version WHERE version = 99`);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// A store that goes away

/** Runs pg_ctl on a throwaway server (as its OS user when we are root), to stop and start it in place. */
async function pgCtl(server: TempPostgres, action: 'stop' | 'start'): Promise<void> {
  const bindir = [process.env['SLUICE_PG_BINDIR'], ...listPgBinDirs()].find((d) => d !== undefined && existsSync(join(d, 'pg_ctl')));
  if (bindir === undefined) throw new Error('pg_ctl not found (set SLUICE_PG_BINDIR)');
  const args =
    action === 'stop'
      ? ['-D', server.dataDir, '-m', 'fast', '-w', '-t', '60', 'stop']
      : ['-D', server.dataDir, '-l', join(server.socketDir, 'postgres.log'), '-w', '-t', '60', '-o', `-p ${server.port}`, 'start'];
  const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const [file, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', join(bindir, 'pg_ctl'), ...args]] : [join(bindir, 'pg_ctl'), args];
  await new Promise<void>((resolve, reject) => {
    execFile(file, argv, (err, _stdout, stderr) => (err ? reject(new Error(`pg_ctl ${action} failed: ${stderr || err.message}`)) : resolve()));
  });
}

function listPgBinDirs(): string[] {
  try {
    return readdirSync('/usr/lib/postgresql')
      .filter((v) => /^\d+$/.test(v))
      .sort((x, y) => Number(y) - Number(x))
      .map((v) => `/usr/lib/postgresql/${v}/bin`);
  } catch {
    return [];
  }
}

describe('approvals when the shared store is down', () => {
  it('refuses requests as unavailable within a bound, and works again once the store is back', async () => {
    const server = await startTempPostgres();
    cleanups.push(() => server.stop());
    const url = server.url();
    const a = await replica('replica-a', { url });
    const b = await replica('replica-b', { url });
    const before = await a.approvals.request(input({ statementId: 'st-before' }));

    await pgCtl(server, 'stop');
    const started = performance.now();
    const err = await refusal(a.approvals.request(input({ statementId: 'st-down' })));
    expect(err.code).toBe('unavailable');
    expect(err.message).toContain(`approvals store at postgresql://postgres:***@127.0.0.1:${server.port}/postgres`);
    expect(err.message).not.toContain(server.superuserPassword);
    expect(performance.now() - started).toBeLessThan(15_000);
    // Decisions are refused too, and nothing is released.
    expect((await refusal(b.approvals.approve(before.request.id, bob))).code).toBe('unavailable');
    expect(await a.approvals.consume(before.request.id, DIGEST)).toBe(false);
    expect(a.approvals.list({ status: 'pending' }).map((r) => r.id)).toEqual([before.request.id]);

    await pgCtl(server, 'start');
    const after = await until('a request to be taken again', () =>
      a.approvals.request(input({ statementId: 'st-after' })).catch(() => undefined),
    );
    await b.approvals.approve(before.request.id, bob);
    await expect(before.settled).resolves.toMatchObject({ status: 'approved' });
    await b.approvals.approve(after.request.id, dana);
    await expect(after.settled).resolves.toMatchObject({ status: 'approved' });
    expect(await a.approvals.consume(after.request.id, DIGEST)).toBe(true);
  });
});
