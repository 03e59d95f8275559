import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { appendFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { useTempDir } from '../test-support/temp-dir.js';
import { openLineageFixtures } from '../../test/openlineage-schema/fixtures.js';
import { createOpenLineageValidator } from '../../test/openlineage-schema/validate.js';
import { backoffDelay, createHttpSink, isRetryableStatus, parseRetryAfter, type OpenLineageHttpSink, type OpenLineageHttpSinkOptions } from './openlineage-http.js';
import { queueSegmentName } from './openlineage-queue.js';
import type { RunEvent } from './types.js';

const PRODUCER = 'https://github.com/sluice-gateway/sluice/tree/0.1.0';
const BASE_TIME = Date.UTC(2025, 0, 1);
const validator = createOpenLineageValidator();
const tempDir = useTempDir('sluice-openlineage-http-');

interface Received {
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: { eventType: string; eventTime: string };
}

/** An endpoint on 127.0.0.1 that records every request and answers with `answer` (default 201). */
class Endpoint {
  readonly requests: Received[] = [];
  /** Bodies of the requests answered with a 2xx, in order. */
  readonly accepted: Received[] = [];
  answer: (request: Received, index: number) => number | 'hang' = () => 201;
  #server: Server | undefined;
  #port = 0;

  get url(): string {
    return `http://127.0.0.1:${this.#port}`;
  }

  async start(): Promise<void> {
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const received: Received = { path: req.url ?? '', headers: req.headers, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Received['body'] };
        const status = this.answer(received, this.requests.length);
        this.requests.push(received);
        if (status === 'hang') return;
        if (status >= 200 && status < 300) this.accepted.push(received);
        res.statusCode = status;
        res.end(status >= 400 ? `{"error":"status ${status}"}` : '');
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.#port, '127.0.0.1', () => resolve());
    });
    this.#port = (server.address() as AddressInfo).port;
    this.#server = server;
  }

  async stop(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    if (server === undefined) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  times(list: readonly Received[] = this.accepted): number[] {
    return list.map((r) => Date.parse(r.body.eventTime) - BASE_TIME);
  }
}

const endpoints: Endpoint[] = [];
const sinks: OpenLineageHttpSink[] = [];

afterEach(async () => {
  for (const sink of sinks.splice(0)) await sink.close();
  for (const endpoint of endpoints.splice(0)) await endpoint.stop();
});

async function endpoint(): Promise<Endpoint> {
  const e = new Endpoint();
  endpoints.push(e);
  await e.start();
  return e;
}

function capturingLogger(): { logger: Logger; lines: { level: number; msg: string; [key: string]: unknown }[] } {
  const lines: { level: number; msg: string }[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as { level: number; msg: string }) });
  return { logger, lines };
}

function sink(options: Partial<OpenLineageHttpSinkOptions> & { url: string }): OpenLineageHttpSink {
  const s = createHttpSink({
    producer: PRODUCER,
    queueDir: join(tempDir(), 'queue'),
    logger: pino({ level: 'silent' }),
    retryInitialMs: 5,
    retryMaxMs: 40,
    timeoutMs: 2000,
    ...options,
  });
  sinks.push(s);
  return s;
}

/** Event `n`: its time is BASE_TIME + n ms, so the endpoint can tell the order. */
function runEvent(n: number): RunEvent {
  const types = ['START', 'RUNNING', 'COMPLETE', 'FAIL'] as const;
  const eventType = types[n % types.length] ?? 'RUNNING';
  return { eventType, eventTime: BASE_TIME + n, lineage: openLineageFixtures.lineage, ...(eventType === 'FAIL' ? { error: 'statement timeout' } : {}) };
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from }, (_, i) => from + i);
}

