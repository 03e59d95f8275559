import type { AuditActor } from '../audit/types.js';
import type { OperationClass, ObjectRef, Hazard } from '../analysis/types.js';
import type { Identity } from '../identity/types.js';

/**
 * Inline approvals: a statement whose decision is `review` is held inside the client's live
 * session while a review request waits for an approver.
 */

export type ApprovalStatus =
  /** Waiting for an approver; the client's session is waiting too. */
  | 'pending'
  /** Approved; the held statement may run once (see `consume`). */
  | 'approved'
  /** The approved statement was released to the database. */
  | 'executed'
  | 'rejected'
  /** Nobody decided within the timeout. */
  | 'expired'
  /** The client's session ended (disconnect, gateway restart) before a decision. */
  | 'abandoned';

/** Who may approve a request: any identity in one of the groups or with one of the subjects. */
export interface ApproverSpec {
  readonly groups: readonly string[];
  readonly subjects: readonly string[];
}

/** The statement under review and who may decide it: the same in a submission and in the stored request. */
export interface ReviewedStatement {
  readonly dialect: string;
  readonly sessionId: string;
  readonly statementId: string;
  readonly target: string;
  /** The exact statement text that will run if approved (literals included). */
  readonly statement: string;
  /** Normalized text (literals replaced), as in the audit trail. */
  readonly normalized: string;
  readonly fingerprint: string;
  /**
   * SHA-256 (hex) over the exact statement text and its bound parameters: the approval is
   * bound to it, so it cannot release any other statement.
   */
  readonly digest: string;
  /** Bound parameters as text (null for SQL NULL), when the statement has any. */
  readonly parameters?: readonly (string | null)[];
  readonly operations: readonly OperationClass[];
  readonly objects: readonly ObjectRef[];
  readonly hazards: readonly Hazard[];
  /** The rule or guardrail that asked for review, and why, as shown to the approver. */
  readonly rule: string;
  readonly why: string;
  /** The reason the client gave (application_name, a `/* reason: ... *\/` comment). */
  readonly reason?: string;
  /** Who may approve; the requester never may. */
  readonly approvers: ApproverSpec;
}

/** What a session submits when a statement needs review. */
export interface ReviewInput extends ReviewedStatement {
  readonly requester: Identity;
  /** How long to wait for a decision. */
  readonly timeoutMs: number;
}

/** A review request as stored and shown to approvers. */
export interface ApprovalRequest extends ReviewedStatement {
  /** Short, unique, easy to type (for example `r-7k3p9q`). */
  readonly id: string;
  readonly status: ApprovalStatus;
  readonly createdAt: string;
  readonly expiresAt: string;
  readonly decidedAt?: string;
  readonly requester: AuditActor;
  /** The approver (on approved/executed/rejected). */
  readonly decidedBy?: AuditActor;
  /** The approver's or the system's words (rejection reason, "timed out", ...). */
  readonly decisionReason?: string;
  /** A grant created together with the approval, if the approver asked for one. */
  readonly grantId?: string;
  /**
   * The gateway replica holding the statement (its `replicaId`): only it releases the statement,
   * and only it abandons the request when it restarts. Missing in records of older gateways.
   */
  readonly owner?: string;
}

/** How a held statement's wait ended. */
export type ReviewResolution =
  | { readonly status: 'approved'; readonly request: ApprovalRequest }
  | { readonly status: 'rejected' | 'expired' | 'abandoned'; readonly request: ApprovalRequest };

/** A created request, and the promise that settles when it is decided (never rejects). */
export interface ReviewTicket {
  readonly request: ApprovalRequest;
  readonly settled: Promise<ReviewResolution>;
}

/**
 * A time-boxed grant: for a duration, the identity may run what the grant covers without a
 * review (explicit deny rules and blocking guardrails still apply).
 */
