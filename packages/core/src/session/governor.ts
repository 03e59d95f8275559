import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { Analysis } from '../analysis/types.js';
import { isPrivileged } from '../analysis/types.js';
import type { AuditActor, AuditEvent, AuditStore } from '../audit/types.js';
import { ClientFacingError, clientErrors } from '../errors.js';
import type { Authenticator, Credentials, Identity } from '../identity/types.js';
import type { FailureLimiter } from '../identity/failure-limiter.js';

export interface GovernorOptions {
  readonly authenticator: Authenticator;
  readonly audit: AuditStore;
  readonly failureLimiter: FailureLimiter;
  readonly logger: Logger;
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
}

export interface StatementStart {
  readonly analysis: Analysis;
  /** The dialect's name for the protocol path ('simple', 'extended', ...). */
  readonly protocol: string;
}

export interface StatementOutcome {
  readonly outcome: 'ok' | 'error' | 'cancelled' | 'not-executed' | 'aborted';
  readonly rows?: number;
  readonly errorCode?: string;
  readonly command?: string;
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

  constructor(options: GovernorOptions) {
    this.#authenticator = options.authenticator;
    this.#audit = options.audit;
    this.#limiter = options.failureLimiter;
    this.#logger = options.logger;
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
    const session = new GovernedSession(this.#audit, this.#logger, start);
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
        },
        { durable: true },
      );
    } catch (cause) {
      throw clientErrors.governanceUnavailable('the audit store cannot write', { cause });
    }
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
  readonly #audit: AuditStore;
  readonly #logger: Logger;
  readonly #startedAt = Date.now();
  #statements = 0;
  #ended = false;

  /** JSON members shared by every statement record of this session, encoded once. */
  readonly #members: string;

  constructor(audit: AuditStore, logger: Logger, start: SessionStart) {
    this.#audit = audit;
    this.#logger = logger;
    this.identity = start.identity;
    this.actor = actorOf(start.identity);
    this.target = start.target;
    this.dialect = start.dialect;
    this.sourceAddress = start.sourceAddress;
    this.#members =
      `,"dialect":${JSON.stringify(this.dialect)},"sessionId":"${this.id}","sourceAddress":${JSON.stringify(this.sourceAddress)}` +
      `,"actor":${JSON.stringify(this.actor)},"target":${JSON.stringify(this.target)}`;
  }

  /** @internal */
  get members(): string {
    return this.#members;
  }

  get statementCount(): number {
    return this.#statements;
  }

  /**
   * Decides a statement and records it. Throws a ClientFacingError when it must not run
   * (fail closed when the audit store cannot write). The returned handle's `ready` is set when
   * the caller must wait before forwarding (a privileged statement's durable intent record);
   * when it is undefined the statement may be forwarded at once.
   */
  beginStatement(start: StatementStart): StatementHandle {
    if (!this.#audit.healthy) {
      this.#logger.error({ sessionId: this.id }, 'statement refused: audit store unavailable');
      throw clientErrors.governanceUnavailable('the audit store cannot write');
    }
    this.#statements++;
    if (this.identity.expiresAt !== undefined && Date.now() >= this.identity.expiresAt) {
      // The refusal is a statement record of its own: who tried what, and why it did not run.
      const refused = new StatementHandle(this, `${this.id}:${this.#statements}`, start, 'deny', 'credential-expired');
      refused.complete({ outcome: 'not-executed' });
      throw clientErrors.authFailed('the credential of this session has expired; reconnect with a fresh token');
    }
    const handle = new StatementHandle(this, `${this.id}:${this.#statements}`, start);
    if (isPrivileged(start.analysis.operations)) {
      handle.ready = this.#audit
        .appendJson(handle.encode('intent'), { durable: true })
        .then(
          () => undefined,
          (cause: unknown) => {
            throw clientErrors.governanceUnavailable('the audit store cannot write', { cause });
          },
        );
    }
    return handle;
  }

  /** @internal */
  recordCompletion(json: string): void {
    // Group-committed without a promise; a write failure is logged by the store and makes it
    // unhealthy, which refuses the next statement (fail closed).
    this.#audit.enqueueJson(json);
  }

  /** Audits the end of the session. Idempotent. */
  end(reason: string): Promise<void> {
    if (this.#ended) return Promise.resolve();
    this.#ended = true;
    return this.#audit
      .append(
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
      )
      .then(
        () => undefined,
        (err: unknown) => {
          this.#logger.error({ err, sessionId: this.id }, 'audit store could not record a session end');
        },
      );
  }
}

export class StatementHandle {
  /** Set when the caller must await it before forwarding; rejects with a ClientFacingError. */
  ready: Promise<void> | undefined;
  readonly #session: GovernedSession;
  readonly #start: StatementStart;
  readonly #startedAt = performance.now();
  #done = false;

  constructor(
    session: GovernedSession,
    readonly id: string,
    start: StatementStart,
    readonly decision: 'allow' | 'deny' | 'review' = 'allow',
    /** The rule (or built-in reason) behind a decision other than the default. */
    readonly rule?: string,
  ) {
    this.#session = session;
    this.#start = start;
  }

  /**
   * @internal The statement record as JSON object text (a StatementEvent), built from
   * fragments encoded once per session and once per analysis: this runs for every statement.
   */
  encode(phase: 'intent' | 'complete', outcome?: StatementOutcome): string {
    let json =
      `{"type":"statement","time":"${isoNow()}"${this.#session.members}` +
      `,"phase":"${phase}","statementId":"${this.id}"${analysisMembers(this.#start.analysis)}` +
      `,"protocol":${JSON.stringify(this.#start.protocol)},"decision":"${this.decision}"` +
      (this.rule !== undefined ? `,"rule":${JSON.stringify(this.rule)}` : '');
    if (outcome) {
      json += `,"outcome":"${outcome.outcome}","durationMs":${Math.round((performance.now() - this.#startedAt) * 1000) / 1000}`;
      if (outcome.rows !== undefined) json += `,"rows":${Number.isFinite(outcome.rows) ? outcome.rows : 0}`;
      if (outcome.errorCode !== undefined) json += `,"errorCode":${JSON.stringify(outcome.errorCode)}`;
      if (outcome.command !== undefined) json += `,"command":${JSON.stringify(outcome.command)}`;
    }
    return `${json}}`;
  }

  /** Records the outcome (group-committed). Idempotent: only the first call counts. */
  complete(outcome: StatementOutcome): void {
    if (this.#done) return;
    this.#done = true;
    this.#session.recordCompletion(this.encode('complete', outcome));
  }

  get completed(): boolean {
    return this.#done;
  }
}
