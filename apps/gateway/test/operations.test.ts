/**
 * Operations endpoints on the admin listener, through a real gateway in front of the real
 * PostgreSQL: liveness (/healthz), readiness (/readyz: listeners, audit store, shutdown) and
 * Prometheus metrics (/metrics), alone and next to the OTLP export.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventually, liveTest, requireService } from '@sluice/testkit';
import { ConsoleMetricExporter, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import pg from 'pg';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { evaluateReadiness } from '../src/admin/health.js';
import { pushMetricReadersFromEnv } from '../src/telemetry.js';
import { loadConfig } from '../src/config/load.js';
import { dialects } from '../src/dialects.js';
import { startGateway, type RunningGateway } from '../src/gateway.js';
import { CLI, freePort, LOCAL_POSTGRES, startCli, type RunningCli } from './helpers.js';
import { METRIC_INTERVAL_MS, otlpEnv, startOtlpReceiver, withoutOtel, type OtlpReceiver } from './otlp-receiver.js';

const AGENT = { subject: 'ops-agent', token: 'ops-agent-token-7f3a91c2' } as const;
const SUFFIX = `${process.pid}_${Date.now().toString(36)}`;
const TABLE = `ops_metrics_${SUFFIX}`;

function configText(options: { admin?: string; rest?: string; port?: number }): string {
  return `listen:
  postgres: 127.0.0.1:${options.port ?? 0}
targets:
  - name: app
    dialect: postgres
    upstream: ${LOCAL_POSTGRES}
identities:
  tokens:
    - subject: ${AGENT.subject}
      kind: agent
      groups: [pipelines]
      token: ${AGENT.token}
audit:
  dir: ./audit
  groupCommitMs: 5
approvals:
  dir: ./approvals
policy:
  rules:
    - name: pipelines-read
      identities: { groups: [pipelines] }
      operations: [read]
      effect: allow
lineage:
  enabled: false
${options.admin !== undefined ? `admin: ${options.admin}\n` : ''}${options.rest ?? ''}pidFile: ./sluice.pid
log:
  level: silent
`;
}

async function connect(port: number): Promise<pg.Client> {
  const c = new pg.Client({ host: '127.0.0.1', port, database: 'app', user: AGENT.subject, password: AGENT.token });
  c.on('error', () => undefined);
  await c.connect();
  return c;
}

// ---- The Prometheus text exposition format, parsed strictly enough to catch a malformed line.

interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

interface Exposition {
  readonly samples: readonly Sample[];
  /** `# TYPE` of each metric family. */
  readonly types: ReadonlyMap<string, string>;
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

function parseLabels(text: string, line: string): Record<string, string> {
  const labels: Record<string, string> = {};
  let i = 0;
  while (i < text.length) {
    const m = /^([a-zA-Z_][a-zA-Z0-9_]*)="/.exec(text.slice(i));
    if (!m) throw new Error(`bad label at ${i} in: ${line}`);
    i += m[0].length;
    let value = '';
    for (;;) {
      if (i >= text.length) throw new Error(`unterminated label value in: ${line}`);
      const ch = text[i]!;
      if (ch === '\\') {
        const next = text[i + 1];
        value += next === 'n' ? '\n' : next;
        i += 2;
      } else if (ch === '"') {
        i += 1;
        break;
      } else {
        value += ch;
        i += 1;
      }
    }
    if (m[1]! in labels) throw new Error(`label ${m[1]} twice in: ${line}`);
    labels[m[1]!] = value;
    if (text[i] === ',') i += 1;
    else if (i < text.length) throw new Error(`expected , after a label in: ${line}`);
  }
  return labels;
}

function parseExposition(text: string): Exposition {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE|UNIT) (\S+)(?: (.*))?$/.exec(line);
      if (!m) throw new Error(`bad comment line: ${line}`);
      if (!METRIC_NAME.test(m[2]!)) throw new Error(`bad metric name: ${line}`);
      if (m[1] === 'TYPE') {
        if (!['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(m[3] ?? '')) throw new Error(`bad type: ${line}`);
        types.set(m[2]!, m[3]!);
      }
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: (-?\d+))?$/.exec(line);
    if (!m) throw new Error(`bad sample line: ${line}`);
    const raw = m[3]!;
    const value = raw === '+Inf' ? Infinity : raw === '-Inf' ? -Infinity : raw === 'NaN' ? NaN : Number(raw);
    if (Number.isNaN(value) && raw !== 'NaN') throw new Error(`bad sample value: ${line}`);
    samples.push({ name: m[1]!, labels: m[2] ? parseLabels(m[2], line) : {}, value });
  }
  return { samples, types };
}

