import { runConformanceSuite } from '@sluice/testkit';
import { postgresDialect } from '../src/index.js';
import { pgConformanceDriver } from './pg-driver.js';

runConformanceSuite({
  dialect: postgresDialect,
  driver: pgConformanceDriver,
  upstream: {
    name: 'PostgreSQL',
    host: '127.0.0.1',
    port: 5432,
    targetOptions: { upstream: 'postgres://postgres@127.0.0.1:5432/test' },
  },
});
