import { createHash, randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { Analysis } from '../analysis/types.js';
import { Hazard, isPrivileged } from '../analysis/types.js';
import type { AuditActor, AuditEvent, AuditStore, MaskedColumn } from '../audit/types.js';
import { ClientFacingError, clientErrors } from '../errors.js';
import type { Authenticator, Credentials, Identity } from '../identity/types.js';
import type { FailureLimiter } from '../identity/failure-limiter.js';
import { ApprovalError, type Approvals, type ApproverSpec, type ReviewTicket } from '../approvals/types.js';
import type { Decision, Policy } from '../policy/engine.js';
import { statementMasking, type MaskingRuntime, type StatementMasking } from './masking.js';
import { applicationContext, attributesContext, claimsContext, commentContext, mergeContexts, type CallerContext } from './caller-context.js';
import type { ApprovalWaitOutcome, GovernanceObserver, SessionObserver, StatementObserver } from './observers.js';
import { Admission, type LimitRefusal, SessionLimiter, type SessionLimitsConfig } from './limits.js';

export interface GovernorOptions {
  readonly authenticator: Authenticator;
  readonly audit: AuditStore;
  readonly failureLimiter: FailureLimiter;
  readonly logger: Logger;
  /** The policy every statement is decided by (replaceable with `setPolicy`). */
  readonly policy: Policy;
  /** Where statements held for review wait; without it a review decision refuses the statement. */
  readonly approvals?: Approvals;
  /** How long a held statement waits for an approver. Default 5 minutes. */
  readonly reviewTimeoutMs?: number;
  /** Masking of results (replaceable with `setMasking`); without it nothing is masked. */
  readonly masking?: MaskingRuntime;
  /** Lineage and tracing: told of every session and statement (replaceable with `setObservers`). */
  readonly observers?: readonly GovernanceObserver[];
  /** Concurrent sessions and statement rates per identity and per source address; unlimited when absent. */
  readonly limits?: SessionLimitsConfig;
}

export interface LoginAttempt {
  readonly dialect: string;
  readonly credentials: Credentials;
  readonly tls: boolean;
  /** The target the client asked for, as sent (not yet checked). */
  readonly requestedTarget?: string;
  readonly application?: string;
}

export interface SessionStart {
  readonly dialect: string;
  readonly identity: Identity;
  readonly username: string;
  readonly target: string;
  readonly sourceAddress: string;
  readonly tls: boolean;
  readonly application?: string;
  /** The upstream database (PostgreSQL) or default schema (MySQL) the session works in. */
  readonly database?: string;
  /** The upstream server, as configured (for lineage dataset names and trace attributes). */
  readonly server?: { readonly address: string; readonly port: number };
  /** Connection attributes the client sent (MySQL), for the caller context. */
  readonly attributes?: Readonly<Record<string, string>>;
  /** The database product when it matters beyond the dialect (`mariadb` behind the MySQL dialect), for traces. */
  readonly system?: string;
  /** The client's verified certificate (mutual TLS), recorded on the connect record. */
  readonly clientCert?: { readonly subject: string; readonly fingerprint256: string };
}

export interface StatementStart {
  readonly analysis: Analysis;
  /** The dialect's name for the protocol path ('simple', 'extended', ...). */
  readonly protocol: string;
  /**
   * The exact request text; needed only when the request is held for review (it is what the
   * approver sees and what the approval is bound to).
   */
  readonly text?: string;
  /** Bound parameters as text (null for NULL), computed only when a review needs them. */
  readonly parameters?: () => readonly (string | null)[];
  /** Called once a held request's review request exists (to tell the client it waits). */
  readonly onHeld?: (held: HeldInfo) => void;
  /**
   * The approval that released this statement's earlier part: a later Execute of the same
   * portal fetching more rows continues the approved statement instead of asking again.
   */
  readonly approved?: string;
  /**
   * Set when the dialect must refuse the request whatever the policy says (its results could
   * not be masked, the masking metadata cannot be read): recorded and refused as a deny by
   * `rule` with `reason`.
   */
  readonly refuse?: { readonly rule: string; readonly reason: string };
}

/** What a client is told when its statement is held for review. */
export interface HeldInfo {
  readonly requestId: string;
  readonly timeoutMs: number;
  readonly reason: string;
  readonly approvers: ApproverSpec;
}

/**
 * A request's statements as recorded (one handle per statement), and, when the request must
 * wait before it is forwarded (a durable intent record, or a review), the promise to await.
 * `ready` rejects with a ClientFacingError when the request must not run.
 */
export interface RequestHandle {
  readonly handles: readonly StatementHandle[];
  readonly ready: Promise<void> | undefined;
}

/** SHA-256 over the exact text and its parameters: what an approval is bound to. */
export function statementDigest(text: string, parameters: readonly (string | null)[] | undefined): string {
  const h = createHash('sha256').update(text, 'utf8');
  if (parameters && parameters.length > 0) h.update('\0').update(JSON.stringify(parameters), 'utf8');
  return h.digest('hex');
}

/** A reason the client gave for its statement: a `/* reason: ... *\/` or `-- reason: ...` comment. */
const REASON_COMMENT = /(?:\/\*\s*reason\s*:\s*([\s\S]*?)\s*\*\/|--\s*reason\s*:\s*([^\r\n]*))/i;
export function clientReason(text: string | undefined, application: string | undefined): string | undefined {
  const m = text !== undefined && text.length < 1_000_000 ? REASON_COMMENT.exec(text) : null;
  const fromComment = (m?.[1] ?? m?.[2])?.trim();
  if (fromComment) return fromComment.slice(0, 500);
  return application ? `application_name: ${application.slice(0, 200)}` : undefined;
}

function minutes(ms: number): string {
  if (ms % 60_000 === 0) return `${ms / 60_000} minute${ms === 60_000 ? '' : 's'}`;
  return `${Math.round(ms / 1000)} s`;
}

export interface StatementOutcome {
  readonly outcome: 'ok' | 'error' | 'cancelled' | 'not-executed' | 'aborted';
  readonly rows?: number;
  readonly errorCode?: string;
  readonly command?: string;
  /** Result columns the gateway masked or scanned and what masked them (never the values). */
  readonly masked?: readonly MaskedColumn[];
}

const analysisCache = new WeakMap<Analysis, string>();

let isoSecond = -1;
let isoPrefix = '';
const MS_DIGITS = Array.from({ length: 1000 }, (_, i) => `${String(i).padStart(3, '0')}Z`);
/**
 * The current time as ISO 8601 with milliseconds (as Date#toISOString). The part up to the
 * second is formatted once per second; this runs for every statement record.
 */
function isoNow(): string {
  const now = Date.now();
  const second = Math.floor(now / 1000);
  if (second !== isoSecond) {
    isoSecond = second;
    isoPrefix = new Date(second * 1000).toISOString().slice(0, 20);
  }
  return isoPrefix + MS_DIGITS[now - second * 1000]!;
}

/** The JSON members describing an analysis, encoded once per (cached) analysis object. */
function analysisMembers(a: Analysis): string {
  let m = analysisCache.get(a);
  if (m === undefined) {
    m = `,"text":${JSON.stringify(a.normalized)},"fingerprint":${JSON.stringify(a.fingerprint)},"operations":${JSON.stringify(a.operations)}`;
    analysisCache.set(a, m);
  }
  return m;
}

function actorOf(identity: Identity): AuditActor {
  return { subject: identity.subject, kind: identity.kind, groups: identity.groups, method: identity.method };
}

/**
 * The governance pipeline a dialect calls at each phase of a session. It owns identity,
 * decisions and audit; it never touches bytes.
 */
export class Governor {
  readonly #authenticator: Authenticator;
  readonly #audit: AuditStore;
  readonly #limiter: FailureLimiter;
  readonly #logger: Logger;
  #policy: Policy;
  readonly #approvals: Approvals | undefined;
  #reviewTimeoutMs: number;
  #masking: MaskingRuntime | undefined;
  #observers: readonly GovernanceObserver[];
  readonly #sessionLimits: SessionLimiter | undefined;

  constructor(options: GovernorOptions) {
    this.#authenticator = options.authenticator;
    this.#audit = options.audit;
    this.#limiter = options.failureLimiter;
    this.#logger = options.logger;
    this.#policy = options.policy;
    this.#approvals = options.approvals;
    this.#reviewTimeoutMs = options.reviewTimeoutMs ?? 5 * 60_000;
    this.#masking = options.masking;
    this.#observers = options.observers ?? [];
    this.#sessionLimits = SessionLimiter.of(options.limits);
  }

  /**
   * Refuses (audited, with a native "too many connections" error) a verified login whose
   * identity or source address already has as many sessions as allowed. Dialects call it before
   * they connect upstream, so that a refused client costs the database nothing; `openSession`
   * counts the session for good.
   */
  async checkConnectionLimits(attempt: LoginAttempt, identity: Identity): Promise<void> {
    const over = this.#sessionLimits?.check(identity.subject, attempt.credentials.sourceAddress);
    if (over === undefined) return;
    const err = connectionLimitError(over);
    await this.refuseConnection(attempt, err.message, identity);
    throw err;
  }

  /** Replaces the observers; sessions opened from now on are told to the new ones. */
  setObservers(observers: readonly GovernanceObserver[]): void {
    this.#observers = observers;
  }

  /** @internal Session observers for a newly opened session (undefined when none observes it). */
  observeSession(session: GovernedSession): SessionObserver[] | undefined {
    if (this.#observers.length === 0) return undefined;
    let out: SessionObserver[] | undefined;
    for (const o of this.#observers) {
      try {
        const s = o.session(session, session.context);
        if (s !== undefined) (out ??= []).push(s);
      } catch (err) {
        this.#logger.error({ err, sessionId: session.id }, 'a session observer failed');
      }
    }
    return out;
  }

  get masking(): MaskingRuntime | undefined {
    return this.#masking;
  }

  /** Replaces the masking configuration (a reload). */
  setMasking(masking: MaskingRuntime | undefined): void {
    this.#masking = masking;
  }

  get policy(): Policy {
    return this.#policy;
  }

  /** Replaces the policy (a reload); statements decided from now on use the new one. */
  setPolicy(policy: Policy): void {
    this.#policy = policy;
  }

  setReviewTimeoutMs(ms: number): void {
    this.#reviewTimeoutMs = ms;
  }

  /** @internal */
  get approvals(): Approvals | undefined {
    return this.#approvals;
  }

  /** @internal */
  get reviewTimeoutMs(): number {
    return this.#reviewTimeoutMs;
  }

  /**
   * Verifies a login. Refusals (bad credential, rate limit) are audited here; the caller sends
   * the returned error natively and closes the connection.
   */
  async authenticate(attempt: LoginAttempt): Promise<Identity> {
    const source = attempt.credentials.sourceAddress;
    const gate = this.#limiter.check(source);
    if (!gate.allowed) {
      const err = clientErrors.rateLimited('failed login attempts from this address', gate.retryAfterSeconds);
      await this.refuseConnection(attempt, err.message);
      throw err;
    }
    try {
      const identity = await this.#authenticator.authenticate(attempt.credentials);
      this.#limiter.recordSuccess(source);
      return identity;
    } catch (cause) {
      this.#limiter.recordFailure(source);
      const err = ClientFacingError.is(cause) ? cause : clientErrors.authFailed('the credential could not be verified', { cause });
      if (!ClientFacingError.is(cause)) this.#logger.error({ err: cause }, 'authenticator failed unexpectedly');
      await this.refuseConnection(attempt, err.message);
      throw err;
    }
  }

  /** Audits a refused connection attempt. Never throws: a failing store is logged. */
  async refuseConnection(attempt: LoginAttempt, reason: string, identity?: Identity): Promise<void> {
    await this.#appendQuietly(
      {
        type: 'connect',
        time: new Date().toISOString(),
        dialect: attempt.dialect,
        sourceAddress: attempt.credentials.sourceAddress,
        outcome: 'refused',
        username: attempt.credentials.username,
        ...(identity ? { actor: actorOf(identity) } : {}),
        ...(attempt.requestedTarget !== undefined ? { target: attempt.requestedTarget } : {}),
        reason,
        tls: attempt.tls,
        ...(attempt.application ? { application: attempt.application } : {}),
      },
      true,
    );
  }

  /** Audits an accepted connection (durably) and returns the session's governance handle. */
  async openSession(start: SessionStart): Promise<GovernedSession> {
    if (!this.#audit.healthy) throw clientErrors.governanceUnavailable('the audit store cannot write');
    let admission: Admission | undefined;
    if (this.#sessionLimits !== undefined) {
      const admitted = this.#sessionLimits.admit(start.identity.subject, start.sourceAddress);
      if (!(admitted instanceof Admission)) {
        const err = connectionLimitError(admitted);
        await this.refuseConnection(
          {
            dialect: start.dialect,
            credentials: { username: start.username, secret: '', sourceAddress: start.sourceAddress },
            tls: start.tls,
            requestedTarget: start.target,
            ...(start.application ? { application: start.application } : {}),
          },
          err.message,
          start.identity,
        );
        throw err;
      }
      admission = admitted;
    }
    const session = new GovernedSession(this, this.#audit, this.#logger, start, admission);
    try {
      await this.#audit.append(
        {
          type: 'connect',
          time: new Date().toISOString(),
          dialect: start.dialect,
          sessionId: session.id,
          sourceAddress: start.sourceAddress,
          outcome: 'accepted',
          username: start.username,
          actor: session.actor,
          target: start.target,
          tls: start.tls,
          ...(start.application ? { application: start.application } : {}),
          ...(start.clientCert ? { clientCert: start.clientCert } : {}),
        },
        { durable: true },
      );
    } catch (cause) {
      admission?.release();
      throw clientErrors.governanceUnavailable('the audit store cannot write', { cause });
    }
    session.observers = this.observeSession(session);
    return session;
  }

  /** Audits a cancel request. Never throws. */
  async recordCancel(dialect: string, sourceAddress: string, session: GovernedSession | undefined): Promise<void> {
    await this.#appendQuietly(
      {
        type: 'cancel',
        time: new Date().toISOString(),
        dialect,
        sourceAddress,
        outcome: session ? 'forwarded' : 'ignored',
        ...(session ? { sessionId: session.id, actor: session.actor, target: session.target } : {}),
      },
      false,
    );
  }

  async #appendQuietly(event: AuditEvent, durable: boolean): Promise<void> {
    try {
      await this.#audit.append(event, { durable });
    } catch (err) {
      this.#logger.error({ err, event: event.type }, 'audit store could not record an event');
    }
  }
}

