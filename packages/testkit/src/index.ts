export { startTestGateway, type HarnessOptions, type HarnessToken, type TestGateway } from './gateway-harness.js';
export { runConformanceSuite, sendRaw, type ConformanceClient, type ConformanceDriver, type ConformanceOptions } from './conformance.js';
export { isReachable, requireService, servicesRequired } from './services.js';
export { startOidcIssuer, type OidcIssuer } from './oidc-issuer.js';
export { startTempPostgres, type TempPostgres } from './temp-postgres.js';
export { makeSelfSignedCert, type SelfSignedCert } from './certs.js';
export { startTempMariaDb, type TempMariaDb, type TempMariaDbOptions, type TempMariaDbUser } from './temp-mariadb.js';
