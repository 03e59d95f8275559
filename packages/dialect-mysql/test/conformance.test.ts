import { runConformanceSuite } from '@sluice/testkit';
import { mysqlDialect } from '../src/index.js';
import { mysqlConformanceDriver } from './mysql-driver.js';

runConformanceSuite({
  dialect: mysqlDialect,
  driver: mysqlConformanceDriver,
  upstream: {
    name: 'MariaDB',
    host: '127.0.0.1',
    port: 3306,
    targetOptions: { upstream: 'mysql://root@127.0.0.1:3306/test' },
  },
});
