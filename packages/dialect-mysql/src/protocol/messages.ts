import { ByteReader, ByteWriter } from '@sluice/wire';
import {
  CLIENT_CONNECT_ATTRS,
  CLIENT_CONNECT_WITH_DB,
  CLIENT_MYSQL,
  CLIENT_PLUGIN_AUTH,
  CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA,
  CLIENT_PROTOCOL_41,
  CLIENT_SECURE_CONNECTION,
  CLIENT_SESSION_TRACK,
  CLIENT_SSL,
  CLIENT_TRANSACTIONS,
  ColumnType,
  Command,
  ResponseHeader,
  ServerStatus,
} from './constants.js';
import {
  LENENC_NULL,
  lenencAt,
  readLenencBigInt,
  readLenencBytes,
  readLenencInt,
  readLenencString,
  readNulOrEofString,
  writeLenencBytes,
  writeLenencInt,
  writeLenencString,
} from './packets.js';

export * from './constants.js';

/**
 * Encoders and decoders of MySQL protocol messages, in both directions: the gateway is a
 * server to its clients and a client to the upstream. Each works on a logical message's
 * payload (packet headers are packets.ts's business). Decoders throw RangeError on a payload
 * that ends early or does not have the message's shape; they never read past its end.
 * https://dev.mysql.com/doc/dev/mysql-server/latest/PAGE_PROTOCOL.html
 * https://mariadb.com/kb/en/clientserver-protocol/
 */
const reader = new ByteReader();
/** Position while walking a row or a parameter list (decoders are synchronous: one is enough). */
const cursor = { at: 0 };

function u32(w: ByteWriter, v: number): ByteWriter {
  return w.uintLE(v >>> 0, 4);
}

function commandPayload(payload: Buffer, command: number): ByteReader {
  if (payload.length === 0) throw new RangeError('empty command packet');
  if (payload[0] !== command) throw new RangeError(`expected command 0x${command.toString(16)}, got 0x${payload[0]!.toString(16)}`);
  return reader.reset(payload, 1);
}

// ---------------------------------------------------------------------------------------------
// Connection phase

/**
 * HandshakeV10, the server greeting:
 *   int<1> 10 | string<NUL> server version | int<4> connection id | string[8] auth-plugin-data-1 |
 *   0x00 | int<2> capabilities (low) | int<1> charset | int<2> status | int<2> capabilities (high) |
 *   int<1> auth-plugin-data length (0 without CLIENT_PLUGIN_AUTH) | string[6] filler |
 *   int<4> MariaDB extended capabilities (when CLIENT_MYSQL is clear; filler otherwise) |
 *   if CLIENT_SECURE_CONNECTION: string[max(13, length - 8)] auth-plugin-data-2 (NUL-terminated) |
 *   if CLIENT_PLUGIN_AUTH: string<NUL> auth plugin name
 */
export interface HandshakeV10 {
  readonly serverVersion: string;
  readonly connectionId: number;
  /** The scramble (nonce): both parts joined, without the terminating NUL; normally 20 bytes. */
  readonly authPluginData: Buffer;
  readonly capabilities: number;
  /** MariaDB's extended capabilities (0 when the server is MySQL, i.e. sets CLIENT_MYSQL). */
  readonly mariadbCapabilities: number;
  readonly charset: number;
  readonly statusFlags: number;
  /** Empty without CLIENT_PLUGIN_AUTH. */
  readonly authPluginName: string;
}

export function decodeHandshakeV10(payload: Buffer): HandshakeV10 {
  const r = reader.reset(payload);
  const version = r.uint8();
  if (version !== 10) throw new RangeError(`unsupported protocol version ${version}`);
  const serverVersion = r.cstring();
  const connectionId = r.uintLE(4);
  const part1 = r.bytes(8);
  r.skip(1);
  const low = r.uintLE(2);
  if (r.remaining === 0) {
    return { serverVersion, connectionId, authPluginData: Buffer.from(part1), capabilities: low, mariadbCapabilities: 0, charset: 0, statusFlags: 0, authPluginName: '' };
  }
  const charset = r.uint8();
  const statusFlags = r.uintLE(2);
  const capabilities = (low | (r.uintLE(2) << 16)) >>> 0;
  const dataLength = r.uint8();
  r.skip(6);
  const extended = r.uintLE(4);
  const mariadbCapabilities = capabilities & CLIENT_MYSQL ? 0 : extended;
  let part2: Buffer = Buffer.alloc(0);
  if (capabilities & CLIENT_SECURE_CONNECTION) {
    // Some servers stop short of the documented length; take what is there.
    part2 = r.bytes(Math.min(Math.max(13, dataLength - 8), r.remaining));
    if (part2.length > 0 && part2[part2.length - 1] === 0) part2 = part2.subarray(0, part2.length - 1);
  }
  const authPluginName = capabilities & CLIENT_PLUGIN_AUTH && r.remaining > 0 ? readNulOrEofString(r) : '';
  return {
    serverVersion,
    connectionId,
    authPluginData: Buffer.concat([part1, part2]),
    capabilities,
    mariadbCapabilities,
    charset,
    statusFlags,
    authPluginName,
  };
}

export function encodeHandshakeV10(h: HandshakeV10): Buffer {
  if (h.authPluginData.length < 8) throw new RangeError('the scramble must have at least 8 bytes');
  const w = new ByteWriter(128);
  const caps = h.capabilities >>> 0;
  w.uint8(10).cstring(h.serverVersion);
  u32(w, h.connectionId).bytes(h.authPluginData.subarray(0, 8)).uint8(0);
  w.uintLE(caps & 0xffff, 2).uint8(h.charset).uintLE(h.statusFlags, 2).uintLE(caps >>> 16, 2);
  w.uint8(caps & CLIENT_PLUGIN_AUTH ? h.authPluginData.length + 1 : 0);
  w.bytes(Buffer.alloc(6));
  u32(w, caps & CLIENT_MYSQL ? 0 : h.mariadbCapabilities);
  if (caps & CLIENT_SECURE_CONNECTION) {
    const part2 = h.authPluginData.subarray(8);
    w.bytes(part2);
    // At least 12 bytes of data then the NUL: 13 in all.
    for (let i = part2.length; i < 12; i++) w.uint8(0);
    w.uint8(0);
  }
  if (caps & CLIENT_PLUGIN_AUTH) w.cstring(h.authPluginName);
  return w.finish();
}

