/**
 * Runs PGlite in a worker thread.
 *
 * PGlite executes every protocol message synchronously on the thread that owns it: a
 * `pg_sleep(5)` or a long scan stops that thread's event loop for the whole duration, and
 * `statement_timeout` has no effect. Some malformed input makes it spin forever, and a FATAL
 * error ends its backend for good. On its own thread it can do none of that to the gateway,
 * and a worker that overruns its time limit can be terminated and replaced.
 *
 * The worker body is plain CommonJS kept in a string, so it runs the same from the TypeScript
 * sources (tests) and from the compiled output.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/** Why the database behind a session went away; carries the SQLSTATE to report to clients. */
export class BackendLostError extends Error {
  constructor(
    readonly sqlState: string,
    message: string,
  ) {
    super(message);
    this.name = 'BackendLostError';
  }
}

const WORKER_SOURCE = String.raw`
'use strict';
const { parentPort, workerData } = require('node:worker_threads');
let db = null;
let queue = Promise.resolve();

function concat(parts, size) {
  const out = new Uint8Array(size);
  let at = 0;
  for (const part of parts) { out.set(part, at); at += part.length; }
  return out;
}

async function handle(msg) {
  switch (msg.op) {
    case 'protocol': {
      const parts = [];
      let size = 0;
      await db.execProtocolRawStream(msg.data, {
        onRawData(chunk) { parts.push(chunk.slice()); size += chunk.length; },
      });
      const out = concat(parts, size);
      return { value: out, transfer: [out.buffer] };
    }
    case 'query': {
      const result = await db.query(msg.sql, msg.params || []);
      return { value: result.rows };
    }
    case 'transaction': {
      await db.transaction(async (tx) => { await tx.exec(msg.sql); });
      return { value: null };
    }
    case 'close': {
      const closing = db;
      db = null;
      if (closing) await closing.close();
      return { value: null };
    }
    default:
      throw new Error('unknown operation ' + msg.op);
  }
}

parentPort.on('message', (msg) => {
  queue = queue.then(async () => {
    try {
      if (!db) throw new Error('the database is closed');
      const { value, transfer } = await handle(msg);
      parentPort.postMessage({ id: msg.id, ok: true, value }, transfer || []);
    } catch (err) {
      parentPort.postMessage({
        id: msg.id,
        ok: false,
        error: String((err && err.message) || err),
        backendFailed: msg.op === 'protocol',
      });
    }
  });
});

(async () => {
  const started = Date.now();
  const { PGlite } = require(workerData.pgliteEntry);
  db = await PGlite.create({ dataDir: workerData.dataDir });
  parentPort.postMessage({ id: 0, ok: true, value: { startupMs: Date.now() - started } });
})().catch((err) => {
  parentPort.postMessage({ id: 0, ok: false, error: String((err && err.message) || err) });
});
`;

type WorkerReply =
  | { readonly id: number; readonly ok: true; readonly value: unknown }
  | { readonly id: number; readonly ok: false; readonly error: string; readonly backendFailed?: boolean };

interface Pending {
  readonly resolve: (value: unknown) => void;
  readonly reject: (err: Error) => void;
  readonly timer: NodeJS.Timeout | undefined;
}

const STARTUP_TIMEOUT_MS = 120_000;

/**
 * Drops this module's listeners and keeps a silent 'error' one, so a late error cannot crash
 * the process. (Worker has internal listeners of its own; removeAllListeners() without an event
 * name would remove those too and stop message delivery.)
 */
function detach(worker: Worker): void {
  for (const event of ['message', 'error', 'exit']) worker.removeAllListeners(event);
  worker.on('error', () => undefined);
}

function pgliteEntry(): string {
  return createRequire(import.meta.url).resolve('@electric-sql/pglite');
}

/** One PGlite instance on its own thread. Once lost (crash, time limit, close) it stays lost. */
export class PgliteWorker {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private state: 'running' | 'closing' | 'gone' = 'running';
  private lostListener: ((err: BackendLostError) => void) | undefined;

  private constructor(
    private readonly worker: Worker,
    /** Time PGlite took to open (and on first use initialise) the data directory. */
    readonly startupMs: number,
  ) {
    worker.on('message', (reply: WorkerReply) => this.settle(reply));
    worker.on('error', (err) => this.lose(new BackendLostError('57P02', `the embedded database failed: ${err.message}`)));
    worker.on('exit', () => this.lose(new BackendLostError('57P02', 'the embedded database stopped unexpectedly')));
  }