/** The sum of the samples named `name` whose labels include `labels`. */
function total(exposition: Exposition, name: string, labels: Readonly<Record<string, string>> = {}): number {
  return exposition.samples
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0);
}

async function scrape(adminUrl: string): Promise<{ text: string; exposition: Exposition; contentType: string | null }> {
  const r = await fetch(`${adminUrl}/metrics`);
  expect(r.status).toBe(200);
  const text = await r.text();
  return { text, exposition: parseExposition(text), contentType: r.headers.get('content-type') };
}

describe('readiness checks', () => {
  it('are ok together, and name each failing, throwing or silent check with its message (URL passwords removed)', async () => {
    const report = await evaluateReadiness(
      [
        { name: 'fine', check: () => undefined },
        { name: 'async-fine', check: async () => undefined },
        { name: 'store', check: async () => 'cannot reach postgres://sluice:hunter2-secret@db:5432/sluice: ECONNREFUSED; check the database' },
        {
          name: 'throws',
          check: () => {
            throw new Error('boom');
          },
        },
        { name: 'silent', check: () => new Promise<undefined>(() => undefined) },
      ],
      200,
    );
    expect(report.ready).toBe(false);
    expect(report.checks.fine).toBe('ok');
    expect(report.checks['async-fine']).toBe('ok');
    expect(report.checks.store).toContain('ECONNREFUSED');
    expect(report.checks.store).not.toContain('hunter2-secret');
    expect(report.checks.throws).toMatch(/the check failed: boom/);
    expect(report.checks.silent).toMatch(/did not answer within 200 ms/);
    expect(await evaluateReadiness([{ name: 'a', check: () => undefined }])).toEqual({ ready: true, checks: { a: 'ok' } });
  });
});

