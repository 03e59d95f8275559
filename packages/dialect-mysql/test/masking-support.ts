import { CLIENT_DEPRECATE_EOF, CLIENT_MULTI_RESULTS, CLIENT_MULTI_STATEMENTS, CLIENT_PS_MULTI_RESULTS, CLIENT_TRANSACTIONS, Command, CursorType, ServerStatus } from '../src/protocol/constants.js';
import {
  createRowRanges,
  decodeBinaryRow,
  decodeColumnCount,
  decodeColumnDefinition41,
  decodeEof,
  decodeErr,
  decodeOk,
  decodeStmtPrepareOk,
  decodeTextRow,
  encodeComQuery,
  encodeComStmtExecute,
  encodeComStmtFetch,
  encodeComStmtPrepare,
  encodeSimpleCommand,
  encodeStatementCommand,
  endsRows,
  isErrPacket,
  isOkPacket,
  rowValue,
  type BinaryParam,
  type ColumnDefinition41,
  type ErrPacket,
} from '../src/protocol/messages.js';
import { MessageReader, PacketSequence, type PacketMessage } from '../src/protocol/packets.js';
import { connectUpstream, type MysqlUpstreamConnection, type MysqlUpstreamOptions } from '../src/protocol/upstream.js';

/**
 * Shared pieces of the gateway-level masking suites: the live-test wrapper, the leak check and
 * a raw protocol client that logs in through the gateway (for what drivers do not do, such as
 * read-only cursors fetched with COM_STMT_FETCH).
 */

import { DIRECT } from './support.js';

export { DIRECT, liveTest, UPSTREAM } from './support.js';

/** Any result as text: buffers as UTF-8 (and Latin-1), big integers as digits. */
export function textOf(value: unknown): string {
  if (typeof value === 'string') return value;
  if (Buffer.isBuffer(value)) return `${value.toString('utf8')}\n${value.toString('latin1')}`;
  return (
    JSON.stringify(value, (_k, v: unknown) => {
      if (typeof v === 'bigint') return v.toString();
      if (v !== null && typeof v === 'object' && (v as { type?: unknown }).type === 'Buffer' && Array.isArray((v as { data?: unknown }).data)) {
        return textOf(Buffer.from((v as { data: number[] }).data));
      }
      return v;
    }) ?? ''
  );
}

/** The forms of a secret that must not reach a client: as is, upper, lower, reversed, base64, hex. */
export function formsOf(secret: string): string[] {
  const b = Buffer.from(secret, 'utf8');
  return [secret, secret.toLowerCase(), secret.toUpperCase(), [...secret].reverse().join(''), b.toString('base64'), b.toString('hex'), b.toString('hex').toUpperCase()];
}

/** Which of `secrets` (or one of their forms) appear in `value`. */
export function leaksOf(secrets: readonly string[], value: unknown): string[] {
  const text = textOf(value);
  const found = new Set<string>();
  for (const s of secrets) for (const f of formsOf(s)) if (text.includes(f)) found.add(f);
  return [...found];
}

/** The strings in a result (buffers as UTF-8 and Latin-1, numbers as digits). */
function stringsOf(value: unknown, out: string[] = []): string[] {
  if (value === null || value === undefined) return out;
  if (typeof value === 'string') out.push(value);
  else if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean') out.push(String(value));
  else if (Buffer.isBuffer(value)) out.push(value.toString('utf8'), value.toString('latin1'));
  else if (Array.isArray(value)) for (const v of value) stringsOf(v, out);
  else if (typeof value === 'object') for (const v of Object.values(value)) stringsOf(v, out);
  return out;
}

/** A string's hex and base64 decodings, when it reads as one (the runs of such characters in it, too). */
function decodings(text: string): string[] {
  const out: string[] = [];
  for (const run of text.match(/[0-9A-Fa-f]{8,}/g) ?? []) {
    out.push(Buffer.from(run.length % 2 === 0 ? run : run.slice(0, -1), 'hex').toString('latin1'));
    out.push(Buffer.from(run.slice(1, run.length - ((run.length - 1) % 2)), 'hex').toString('latin1'));
  }
  for (const run of text.replace(/\s+/g, '').match(/[A-Za-z0-9+/]{8,}={0,2}/g) ?? []) {
    // The encoded part may start anywhere in the run: each of the four alignments.
    for (let at = 0; at < 4; at++) out.push(Buffer.from(run.slice(at), 'base64').toString('latin1'));
  }
  return out;
}

