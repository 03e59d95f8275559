/**
 * The embedded lineage store on a thread of its own. better-sqlite3 is synchronous: run on the
 * gateway's main thread, a large write, a long query or a prune would hold up every session's
 * traffic for as long as it takes. Here the store runs in a worker thread and this side only
 * passes messages; answers and errors come back as the SQLite store gives them
 * (LineageQueryError for a bad name or query, LineageStoreError for the store).
 */
import { existsSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import type { LineageStore } from '@sluice/core';
import { LineageQueryError } from './queries.js';
import { LineageStoreError } from './schema.js';
import type { SqliteLineageStoreOptions } from './sqlite-store.js';

/** The worker's script: next to this file when built; the built copy when this runs from source (tests). */
function workerUrl(): URL {
  const here = new URL('./sqlite-worker.js', import.meta.url);
  if (import.meta.url.endsWith('.ts')) {
    const built = new URL('../../dist/lineage/sqlite-worker.js', import.meta.url);
    if (existsSync(built)) return built;
  }
  return here;
}

interface Pending {
  readonly resolve: (value: unknown) => void;
  readonly reject: (err: Error) => void;
}

function rebuild(error: { name: string; message: string }): Error {
  if (error.name === 'LineageQueryError') return new LineageQueryError(error.message);
  return new LineageStoreError(error.message);
}

export async function openWorkerLineageStore(options: SqliteLineageStoreOptions): Promise<LineageStore> {
  const level = (options.logger.level as string | undefined) ?? 'info';
  const worker = new Worker(workerUrl(), { workerData: { path: options.path, readonly: options.readonly ?? false, level } });
  const pending = new Map<number, Pending>();
  let next = 1;
  let failure: Error | undefined;
  const fail = (err: Error): void => {
    failure ??= err;
    const waiting = [...pending.values()];
    pending.clear();
    for (const p of waiting) p.reject(failure);
    worker.unref();
  };
  await new Promise<void>((resolve, reject) => {
    const onMessage = (m: { ready?: boolean; error?: { name: string; message: string } }) => {
      if (m.ready === undefined) return;
      worker.off('message', onMessage);
      worker.off('error', onError);
      if (m.ready) resolve();
      else reject(rebuild(m.error ?? { name: 'LineageStoreError', message: 'the lineage store did not open' }));
    };
    const onError = (err: Error) => {
      worker.off('message', onMessage);
      reject(new LineageStoreError(`the lineage store's thread failed to start: ${err.message}`, { cause: err }));
    };
    worker.on('message', onMessage);
    worker.once('error', onError);
  }).catch(async (err: unknown) => {
    await worker.terminate();
    throw err;
  });
  worker.on('message', (m: { id?: number; value?: unknown; error?: { name: string; message: string } }) => {
    if (m.id === undefined) return;
    const p = pending.get(m.id);
    if (p === undefined) return;
    pending.delete(m.id);
    if (m.error !== undefined) p.reject(rebuild(m.error));
    else p.resolve(m.value);
  });
  worker.on('error', (err) => {
    options.logger.error({ err }, 'the lineage store thread failed; lineage is not recorded until the gateway restarts');
    fail(new LineageStoreError(`the lineage store's thread failed: ${err.message}`, { cause: err }));
  });
  worker.on('exit', (code) => fail(new LineageStoreError(`the lineage store's thread stopped (exit code ${code})`)));
  // The store's thread keeps the process alive only while a call waits for its answer.
  worker.unref();

  const call = <T>(method: string, ...args: unknown[]): Promise<T> => {
    if (failure !== undefined) return Promise.reject(failure);
    const id = next++;
    return new Promise<T>((resolve, reject) => {
      if (pending.size === 0) worker.ref();
      const settle = (): void => {
        if (pending.size === 0) worker.unref();
      };
      pending.set(id, {
        resolve: (value) => {
          resolve(value as T);
          settle();
        },
        reject: (err) => {
          reject(err);
          settle();
        },
      });
      worker.postMessage({ id, method, args });
    });
  };
  let closing: Promise<void> | undefined;
  return {
    record: (observations) => call('record', observations),
    column: (name, query) => call('column', name, query),
    table: (name, query) => call('table', name, query),
    identity: (subject, query) => call('identity', subject, query),
    prune: (before) => call('prune', before),
    close: () =>
      (closing ??= (async () => {
        try {
          if (failure === undefined) await call('close');
        } finally {
          failure ??= new LineageStoreError(`the lineage store at ${options.path} is closed`);
          await worker.terminate();
        }
      })()),
  };
}
