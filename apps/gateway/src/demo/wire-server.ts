/**
 * A PostgreSQL wire-protocol front for a database that has exactly one backend session.
 *
 * PGlite is a single-user PostgreSQL: one backend, one session. Any number of TCP clients can
 * connect here; they take turns on that backend under a lease. A client takes the lease when it
 * sends something and gives it back only when the backend reports ReadyForQuery with status
 * idle ('I'), so a transaction block, an extended-protocol sequence up to its Sync (including
 * the skip-until-Sync state after an error) and a multi-statement query always run without
 * another client's messages in between. Other clients wait, in arrival order.
 *
 * What clients still share, because the backend does: settings changed with SET, temporary
 * tables, SQL-level PREPARE names, the unnamed prepared statement and portal across Syncs,
 * LISTEN channels, advisory locks, and pg_backend_pid(). Protocol-level named statements and
 * portals are renamed per connection so that two clients may both use, say, "S_1". When a
 * client leaves, its open transaction is rolled back and its named statements are closed; when
 * the last one leaves, DISCARD ALL resets the session.
 *
 * Input is checked before it reaches the backend: PGlite loops forever on an unknown message
 * type and ends its backend on COPY FROM STDIN (it reads the copy data from the same buffer as
 * the query, which is empty), so unknown types end the connection with a protocol error and
 * COPY FROM STDIN is answered with a feature_not_supported error. There is no TLS (SSLRequest
 * and GSSENCRequest get 'N'), no authentication (every startup packet is accepted; user and
 * database are ignored) and no query cancellation (a CancelRequest is read and ignored).
 */
import { createServer, type Server, type Socket } from 'node:net';
import { BackendLostError } from './pglite-worker.js';
import { encodeErrorResponse, encodeStartupMessage } from '@sluice/dialect-postgres';

/** The database the server forwards to. */
export interface WireBackend {
  /**
   * Runs raw frontend messages; resolves with the backend's raw reply and the generation of
   * the database that ran them. Rejects with {@link BackendLostError} when it went away.
   */
  execute(messages: Uint8Array): Promise<{ readonly bytes: Uint8Array; readonly generation: number }>;
  /** Changes whenever the database is replaced; sessions of an older generation are gone. */
  readonly generation: number;
}

export interface WireServerLogger {
  info(obj: object | string, msg?: string): void;
  warn(obj: object | string, msg?: string): void;
}

export interface WireServerOptions {
  readonly backend: WireBackend;
  readonly host: string;
  /** 0 picks a free port. */
  readonly port: number;
  /** Sessions past the startup packet at once; more get SQLSTATE 53300. */
  readonly maxConnections: number;
  /**
   * How long a client may hold the backend (open transaction, unfinished extended sequence)
   * without sending anything while another client waits; it is then disconnected with 25P03.
   * 0 disables.
   */
  readonly idleInTransactionTimeoutMs: number;
  /** Largest frontend message accepted, in bytes. */
  readonly maxMessageBytes: number;
  readonly logger?: WireServerLogger;
}

const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;
const CANCEL_REQUEST = 80877102;
const MAX_STARTUP_PACKET = 10_000;
/** Complete messages taken from a client's buffer for one round trip to the backend. */
const BATCH_BYTES = 1 << 20;
/** Buffered input above which reading from a client pauses until the backend catches up. */
const INPUT_HIGH_WATER = 4 << 20;

const REFUSE_COPY_FROM_STDIN = `DO $sluice$BEGIN RAISE EXCEPTION USING ERRCODE = 'feature_not_supported', MESSAGE = 'COPY FROM STDIN is not supported by the embedded demo database', HINT = 'Use INSERT, or run the gateway in front of a PostgreSQL server.'; END$sluice$`;

function cstring(value: string): Buffer {
  return Buffer.from(`${value}\0`, 'utf8');
}

function message(type: string, ...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts);
  const header = Buffer.alloc(5);
  header.write(type, 0, 'latin1');
  header.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([header, body]);
}

function int32(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(value, 0);
  return b;
}

const SYNC = message('S');

function simpleQuery(sql: string): Buffer {
  return message('Q', cstring(sql));
}

function closeStatement(name: string): Buffer {
  return message('C', Buffer.from('S'), cstring(name));
}

/** What every client's session start looks like to the backend, whatever the client sent. */
const BACKEND_STARTUP = encodeStartupMessage(new Map([['user', 'postgres'], ['database', 'postgres']]));

