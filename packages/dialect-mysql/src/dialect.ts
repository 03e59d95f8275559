import { defineDialect } from '@sluice/core';
import { createMySqlAnalyzer } from './analyze/index.js';
import { createResultMasking } from './client/masking.js';
import { ConnectionRegistry } from './client/registry.js';
import { mysqlTargetOptions } from './config.js';
import { MysqlListener } from './listener.js';

/**
 * The MySQL / MariaDB dialect. Connection ids are shared by every listener of the process, so
 * a `KILL QUERY n` sent on any of them finds its session.
 */
const connections = new ConnectionRegistry();

/** For `analyze` outside a session (sluice check, tests): MySQL's grammar, default sql_mode. */
const analyzer = createMySqlAnalyzer();

export const mysqlDialect = defineDialect({
  apiVersion: 1,
  name: 'mysql',
  defaultPort: 3306,
  targetOptions: mysqlTargetOptions,
  createListener: (context) => new MysqlListener(context, connections, createResultMasking(context.logger)),
  analyze: (text) => analyzer.analyze(text),
});
