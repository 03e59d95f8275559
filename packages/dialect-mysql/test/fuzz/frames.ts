import type { LengthField } from '@sluice/testkit/fuzz';
import fc from 'fast-check';
import {
  CLIENT_CONNECT_ATTRS,
  CLIENT_CONNECT_WITH_DB,
  CLIENT_MULTI_RESULTS,
  CLIENT_MULTI_STATEMENTS,
  CLIENT_PLUGIN_AUTH,
  CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA,
  CLIENT_PROTOCOL_41,
  CLIENT_SECURE_CONNECTION,
  CLIENT_SSL,
  Command,
} from '../../src/protocol/constants.js';
import { FUZZ_DATABASE, FUZZ_TABLE, FUZZ_USER } from './fixture.mjs';

/**
 * Structured MySQL client packets for the fuzzer: handshake responses and commands with hostile
 * field values (length-encoded lengths that lie, unterminated strings, invalid UTF-8, unknown
 * commands, statement ids that do not exist, parameter blocks that do not match), in packets
 * whose header length is either the real one (the gateway can tell where each packet ends, so
 * it must answer) or corrupted, with right or wrong sequence ids.
 */

export interface Packets {
  readonly bytes: Buffer;
  /** Every header length is the real one. */
  readonly intact: boolean;
}

const u16 = (n: number) => {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(n & 0xffff);
  return b;
};
const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
};
const uint32 = fc.oneof(fc.constantFrom(0, 1, 2, 3, 0xffffffff, 0x7fffffff, 0x1000000), fc.nat({ max: 0xffffffff }));

const SQL = [
  'SELECT 1',
  'SELECT ?',
  'SELECT ?, ?',
  '',
  ';',
  'BEGIN',
  'ROLLBACK',
  'SET @fuzz = 1',
  'SELECT 1; SELECT 2',
  'DO SLEEP(0)',
  'SHOW TABLES',
  `SELECT * FROM ${FUZZ_TABLE}`,
  `INSERT INTO ${FUZZ_TABLE} VALUES (?, ?)`,
  `USE ${FUZZ_DATABASE}`,
  "SELECT '\u00e9\u{1F600}'",
  'SELECT * FROM sluice_fuzz_no_such_table',
];

const text: fc.Arbitrary<Buffer> = fc.oneof(
  fc.constantFrom(...SQL).map((s) => Buffer.from(s)),
  fc.string({ maxLength: 24 }).map((s) => Buffer.from(s)),
  fc.uint8Array({ maxLength: 24 }).map((b) => Buffer.from(b)),
  fc.constantFrom(Buffer.from([0xc3]), Buffer.from([0xff, 0xfe]), Buffer.from([0xed, 0xa0, 0x80])),
);

/** A NUL-terminated string, sometimes without its NUL. */
const cstring = fc
  .tuple(text, fc.oneof({ weight: 5, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }))
  .map(([b, terminated]) => (terminated ? Buffer.concat([b, Buffer.from([0])]) : b));

/** A length-encoded integer prefix that may lie about what follows (or use the reserved 0xFB/0xFF). */
const lenencPrefix = (real: number): fc.Arbitrary<Buffer> =>
  fc.oneof(
    { weight: 4, arbitrary: fc.constant(real < 0xfb ? Buffer.from([real]) : Buffer.concat([Buffer.from([0xfc]), u16(real)])) },
    fc.constantFrom(
      Buffer.from([0xfb]),
      Buffer.from([0xff]),
      Buffer.from([0xfc, 0xff, 0xff]),
      Buffer.from([0xfd, 0xff, 0xff, 0xff]),
      Buffer.from([0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]),
      Buffer.from([0xfe, 0, 0, 0, 0, 0, 0, 0x20, 0]),
      Buffer.from([0xfc]),
    ),
    fc.integer({ min: 0, max: 0xfa }).map((n) => Buffer.from([n])),
  );

const lenencBytes: fc.Arbitrary<Buffer> = text.chain((b) => lenencPrefix(b.length).map((p) => Buffer.concat([p, b])));

const TYPICAL_CAPABILITIES =
  (CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA | CLIENT_CONNECT_WITH_DB | CLIENT_CONNECT_ATTRS | CLIENT_MULTI_STATEMENTS | CLIENT_MULTI_RESULTS) >>> 0;

