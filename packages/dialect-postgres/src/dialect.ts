import { defineDialect } from '@sluice/core';
import { analyzePostgres } from './analyze/analyze.js';
import { CancelRegistry } from './cancel-registry.js';
import { postgresTargetOptions } from './config.js';
import { PostgresListener } from './listener.js';

/**
 * The PostgreSQL dialect. Cancel keys are shared by every listener of the process, so a
 * CancelRequest may arrive on any of them (as clients open a fresh connection to send it).
 */
const cancels = new CancelRegistry();

export const postgresDialect = defineDialect({
  apiVersion: 1,
  name: 'postgres',
  defaultPort: 5432,
  targetOptions: postgresTargetOptions,
  createListener: (context) => new PostgresListener(context, analyzePostgres, cancels),
  analyze: analyzePostgres,
});