  /** Starts a worker with PGlite on `dataDir`; resolves once the database accepts queries. */
  static start(dataDir: string): Promise<PgliteWorker> {
    return new Promise((resolve, reject) => {
      const worker = new Worker(WORKER_SOURCE, {
        eval: true,
        workerData: { dataDir, pgliteEntry: pgliteEntry() },
      });
      const fail = (err: Error): void => {
        clearTimeout(timer);
        detach(worker);
        void worker.terminate();
        reject(err);
      };
      const timer = setTimeout(() => fail(new Error(`PGlite did not start within ${STARTUP_TIMEOUT_MS} ms`)), STARTUP_TIMEOUT_MS);
      worker.once('error', fail);
      worker.once('exit', (code) => fail(new Error(`the PGlite worker exited with code ${code} while starting`)));
      worker.once('message', (reply: WorkerReply) => {
        clearTimeout(timer);
        detach(worker);
        if (!reply.ok) {
          void worker.terminate();
          reject(new Error(`PGlite could not open ${dataDir}: ${reply.error}`));
          return;
        }
        const { startupMs } = reply.value as { startupMs: number };
        resolve(new PgliteWorker(worker, startupMs));
      });
    });
  }

  /** Called once, when the database is lost for any reason other than {@link close}. */
  onLost(listener: (err: BackendLostError) => void): void {
    this.lostListener = listener;
  }

  /**
   * Runs raw frontend protocol messages and resolves with everything the backend wrote back.
   * Past `timeoutMs` (0: no limit) the worker is terminated and the call rejects.
   */
  execute(messages: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    return this.call({ op: 'protocol', data: messages }, timeoutMs) as Promise<Uint8Array>;
  }

  /** Runs one statement through PGlite's query API and returns its rows. */
  async query<Row>(sql: string, params: readonly unknown[] = []): Promise<Row[]> {
    return (await this.call({ op: 'query', sql, params }, 0)) as Row[];
  }

  /** Runs a multi-statement script in one transaction. */
  async transaction(sql: string): Promise<void> {
    await this.call({ op: 'transaction', sql }, 0);
  }

  /** Closes PGlite cleanly, or terminates the worker if that takes longer than `graceMs`. */
  async close(graceMs: number): Promise<void> {
    if (this.state !== 'running') return;
    const closing = this.call({ op: 'close' }, 0).catch(() => undefined);
    this.state = 'closing';
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([closing, new Promise((resolve) => (timer = setTimeout(resolve, graceMs)))]);
    clearTimeout(timer);
    this.state = 'gone';
    this.rejectAll(new BackendLostError('57P01', 'terminating connection due to administrator command'));
    detach(this.worker);
    await this.worker.terminate();
  }

  private call(message: Record<string, unknown>, timeoutMs: number): Promise<unknown> {
    if (this.state !== 'running') {
      return Promise.reject(new BackendLostError('57P03', 'the embedded database is not available'));
    }
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer =
        timeoutMs > 0
          ? setTimeout(() => {
              this.pending.delete(id);
              const err = new BackendLostError(
                '57014',
                `canceling statement due to statement timeout (${timeoutMs} ms); the embedded database is being restarted`,
              );
              reject(err);
              this.lose(err);
            }, timeoutMs)
          : undefined;
      this.pending.set(id, { resolve, reject, timer });
      this.worker.postMessage({ ...message, id });
    });
  }

  private settle(reply: WorkerReply): void {
    const pending = this.pending.get(reply.id);
    if (pending === undefined) return;
    this.pending.delete(reply.id);
    clearTimeout(pending.timer);
    if (reply.ok) {
      pending.resolve(reply.value);
    } else if (reply.backendFailed === true) {
      const err = new BackendLostError('57P02', `the embedded database failed: ${reply.error}`);
      pending.reject(err);
      this.lose(err);
    } else {
      pending.reject(new Error(reply.error));
    }
  }

  private rejectAll(err: Error): void {
    for (const pending of this.pending.values()) {
      clearTimeout(pending.timer);
      pending.reject(err);
    }
    this.pending.clear();
  }

  private lose(err: BackendLostError): void {
    if (this.state === 'gone') return;
    const wasClosing = this.state === 'closing';
    this.state = 'gone';
    this.rejectAll(err);
    detach(this.worker);
    void this.worker.terminate();
    if (!wasClosing) this.lostListener?.(err);
  }
}
