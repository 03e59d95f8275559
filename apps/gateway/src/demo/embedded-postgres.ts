/**
 * The demo's default upstream: PostgreSQL 18 compiled to WebAssembly (PGlite), persisted in a
 * local directory, seeded with the demo shop on first start and served on a loopback TCP port,
 * so `pnpm start` works without a PostgreSQL server.
 *
 * Layout: PGlite runs in a worker thread ({@link PgliteWorker}); {@link WireServer} speaks the
 * wire protocol on 127.0.0.1 and has its clients take turns on PGlite's single session. See
 * wire-server.ts for what concurrent clients share and what is refused.
 *
 * Not a PostgreSQL server: no authentication (any user and password are accepted), no TLS,
 * one session shared by all clients in turn, no query cancellation, no COPY FROM STDIN.
 * Loopback only.
 */
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { BackendLostError, PgliteWorker } from './pglite-worker.js';
import { DEMO_SEED_CHECK_SQL, DEMO_TABLES, demoSeedSql } from './seed.js';
import { WireServer, type WireBackend, type WireServerLogger } from './wire-server.js';

export interface EmbeddedPostgresLogger {
  info(obj: object | string, msg?: string): void;
  warn(obj: object | string, msg?: string): void;
}

export interface EmbeddedPostgresOptions {
  /** PGlite's data directory; created when missing, reused (and not re-seeded) afterwards. */
  readonly dataDir: string;
  readonly logger?: EmbeddedPostgresLogger;
  /** TCP port on 127.0.0.1. Default 0: a free port. */
  readonly port?: number;
  /** Client sessions at once (they take turns on one backend). Default 64. */
  readonly maxConnections?: number;
  /**
   * Longest a single round trip to the database may take, in ms; past it the database is
   * restarted (PGlite ignores statement_timeout and cannot be interrupted otherwise) and every
   * session ends. Default 30000; 0 disables.
   */
  readonly statementTimeoutMs?: number;
  /** How long a client holding the backend idle may block another one, in ms. Default 30000; 0 disables. */
  readonly idleInTransactionTimeoutMs?: number;
}

export interface EmbeddedPostgres {
  readonly host: '127.0.0.1';
  readonly port: number;
  readonly database: string;
  readonly user: string;
  /** postgres://user@127.0.0.1:port/database */
  readonly url: string;
  /** True when the demo schema was created by this start. */
  readonly seeded: boolean;
  /** Ends all sessions, closes PGlite cleanly and releases the data directory. Idempotent. */
  close(): Promise<void>;
}

const HOST = '127.0.0.1';
const DATABASE = 'postgres';
const USER = 'postgres';
const LOCK_FILE = 'sluice-demo.lock';
const CLOSE_GRACE_MS = 10_000;
const MAX_MESSAGE_BYTES = 64 << 20;

/** Data directories held by this process. */
const heldDirs = new Set<string>();

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * PGlite takes no lock of its own: two instances on one directory both open it and corrupt it.
 * A pid file inside the directory keeps a second start, here or in another process, out.
 */
function lockDataDir(dataDir: string): () => void {
  const path = join(dataDir, LOCK_FILE);
  if (heldDirs.has(dataDir)) throw new Error(`${dataDir} is already in use by this process`);
  for (let attempt = 0; ; attempt++) {
    try {
      const fd = openSync(path, 'wx');
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw err;
      const pid = Number.parseInt(readFileSync(path, 'utf8').trim(), 10);
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid)) {
        throw new Error(`${dataDir} is in use by process ${pid} (remove ${path} if that is wrong)`);
      }
      rmSync(path, { force: true });
    }
  }
  heldDirs.add(dataDir);
  return () => {
    heldDirs.delete(dataDir);
    rmSync(path, { force: true });
  };
}

/** Refuses a directory that holds something other than a PostgreSQL data directory. */
function checkDataDir(dataDir: string): void {
  const entries = readdirSync(dataDir).filter((name) => name !== LOCK_FILE);
  if (entries.length > 0 && !existsSync(join(dataDir, 'PG_VERSION'))) {
    throw new Error(`${dataDir} is not empty and is not a PostgreSQL data directory`);
  }
}

/** Keeps one PGlite worker running, replacing it when it is lost. */
class Supervisor implements WireBackend {
  generation = 1;
  private worker: PgliteWorker | null;
  private restarting: Promise<void> | null = null;
  private closing = false;
  onSessionsLost: (generation: number, err: BackendLostError) => void = () => undefined;

  constructor(
    worker: PgliteWorker,
    private readonly dataDir: string,
    private readonly statementTimeoutMs: number,
    private readonly logger: EmbeddedPostgresLogger | undefined,
  ) {
    this.worker = worker;
    this.watch(worker);
  }

