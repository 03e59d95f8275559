/**
 * Opens the lineage store a config names: a postgres:// or postgresql:// URL is a PostgreSQL
 * store, anything else the path of an embedded SQLite file.
 */
import type { LineageStore } from '@sluice/core';
import type { Logger } from 'pino';
import { openPostgresLineageStore } from './postgres-store.js';
import { openSqliteLineageStore } from './sqlite-store.js';
import { openWorkerLineageStore } from './worker-store.js';

/** Where the gateway keeps lineage when the config names no store. */
export const DEFAULT_LINEAGE_STORE = './.sluice/lineage.db';

export interface LineageStoreConfig {
  /** A postgres:// URL, or the path of a SQLite file. */
  readonly store: string;
  readonly logger: Logger;
  /** PostgreSQL only: the schema holding the tables (default `sluice`). */
  readonly schema?: string;
  /** Open an existing store for reading only, creating and migrating nothing (the CLI does). */
  readonly readonly?: boolean;
  /** SQLite only: run the store on a worker thread (the gateway does; its main thread relays sessions). */
  readonly thread?: boolean;
}

export function isPostgresUrl(store: string): boolean {
  return /^postgres(ql)?:\/\//i.test(store.trim());
}

export function openLineageStore(config: LineageStoreConfig): Promise<LineageStore> {
  if (isPostgresUrl(config.store)) {
    return openPostgresLineageStore({
      url: config.store.trim(),
      logger: config.logger,
      ...(config.schema !== undefined ? { schema: config.schema } : {}),
      ...(config.readonly !== undefined ? { readonly: config.readonly } : {}),
    });
  }
  const options = { path: config.store, logger: config.logger, ...(config.readonly !== undefined ? { readonly: config.readonly } : {}) };
  return config.thread === true ? openWorkerLineageStore(options) : openSqliteLineageStore(options);
}
