/**
 * The inline-approvals service: owns review requests and grants, keeps them durable (see
 * `store.ts`), records every step in the audit trail (events of type `approval`) and tells
 * approvers (see `notifier.ts`).
 *
 * Ordering rules that the gateway's guarantees rest on:
 *
 * - A request exists for approvers only once it is stored (fsynced) and its `requested` audit
 *   record is durable. If either fails, `request` rejects with `ApprovalError('unavailable')`
 *   and the request is left `abandoned`, never `pending`.
 * - A decision is stored and durably audited before the waiting ticket settles, so a statement
 *   is never released on an approval the trail does not show. If the audit record cannot be
 *   written the request is abandoned instead and the approver gets `unavailable`.
 * - An approval releases one statement once: `consume` checks the digest of the exact statement
 *   (and parameters) and moves the request to `executed`; any other use is refused and audited
 *   as `refused-reuse`.
 * - After a restart nothing that was waiting can still be released: every `pending` or
 *   `approved` request becomes `abandoned` when the service opens.
 *
 * Operations on one request (or one grant) are serialized; different requests proceed
 * concurrently.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { ApprovalEvent, AuditActor, AuditStore } from '../audit/types.js';
import type { Identity } from '../identity/types.js';
import { OperationClass } from '../analysis/types.js';
import { createNotifiers, type NotificationEvent, type NotifierConfig, type Notifiers } from './notifier.js';
import { ApprovalStore, type StoreEntry } from './store.js';
import {
  ApprovalError,
  type ApprovalFilter,
  type ApprovalRequest,
  type ApprovalStatus,
  type Approvals,
  type ApproverSpec,
  type DecideOptions,
  type Grant,
  type GrantInput,
  type ReviewInput,
  type ReviewResolution,
  type ReviewTicket,
} from './types.js';

export interface ApprovalsOptions {
  /** State directory (created with mode 0700 when missing). One gateway process per directory. */
  readonly dir: string;
  /** Every step is an audit event (type 'approval'). */
  readonly audit: AuditStore;
  readonly logger: Logger;
  /** Who may create and revoke grants (requests carry their own spec). */
  readonly approvers: ApproverSpec;
  readonly notifiers?: readonly NotifierConfig[];
  /** For tests. */
  readonly now?: () => number;
  /**
   * Decided requests and ended grants older than this are dropped from the state directory
   * when it is compacted on open (the audit trail keeps them). Default 30 days.
   */
  readonly retentionMs?: number;
  /** How long `close()` waits for notifications still being sent. Default 2,000 ms. */
  readonly notifyGraceMs?: number;
  /** Delay before a notification's first retry (the second waits 4 times as long). Default 500 ms. */
  readonly notifyRetryDelayMs?: number;
}

/** The longest grant: 30 days. */
export const MAX_GRANT_MS = 30 * 24 * 60 * 60 * 1000;
/** The longest review timeout (the largest delay a timer takes, about 24.8 days). */
export const MAX_REVIEW_TIMEOUT_MS = 2 ** 31 - 1;
/** Why requests still waiting when the service opens are abandoned. */
export const RESTART_REASON = 'the gateway restarted while the statement waited';
/** Why requests still waiting when the service closes are abandoned. */
export const SHUTDOWN_REASON = 'the gateway shut down while the statement waited';
/**
 * `dialect` of audit events about a grant that was not created from a request (a grant is not
 * tied to one protocol).
 */
export const GRANT_EVENT_DIALECT = 'sluice';

/** Lower-case base32 without i, l, o and u: nothing to confuse when typed or read aloud. */
const ID_ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';
const ID_LENGTH = 6;

const OPERATION_CLASSES: ReadonlySet<string> = new Set(Object.values(OperationClass));

interface Waiter {
  readonly resolve: (resolution: ReviewResolution) => void;
  readonly timer: NodeJS.Timeout;
}

interface IndexedGrant {
  readonly grant: Grant;
  /** Epoch ms of expiresAt. */
  readonly until: number;
}

/** Opens the approvals service on its state directory (see the module comment). */
export async function openApprovals(options: ApprovalsOptions): Promise<Approvals> {
  validateSpec(options.approvers, 'options.approvers');
  const now = options.now ?? Date.now;
  const notifiers = createNotifiers(options.notifiers ?? [], {
    logger: options.logger,
    now,
    ...(options.notifyRetryDelayMs !== undefined ? { retryDelayMs: options.notifyRetryDelayMs } : {}),
  });
  const store = await ApprovalStore.open({
    dir: options.dir,
    logger: options.logger,
    now,
    ...(options.retentionMs !== undefined ? { retentionMs: options.retentionMs } : {}),
  });
  const service = new ApprovalsService(options, store, notifiers, now);
  try {
    await service.recover();
  } catch (err) {
    notifiers.close();
    await store.close();
    throw err;
  }
  return service;
}

