/**
 * The inline-approvals service: owns review requests and grants, keeps them durable through a
 * backend (see `backend.ts`: the journal of `store.ts`, or a store shared by several gateway
 * replicas), records every step in the audit trail (events of type `approval`) and tells
 * approvers (see `notifier.ts`).
 *
 * Ordering rules that the gateway's guarantees rest on:
 *
 * - A request exists for approvers only once it is stored and its `requested` audit record is
 *   durable (the record is written inside the store's write, before it takes effect). If either
 *   fails, `request` rejects with `ApprovalError('unavailable')` and the request is left
 *   `abandoned` (or not stored at all), never `pending`.
 * - A decision is durably audited before it is stored, and stored before the waiting ticket
 *   settles, so a statement is never released on an approval the trail does not show, on this
 *   replica or another. If the audit record cannot be written the request is abandoned instead
 *   and the approver gets `unavailable`.
 * - An approval releases one statement once: `consume` checks the digest of the exact statement
 *   (and parameters) and moves the request to `executed`; any other use is refused and audited
 *   as `refused-reuse`.
 * - After a restart nothing that was waiting can still be released: every `pending` or
 *   `approved` request this replica owns becomes `abandoned` when the service opens.
 *
 * Several replicas on one shared store: every status change is a conditional transition in the
 * store, so exactly one replica decides, releases, expires or abandons a request, and only that
 * one audits it. Changes made elsewhere reach this replica's mirror through the backend's
 * subscription; a ticket this replica waits on settles when its request is decided elsewhere
 * (that replica stored and audited the decision). A request belongs to the replica that created
 * it (`owner`): its timer expires it, its restart abandons it. Requests of a replica that never
 * came back are expired by a periodic sweep on every replica once their timeout passed by more
 * than a grace.
 *
 * Operations on one request (or one grant) are serialized; different requests proceed
 * concurrently.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { ApprovalEvent, AuditActor, AuditStore } from '../audit/types.js';
import type { Identity } from '../identity/types.js';
import { OperationClass } from '../analysis/types.js';
import { openJournalBackend, type ApprovalBackend } from './backend.js';
import { createNotifiers, type NotificationEvent, type NotifierConfig, type Notifiers } from './notifier.js';
import type { StoreEntry } from './store.js';
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
  /**
   * State directory of the journal (created with mode 0700 when missing). One gateway process
   * per directory. Needed unless `backend` is given.
   */
  readonly dir?: string;
  /**
   * Where requests and grants are kept instead of the journal in `dir`, e.g. a store shared by
   * several replicas. The service owns it from then on: `close()` closes it.
   */
  readonly backend?: ApprovalBackend;
  /** This gateway replica's name, recorded as the `owner` of the requests it creates. Default `local`. */
  readonly replicaId?: string;
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
  /**
   * On a shared backend: a pending or approved request whose timeout passed more than this long
   * ago is expired by whichever replica sweeps first (its owner is gone). Default 30,000 ms.
   */
  readonly sweepGraceMs?: number;
  /** On a shared backend: how often the sweep runs. Default 10,000 ms. */
  readonly sweepIntervalMs?: number;
}

/** The longest grant: 30 days. */
export const MAX_GRANT_MS = 30 * 24 * 60 * 60 * 1000;
/** The longest review timeout (the largest delay a timer takes, about 24.8 days). */
export const MAX_REVIEW_TIMEOUT_MS = 2 ** 31 - 1;
/** Why requests still waiting when the service opens are abandoned. */
export const RESTART_REASON = 'the gateway restarted while the statement waited';
/** Why requests still waiting when the service closes are abandoned. */
export const SHUTDOWN_REASON = 'the gateway shut down while the statement waited';
/** Why the sweep expires a request its owner did not end. */
export const SWEEP_REASON = 'nobody decided in time, and the gateway holding the statement did not end the request (it stopped or lost the store)';
/** The replica id when none is configured. */
export const DEFAULT_REPLICA_ID = 'local';
/**
 * `dialect` of audit events about a grant that was not created from a request (a grant is not
 * tied to one protocol).
 */
export const GRANT_EVENT_DIALECT = 'sluice';

/** Lower-case base32 without i, l, o and u: nothing to confuse when typed or read aloud. */
const ID_ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';
const ID_LENGTH = 6;
/** Attempts at an id no other replica took meanwhile. */
const ID_ATTEMPTS = 5;

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

