/**
 * A small OTLP/HTTP receiver for end-to-end tests: POST /v1/traces, /v1/metrics and /v1/logs
 * with OTLP JSON bodies (`Content-Type: application/json`, optionally gzip), answered 200 `{}`.
 * It keeps every request it got, the spans and the metric data points, flattened: attribute
 * values become plain strings, numbers, booleans or arrays, ids become lowercase hex (the JSON
 * encoding sends hex; base64, the protobuf JSON mapping, is decoded too), times nanosecond
 * BigInts. Any other content type is answered 415 and recorded, so a test sees what was refused.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';

export type AttributeValue = string | number | boolean | null | AttributeValue[] | { [key: string]: AttributeValue };
export type Attributes = Record<string, AttributeValue>;

/** How the ids of a span arrived. */
export type IdEncoding = 'hex' | 'base64';

export interface ReceivedLink {
  readonly traceId: string;
  readonly spanId: string;
  readonly attributes: Attributes;
}

export interface ReceivedSpan {
  readonly traceId: string;
  readonly spanId: string;
  /** Undefined for a root span. */
  readonly parentSpanId: string | undefined;
  readonly name: string;
  /** OTLP SpanKind: 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  readonly kind: number;
  readonly startTimeUnixNano: bigint;
  readonly endTimeUnixNano: bigint;
  readonly attributes: Attributes;
  /** OTLP status code: 0 unset, 1 ok, 2 error. */
  readonly status: { readonly code: number; readonly message?: string };
  readonly links: readonly ReceivedLink[];
  readonly resource: Attributes;
  readonly scope: { readonly name: string; readonly version?: string };
  readonly idEncoding: IdEncoding;
}

export interface ReceivedDataPoint {
  readonly attributes: Attributes;
  /** Sums and gauges. */
  readonly value?: number;
  /** Histograms. */
  readonly count?: number;
  readonly sum?: number;
  readonly bucketCounts?: readonly number[];
  readonly explicitBounds?: readonly number[];
  readonly timeUnixNano: bigint;
}

export interface ReceivedMetric {
  readonly name: string;
  readonly unit: string;
  readonly description: string;
  readonly type: 'sum' | 'gauge' | 'histogram' | 'exponentialHistogram' | 'summary' | 'unknown';
  /** For sums. */
  readonly isMonotonic?: boolean;
  /** 1 delta, 2 cumulative. */
  readonly aggregationTemporality?: number;
  readonly dataPoints: readonly ReceivedDataPoint[];
  readonly resource: Attributes;
  readonly scope: { readonly name: string; readonly version?: string };
  /** Which export (0-based, in arrival order of /v1/metrics requests) it came in. */
  readonly export: number;
}

export interface ReceivedRequest {
  readonly method: string;
  readonly path: string;
  readonly contentType: string;
  readonly status: number;
  readonly bytes: number;
}

export interface OtlpReceiver {
  /** Base URL, for OTEL_EXPORTER_OTLP_ENDPOINT. */
  readonly url: string;
  readonly port: number;
  requests(): readonly ReceivedRequest[];
  spans(): readonly ReceivedSpan[];
  metrics(): readonly ReceivedMetric[];
  /** Resolves with the first span (received already or later) matching; rejects after the timeout. */
  waitForSpan(predicate: (span: ReceivedSpan) => boolean, timeoutMs?: number, what?: string): Promise<ReceivedSpan>;
  /** Resolves with the first metric matching; rejects after the timeout. */
  waitForMetric(predicate: (metric: ReceivedMetric) => boolean, timeoutMs?: number, what?: string): Promise<ReceivedMetric>;
  close(): Promise<void>;
}

