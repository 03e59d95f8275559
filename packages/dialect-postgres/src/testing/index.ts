/**
 * Fixture builders for tests of the PostgreSQL dialect and of code built on it. Exported as
 * `@sluice/dialect-postgres/testing`.
 */
import { readErrorCode } from '../messages/error-response.js';
import { Backend, Frontend } from '../messages/framing.js';
import { encodeStartupMessage } from '../messages/startup-message.js';

/** A typed frontend message: Byte1 type | Int32 length | payload. */
export function frontendMessage(type: keyof typeof Frontend | number, payload: Buffer | string = Buffer.alloc(0)): Buffer {
  const code = typeof type === 'number' ? type : Frontend[type];
  const body = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const out = Buffer.allocUnsafe(5 + body.length);
  out[0] = code;
  out.writeInt32BE(4 + body.length, 1);
  body.copy(out, 5);
  return out;
}

export function startupMessage(params: Record<string, string>): Buffer {
  return encodeStartupMessage(new Map(Object.entries(params)));
}

export function passwordMessage(password: string): Buffer {
  return frontendMessage('Password', `${password}\0`);
}

export function queryMessage(text: string): Buffer {
  return frontendMessage('Query', `${text}\0`);
}

/** Splits a backend byte stream into frames (type char and whole frame). */
export function splitBackendFrames(bytes: Buffer): { type: string; frame: Buffer }[] {
  const out: { type: string; frame: Buffer }[] = [];
  let at = 0;
  while (at + 5 <= bytes.length) {
    const len = bytes.readInt32BE(at + 1);
    const end = at + 1 + len;
    if (end > bytes.length) break;
    out.push({ type: String.fromCharCode(bytes[at]!), frame: bytes.subarray(at, end) });
    at = end;
  }
  return out;
}

/** The SQLSTATE of the first ErrorResponse in a backend byte stream, if any. */
export function firstErrorCode(bytes: Buffer): string | undefined {
  const e = splitBackendFrames(bytes).find((f) => f.frame[0] === Backend.ErrorResponse);
  return e ? readErrorCode(e.frame) : undefined;
}