export interface Grant {
  readonly id: string;
  readonly subject: string;
  /** Targets covered; empty means every target. */
  readonly targets: readonly string[];
  /** Operation classes covered. */
  readonly operations: readonly OperationClass[];
  /** Object patterns covered (`schema.table`, `*` wildcards); empty means every object. */
  readonly objects: readonly string[];
  /** Guardrails in review mode that the grant lifts (names). */
  readonly guardrails: readonly string[];
  readonly createdAt: string;
  readonly expiresAt: string;
  readonly grantedBy: AuditActor;
  readonly reason?: string;
  /** Set when revoked before it expired. */
  readonly revokedAt?: string;
  readonly revokedBy?: AuditActor;
  /** The request it was granted from, if any. */
  readonly requestId?: string;
}

export interface GrantInput {
  readonly subject: string;
  readonly targets?: readonly string[];
  readonly operations: readonly OperationClass[];
  readonly objects?: readonly string[];
  readonly guardrails?: readonly string[];
  readonly durationMs: number;
  readonly reason?: string;
}

export interface DecideOptions {
  readonly reason?: string;
  /** On approve: also grant the requester what the request covers, for this long. */
  readonly grantForMs?: number;
}

/** Why an approver's action was refused. */
export type ApprovalErrorCode =
  | 'not-found'
  /** Already decided, expired or abandoned. */
  | 'not-pending'
  | 'self-approval'
  | 'not-an-approver'
  | 'invalid'
  | 'unavailable';

export class ApprovalError extends Error {
  override readonly name = 'ApprovalError';
  constructor(
    readonly code: ApprovalErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export interface ApprovalFilter {
  readonly status?: ApprovalStatus | readonly ApprovalStatus[];
  readonly target?: string;
  readonly limit?: number;
}

/** The approvals service the sessions, the admin API and the CLI use. */
export interface Approvals {
  /**
   * Creates a request (durably: persisted and audited before it resolves), notifies the
   * approvers, and returns a ticket whose `settled` resolves on approval, rejection,
   * expiry (input.timeoutMs) or abandonment. Rejects with ApprovalError('unavailable') when
   * the request cannot be stored or audited (the caller then refuses the statement), and with
   * ApprovalError('invalid') when the input is malformed (no approver named, a timeout that is
   * not positive, ...).
   */
  request(input: ReviewInput): Promise<ReviewTicket>;
  list(filter?: ApprovalFilter): readonly ApprovalRequest[];
  get(id: string): ApprovalRequest | undefined;
  /**
   * Approves a pending request. Throws ApprovalError (self-approval, not-an-approver, ...).
   * With `grantForMs` the approver must also be one of the service's grant approvers.
   */
  approve(id: string, approver: Identity, options?: DecideOptions): Promise<ApprovalRequest>;
  reject(id: string, approver: Identity, options?: DecideOptions): Promise<ApprovalRequest>;
  /**
   * Called by the session right before it releases the held statement: true only if the
   * request is approved, not yet consumed, and `digest` is the one that was approved; the
   * request then becomes `executed`. Any mismatch is audited and returns false. Also false
   * (never a rejection) when the release cannot be stored or audited: the request is then
   * abandoned and the statement must not run.
   */
  consume(id: string, digest: string): Promise<boolean>;
  /** The session ended while waiting. Idempotent; a no-op once decided. */
  abandon(id: string, why: string): Promise<void>;
  grant(input: GrantInput, grantor: Identity): Promise<Grant>;
  /** Ends a grant in force now. Throws not-found, not-an-approver, or not-pending once it was revoked or expired. */
  revokeGrant(id: string, by: Identity): Promise<Grant>;
  /** Grants in force now for a subject on a target. Synchronous: on the statement path. */
  activeGrants(subject: string, target: string): readonly Grant[];
  /** Grants in force, newest first; with includeExpired also expired and revoked ones. */
  listGrants(options?: { readonly includeExpired?: boolean }): readonly Grant[];
  close(): Promise<void>;
}
