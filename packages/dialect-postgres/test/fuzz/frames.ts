import type { LengthField } from '@sluice/testkit/fuzz';
import fc from 'fast-check';
import { Frontend, ProtocolCode } from '../../src/messages/framing.js';
import { FUZZ_TABLE } from './fixture.mjs';

/**
 * Structured PostgreSQL frontend frames for the fuzzer: each message type the gateway reads,
 * with hostile field values (counts and lengths off by a little or by a lot, negative counts,
 * unterminated strings, invalid UTF-8, unknown types), and a declared length that is either
 * the real one (the frame stays parseable, so the gateway must answer) or corrupted.
 */

export interface Frames {
  readonly bytes: Buffer;
  /** Every declared length is the real one: the gateway can tell where each frame ends. */
  readonly intact: boolean;
}

const int16 = fc.oneof(fc.constantFrom(0, 1, 2, -1, -2, 0x7fff, -0x8000), fc.integer({ min: -0x8000, max: 0x7fff }));
const int32 = fc.oneof(fc.constantFrom(0, 1, -1, -2, 4, 0x7fffffff, -0x80000000, 0x10000), fc.integer({ min: -0x80000000, max: 0x7fffffff }));

const i16 = (n: number) => {
  const b = Buffer.alloc(2);
  b.writeInt16BE(n);
  return b;
};
const i32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n | 0);
  return b;
};

/** Statements the fuzzed sessions may run: harmless, in the fuzz database. */
const SQL = [
  'SELECT 1',
  'SELECT $1::int',
  'SELECT $1::text, $2::bytea',
  '',
  ';',
  'BEGIN',
  'COMMIT',
  'ROLLBACK',
  `SELECT * FROM ${FUZZ_TABLE}`,
  `COPY ${FUZZ_TABLE} FROM STDIN`,
  `COPY ${FUZZ_TABLE} TO STDOUT`,
  `INSERT INTO ${FUZZ_TABLE} VALUES ($1, $2)`,
  'SELECT pg_sleep(0)',
  'SELECT 1; SELECT 2',
  'EXECUTE missing_statement',
  'PREPARE p AS SELECT 1',
  "SELECT '\u00e9\u{1F600}'",
  'FETCH ALL FROM c',
];

