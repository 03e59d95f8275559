import { Backend } from './framing.js';

/**
 * Fixed backend messages built once. Authentication: Byte1 'R' | Int32 len | Int32 code.
 * https://www.postgresql.org/docs/current/protocol-message-formats.html
 */
function auth(code: number): Buffer {
  const out = Buffer.alloc(9);
  out[0] = Backend.Authentication;
  out.writeInt32BE(8, 1);
  out.writeInt32BE(code, 5);
  return out;
}

export const AUTHENTICATION_OK = auth(0);
export const AUTHENTICATION_CLEARTEXT_PASSWORD = auth(3);

/** BackendKeyData: Byte1 'K' | Int32 12 | Int32 pid | Int32 secret. */
export function encodeBackendKeyData(processId: number, secretKey: number): Buffer {
  const out = Buffer.allocUnsafe(13);
  out[0] = Backend.BackendKeyData;
  out.writeInt32BE(12, 1);
  out.writeInt32BE(processId, 5);
  out.writeInt32BE(secretKey, 9);
  return out;
}

/** ReadyForQuery: Byte1 'Z' | Int32 5 | Byte1 status ('I' idle, 'T' in transaction, 'E' failed). */
export function encodeReadyForQuery(status: 'I' | 'T' | 'E'): Buffer {
  const out = Buffer.allocUnsafe(6);
  out[0] = Backend.ReadyForQuery;
  out.writeInt32BE(5, 1);
  out[5] = status.charCodeAt(0);
  return out;
}
