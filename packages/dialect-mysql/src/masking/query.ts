/**
 * A minimal text-protocol client for the gateway's own reads of a target (the masking
 * catalog): one statement at a time over COM_QUERY, rows returned as text. It runs on a
 * connection made by connectUpstream with the gateway's credentials for the target.
 */
import { CLIENT_DEPRECATE_EOF, Command } from '../protocol/constants.js';
import {
  createRowRanges,
  decodeColumnCount,
  decodeErr,
  encodeComQuery,
  encodeSimpleCommand,
  endsRows,
  isErrPacket,
  isOkPacket,
  rowValue,
  decodeTextRow,
} from '../protocol/messages.js';
import { MessageReader, PacketSequence, type PacketMessage } from '../protocol/packets.js';
import { connectUpstream, UpstreamError, type MysqlUpstreamConnection, type MysqlUpstreamOptions } from '../protocol/upstream.js';

/** The server answered a statement with an error. */
export class CatalogQueryError extends Error {
  constructor(
    readonly sql: string,
    readonly errno: number,
    readonly sqlstate: string | undefined,
    serverMessage: string,
  ) {
    super(`${serverMessage} (${errno}${sqlstate ? `/${sqlstate}` : ''})`);
    this.name = 'CatalogQueryError';
  }
}

/** Largest message read (a view definition, a long row of names). */
const MAX_MESSAGE_BYTES = 1 << 30;

export class CatalogConnection {
  readonly #conn: MysqlUpstreamConnection;
  readonly #reader = new MessageReader({ maxMessageBytes: MAX_MESSAGE_BYTES });
  readonly #seq = new PacketSequence();
  readonly #pending: PacketMessage[] = [];
  #waiter: { resolve: () => void; reject: (err: Error) => void } | undefined;
  #failure: Error | undefined;
  #busy = false;

  private constructor(conn: MysqlUpstreamConnection) {
    this.#conn = conn;
    const socket = conn.socket;
    socket.on('data', (chunk: Buffer) => {
      try {
        this.#reader.push(chunk);
        // Payload views of the reader are never written again: they can be kept as they are.
        for (let m = this.#reader.next(); m; m = this.#reader.next()) this.#pending.push(m);
      } catch (err) {
        this.#fail(new UpstreamError(`bad data from the upstream: ${(err as Error).message}`, undefined, { cause: err }));
        return;
      }
      this.#wake();
    });
    socket.on('error', (err: Error) => this.#fail(new UpstreamError(`catalog connection failed: ${err.message}`, undefined, { cause: err })));
    socket.on('close', () => this.#fail(new UpstreamError('the upstream closed the catalog connection')));
    if (conn.leftover.length > 0) this.#reader.push(conn.leftover);
    socket.resume();
  }

  /** Logs in to the target with `options` (its own capabilities: plain text protocol, one statement per query). */
  static async open(options: MysqlUpstreamOptions): Promise<CatalogConnection> {
    const conn = await connectUpstream({
      ...options,
      capabilities: undefined,
      connectAttributes: new Map([['program_name', 'sluice-catalog']]),
    });
    return new CatalogConnection(conn);
  }

  get serverVersion(): string {
    return this.#conn.serverVersion;
  }

  #wake(): void {
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.resolve();
  }

  #fail(err: Error): void {
    this.#failure ??= err;
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.reject(this.#failure);
  }

  async #read(): Promise<Buffer> {
    for (;;) {
      const m = this.#pending.shift();
      if (m !== undefined) {
        this.#seq.received(m);
        return m.payload;
      }
      if (this.#failure) throw this.#failure;
      await new Promise<void>((resolve, reject) => (this.#waiter = { resolve, reject }));
    }
  }

  /** Runs one statement; its rows as text (null for NULL), empty for a statement without a result. */
  async query(sql: string): Promise<(string | null)[][]> {
    if (this.#busy) throw new Error('one catalog query at a time');
    if (this.#failure) throw this.#failure;
    this.#busy = true;
    try {
      this.#seq.reset();
      this.#conn.socket.write(this.#seq.encode(encodeComQuery(sql)));
      const first = await this.#read();
      if (isErrPacket(first)) throw this.#error(sql, first);
      if (isOkPacket(first)) return [];
      const columns = decodeColumnCount(first);
      const deprecateEof = (this.#conn.capabilities & CLIENT_DEPRECATE_EOF) !== 0;
      // Column definitions are not needed: every value is read as text.
      for (let i = 0; i < columns; i++) {
        const def = await this.#read();
        if (isErrPacket(def)) throw this.#error(sql, def);
      }
      if (!deprecateEof) await this.#read();
      const rows: (string | null)[][] = [];
      const ranges = createRowRanges(columns);
      for (;;) {
        const p = await this.#read();
        if (isErrPacket(p)) throw this.#error(sql, p);
        if (endsRows(p, deprecateEof)) return rows;
        decodeTextRow(p, columns, ranges);
        const row: (string | null)[] = new Array<string | null>(columns);
        for (let i = 0; i < columns; i++) row[i] = rowValue(p, ranges, i)?.toString('utf8') ?? null;
        rows.push(row);
      }
    } finally {
      this.#busy = false;
    }
  }

  #error(sql: string, payload: Buffer): CatalogQueryError {
    const e = decodeErr(payload, this.#conn.capabilities);
    return new CatalogQueryError(sql, e.errno, e.sqlstate, e.message);
  }

  /** Says goodbye and closes. */
  close(): void {
    const socket = this.#conn.socket;
    this.#failure ??= new Error('the catalog connection is closed');
    if (!socket.destroyed) {
      try {
        this.#seq.reset();
        socket.end(this.#seq.encode(encodeSimpleCommand(Command.QUIT)));
      } catch {
        // Closing anyway.
      }
      socket.setTimeout(1000, () => socket.destroy());
    }
  }

  /** Closes at once; a query waiting fails with `reason`. */
  destroy(reason: Error = new Error('the catalog connection is closed')): void {
    this.#fail(reason);
    this.#conn.socket.destroy();
  }
}