class ApprovalsService implements Approvals {
  readonly #store: ApprovalStore;
  readonly #audit: AuditStore;
  readonly #logger: Logger;
  readonly #approvers: ApproverSpec;
  readonly #notifiers: Notifiers;
  readonly #now: () => number;
  readonly #notifyGraceMs: number;

  readonly #requests = new Map<string, ApprovalRequest>();
  readonly #grants = new Map<string, Grant>();
  /** Unrevoked grants by subject, for `activeGrants`; expired ones are pruned as they are met. */
  readonly #grantsBySubject = new Map<string, IndexedGrant[]>();
  /** Tickets still waiting, by request id. */
  readonly #waiting = new Map<string, Waiter>();
  /** Ids handed out but not yet stored. */
  readonly #reserved = new Set<string>();
  readonly #locks = new Map<string, Promise<void>>();
  readonly #inflight = new Set<Promise<unknown>>();
  #closed = false;
  #closing: Promise<void> | null = null;

  constructor(options: ApprovalsOptions, store: ApprovalStore, notifiers: Notifiers, now: () => number) {
    this.#store = store;
    this.#audit = options.audit;
    this.#logger = options.logger;
    this.#approvers = { groups: [...options.approvers.groups], subjects: [...options.approvers.subjects] };
    this.#notifiers = notifiers;
    this.#now = now;
    this.#notifyGraceMs = options.notifyGraceMs ?? 2_000;
    for (const r of store.requests.values()) this.#requests.set(r.id, Object.freeze(r));
    for (const g of store.grants.values()) this.#setGrant(Object.freeze(g));
  }