/** The first 32 bytes of a HandshakeResponse41, sent alone (with CLIENT_SSL) to ask for TLS. */
export interface SslRequest {
  readonly capabilities: number;
  readonly maxPacketSize: number;
  readonly charset: number;
  /** MariaDB extended capabilities, in the last 4 filler bytes (0 for MySQL clients). */
  readonly mariadbCapabilities: number;
}

/**
 * HandshakeResponse41:
 *   int<4> capabilities | int<4> max packet size | int<1> charset | string[19] filler |
 *   int<4> MariaDB extended capabilities (filler for MySQL) | string<NUL> username |
 *   auth response: lenenc with CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA, else int<1> length + data
 *   with CLIENT_SECURE_CONNECTION, else string<NUL> |
 *   if CLIENT_CONNECT_WITH_DB: string<NUL> database | if CLIENT_PLUGIN_AUTH: string<NUL> plugin |
 *   if CLIENT_CONNECT_ATTRS: int<lenenc> total length, then (lenenc key, lenenc value)*
 */
export interface HandshakeResponse41 extends SslRequest {
  readonly username: string;
  readonly authResponse: Buffer;
  readonly database?: string | undefined;
  readonly authPluginName?: string | undefined;
  readonly connectAttributes?: ReadonlyMap<string, string> | undefined;
}

export type ClientHandshake =
  | ({ readonly kind: 'ssl' } & SslRequest)
  | ({ readonly kind: 'response' } & HandshakeResponse41)
  /** A pre-4.1 HandshakeResponse320, which the gateway does not speak. */
  | { readonly kind: 'unsupported'; readonly capabilities: number };

/** Size of an SSLRequest payload (and of every HandshakeResponse41's fixed prefix). */
export const SSL_REQUEST_LENGTH = 32;

/** The client's answer to the greeting: an SSLRequest (32 bytes, CLIENT_SSL) or a HandshakeResponse41. */
export function decodeClientHandshake(payload: Buffer): ClientHandshake {
  const r = reader.reset(payload);
  const low = r.uintLE(2);
  if (!(low & CLIENT_PROTOCOL_41)) return { kind: 'unsupported', capabilities: low };
  const capabilities = (low | (r.uintLE(2) << 16)) >>> 0;
  const maxPacketSize = r.uintLE(4);
  const charset = r.uint8();
  r.skip(19);
  const extended = r.uintLE(4);
  const mariadbCapabilities = capabilities & CLIENT_MYSQL ? 0 : extended;
  const prefix = { capabilities, maxPacketSize, charset, mariadbCapabilities };
  if (r.remaining === 0 && capabilities & CLIENT_SSL) return { kind: 'ssl', ...prefix };
  const username = r.cstring();
  let authResponse: Buffer;
  if (capabilities & CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA) authResponse = readLenencBytes(r);
  else if (capabilities & CLIENT_SECURE_CONNECTION) authResponse = r.bytes(r.uint8());
  else authResponse = Buffer.from(readNulOrEofString(r), 'utf8');
  const database = capabilities & CLIENT_CONNECT_WITH_DB && r.remaining > 0 ? readNulOrEofString(r) : undefined;
  const authPluginName = capabilities & CLIENT_PLUGIN_AUTH && r.remaining > 0 ? readNulOrEofString(r) : undefined;
  const connectAttributes = capabilities & CLIENT_CONNECT_ATTRS && r.remaining > 0 ? readAttributes(r) : undefined;
  return { kind: 'response', ...prefix, username, authResponse: Buffer.from(authResponse), database, authPluginName, connectAttributes };
}

function readAttributes(r: ByteReader): Map<string, string> {
  const total = readLenencInt(r);
  const body = new ByteReader(r.bytes(total));
  const attrs = new Map<string, string>();
  while (body.remaining > 0) {
    const key = readLenencString(body);
    attrs.set(key, readLenencString(body));
  }
  return attrs;
}

function writePrefix(w: ByteWriter, p: SslRequest): void {
  const caps = p.capabilities >>> 0;
  u32(w, caps);
  u32(w, p.maxPacketSize).uint8(p.charset).bytes(Buffer.alloc(19));
  u32(w, caps & CLIENT_MYSQL ? 0 : p.mariadbCapabilities);
}

export function encodeSslRequest(p: SslRequest): Buffer {
  if (!(p.capabilities & CLIENT_SSL)) throw new RangeError('an SSLRequest must carry CLIENT_SSL');
  const w = new ByteWriter(SSL_REQUEST_LENGTH);
  writePrefix(w, p);
  return w.finish();
}

export function encodeHandshakeResponse41(p: HandshakeResponse41): Buffer {
  const caps = p.capabilities >>> 0;
  if (!(caps & CLIENT_PROTOCOL_41)) throw new RangeError('HandshakeResponse41 needs CLIENT_PROTOCOL_41');
  const w = new ByteWriter(128);
  writePrefix(w, p);
  w.cstring(p.username);
  if (caps & CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA) writeLenencBytes(w, p.authResponse);
  else if (caps & CLIENT_SECURE_CONNECTION) {
    if (p.authResponse.length > 255) throw new RangeError('auth response longer than 255 bytes needs CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA');
    w.uint8(p.authResponse.length).bytes(p.authResponse);
  } else w.bytes(p.authResponse).uint8(0);
  if (caps & CLIENT_CONNECT_WITH_DB) w.cstring(p.database ?? '');
  if (caps & CLIENT_PLUGIN_AUTH) w.cstring(p.authPluginName ?? '');
  if (caps & CLIENT_CONNECT_ATTRS) writeAttributes(w, p.connectAttributes ?? new Map());
  return w.finish();
}

function writeAttributes(w: ByteWriter, attrs: ReadonlyMap<string, string>): void {
  const body = new ByteWriter(128);
  for (const [k, v] of attrs) {
    writeLenencString(body, k);
    writeLenencString(body, v);
  }
  writeLenencBytes(w, body.finish());
}

