/**
 * The thread the embedded lineage store runs on (see worker-store.ts): SQLite work is
 * synchronous, so writes, queries and pruning run here, off the thread that relays sessions.
 * Each message `{ id, method, args }` is answered `{ id, value }` or `{ id, error }`.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { LineageStore } from '@sluice/core';
import { pino, type Level } from 'pino';
import { openSqliteLineageStore } from './sqlite-store.js';

interface Options {
  readonly path: string;
  readonly readonly: boolean;
  readonly level: Level | 'silent';
}

type Call = { readonly id: number; readonly method: 'record' | 'column' | 'table' | 'identity' | 'prune' | 'close'; readonly args: unknown[] };

const port = parentPort;
if (port === null) throw new Error('the lineage store worker must run as a worker thread');
const options = workerData as Options;
const logger = pino({ level: options.level, base: { service: 'sluice', component: 'lineage-store' } });

const errorOf = (err: unknown) => ({ name: err instanceof Error ? err.name : 'Error', message: err instanceof Error ? err.message : String(err) });

let store: LineageStore;
try {
  store = await openSqliteLineageStore({ path: options.path, logger, readonly: options.readonly });
  port.postMessage({ ready: true });
} catch (err) {
  port.postMessage({ ready: false, error: errorOf(err) });
  process.exit(0);
}

port.on('message', (call: Call) => {
  const run = (): Promise<unknown> => {
    switch (call.method) {
      case 'record':
        return store.record(call.args[0] as Parameters<LineageStore['record']>[0]);
      case 'column':
        return store.column(call.args[0] as string, call.args[1] as Parameters<LineageStore['column']>[1]);
      case 'table':
        return store.table(call.args[0] as string, call.args[1] as Parameters<LineageStore['table']>[1]);
      case 'identity':
        return store.identity(call.args[0] as string, call.args[1] as Parameters<LineageStore['identity']>[1]);
      case 'prune':
        return store.prune(call.args[0] as number);
      case 'close':
        return store.close();
    }
  };
  run().then(
    (value) => port.postMessage({ id: call.id, value }),
    (err: unknown) => port.postMessage({ id: call.id, error: errorOf(err) }),
  );
});