/* OTLP JSON shapes, as loose as the wire is. */
interface JsonAnyValue {
  stringValue?: string;
  boolValue?: boolean;
  intValue?: string | number;
  doubleValue?: number | string;
  arrayValue?: { values?: JsonAnyValue[] };
  kvlistValue?: { values?: JsonKeyValue[] };
  bytesValue?: string;
}
interface JsonKeyValue {
  key: string;
  value?: JsonAnyValue;
}
interface JsonScope {
  name?: string;
  version?: string;
}
interface JsonSpan {
  traceId?: string;
  spanId?: string;
  parentSpanId?: string;
  name?: string;
  kind?: number | string;
  startTimeUnixNano?: string | number;
  endTimeUnixNano?: string | number;
  attributes?: JsonKeyValue[];
  status?: { code?: number | string; message?: string };
  links?: { traceId?: string; spanId?: string; attributes?: JsonKeyValue[] }[];
}
interface JsonTraces {
  resourceSpans?: { resource?: { attributes?: JsonKeyValue[] }; scopeSpans?: { scope?: JsonScope; spans?: JsonSpan[] }[] }[];
}
interface JsonDataPoint {
  attributes?: JsonKeyValue[];
  asInt?: string | number;
  asDouble?: number | string;
  count?: string | number;
  sum?: number | string;
  bucketCounts?: (string | number)[];
  explicitBounds?: number[];
  timeUnixNano?: string | number;
}
interface JsonMetric {
  name?: string;
  unit?: string;
  description?: string;
  sum?: { dataPoints?: JsonDataPoint[]; isMonotonic?: boolean; aggregationTemporality?: number | string };
  gauge?: { dataPoints?: JsonDataPoint[] };
  histogram?: { dataPoints?: JsonDataPoint[]; aggregationTemporality?: number | string };
  exponentialHistogram?: { dataPoints?: JsonDataPoint[] };
  summary?: { dataPoints?: JsonDataPoint[] };
}
interface JsonMetrics {
  resourceMetrics?: { resource?: { attributes?: JsonKeyValue[] }; scopeMetrics?: { scope?: JsonScope; metrics?: JsonMetric[] }[] }[];
}

const SPAN_KINDS: Record<string, number> = {
  SPAN_KIND_UNSPECIFIED: 0,
  SPAN_KIND_INTERNAL: 1,
  SPAN_KIND_SERVER: 2,
  SPAN_KIND_CLIENT: 3,
  SPAN_KIND_PRODUCER: 4,
  SPAN_KIND_CONSUMER: 5,
};
const STATUS_CODES: Record<string, number> = { STATUS_CODE_UNSET: 0, STATUS_CODE_OK: 1, STATUS_CODE_ERROR: 2 };

function enumValue(value: number | string | undefined, names: Record<string, number>): number {
  if (value === undefined) return 0;
  if (typeof value === 'number') return value;
  return names[value] ?? Number(value);
}

/** An OTLP JSON attribute value as a plain value. */
export function attributeValue(v: JsonAnyValue | undefined): AttributeValue {
  if (v === undefined) return null;
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.boolValue !== undefined) return v.boolValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.doubleValue !== undefined) return Number(v.doubleValue);
  if (v.arrayValue !== undefined) return (v.arrayValue.values ?? []).map(attributeValue);
  if (v.kvlistValue !== undefined) return flattenAttributes(v.kvlistValue.values);
  if (v.bytesValue !== undefined) return v.bytesValue;
  return null;
}

/** OTLP JSON key-values as a plain object. */
export function flattenAttributes(list: readonly JsonKeyValue[] | undefined): Attributes {
  const out: Attributes = {};
  for (const kv of list ?? []) out[kv.key] = attributeValue(kv.value);
  return out;
}

/**
 * A trace or span id as lowercase hex. OTLP JSON sends hex (16 or 32 characters); the protobuf
 * JSON mapping sends base64 (12 or 24 characters). Empty and absent are undefined.
 */
export function normalizeId(id: string | undefined): { hex: string; encoding: IdEncoding } | undefined {
  if (id === undefined || id === '') return undefined;
  if ((id.length === 16 || id.length === 32) && /^[0-9a-fA-F]+$/.test(id)) return { hex: id.toLowerCase(), encoding: 'hex' };
  return { hex: Buffer.from(id, 'base64').toString('hex'), encoding: 'base64' };
}

function nanos(value: string | number | undefined): bigint {
  if (value === undefined || value === '') return 0n;
  return BigInt(value);
}