/** AuthSwitchRequest: 0xFE | string<NUL> plugin name | string<EOF> plugin data. */
export interface AuthSwitchRequest {
  readonly pluginName: string;
  readonly pluginData: Buffer;
}

/**
 * An AuthSwitchRequest. A lone 0xFE (servers without CLIENT_PLUGIN_AUTH) asks for the old
 * pre-4.1 password hash: reported as plugin `mysql_old_password` with no data.
 */
export function decodeAuthSwitchRequest(payload: Buffer): AuthSwitchRequest {
  const r = reader.reset(payload);
  if (r.uint8() !== ResponseHeader.EOF) throw new RangeError('not an AuthSwitchRequest');
  if (r.remaining === 0) return { pluginName: 'mysql_old_password', pluginData: Buffer.alloc(0) };
  const pluginName = r.cstring();
  return { pluginName, pluginData: Buffer.from(r.rest()) };
}

export function encodeAuthSwitchRequest(pluginName: string, pluginData: Uint8Array): Buffer {
  return new ByteWriter(32 + pluginData.length).uint8(ResponseHeader.EOF).cstring(pluginName).bytes(pluginData).finish();
}

/** AuthMoreData: 0x01 | string<EOF> data. */
export function decodeAuthMoreData(payload: Buffer): Buffer {
  const r = reader.reset(payload);
  if (r.uint8() !== ResponseHeader.AUTH_MORE_DATA) throw new RangeError('not an AuthMoreData packet');
  return r.rest();
}