/**
 * Which of `secrets` can be read in `value`: in any case, reversed or not, as they are or
 * hex- or base64-encoded (decoded up to twice, so an encoding of an encoding is found too).
 */
export function decodedLeaks(secrets: readonly string[], value: unknown): string[] {
  let texts = stringsOf(value);
  const all = [...texts];
  for (let depth = 0; depth < 2; depth++) {
    texts = texts.flatMap(decodings);
    all.push(...texts);
  }
  const haystack = all.join('\n').toLowerCase();
  const found = new Set<string>();
  for (const s of secrets) {
    const l = s.toLowerCase();
    if (haystack.includes(l) || haystack.includes([...l].reverse().join(''))) found.add(s);
  }
  return [...found];
}

/** One result of a raw command: column definitions and row payloads. */
export interface RawResult {
  readonly columns: ColumnDefinition41[];
  readonly rows: Buffer[];
  /** Server status of the result's end. */
  readonly status: number;
}

export class RawServerError extends Error {
  constructor(readonly err: ErrPacket) {
    super(err.message);
  }
}

/** The values of a raw result's rows as bytes (binary rows decoded by their column types), null for NULL. */
export function rawValues(result: RawResult, binary: boolean): (Buffer | null)[][] {
  const ranges = createRowRanges(result.columns.length);
  const types = result.columns.map((c) => c.type);
  return result.rows.map((row) => {
    if (binary) decodeBinaryRow(row, types, ranges);
    else decodeTextRow(row, result.columns.length, ranges);
    return result.columns.map((_, i) => {
      const v = rowValue(row, ranges, i);
      return v === null ? null : Buffer.from(v);
    });
  });
}

/**
 * A client speaking the MySQL protocol itself, logged in through the gateway with a token
 * (mysql_clear_password, allowed on loopback): COM_QUERY, COM_STMT_PREPARE / EXECUTE (with a
 * read-only cursor) / FETCH, one command at a time.
 */
export class RawSession {
  readonly #reader = new MessageReader({ maxMessageBytes: 1 << 26 });
  readonly #seq = new PacketSequence();
  readonly #pending: PacketMessage[] = [];
  #wake: (() => void) | undefined;
  #closed = false;
  #columnsStatus = 0;

  private constructor(readonly conn: MysqlUpstreamConnection) {
    this.#reader.push(conn.leftover);
    conn.socket.on('data', (d: Buffer) => {
      this.#reader.push(d);
      for (let m = this.#reader.next(); m; m = this.#reader.next()) this.#pending.push({ ...m, payload: Buffer.from(m.payload) });
      this.#wake?.();
    });
    conn.socket.on('close', () => {
      this.#closed = true;
      this.#wake?.();
    });
    conn.socket.on('error', () => undefined);
    conn.socket.resume();
  }

  /** Logs in through the gateway at `address` to `target` as `subject` with `token`. */
  static open(address: { host: string; port: number }, target: string, subject: string, token: string, deprecateEof = true): Promise<RawSession> {
    return RawSession.#connect({ host: address.host, port: address.port, user: subject, password: token, database: target }, deprecateEof);
  }

  /** Logs in to the MariaDB itself, bypassing the gateway (to compare bytes). */
  static direct(deprecateEof = true): Promise<RawSession> {
    return RawSession.#connect({ ...DIRECT, password: '' }, deprecateEof);
  }

  static async #connect(options: MysqlUpstreamOptions, deprecateEof: boolean): Promise<RawSession> {
    const capabilities = (CLIENT_TRANSACTIONS | CLIENT_MULTI_RESULTS | CLIENT_PS_MULTI_RESULTS | CLIENT_MULTI_STATEMENTS | (deprecateEof ? CLIENT_DEPRECATE_EOF : 0)) >>> 0;
    return new RawSession(await connectUpstream({ ...options, capabilities, connectTimeoutMs: 10_000 }));
  }

  get deprecateEof(): boolean {
    return (this.conn.capabilities & CLIENT_DEPRECATE_EOF) !== 0;
  }

  #command(payload: Buffer): void {
    this.#seq.reset();
    this.conn.socket.write(this.#seq.encode(payload));
  }

