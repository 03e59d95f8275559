/**
 * Errors. A `GatewayError` carries a stable code and an optional cause; a
 * `ClientFacingError` is the subset a dialect may show to the client, encoded
 * natively (SQLSTATE, MySQL errno, ...) from its `kind`. Anything that is not a
 * ClientFacingError is logged and replaced by a generic message.
 */

export const ErrorKind = {
  /** The presented credential is missing, malformed, wrong, expired or not for this user. */
  AuthFailed: 'auth_failed',
  /** Too many failed logins or too many requests from one source or identity. */
  RateLimited: 'rate_limited',
  /** The identity or the source address already has as many sessions as the gateway allows. */
  TooManyConnections: 'too_many_connections',
  /** The identity or the source address sends statements faster than the gateway allows (the session stays usable). */
  StatementRateLimited: 'statement_rate_limited',
  /** The session waited for its client longer than the idle session timeout. */
  IdleTimeout: 'idle_timeout',
  /** The session sat inside an open transaction longer than the idle-in-transaction timeout. */
  IdleInTransactionTimeout: 'idle_in_transaction_timeout',
  /** The identity may not do this (policy). */
  AccessDenied: 'access_denied',
  /** The requested target (database) is not configured. */
  TargetNotFound: 'target_not_found',
  /** The client sent bytes that do not follow the protocol. */
  ProtocolViolation: 'protocol_violation',
  /** A message is larger than the configured limit. */
  MessageTooLarge: 'message_too_large',
  /** The client asked for something the gateway does not support. */
  FeatureNotSupported: 'feature_not_supported',
  /** The audit store (or another component needed to decide) is failing: fail closed. */
  GovernanceUnavailable: 'governance_unavailable',
  /** The upstream database cannot be reached or refused the gateway. */
  UpstreamUnavailable: 'upstream_unavailable',
  /** The gateway is shutting down. */
  ShuttingDown: 'shutting_down',
  /** The client cancelled its request (while the gateway held it, before it reached the database). */
  Cancelled: 'cancelled',
  /** Anything else; the message is generic. */
  Internal: 'internal',
} as const;
export type ErrorKind = (typeof ErrorKind)[keyof typeof ErrorKind];

const GATEWAY_ERROR = Symbol.for('sluice.GatewayError');
const CLIENT_FACING = Symbol.for('sluice.ClientFacingError');

export class GatewayError extends Error {
  readonly [GATEWAY_ERROR] = true;
  constructor(
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'GatewayError';
  }
  static is(value: unknown): value is GatewayError {
    return typeof value === 'object' && value !== null && GATEWAY_ERROR in value;
  }
}

/** An error whose message is safe to show to the client. It never carries a secret. */
export class ClientFacingError extends GatewayError {
  readonly [CLIENT_FACING] = true;
  constructor(
    readonly kind: ErrorKind,
    message: string,
    options?: { cause?: unknown; detail?: string; hint?: string; fatal?: boolean },
  ) {
    super(`sluice.${kind}`, message, options);
    this.name = 'ClientFacingError';
    this.detail = options?.detail;
    this.hint = options?.hint;
    this.fatal = options?.fatal ?? false;
  }
  readonly detail: string | undefined;
  readonly hint: string | undefined;
  /** When true the session ends after the error is sent. */
  readonly fatal: boolean;
  static override is(value: unknown): value is ClientFacingError {
    return typeof value === 'object' && value !== null && CLIENT_FACING in value;
  }
}

type Opts = { cause?: unknown; detail?: string; hint?: string };