export function encodeAuthMoreData(data: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(1 + data.length);
  out[0] = ResponseHeader.AUTH_MORE_DATA;
  out.set(data, 1);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Generic responses: OK, ERR, EOF

/**
 * OK packet:
 *   0x00 (0xFE when it ends a resultset under CLIENT_DEPRECATE_EOF) | int<lenenc> affected rows |
 *   int<lenenc> last insert id | with CLIENT_PROTOCOL_41: int<2> status, int<2> warnings;
 *   else with CLIENT_TRANSACTIONS: int<2> status |
 *   with CLIENT_SESSION_TRACK: (if more data) string<lenenc> info, then if status has
 *   SESSION_STATE_CHANGED string<lenenc> session state changes; otherwise string<EOF> info
 */
export interface OkPacket {
  readonly header: 0x00 | 0xfe;
  readonly affectedRows: bigint;
  readonly lastInsertId: bigint;
  readonly statusFlags: number;
  readonly warnings: number;
  readonly info: string;
  /** The raw session state change records, when CLIENT_SESSION_TRACK and SESSION_STATE_CHANGED. */
  readonly sessionStateChanges?: Buffer | undefined;
}

/** 0x00 and long enough to be an OK (7 bytes is the shortest 4.1 OK). */
export function isOkPacket(payload: Buffer): boolean {
  return payload.length >= 7 && payload[0] === ResponseHeader.OK;
}

export function isErrPacket(payload: Buffer): boolean {
  return payload.length >= 3 && payload[0] === ResponseHeader.ERR;
}

/** An EOF packet: 0xFE and shorter than 9 bytes (a row cannot be: 0xFE starts an 8-byte length). */
export function isEofPacket(payload: Buffer): boolean {
  return payload.length < 9 && payload[0] === ResponseHeader.EOF;
}

/**
 * Whether a packet read where a row may come ends the rows: an EOF packet, or under
 * CLIENT_DEPRECATE_EOF an OK with the 0xFE header. A row starting with 0xFE (an 8-byte length)
 * is longer than 0xFFFFFF bytes, so a shorter 0xFE packet is never a row.
 */
export function endsRows(payload: Buffer, deprecateEof: boolean): boolean {
  if (payload[0] !== ResponseHeader.EOF) return false;
  return deprecateEof ? payload.length < 0xffffff : payload.length < 9;
}

export function decodeOk(payload: Buffer, capabilities: number = CLIENT_PROTOCOL_41): OkPacket {
  const r = reader.reset(payload);
  const header = r.uint8();
  if (header !== 0x00 && header !== 0xfe) throw new RangeError('not an OK packet');
  const affectedRows = readLenencBigInt(r);
  const lastInsertId = readLenencBigInt(r);
  let statusFlags = 0;
  let warnings = 0;
  if (capabilities & CLIENT_PROTOCOL_41) {
    statusFlags = r.uintLE(2);
    warnings = r.uintLE(2);
  } else if (capabilities & CLIENT_TRANSACTIONS) {
    statusFlags = r.uintLE(2);
  }
  let info = '';
  let sessionStateChanges: Buffer | undefined;
  if (capabilities & CLIENT_SESSION_TRACK) {
    if (r.remaining > 0) info = readLenencString(r);
    if (statusFlags & ServerStatus.SESSION_STATE_CHANGED && r.remaining > 0) sessionStateChanges = Buffer.from(readLenencBytes(r));
  } else {
    info = r.rest().toString('utf8');
  }
  return { header, affectedRows, lastInsertId, statusFlags, warnings, info, sessionStateChanges };
}

export function encodeOk(ok: Partial<OkPacket>, capabilities: number = CLIENT_PROTOCOL_41): Buffer {
  const w = new ByteWriter(32);
  const statusFlags = ok.statusFlags ?? 0;
  w.uint8(ok.header ?? 0x00);
  writeLenencInt(w, ok.affectedRows ?? 0n);
  writeLenencInt(w, ok.lastInsertId ?? 0n);
  if (capabilities & CLIENT_PROTOCOL_41) w.uintLE(statusFlags, 2).uintLE(ok.warnings ?? 0, 2);
  else if (capabilities & CLIENT_TRANSACTIONS) w.uintLE(statusFlags, 2);
  const info = ok.info ?? '';
  if (capabilities & CLIENT_SESSION_TRACK) {
    const state = statusFlags & ServerStatus.SESSION_STATE_CHANGED ? ok.sessionStateChanges : undefined;
    if (info !== '' || state) writeLenencString(w, info);
    if (state) writeLenencBytes(w, state);
  } else {
    w.string(info);
  }
  return w.finish();
}

/**
 * ERR packet: 0xFF | int<2> error code | with CLIENT_PROTOCOL_41: '#' + string[5] SQLSTATE |
 * string<EOF> message. A server that refuses a connection before the handshake (too many
 * connections, a blocked host) sends it without the SQLSTATE.
 */
export interface ErrPacket {
  readonly errno: number;
  /** Undefined when the packet has no SQLSTATE marker. */
  readonly sqlstate?: string | undefined;
  readonly message: string;
}

export function decodeErr(payload: Buffer, capabilities: number = CLIENT_PROTOCOL_41): ErrPacket {
  const r = reader.reset(payload);
  if (r.uint8() !== ResponseHeader.ERR) throw new RangeError('not an ERR packet');
  const errno = r.uintLE(2);
  let sqlstate: string | undefined;
  if (capabilities & CLIENT_PROTOCOL_41 && r.remaining >= 6 && payload[r.offset] === 0x23 /* # */) {
    r.skip(1);
    sqlstate = r.bytes(5).toString('latin1');
  }
  return { errno, sqlstate, message: r.rest().toString('utf8') };
}

/**
 * An ERR packet. `capabilities` is what was agreed with the peer: before the handshake (or
 * with a pre-4.1 peer) pass 0 and the packet carries no SQLSTATE.
 */
export function encodeErr(errno: number, sqlstate: string, message: string, capabilities: number = CLIENT_PROTOCOL_41): Buffer {
  if (!Number.isInteger(errno) || errno < 0 || errno > 0xffff) throw new RangeError(`invalid error number ${errno}`);
  const w = new ByteWriter(16 + message.length);
  w.uint8(ResponseHeader.ERR).uintLE(errno, 2);
  if (capabilities & CLIENT_PROTOCOL_41) {
    if (!/^[0-9A-Z]{5}$/.test(sqlstate)) throw new RangeError(`invalid SQLSTATE "${sqlstate}"`);
    w.uint8(0x23).string(sqlstate);
  }
  return w.string(message).finish();
}

/** EOF packet: 0xFE | with CLIENT_PROTOCOL_41: int<2> warnings, int<2> status. */
export interface EofPacket {
  readonly warnings: number;
  readonly statusFlags: number;
}

export function decodeEof(payload: Buffer, capabilities: number = CLIENT_PROTOCOL_41): EofPacket {
  const r = reader.reset(payload);
  if (r.uint8() !== ResponseHeader.EOF || payload.length >= 9) throw new RangeError('not an EOF packet');
  if (!(capabilities & CLIENT_PROTOCOL_41)) return { warnings: 0, statusFlags: 0 };
  const warnings = r.uintLE(2);
  return { warnings, statusFlags: r.uintLE(2) };
}

export function encodeEof(eof: EofPacket, capabilities: number = CLIENT_PROTOCOL_41): Buffer {
  if (!(capabilities & CLIENT_PROTOCOL_41)) return Buffer.from([ResponseHeader.EOF]);
  const out = Buffer.allocUnsafe(5);
  out[0] = ResponseHeader.EOF;
  out.writeUInt16LE(eof.warnings, 1);
  out.writeUInt16LE(eof.statusFlags, 3);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Commands (client to server)

/** The command byte of a command packet. */
export function commandOf(payload: Buffer): number {
  if (payload.length === 0) throw new RangeError('empty command packet');
  return payload[0]!;
}

/** A command with no arguments: COM_QUIT, COM_PING, COM_STATISTICS, COM_RESET_CONNECTION, ... */
export function encodeSimpleCommand(command: number): Buffer {
  return Buffer.from([command]);
}

/**
 * COM_QUERY: 0x03 | string<EOF> query. (With CLIENT_QUERY_ATTRIBUTES, MySQL 8 puts parameters
 * before the text; the gateway never agrees that capability.)
 */
export function decodeComQuery(payload: Buffer): string {
  return commandPayload(payload, Command.QUERY).rest().toString('utf8');
}

export function encodeComQuery(sql: string): Buffer {
  return encodeTextCommand(Command.QUERY, sql);
}

function encodeTextCommand(command: number, text: string): Buffer {
  const n = Buffer.byteLength(text);
  const out = Buffer.allocUnsafe(1 + n);
  out[0] = command;
  out.write(text, 1, 'utf8');
  return out;
}

/** COM_INIT_DB: 0x02 | string<EOF> schema. */
export function decodeComInitDb(payload: Buffer): string {
  return commandPayload(payload, Command.INIT_DB).rest().toString('utf8');
}

export function encodeComInitDb(schema: string): Buffer {
  return encodeTextCommand(Command.INIT_DB, schema);
}

/** COM_STMT_PREPARE: 0x16 | string<EOF> query. */
export function decodeComStmtPrepare(payload: Buffer): string {
  return commandPayload(payload, Command.STMT_PREPARE).rest().toString('utf8');
}

export function encodeComStmtPrepare(sql: string): Buffer {
  return encodeTextCommand(Command.STMT_PREPARE, sql);
}

/** COM_FIELD_LIST (deprecated): 0x04 | string<NUL> table | string<EOF> wildcard. */
export function decodeComFieldList(payload: Buffer): { table: string; wildcard: string } {
  const r = commandPayload(payload, Command.FIELD_LIST);
  const table = readNulOrEofString(r);
  return { table, wildcard: r.rest().toString('utf8') };
}

export function encodeComFieldList(table: string, wildcard = ''): Buffer {
  return new ByteWriter(32).uint8(Command.FIELD_LIST).cstring(table).string(wildcard).finish();
}

/** COM_PROCESS_KILL (deprecated): 0x0C | int<4> connection id. */
export function decodeComProcessKill(payload: Buffer): number {
  return commandPayload(payload, Command.PROCESS_KILL).uintLE(4);
}

export function encodeComProcessKill(connectionId: number): Buffer {
  return u32(new ByteWriter(5).uint8(Command.PROCESS_KILL), connectionId).finish();
}

/** COM_SET_OPTION: 0x1B | int<2> option (0 multi-statements on, 1 off). */
export function decodeComSetOption(payload: Buffer): number {
  return commandPayload(payload, Command.SET_OPTION).uintLE(2);
}

/**
 * The statement id of a statement command (COM_STMT_EXECUTE, _FETCH, _CLOSE, _RESET,
 * _SEND_LONG_DATA, MariaDB's _BULK_EXECUTE): the int<4> after the command byte.
 */
export function decodeStatementId(payload: Buffer): number {
  const r = reader.reset(payload);
  r.skip(1);
  return r.uintLE(4);
}

/** COM_STMT_CLOSE (0x19) / COM_STMT_RESET (0x1A): command | int<4> statement id. */
export function encodeStatementCommand(command: number, statementId: number): Buffer {
  return u32(new ByteWriter(5).uint8(command), statementId).finish();
}

/** COM_STMT_FETCH: 0x1C | int<4> statement id | int<4> number of rows. */
export interface ComStmtFetch {
  readonly statementId: number;
  readonly rows: number;
}

export function decodeComStmtFetch(payload: Buffer): ComStmtFetch {
  const r = commandPayload(payload, Command.STMT_FETCH);
  const statementId = r.uintLE(4);
  return { statementId, rows: r.uintLE(4) };
}

export function encodeComStmtFetch(statementId: number, rows: number): Buffer {
  const w = new ByteWriter(9).uint8(Command.STMT_FETCH);
  u32(w, statementId);
  return u32(w, rows).finish();
}

/** COM_STMT_SEND_LONG_DATA: 0x18 | int<4> statement id | int<2> parameter | string<EOF> data. */
export function decodeComStmtSendLongData(payload: Buffer): { statementId: number; param: number; data: Buffer } {
  const r = commandPayload(payload, Command.STMT_SEND_LONG_DATA);
  const statementId = r.uintLE(4);
  const param = r.uintLE(2);
  return { statementId, param, data: r.rest() };
}

/** A parameter's type in COM_STMT_EXECUTE: int<1> column type | int<1> flags (0x80 unsigned). */
export interface ParamType {
  readonly type: number;
  readonly unsigned: boolean;
}

/**
 * COM_STMT_EXECUTE:
 *   0x17 | int<4> statement id | int<1> flags (cursor type) | int<4> iteration count (1) |
 *   if parameters: NULL bitmap ((n + 7) / 8 bytes, bit i = parameter i) | int<1> new-params-bound |
 *   if new-params-bound: n × (int<1> type, int<1> flags) | values of the non-NULL parameters
 *   (binary protocol encoding, see binaryValueLength)
 */
export interface ComStmtExecute {
  readonly statementId: number;
  readonly flags: number;
  readonly iterationCount: number;
  readonly newParamsBound: boolean;
  /** This packet's types, or the `previousTypes` passed in; undefined when neither is known. */
  readonly paramTypes: readonly ParamType[] | undefined;
  /** Where each parameter's value lies in the payload (see RowRanges); undefined without types. */
  readonly values: RowRanges | undefined;
}

/**
 * Decodes COM_STMT_EXECUTE given the statement's parameter count (from its PREPARE_OK) and,
 * for an execute that does not re-bind types, the types last sent for the statement. A value
 * sent with COM_STMT_SEND_LONG_DATA is absent from the packet: name those parameters in
 * `longData` (they come out as empty ranges).
 */
export function decodeComStmtExecute(
  payload: Buffer,
  paramCount: number,
  previousTypes?: readonly ParamType[],
  longData?: ReadonlySet<number>,
): ComStmtExecute {
  const r = commandPayload(payload, Command.STMT_EXECUTE);
  const statementId = r.uintLE(4);
  const flags = r.uint8();
  const iterationCount = r.uintLE(4);
  if (paramCount === 0) {
    return { statementId, flags, iterationCount, newParamsBound: false, paramTypes: [], values: createRowRanges(0) };
  }
  const bitmapAt = r.offset;
  r.skip((paramCount + 7) >> 3);
  const newParamsBound = r.uint8() === 1;
  let paramTypes: ParamType[] | undefined;
  if (newParamsBound) {
    paramTypes = [];
    for (let i = 0; i < paramCount; i++) {
      const type = r.uint8();
      paramTypes.push({ type, unsigned: (r.uint8() & 0x80) !== 0 });
    }
  } else if (previousTypes) {
    if (previousTypes.length !== paramCount) throw new RangeError(`expected ${paramCount} parameter types, have ${previousTypes.length}`);
    paramTypes = [...previousTypes];
  }
  if (!paramTypes) return { statementId, flags, iterationCount, newParamsBound, paramTypes: undefined, values: undefined };
  const values = createRowRanges(paramCount);
  cursor.at = r.offset;
  for (let i = 0; i < paramCount; i++) {
    if (payload[bitmapAt + (i >> 3)]! & (1 << (i & 7))) {
      values.starts[i] = -1;
      values.ends[i] = cursor.at;
      continue;
    }
    if (longData?.has(i)) {
      values.starts[i] = cursor.at;
      values.ends[i] = cursor.at;
      continue;
    }
    readBinaryValue(payload, paramTypes[i]!.type, cursor, payload.length, values, i);
  }
  if (cursor.at !== payload.length) throw new RangeError(`COM_STMT_EXECUTE has ${payload.length - cursor.at} bytes after its parameters`);
  return { statementId, flags, iterationCount, newParamsBound, paramTypes, values };
}

/** A parameter to encode: its type and its binary value (see encodeBinaryRow for the forms). */
export interface BinaryParam extends ParamType {
  readonly value: Uint8Array | null;
}

export function encodeComStmtExecute(e: {
  statementId: number;
  flags?: number;
  iterationCount?: number;
  params: readonly BinaryParam[];
  newParamsBound?: boolean;
}): Buffer {
  const w = new ByteWriter(64);
  w.uint8(Command.STMT_EXECUTE);
  u32(w, e.statementId).uint8(e.flags ?? 0);
  u32(w, e.iterationCount ?? 1);
  const n = e.params.length;
  if (n === 0) return w.finish();
  const bitmap = Buffer.alloc((n + 7) >> 3);
  e.params.forEach((p, i) => {
    if (p.value === null) bitmap[i >> 3]! |= 1 << (i & 7);
  });
  w.bytes(bitmap);
  const bound = e.newParamsBound ?? true;
  w.uint8(bound ? 1 : 0);
  if (bound) for (const p of e.params) w.uint8(p.type).uint8(p.unsigned ? 0x80 : 0);
  for (const p of e.params) if (p.value !== null) writeBinaryValue(w, p.type, p.value);
  return w.finish();
}

/**
 * COM_CHANGE_USER:
 *   0x11 | string<NUL> user | auth response (int<1> length + data with CLIENT_SECURE_CONNECTION,
 *   else string<NUL>) | string<NUL> database | then, if more data: int<2> charset |
 *   if CLIENT_PLUGIN_AUTH: string<NUL> plugin | if CLIENT_CONNECT_ATTRS: attributes
 */
export interface ComChangeUser {
  readonly username: string;
  readonly authResponse: Buffer;
  readonly database: string;
  readonly charset?: number | undefined;
  readonly authPluginName?: string | undefined;
  readonly connectAttributes?: ReadonlyMap<string, string> | undefined;
}

export function decodeComChangeUser(payload: Buffer, capabilities: number): ComChangeUser {
  const r = commandPayload(payload, Command.CHANGE_USER);
  const username = r.cstring();
  const authResponse = Buffer.from(capabilities & CLIENT_SECURE_CONNECTION ? r.bytes(r.uint8()) : Buffer.from(r.cstring(), 'utf8'));
  const database = readNulOrEofString(r);
  let charset: number | undefined;
  let authPluginName: string | undefined;
  let connectAttributes: Map<string, string> | undefined;
  if (r.remaining > 0) {
    charset = r.uintLE(2);
    if (capabilities & CLIENT_PLUGIN_AUTH && r.remaining > 0) authPluginName = readNulOrEofString(r);
    if (capabilities & CLIENT_CONNECT_ATTRS && r.remaining > 0) connectAttributes = readAttributes(r);
  }
  return { username, authResponse, database, charset, authPluginName, connectAttributes };
}

export function encodeComChangeUser(c: ComChangeUser, capabilities: number): Buffer {
  const w = new ByteWriter(64).uint8(Command.CHANGE_USER).cstring(c.username);
  if (capabilities & CLIENT_SECURE_CONNECTION) {
    if (c.authResponse.length > 255) throw new RangeError('auth response longer than 255 bytes');
    w.uint8(c.authResponse.length).bytes(c.authResponse);
  } else w.bytes(c.authResponse).uint8(0);
  w.cstring(c.database);
  if (c.charset !== undefined) {
    w.uintLE(c.charset, 2);
    if (capabilities & CLIENT_PLUGIN_AUTH) w.cstring(c.authPluginName ?? '');
    if (capabilities & CLIENT_CONNECT_ATTRS) writeAttributes(w, c.connectAttributes ?? new Map());
  }
  return w.finish();
}

// ---------------------------------------------------------------------------------------------
// Resultsets

/**
 * LOCAL INFILE request, in place of a resultset: 0xFB | string<EOF> filename. Only the first
 * packet of a COM_QUERY response can be one (a column count never starts with 0xFB).
 */
export function isLocalInfileRequest(payload: Buffer): boolean {
  return payload.length >= 1 && payload[0] === ResponseHeader.LOCAL_INFILE;
}

export function decodeLocalInfileRequest(payload: Buffer): string {
  if (!isLocalInfileRequest(payload)) throw new RangeError('not a LOCAL INFILE request');
  return payload.toString('utf8', 1);
}

export function encodeLocalInfileRequest(filename: string): Buffer {
  return encodeTextCommand(ResponseHeader.LOCAL_INFILE, filename);
}

/** The first packet of a resultset: int<lenenc> column count. */
export function decodeColumnCount(payload: Buffer): number {
  const r = reader.reset(payload);
  const n = readLenencInt(r);
  if (r.remaining !== 0) throw new RangeError('column count packet has trailing bytes');
  return n;
}

export function encodeColumnCount(n: number): Buffer {
  return writeLenencInt(new ByteWriter(9), n).finish();
}

/**
 * ColumnDefinition41:
 *   string<lenenc> catalog ("def") | schema | table (alias) | org_table | name (alias) | org_name |
 *   [MariaDB with EXTENDED_METADATA: string<lenenc> extended type info] |
 *   int<lenenc> 0x0C | int<2> charset | int<4> column length | int<1> type | int<2> flags |
 *   int<1> decimals | int<2> filler | [COM_FIELD_LIST: string<lenenc> default values]
 */
export interface ColumnDefinition41 {
  readonly catalog: string;
  readonly schema: string;
  readonly table: string;
  readonly orgTable: string;
  readonly name: string;
  readonly orgName: string;
  readonly charset: number;
  readonly columnLength: number;
  readonly type: number;
  readonly flags: number;
  readonly decimals: number;
  /** MariaDB's extended metadata (only with MARIADB_CLIENT_EXTENDED_METADATA). */
  readonly extendedMetadata?: Buffer | undefined;
  /** Default values (only in a COM_FIELD_LIST response). */
  readonly defaultValues?: Buffer | undefined;
}

export function decodeColumnDefinition41(payload: Buffer, options: { extendedMetadata?: boolean } = {}): ColumnDefinition41 {
  const r = reader.reset(payload);
  const catalog = readLenencString(r);
  const schema = readLenencString(r);
  const table = readLenencString(r);
  const orgTable = readLenencString(r);
  const name = readLenencString(r);
  const orgName = readLenencString(r);
  const extendedMetadata = options.extendedMetadata ? Buffer.from(readLenencBytes(r)) : undefined;
  const fixed = readLenencInt(r);
  if (fixed < 10) throw new RangeError(`column definition fixed fields are ${fixed} bytes, need at least 10`);
  const fixedEnd = r.offset + fixed;
  const charset = r.uintLE(2);
  const columnLength = r.uintLE(4);
  const type = r.uint8();
  const flags = r.uintLE(2);
  const decimals = r.uint8();
  r.skip(fixedEnd - r.offset);
  const defaultValues = r.remaining > 0 ? Buffer.from(readLenencBytes(r)) : undefined;
  return { catalog, schema, table, orgTable, name, orgName, charset, columnLength, type, flags, decimals, extendedMetadata, defaultValues };
}

export function encodeColumnDefinition41(c: ColumnDefinition41): Buffer {
  const w = new ByteWriter(128);
  for (const s of [c.catalog, c.schema, c.table, c.orgTable, c.name, c.orgName]) writeLenencString(w, s);
  if (c.extendedMetadata) writeLenencBytes(w, c.extendedMetadata);
  w.uint8(0x0c).uintLE(c.charset, 2);
  u32(w, c.columnLength).uint8(c.type).uintLE(c.flags, 2).uint8(c.decimals).uintLE(0, 2);
  if (c.defaultValues) writeLenencBytes(w, c.defaultValues);
  return w.finish();
}

/**
 * COM_STMT_PREPARE_OK: 0x00 | int<4> statement id | int<2> columns | int<2> parameters |
 * 0x00 | int<2> warnings. Parameter definitions then column definitions follow, each list
 * closed by an EOF unless CLIENT_DEPRECATE_EOF.
 */
export interface StmtPrepareOk {
  readonly statementId: number;
  readonly columnCount: number;
  readonly paramCount: number;
  readonly warnings: number;
}

export function decodeStmtPrepareOk(payload: Buffer): StmtPrepareOk {
  const r = reader.reset(payload);
  if (r.uint8() !== 0x00) throw new RangeError('not a COM_STMT_PREPARE_OK');
  const statementId = r.uintLE(4);
  const columnCount = r.uintLE(2);
  const paramCount = r.uintLE(2);
  r.skip(1);
  const warnings = r.remaining >= 2 ? r.uintLE(2) : 0;
  return { statementId, columnCount, paramCount, warnings };
}

export function encodeStmtPrepareOk(p: StmtPrepareOk): Buffer {
  const w = new ByteWriter(12).uint8(0);
  return u32(w, p.statementId).uintLE(p.columnCount, 2).uintLE(p.paramCount, 2).uint8(0).uintLE(p.warnings, 2).finish();
}

/**
 * Where each value of a row (or of COM_STMT_EXECUTE's parameters) lies in its payload:
 * value i is `payload.subarray(starts[i], ends[i])`, its content without the length prefix;
 * `starts[i]` is -1 for NULL. Reused from row to row on hot paths (pass it back in).
 */
export interface RowRanges {
  readonly starts: Int32Array;
  readonly ends: Int32Array;
}

export function createRowRanges(columns: number): RowRanges {
  return { starts: new Int32Array(columns), ends: new Int32Array(columns) };
}

/** The value of column `i` (a view), or null. */
export function rowValue(payload: Buffer, ranges: RowRanges, i: number): Buffer | null {
  const start = ranges.starts[i]!;
  return start < 0 ? null : payload.subarray(start, ranges.ends[i]!);
}

function rangesFor(columns: number, into: RowRanges | undefined): RowRanges {
  return into && into.starts.length === columns ? into : createRowRanges(columns);
}

/** Text resultset row: per column string<lenenc>, or 0xFB for NULL. */
export function decodeTextRow(payload: Buffer, columnCount: number, into?: RowRanges): RowRanges {
  const ranges = rangesFor(columnCount, into);
  const end = payload.length;
  cursor.at = 0;
  for (let i = 0; i < columnCount; i++) {
    const n = lenencAt(payload, cursor, end);
    if (n < 0) {
      ranges.starts[i] = -1;
      ranges.ends[i] = cursor.at;
      continue;
    }
    const start = cursor.at;
    if (start + n > end) throw new RangeError(`row ends early: column ${i} needs ${n} bytes, ${end - start} left`);
    ranges.starts[i] = start;
    ranges.ends[i] = start + n;
    cursor.at = start + n;
  }
  if (cursor.at !== end) throw new RangeError(`row has ${end - cursor.at} bytes after its ${columnCount} columns`);
  return ranges;
}

export function encodeTextRow(values: readonly (Uint8Array | string | null)[]): Buffer {
  const w = new ByteWriter(64);
  for (const v of values) {
    if (v === null) w.uint8(LENENC_NULL);
    else if (typeof v === 'string') writeLenencString(w, v);
    else writeLenencBytes(w, v);
  }
  return w.finish();
}

/**
 * How a binary-protocol value of `type` is laid out: a fixed number of bytes, a one-byte
 * length (date and time types), or a length-encoded string (everything else: decimals,
 * strings, blobs, bit, enum, set, JSON, geometry).
 */
export function binaryValueLayout(type: number): { readonly fixed: number } | 'datetime' | 'time' | 'lenenc' {
  switch (type) {
    case ColumnType.TINY:
      return FIXED_1;
    case ColumnType.SHORT:
    case ColumnType.YEAR:
      return FIXED_2;
    case ColumnType.LONG:
    case ColumnType.INT24:
    case ColumnType.FLOAT:
      return FIXED_4;
    case ColumnType.LONGLONG:
    case ColumnType.DOUBLE:
      return FIXED_8;
    case ColumnType.NULL:
      return FIXED_0;
    case ColumnType.DATE:
    case ColumnType.NEWDATE:
    case ColumnType.DATETIME:
    case ColumnType.DATETIME2:
    case ColumnType.TIMESTAMP:
    case ColumnType.TIMESTAMP2:
      return 'datetime';
    case ColumnType.TIME:
    case ColumnType.TIME2:
      return 'time';
    default:
      return 'lenenc';
  }
}

const FIXED_0 = { fixed: 0 } as const;
const FIXED_1 = { fixed: 1 } as const;
const FIXED_2 = { fixed: 2 } as const;
const FIXED_4 = { fixed: 4 } as const;
const FIXED_8 = { fixed: 8 } as const;

function validTemporalLength(layout: 'datetime' | 'time', n: number): boolean {
  return layout === 'datetime' ? n === 0 || n === 4 || n === 7 || n === 11 : n === 0 || n === 8 || n === 12;
}

/** Reads one binary value at `cursor.at` into `ranges[i]` (content without the length prefix). */
function readBinaryValue(payload: Buffer, type: number, cursor: { at: number }, end: number, ranges: RowRanges, i: number): void {
  const layout = binaryValueLayout(type);
  let start: number;
  let n: number;
  if (layout === 'lenenc') {
    n = lenencAt(payload, cursor, end);
    if (n < 0) throw new RangeError(`value ${i} of type ${type} is a NULL marker`);
    start = cursor.at;
  } else if (layout === 'datetime' || layout === 'time') {
    if (cursor.at >= end) throw new RangeError(`row ends early at value ${i}`);
    n = payload[cursor.at]!;
    if (!validTemporalLength(layout, n)) throw new RangeError(`value ${i} of type ${type} has invalid length ${n}`);
    start = cursor.at + 1;
  } else {
    n = layout.fixed;
    start = cursor.at;
  }
  if (start + n > end) throw new RangeError(`row ends early: value ${i} needs ${n} bytes, ${end - start} left`);
  ranges.starts[i] = start;
  ranges.ends[i] = start + n;
  cursor.at = start + n;
}

/**
 * Binary resultset row: 0x00 | NULL bitmap ((columns + 7 + 2) / 8 bytes, bit i + 2 is column i) |
 * the non-NULL values, laid out by column type (see binaryValueLayout).
 * https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_binary_resultset.html
 */
export function decodeBinaryRow(payload: Buffer, types: ArrayLike<number>, into?: RowRanges): RowRanges {
  const columns = types.length;
  const ranges = rangesFor(columns, into);
  const end = payload.length;
  if (end === 0 || payload[0] !== 0x00) throw new RangeError('binary row must start with 0x00');
  const bitmapBytes = (columns + 9) >> 3;
  if (1 + bitmapBytes > end) throw new RangeError('binary row ends inside its NULL bitmap');
  cursor.at = 1 + bitmapBytes;
  for (let i = 0; i < columns; i++) {
    const bit = i + 2;
    if (payload[1 + (bit >> 3)]! & (1 << (bit & 7))) {
      ranges.starts[i] = -1;
      ranges.ends[i] = cursor.at;
      continue;
    }
    readBinaryValue(payload, types[i]!, cursor, end, ranges, i);
  }
  if (cursor.at !== end) throw new RangeError(`binary row has ${end - cursor.at} bytes after its ${columns} values`);
  return ranges;
}

function writeBinaryValue(w: ByteWriter, type: number, value: Uint8Array): void {
  const layout = binaryValueLayout(type);
  if (layout === 'lenenc') writeLenencBytes(w, value);
  else if (layout === 'datetime' || layout === 'time') {
    if (!validTemporalLength(layout, value.length)) throw new RangeError(`invalid length ${value.length} for a value of type ${type}`);
    w.uint8(value.length).bytes(value);
  } else {
    if (value.length !== layout.fixed) throw new RangeError(`a value of type ${type} takes ${layout.fixed} bytes, got ${value.length}`);
    w.bytes(value);
  }
}

/**
 * A binary row from values in the forms decodeBinaryRow yields: fixed-size integers and floats
 * as their little-endian bytes, date/time types as the bytes after their length byte (0, 4, 7
 * or 11 for dates, 0, 8 or 12 for times), everything else as the string's bytes.
 */
export function encodeBinaryRow(types: ArrayLike<number>, values: readonly (Uint8Array | null)[]): Buffer {
  const columns = types.length;
  if (values.length !== columns) throw new RangeError(`${columns} column types but ${values.length} values`);
  const w = new ByteWriter(64);
  const bitmap = Buffer.alloc((columns + 9) >> 3);
  for (let i = 0; i < columns; i++) {
    const bit = i + 2;
    if (values[i] === null) bitmap[bit >> 3]! |= 1 << (bit & 7);
  }
  w.uint8(0).bytes(bitmap);
  for (let i = 0; i < columns; i++) {
    const v = values[i];
    if (v !== null && v !== undefined) writeBinaryValue(w, types[i]!, v);
  }
  return w.finish();
}

/**
 * A binary-protocol value as text, as the server would print it: integers (signed unless
 * `unsigned`), floats, 'YYYY-MM-DD[ hh:mm:ss[.ffffff]]', '[-]hh:mm:ss[.ffffff]' (hours include
 * the days), and the bytes of anything else as UTF-8. For audit and review displays.
 */
export function formatBinaryValue(type: number, value: Buffer, unsigned = false): string {
  const layout = binaryValueLayout(type);
  if (layout === 'lenenc') return value.toString('utf8');
  if (layout === 'datetime') return formatDateTime(type, value);
  if (layout === 'time') return formatTime(value);
  switch (type) {
    case ColumnType.TINY:
      return String(unsigned ? value.readUInt8(0) : value.readInt8(0));
    case ColumnType.SHORT:
    case ColumnType.YEAR:
      return String(unsigned || type === ColumnType.YEAR ? value.readUInt16LE(0) : value.readInt16LE(0));
    case ColumnType.LONG:
    case ColumnType.INT24:
      return String(unsigned ? value.readUInt32LE(0) : value.readInt32LE(0));
    case ColumnType.LONGLONG:
      return String(unsigned ? value.readBigUInt64LE(0) : value.readBigInt64LE(0));
    case ColumnType.FLOAT:
      return String(Math.fround(value.readFloatLE(0)));
    case ColumnType.DOUBLE:
      return String(value.readDoubleLE(0));
    default:
      return '';
  }
}

const pad = (n: number, width = 2): string => String(n).padStart(width, '0');

function formatDateTime(type: number, v: Buffer): string {
  const dateOnly = type === ColumnType.DATE || type === ColumnType.NEWDATE;
  if (v.length === 0) return dateOnly ? '0000-00-00' : '0000-00-00 00:00:00';
  const date = `${pad(v.readUInt16LE(0), 4)}-${pad(v[2]!)}-${pad(v[3]!)}`;
  if (dateOnly) return date;
  const time = v.length >= 7 ? `${pad(v[4]!)}:${pad(v[5]!)}:${pad(v[6]!)}` : '00:00:00';
  return v.length === 11 ? `${date} ${time}.${pad(v.readUInt32LE(7), 6)}` : `${date} ${time}`;
}

function formatTime(v: Buffer): string {
  if (v.length === 0) return '00:00:00';
  const sign = v[0] === 1 ? '-' : '';
  const hours = v.readUInt32LE(1) * 24 + v[5]!;
  const time = `${sign}${pad(hours)}:${pad(v[6]!)}:${pad(v[7]!)}`;
  return v.length === 12 ? `${time}.${pad(v.readUInt32LE(8), 6)}` : time;
}