/** Governance for one authenticated session. */
export class GovernedSession {
  readonly id = randomUUID();
  readonly actor: AuditActor;
  readonly identity: Identity;
  readonly target: string;
  readonly dialect: string;
  readonly sourceAddress: string;
  readonly application: string | undefined;
  readonly server: { readonly address: string; readonly port: number } | undefined;
  /** The database product, when the dialect told it (`mariadb`). */
  readonly system: string | undefined;
  /** The upstream database or default schema (a dialect updates it when the client switches). */
  database: string | undefined;
  readonly #attributes: Readonly<Record<string, string>> | undefined;
  #context: CallerContext | undefined | null = null;

  /** What the caller said about its job, run and trace for the whole session (read when first asked). */
  get context(): CallerContext | undefined {
    if (this.#context === null) {
      this.#context = mergeContexts(attributesContext(this.#attributes), applicationContext(this.application), claimsContext(this.identity.claims));
    }
    return this.#context;
  }

  /** @internal Observers of this session (lineage, tracing); undefined when none. */
  observers: SessionObserver[] | undefined;
  readonly #governor: Governor;
  readonly #audit: AuditStore;
  readonly #logger: Logger;
  readonly #startedAt = Date.now();
  #statements = 0;
  #ended = false;
  /** Decisions by analysis, valid for one policy (a reload starts afresh). */
  #decisions = new WeakMap<Analysis, Decision>();
  #decisionsPolicy: Policy | undefined;
  /** Reviews in progress (from the request until the statement is released), for cancel and end. */
  readonly #reviews = new Set<ReviewState>();

