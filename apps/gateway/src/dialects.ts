import type { Dialect } from '@sluice/core';
import { mysqlDialect } from '@sluice/dialect-mysql';
import { postgresDialect } from '@sluice/dialect-postgres';

/** Every dialect this gateway build knows, by config name. The only place that lists them. */
export const dialects: ReadonlyMap<string, Dialect<unknown>> = new Map<string, Dialect<unknown>>([
  [postgresDialect.name, postgresDialect as Dialect<unknown>],
  [mysqlDialect.name, mysqlDialect as Dialect<unknown>],
]);
