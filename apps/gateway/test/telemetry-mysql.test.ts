/**
 * Spans of the MySQL dialect: the real gateway in front of the real MariaDB, with the
 * telemetry observer on an in-memory exporter. A statement with a traceparent comment is a
 * child of the caller's span; a session with a traceparent connection attribute is a child of
 * the caller's span, and so are its statements through it.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SpanKind } from '@opentelemetry/api';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { TelemetryObserver } from '@sluice/core';
import { requireService } from '@sluice/testkit';
import mysql from 'mysql2/promise';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/load.js';
import { dialects } from '../src/dialects.js';
import { startGateway, type RunningGateway } from '../src/gateway.js';

const TOKEN = 'mysql-otel-token-0123456789';
const myUp = await requireService('MariaDB', '127.0.0.1', 3306);

describe.runIf(myUp)('MySQL spans (real MariaDB)', () => {
  let dir: string;
  let gateway: RunningGateway;
  let port: number;
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-mysql-otel-'));
    const file = join(dir, 'sluice.yaml');
    writeFileSync(
      file,
      `listen:
  mysql: 127.0.0.1:0
allowPlaintextLoopback: true
targets:
  - name: shop
    dialect: mysql
    upstream: mysql://root@127.0.0.1:3306/test
identities:
  tokens:
    - { subject: trainer, kind: agent, groups: [pipelines], token: ${TOKEN} }
policy:
  rules:
    - { name: pipelines, identities: { groups: [pipelines] }, operations: [read, transaction, session-setting], effect: allow }
lineage:
  enabled: false
telemetry:
  enabled: false
audit:
  dir: ./audit
  groupCommitMs: 5
log:
  level: silent
`,
    );
    gateway = await startGateway(loadConfig(file, dialects), pino({ level: 'silent' }));
    gateway.governor.setObservers([new TelemetryObserver({ tracer: provider.getTracer('sluice'), meter: new MeterProvider().getMeter('sluice') })]);
    port = gateway.addresses[0]!.port;
  });

  afterAll(async () => {
    await gateway?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const connect = (attributes: Record<string, string> = {}) =>
    mysql.createConnection({
      host: '127.0.0.1',
      port,
      user: 'trainer',
      password: TOKEN,
      database: 'shop',
      connectAttributes: attributes,
      authPlugins: { mysql_clear_password: () => () => Buffer.from(`${TOKEN}\0`) },
    });

  const finished = async (predicate: (s: ReadableSpan) => boolean): Promise<ReadableSpan> => {
    const deadline = Date.now() + 5000;
    for (;;) {
      const span = exporter.getFinishedSpans().find(predicate);
      if (span) return span;
      if (Date.now() > deadline) throw new Error(`span not finished; have: ${exporter.getFinishedSpans().map((s) => s.name).join(', ')}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };

  it('a statement with a traceparent comment is a child of the caller span; its attributes name MariaDB', async () => {
    exporter.reset();
    const conn = await connect();
    await conn.query("SELECT 41 + 1 AS answer FROM dual /*traceparent='00-11111111111111111111111111111111-2222222222222222-01',job='eval',run='7'*/");
    await conn.end();
    const statement = await finished((s) => s.kind === SpanKind.CLIENT && s.attributes['sluice.job'] === 'eval');
    expect(statement.spanContext().traceId).toBe('11111111111111111111111111111111');
    expect(statement.parentSpanContext?.spanId).toBe('2222222222222222');
    expect(statement.attributes).toMatchObject({
      'db.system.name': 'mariadb',
      'db.namespace': 'test',
      'db.operation.name': 'SELECT',
      'server.address': '127.0.0.1',
      'server.port': 3306,
      'enduser.id': 'trainer',
      'sluice.decision': 'allow',
      'sluice.run': '7',
    });
    expect(String(statement.attributes['db.query.text'])).not.toContain('41');
    const session = await finished((s) => s.kind === SpanKind.SERVER);
    expect(statement.links.map((l) => l.context.spanId)).toEqual([session.spanContext().spanId]);
    expect(session.name).toBe('SESSION shop');
    expect(session.attributes['sluice.session.end']).toBe('client');
  });

  it('a traceparent connection attribute puts the session, and its statements through it, under the caller span', async () => {
    exporter.reset();
    const conn = await connect({ traceparent: '00-33333333333333333333333333333333-4444444444444444-01', job: 'batch' });
    await conn.query('SELECT 1');
    await conn.end();
    const session = await finished((s) => s.kind === SpanKind.SERVER);
    expect(session.spanContext().traceId).toBe('33333333333333333333333333333333');
    expect(session.parentSpanContext?.spanId).toBe('4444444444444444');
    expect(session.attributes['sluice.job']).toBe('batch');
    const statement = await finished((s) => s.kind === SpanKind.CLIENT);
    expect(statement.attributes['db.query.text']).toBe('select ?');
    expect(statement.parentSpanContext?.spanId).toBe(session.spanContext().spanId);
    expect(statement.spanContext().traceId).toBe('33333333333333333333333333333333');
  });
});