  /**
   * Abandons what was waiting when the gateway stopped: its session is gone. The audit records
   * are written first (a crash in between repeats them rather than losing them).
   */
  async recover(): Promise<void> {
    const stale = [...this.#requests.values()].filter((r) => r.status === 'pending' || r.status === 'approved');
    if (stale.length === 0) return;
    const time = this.#iso();
    const ended = stale.map((r) => this.#ended(r, 'abandoned', RESTART_REASON, time));
    try {
      await Promise.all(ended.map((r) => this.#audit.append(this.#event(r, 'abandoned', { reason: RESTART_REASON }), { durable: true })));
    } catch (err) {
      throw new Error(`the approvals service cannot record abandoned requests in the audit trail: ${(err as Error).message}`, {
        cause: err,
      });
    }
    await this.#store.put(...ended.map((record): StoreEntry => ({ kind: 'request', record })));
    for (const r of ended) {
      this.#requests.set(r.id, r);
      this.#notify('approval.abandoned', r);
    }
    this.#logger.warn({ requests: ended.map((r) => r.id) }, `approvals: ${ended.length} request(s) abandoned: ${RESTART_REASON}`);
  }

  // ---------------------------------------------------------------------------------------------
  // Requests

  request(input: ReviewInput): Promise<ReviewTicket> {
    return this.#track(this.#request(input));
  }

  async #request(input: ReviewInput): Promise<ReviewTicket> {
    if (this.#closed) throw new ApprovalError('unavailable', 'the approvals service is closed');
    validateReviewInput(input);
    const id = this.#newId('r-', (candidate) => this.#requests.has(candidate));
    this.#reserved.add(id);
    try {
      const createdAt = this.#now();
      const request: ApprovalRequest = Object.freeze({
        id,
        status: 'pending',
        createdAt: new Date(createdAt).toISOString(),
        expiresAt: new Date(createdAt + input.timeoutMs).toISOString(),
        dialect: input.dialect,
        sessionId: input.sessionId,
        statementId: input.statementId,
        requester: actorOf(input.requester),
        target: input.target,
        statement: input.statement,
        normalized: input.normalized,
        fingerprint: input.fingerprint,
        digest: input.digest,
        ...(input.parameters !== undefined ? { parameters: [...input.parameters] } : {}),
        operations: [...input.operations],
        objects: input.objects.map((o) => ({ ...o })),
        hazards: [...input.hazards],
        rule: input.rule,
        why: input.why,
        ...(input.reason !== undefined ? { reason: input.reason } : {}),
        approvers: { groups: [...input.approvers.groups], subjects: [...input.approvers.subjects] },
      });

      try {
        await this.#store.put({ kind: 'request', record: request });
      } catch (err) {
        this.#logger.error({ err, requestId: id }, 'approvals: a review request could not be stored');
        throw new ApprovalError('unavailable', `the review request could not be stored: ${(err as Error).message}`);
      }
      const reason = input.reason !== undefined ? `${input.why}; requester's reason: ${input.reason}` : input.why;
      try {
        await this.#audit.append(
          this.#event(request, 'requested', { text: input.normalized, statement: input.statement, reason }),
          { durable: true },
        );
      } catch (err) {
        this.#logger.error({ err, requestId: id }, 'approvals: a review request could not be audited; it is abandoned');
        const dropped = this.#ended(request, 'abandoned', 'the request could not be recorded in the audit trail', this.#iso());
        this.#requests.set(id, dropped);
        await this.#store.put({ kind: 'request', record: dropped }).catch((e: unknown) => {
          this.#logger.error({ err: e, requestId: id }, 'approvals: the abandoned request could not be stored');
        });
        throw new ApprovalError('unavailable', `the review request could not be recorded in the audit trail: ${(err as Error).message}`);
      }

      this.#requests.set(id, request);
      let resolve!: (resolution: ReviewResolution) => void;
      const settled = new Promise<ReviewResolution>((res) => {
        resolve = res;
      });
      const timer = setTimeout(() => {
        this.#expire(id, input.timeoutMs).catch((err: unknown) => {
          this.#logger.error({ err, requestId: id }, 'approvals: expiring a request failed');
        });
      }, input.timeoutMs);
      timer.unref();
      this.#waiting.set(id, { resolve, timer });
      this.#logger.info(
        { requestId: id, requester: request.requester.subject, target: request.target, rule: request.rule },
        'approvals: review requested',
      );
      this.#notify('approval.requested', request);
      if (this.#closed) {
        // close() ran while this request was being stored: it cannot wait any more.
        void this.#endWithoutDecision(id, 'abandoned', SHUTDOWN_REASON);
      }
      return { request, settled };
    } finally {
      this.#reserved.delete(id);
    }
  }

  list(filter?: ApprovalFilter): readonly ApprovalRequest[] {
    const statuses =
      filter?.status === undefined ? null : new Set<ApprovalStatus>(typeof filter.status === 'string' ? [filter.status] : filter.status);
    const out: ApprovalRequest[] = [];
    for (const r of this.#requests.values()) {
      if (statuses && !statuses.has(r.status)) continue;
      if (filter?.target !== undefined && r.target !== filter.target) continue;
      out.push(r);
    }
    // Newest first; the map keeps creation order, so a stable sort keeps ties newest first too.
    out.reverse();
    out.sort((a, b) => (a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : 0));
    const limit = filter?.limit;
    return limit !== undefined && limit >= 0 ? out.slice(0, limit) : out;
  }

  get(id: string): ApprovalRequest | undefined {
    return this.#requests.get(id);
  }

  approve(id: string, approver: Identity, options?: DecideOptions): Promise<ApprovalRequest> {
    return this.#track(this.#exclusive(id, () => this.#decide(id, approver, options ?? {}, 'approved')));
  }

  reject(id: string, approver: Identity, options?: DecideOptions): Promise<ApprovalRequest> {
    if (options?.grantForMs !== undefined) {
      return Promise.reject(new ApprovalError('invalid', 'a grant can only be created together with an approval'));
    }
    return this.#track(this.#exclusive(id, () => this.#decide(id, approver, options ?? {}, 'rejected')));
  }

  async #decide(id: string, approver: Identity, options: DecideOptions, status: 'approved' | 'rejected'): Promise<ApprovalRequest> {
    if (this.#closed) throw new ApprovalError('unavailable', 'the approvals service is closed');
    const r = this.#requests.get(id);
    if (!r) throw new ApprovalError('not-found', `there is no review request ${id}`);
    if (r.status !== 'pending') throw new ApprovalError('not-pending', `request ${id} is not pending: it ${describeState(r)}`);
    if (approver.subject === r.requester.subject) {
      throw new ApprovalError('self-approval', `nobody approves their own request (${id} was made by ${approver.subject})`);
    }
    if (!mayApprove(r.approvers, approver)) {
      throw new ApprovalError('not-an-approver', `${approver.subject} may not decide request ${id}: ${describeSpec(r.approvers)}`);
    }
    if (options.reason !== undefined && typeof options.reason !== 'string') throw new ApprovalError('invalid', 'reason must be text');
    const time = this.#now();
    const iso = new Date(time).toISOString();
    let grant: Grant | undefined;
    if (options.grantForMs !== undefined) {
      validateDuration(options.grantForMs, 'grantForMs');
      if (!mayApprove(this.#approvers, approver)) {
        throw new ApprovalError(
          'not-an-approver',
          `${approver.subject} may approve request ${id} but may not create grants: ${describeSpec(this.#approvers)}`,
        );
      }
      const grantId = this.#newId('g-', (candidate) => this.#grants.has(candidate));
      this.#reserved.add(grantId);
      grant = Object.freeze({
        id: grantId,
        subject: r.requester.subject,
        targets: [r.target],
        operations: [...r.operations],
        objects: [...new Set(r.objects.map((o) => (o.schema !== undefined ? `${o.schema}.${o.name}` : `public.${o.name}`)))],
        guardrails: [...r.hazards],
        createdAt: iso,
        expiresAt: new Date(time + options.grantForMs).toISOString(),
        grantedBy: actorOf(approver),
        ...(options.reason !== undefined ? { reason: options.reason } : {}),
        requestId: id,
      });
    }
    const next = Object.freeze({
      ...r,
      status,
      decidedAt: iso,
      decidedBy: actorOf(approver),
      ...(options.reason !== undefined ? { decisionReason: options.reason } : {}),
      ...(grant ? { grantId: grant.id } : {}),
    });

    try {
      return await this.#commitDecision(r, next, grant, options);
    } finally {
      if (grant) this.#reserved.delete(grant.id);
    }
  }

  async #commitDecision(
    r: ApprovalRequest,
    next: ApprovalRequest & { readonly status: 'approved' | 'rejected' },
    grant: Grant | undefined,
    options: DecideOptions,
  ): Promise<ApprovalRequest> {
    const { id, status } = next;
    const entries: StoreEntry[] = [{ kind: 'request', record: next }];
    if (grant) entries.push({ kind: 'grant', record: grant });
    try {
      await this.#store.put(...entries);
    } catch (err) {
      this.#logger.error({ err, requestId: id }, `approvals: a decision could not be stored`);
      throw new ApprovalError('unavailable', `the decision could not be stored: ${(err as Error).message}`);
    }
    try {
      await this.#appendAudit(
        this.#event(next, status, {
          approver: next.decidedBy,
          ...(options.reason !== undefined ? { reason: options.reason } : {}),
          ...(grant ? { grantId: grant.id } : {}),
        }),
      );
      if (grant) await this.#appendAudit(this.#grantEvent(grant, 'grant-created', grant.grantedBy));
    } catch (err) {
      // Nothing may be released on a decision the trail does not show.
      const why = `the decision could not be recorded in the audit trail`;
      this.#logger.error({ err, requestId: id }, `approvals: ${why}; the request is abandoned`);
      const entriesBack: StoreEntry[] = [];
      if (grant) {
        const revoked: Grant = Object.freeze({ ...grant, revokedAt: this.#iso(), revokedBy: grant.grantedBy });
        this.#grants.set(revoked.id, revoked);
        entriesBack.push({ kind: 'grant', record: revoked });
      }
      await this.#finish(r, 'abandoned', why, entriesBack);
      throw new ApprovalError('unavailable', `${why}: ${(err as Error).message}`);
    }

    this.#requests.set(id, next);
    if (grant) this.#setGrant(grant);
    this.#settle(id, { status, request: next });
    this.#logger.info(
      { requestId: id, approver: next.decidedBy?.subject, requester: next.requester.subject, grantId: grant?.id },
      `approvals: request ${status}`,
    );
    this.#notify(status === 'approved' ? 'approval.approved' : 'approval.rejected', next);
    return next;
  }

  consume(id: string, digest: string): Promise<boolean> {
    return this.#track(this.#exclusive(id, () => this.#consume(id, digest)));
  }

  async #consume(id: string, digest: string): Promise<boolean> {
    const r = this.#requests.get(id);
    if (!r) {
      this.#logger.warn({ requestId: id }, 'approvals: a release was asked for an unknown request');
      return false;
    }
    if (r.status === 'approved' && typeof digest === 'string' && digest === r.digest && !this.#closed) {
      const next: ApprovalRequest = Object.freeze({ ...r, status: 'executed' });
      try {
        await this.#store.put({ kind: 'request', record: next });
      } catch (err) {
        this.#logger.error({ err, requestId: id }, 'approvals: a release could not be stored; the statement is not released');
        return false;
      }
      try {
        await this.#appendAudit(
          this.#event(next, 'executed', { text: next.normalized, ...(next.decidedBy ? { approver: next.decidedBy } : {}) }),
        );
      } catch (err) {
        const why = 'the release could not be recorded in the audit trail';
        this.#logger.error({ err, requestId: id }, `approvals: ${why}; the statement is not released`);
        await this.#finish(r, 'abandoned', why);
        return false;
      }
      this.#requests.set(id, next);
      return true;
    }
    let reason: string;
    if (this.#closed) reason = 'the approvals service is closed';
    else if (r.status === 'executed') reason = 'the approval was already used: the approved statement has run';
    else if (r.status === 'approved') reason = `the statement offered is not the one approved (approved digest ${r.digest})`;
    else reason = `the request is ${r.status}, not approved`;
    this.#logger.warn({ requestId: id, status: r.status }, `approvals: release refused: ${reason}`);
    try {
      await this.#appendAudit(
        this.#event(r, 'refused-reuse', { digest: String(digest), reason, ...(r.decidedBy ? { approver: r.decidedBy } : {}) }),
      );
    } catch (err) {
      this.#logger.error({ err, requestId: id }, 'approvals: a refused release could not be audited');
    }
    return false;
  }

  abandon(id: string, why: string): Promise<void> {
    return this.#track(this.#endWithoutDecision(id, 'abandoned', why));
  }

  async #expire(id: string, timeoutMs: number): Promise<void> {
    await this.#endWithoutDecision(id, 'expired', `nobody decided within ${formatDuration(timeoutMs)}`);
  }

  /** Ends a pending (or, for abandonment, approved) request; best effort, never throws. */
  async #endWithoutDecision(id: string, status: 'expired' | 'abandoned', why: string): Promise<void> {
    await this.#exclusive(id, async () => {
      const r = this.#requests.get(id);
      if (!r) return;
      if (r.status !== 'pending' && !(status === 'abandoned' && r.status === 'approved')) return;
      await this.#finish(r, status, why);
    });
  }

  /**
   * Moves a request to expired or abandoned: in memory at once (nothing can be released from it
   * any more), then stored and audited as far as possible, then its ticket settles. Never throws.
   */
  async #finish(r: ApprovalRequest, status: 'expired' | 'abandoned', why: string, extra: StoreEntry[] = []): Promise<void> {
    const next = this.#ended(r, status, why, this.#iso());
    this.#requests.set(r.id, next);
    try {
      await this.#store.put({ kind: 'request', record: next }, ...extra);
    } catch (err) {
      this.#logger.error({ err, requestId: r.id }, `approvals: the ${status} request could not be stored`);
    }
    try {
      await this.#appendAudit(this.#event(next, status, { reason: why }));
    } catch (err) {
      this.#logger.error({ err, requestId: r.id }, `approvals: the ${status} request could not be audited`);
    }
    this.#settle(r.id, { status, request: next });
    this.#logger.info({ requestId: r.id, reason: why }, `approvals: request ${status}`);
    this.#notify(status === 'expired' ? 'approval.expired' : 'approval.abandoned', next);
  }

  #ended(r: ApprovalRequest, status: 'expired' | 'abandoned', why: string, time: string): ApprovalRequest {
    return Object.freeze({ ...r, status, decidedAt: time, decisionReason: why });
  }

  #settle(id: string, resolution: ReviewResolution): void {
    const waiter = this.#waiting.get(id);
    if (!waiter) return;
    this.#waiting.delete(id);
    clearTimeout(waiter.timer);
    waiter.resolve(resolution);
  }

  // ---------------------------------------------------------------------------------------------
  // Grants

  grant(input: GrantInput, grantor: Identity): Promise<Grant> {
    return this.#track(this.#grant(input, grantor));
  }

  async #grant(input: GrantInput, grantor: Identity): Promise<Grant> {
    if (this.#closed) throw new ApprovalError('unavailable', 'the approvals service is closed');
    validateGrantInput(input);
    if (input.subject === grantor.subject) {
      throw new ApprovalError('self-approval', `nobody grants themselves: ${grantor.subject} cannot grant to ${input.subject}`);
    }
    if (!mayApprove(this.#approvers, grantor)) {
      throw new ApprovalError('not-an-approver', `${grantor.subject} may not create grants: ${describeSpec(this.#approvers)}`);
    }
    const time = this.#now();
    const grant: Grant = Object.freeze({
      id: this.#newId('g-', (candidate) => this.#grants.has(candidate)),
      subject: input.subject,
      targets: [...new Set(input.targets ?? [])],
      operations: [...new Set(input.operations)],
      objects: [...new Set(input.objects ?? [])],
      guardrails: [...new Set(input.guardrails ?? [])],
      createdAt: new Date(time).toISOString(),
      expiresAt: new Date(time + input.durationMs).toISOString(),
      grantedBy: actorOf(grantor),
      ...(input.reason !== undefined ? { reason: input.reason } : {}),
    });
    this.#reserved.add(grant.id);
    try {
      try {
        await this.#store.put({ kind: 'grant', record: grant });
      } catch (err) {
        this.#logger.error({ err, grantId: grant.id }, 'approvals: a grant could not be stored');
        throw new ApprovalError('unavailable', `the grant could not be stored: ${(err as Error).message}`);
      }
      try {
        await this.#appendAudit(this.#grantEvent(grant, 'grant-created', grant.grantedBy));
      } catch (err) {
        this.#logger.error({ err, grantId: grant.id }, 'approvals: a grant could not be audited; it is revoked');
        const revoked: Grant = Object.freeze({ ...grant, revokedAt: this.#iso(), revokedBy: grant.grantedBy });
        this.#grants.set(grant.id, revoked);
        await this.#store.put({ kind: 'grant', record: revoked }).catch(() => undefined);
        throw new ApprovalError('unavailable', `the grant could not be recorded in the audit trail: ${(err as Error).message}`);
      }
    } finally {
      this.#reserved.delete(grant.id);
    }
    this.#setGrant(grant);
    this.#logger.info(
      { grantId: grant.id, subject: grant.subject, grantor: grantor.subject, expiresAt: grant.expiresAt },
      'approvals: grant created',
    );
    return grant;
  }

  revokeGrant(id: string, by: Identity): Promise<Grant> {
    return this.#track(this.#exclusive(`grant:${id}`, () => this.#revoke(id, by)));
  }

  async #revoke(id: string, by: Identity): Promise<Grant> {
    if (this.#closed) throw new ApprovalError('unavailable', 'the approvals service is closed');
    if (!mayApprove(this.#approvers, by)) {
      throw new ApprovalError('not-an-approver', `${by.subject} may not revoke grants: ${describeSpec(this.#approvers)}`);
    }
    const g = this.#grants.get(id);
    if (!g) throw new ApprovalError('not-found', `there is no grant ${id}`);
    if (g.revokedAt !== undefined) {
      throw new ApprovalError('not-pending', `grant ${id} was already revoked by ${g.revokedBy?.subject ?? 'someone'} at ${g.revokedAt}`);
    }
    if (Date.parse(g.expiresAt) <= this.#now()) throw new ApprovalError('not-pending', `grant ${id} already expired at ${g.expiresAt}`);
    const revoked: Grant = Object.freeze({ ...g, revokedAt: this.#iso(), revokedBy: actorOf(by) });
    try {
      await this.#store.put({ kind: 'grant', record: revoked });
    } catch (err) {
      this.#logger.error({ err, grantId: id }, 'approvals: a revocation could not be stored');
      throw new ApprovalError('unavailable', `the revocation could not be stored: ${(err as Error).message}`);
    }
    // Stored: the grant stops working now, whatever happens to the audit record.
    this.#setGrant(revoked);
    try {
      await this.#appendAudit(this.#grantEvent(revoked, 'grant-revoked', actorOf(by)));
    } catch (err) {
      this.#logger.error({ err, grantId: id }, 'approvals: a revocation could not be audited');
      throw new ApprovalError(
        'unavailable',
        `grant ${id} is revoked, but the revocation could not be recorded in the audit trail: ${(err as Error).message}`,
      );
    }
    this.#logger.info({ grantId: id, by: by.subject }, 'approvals: grant revoked');
    return revoked;
  }

  activeGrants(subject: string, target: string): readonly Grant[] {
    const list = this.#grantsBySubject.get(subject);
    if (list === undefined) return [];
    const now = this.#now();
    let out: Grant[] | undefined;
    let expired = false;
    for (const { grant, until } of list) {
      if (until <= now) {
        expired = true;
        continue;
      }
      if (grant.targets.length > 0 && !grant.targets.includes(target)) continue;
      (out ??= []).push(grant);
    }
    if (expired) {
      const kept = list.filter((e) => e.until > now);
      if (kept.length > 0) this.#grantsBySubject.set(subject, kept);
      else this.#grantsBySubject.delete(subject);
    }
    return out ?? [];
  }

  listGrants(options?: { readonly includeExpired?: boolean }): readonly Grant[] {
    const now = this.#now();
    const out: Grant[] = [];
    for (const g of this.#grants.values()) {
      if (!options?.includeExpired && (g.revokedAt !== undefined || Date.parse(g.expiresAt) <= now)) continue;
      out.push(g);
    }
    out.reverse();
    out.sort((a, b) => (a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : 0));
    return out;
  }

  /** Records a grant and keeps the by-subject index (unrevoked grants only) in step. */
  #setGrant(grant: Grant): void {
    this.#grants.set(grant.id, grant);
    const list = (this.#grantsBySubject.get(grant.subject) ?? []).filter((e) => e.grant.id !== grant.id);
    if (grant.revokedAt === undefined) list.push({ grant, until: Date.parse(grant.expiresAt) });
    if (list.length > 0) this.#grantsBySubject.set(grant.subject, list);
    else this.#grantsBySubject.delete(grant.subject);
  }

  // ---------------------------------------------------------------------------------------------
  // Lifecycle

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#closed = true;
    for (const waiter of this.#waiting.values()) clearTimeout(waiter.timer);
    // Let requests being created or decided finish (they see `closed` and end what they started).
    while (this.#inflight.size > 0) await Promise.allSettled([...this.#inflight]);
    const open = [...this.#requests.values()].filter((r) => r.status === 'pending' || r.status === 'approved');
    await Promise.all(open.map((r) => this.#endWithoutDecision(r.id, 'abandoned', SHUTDOWN_REASON)));
    while (this.#locks.size > 0) await Promise.all([...this.#locks.values()]);
    // Give the last notifications a moment to go out.
    let graceTimer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.#notifiers.idle(),
      new Promise<void>((resolve) => {
        graceTimer = setTimeout(resolve, this.#notifyGraceMs);
        graceTimer.unref();
      }),
    ]);
    clearTimeout(graceTimer);
    this.#notifiers.close();
    await this.#store.close();
  }

  // ---------------------------------------------------------------------------------------------
  // Helpers

  /** Runs `fn` after every earlier operation on the same key has ended. */
  async #exclusive<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.#locks.get(key) ?? Promise.resolve();
    const run = previous.then(fn);
    const tail = run.then(
      () => undefined,
      () => undefined,
    );
    this.#locks.set(key, tail);
    try {
      return await run;
    } finally {
      if (this.#locks.get(key) === tail) this.#locks.delete(key);
    }
  }

  #track<T>(p: Promise<T>): Promise<T> {
    this.#inflight.add(p);
    const done = (): void => {
      this.#inflight.delete(p);
    };
    p.then(done, done);
    return p;
  }

  /** Every approval event is made durable before the step it records takes effect. */
  async #appendAudit(event: ApprovalEvent): Promise<void> {
    await this.#audit.append(event, { durable: true });
  }

  #event(r: ApprovalRequest, action: ApprovalEvent['action'], extra: Partial<ApprovalEvent>): ApprovalEvent {
    return {
      type: 'approval',
      time: this.#iso(),
      dialect: r.dialect,
      sessionId: r.sessionId,
      action,
      requestId: r.id,
      actor: r.requester,
      target: r.target,
      statementId: r.statementId,
      fingerprint: r.fingerprint,
      digest: r.digest,
      rule: r.rule,
      ...(r.grantId !== undefined ? { grantId: r.grantId } : {}),
      ...extra,
    };
  }

  #grantEvent(g: Grant, action: 'grant-created' | 'grant-revoked', by: AuditActor): ApprovalEvent {
    const from = g.requestId !== undefined ? this.#requests.get(g.requestId) : undefined;
    return {
      type: 'approval',
      time: this.#iso(),
      dialect: from?.dialect ?? GRANT_EVENT_DIALECT,
      action,
      grantId: g.id,
      ...(g.requestId !== undefined ? { requestId: g.requestId } : {}),
      // Only the subject of a grant's identity is known unless it was granted from a request.
      actor: from?.requester ?? { subject: g.subject, kind: 'human', groups: [], method: 'token' },
      ...(g.targets.length === 1 ? { target: g.targets[0] } : {}),
      approver: by,
      operations: g.operations,
      expiresAt: g.expiresAt,
      reason: describeGrant(g),
    };
  }

  #newId(prefix: string, taken: (id: string) => boolean): string {
    for (let attempt = 0; attempt < 100; attempt++) {
      const bytes = randomBytes(ID_LENGTH);
      let id = prefix;
      for (const b of bytes) id += ID_ALPHABET[b & 31];
      if (!taken(id) && !this.#reserved.has(id)) return id;
    }
    throw new ApprovalError('unavailable', 'no free id could be found');
  }

  #notify(event: NotificationEvent, request: ApprovalRequest): void {
    try {
      this.#notifiers.notify(event, request);
    } catch (err) {
      this.#logger.error({ err, requestId: request.id }, 'approvals: notifying failed');
    }
  }

  #iso(): string {
    return new Date(this.#now()).toISOString();
  }
}

function actorOf(identity: Identity): AuditActor {
  return { subject: identity.subject, kind: identity.kind, groups: [...identity.groups], method: identity.method };
}

/** True when the identity is one of the approvers the spec names (by subject or group). */
export function mayApprove(spec: ApproverSpec, identity: Identity): boolean {
  return spec.subjects.includes(identity.subject) || identity.groups.some((g) => spec.groups.includes(g));
}

function describeSpec(spec: ApproverSpec): string {
  const parts: string[] = [];
  if (spec.groups.length > 0) parts.push(`groups ${spec.groups.join(', ')}`);
  if (spec.subjects.length > 0) parts.push(`subjects ${spec.subjects.join(', ')}`);
  return parts.length > 0 ? `approvers are ${parts.join('; ')}` : 'no approver is configured';
}

function describeState(r: ApprovalRequest): string {
  const by = r.decidedBy ? ` by ${r.decidedBy.subject}` : '';
  const at = r.decidedAt ?? '(unknown time)';
  switch (r.status) {
    case 'approved':
      return `was already approved${by} at ${at}`;
    case 'executed':
      return `was approved${by} at ${at} and the statement has run`;
    case 'rejected':
      return `was already rejected${by} at ${at}`;
    case 'expired':
      return `expired at ${at}: nobody decided in time`;
    case 'abandoned':
      return `was abandoned at ${at}${r.decisionReason ? `: ${r.decisionReason}` : ''}`;
    case 'pending':
      return 'is pending';
  }
}

function describeGrant(g: Grant): string {
  const parts = [`${g.operations.join(', ')}`];
  parts.push(g.targets.length > 0 ? `on ${g.targets.join(', ')}` : 'on every target');
  if (g.objects.length > 0) parts.push(`objects ${g.objects.join(', ')}`);
  if (g.guardrails.length > 0) parts.push(`lifting ${g.guardrails.join(', ')}`);
  const what = parts.join(' ');
  return g.reason !== undefined ? `${what}; ${g.reason}` : what;
}

function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  if (ms < 120_000) return `${Math.round(ms / 1000)} s`;
  if (ms < 7_200_000) return `${Math.round(ms / 60_000)} min`;
  return `${Math.round(ms / 3_600_000)} h`;
}

function isStringArray(v: unknown): v is readonly string[] {
  return Array.isArray(v) && v.every((x) => typeof x === 'string');
}

function validateSpec(spec: ApproverSpec, name: string): void {
  if (typeof spec !== 'object' || spec === null || !isStringArray(spec.groups) || !isStringArray(spec.subjects)) {
    throw new ApprovalError('invalid', `${name} must have groups and subjects (lists of names)`);
  }
}

function validateDuration(ms: number, name: string): void {
  if (typeof ms !== 'number' || !Number.isFinite(ms) || ms <= 0 || ms > MAX_GRANT_MS) {
    throw new ApprovalError('invalid', `${name} must be a positive number of ms of at most 30 days, got ${String(ms)}`);
  }
}

function validateOperations(ops: unknown, name: string): void {
  if (!isStringArray(ops)) throw new ApprovalError('invalid', `${name} must be a list of operation classes`);
  for (const op of ops) {
    if (!OPERATION_CLASSES.has(op)) throw new ApprovalError('invalid', `${name}: unknown operation class ${JSON.stringify(op)}`);
  }
}

function validateReviewInput(input: ReviewInput): void {
  for (const key of ['dialect', 'sessionId', 'statementId', 'target', 'statement', 'normalized', 'fingerprint', 'digest', 'rule', 'why'] as const) {
    if (typeof input[key] !== 'string') throw new ApprovalError('invalid', `a review request needs ${key}`);
  }
  if (input.statement === '' || input.digest === '') throw new ApprovalError('invalid', 'a review request needs a statement and its digest');
  if (typeof input.requester?.subject !== 'string' || input.requester.subject === '' || !isStringArray(input.requester.groups)) {
    throw new ApprovalError('invalid', 'a review request needs a requester');
  }
  if (
    typeof input.timeoutMs !== 'number' ||
    !Number.isFinite(input.timeoutMs) ||
    input.timeoutMs <= 0 ||
    input.timeoutMs > MAX_REVIEW_TIMEOUT_MS
  ) {
    throw new ApprovalError('invalid', `timeoutMs must be a positive number of ms of at most ${MAX_REVIEW_TIMEOUT_MS}, got ${String(input.timeoutMs)}`);
  }
  validateSpec(input.approvers, 'approvers');
  if (input.approvers.groups.length === 0 && input.approvers.subjects.length === 0) {
    throw new ApprovalError('invalid', 'nobody may approve this request: its approvers name no group and no subject');
  }
  validateOperations(input.operations, 'operations');
  if (!Array.isArray(input.objects) || !isStringArray(input.hazards)) throw new ApprovalError('invalid', 'objects and hazards must be lists');
  if (input.parameters !== undefined && !(Array.isArray(input.parameters) && input.parameters.every((p) => p === null || typeof p === 'string'))) {
    throw new ApprovalError('invalid', 'parameters must be a list of text values or nulls');
  }
}

function validateGrantInput(input: GrantInput): void {
  if (typeof input.subject !== 'string' || input.subject === '') throw new ApprovalError('invalid', 'a grant needs a subject');
  validateDuration(input.durationMs, 'durationMs');
  validateOperations(input.operations, 'operations');
  if (input.operations.length === 0) throw new ApprovalError('invalid', 'a grant must cover at least one operation class');
  for (const key of ['targets', 'objects', 'guardrails'] as const) {
    if (input[key] !== undefined && !isStringArray(input[key])) throw new ApprovalError('invalid', `${key} must be a list of names`);
  }
  if (input.reason !== undefined && typeof input.reason !== 'string') throw new ApprovalError('invalid', 'reason must be text');
}