  /** JSON members shared by every statement record of this session, encoded once. */
  readonly #members: string;
  /** This session's place in the connection limits (released when it ends). */
  readonly #admission: Admission | undefined;
  /** The same, when a statement rate applies (asked before every request). */
  readonly #rated: Admission | undefined;

  constructor(governor: Governor, audit: AuditStore, logger: Logger, start: SessionStart, admission?: Admission) {
    this.#admission = admission;
    this.#rated = admission?.rated ? admission : undefined;
    this.#governor = governor;
    this.#audit = audit;
    this.#logger = logger;
    this.identity = start.identity;
    this.actor = actorOf(start.identity);
    this.target = start.target;
    this.dialect = start.dialect;
    this.sourceAddress = start.sourceAddress;
    this.application = start.application;
    this.server = start.server;
    this.system = start.system;
    this.database = start.database;
    this.#attributes = start.attributes;
    this.#members =
      `,"dialect":${JSON.stringify(this.dialect)},"sessionId":"${this.id}","sourceAddress":${JSON.stringify(this.sourceAddress)}` +
      `,"actor":${JSON.stringify(this.actor)},"target":${JSON.stringify(this.target)}`;
  }

  /** @internal */
  get members(): string {
    return this.#members;
  }

  /** @internal The observers of a statement just decided (undefined when none). */
  observeStatement(handle: StatementHandle, text: string | undefined): StatementObserver[] | undefined {
    const observers = this.observers;
    if (observers === undefined) return undefined;
    const own = commentContext(text);
    const context = own === undefined ? this.context : mergeContexts(own, this.context);
    let out: StatementObserver[] | undefined;
    for (const o of observers) {
      try {
        const s = o.statement(handle, context);
        if (s !== undefined) (out ??= []).push(s);
      } catch (err) {
        this.#logger.error({ err, sessionId: this.id }, 'a statement observer failed');
      }
    }
    return out;
  }