/** How far a request is along its life: a status can only be replaced by one of a higher rank. */
function rank(status: ApprovalStatus): number {
  return status === 'pending' ? 0 : status === 'approved' ? 1 : 2;
}

/** Opens the approvals service on its backend (see the module comment). */
export async function openApprovals(options: ApprovalsOptions): Promise<Approvals> {
  validateSpec(options.approvers, 'options.approvers');
  const replicaId = options.replicaId ?? DEFAULT_REPLICA_ID;
  if (typeof replicaId !== 'string' || replicaId === '') throw new ApprovalError('invalid', 'replicaId must be a non-empty name');
  const now = options.now ?? Date.now;
  let backend = options.backend;
  if (backend === undefined) {
    if (options.dir === undefined) throw new ApprovalError('invalid', 'the approvals service needs a state directory (dir) or a backend');
    backend = await openJournalBackend({
      dir: options.dir,
      logger: options.logger,
      now,
      ...(options.retentionMs !== undefined ? { retentionMs: options.retentionMs } : {}),
    });
  }
  const notifiers = createNotifiers(options.notifiers ?? [], {
    logger: options.logger,
    now,
    ...(options.notifyRetryDelayMs !== undefined ? { retryDelayMs: options.notifyRetryDelayMs } : {}),
  });
  let service: ApprovalsService;
  try {
    const snapshot = await backend.load();
    service = new ApprovalsService(options, backend, notifiers, now, replicaId, snapshot.requests, snapshot.grants);
    await service.recover();
  } catch (err) {
    notifiers.close();
    await backend.close().catch(() => undefined);
    throw err;
  }
  service.start();
  return service;
}

class ApprovalsService implements Approvals {
  readonly #backend: ApprovalBackend;
  readonly #audit: AuditStore;
  readonly #logger: Logger;
  readonly #approvers: ApproverSpec;
  readonly #notifiers: Notifiers;
  readonly #now: () => number;
  readonly #notifyGraceMs: number;
  readonly #replicaId: string;
  readonly #sweepGraceMs: number;
  readonly #sweepIntervalMs: number;

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
  #unsubscribe: (() => void) | null = null;
  #sweepTimer: NodeJS.Timeout | null = null;
  #sweeping: Promise<void> | null = null;
  #closed = false;
  #closing: Promise<void> | null = null;

  constructor(
    options: ApprovalsOptions,
    backend: ApprovalBackend,
    notifiers: Notifiers,
    now: () => number,
    replicaId: string,
    requests: readonly ApprovalRequest[],
    grants: readonly Grant[],
  ) {
    this.#backend = backend;
    this.#audit = options.audit;
    this.#logger = options.logger;
    this.#approvers = { groups: [...options.approvers.groups], subjects: [...options.approvers.subjects] };
    this.#notifiers = notifiers;
    this.#now = now;
    this.#notifyGraceMs = options.notifyGraceMs ?? 2_000;
    this.#replicaId = replicaId;
    this.#sweepGraceMs = options.sweepGraceMs ?? 30_000;
    this.#sweepIntervalMs = options.sweepIntervalMs ?? 10_000;
    for (const r of requests) this.#requests.set(r.id, Object.freeze(r));
    for (const g of grants) this.#setGrant(Object.freeze(g));
  }