/** A HandshakeResponse41 (or SSLRequest, or something shorter) with hostile fields. */
export const handshakePayload: fc.Arbitrary<Buffer> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc
      .tuple(
        fc.oneof(
          fc.constant(TYPICAL_CAPABILITIES),
          fc.constant((TYPICAL_CAPABILITIES & ~CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA) >>> 0),
          fc.constant((CLIENT_PROTOCOL_41 | CLIENT_SSL) >>> 0),
          fc.constant(CLIENT_PROTOCOL_41),
          uint32,
        ),
        uint32,
        fc.nat({ max: 255 }),
        fc.oneof(fc.constant(Buffer.alloc(23)), fc.uint8Array({ minLength: 23, maxLength: 23 }).map((b) => Buffer.from(b))),
        fc.oneof(fc.constant(Buffer.from(`${FUZZ_USER.subject}\0`)), cstring),
        fc.oneof(lenencBytes, fc.constant(Buffer.from([20, ...Buffer.alloc(20, 0x41)]))),
        fc.oneof(fc.constant(Buffer.from('app\0')), cstring),
        fc.oneof(fc.constant(Buffer.from('mysql_clear_password\0')), fc.constant(Buffer.from('mysql_native_password\0')), cstring),
        fc.array(lenencBytes, { maxLength: 4 }).chain((attrs) => {
          const body = Buffer.concat(attrs);
          return lenencPrefix(body.length).map((p) => Buffer.concat([p, body]));
        }),
        fc.nat({ max: 9 }),
      )
      .map(([caps, max, charset, filler, user, auth, db, plugin, attrs, cut]) => {
        const full = Buffer.concat([u32(caps), u32(max), Buffer.from([charset]), filler, user, auth, db, plugin, attrs]);
        // Sometimes cut short, somewhere after the fixed part.
        return cut === 0 ? full.subarray(0, Math.min(full.length, 32 + ((max >>> 0) % 40))) : full;
      }),
  },
  fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b)),
);

const statementId = fc.oneof(fc.constantFrom(0, 1, 2, 3, 4), uint32);

/** A command payload (first byte the command). */
export const commandPayload: fc.Arbitrary<Buffer> = fc.oneof(
  { weight: 3, arbitrary: text.map((t) => Buffer.concat([Buffer.from([Command.QUERY]), t])) },
  { weight: 2, arbitrary: text.map((t) => Buffer.concat([Buffer.from([Command.STMT_PREPARE]), t])) },
  {
    weight: 3,
    arbitrary: fc
      .tuple(statementId, fc.constantFrom(0, 1, 2, 4, 8, 0xff), uint32, fc.uint8Array({ maxLength: 2 }), fc.constantFrom(0, 1, 2), fc.uint8Array({ maxLength: 8 }), fc.uint8Array({ maxLength: 24 }))
      .map(([id, flags, iterations, bitmap, bound, types, values]) =>
        Buffer.concat([Buffer.from([Command.STMT_EXECUTE]), u32(id), Buffer.from([flags]), u32(iterations), Buffer.from(bitmap), Buffer.from([bound]), Buffer.from(types), Buffer.from(values)]),
      ),
  },
  fc.tuple(statementId, uint32).map(([id, rows]) => Buffer.concat([Buffer.from([Command.STMT_FETCH]), u32(id), u32(rows)])),
  fc.tuple(statementId, fc.nat({ max: 0xffff }), fc.uint8Array({ maxLength: 16 })).map(([id, p, d]) => Buffer.concat([Buffer.from([Command.STMT_SEND_LONG_DATA]), u32(id), u16(p), Buffer.from(d)])),
  statementId.map((id) => Buffer.concat([Buffer.from([Command.STMT_CLOSE]), u32(id)])),
  statementId.map((id) => Buffer.concat([Buffer.from([Command.STMT_RESET]), u32(id)])),
  fc.oneof(fc.constantFrom(FUZZ_DATABASE, '', 'sluice_fuzz_no_such_db', 'a`b').map((s) => Buffer.from(s)), text).map((t) => Buffer.concat([Buffer.from([Command.INIT_DB]), t])),
  fc.tuple(cstring, text).map(([t, w]) => Buffer.concat([Buffer.from([Command.FIELD_LIST]), t, w])),
  fc.uint8Array({ maxLength: 8 }).map((b) => Buffer.concat([Buffer.from([Command.PROCESS_KILL]), Buffer.from(b)])),
  fc.nat({ max: 0xffff }).map((o) => Buffer.concat([Buffer.from([Command.SET_OPTION]), u16(o)])),
  fc.tuple(cstring, lenencBytes, cstring, fc.uint8Array({ maxLength: 12 })).map(([u, a, d, rest]) => Buffer.concat([Buffer.from([Command.CHANGE_USER]), u, a, d, Buffer.from(rest)])),
  fc
    .tuple(fc.constantFrom(Command.PING, Command.STATISTICS, Command.PROCESS_INFO, Command.RESET_CONNECTION, Command.SLEEP, Command.DEBUG, Command.BINLOG_DUMP, Command.STMT_BULK_EXECUTE, Command.MULTI, Command.SHUTDOWN), fc.uint8Array({ maxLength: 6 }))
    .map(([c, rest]) => Buffer.concat([Buffer.from([c]), Buffer.from(rest)])),
  fc.tuple(fc.nat({ max: 255 }), fc.uint8Array({ maxLength: 12 })).map(([c, rest]) => Buffer.concat([Buffer.from([c]), Buffer.from(rest)])),
  fc.constant(Buffer.alloc(0)),
);

