/**
 * The gateway's own connection to a target for the masking catalog: one statement at a time
 * (server/query.ts, as the session's own reads), on a connection made by connectUpstream with
 * the gateway's credentials for the target.
 */
import { Command } from '../protocol/constants.js';
import { encodeSimpleCommand } from '../protocol/messages.js';
import { encodePacket } from '../protocol/packets.js';
import { connectUpstream, UpstreamError, type MysqlUpstreamConnection, type MysqlUpstreamOptions } from '../protocol/upstream.js';
import { queryUpstream } from '../server/query.js';

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

/** Longest a single catalog statement may take; the catalog read as a whole has its own limit. */
const QUERY_TIMEOUT_MS = 60_000;

export class CatalogConnection {
  readonly #conn: MysqlUpstreamConnection;
  #leftover: Buffer | undefined;
  #failure: Error | undefined;
  #busy = false;

  private constructor(conn: MysqlUpstreamConnection) {
    this.#conn = conn;
    this.#leftover = conn.leftover;
    // Between queries nobody else listens: an error must not go unhandled.
    conn.socket.on('error', (err: Error) => {
      this.#failure ??= new UpstreamError(`catalog connection failed: ${err.message}`, undefined, { cause: err });
    });
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

  /** Runs one statement; its rows as text (null for NULL), empty for a statement without a result. */
  async query(sql: string): Promise<(string | null)[][]> {
    if (this.#busy) throw new Error('one catalog query at a time');
    if (this.#failure) throw this.#failure;
    this.#busy = true;
    const leftover = this.#leftover;
    this.#leftover = undefined;
    try {
      return (await queryUpstream(this.#conn.socket, this.#conn.capabilities, sql, leftover, QUERY_TIMEOUT_MS)).rows;
    } catch (err) {
      // Closed by destroy(): its reason, not the closed socket's.
      if (this.#failure) throw this.#failure;
      if (err instanceof UpstreamError && err.errno !== undefined) throw new CatalogQueryError(sql, err.errno, err.sqlstate, err.serverMessage ?? err.message);
      throw err;
    } finally {
      this.#busy = false;
    }
  }

  /** Says goodbye and closes. */
  close(): void {
    const socket = this.#conn.socket;
    this.#failure ??= new Error('the catalog connection is closed');
    if (!socket.destroyed) {
      socket.end(encodePacket(encodeSimpleCommand(Command.QUIT), 0));
      socket.setTimeout(1000, () => socket.destroy());
    }
  }

  /** Closes at once; a query waiting fails with `reason`. */
  destroy(reason: Error = new Error('the catalog connection is closed')): void {
    this.#failure ??= reason;
    this.#conn.socket.destroy();
  }
}
