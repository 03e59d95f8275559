#!/usr/bin/env node
// What lineage and tracing cost per statement inside the gateway, without a database or a
// network client: a real governor, a real audit store, and the statement pgbench -S sends,
// decided and completed 200,000 times per round.
//
//   node apps/gateway/scripts/bench-observers.mjs off|lineage|tracing|tracing-no-metrics
//
// Tracing exports with the OpenTelemetry SDK (OTLP/HTTP protobuf) to a receiver in this
// process that discards what it gets. Build first (pnpm build).
import { NodeSDK } from '@opentelemetry/sdk-node';
import { trace } from '@opentelemetry/api';
import http from 'node:http';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Governor, FileAuditStore, TokenAuthenticator, MemoryFailureLimiter, Policy, policySchema, TelemetryObserver, LineageRecorder } from '@sluice/core';
import { postgresDialect as postgres } from '@sluice/dialect-postgres';

const mode = process.argv[2] ?? 'off';
if (!['off', 'lineage', 'tracing', 'tracing-no-metrics'].includes(mode)) throw new Error(`unknown mode ${mode}`);
let received = 0;
const server = http.createServer((req, res) => { req.on('data', (c) => (received += c.length)); req.on('end', () => res.end()); });
await new Promise((r) => server.listen(0, '127.0.0.1', r));
process.env.OTEL_EXPORTER_OTLP_ENDPOINT = `http://127.0.0.1:${server.address().port}`;
// Every span is kept and exported (none dropped for a full queue): the figure includes the export.
process.env.OTEL_BSP_MAX_QUEUE_SIZE = '262144';
process.env.OTEL_BSP_MAX_EXPORT_BATCH_SIZE = '2048';
if (mode === 'tracing-no-metrics') process.env.OTEL_METRICS_EXPORTER = 'none';
let sdk;
if (mode !== 'off' && mode !== 'lineage') { sdk = new NodeSDK({ serviceName: 'bench', instrumentations: [], logRecordProcessors: [], contextManager: null }); sdk.start(); }
const logger = pino({ level: 'silent' });
const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-observers-'));
const audit = await FileAuditStore.open({ dir, groupCommitMs: 50, logger });
const observers = [];
if (mode === 'lineage') observers.push(new LineageRecorder({ logger }));
if (sdk) observers.push(new TelemetryObserver({}));
const governor = new Governor({
  authenticator: new TokenAuthenticator([{ subject: 'a', kind: 'agent', groups: [], token: 't' }]), audit,
  failureLimiter: new MemoryFailureLimiter({ maxAttempts: 5, windowSeconds: 60, lockoutSeconds: 60 }), logger,
  policy: new Policy(policySchema.parse({ rules: [{ name: 'all', effect: 'allow' }] }), { approvers: { groups: [], subjects: [] } }), observers,
});
const session = await governor.openSession({ dialect: 'postgres', identity: { subject: 'a', kind: 'agent', groups: [], method: 'token' }, username: 'a', target: 'bench', sourceAddress: '127.0.0.1', tls: false, database: 'db', server: { address: '127.0.0.1', port: 5432 } });
const text = 'SELECT abalance FROM pgbench_accounts WHERE aid = 12345;';
const analysis = postgres.analyze(text);
const N = 100000;
for (let round = 0; round < 3; round++) {
  const cpu0 = process.cpuUsage(); const t0 = performance.now();
  for (let i = 0; i < N; i++) {
    const r = session.beginRequest({ analysis, protocol: 'simple', text });
    r.handles[0].complete({ outcome: 'ok', rows: 1, command: 'SELECT' });
    if (i % 1000 === 0) await new Promise((r) => setImmediate(r));
  }
  if (sdk) await trace.getTracerProvider().getDelegate().forceFlush();
  await new Promise((r) => setTimeout(r, 200));
  const cpu = process.cpuUsage(cpu0); const t = performance.now() - t0;
  console.log(mode, `round ${round}: ${(t * 1000 / N).toFixed(2)} µs/statement wall, ${((cpu.user + cpu.system) / N).toFixed(2)} µs CPU per statement (every span exported)`);
}
await sdk?.shutdown();
console.log('received bytes', received);
process.exit(0);
