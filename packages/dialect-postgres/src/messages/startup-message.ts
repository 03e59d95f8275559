import { ByteReader } from '@sluice/wire';
import { ProtocolCode } from './framing.js';

/**
 * The first packet on a connection: Int32 length | Int32 code | payload.
 * V3 startup: code 196608 then (name NUL value NUL)* NUL.
 * SSLRequest / GSSENCRequest: code only. CancelRequest: code | Int32 pid | Int32 secret.
 */
export type StartupPacket =
  | { readonly kind: 'startup'; readonly params: ReadonlyMap<string, string> }
  | { readonly kind: 'ssl' }
  | { readonly kind: 'gssenc' }
  | { readonly kind: 'cancel'; readonly processId: number; readonly secretKey: number }
  | { readonly kind: 'unsupported'; readonly code: number };

export function decodeStartupPacket(frame: Buffer): StartupPacket {
  const r = new ByteReader(frame);
  r.skip(4);
  const code = r.int32();
  switch (code) {
    case ProtocolCode.SslRequest:
      return { kind: 'ssl' };
    case ProtocolCode.GssEncRequest:
      return { kind: 'gssenc' };
    case ProtocolCode.CancelRequest: {
      const processId = r.int32();
      // Newer clients may send a longer key; the classic key is 4 bytes.
      const secretKey = r.int32();
      return { kind: 'cancel', processId, secretKey };
    }
    case ProtocolCode.V3: {
      const params = new Map<string, string>();
      for (;;) {
        const name = r.cstring();
        if (name === '') break;
        params.set(name, r.cstring());
      }
      return { kind: 'startup', params };
    }
    default:
      return { kind: 'unsupported', code };
  }
}

export function encodeStartupMessage(params: ReadonlyMap<string, string>): Buffer {
  let size = 4 + 4 + 1;
  for (const [k, v] of params) size += Buffer.byteLength(k) + Buffer.byteLength(v) + 2;
  const out = Buffer.allocUnsafe(size);
  out.writeInt32BE(size, 0);
  out.writeInt32BE(ProtocolCode.V3, 4);
  let at = 8;
  for (const [k, v] of params) {
    at += out.write(k, at);
    out[at++] = 0;
    at += out.write(v, at);
    out[at++] = 0;
  }
  out[at] = 0;
  return out;
}

export function encodeCancelRequest(processId: number, secretKey: number): Buffer {
  const out = Buffer.allocUnsafe(16);
  out.writeInt32BE(16, 0);
  out.writeInt32BE(ProtocolCode.CancelRequest, 4);
  out.writeInt32BE(processId, 8);
  out.writeInt32BE(secretKey, 12);
  return out;
}

/** Single-byte answers to SSLRequest / GSSENCRequest. */
export const SSL_ACCEPTED = Buffer.from('S');
export const SSL_REFUSED = Buffer.from('N');

export function encodeSslRequest(): Buffer {
  const out = Buffer.allocUnsafe(8);
  out.writeInt32BE(8, 0);
  out.writeInt32BE(ProtocolCode.SslRequest, 4);
  return out;
}