  async execute(messages: Uint8Array): Promise<{ bytes: Uint8Array; generation: number }> {
    if (this.worker === null && this.restarting === null && !this.closing) this.restart();
    if (this.restarting !== null) await this.restarting;
    const worker = this.worker;
    const generation = this.generation;
    if (worker === null || this.closing) throw new BackendLostError('57P03', 'the embedded database is not available');
    const bytes = await worker.execute(messages, this.statementTimeoutMs);
    return { bytes, generation };
  }

  async close(): Promise<void> {
    this.closing = true;
    if (this.restarting !== null) await this.restarting;
    const worker = this.worker;
    this.worker = null;
    await worker?.close(CLOSE_GRACE_MS);
  }

  private watch(worker: PgliteWorker): void {
    worker.onLost((err) => this.lost(worker, err));
  }

  private lost(worker: PgliteWorker, err: BackendLostError): void {
    if (this.worker !== worker || this.closing) return;
    this.worker = null;
    const generation = this.generation++;
    this.logger?.warn({ err: err.message }, 'embedded PostgreSQL stopped; restarting it');
    this.onSessionsLost(generation, err);
    this.restart();
  }

  private restart(): void {
    const attempt = async (): Promise<void> => {
      try {
        const next = await PgliteWorker.start(this.dataDir);
        if (this.closing) {
          await next.close(CLOSE_GRACE_MS);
          return;
        }
        this.worker = next;
        this.watch(next);
        this.logger?.info({ startupMs: next.startupMs }, 'embedded PostgreSQL restarted');
      } catch (err) {
        this.logger?.warn({ err: String(err) }, 'embedded PostgreSQL could not be restarted');
      } finally {
        this.restarting = null;
      }
    };
    this.restarting = attempt();
  }
}

async function seedIfEmpty(worker: PgliteWorker, logger: EmbeddedPostgresLogger | undefined): Promise<boolean> {
  const [row] = await worker.query<{ present: number }>(DEMO_SEED_CHECK_SQL);
  const present = row?.present ?? 0;
  if (present === DEMO_TABLES.length) return false;
  if (present > 0) {
    logger?.warn({ present, expected: DEMO_TABLES.length }, 'some demo tables exist; not seeding');
    return false;
  }
  const started = Date.now();
  await worker.transaction(demoSeedSql());
  logger?.info({ ms: Date.now() - started }, 'seeded the demo schema');
  return true;
}

/** Starts PGlite on `options.dataDir` and serves it on 127.0.0.1. */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  const dataDir = resolve(options.dataDir);
  const logger = options.logger;
  mkdirSync(dataDir, { recursive: true });
  const unlock = lockDataDir(dataDir);
  let worker: PgliteWorker | undefined;
  let supervisor: Supervisor | undefined;
  let server: WireServer | undefined;
  try {
    checkDataDir(dataDir);
    const fresh = !existsSync(join(dataDir, 'PG_VERSION'));
    worker = await PgliteWorker.start(dataDir);
    logger?.info({ dataDir, startupMs: worker.startupMs, initialized: fresh }, 'embedded PostgreSQL (PGlite) opened');
    const seeded = await seedIfEmpty(worker, logger);
    if (fresh) {
      // Initialising a data directory runs initdb in a second PGlite instance whose memory
      // stays with the worker (about 500 MB more resident); a fresh worker starts without it.
      await worker.close(CLOSE_GRACE_MS);
      worker = undefined;
      worker = await PgliteWorker.start(dataDir);
    }

    supervisor = new Supervisor(worker, dataDir, options.statementTimeoutMs ?? 30_000, logger);
    const serverLogger: WireServerLogger | undefined = logger;
    server = new WireServer({
      backend: supervisor,
      host: HOST,
      port: options.port ?? 0,
      maxConnections: options.maxConnections ?? 64,
      idleInTransactionTimeoutMs: options.idleInTransactionTimeoutMs ?? 30_000,
      maxMessageBytes: MAX_MESSAGE_BYTES,
      ...(serverLogger === undefined ? {} : { logger: serverLogger }),
    });
    const wire = server;
    supervisor.onSessionsLost = (generation, err) => wire.dropSessions(generation, err);
    const port = await server.listen();
    const url = `postgres://${USER}@${HOST}:${port}/${DATABASE}`;
    logger?.info({ url }, 'embedded PostgreSQL listening');

    const running = supervisor;
    let closed: Promise<void> | undefined;
    return {
      host: HOST,
      port,
      database: DATABASE,
      user: USER,
      url,
      seeded,
      close: () => {
        closed ??= (async () => {
          try {
            await wire.close();
            await running.close();
          } finally {
            unlock();
          }
        })();
        return closed;
      },
    };
  } catch (err) {
    await server?.close().catch(() => undefined);
    if (supervisor !== undefined) await supervisor.close().catch(() => undefined);
    else await worker?.close(CLOSE_GRACE_MS).catch(() => undefined);
    unlock();
    throw err;
  }
}