/** Status byte of the ReadyForQuery that ends `bytes`, or null when they end with something else. */
export function finalReadyStatus(bytes: Uint8Array): string | null {
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 0;
  let last: string | null = null;
  while (at + 5 <= view.length) {
    const type = view[at];
    const length = view.readInt32BE(at + 1);
    if (length < 4 || at + 1 + length > view.length) return null;
    last = type === 0x5a && length === 5 ? String.fromCharCode(view[at + 5] ?? 0) : null;
    at += 1 + length;
  }
  return at === view.length ? last : null;
}

/** True for SQL that may contain COPY ... FROM STDIN; both are keywords, so they appear literally. */
export function mayCopyFromStdin(sql: string): boolean {
  return /\bcopy\b/i.test(sql) && /\bstdin\b/i.test(sql);
}

class ProtocolViolation extends Error {
  constructor(readonly sqlState: string, message: string) {
    super(message);
  }
}

/** Reads the NUL-terminated string at `at`; returns it and the offset after the NUL. */
function readCString(buf: Buffer, at: number): [string, number] {
  const end = buf.indexOf(0, at);
  if (end < 0) throw new ProtocolViolation('08P01', 'invalid message format');
  return [buf.toString('utf8', at, end), end + 1];
}

/** Bytes received from a client. Chunks are joined only once a whole message is there. */
class Inbox {
  private head: Buffer = Buffer.alloc(0);
  private tail: Buffer[] = [];
  private tailBytes = 0;
  /** Bytes needed before the next message can be read; 0 when unknown. */
  wanted = 0;

  get length(): number {
    return this.head.length + this.tailBytes;
  }

  get ready(): boolean {
    return this.length >= this.wanted;
  }

  push(chunk: Buffer): void {
    this.tail.push(chunk);
    this.tailBytes += chunk.length;
  }

  /** Everything buffered, as one Buffer. */
  view(): Buffer {
    if (this.tail.length > 0) {
      this.head = Buffer.concat([this.head, ...this.tail]);
      this.tail = [];
      this.tailBytes = 0;
    }
    return this.head;
  }

  consume(bytes: number): void {
    this.head = this.view().subarray(bytes);
  }
}

/** Hands the single backend to one connection at a time, first come first served. */
class Lease {
  private holder: Connection | null = null;
  private readonly waiters: Array<{ readonly conn: Connection; readonly grant: () => void }> = [];

  holds(conn: Connection): boolean {
    return this.holder === conn;
  }

  get contended(): boolean {
    return this.waiters.length > 0;
  }

  acquire(conn: Connection): Promise<void> {
    if (this.holder === conn) return Promise.resolve();
    if (this.holder === null) {
      this.holder = conn;
      return Promise.resolve();
    }
    return new Promise((grant) => {
      this.waiters.push({ conn, grant });
      this.holder?.onContention();
    });
  }

  release(conn: Connection): void {
    if (this.holder !== conn) return;
    const next = this.waiters.shift();
    this.holder = next?.conn ?? null;
    next?.grant();
  }
}

interface Batch {
  readonly messages: Buffer[];
  readonly terminate: boolean;
  readonly violation: ProtocolViolation | null;
}

class Connection {
  private readonly inbox = new Inbox();
  private phase: 'startup' | 'ready' | 'closed' = 'startup';
  private pumping = false;
  private executing = false;
  private cleanedUp = false;
  private admitted = false;
  private idleTimer: NodeJS.Timeout | undefined;
  /** Generation of the backend holding this session's state; null before the startup ran. */
  private generation: number | null = null;
  /** Backend names of the named prepared statements this client created. */
  private readonly statements = new Set<string>();
  private readonly prefix: string;

  constructor(
    readonly id: number,
    private readonly socket: Socket,
    private readonly server: WireServer,
  ) {
    this.prefix = `c${id}_`;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', () => undefined);
    socket.on('close', () => this.onClose());
  }

  /** True once this session has state in the backend of `generation`. */
  livesIn(generation: number): boolean {
    return this.generation === generation && this.phase !== 'closed';
  }

  get isExecuting(): boolean {
    return this.executing;
  }

  /** Another client is waiting for the lease this connection holds. */
  onContention(): void {
    this.armIdleTimer();
  }

  /** Sends a FATAL error (when the socket still takes data) and closes the connection. */
  fatal(sqlState: string, text: string): void {
    if (this.phase === 'closed') return;
    this.phase = 'closed';
    this.clearIdleTimer();
    if (this.socket.writable) {
      this.socket.end(encodeErrorResponse({ severity: 'FATAL', code: sqlState, message: text }), () => this.socket.destroy());
    } else {
      this.socket.destroy();
    }
  }

