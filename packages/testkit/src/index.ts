export { startTestGateway, type HarnessOptions, type HarnessToken, type TestGateway } from './gateway-harness.js';
export { runConformanceSuite, sendRaw, type ConformanceClient, type ConformanceDriver, type ConformanceOptions } from './conformance.js';
export { isReachable, requireService, servicesRequired } from './services.js';
export { eventually } from './eventually.js';
export { liveTest } from './live-test.js';
export { startOidcIssuer, type OidcIssuer } from './oidc-issuer.js';
export { startTempPostgres, type TempPostgres } from './temp-postgres.js';
export { makeCertAuthority, makeSelfSignedCert, type IssuedCert, type SelfSignedCert, type TestCertAuthority } from './certs.js';
export { startTempMariaDb, type TempMariaDb, type TempMariaDbOptions, type TempMariaDbUser } from './temp-mariadb.js';
export {
  applyMutations,
  chunkingArb,
  collectGarbage,
  decodeRecording,
  encodeRecording,
  FuzzStats,
  fuzzParameters,
  fuzzSettings,
  fuzzTimeoutMs,
  judgeCase,
  liveHeapBytes,
  mutationArb,
  runFuzzPass,
  splitIntoChunks,
  startRecordingProxy,
  watchForCrashes,
  WireClient,
  type FuzzPassResult,
  type FuzzSettings,
  type LengthChange,
  type LengthField,
  type Mutation,
  type RecordedSession,
  type RecordingProxy,
} from './fuzz.js';