  /** @internal */
  get logger(): Logger {
    return this.#logger;
  }

  get statementCount(): number {
    return this.#statements;
  }

  /** True while a statement of this session waits for an approver (or its review is being recorded). */
  get reviewing(): boolean {
    return this.#reviews.size > 0;
  }

  /** The policy's decision for an analysis, cached per analysis while it cannot change. */
  decide(analysis: Analysis): Decision {
    const policy = this.#governor.policy;
    if (policy !== this.#decisionsPolicy) {
      this.#decisions = new WeakMap();
      this.#decisionsPolicy = policy;
    }
    let d = this.#decisions.get(analysis);
    if (d !== undefined) return d;
    const approvals = this.#governor.approvals;
    const decided = this.#withPredicateHazard(analysis, policy);
    d = policy.decide(this.identity, this.target, decided, () => approvals?.activeGrants(this.identity.subject, this.target) ?? []);
    if (!d.volatile) this.#decisions.set(analysis, d);
    return d;
  }

  /**
   * When the `sensitive-predicate` guardrail may apply: the analysis with that hazard added if
   * a WHERE, JOIN, GROUP BY, HAVING or ORDER BY of the request reads a column masked for this
   * identity (the result can then reveal the value without returning it).
   */
  #withPredicateHazard(analysis: Analysis, policy: Policy): Analysis {
    const runtime = this.#governor.masking;
    if (runtime === undefined || !policy.usesGuardrail(Hazard.SensitivePredicate) || this.#isExempt(runtime)) return analysis;
    const parts = analysis.parts ?? [analysis];
    let sensitive = false;
    for (const p of parts) {
      const predicates = p.lineage?.predicates;
      if (predicates !== undefined && predicates.length > 0 && runtime.columns.strongest(this.target, predicates) !== undefined) sensitive = true;
    }
    if (!sensitive) return analysis;
    return { ...analysis, hazards: [...(analysis.hazards ?? []), Hazard.SensitivePredicate] };
  }

