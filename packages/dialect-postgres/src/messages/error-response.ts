import { ByteWriter } from '@sluice/wire';
import { Backend } from './framing.js';

/**
 * ErrorResponse / NoticeResponse: Byte1 'E'|'N' | Int32 len | (Byte1 field, String value)* | NUL.
 * https://www.postgresql.org/docs/current/protocol-error-fields.html
 */
export interface ErrorFields {
  readonly severity: 'ERROR' | 'FATAL' | 'PANIC' | 'WARNING' | 'NOTICE' | 'INFO' | 'LOG';
  readonly code: string;
  readonly message: string;
  readonly detail?: string | undefined;
  readonly hint?: string | undefined;
}

export function encodeErrorResponse(fields: ErrorFields, type: number = Backend.ErrorResponse): Buffer {
  const w = new ByteWriter(128);
  w.uint8(type);
  const len = w.reserveInt32();
  w.uint8(0x53).cstring(fields.severity); // S
  w.uint8(0x56).cstring(fields.severity); // V (non-localized)
  w.uint8(0x43).cstring(fields.code); // C
  w.uint8(0x4d).cstring(fields.message); // M
  if (fields.detail) w.uint8(0x44).cstring(fields.detail); // D
  if (fields.hint) w.uint8(0x48).cstring(fields.hint); // H
  w.uint8(0);
  w.patchInt32(len, w.length - 1);
  return w.finish();
}

/**
 * One field of an ErrorResponse or NoticeResponse frame (type byte included), scanning fields
 * without decoding the rest. Undefined when the field is absent or the frame is malformed.
 */
export function readErrorField(frame: Buffer, field: number): string | undefined {
  let at = 5;
  while (at < frame.length) {
    const f = frame[at];
    if (f === 0 || f === undefined) return undefined;
    const nul = frame.indexOf(0, at + 1);
    if (nul === -1) return undefined;
    if (f === field) return frame.toString('utf8', at + 1, nul);
    at = nul + 1;
  }
  return undefined;
}

/** The SQLSTATE ('C' field) of an ErrorResponse frame. */
export function readErrorCode(frame: Buffer): string | undefined {
  return readErrorField(frame, 0x43);
}