  /**
   * Abandons what was waiting on this replica when it stopped: its session is gone. Each audit
   * record is durable before its request changes in the store.
   */
  async recover(): Promise<void> {
    const stale = [...this.#requests.values()].filter((r) => (r.status === 'pending' || r.status === 'approved') && this.#owns(r));
    if (stale.length === 0) return;
    const time = this.#iso();
    const ended: ApprovalRequest[] = [];
    await Promise.all(
      stale.map(async (r) => {
        const next = this.#ended(r, 'abandoned', RESTART_REASON, time);
        let auditFailure: unknown;
        let won: boolean;
        try {
          won = await this.#backend.transition(next, ['pending', 'approved'], {
            confirm: async () => {
              try {
                await this.#appendAudit(this.#event(next, 'abandoned', { reason: RESTART_REASON }));
              } catch (err) {
                auditFailure = err;
                throw err;
              }
            },
          });
        } catch (err) {
          if (auditFailure !== undefined) {
            throw new Error(`the approvals service cannot record abandoned requests in the audit trail: ${(err as Error).message}`, {
              cause: err,
            });
          }
          throw new Error(`the approvals service cannot store abandoned requests in ${this.#backend.description}: ${(err as Error).message}`, {
            cause: err,
          });
        }
        if (won) {
          this.#requests.set(next.id, next);
          ended.push(next);
        } else {
          await this.#refresh(next.id, true);
        }
      }),
    );
    for (const r of ended) this.#notify('approval.abandoned', r);
    if (ended.length > 0) {
      this.#logger.warn({ requests: ended.map((r) => r.id) }, `approvals: ${ended.length} request(s) abandoned: ${RESTART_REASON}`);
    }
  }

  /** Starts following other replicas' changes and, on a shared store, the sweep. */
  start(): void {
    this.#unsubscribe = this.#backend.subscribe((change) => {
      if (!this.#closed) this.#apply(change, false);
    });
    if (this.#backend.shared) {
      this.#sweepTimer = setInterval(() => {
        if (this.#sweeping !== null || this.#closed) return;
        this.#sweeping = this.#track(this.#sweep())
          .catch((err: unknown) => this.#logger.error({ err }, 'approvals: sweeping expired requests failed'))
          .finally(() => {
            this.#sweeping = null;
          });
      }, this.#sweepIntervalMs);
      this.#sweepTimer.unref();
    }
  }

  /** Whether this replica holds the request's statement (on a journal, every request is this process's). */
  #owns(r: ApprovalRequest): boolean {
    return !this.#backend.shared || r.owner === this.#replicaId;
  }

  /**
   * Takes a record from the backend into the mirror when it is newer than what the mirror has
   * (or always, with `force`: read from the store after a lost transition). A ticket this
   * replica waits on settles when its request was decided or ended elsewhere.
   */
  #apply(change: StoreEntry, force: boolean): void {
    if (change.kind === 'grant') {
      const g = change.record;
      const mine = this.#grants.get(g.id);
      if (!force && mine !== undefined && (mine.revokedAt !== undefined || g.revokedAt === undefined)) return;
      this.#setGrant(Object.freeze({ ...g }));
      return;
    }
    const r = change.record;
    const mine = this.#requests.get(r.id);
    if (!force && mine !== undefined && rank(r.status) <= rank(mine.status)) return;
    const record = Object.freeze({ ...r });
    this.#requests.set(r.id, record);
    if (record.status !== 'pending' && record.status !== 'executed' && this.#waiting.has(r.id)) {
      this.#logger.info({ requestId: r.id, status: record.status }, `approvals: request ${record.status} on another gateway`);
      this.#settle(r.id, { status: record.status, request: record });
    }
  }

  /** Reads a request from the backend into the mirror; rejects 'unavailable' when the store cannot answer. */
  async #refresh(id: string, force = false): Promise<ApprovalRequest | undefined> {
    let fresh: ApprovalRequest | undefined;
    try {
      fresh = await this.#backend.getRequest(id);
    } catch (err) {
      this.#logger.error({ err, requestId: id }, 'approvals: a request could not be read from the store');
      throw new ApprovalError('unavailable', `request ${id} could not be read from the store: ${(err as Error).message}`);
    }
    if (fresh !== undefined) this.#apply({ kind: 'request', record: fresh }, force);
    return this.#requests.get(id);
  }

  /** Expires requests of any replica whose timeout passed more than the grace ago (their owner did not end them). */
  async #sweep(): Promise<void> {
    const cutoff = this.#now() - this.#sweepGraceMs;
    const due = [...this.#requests.values()].filter(
      (r) => (r.status === 'pending' || r.status === 'approved') && Date.parse(r.expiresAt) < cutoff,
    );
    for (const { id } of due) {
      if (this.#closed) return;
      await this.#exclusive(id, async () => {
        const r = this.#requests.get(id);
        if (!r || (r.status !== 'pending' && r.status !== 'approved') || !(Date.parse(r.expiresAt) < cutoff)) return;
        await this.#finish(r, 'expired', SWEEP_REASON, ['pending', 'approved']);
      });
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Requests

  request(input: ReviewInput): Promise<ReviewTicket> {
    return this.#track(this.#request(input));
  }

  async #request(input: ReviewInput): Promise<ReviewTicket> {
    if (this.#closed) throw new ApprovalError('unavailable', 'the approvals service is closed');
    validateReviewInput(input);
    const reason = input.reason !== undefined ? `${input.why}; requester's reason: ${input.reason}` : input.why;
    for (let attempt = 1; ; attempt++) {
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
          owner: this.#replicaId,
        });

        // The `requested` record is durable before any approver can see the request.
        let auditFailure: unknown;
        let stored: boolean;
        try {
          stored = await this.#backend.insert(
            { kind: 'request', record: request },
            {
              confirm: async () => {
                try {
                  await this.#appendAudit(this.#event(request, 'requested', { text: input.normalized, statement: input.statement, reason }));
                } catch (err) {
                  auditFailure = err;
                  throw err;
                }
              },
            },
          );
        } catch (err) {
          if (auditFailure === undefined) {
            this.#logger.error({ err, requestId: id }, 'approvals: a review request could not be stored');
            throw new ApprovalError('unavailable', `the review request could not be stored: ${(err as Error).message}`);
          }
          this.#logger.error({ err: auditFailure, requestId: id }, 'approvals: a review request could not be audited; it is abandoned');
          const dropped = this.#ended(request, 'abandoned', 'the request could not be recorded in the audit trail', this.#iso());
          this.#requests.set(id, dropped);
          await this.#backend.insert({ kind: 'request', record: dropped }).catch((e: unknown) => {
            this.#logger.error({ err: e, requestId: id }, 'approvals: the abandoned request could not be stored');
          });
          throw new ApprovalError(
            'unavailable',
            `the review request could not be recorded in the audit trail: ${(auditFailure as Error).message}`,
          );
        }
        if (!stored) {
          // Another replica took this id meanwhile.
          if (attempt < ID_ATTEMPTS) continue;
          throw new ApprovalError('unavailable', 'no free request id could be found in the store');
        }

        // A change from another replica may have arrived already (someone was quick to decide).
        const seen = this.#requests.get(id);
        if (seen === undefined || rank(seen.status) === 0) this.#requests.set(id, request);
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
        const now = this.#requests.get(id)!;
        if (now.status !== 'pending' && now.status !== 'executed') this.#settle(id, { status: now.status, request: now });
        if (this.#closed) {
          // close() ran while this request was being stored: it cannot wait any more.
          void this.#endWithoutDecision(id, 'abandoned', SHUTDOWN_REASON);
        }
        return { request, settled };
      } finally {
        this.#reserved.delete(id);
      }
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
    let r = this.#requests.get(id);
    // Another replica may have created or decided it: ask the store before refusing.
    if (!r || r.status !== 'pending') r = await this.#refresh(id);
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
    // The audit records are written once the decision has won in the store and before it takes
    // effect there: no replica can act on a decision the trail does not show.
    let auditFailure: unknown;
    let won: boolean;
    try {
      won = await this.#backend.transition(next, ['pending'], {
        ...(grant ? { grant } : {}),
        confirm: async () => {
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
            auditFailure = err;
            throw err;
          }
        },
      });
    } catch (err) {
      if (auditFailure === undefined) {
        this.#logger.error({ err, requestId: id }, `approvals: a decision could not be stored`);
        throw new ApprovalError('unavailable', `the decision could not be stored: ${(err as Error).message}`);
      }
      // Nothing may be released on a decision the trail does not show.
      const why = `the decision could not be recorded in the audit trail`;
      this.#logger.error({ err: auditFailure, requestId: id }, `approvals: ${why}; the request is abandoned`);
      await this.#finish(r, 'abandoned', why, ['pending']);
      throw new ApprovalError('unavailable', `${why}: ${(auditFailure as Error).message}`);
    }
    if (!won) {
      // Another replica decided (or the request ended) first.
      const fresh = await this.#refresh(id, true).catch(() => undefined);
      throw new ApprovalError('not-pending', `request ${id} is not pending: it ${fresh ? describeState(fresh) : 'was decided elsewhere'}`);
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
    let r = this.#requests.get(id);
    if (!r || r.status !== 'approved') {
      try {
        r = await this.#refresh(id);
      } catch {
        return false;
      }
    }
    if (!r) {
      this.#logger.warn({ requestId: id }, 'approvals: a release was asked for an unknown request');
      return false;
    }
    if (r.status === 'approved' && typeof digest === 'string' && digest === r.digest && !this.#closed) {
      const next: ApprovalRequest = Object.freeze({ ...r, status: 'executed' });
      let won: boolean;
      try {
        won = await this.#backend.transition(next, ['approved']);
      } catch (err) {
        this.#logger.error({ err, requestId: id }, 'approvals: a release could not be stored; the statement is not released');
        return false;
      }
      if (won) {
        this.#requests.set(id, next);
        try {
          await this.#appendAudit(
            this.#event(next, 'executed', { text: next.normalized, ...(next.decidedBy ? { approver: next.decidedBy } : {}) }),
          );
        } catch (err) {
          const why = 'the release could not be recorded in the audit trail';
          this.#logger.error({ err, requestId: id }, `approvals: ${why}; the statement is not released`);
          await this.#finish(next, 'abandoned', why, ['executed']);
          return false;
        }
        return true;
      }
      // It ended meanwhile (another replica expired it): say what it is now.
      try {
        r = (await this.#refresh(id, true)) ?? r;
      } catch {
        return false;
      }
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
      const from: readonly ApprovalStatus[] = status === 'abandoned' ? ['pending', 'approved'] : ['pending'];
      if (!from.includes(r.status)) return;
      await this.#finish(r, status, why, from);
    });
  }

  /**
   * Moves a request to expired or abandoned: in memory at once (nothing can be released from it
   * any more), then stored (if its stored status is still one of `from`) and audited as far as
   * possible, then its ticket settles. When another replica changed the request first, the
   * ticket settles with what won instead. Never throws.
   */
  async #finish(r: ApprovalRequest, status: 'expired' | 'abandoned', why: string, from: readonly ApprovalStatus[]): Promise<void> {
    const next = this.#ended(r, status, why, this.#iso());
    this.#requests.set(r.id, next);
    const event = this.#event(next, status, { reason: why });
    let audited = false;
    let won: boolean | undefined;
    try {
      won = await this.#backend.transition(next, from, {
        confirm: async () => {
          await this.#appendAudit(event);
          audited = true;
        },
      });
    } catch (err) {
      if (!audited) {
        // Whether the audit or the store failed: store what can be stored, audit what can be audited.
        this.#logger.error({ err, requestId: r.id }, `approvals: the ${status} request could not be stored and audited together`);
        try {
          won = await this.#backend.transition(next, from);
        } catch (e) {
          this.#logger.error({ err: e, requestId: r.id }, `approvals: the ${status} request could not be stored`);
        }
        if (won !== false) {
          try {
            await this.#appendAudit(event);
          } catch (e) {
            this.#logger.error({ err: e, requestId: r.id }, `approvals: the ${status} request could not be audited`);
          }
        }
      } else {
        this.#logger.error({ err, requestId: r.id }, `approvals: the ${status} request was audited but could not be stored`);
      }
    }
    if (won === false) {
      // Another replica decided or ended it first (an approval just before the timeout): that wins.
      let fresh: ApprovalRequest | undefined;
      try {
        fresh = await this.#refresh(r.id, true);
      } catch {
        fresh = undefined;
      }
      if (fresh !== undefined && fresh.status !== 'pending') {
        // Released meanwhile (its owner ran the statement before a sweep got to it): nothing waits
        // on it any more, and it must not be announced as ended.
        if (fresh.status !== 'executed') this.#settle(r.id, { status: fresh.status, request: fresh });
        this.#logger.info({ requestId: r.id, status: fresh.status }, `approvals: request was ${fresh.status} before it could be ${status}`);
        return;
      }
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
    for (let attempt = 1; ; attempt++) {
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
        // Audited before any replica can use it.
        let auditFailure: unknown;
        let stored: boolean;
        try {
          stored = await this.#backend.insert(
            { kind: 'grant', record: grant },
            {
              confirm: async () => {
                try {
                  await this.#appendAudit(this.#grantEvent(grant, 'grant-created', grant.grantedBy));
                } catch (err) {
                  auditFailure = err;
                  throw err;
                }
              },
            },
          );
        } catch (err) {
          if (auditFailure === undefined) {
            this.#logger.error({ err, grantId: grant.id }, 'approvals: a grant could not be stored');
            throw new ApprovalError('unavailable', `the grant could not be stored: ${(err as Error).message}`);
          }
          this.#logger.error({ err: auditFailure, grantId: grant.id }, 'approvals: a grant could not be audited; it is revoked');
          const revoked: Grant = Object.freeze({ ...grant, revokedAt: this.#iso(), revokedBy: grant.grantedBy });
          this.#grants.set(grant.id, revoked);
          await this.#backend.insert({ kind: 'grant', record: revoked }).catch(() => undefined);
          throw new ApprovalError('unavailable', `the grant could not be recorded in the audit trail: ${(auditFailure as Error).message}`);
        }
        if (!stored) {
          // Another replica took this id meanwhile.
          if (attempt < ID_ATTEMPTS) continue;
          throw new ApprovalError('unavailable', 'no free grant id could be found in the store');
        }
      } finally {
        this.#reserved.delete(grant.id);
      }
      const seen = this.#grants.get(grant.id);
      if (seen === undefined || seen.revokedAt === undefined) this.#setGrant(grant);
      this.#logger.info(
        { grantId: grant.id, subject: grant.subject, grantor: grantor.subject, expiresAt: grant.expiresAt },
        'approvals: grant created',
      );
      return grant;
    }
  }

  revokeGrant(id: string, by: Identity): Promise<Grant> {
    return this.#track(this.#exclusive(`grant:${id}`, () => this.#revoke(id, by)));
  }

  async #revoke(id: string, by: Identity): Promise<Grant> {
    if (this.#closed) throw new ApprovalError('unavailable', 'the approvals service is closed');
    if (!mayApprove(this.#approvers, by)) {
      throw new ApprovalError('not-an-approver', `${by.subject} may not revoke grants: ${describeSpec(this.#approvers)}`);
    }
    let g = this.#grants.get(id);
    // Another replica may have created or revoked it: ask the store before refusing.
    if (!g || g.revokedAt !== undefined) g = await this.#refreshGrant(id);
    if (!g) throw new ApprovalError('not-found', `there is no grant ${id}`);
    for (;;) {
      if (g.revokedAt !== undefined) {
        throw new ApprovalError('not-pending', `grant ${id} was already revoked by ${g.revokedBy?.subject ?? 'someone'} at ${g.revokedAt}`);
      }
      if (Date.parse(g.expiresAt) <= this.#now()) throw new ApprovalError('not-pending', `grant ${id} already expired at ${g.expiresAt}`);
      const revoked: Grant = Object.freeze({ ...g, revokedAt: this.#iso(), revokedBy: actorOf(by) });
      let won: boolean;
      try {
        won = await this.#backend.revokeGrant(revoked);
      } catch (err) {
        this.#logger.error({ err, grantId: id }, 'approvals: a revocation could not be stored');
        throw new ApprovalError('unavailable', `the revocation could not be stored: ${(err as Error).message}`);
      }
      if (!won) {
        // Revoked elsewhere meanwhile: say by whom.
        const fresh = await this.#refreshGrant(id);
        if (fresh === undefined || fresh.revokedAt === undefined) {
          throw new ApprovalError('unavailable', `grant ${id} changed in the store while it was being revoked: try again`);
        }
        g = fresh;
        continue;
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
  }

  /** Reads a grant from the backend into the mirror; rejects 'unavailable' when the store cannot answer. */
  async #refreshGrant(id: string): Promise<Grant | undefined> {
    let fresh: Grant | undefined;
    try {
      fresh = await this.#backend.getGrant(id);
    } catch (err) {
      this.#logger.error({ err, grantId: id }, 'approvals: a grant could not be read from the store');
      throw new ApprovalError('unavailable', `grant ${id} could not be read from the store: ${(err as Error).message}`);
    }
    if (fresh !== undefined) this.#apply({ kind: 'grant', record: fresh }, false);
    return this.#grants.get(id);
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
    this.#unsubscribe?.();
    if (this.#sweepTimer !== null) clearInterval(this.#sweepTimer);
    for (const waiter of this.#waiting.values()) clearTimeout(waiter.timer);
    // Let requests being created or decided finish (they see `closed` and end what they started).
    while (this.#inflight.size > 0) await Promise.allSettled([...this.#inflight]);
    // Only what this replica holds: other replicas' requests are theirs to end.
    const open = [...this.#requests.values()].filter((r) => (r.status === 'pending' || r.status === 'approved') && this.#owns(r));
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
    await this.#backend.close();
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