  #exemptFor: MaskingRuntime | undefined;
  #exempt = false;

  #isExempt(runtime: MaskingRuntime): boolean {
    if (this.#exemptFor !== runtime) {
      this.#exemptFor = runtime;
      this.#exempt = runtime.columns.isExempt(this.identity);
    }
    return this.#exempt;
  }

  /**
   * True when results of this session may have to be masked: masking is configured and the
   * identity is not exempt, or a policy rule masks columns.
   */
  get masking(): boolean {
    const runtime = this.#governor.masking;
    return runtime !== undefined && (!this.#isExempt(runtime) || this.#governor.policy.hasMaskRules);
  }

  readonly #maskings = new WeakMap<Decision, { runtime: MaskingRuntime; masking: StatementMasking | undefined }>();

  /**
   * The masking in force for a statement's results, or undefined when nothing of them is
   * masked (masking off, or an exempt identity that no `mask` rule covers).
   */
  maskingFor(analysis: Analysis): StatementMasking | undefined {
    const runtime = this.#governor.masking;
    if (runtime === undefined) return undefined;
    const decision = this.decide(analysis);
    const known = this.#maskings.get(decision);
    if (known !== undefined && known.runtime === runtime) return known.masking;
    const masking = statementMasking(runtime, this.target, decision, this.#isExempt(runtime));
    this.#maskings.set(decision, { runtime, masking });
    return masking;
  }

  /** Decides and records a single statement (see `beginRequest`). */
  beginStatement(start: StatementStart): StatementHandle {
    const request = this.beginRequest(start);
    const handle = request.handles[0]!;
    handle.ready = request.ready;
    return handle;
  }

  /**
   * Decides a request and records its statements (one handle per statement of the request).
   * Throws a ClientFacingError when it must not run: denied by policy (the records say so),
   * or the audit store cannot write (fail closed). `ready`, when set, must be awaited before
   * the request is forwarded: the durable intent record of a privileged statement, or the
   * wait for an approver.
   */
  beginRequest(start: StatementStart): RequestHandle {
    const deferred = !this.#audit.healthy;
    if (deferred && (this.#audit.deferring !== true || isPrivileged(start.analysis.operations))) {
      this.#logger.error({ sessionId: this.id }, 'statement refused: audit store unavailable');
      throw clientErrors.governanceUnavailable('the audit store cannot write');
    }
    if (this.identity.expiresAt !== undefined && Date.now() >= this.identity.expiresAt) {
      // The refusal is a statement record of its own: who tried what, and why it did not run.
      for (const part of start.analysis.parts ?? [start.analysis]) {
        this.#statements++;
        new StatementHandle(this, `${this.id}:${this.#statements}`, { ...start, analysis: part }, EXPIRED).complete({
          outcome: 'not-executed',
        });
      }
      throw clientErrors.authFailed('the credential of this session has expired; reconnect with a fresh token');
    }
    if (this.#rated !== undefined) {
      const over = this.#rated.take(start.analysis.parts?.length ?? 1);
      if (over !== undefined) this.#refuseRate(start, over);
    }
    let decision: Decision;
    try {
      decision = start.refuse ? { effect: 'deny', rule: start.refuse.rule, reason: start.refuse.reason } : this.decide(start.analysis);
    } catch (cause) {
      // A decision that cannot be made refuses the statement (fail closed).
      this.#logger.error({ err: cause, sessionId: this.id }, 'policy decision failed');
      decision = { effect: 'deny', rule: 'policy-error', reason: 'the policy could not decide this statement; it was refused' };
    }
    const handles: StatementHandle[] = [];
    if (start.analysis.parts === undefined) {
      // One statement (the common case): its start is the request's, no copy per statement.
      this.#statements++;
      handles.push(new StatementHandle(this, `${this.id}:${this.#statements}`, start, decision));
    } else {
      for (const part of start.analysis.parts) {
        this.#statements++;
        handles.push(new StatementHandle(this, `${this.id}:${this.#statements}`, { ...start, analysis: part }, decision));
      }
    }
    if (decision.effect === 'deny') {
      for (const h of handles) h.complete({ outcome: 'not-executed' });
      throw clientErrors.accessDenied(decision.reason ?? `denied by rule "${decision.rule}"`, {
        hint: decision.guardrail
          ? `guardrail "${decision.guardrail}" can be switched off for a target or an identity in the gateway's policy`
          : 'ask the gateway operator for a policy rule that allows it',
      });
    }
    if (deferred && decision.effect !== 'allow') {
      // The store keeps only the records of reads while it is down: nothing held or approved runs.
      for (const h of handles) h.complete({ outcome: 'not-executed' });
      this.#logger.error({ sessionId: this.id }, 'statement refused: audit store unavailable');
      throw clientErrors.governanceUnavailable('the audit store cannot write');
    }
    if (decision.effect === 'review') {
      if (start.approved !== undefined) {
        for (const h of handles) h.approval = start.approved;
        return { handles, ready: this.#durableIntent(handles) };
      }
      return { handles, ready: this.#review(start, handles, decision) };
    }
    let ready: Promise<void> | undefined;
    if (isPrivileged(start.analysis.operations)) ready = this.#durableIntent(handles.filter((h) => h.privileged));
    return { handles, ready };
  }

  /** Records a request refused by a statement rate limit (a statement record per statement) and throws its error. */
  #refuseRate(start: StatementStart, over: LimitRefusal): never {
    const who = over.scope === 'identity' ? `identity ${over.key}` : `source address ${over.key}`;
    const n = start.analysis.parts?.length ?? 1;
    // Retrying cannot help a request larger than the bucket: say so instead of when to retry.
    const err =
      over.burst !== undefined && n > over.burst
        ? clientErrors.statementRequestOverBurst(who, n, over.burst)
        : clientErrors.statementRateLimited(who, over.limit, over.retryAfterSeconds ?? 1);
    const decision: Decision = { effect: 'deny', rule: 'rate-limit', reason: `statement rate limit of ${over.limit}/s for ${who} reached` };
    for (const part of start.analysis.parts ?? [start.analysis]) {
      this.#statements++;
      new StatementHandle(this, `${this.id}:${this.#statements}`, { ...start, analysis: part }, decision).complete({ outcome: 'not-executed' });
    }
    throw err;
  }

  #durableIntent(handles: readonly StatementHandle[]): Promise<void> {
    const writes = handles.map((h) => this.#audit.appendJson(h.encode('intent'), { durable: true }));
    return Promise.all(writes).then(
      () => undefined,
      (cause: unknown) => {
        throw clientErrors.governanceUnavailable('the audit store cannot write', { cause });
      },
    );
  }

  /** Holds a request until an approver decides; resolves when it may run. */
  async #review(start: StatementStart, handles: readonly StatementHandle[], decision: Decision): Promise<void> {
    const state: ReviewState = { cancelled: false };
    this.#reviews.add(state);
    const waits = this.observers === undefined ? undefined : handles.map((h) => h.held());
    if (waits !== undefined) {
      // Called when the wait is over: before a refused statement is completed, or once released.
      state.endWaits = () => {
        state.endWaits = undefined;
        const outcome: ApprovalWaitOutcome = state.cancelled ? 'cancelled' : (state.outcome ?? 'error');
        for (const w of waits) w?.(outcome);
      };
    }
    try {
      await this.#reviewInner(start, handles, decision, state);
    } finally {
      this.#reviews.delete(state);
      state.endWaits?.();
    }
  }

  async #reviewInner(start: StatementStart, handles: readonly StatementHandle[], decision: Decision, state: ReviewState): Promise<void> {
    const notRun = (): void => {
      state.endWaits?.();
      for (const h of handles) h.complete({ outcome: 'not-executed' });
    };
    const approvals = this.#governor.approvals;
    if (approvals === undefined) {
      notRun();
      throw clientErrors.accessDenied(`${decision.reason ?? 'the statement needs a review'}, but approvals are not configured on this gateway`);
    }
    const text = start.text ?? start.analysis.normalized;
    const parameters = start.parameters?.();
    const digest = statementDigest(text, parameters);
    for (const h of handles) h.digest = digest;
    const timeoutMs = this.#governor.reviewTimeoutMs;
    const reason = clientReason(start.text, this.application);
    const analysis = start.analysis;
    let ticket: ReviewTicket;
    try {
      ticket = await approvals.request({
        dialect: this.dialect,
        sessionId: this.id,
        statementId: handles[0]!.id,
        requester: this.identity,
        target: this.target,
        statement: text,
        normalized: analysis.normalized,
        fingerprint: analysis.fingerprint,
        digest,
        ...(parameters && parameters.length > 0 ? { parameters } : {}),
        operations: analysis.operations,
        objects: analysis.objects ?? [],
        hazards: analysis.hazards ?? [],
        rule: decision.rule,
        why: decision.reason ?? `held for review by rule "${decision.rule}"`,
        ...(reason !== undefined ? { reason } : {}),
        approvers: decision.approvers ?? { groups: [], subjects: [] },
        timeoutMs,
      });
    } catch (cause) {
      notRun();
      if (cause instanceof ApprovalError && cause.code !== 'unavailable') {
        // A request the service refuses (no approver can decide it, ...): say why.
        throw clientErrors.accessDenied(`${decision.reason ?? 'the statement needs a review'}, but no review request could be made: ${cause.message}`);
      }
      this.#logger.error({ err: cause, sessionId: this.id }, 'review request could not be created');
      throw clientErrors.governanceUnavailable('the review request could not be recorded', { cause });
    }
    const id = ticket.request.id;
    state.id = id;
    for (const h of handles) h.approval = id;
    // The client may have gone or cancelled while the request was being recorded.
    const givenUp = (): ClientFacingError | undefined => {
      if (state.cancelled) return clientErrors.cancelled(`review request ${id} withdrawn`);
      if (this.#ended) return clientErrors.accessDenied('the session ended while the statement waited for review');
      return undefined;
    };
    const early = givenUp();
    if (early) {
      await approvals.abandon(id, state.cancelled ? 'the client cancelled the statement' : 'the client disconnected').catch(() => undefined);
      notRun();
      throw early;
    }
    try {
      start.onHeld?.({ requestId: id, timeoutMs, reason: decision.reason ?? '', approvers: decision.approvers ?? { groups: [], subjects: [] } });
    } catch (err) {
      this.#logger.warn({ err }, 'could not tell the client that its statement is held');
    }
    const resolution = await ticket.settled;
    state.outcome = resolution.status;
    const req = resolution.request;
    if (resolution.status === 'approved') {
      const late = givenUp();
      if (late) {
        // Approved, but nobody is there to run it (or the client withdrew it): not used.
        await approvals.abandon(id, state.cancelled ? 'the client cancelled the statement' : 'the client disconnected').catch(() => undefined);
        notRun();
        throw late;
      }
      let consumed = false;
      try {
        consumed = await approvals.consume(id, digest);
      } catch (cause) {
        this.#logger.error({ err: cause, sessionId: this.id }, 'approval could not be consumed');
      }
      if (!consumed) {
        state.outcome = 'error';
        notRun();
        throw clientErrors.accessDenied(`approval ${id} could not be used for this statement; it was not run`);
      }
      // The approved statement is about to run: its intent is durable first, naming the approval.
      await this.#durableIntent(handles);
      if (state.cancelled) {
        notRun();
        throw clientErrors.cancelled(`review request ${id} withdrawn after its approval`);
      }
      return;
    }
    notRun();
    const by = req.decidedBy ? ` by ${req.decidedBy.subject}` : '';
    const why = req.decisionReason ? `: ${req.decisionReason}` : '';
    switch (resolution.status) {
      case 'rejected':
        throw clientErrors.accessDenied(`the statement was rejected${by}${why} (review request ${id}); it was not run`);
      case 'expired':
        throw clientErrors.accessDenied(
          `no approver decided within ${minutes(timeoutMs)} (review request ${id}); the statement was not run`,
          { hint: 'ask an approver to watch for requests (sluice approvals list), then run the statement again' },
        );
      default:
        if (state.cancelled) throw clientErrors.cancelled(`review request ${id} withdrawn`);
        throw clientErrors.accessDenied(`review request ${id} was abandoned${why}; the statement was not run`);
    }
  }

  /**
   * The client cancelled its running request: a statement waiting for an approver (or whose
   * request is being recorded, or whose approval is being used) is given up and fails with the
   * protocol's "cancelled" error. Returns true when one was in progress.
   */
  cancelReview(): boolean {
    if (this.#reviews.size === 0) return false;
    const approvals = this.#governor.approvals;
    for (const state of this.#reviews) {
      state.cancelled = true;
      if (state.id !== undefined) {
        approvals?.abandon(state.id, 'the client cancelled the statement').catch((err: unknown) => {
          this.#logger.error({ err, requestId: state.id }, 'could not mark a cancelled review request abandoned');
        });
      }
    }
    return true;
  }

  /** @internal */
  recordCompletion(json: string): void {
    // Group-committed without a promise; a write failure is logged by the store and makes it
    // unhealthy, which refuses the next statement (fail closed).
    this.#audit.enqueueJson(json);
  }

  /** Audits the end of the session, abandoning review requests it waited on. Idempotent. */
  end(reason: string): Promise<void> {
    if (this.#ended) return Promise.resolve();
    this.#ended = true;
    this.#admission?.release();
    if (this.observers !== undefined) {
      for (const o of this.observers) {
        try {
          o.end(reason);
        } catch (err) {
          this.#logger.error({ err, sessionId: this.id }, 'a session observer failed');
        }
      }
    }
    const approvals = this.#governor.approvals;
    const abandoned = [...this.#reviews].flatMap((state) =>
      state.id === undefined
        ? []
        : [
            (approvals?.abandon(state.id, `the client session ended (${reason})`) ?? Promise.resolve()).catch((err: unknown) => {
              this.#logger.error({ err, requestId: state.id }, 'could not mark a review request abandoned');
            }),
          ],
    );
    return Promise.all(abandoned)
      .then(() =>
        this.#audit.append(
          {
            type: 'disconnect',
            time: new Date().toISOString(),
            dialect: this.dialect,
            sessionId: this.id,
            sourceAddress: this.sourceAddress,
            actor: this.actor,
            target: this.target,
            durationMs: Date.now() - this.#startedAt,
            statements: this.#statements,
            reason,
          },
          { durable: false },
        ),
      )
      .then(
        () => undefined,
        (err: unknown) => {
          this.#logger.error({ err, sessionId: this.id }, 'audit store could not record a session end');
        },
      );
  }
}

/** A review in progress: its request id once recorded, whether the client withdrew it, how the wait ended. */
interface ReviewState {
  id?: string;
  cancelled: boolean;
  outcome?: ApprovalWaitOutcome;
  /** Ends the observers' approval waits (once). */
  endWaits?: (() => void) | undefined;
}

function connectionLimitError(over: LimitRefusal): ClientFacingError {
  return clientErrors.tooManyConnections(over.scope === 'identity' ? `identity ${over.key}` : `source address ${over.key}`, over.limit);
}

const EXPIRED: Decision = Object.freeze({ effect: 'deny', rule: 'credential-expired', reason: 'the credential has expired' });

/** The decision's JSON members, encoded once per decision object. */
const decisionCache = new WeakMap<Decision, string>();
function decisionMembers(d: Decision): string {
  let m = decisionCache.get(d);
  if (m === undefined) {
    m = `,"decision":"${d.effect}","rule":${JSON.stringify(d.rule)}`;
    if (d.guardrail !== undefined) m += `,"guardrail":${JSON.stringify(d.guardrail)}`;
    if (d.effect !== 'allow' && d.reason !== undefined) m += `,"reason":${JSON.stringify(d.reason)}`;
    decisionCache.set(d, m);
  }
  return m;
}

export class StatementHandle {
  /** Set when the caller must await it before forwarding; rejects with a ClientFacingError. */
  ready: Promise<void> | undefined;
  /** The review request that let it run (set while held for review). */
  approval: string | undefined;
  /** Digest of the exact text and parameters (for statements held for review). */
  digest: string | undefined;
  readonly #session: GovernedSession;
  readonly #start: StatementStart;
  readonly #startedAt = performance.now();
  #done = false;
  readonly #observers: StatementObserver[] | undefined;

  constructor(
    session: GovernedSession,
    readonly id: string,
    start: StatementStart,
    readonly decisionDetail: Decision,
  ) {
    this.#session = session;
    this.#start = start;
    this.#observers = session.observers === undefined ? undefined : session.observeStatement(this, start.text);
  }

  /** The session this statement belongs to. */
  get session(): GovernedSession {
    return this.#session;
  }

  /** @internal Tells observers the statement waits for an approver; returns what ends the wait. */
  held(): ((outcome: ApprovalWaitOutcome) => void) | undefined {
    const observers = this.#observers;
    if (observers === undefined) return undefined;
    const ends: ((outcome: ApprovalWaitOutcome) => void)[] = [];
    for (const o of observers) {
      try {
        const end = o.held?.(this.approval);
        if (end !== undefined) ends.push(end);
      } catch (err) {
        this.#session.logger.error({ err, statementId: this.id }, 'a statement observer failed');
      }
    }
    return (outcome) => {
      for (const end of ends) {
        try {
          end(outcome);
        } catch (err) {
          this.#session.logger.error({ err, statementId: this.id }, 'a statement observer failed');
        }
      }
    };
  }

  /** The analysis this statement was decided on. */
  get analysis(): Analysis {
    return this.#start.analysis;
  }

  /** True when the statement writes, changes schema, administers, or is not understood. */
  get privileged(): boolean {
    return isPrivileged(this.#start.analysis.operations);
  }

  get decision(): 'allow' | 'deny' | 'review' {
    return this.decisionDetail.effect;
  }

  get rule(): string {
    return this.decisionDetail.rule;
  }

  /**
   * @internal The statement record as JSON object text (a StatementEvent), built from
   * fragments encoded once per session, per analysis and per decision: this runs for every
   * statement.
   */
  encode(phase: 'intent' | 'complete', outcome?: StatementOutcome): string {
    let json =
      `{"type":"statement","time":"${isoNow()}"${this.#session.members}` +
      `,"phase":"${phase}","statementId":"${this.id}"${analysisMembers(this.#start.analysis)}` +
      `,"protocol":${JSON.stringify(this.#start.protocol)}${decisionMembers(this.decisionDetail)}`;
    if (this.approval !== undefined) json += `,"approval":${JSON.stringify(this.approval)}`;
    else if (this.decisionDetail.grant !== undefined) json += `,"approval":${JSON.stringify(`grant:${this.decisionDetail.grant}`)}`;
    if (this.digest !== undefined) json += `,"digest":"${this.digest}"`;
    if (outcome) {
      json += `,"outcome":"${outcome.outcome}","durationMs":${Math.round((performance.now() - this.#startedAt) * 1000) / 1000}`;
      if (outcome.rows !== undefined) json += `,"rows":${Number.isFinite(outcome.rows) ? outcome.rows : 0}`;
      if (outcome.errorCode !== undefined) json += `,"errorCode":${JSON.stringify(outcome.errorCode)}`;
      if (outcome.command !== undefined) json += `,"command":${JSON.stringify(outcome.command)}`;
      if (outcome.masked !== undefined && outcome.masked.length > 0) json += `,"masked":${JSON.stringify(outcome.masked)}`;
    }
    return `${json}}`;
  }

  /** Records the outcome (group-committed). Idempotent: only the first call counts. */
  complete(outcome: StatementOutcome): void {
    if (this.#done) return;
    this.#done = true;
    this.#session.recordCompletion(this.encode('complete', outcome));
    const observers = this.#observers;
    if (observers !== undefined) {
      for (const o of observers) {
        try {
          o.complete(outcome);
        } catch (err) {
          this.#session.logger.error({ err, statementId: this.id }, 'a statement observer failed');
        }
      }
    }
  }

  get completed(): boolean {
    return this.#done;
  }
}