  async #read(): Promise<Buffer> {
    for (;;) {
      const m = this.#pending.shift();
      if (m) {
        this.#seq.received(m);
        if (isErrPacket(m.payload)) throw new RawServerError(decodeErr(m.payload));
        return m.payload;
      }
      if (this.#closed) throw new Error('the gateway closed the connection');
      await new Promise<void>((r) => (this.#wake = r));
    }
  }

  /** Column definitions, then (without DEPRECATE_EOF) their EOF, whose status is kept in `#columnsStatus`. */
  async #columns(count: number): Promise<ColumnDefinition41[]> {
    const cols: ColumnDefinition41[] = [];
    for (let i = 0; i < count; i++) cols.push(decodeColumnDefinition41(await this.#read()));
    this.#columnsStatus = 0;
    if (!this.deprecateEof && count > 0) this.#columnsStatus = decodeEof(await this.#read(), this.conn.capabilities).statusFlags;
    return cols;
  }

  #statusOf(end: Buffer): number {
    return this.deprecateEof ? decodeOk(end, this.conn.capabilities).statusFlags : decodeEof(end, this.conn.capabilities).statusFlags;
  }

  async #rows(): Promise<{ rows: Buffer[]; status: number }> {
    const rows: Buffer[] = [];
    for (;;) {
      const p = await this.#read();
      if (endsRows(p, this.deprecateEof)) return { rows, status: this.#statusOf(p) };
      rows.push(p);
    }
  }

  /** COM_QUERY: every result of the request (an OK counts as a result without columns). */
  async query(sql: string): Promise<RawResult[]> {
    this.#command(encodeComQuery(sql));
    const out: RawResult[] = [];
    for (;;) {
      const first = await this.#read();
      let status: number;
      if (isOkPacket(first)) {
        status = decodeOk(first, this.conn.capabilities).statusFlags;
        out.push({ columns: [], rows: [], status });
      } else {
        const columns = await this.#columns(decodeColumnCount(first));
        const r = await this.#rows();
        status = r.status;
        out.push({ columns, rows: r.rows, status });
      }
      if ((status & ServerStatus.MORE_RESULTS_EXISTS) === 0) return out;
    }
  }

  /** COM_STMT_PREPARE: the statement id and its result columns. */
  async prepare(sql: string): Promise<{ id: number; columns: ColumnDefinition41[] }> {
    this.#command(encodeComStmtPrepare(sql));
    const ok = decodeStmtPrepareOk(await this.#read());
    await this.#columns(ok.paramCount);
    const columns = await this.#columns(ok.columnCount);
    return { id: ok.statementId, columns };
  }

  /**
   * COM_STMT_EXECUTE. With `cursor`, a read-only cursor is asked for: the server answers with
   * the column definitions and no rows (they come with `fetch`).
   */
  async execute(id: number, params: readonly BinaryParam[], cursor = false): Promise<RawResult> {
    this.#command(encodeComStmtExecute({ statementId: id, params, flags: cursor ? CursorType.READ_ONLY : CursorType.NO_CURSOR }));
    const first = await this.#read();
    if (isOkPacket(first)) return { columns: [], rows: [], status: decodeOk(first, this.conn.capabilities).statusFlags };
    const columns = await this.#columns(decodeColumnCount(first));
    if (cursor && !this.deprecateEof && (this.#columnsStatus & ServerStatus.CURSOR_EXISTS) !== 0) {
      // Without DEPRECATE_EOF the column EOF says CURSOR_EXISTS and no rows follow.
      return { columns, rows: [], status: this.#columnsStatus };
    }
    const r = await this.#rows();
    return { columns, rows: r.rows, status: r.status };
  }

  /** COM_STMT_FETCH of up to `rows` rows from the statement's cursor. */
  async fetch(id: number, rows: number): Promise<{ rows: Buffer[]; status: number }> {
    this.#command(encodeComStmtFetch(id, rows));
    return this.#rows();
  }

  closeStatement(id: number): void {
    this.#command(encodeStatementCommand(Command.STMT_CLOSE, id));
  }

  close(): void {
    if (this.#closed) return;
    this.#command(encodeSimpleCommand(Command.QUIT));
    this.conn.socket.end();
  }
}