  private onData(chunk: Buffer): void {
    if (this.phase === 'closed') return;
    this.inbox.push(chunk);
    this.clearIdleTimer();
    // While the backend works, stop reading a client that keeps sending.
    if (this.pumping && this.inbox.length > INPUT_HIGH_WATER) this.socket.pause();
    if (this.inbox.ready) void this.pump();
  }

  private onClose(): void {
    this.phase = 'closed';
    this.clearIdleTimer();
    if (!this.pumping) void this.cleanup();
  }

  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.phase !== 'closed') {
        if (this.phase === 'startup') {
          if (!(await this.startupStep())) break;
          continue;
        }
        const batch = this.takeBatch();
        if (batch === null) break;
        await this.run(batch);
      }
    } catch (err) {
      if (err instanceof BackendLostError) {
        this.fatal(err.sqlState, err.message);
      } else if (err instanceof ProtocolViolation) {
        this.server.log('warn', { conn: this.id, err: err.message }, 'closing a client that broke the protocol');
        this.fatal(err.sqlState, err.message);
      } else {
        this.server.log('warn', { conn: this.id, err: String(err) }, 'embedded database session failed');
        this.fatal('XX000', 'internal error in the embedded database front end');
      }
    } finally {
      this.pumping = false;
    }
    if (this.socket.isPaused()) this.socket.resume();
    if (this.phase === 'closed') {
      await this.cleanup();
    } else {
      this.armIdleTimer();
    }
  }

  /** Handles one untyped packet of the session start; false when more input is needed or the connection ended. */
  private async startupStep(): Promise<boolean> {
    const input = this.inbox.view();
    if (input.length < 8) {
      this.inbox.wanted = 8;
      return false;
    }
    const length = input.readInt32BE(0);
    if (length < 8 || length > MAX_STARTUP_PACKET) throw new ProtocolViolation('08P01', 'invalid length of startup packet');
    if (input.length < length) {
      this.inbox.wanted = length;
      return false;
    }
    const packet = Buffer.from(input.subarray(0, length));
    this.inbox.consume(length);
    this.inbox.wanted = 0;
    const code = packet.readInt32BE(4);

    if ((code === SSL_REQUEST || code === GSSENC_REQUEST) && length === 8) {
      this.socket.write('N');
      return true;
    }
    if (code === CANCEL_REQUEST && length === 16) {
      // Nothing can be interrupted: statements run to completion (or hit the time limit).
      this.phase = 'closed';
      this.socket.destroy();
      return false;
    }
    const major = code >>> 16;
    const minor = code & 0xffff;
    if (major !== 3) {
      throw new ProtocolViolation('0A000', `unsupported frontend protocol ${major}.${minor}: server supports 3.0 to 3.0`);
    }
    const params = new Map<string, string>();
    let at = 8;
    while (at < packet.length - 1) {
      const [key, afterKey] = readCString(packet, at);
      const [value, afterValue] = readCString(packet, afterKey);
      params.set(key, value);
      at = afterValue;
    }
    if (at !== packet.length - 1 || packet[at] !== 0) {
      throw new ProtocolViolation('08P01', 'invalid startup packet layout: expected terminator as last byte');
    }
    if (!this.server.admit()) {
      this.fatal('53300', 'sorry, too many clients already');
      return false;
    }
    this.admitted = true;
    const unrecognized = [...params.keys()].filter((k) => k.startsWith('_pq_.'));
    if (minor > 0 || unrecognized.length > 0) {
      this.socket.write(message('v', int32(0), int32(unrecognized.length), ...unrecognized.map(cstring)));
    }

    await this.server.lease.acquire(this);
    if (this.phase === 'closed') return false;
    this.executing = true;
    try {
      const { bytes, generation } = await this.server.backend.execute(BACKEND_STARTUP);
      this.generation = generation;
      this.write(bytes);
    } finally {
      this.executing = false;
      this.server.lease.release(this);
    }
    this.phase = 'ready';
    return true;
  }

  /** Takes the complete messages buffered so far, translated for the shared backend. */
  private takeBatch(): Batch | null {
    const messages: Buffer[] = [];
    let size = 0;
    let at = 0;
    let terminate = false;
    let violation: ProtocolViolation | null = null;
    const input = this.inbox.view();
    // Bytes, counted from the first unread one, needed before another message is complete.
    let wanted = 5;
    while (at + 5 <= input.length && size < BATCH_BYTES) {
      const type = String.fromCharCode(input[at] ?? 0);
      const length = input.readInt32BE(at + 1);
      if (length < 4 || length > this.server.maxMessageBytes) {
        violation = new ProtocolViolation('08P01', `invalid message length ${length}`);
        break;
      }
      if (at + 1 + length > input.length) {
        wanted = 1 + length;
        break;
      }
      const raw = input.subarray(at, at + 1 + length);
      at += 1 + length;
      if (type === 'X') {
        terminate = true;
        break;
      }
      try {
        const forwarded = this.translate(type, raw);
        if (forwarded !== null) {
          messages.push(forwarded);
          size += forwarded.length;
        }
      } catch (err) {
        if (!(err instanceof ProtocolViolation)) throw err;
        violation = err;
        break;
      }
    }
    this.inbox.consume(at);
    this.inbox.wanted = wanted;
    if (messages.length === 0 && !terminate && violation === null) return null;
    return { messages, terminate, violation };
  }

  private async run(batch: Batch): Promise<void> {
    if (batch.messages.length > 0) {
      const lease = this.server.lease;
      await lease.acquire(this);
      if (this.phase === 'closed') return;
      this.executing = true;
      let status: string | null;
      try {
        const { bytes, generation } = await this.server.backend.execute(Buffer.concat(batch.messages));
        if (generation !== this.generation) {
          throw new BackendLostError('57P02', 'terminating connection: the embedded database was restarted');
        }
        this.write(bytes);
        status = finalReadyStatus(bytes);
      } finally {
        this.executing = false;
      }
      if (status === 'I') lease.release(this);
      await this.drained();
    }
    if (batch.violation !== null) throw batch.violation;
    if (batch.terminate) {
      this.phase = 'closed';
      this.socket.end();
    }
  }

  /** Rewrites a frontend message for the shared backend; null drops it. */
  private translate(type: string, raw: Buffer): Buffer | null {
    switch (type) {
      case 'Q': {
        const [sql] = readCString(raw, 5);
        return mayCopyFromStdin(sql) ? simpleQuery(REFUSE_COPY_FROM_STDIN) : raw;
      }
      case 'P': {
        const [name, afterName] = readCString(raw, 5);
        const [sql, afterSql] = readCString(raw, afterName);
        const backendName = this.rename(name);
        if (backendName !== '') this.statements.add(backendName);
        if (backendName === name && !mayCopyFromStdin(sql)) return raw;
        const query = mayCopyFromStdin(sql) ? REFUSE_COPY_FROM_STDIN : sql;
        return message('P', cstring(backendName), cstring(query), raw.subarray(afterSql));
      }
      case 'B': {
        const [portal, afterPortal] = readCString(raw, 5);
        const [statement, afterStatement] = readCString(raw, afterPortal);
        if (portal === '' && statement === '') return raw;
        return message('B', cstring(this.rename(portal)), cstring(this.rename(statement)), raw.subarray(afterStatement));
      }
      case 'D':
      case 'C': {
        const kind = raw[5];
        if (kind !== 0x53 && kind !== 0x50) throw new ProtocolViolation('08P01', `invalid ${type === 'D' ? 'DESCRIBE' : 'CLOSE'} message subtype ${kind ?? 0}`);
        const [name] = readCString(raw, 6);
        if (name === '') return raw;
        const backendName = this.rename(name);
        if (type === 'C' && kind === 0x53) this.statements.delete(backendName);
        return message(type, Buffer.from([kind]), cstring(backendName));
      }
      case 'E': {
        const [portal, afterPortal] = readCString(raw, 5);
        if (portal === '') return raw;
        return message('E', cstring(this.rename(portal)), raw.subarray(afterPortal));
      }
      case 'S':
      case 'H':
      case 'F':
        return raw;
      case 'd':
      case 'c':
      case 'f':
        // Copy data outside COPY FROM STDIN, which never starts here; PostgreSQL ignores it too.
        return null;
      default:
        throw new ProtocolViolation('08P01', `invalid frontend message type ${raw[0] ?? 0}`);
    }
  }

  private rename(name: string): string {
    return name === '' ? '' : this.prefix + name;
  }

  private write(bytes: Uint8Array): void {
    if (bytes.length > 0 && this.socket.writable) this.socket.write(bytes);
  }

  /** Waits until a slow reader has taken what was written, so replies do not pile up here. */
  private drained(): Promise<void> {
    if (!this.socket.writableNeedDrain) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        this.socket.off('drain', done);
        this.socket.off('close', done);
        resolve();
      };
      this.socket.on('drain', done);
      this.socket.on('close', done);
    });
  }

  private armIdleTimer(): void {
    const ms = this.server.idleInTransactionTimeoutMs;
    const lease = this.server.lease;
    if (ms <= 0 || this.idleTimer !== undefined || this.pumping || this.phase !== 'ready') return;
    if (!lease.holds(this) || !lease.contended) return;
    this.idleTimer = setTimeout(() => {
      this.idleTimer = undefined;
      this.server.log('warn', { conn: this.id, ms }, 'disconnecting an idle client that blocked the embedded database');
      this.fatal('25P03', 'terminating connection due to idle-in-transaction timeout');
    }, ms);
  }

  private clearIdleTimer(): void {
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
  }

  /** Returns the backend to a clean state for the next client, then gives up the lease. */
  private async cleanup(): Promise<void> {
    if (this.cleanedUp) return;
    this.cleanedUp = true;
    this.clearIdleTimer();
    if (this.admitted) this.server.leave();
    const lease = this.server.lease;
    const backend = this.server.backend;
    const generation = this.generation;
    if (generation === null || generation !== backend.generation || this.server.closing) {
      lease.release(this);
      return;
    }
    const unitOpen = lease.holds(this);
    try {
      await lease.acquire(this);
      if (backend.generation !== generation || this.server.closing) return;
      let status: string | null = 'I';
      if (unitOpen) status = finalReadyStatus((await backend.execute(SYNC)).bytes);
      const parts: Buffer[] = [];
      if (status !== 'I') parts.push(simpleQuery('ROLLBACK'));
      if (this.statements.size > 0) parts.push(...[...this.statements].map(closeStatement), SYNC);
      if (!this.server.hasSessionsIn(generation)) parts.push(simpleQuery('DISCARD ALL'));
      if (parts.length > 0) await backend.execute(Buffer.concat(parts));
    } catch (err) {
      if (!(err instanceof BackendLostError)) {
        this.server.log('warn', { conn: this.id, err: String(err) }, 'could not reset the embedded database session');
      }
    } finally {
      lease.release(this);
    }
  }
}

