import { ErrorKind, type ClientFacingError } from '@sluice/core';
import { CLIENT_PROTOCOL_41 } from './protocol/constants.js';
import { encodeErr } from './protocol/messages.js';

/**
 * MySQL error number and SQLSTATE for each client-facing error kind, as the server itself
 * reports the nearest condition (https://dev.mysql.com/doc/mysql-errors/8.0/en/server-error-reference.html),
 * so that clients and tools react as they would to the server.
 */
const NATIVE: Record<ErrorKind, { readonly errno: number; readonly sqlstate: string }> = {
  [ErrorKind.AuthFailed]: { errno: 1045, sqlstate: '28000' }, // ER_ACCESS_DENIED_ERROR
  [ErrorKind.RateLimited]: { errno: 1040, sqlstate: '08004' }, // ER_CON_COUNT_ERROR
  [ErrorKind.TooManyConnections]: { errno: 1040, sqlstate: '08004' }, // ER_CON_COUNT_ERROR
  [ErrorKind.StatementRateLimited]: { errno: 1226, sqlstate: '42000' }, // ER_USER_LIMIT_REACHED
  [ErrorKind.IdleTimeout]: { errno: 4031, sqlstate: 'HY000' }, // ER_CLIENT_INTERACTION_TIMEOUT
  [ErrorKind.IdleInTransactionTimeout]: { errno: 4031, sqlstate: 'HY000' }, // ER_CLIENT_INTERACTION_TIMEOUT
  [ErrorKind.AccessDenied]: { errno: 1142, sqlstate: '42000' }, // ER_TABLEACCESS_DENIED_ERROR
  [ErrorKind.TargetNotFound]: { errno: 1049, sqlstate: '42000' }, // ER_BAD_DB_ERROR
  [ErrorKind.ProtocolViolation]: { errno: 1047, sqlstate: '08S01' }, // ER_UNKNOWN_COM_ERROR
  [ErrorKind.MessageTooLarge]: { errno: 1153, sqlstate: '08S01' }, // ER_NET_PACKET_TOO_LARGE
  [ErrorKind.FeatureNotSupported]: { errno: 1235, sqlstate: '42000' }, // ER_NOT_SUPPORTED_YET
  [ErrorKind.GovernanceUnavailable]: { errno: 1105, sqlstate: 'HY000' }, // ER_UNKNOWN_ERROR
  [ErrorKind.UpstreamUnavailable]: { errno: 2013, sqlstate: 'HY000' }, // CR_SERVER_LOST
  [ErrorKind.ShuttingDown]: { errno: 1053, sqlstate: '08S01' }, // ER_SERVER_SHUTDOWN
  [ErrorKind.Cancelled]: { errno: 1317, sqlstate: '70100' }, // ER_QUERY_INTERRUPTED
  [ErrorKind.Internal]: { errno: 1105, sqlstate: 'HY000' }, // ER_UNKNOWN_ERROR
};

export function nativeErrorOf(kind: ErrorKind): { readonly errno: number; readonly sqlstate: string } {
  return NATIVE[kind];
}

/** The ERR packet payload for a client-facing error (detail and hint joined to the message). */
export function encodeClientError(err: ClientFacingError, capabilities: number = CLIENT_PROTOCOL_41): Buffer {
  const { errno, sqlstate } = NATIVE[err.kind];
  let message = err.message;
  if (err.detail) message += ` (${err.detail})`;
  if (err.hint) message += `; ${err.hint}`;
  return encodeErr(errno, sqlstate, message, capabilities);
}