describe('push metric readers next to Prometheus, from OTEL_METRICS_EXPORTER', () => {
  const warnings: string[] = [];
  const logger = pino({ level: 'warn' }, { write: (line: string) => void warnings.push(line) });

  it('otlp by default, console and otlp when asked, none for nothing, prometheus left to /metrics, unknown names warned about', () => {
    const kinds = (env: NodeJS.ProcessEnv) =>
      pushMetricReadersFromEnv(env, logger).map((r) => {
        expect(r).toBeInstanceOf(PeriodicExportingMetricReader);
        return (r as unknown as { _exporter: unknown })._exporter instanceof ConsoleMetricExporter ? 'console' : 'otlp';
      });
    expect(kinds({})).toEqual(['otlp']);
    expect(kinds({ OTEL_METRICS_EXPORTER: 'console, otlp' })).toEqual(['console', 'otlp']);
    expect(kinds({ OTEL_METRICS_EXPORTER: 'otlp,none' })).toEqual([]);
    expect(kinds({ OTEL_METRICS_EXPORTER: 'prometheus' })).toEqual([]);
    expect(kinds({ OTEL_METRICS_EXPORTER: 'statsd' })).toEqual([]);
    expect(warnings.join('')).toMatch(/unknown OTEL_METRICS_EXPORTER value ignored/);
    expect(kinds({ OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' })).toEqual(['otlp']);
    expect(kinds({ OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: 'carrier-pigeon' })).toEqual(['otlp']);
    expect(warnings.join('')).toMatch(/unknown OTLP metrics protocol; using http\/protobuf/);
  });
});

describe('health and Prometheus metrics of a gateway with OTLP off (real PostgreSQL)', () => {
  let available = false;
  let dir: string;
  let gateway: RunningGateway | undefined;
  let port: number;
  let admin: string;

  beforeAll(async () => {
    available = await requireService('PostgreSQL', '127.0.0.1', 5432);
    if (!available) return;
    dir = mkdtempSync(join(tmpdir(), 'sluice-ops-'));
    const file = join(dir, 'sluice.yaml');
    writeFileSync(file, configText({ admin: '127.0.0.1:0', rest: 'telemetry:\n  enabled: false\n' }));
    gateway = await startGateway(loadConfig(file, dialects, {}), pino({ level: 'silent' }));
    port = gateway.addresses.find((a) => a.dialect === 'postgres')!.port;
    admin = gateway.adminUrl!;
  });

  afterAll(async () => {
    await gateway?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const live = liveTest(() => available);

  live('/healthz answers 200 {"status":"ok"} without authentication, GET and HEAD', async () => {
    const r = await fetch(`${admin}/healthz`);
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({ status: 'ok' });
    expect((await fetch(`${admin}/healthz`, { method: 'HEAD' })).status).toBe(200);
    const post = await fetch(`${admin}/healthz`, { method: 'POST' });
    expect(post.status).toBe(405);
    // The authenticated API is unchanged.
    expect((await fetch(`${admin}/v1/approvals`)).status).toBe(401);
  });

  live('/readyz answers 200 with every check ok', async () => {
    const r = await fetch(`${admin}/readyz`);
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({ status: 'ok', checks: { shutdown: 'ok', listeners: 'ok', audit: 'ok' } });
  });

  live('/metrics counts allowed and denied statements by decision, with the gateway gauges, and leaks no secret', async () => {
    const before = (await scrape(admin)).exposition;
    const c = await connect(port);
    try {
      for (let i = 0; i < 5; i++) await c.query(`SELECT ${i} AS ops_metrics_probe`);
      await expect(c.query(`CREATE TABLE ${TABLE} (id int)`)).rejects.toThrow(/denied/);
      const during = await scrape(admin);
      expect(during.contentType).toMatch(/^text\/plain/);
      const { exposition, text } = during;
      expect(exposition.types.get('sluice_statements_total')).toBe('counter');
      const allowed = (e: typeof before) => total(e, 'sluice_statements_total', { sluice_decision: 'allow', sluice_target: 'app', db_system_name: 'postgresql' });
      const denied = (e: typeof before) => total(e, 'sluice_statements_total', { sluice_decision: 'deny', sluice_target: 'app' });
      expect(allowed(exposition) - allowed(before)).toBe(5);
      expect(denied(exposition) - denied(before)).toBe(1);
      // The session is open while scraped.
      expect(total(exposition, 'sluice_sessions_active', { db_system_name: 'postgresql' })).toBe(1);
      expect(exposition.types.get('db_client_operation_duration')).toBe('histogram');
      expect(total(exposition, 'db_client_operation_duration_count', { db_operation_name: 'SELECT' }) - total(before, 'db_client_operation_duration_count', { db_operation_name: 'SELECT' })).toBe(5);
      expect(total(exposition, 'sluice_audit_healthy')).toBe(1);
      expect(total(exposition, 'sluice_approvals_pending')).toBe(0);
      expect(total(exposition, 'sluice_listener_accepting', { sluice_dialect: 'postgres' })).toBe(1);
      // Unauthenticated: no token, no upstream URL, no identity, no statement text.
      expect(text).not.toContain(AGENT.token);
      expect(text).not.toContain(AGENT.subject);
      expect(text).not.toContain('postgres://');
      expect(text).not.toContain('ops_metrics_probe');
    } finally {
      await c.end();
    }
    const after = (await scrape(admin)).exposition;
    expect(total(after, 'sluice_sessions_active', { db_system_name: 'postgresql' })).toBe(0);
    expect((await fetch(`${admin}/metrics`, { method: 'POST' })).status).toBe(405);
  });
});

describe('readiness of a failing audit store and of a gateway shutting down (real PostgreSQL)', () => {
  let available = false;
  beforeAll(async () => {
    available = await requireService('PostgreSQL', '127.0.0.1', 5432);
  });

  it('/readyz answers 503 naming the audit store once it cannot write, and sluice_audit_healthy turns 0', async () => {
    if (!available) return;
    const dir = mkdtempSync(join(tmpdir(), 'sluice-ops-audit-'));
    const adminPort = await freePort();
    const file = join(dir, 'sluice.yaml');
    writeFileSync(file, configText({ admin: `127.0.0.1:${adminPort}`, rest: 'telemetry:\n  enabled: false\n' }).replace('level: silent', 'level: error'));
    // The gateway runs with a file size limit of 4 KiB (bash ulimit -f counts KiB): the audit
    // segment soon cannot grow (EFBIG), as a full disk would refuse it.
    const child = spawn('bash', ['-c', `ulimit -f 4 && exec "${process.execPath}" "${CLI}" start --config "${file}"`], {
      cwd: dir,
      env: withoutOtel({}),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      const port = await eventually('the gateway to listen', async () => {
        const m = /sluice: listening on postgres 127\.0\.0\.1:(\d+)/.exec(out);
        if (child.exitCode !== null) throw new Error(`the gateway exited: ${out}`);
        return m ? Number(m[1]) : undefined;
      }, 30_000);
      const admin = `http://127.0.0.1:${adminPort}`;
      await eventually('the admin listener', async () => (await fetch(`${admin}/healthz`).catch(() => undefined))?.status === 200 || undefined);
      expect((await fetch(`${admin}/readyz`)).status).toBe(200);
      // Statements until the audit store refuses one (each adds records to the segment).
      let refused = 0;
      for (let i = 0; i < 100 && refused === 0; i++) {
        const c = await connect(port).catch(() => undefined);
        if (c === undefined) {
          refused += 1;
          break;
        }
        try {
          for (let j = 0; j < 5; j++) await c.query(`SELECT ${j} AS ops_audit_fill`);
        } catch {
          refused += 1;
        } finally {
          await c.end().catch(() => undefined);
        }
      }
      expect(refused).toBe(1);
      const r = await eventually('a 503 from /readyz', async () => {
        const res = await fetch(`${admin}/readyz`);
        return res.status === 503 ? res : undefined;
      });
      const body = (await r.json()) as { status: string; checks: Record<string, string> };
      expect(body.status).toBe('unavailable');
      expect(body.checks.audit).toMatch(/the audit store cannot write/);
      expect(body.checks.listeners).toBe('ok');
      expect(body.checks.shutdown).toBe('ok');
      expect(total((await scrape(admin)).exposition, 'sluice_audit_healthy')).toBe(0);
      // Liveness is not readiness: the process still answers.
      expect((await fetch(`${admin}/healthz`)).status).toBe(200);
      expect(out).toMatch(/EFBIG/);
    } finally {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it('/readyz answers 503 as soon as shutdown begins, while a running statement drains', async () => {
    if (!available) return;
    const dir = mkdtempSync(join(tmpdir(), 'sluice-ops-drain-'));
    const file = join(dir, 'sluice.yaml');
    writeFileSync(file, configText({ admin: '127.0.0.1:0', rest: 'telemetry:\n  enabled: false\nlimits:\n  shutdownGraceMs: 20000\n' }));
    const gateway = await startGateway(loadConfig(file, dialects, {}), pino({ level: 'silent' }));
    const admin = gateway.adminUrl!;
    const c = await connect(gateway.addresses[0]!.port);
    try {
      const marker = `ops_drain_${SUFFIX}`;
      const running = c.query(`SELECT pg_sleep(3) AS ${marker}`);
      // The statement is at the server before shutdown begins.
      const direct = new pg.Client({ connectionString: LOCAL_POSTGRES });
      await direct.connect();
      try {
        await eventually('the statement to run at the server', async () => {
          const r = await direct.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE state = 'active' AND query LIKE $1", [`%${marker}%`]);
          return (r.rows[0] as { n: number }).n >= 1 ? true : undefined;
        });
      } finally {
        await direct.end();
      }
      const closing = gateway.close();
      const r = await fetch(`${admin}/readyz`);
      expect(r.status).toBe(503);
      const body = (await r.json()) as { status: string; checks: Record<string, string> };
      expect(body.status).toBe('unavailable');
      expect(body.checks.shutdown).toMatch(/shutting down/);
      expect(body.checks.listeners).toMatch(/not accepting connections: postgres/);
      // Liveness holds while draining.
      expect((await fetch(`${admin}/healthz`)).status).toBe(200);
      await expect(running).resolves.toMatchObject({ rowCount: 1 });
      await closing;
    } finally {
      await c.end().catch(() => undefined);
      await gateway.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

describe('Prometheus settings', () => {
  let available = false;
  beforeAll(async () => {
    available = await requireService('PostgreSQL', '127.0.0.1', 5432);
  });

  it('telemetry.prometheus: false leaves /metrics off with a message saying how to turn it on; probes stay', async () => {
    if (!available) return;
    const dir = mkdtempSync(join(tmpdir(), 'sluice-ops-off-'));
    const file = join(dir, 'sluice.yaml');
    writeFileSync(file, configText({ admin: '127.0.0.1:0', rest: 'telemetry:\n  enabled: false\n  prometheus: false\n' }));
    const gateway = await startGateway(loadConfig(file, dialects, {}), pino({ level: 'silent' }));
    try {
      const r = await fetch(`${gateway.adminUrl}/metrics`);
      expect(r.status).toBe(404);
      expect(((await r.json()) as { error: { message: string } }).error.message).toMatch(/telemetry\.prometheus: true/);
      expect((await fetch(`${gateway.adminUrl}/healthz`)).status).toBe(200);
      expect((await fetch(`${gateway.adminUrl}/readyz`)).status).toBe(200);
    } finally {
      await gateway.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('metrics exported both ways: OTLP push and Prometheus pull (built CLI, real PostgreSQL)', () => {
  let available = false;
  let receiver: OtlpReceiver | undefined;
  let cli: RunningCli | undefined;
  let dir: string | undefined;
  beforeAll(async () => {
    available = await requireService('PostgreSQL', '127.0.0.1', 5432);
  });
  afterAll(async () => {
    if (cli) expect(await cli.stop('SIGTERM')).toBe(0);
    await receiver?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('the same statement counts reach the OTLP receiver and /metrics', async () => {
    if (!available) return;
    receiver = await startOtlpReceiver();
    dir = mkdtempSync(join(tmpdir(), 'sluice-ops-both-'));
    const adminPort = await freePort();
    const file = join(dir, 'sluice.yaml');
    writeFileSync(file, configText({ admin: `127.0.0.1:${adminPort}`, rest: 'telemetry:\n  enabled: true\n' }).replace('level: silent', 'level: info'));
    cli = startCli(['start', '--config', file], withoutOtel(otlpEnv(receiver, 'sluice-ops')), dir);
    const out = await cli.waitFor(/sluice: listening on postgres 127\.0\.0\.1:(\d+)/, 30_000);
    const port = Number(/sluice: listening on postgres 127\.0\.0\.1:(\d+)/.exec(out)![1]);
    const admin = `http://127.0.0.1:${adminPort}`;
    await cli.waitFor(/OpenTelemetry traces and metrics are on/, 10_000);
    await cli.waitFor(/Prometheus metrics are served on the admin listener/, 10_000);
    const c = await connect(port);
    try {
      for (let i = 0; i < 3; i++) await c.query(`SELECT ${i} AS ops_both`);
      await expect(c.query(`CREATE TABLE ${TABLE}_both (id int)`)).rejects.toThrow(/denied/);
    } finally {
      await c.end();
    }
    const scraped = (await scrape(admin)).exposition;
    expect(total(scraped, 'sluice_statements_total', { sluice_decision: 'allow' })).toBe(3);
    expect(total(scraped, 'sluice_statements_total', { sluice_decision: 'deny' })).toBe(1);
    // Cumulative counts: a later OTLP export carries the same totals.
    const counted = (decision: string) =>
      receiver!.waitForMetric(
        (m) => m.name === 'sluice.statements' && m.dataPoints.some((p) => p.attributes['sluice.decision'] === decision && p.value === (decision === 'allow' ? 3 : 1)),
        10 * METRIC_INTERVAL_MS + 10_000,
        `sluice.statements{decision=${decision}} over OTLP`,
      );
    await counted('allow');
    await counted('deny');
    // The gateway gauges go both ways too.
    await receiver.waitForMetric((m) => m.name === 'sluice.audit.healthy' && m.dataPoints.some((p) => p.value === 1), 10_000, 'sluice.audit.healthy over OTLP');
    expect(total(scraped, 'sluice_audit_healthy')).toBe(1);
  }, 90_000);
});