const declaredLength = fc.oneof(
  { weight: 6, arbitrary: fc.constant<number | undefined>(undefined) },
  { weight: 1, arbitrary: fc.integer({ min: -3, max: 3 }).filter((d) => d !== 0).map((d) => ({ delta: d })) },
  { weight: 1, arbitrary: fc.constantFrom(0, 0xffffff, 0xfffffe, 0x100001).map((to) => ({ to })) },
);

/** One packet with its header; the sequence id is the expected one or a hostile one. */
export function packet(payload: fc.Arbitrary<Buffer>, expectedSeq: number): fc.Arbitrary<Packets> {
  return fc
    .tuple(payload, declaredLength, fc.oneof({ weight: 6, arbitrary: fc.constant(expectedSeq) }, { weight: 1, arbitrary: fc.nat({ max: 255 }) }))
    .map(([p, length, seq]) => {
      const declared = length === undefined ? p.length : typeof length === 'object' && 'delta' in length ? Math.max(0, p.length + length.delta) : (length as { to: number }).to;
      const header = Buffer.alloc(4);
      header.writeUIntLE(declared, 0, 3);
      header[3] = seq;
      return { bytes: Buffer.concat([header, p]), intact: declared === p.length && p.length < 0xffffff };
    });
}

/** Several packets in a row, intact when all are. */
export function packets(payload: fc.Arbitrary<Buffer>, expectedSeq: number): fc.Arbitrary<Packets> {
  return fc.array(packet(payload, expectedSeq), { minLength: 1, maxLength: 5 }).map((ps) => ({ bytes: Buffer.concat(ps.map((p) => p.bytes)), intact: ps.every((p) => p.intact) }));
}

/** The packet headers of a recorded client stream, for the length-corruption mutation. */
export function mysqlLengthFields(bytes: Buffer): LengthField[] {
  const fields: LengthField[] = [];
  for (let at = 0; at + 4 <= bytes.length && fields.length < 200; ) {
    const len = bytes.readUIntLE(at, 3);
    fields.push({ offset: at, size: 3, endian: 'LE', value: len });
    at += 4 + len;
  }
  return fields;
}

/** Where a recorded session's login ends: its handshake response and its clear-text token. */
export function mysqlLoginLength(bytes: Buffer): number {
  const first = 4 + bytes.readUIntLE(0, 3);
  return first + 4 + bytes.readUIntLE(first, 3);
}

/** The packets in bytes from the gateway (complete ones only). */
export function serverPackets(bytes: Buffer): { seq: number; payload: Buffer }[] {
  const out: { seq: number; payload: Buffer }[] = [];
  for (let at = 0; at + 4 <= bytes.length; ) {
    const len = bytes.readUIntLE(at, 3);
    if (at + 4 + len > bytes.length) break;
    out.push({ seq: bytes[at + 3]!, payload: bytes.subarray(at + 4, at + 4 + len) });
    at += 4 + len;
  }
  return out;
}