/** Accepts PostgreSQL clients on a TCP port and has them take turns on one backend. */
export class WireServer {
  readonly lease = new Lease();
  readonly backend: WireBackend;
  readonly maxMessageBytes: number;
  readonly idleInTransactionTimeoutMs: number;
  private readonly server: Server;
  private readonly connections = new Set<Connection>();
  private readonly options: WireServerOptions;
  private admittedCount = 0;
  private nextId = 1;
  private closingFlag = false;

  constructor(options: WireServerOptions) {
    this.options = options;
    this.backend = options.backend;
    this.maxMessageBytes = options.maxMessageBytes;
    this.idleInTransactionTimeoutMs = options.idleInTransactionTimeoutMs;
    this.server = createServer((socket) => {
      if (this.closingFlag) {
        socket.destroy();
        return;
      }
      const conn = new Connection(this.nextId++, socket, this);
      this.connections.add(conn);
      socket.once('close', () => this.connections.delete(conn));
    });
  }

  get closing(): boolean {
    return this.closingFlag;
  }

  /** Starts listening; resolves with the port. */
  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.options.port, this.options.host, () => {
        this.server.off('error', reject);
        const address = this.server.address();
        if (address === null || typeof address === 'string') {
          reject(new Error('the embedded database server has no TCP address'));
          return;
        }
        resolve(address.port);
      });
    });
  }

  /** Ends every session whose state lived in the database that was just lost. */
  dropSessions(generation: number, err: BackendLostError): void {
    for (const conn of this.connections) {
      // A connection waiting on the lost database gets `err` itself, with its own SQLSTATE.
      if (conn.livesIn(generation) && !conn.isExecuting) {
        conn.fatal('57P02', `terminating connection: the embedded database was restarted (${err.message})`);
      }
    }
  }

  /** Stops accepting clients and ends every session with SQLSTATE 57P01. */
  async close(): Promise<void> {
    this.closingFlag = true;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const conn of this.connections) conn.fatal('57P01', 'terminating connection due to administrator command');
    await closed;
  }

  /** @internal */
  admit(): boolean {
    if (this.admittedCount >= this.options.maxConnections) return false;
    this.admittedCount++;
    return true;
  }

  /** @internal */
  leave(): void {
    this.admittedCount--;
  }

  /** @internal True while some open connection has session state in `generation`. */
  hasSessionsIn(generation: number): boolean {
    for (const conn of this.connections) if (conn.livesIn(generation)) return true;
    return false;
  }

  /** @internal */
  log(level: 'info' | 'warn', obj: object, msg: string): void {
    this.options.logger?.[level](obj, msg);
  }
}
