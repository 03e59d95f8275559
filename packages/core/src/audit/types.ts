import type { IdentityKind } from '../identity/types.js';
import type { OperationClass } from '../analysis/types.js';

/** Who, as stored in the audit trail (no secrets). */
export interface AuditActor {
  readonly subject: string;
  readonly kind: IdentityKind;
  readonly groups: readonly string[];
  readonly method: 'token' | 'oidc';
}

interface BaseEvent {
  /** ISO-8601 timestamp with milliseconds, UTC. */
  readonly time: string;
  readonly dialect: string;
  /** The gateway session id; absent for refused connection attempts. */
  readonly sessionId?: string;
  readonly sourceAddress?: string;
}

export interface ConnectEvent extends BaseEvent {
  readonly type: 'connect';
  readonly outcome: 'accepted' | 'refused';
  /** The user name the client presented (not verified when refused). */
  readonly username: string;
  readonly actor?: AuditActor;
  readonly target?: string;
  /** Why the attempt was refused, in words that reveal no secret. */
  readonly reason?: string;
  readonly tls: boolean;
  readonly application?: string;
  /** The verified client certificate (mutual TLS), on accepted connections that presented one. */
  readonly clientCert?: { readonly subject: string; readonly fingerprint256: string };
}

export interface DisconnectEvent extends BaseEvent {
  readonly type: 'disconnect';
  readonly actor: AuditActor;
  readonly target: string;
  readonly durationMs: number;
  readonly statements: number;
  /** 'client' (orderly Terminate), 'client-lost', 'upstream-lost', 'error', 'shutdown'. */
  readonly reason: string;
}

export interface StatementEvent extends BaseEvent {
  readonly type: 'statement';
  /**
   * 'intent': written and made durable before a privileged statement is forwarded;
   * 'complete': the outcome. Reads only get 'complete'.
   */
  readonly phase: 'intent' | 'complete';
  /** Session-unique statement id, linking the intent and complete records. */
  readonly statementId: string;
  readonly actor: AuditActor;
  readonly target: string;
  /** Statement text with literals replaced by placeholders. */
  readonly text: string;
  /** Hex fingerprint of the normalized text. */
  readonly fingerprint: string;
  readonly operations: readonly OperationClass[];
  /** 'simple' | 'extended' | 'function-call' ... as the dialect names its protocol path. */
  readonly protocol: string;
  readonly decision: 'allow' | 'deny' | 'review';
  readonly rule?: string;
  /** On 'complete'. */
  readonly outcome?: 'ok' | 'error' | 'cancelled' | 'not-executed' | 'aborted';
  readonly durationMs?: number;
  readonly rows?: number;
  /** Native error code on error (SQLSTATE for PostgreSQL). */
  readonly errorCode?: string;
  readonly command?: string;
  /** The guardrail behind a deny or review decision, when one was. */
  readonly guardrail?: string;
  /** Why the decision was made, as the client was told (deny, review). */
  readonly reason?: string;
  /** The approval request (or grant, `grant:<id>`) that let a reviewed statement run. */
  readonly approval?: string;
  /** SHA-256 of the exact statement text and parameters, for statements held for review. */
  readonly digest?: string;
  /** On 'complete': result columns masked or scanned, and the rule or detector that did it (never a value). */
  readonly masked?: readonly MaskedColumn[];
}

/** A result column the gateway masked: its name as the client saw it, and `by` a rule name or `detector:<kind>`. */
export interface MaskedColumn {
  readonly column: string;
  readonly by: string;
}

/** A step in the life of a review request or a grant. */
export interface ApprovalEvent extends BaseEvent {
  readonly type: 'approval';
  readonly action:
    | 'requested'
    | 'approved'
    | 'rejected'
    | 'expired'
    | 'abandoned'
    | 'executed'
    | 'refused-reuse'
    | 'grant-created'
    | 'grant-revoked';
  /** The request id (absent for grant actions not tied to a request). */
  readonly requestId?: string;
  readonly grantId?: string;
  /** Who asked (the requester, or the identity a grant is for). */
  readonly actor: AuditActor;
  readonly target?: string;
  /** The approver, or the identity that granted or revoked. */
  readonly approver?: AuditActor;
  readonly statementId?: string;
  readonly text?: string;
  /** The exact statement (on 'requested'). */
  readonly statement?: string;
  readonly fingerprint?: string;
  readonly digest?: string;
  readonly rule?: string;
  readonly reason?: string;
  /** On grant-created: what the grant covers and until when. */
  readonly operations?: readonly OperationClass[];
  readonly expiresAt?: string;
}

export interface CancelEvent extends BaseEvent {
  readonly type: 'cancel';
  readonly outcome: 'forwarded' | 'ignored';
  readonly actor?: AuditActor;
  readonly target?: string;
}

/** The gateway's configuration: which policy was in force, and when it changed. */
export interface ConfigEvent extends BaseEvent {
  readonly type: 'config';
  /** 'loaded' at start, 'reloaded' after SIGHUP / sluice reload, 'reload-refused' when the new file did not validate. */
  readonly action: 'loaded' | 'reloaded' | 'reload-refused';
  /** The config file. */
  readonly file: string;
  /** SHA-256 (hex) of the policy section as validated: equal digests, equal policies. */
  readonly policyDigest?: string;
  /** Number of policy rules. */
  readonly rules?: number;
  /** Not known for a signal; present for symmetry with the other events. */
  readonly actor?: AuditActor;
  readonly target?: string;
  /** What happened, or why the new file was refused. */
  readonly reason?: string;
}

export type AuditEvent = ConnectEvent | DisconnectEvent | StatementEvent | CancelEvent | ApprovalEvent | ConfigEvent;

/** A stored event: the event plus its place in the hash chain. */
export type AuditRecord = AuditEvent & {
  /** 1-based position in the chain. */
  readonly seq: number;
  /** Hash of the previous record (64 hex zeros for the first). */
  readonly prev: string;
  /** SHA-256 (hex) over the canonical JSON of the record without `hash`. */
  readonly hash: string;
};

/** Where a record landed in the chain. */
export interface AuditLink {
  readonly seq: number;
  readonly prev: string;
  readonly hash: string;
}

export interface AuditAppendOptions {
  /**
   * When true the returned promise resolves only once the record is on stable storage
   * (fsync). Otherwise it is group-committed within the store's window; the promise
   * still resolves when it is written.
   */
  readonly durable: boolean;
}

export interface AuditStore {
  /**
   * Appends an event. The chain order is the call order. Rejects if the store cannot write;
   * after a write failure the store is unhealthy and every later append rejects.
   */
  append(event: AuditEvent, options: AuditAppendOptions): Promise<AuditRecord>;
  /**
   * Appends an event already serialized as JSON object text (without seq, prev and hash), as
   * the hot path does with pre-encoded fragments. Same ordering and failure rules as `append`.
   */
  appendJson(json: string, options: AuditAppendOptions): Promise<AuditLink>;
  /**
   * Appends a group-committed event whose caller does not wait: no promise is made. A write
   * failure makes the store unhealthy (callers then fail closed) and is logged by the store.
   */
  enqueueJson(json: string): void;
  /** False once a write has failed: callers must refuse new statements (fail closed). */
  readonly healthy: boolean;
  /**
   * True while the store cannot write now but keeps the records appended with `enqueueJson` to
   * write them when it can (a shared store during an outage, when configured so). Reads may then
   * run; statements that need a durable record are still refused. Absent means false.
   */
  readonly deferring?: boolean;
  /** Flushes everything buffered and makes it durable. */
  flush(): Promise<void>;
  close(): Promise<void>;
}