function num(value: string | number | undefined): number | undefined {
  return value === undefined ? undefined : Number(value);
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function parseSpans(body: JsonTraces): ReceivedSpan[] {
  const out: ReceivedSpan[] = [];
  for (const rs of body.resourceSpans ?? []) {
    const resource = flattenAttributes(rs.resource?.attributes);
    for (const ss of rs.scopeSpans ?? []) {
      const scope = { name: ss.scope?.name ?? '', ...(ss.scope?.version !== undefined ? { version: ss.scope.version } : {}) };
      for (const s of ss.spans ?? []) {
        const traceId = normalizeId(s.traceId);
        const spanId = normalizeId(s.spanId);
        if (traceId === undefined || spanId === undefined) throw new Error(`a span without ids: ${JSON.stringify(s)}`);
        out.push({
          traceId: traceId.hex,
          spanId: spanId.hex,
          parentSpanId: normalizeId(s.parentSpanId)?.hex,
          name: s.name ?? '',
          kind: enumValue(s.kind, SPAN_KINDS),
          startTimeUnixNano: nanos(s.startTimeUnixNano),
          endTimeUnixNano: nanos(s.endTimeUnixNano),
          attributes: flattenAttributes(s.attributes),
          status: {
            code: enumValue(s.status?.code, STATUS_CODES),
            ...(s.status?.message !== undefined && s.status.message !== '' ? { message: s.status.message } : {}),
          },
          links: (s.links ?? []).map((l) => ({
            traceId: normalizeId(l.traceId)?.hex ?? '',
            spanId: normalizeId(l.spanId)?.hex ?? '',
            attributes: flattenAttributes(l.attributes),
          })),
          resource,
          scope,
          idEncoding: spanId.encoding,
        });
      }
    }
  }
  return out;
}

function dataPoint(p: JsonDataPoint): ReceivedDataPoint {
  const value = p.asInt !== undefined ? Number(p.asInt) : p.asDouble !== undefined ? Number(p.asDouble) : undefined;
  const count = num(p.count);
  const sum = num(p.sum);
  return {
    attributes: flattenAttributes(p.attributes),
    ...(value !== undefined ? { value } : {}),
    ...(count !== undefined ? { count } : {}),
    ...(sum !== undefined ? { sum } : {}),
    ...(p.bucketCounts !== undefined ? { bucketCounts: p.bucketCounts.map(Number) } : {}),
    ...(p.explicitBounds !== undefined ? { explicitBounds: p.explicitBounds } : {}),
    timeUnixNano: nanos(p.timeUnixNano),
  };
}

function parseMetrics(body: JsonMetrics, exportIndex: number): ReceivedMetric[] {
  const out: ReceivedMetric[] = [];
  for (const rm of body.resourceMetrics ?? []) {
    const resource = flattenAttributes(rm.resource?.attributes);
    for (const sm of rm.scopeMetrics ?? []) {
      const scope = { name: sm.scope?.name ?? '', ...(sm.scope?.version !== undefined ? { version: sm.scope.version } : {}) };
      for (const m of sm.metrics ?? []) {
        const common = { name: m.name ?? '', unit: m.unit ?? '', description: m.description ?? '', resource, scope, export: exportIndex };
        if (m.sum !== undefined) {
          out.push({
            ...common,
            type: 'sum',
            ...(m.sum.isMonotonic !== undefined ? { isMonotonic: m.sum.isMonotonic } : {}),
            aggregationTemporality: Number(m.sum.aggregationTemporality ?? 0),
            dataPoints: (m.sum.dataPoints ?? []).map(dataPoint),
          });
        } else if (m.histogram !== undefined) {
          out.push({ ...common, type: 'histogram', aggregationTemporality: Number(m.histogram.aggregationTemporality ?? 0), dataPoints: (m.histogram.dataPoints ?? []).map(dataPoint) });
        } else if (m.gauge !== undefined) {
          out.push({ ...common, type: 'gauge', dataPoints: (m.gauge.dataPoints ?? []).map(dataPoint) });
        } else if (m.exponentialHistogram !== undefined) {
          out.push({ ...common, type: 'exponentialHistogram', dataPoints: (m.exponentialHistogram.dataPoints ?? []).map(dataPoint) });
        } else if (m.summary !== undefined) {
          out.push({ ...common, type: 'summary', dataPoints: (m.summary.dataPoints ?? []).map(dataPoint) });
        } else {
          out.push({ ...common, type: 'unknown', dataPoints: [] });
        }
      }
    }
  }
  return out;
}

export interface ReceiverOptions {
  /** Default 127.0.0.1. */
  readonly host?: string;
  /** Default 0 (a free port). */
  readonly port?: number;
}

export async function startOtlpReceiver(options: ReceiverOptions = {}): Promise<OtlpReceiver> {
  const requests: ReceivedRequest[] = [];
  const spans: ReceivedSpan[] = [];
  const metrics: ReceivedMetric[] = [];
  let metricExports = 0;
  const listeners = new Set<() => void>();
  const notify = () => {
    for (const l of [...listeners]) l();
  };

  const answer = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '/').split('?')[0]!;
    const contentType = String(req.headers['content-type'] ?? '');
    let raw = await readBody(req);
    const record = (status: number) => requests.push({ method: req.method ?? '', path, contentType, status, bytes: raw.length });
    if (req.method !== 'POST' || !['/v1/traces', '/v1/metrics', '/v1/logs'].includes(path)) {
      record(404);
      answer(res, 404, { error: `no ${req.method} ${path} here` });
      notify();
      return;
    }
    if (!/^application\/json\b/i.test(contentType)) {
      record(415);
      answer(res, 415, { error: `expected application/json, got ${contentType || 'no content type'}` });
      notify();
      return;
    }
    if (String(req.headers['content-encoding'] ?? '').toLowerCase() === 'gzip') raw = gunzipSync(raw);
    let body: unknown;
    try {
      body = JSON.parse(raw.toString('utf8'));
    } catch (err) {
      record(400);
      answer(res, 400, { error: `not JSON: ${(err as Error).message}` });
      notify();
      return;
    }
    if (path === '/v1/traces') spans.push(...parseSpans(body as JsonTraces));
    else if (path === '/v1/metrics') metrics.push(...parseMetrics(body as JsonMetrics, metricExports++));
    record(200);
    answer(res, 200, {});
    notify();
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      requests.push({ method: req.method ?? '', path: req.url ?? '', contentType: String(req.headers['content-type'] ?? ''), status: 500, bytes: 0 });
      if (!res.headersSent) answer(res, 500, { error: (err as Error).message });
      notify();
    });
  });
  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;

  function waitFor<T>(items: () => readonly T[], predicate: (item: T) => boolean, timeoutMs: number, describe: () => string): Promise<T> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const found = items().find(predicate);
        if (found === undefined) return;
        listeners.delete(check);
        clearTimeout(timer);
        resolve(found);
      };
      const timer = setTimeout(() => {
        listeners.delete(check);
        reject(new Error(describe()));
      }, timeoutMs);
      listeners.add(check);
      check();
    });
  }

  const urlHost = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${urlHost}:${port}`,
    port,
    requests: () => requests,
    spans: () => spans,
    metrics: () => metrics,
    waitForSpan: (predicate, timeoutMs = 10_000, what = 'a matching span') =>
      waitFor(
        () => spans,
        predicate,
        timeoutMs,
        () => `no ${what} within ${timeoutMs} ms; spans received: ${spans.map((s) => `${s.name} [${s.spanId} < ${s.parentSpanId ?? 'root'}]`).join(', ') || 'none'}`,
      ),
    waitForMetric: (predicate, timeoutMs = 10_000, what = 'a matching metric') =>
      waitFor(
        () => metrics,
        predicate,
        timeoutMs,
        () => `no ${what} within ${timeoutMs} ms; metrics received: ${[...new Set(metrics.map((m) => m.name))].join(', ') || 'none'}`,
      ),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Export cadence for tests: spans batched for 100 ms, metrics every 500 ms. */
export const SPAN_DELAY_MS = 100;
export const METRIC_INTERVAL_MS = 500;

/** Environment for a gateway exporting OTLP/HTTP JSON to `receiver`, quickly. */
export function otlpEnv(receiver: OtlpReceiver, serviceName?: string): NodeJS.ProcessEnv {
  return {
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
    OTEL_BSP_SCHEDULE_DELAY: String(SPAN_DELAY_MS),
    OTEL_METRIC_EXPORT_INTERVAL: String(METRIC_INTERVAL_MS),
    ...(serviceName !== undefined ? { OTEL_SERVICE_NAME: serviceName } : {}),
  };
}

/** `env` with every OTEL_* variable of this process unset, so only what a test gives reaches a child. */
export function withoutOtel(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const cleared = Object.fromEntries(Object.keys(process.env).filter((k) => k.startsWith('OTEL_')).map((k) => [k, undefined]));
  return { ...cleared, ...env };
}