/** A string field: valid text, SQL, raw bytes (invalid UTF-8, embedded NULs), with or without its NUL. */
const stringField: fc.Arbitrary<Buffer> = fc
  .tuple(
    fc.oneof(
      fc.constantFrom(...SQL).map((s) => Buffer.from(s)),
      fc.string({ maxLength: 24 }).map((s) => Buffer.from(s)),
      fc.uint8Array({ maxLength: 24 }).map((b) => Buffer.from(b)),
      fc.constantFrom(Buffer.from([0xc3]), Buffer.from([0xff, 0xfe]), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('__sluice_refused')),
    ),
    fc.oneof({ weight: 5, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
  )
  .map(([b, terminated]) => (terminated ? Buffer.concat([b, Buffer.from([0])]) : b));

/** A list of values as in Bind and FunctionCall: counts and value lengths that may lie. */
const values: fc.Arbitrary<Buffer> = fc
  .tuple(
    int16,
    fc.array(int16, { maxLength: 4 }),
    int16,
    fc.array(fc.tuple(fc.oneof(fc.constant(undefined), int32), fc.uint8Array({ maxLength: 12 })), { maxLength: 4 }),
  )
  .map(([nf, formats, n, vals]) =>
    Buffer.concat([
      i16(nf),
      ...formats.map(i16),
      i16(n),
      ...vals.map(([len, bytes]) => Buffer.concat([i32(len ?? bytes.length), Buffer.from(bytes)])),
    ]),
  );

const trailing = fc.uint8Array({ maxLength: 8 }).map((b) => Buffer.from(b));

/** Message bodies by type (the payload after the length). */
const bodies: fc.Arbitrary<{ type: number; body: Buffer }> = fc.oneof(
  { weight: 3, arbitrary: stringField.map((body) => ({ type: Frontend.Query, body })) },
  {
    weight: 3,
    arbitrary: fc
      .tuple(stringField, stringField, int16, fc.array(int32, { maxLength: 4 }))
      .map(([name, text, n, oids]) => ({ type: Frontend.Parse, body: Buffer.concat([name, text, i16(n), ...oids.map(i32)]) })),
  },
  {
    weight: 3,
    arbitrary: fc
      .tuple(stringField, stringField, values, int16, fc.array(int16, { maxLength: 3 }))
      .map(([portal, statement, v, nr, rf]) => ({ type: Frontend.Bind, body: Buffer.concat([portal, statement, v, i16(nr), ...rf.map(i16)]) })),
  },
  fc.tuple(fc.constantFrom(0x53, 0x50, 0x00, 0x41), stringField).map(([k, name]) => ({ type: Frontend.Describe, body: Buffer.concat([Buffer.from([k]), name]) })),
  fc.tuple(stringField, int32).map(([portal, rows]) => ({ type: Frontend.Execute, body: Buffer.concat([portal, i32(rows)]) })),
  fc.tuple(fc.constantFrom(0x53, 0x50, 0x00, 0x58), stringField).map(([k, name]) => ({ type: Frontend.Close, body: Buffer.concat([Buffer.from([k]), name]) })),
  fc.tuple(int32, values, int16).map(([oid, v, f]) => ({ type: Frontend.FunctionCall, body: Buffer.concat([i32(oid), v, i16(f)]) })),
  fc.uint8Array({ maxLength: 32 }).map((b) => ({ type: Frontend.CopyData, body: Buffer.from(b) })),
  fc.constantFrom(Frontend.Sync, Frontend.Flush, Frontend.CopyDone).map((type) => ({ type, body: Buffer.alloc(0) })),
  stringField.map((body) => ({ type: Frontend.CopyFail, body })),
  stringField.map((body) => ({ type: Frontend.Password, body })),
  fc.tuple(fc.nat({ max: 255 }), trailing).map(([type, body]) => ({ type, body })),
);

/** A declared length: the real one, or off by a little or a lot. */
const declaredLength = fc.oneof(
  { weight: 6, arbitrary: fc.constant<number | undefined>(undefined) },
  { weight: 1, arbitrary: fc.integer({ min: -3, max: 3 }).filter((d) => d !== 0).map((d) => ({ delta: d })) },
  { weight: 1, arbitrary: fc.constantFrom(0, 3, -1, 0x7fffffff, -0x80000000, 0x100001).map((to) => ({ to })) },
);

/** One typed frame; `intact` when its length is the real one. */
export const typedFrame: fc.Arbitrary<Frames> = fc
  .tuple(bodies, declaredLength, trailing, fc.boolean())
  .map(([{ type, body }, length, extra, withExtra]) => {
    // Trailing bytes inside the frame (the length counts them): fields the decoder must ignore or refuse.
    const payload = withExtra ? Buffer.concat([body, extra]) : body;
    const real = 4 + payload.length;
    const declared = length === undefined ? real : typeof length === 'object' && 'delta' in length ? real + length.delta : (length as { to: number }).to;
    return { bytes: Buffer.concat([Buffer.from([type]), i32(declared), payload]), intact: declared === real };
  });

/** Several frames in a row (pipelined), intact when all are. */
export const typedFrames: fc.Arbitrary<Frames> = fc.array(typedFrame, { minLength: 1, maxLength: 6 }).map((fs) => ({
  bytes: Buffer.concat(fs.map((f) => f.bytes)),
  intact: fs.every((f) => f.intact),
}));

/** A startup-phase packet: startup (hostile parameters), SSLRequest, GSSENCRequest, CancelRequest, unknown codes. */
export const startupPacket: fc.Arbitrary<Frames> = fc
  .tuple(
    fc.oneof(
      fc.constantFrom(ProtocolCode.V3, ProtocolCode.SslRequest, ProtocolCode.GssEncRequest, ProtocolCode.CancelRequest, 0x00020000, 0x00030001, 0x04d2162f),
      int32,
    ),
    fc.array(fc.tuple(stringField, stringField), { maxLength: 4 }),
    fc.oneof(fc.constant(Buffer.from([0])), fc.constant(Buffer.alloc(0)), fc.uint8Array({ maxLength: 8 }).map((b) => Buffer.from(b))),
    fc.boolean(),
    declaredLength,
  )
  .map(([code, params, end, named, length]) => {
    const user = named ? [Buffer.from('user\0fuzz@example.com\0database\0app\0')] : [];
    const body = code === ProtocolCode.V3 ? Buffer.concat([...user, ...params.flatMap(([k, v]) => [k, v]), end]) : end;
    const real = 8 + body.length;
    const declared = length === undefined ? real : typeof length === 'object' && 'delta' in length ? real + length.delta : (length as { to: number }).to;
    return { bytes: Buffer.concat([i32(declared), i32(code), body]), intact: declared === real };
  });

/**
 * The length fields of a recorded client stream (startup packets, then typed frames), for
 * the length-corruption mutation. Stops where the stream stops making sense.
 */
export function pgLengthFields(bytes: Buffer): LengthField[] {
  const fields: LengthField[] = [];
  let at = 0;
  let startup = true;
  while (at + (startup ? 8 : 5) <= bytes.length && fields.length < 200) {
    if (startup) {
      const len = bytes.readInt32BE(at);
      fields.push({ offset: at, size: 4, endian: 'BE', value: len });
      const code = bytes.readInt32BE(at + 4);
      if (len < 8) break;
      at += len;
      if (code === ProtocolCode.V3) startup = false;
    } else {
      const len = bytes.readInt32BE(at + 1);
      fields.push({ offset: at + 1, size: 4, endian: 'BE', value: len });
      if (len < 4) break;
      at += 1 + len;
    }
  }
  return fields;
}

/** Where a recorded session's login ends: after its startup packets and its password message. */
export function pgLoginLength(bytes: Buffer): number {
  let at = 0;
  for (;;) {
    // A broken recording (a length under 8, or past the end) would loop forever or read past the end.
    if (at + 8 > bytes.length) throw new Error('the recorded session ends before its startup message');
    const len = bytes.readInt32BE(at);
    if (len < 8) throw new Error(`the recorded session has a startup packet of length ${len}`);
    const code = bytes.readInt32BE(at + 4);
    at += len;
    if (code === ProtocolCode.V3) break;
  }
  if (at + 5 > bytes.length || bytes[at] !== Frontend.Password) throw new Error('the recorded session does not send a password after its startup message');
  return at + 1 + bytes.readInt32BE(at + 1);
}
