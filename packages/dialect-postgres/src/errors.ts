import { ErrorKind, type ClientFacingError } from '@sluice/core';
import { encodeErrorResponse } from './messages/error-response.js';

/** SQLSTATE for each client-facing error kind. https://www.postgresql.org/docs/current/errcodes-appendix.html */
const SQLSTATE: Record<ErrorKind, string> = {
  [ErrorKind.AuthFailed]: '28P01', // invalid_password
  [ErrorKind.RateLimited]: '53300', // too_many_connections
  [ErrorKind.TooManyConnections]: '53300', // too_many_connections
  [ErrorKind.StatementRateLimited]: '53400', // configuration_limit_exceeded
  [ErrorKind.IdleTimeout]: '57P05', // idle_session_timeout
  [ErrorKind.IdleInTransactionTimeout]: '25P03', // idle_in_transaction_session_timeout
  [ErrorKind.AccessDenied]: '42501', // insufficient_privilege
  [ErrorKind.TargetNotFound]: '3D000', // invalid_catalog_name
  [ErrorKind.ProtocolViolation]: '08P01', // protocol_violation
  [ErrorKind.MessageTooLarge]: '08P01', // protocol_violation
  [ErrorKind.FeatureNotSupported]: '0A000', // feature_not_supported
  [ErrorKind.GovernanceUnavailable]: '58000', // system_error
  [ErrorKind.UpstreamUnavailable]: '08006', // connection_failure
  [ErrorKind.ShuttingDown]: '57P01', // admin_shutdown
  [ErrorKind.Cancelled]: '57014', // query_canceled
  [ErrorKind.Internal]: 'XX000', // internal_error
};

export function sqlstateOf(kind: ErrorKind): string {
  return SQLSTATE[kind];
}

/** Encodes a client-facing error as a native ErrorResponse (FATAL when it ends the session). */
export function encodeClientError(err: ClientFacingError): Buffer {
  return encodeErrorResponse({
    severity: err.fatal ? 'FATAL' : 'ERROR',
    code: SQLSTATE[err.kind],
    message: err.message,
    detail: err.detail,
    hint: err.hint,
  });
}