async function until(condition: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

async function segmentFiles(): Promise<string[]> {
  return (await readdir(join(tempDir(), 'queue'))).filter((name) => name.endsWith('.jsonl'));
}

async function closedPortUrl(): Promise<string> {
  const e = new Endpoint();
  await e.start();
  const url = e.url;
  await e.stop();
  return url;
}

describe('createHttpSink', () => {
  it('delivers every event in order, as valid OpenLineage JSON, to the lineage endpoint', async () => {
    const server = await endpoint();
    const s = sink({ url: `${server.url}/`, apiKey: 'secret-key' });
    for (const n of range(0, 25)) s.emit(runEvent(n));
    expect(s.stats().queued).toBe(25);
    await s.flush(5000);
    expect(server.times()).toEqual(range(0, 25));
    expect(server.requests).toHaveLength(25);
    for (const request of server.requests) {
      expect(request.path).toBe('/api/v1/lineage');
      expect(request.headers['authorization']).toBe('Bearer secret-key');
      expect(request.headers['content-type']).toBe('application/json');
      expect(validator.validate(request.body)).toEqual([]);
    }
    expect(s.stats()).toMatchObject({ queued: 0, queuedBytes: 0, delivered: 25, rejected: 0, dropped: 0, retries: 0 });
    // Delivered segments are removed.
    await until(async () => (await segmentFiles()).length === 0);
  });

  it('posts to a configured endpoint path, without authorization when no key is given', async () => {
    const server = await endpoint();
    const s = sink({ url: server.url, endpoint: 'collector/events' });
    s.emit(runEvent(0));
    await s.flush(5000);
    expect(server.requests[0]?.path).toBe('/collector/events');
    expect(server.requests[0]?.headers['authorization']).toBeUndefined();
  });

  it('retries a 503 and delivers the event once', async () => {
    const server = await endpoint();
    server.answer = (_, i) => (i === 0 ? 503 : 200);
    const { logger, lines } = capturingLogger();
    const s = sink({ url: server.url, logger });
    s.emit(runEvent(0));
    s.emit(runEvent(1));
    await s.flush(5000);
    expect(server.times(server.requests)).toEqual([0, 0, 1]);
    expect(server.times()).toEqual([0, 1]);
    expect(s.stats()).toMatchObject({ delivered: 2, retries: 1, rejected: 0, queued: 0 });
    expect(lines.some((l) => l.msg.includes('retrying') && l['status'] === 503)).toBe(true);
  });

  it('retries 429 and 500, and a request that gets no answer in time', async () => {
    const server = await endpoint();
    const script: (number | 'hang')[] = [429, 500, 'hang'];
    server.answer = (_, i) => script[i] ?? 200;
    const s = sink({ url: server.url, timeoutMs: 100 });
    s.emit(runEvent(7));
    await s.flush(5000);
    expect(server.times(server.requests)).toEqual([7, 7, 7, 7]);
    expect(server.times()).toEqual([7]);
    expect(s.stats()).toMatchObject({ delivered: 1, retries: 3 });
  });

  it('drops an event the endpoint refuses with a 400, without retrying it, and goes on', async () => {
    const server = await endpoint();
    server.answer = (request) => (request.body.eventTime === new Date(BASE_TIME + 1).toISOString() ? 400 : 200);
    const { logger, lines } = capturingLogger();
    const s = sink({ url: server.url, logger });
    for (const n of range(0, 4)) s.emit(runEvent(n));
    await s.flush(5000);
    expect(server.times(server.requests)).toEqual([0, 1, 2, 3]);
    expect(server.times()).toEqual([0, 2, 3]);
    expect(s.stats()).toMatchObject({ delivered: 3, rejected: 1, retries: 0, queued: 0 });
    const refused = lines.find((l) => l.msg.includes('refused'));
    expect(refused).toMatchObject({ status: 400, answer: '{"error":"status 400"}', event: { eventType: 'RUNNING' } });
  });

  it('keeps events on disk while the endpoint is down and delivers them, exactly once and in order, after a restart', async () => {
    const server = await endpoint();
    const first = sink({ url: server.url });
    for (const n of range(0, 3)) first.emit(runEvent(n));
    await first.flush(5000);
    expect(server.times()).toEqual([0, 1, 2]);

    await server.stop();
    for (const n of range(3, 8)) first.emit(runEvent(n));
    await until(() => first.stats().retries >= 2);
    expect(first.stats()).toMatchObject({ delivered: 3, queued: 5 });
    await first.flush(50);
    await first.close();
    expect(first.stats().queued).toBe(5);
    expect((await segmentFiles()).length).toBeGreaterThan(0);

    await server.start();
    const second = sink({ url: server.url });
    second.emit(runEvent(8));
    second.emit(runEvent(9));
    expect(second.stats().queued).toBe(2);
    await until(() => second.stats().queued + second.stats().delivered === 7);
    await second.flush(5000);
    expect(server.times()).toEqual(range(0, 10));
    expect(server.times(server.requests)).toEqual(range(0, 10));
    expect(second.stats()).toMatchObject({ delivered: 7, queued: 0, dropped: 0 });
    await until(async () => (await segmentFiles()).length === 0);
  });

  it('replays a queue whose last line was torn by a crash, without the torn line', async () => {
    const down = await closedPortUrl();
    const first = sink({ url: down });
    for (const n of range(0, 3)) first.emit(runEvent(n));
    await until(() => first.stats().retries >= 1);
    await first.close();
    const files = await segmentFiles();
    expect(files).toEqual([queueSegmentName(1)]);
    await appendFile(join(tempDir(), 'queue', queueSegmentName(1)), '{"eventType":"COMPL');

    const server = await endpoint();
    const second = sink({ url: server.url });
    await second.flush(5000);
    expect(server.times(server.requests)).toEqual([0, 1, 2]);
    expect(second.stats()).toMatchObject({ delivered: 3, queued: 0 });
  });

  it('starts new segment files past segmentBytes and removes each once delivered', async () => {
    const down = await closedPortUrl();
    const first = sink({ url: down, segmentBytes: 4000 });
    for (const n of range(0, 30)) {
      first.emit(runEvent(n));
      if (n % 5 === 4) await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await first.close();
    expect((await segmentFiles()).length).toBeGreaterThan(3);

    const server = await endpoint();
    const second = sink({ url: server.url, segmentBytes: 4000 });
    await second.flush(5000);
    expect(server.times()).toEqual(range(0, 30));
    await until(async () => (await segmentFiles()).length === 0);
  });

  it('delivers events emitted in bursts while earlier ones are being delivered, once each and in order', async () => {
    const server = await endpoint();
    const s = sink({ url: server.url, segmentBytes: 3000 });
    for (let burst = 0; burst < 20; burst++) {
      for (const n of range(burst * 10, burst * 10 + 10)) s.emit(runEvent(n));
      await new Promise((resolve) => setTimeout(resolve, burst % 3));
    }
    await s.flush(10_000);
    expect(server.times(server.requests)).toEqual(range(0, 200));
    await until(async () => (await segmentFiles()).length === 0);
  });

  it('drops new events, counts and logs them, when the queue is full', async () => {
    const down = await closedPortUrl();
    const { logger, lines } = capturingLogger();
    const size = Buffer.byteLength(JSON.stringify((await import('./openlineage.js')).toOpenLineageEvent(runEvent(0), { producer: PRODUCER }))) + 1;
    const s = sink({ url: down, logger, maxQueueBytes: size * 3 + 10, retryInitialMs: 1000, retryMaxMs: 1000 });
    const started = Date.now();
    for (const n of range(0, 10)) s.emit(runEvent(n));
    expect(Date.now() - started).toBeLessThan(1000);
    expect(s.stats()).toMatchObject({ queued: 3, dropped: 7 });
    const dropLines = lines.filter((l) => l.msg.includes('DROPPED'));
    expect(dropLines).toHaveLength(1);
    expect(dropLines[0]).toMatchObject({ level: 50, dropped: 1, queued: 3 });
    expect(dropLines[0]?.msg).toContain('the queue is full');

    // Once the queue has room again (delivered events leave it), events are taken again.
    const server = await endpoint();
    await s.close();
    const next = sink({ url: server.url, logger, maxQueueBytes: size * 3 + 10 });
    await next.flush(5000);
    next.emit(runEvent(10));
    await next.flush(5000);
    expect(server.times()).toEqual([0, 1, 2, 10]);
    expect(next.stats().dropped).toBe(0);
  });

  it('never throws from emit, and drops events emitted after close', async () => {
    const server = await endpoint();
    const s = sink({ url: server.url });
    await s.close();
    expect(() => s.emit(runEvent(0))).not.toThrow();
    expect(() => s.emit({ eventType: 'START', eventTime: 0, lineage: null } as unknown as RunEvent)).not.toThrow();
    expect(s.stats().dropped).toBe(2);
    await s.flush(10);
    await s.close();
  });

  it('closes promptly while waiting to retry, leaving the event queued', async () => {
    const down = await closedPortUrl();
    const s = sink({ url: down, retryInitialMs: 60_000, retryMaxMs: 60_000 });
    s.emit(runEvent(0));
    await until(() => s.stats().retries === 1);
    const started = Date.now();
    await s.close();
    expect(Date.now() - started).toBeLessThan(1000);
    expect(await segmentFiles()).toEqual([queueSegmentName(1)]);
  });

  it('flush returns after its timeout while the endpoint is down', async () => {
    const down = await closedPortUrl();
    const s = sink({ url: down });
    s.emit(runEvent(0));
    const started = Date.now();
    await s.flush(100);
    expect(Date.now() - started).toBeGreaterThanOrEqual(90);
    expect(s.stats().queued).toBe(1);
  });

  it('drops events when the queue directory cannot be used', async () => {
    const blocker = join(tempDir(), 'file');
    await appendFile(blocker, 'x');
    const { logger, lines } = capturingLogger();
    const s = sink({ url: 'http://127.0.0.1:9', queueDir: join(blocker, 'queue'), logger });
    s.emit(runEvent(0));
    await until(() => lines.some((l) => l.msg.includes('cannot be used')));
    s.emit(runEvent(1));
    expect(s.stats().dropped).toBe(2);
    await s.flush(1000);
  });
});

describe('retry policy', () => {
  it('retries 401, 403 (a key an operator will fix), 408, 429 and 5xx only', () => {
    expect([200, 400, 401, 403, 404, 408, 409, 429, 500, 502, 503].filter(isRetryableStatus)).toEqual([401, 403, 408, 429, 500, 502, 503]);
  });

  it('doubles the delay up to the bound, with jitter in the upper half', () => {
    expect(backoffDelay(1, 500, 30_000, () => 0)).toBe(250);
    expect(backoffDelay(1, 500, 30_000, () => 1)).toBe(500);
    expect(backoffDelay(3, 500, 30_000, () => 1)).toBe(2000);
    expect(backoffDelay(20, 500, 30_000, () => 0)).toBe(15_000);
    expect(backoffDelay(1000, 500, 30_000, () => 1)).toBe(30_000);
  });

  it('reads Retry-After in seconds or as a date', () => {
    expect(parseRetryAfter('7')).toBe(7000);
    expect(parseRetryAfter('Wed, 01 Jan 2025 00:00:10 GMT', BASE_TIME)).toBe(10_000);
    expect(parseRetryAfter('soon')).toBeUndefined();
    expect(parseRetryAfter(undefined)).toBeUndefined();
  });
});