/** Named constructors: every client-facing error is made here, so messages stay consistent. */
export const clientErrors = {
  authFailed: (reason: string, o?: Opts) =>
    new ClientFacingError(ErrorKind.AuthFailed, `authentication failed: ${reason}`, { ...o, fatal: true }),
  rateLimited: (what: string, retryAfterSeconds: number, o?: Opts) =>
    new ClientFacingError(
      ErrorKind.RateLimited,
      `too many ${what}; try again in ${Math.max(1, Math.ceil(retryAfterSeconds))} s`,
      { ...o, fatal: true },
    ),
  accessDenied: (reason: string, o?: Opts) => new ClientFacingError(ErrorKind.AccessDenied, reason, o),
  targetNotFound: (name: string, known: readonly string[]) =>
    new ClientFacingError(ErrorKind.TargetNotFound, `no target named "${name}" is configured on this gateway`, {
      hint: known.length ? `connect to one of: ${known.join(', ')}` : 'the gateway has no targets configured',
      fatal: true,
    }),
  protocolViolation: (what: string, o?: Opts) =>
    new ClientFacingError(ErrorKind.ProtocolViolation, `protocol violation: ${what}`, { ...o, fatal: true }),
  messageTooLarge: (size: number, limit: number) =>
    new ClientFacingError(
      ErrorKind.MessageTooLarge,
      `message of ${size} bytes exceeds the gateway's limit of ${limit} bytes`,
      { fatal: true, hint: 'raise limits.maxMessageBytes in the gateway config if this is expected' },
    ),
  featureNotSupported: (what: string, o?: Opts) =>
    new ClientFacingError(ErrorKind.FeatureNotSupported, `${what} is not supported by the gateway`, o),
  governanceUnavailable: (what: string, o?: Opts) =>
    new ClientFacingError(
      ErrorKind.GovernanceUnavailable,
      `${what}; the statement was refused (the gateway fails closed)`,
      o,
    ),
  upstreamUnavailable: (target: string, o?: Opts) =>
    new ClientFacingError(ErrorKind.UpstreamUnavailable, `the database behind target "${target}" is unavailable`, {
      ...o,
      fatal: true,
    }),
  tooManyConnections: (what: string, limit: number) =>
    new ClientFacingError(ErrorKind.TooManyConnections, `too many connections for ${what}: the gateway allows ${limit} at a time`, {
      fatal: true,
      hint: 'close idle sessions (or use a connection pool of a smaller size), or ask the gateway operator to raise limits.connections',
    }),
  statementRateLimited: (what: string, perSecond: number, retryAfterSeconds: number) =>
    new ClientFacingError(
      ErrorKind.StatementRateLimited,
      `statement rate limit reached for ${what}: the gateway allows ${perSecond} statements per second; the statement was not run`,
      {
        hint: `retry in ${retryAfterSeconds < 1 ? `${Math.max(1, Math.ceil(retryAfterSeconds * 1000))} ms` : `${Math.ceil(retryAfterSeconds)} s`}, or ask the gateway operator to raise limits.statementsPerSecond`,
      },
    ),
  /** A request of more statements than the bucket holds: waiting would never let it run. */
  statementRequestOverBurst: (what: string, statements: number, burst: number) =>
    new ClientFacingError(
      ErrorKind.StatementRateLimited,
      `statement rate limit for ${what}: a request of ${statements} statements is more than the ${burst} the gateway lets run at once; the statements were not run`,
      { hint: 'send the statements in smaller requests, or ask the gateway operator to raise limits.statementsPerSecond or its burstSeconds' },
    ),
  idleTimeout: (ms: number) =>
    new ClientFacingError(ErrorKind.IdleTimeout, `terminating connection due to idle-session timeout (no request for ${ms} ms)`, {
      fatal: true,
      hint: 'reconnect; the gateway ends sessions idle longer than limits.idleSessionTimeoutMs',
    }),
  idleInTransactionTimeout: (ms: number) =>
    new ClientFacingError(
      ErrorKind.IdleInTransactionTimeout,
      `terminating connection due to idle-in-transaction timeout (no request for ${ms} ms inside an open transaction; it was rolled back)`,
      { fatal: true, hint: 'commit or roll back promptly; the gateway ends sessions idle in a transaction longer than limits.idleInTransactionTimeoutMs' },
    ),
  cancelled: (what: string) => new ClientFacingError(ErrorKind.Cancelled, `canceling statement due to user request (${what})`),
  shuttingDown: () =>
    new ClientFacingError(ErrorKind.ShuttingDown, 'the gateway is shutting down', { fatal: true }),
  internal: (o?: Opts) =>
    new ClientFacingError(ErrorKind.Internal, 'internal gateway error; the event was logged', { ...o, fatal: true }),
} as const;

/** Turns anything thrown into something safe to show: ClientFacingError passes, the rest becomes generic. */
export function toClientFacing(err: unknown): ClientFacingError {
  if (ClientFacingError.is(err)) return err;
  return clientErrors.internal({ cause: err });
}

/** A text with the password of any `scheme://user:password@` URL in it replaced by `***`. */
export function redactUrlPassword(text: string): string {
  return text.replace(/\/\/([^:/@]*):[^@/]*@/g, '//$1:***@');
}
