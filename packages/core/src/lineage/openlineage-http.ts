/**
 * Delivers OpenLineage RunEvents to an HTTP endpoint that takes them one per POST (Marquez's
 * `/api/v1/lineage` and compatible collectors).
 *
 * `emit` turns the event into its JSON line and appends it to a bounded on-disk queue
 * (`openlineage-queue.ts`); it never throws and never waits. One delivery loop sends the queued
 * events in order, one at a time:
 * - 2xx: delivered;
 * - network errors, timeouts, 408, 429 and 5xx: sent again after an exponential backoff with
 *   jitter, bounded by `retryMaxMs` (a `Retry-After` is honoured up to that bound), for as long
 *   as it takes: nothing behind the event is sent before it;
 * - any other answer (4xx: the event will never be accepted as it is): logged, counted as
 *   rejected and dropped.
 * When the queue is full a new event is dropped, counted and logged (at most once per
 * `dropLogIntervalMs`, with the number dropped since the last line).
 *
 * Delivered events are removed from the queue; events still queued when the sink is closed
 * (or when the process stops) are delivered by the next sink on the same `queueDir`, in order.
 * Delivery is exactly once across a clean close and restart; an event whose request was cut
 * short (timeout, connection lost after it was sent) or that was delivered just before a crash
 * may reach the endpoint twice. The events carry a run id and event time, by which OpenLineage
 * consumers merge repeated events.
 */
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import type { IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { Logger } from 'pino';
import { toOpenLineageEvent, type OpenLineageEventOptions } from './openlineage.js';
import { OpenLineageQueue, type QueueEntry } from './openlineage-queue.js';
import type { RunEvent, RunEventSink } from './types.js';

export interface OpenLineageHttpSinkOptions extends OpenLineageEventOptions {
  /** Base URL of the endpoint, e.g. `http://localhost:5000`. */
  readonly url: string;
  /** Path of the lineage API under `url`. Default `/api/v1/lineage`. */
  readonly endpoint?: string;
  /** Sent as `Authorization: Bearer <apiKey>`. */
  readonly apiKey?: string;
  /** Longest wait for one request's answer. Default 10,000 ms. */
  readonly timeoutMs?: number;
  /** Directory of the on-disk queue; created when missing. One sink per directory. */
  readonly queueDir: string;
  /** Bytes of undelivered events past which new events are dropped. Default 64 MiB. */
  readonly maxQueueBytes?: number;
  /** Size past which the queue starts a new segment file. Default 4 MiB (at most a quarter of `maxQueueBytes`). */
  readonly segmentBytes?: number;
  /** First retry delay. Default 500 ms. */
  readonly retryInitialMs?: number;
  /** Longest retry delay. Default 30,000 ms. */
  readonly retryMaxMs?: number;
  /** Shortest interval between two "queue full" log lines. Default 10,000 ms. */
  readonly dropLogIntervalMs?: number;
  /** Default wait of `flush()` without a timeout. Default 10,000 ms. */
  readonly flushTimeoutMs?: number;
  readonly logger: Logger;
}

/** Counters for metrics. */
export interface OpenLineageHttpSinkStats {
  /** Events waiting to be delivered (in memory or on disk). */
  readonly queued: number;
  /** Bytes of those events. */
  readonly queuedBytes: number;
  /** Events the endpoint accepted, since the sink was created. */
  readonly delivered: number;
  /** Events the endpoint refused (4xx other than 408 and 429), dropped. */
  readonly rejected: number;
  /** Events dropped before reaching the queue: queue full, queue unusable, sink closed or not serialisable. */
  readonly dropped: number;
  /** Requests sent again after a failure. */
  readonly retries: number;
}

export interface OpenLineageHttpSink extends RunEventSink {
  stats(): OpenLineageHttpSinkStats;
}

const DEFAULT_ENDPOINT = '/api/v1/lineage';
const DEFAULT_TIMEOUT_MS = 10_000;
const DEFAULT_MAX_QUEUE_BYTES = 64 * 1024 * 1024;
const DEFAULT_SEGMENT_BYTES = 4 * 1024 * 1024;
const DEFAULT_RETRY_INITIAL_MS = 500;
const DEFAULT_RETRY_MAX_MS = 30_000;
const DEFAULT_DROP_LOG_INTERVAL_MS = 10_000;
const DEFAULT_FLUSH_TIMEOUT_MS = 10_000;
/** Bytes of an error answer kept for the log. */
const ANSWER_LOG_BYTES = 1024;

type Attempt = { readonly status: number; readonly body: string; readonly retryAfterMs: number | undefined } | { readonly error: Error };

export function createHttpSink(options: OpenLineageHttpSinkOptions): OpenLineageHttpSink {
  return new HttpSink(options);
}

/**
 * Whether an answer means "try again later". 401 and 403 are among them: a rotated or
 * misconfigured key is fixed by an operator, and the events wait in the queue meanwhile.
 */
export function isRetryableStatus(status: number): boolean {
  return status === 401 || status === 403 || status === 408 || status === 429 || status >= 500;
}

/** Delay before retry number `attempt` (1-based): half fixed, half random, doubling up to `maxMs`. */
export function backoffDelay(attempt: number, initialMs: number, maxMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(attempt - 1, 30));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

/** A `Retry-After` value (seconds or an HTTP date) in milliseconds from `now`. */
export function parseRetryAfter(value: string | undefined, now: number = Date.now()): number | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const at = Date.parse(trimmed);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

class HttpSink implements OpenLineageHttpSink {
  readonly #options: OpenLineageHttpSinkOptions;
  readonly #logger: Logger;
  readonly #target: URL;
  /** The endpoint as logs show it: without a password in it. */
  readonly #shownUrl: string;
  readonly #agent: HttpAgent;
  readonly #timeoutMs: number;
  readonly #retryInitialMs: number;
  readonly #retryMaxMs: number;
  readonly #dropLogIntervalMs: number;
  readonly #queue: OpenLineageQueue;
  readonly #loop: Promise<void>;

  #closing = false;
  #closed: Promise<void> | undefined;
  #queueOpened = false;
  #queueFailed = false;
  #delivered = 0;
  #rejected = 0;
  #dropped = 0;
  #retries = 0;
  #lastDropLog = 0;
  #droppedSinceLog = 0;
  /** Cuts a backoff wait or an idle wait short (on close). */
  #wake: (() => void) | undefined;
  #progressWaiters: (() => void)[] = [];

  constructor(options: OpenLineageHttpSinkOptions) {
    this.#options = options;
    this.#logger = options.logger;
    const base = options.url.replace(/\/+$/, '');
    const endpoint = options.endpoint ?? DEFAULT_ENDPOINT;
    this.#target = new URL(base + (endpoint.startsWith('/') ? endpoint : `/${endpoint}`));
    const shown = new URL(this.#target.href);
    if (shown.password !== '') shown.password = '***';
    this.#shownUrl = shown.href;
    if (this.#target.protocol !== 'http:' && this.#target.protocol !== 'https:') {
      throw new Error(`OpenLineage endpoint must be http or https, not ${this.#target.protocol}`);
    }
    this.#agent = this.#target.protocol === 'https:' ? new HttpsAgent({ keepAlive: true, maxSockets: 1 }) : new HttpAgent({ keepAlive: true, maxSockets: 1 });
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#retryInitialMs = options.retryInitialMs ?? DEFAULT_RETRY_INITIAL_MS;
    this.#retryMaxMs = Math.max(options.retryMaxMs ?? DEFAULT_RETRY_MAX_MS, this.#retryInitialMs);
    this.#dropLogIntervalMs = options.dropLogIntervalMs ?? DEFAULT_DROP_LOG_INTERVAL_MS;
    const maxBytes = options.maxQueueBytes ?? DEFAULT_MAX_QUEUE_BYTES;
    this.#queue = new OpenLineageQueue({
      dir: options.queueDir,
      maxBytes,
      segmentBytes: options.segmentBytes ?? Math.max(1, Math.min(DEFAULT_SEGMENT_BYTES, Math.floor(maxBytes / 4))),
      logger: options.logger,
    });
    this.#loop = this.#run();
  }

  emit(event: RunEvent): void {
    try {
      if (this.#closing) {
        this.#drop('the sink is closed');
        return;
      }
      const line = JSON.stringify(toOpenLineageEvent(event, this.#options));
      if (!this.#queue.append(line)) {
        this.#drop(this.#queueFailed ? 'the queue directory cannot be used' : 'the queue is full');
      }
    } catch (err) {
      this.#dropped += 1;
      try {
        this.#logger.error({ err }, 'OpenLineage: a run event could not be serialised; dropped');
      } catch {
        // A failing logger must not reach the caller.
      }
    }
  }

  async flush(timeoutMs: number = this.#options.flushTimeoutMs ?? DEFAULT_FLUSH_TIMEOUT_MS): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.#drained()) {
      const left = deadline - Date.now();
      if (left <= 0) return;
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        this.#progressWaiters.push(resolve);
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
    }
  }

  close(): Promise<void> {
    this.#closed ??= this.#close();
    return this.#closed;
  }

  stats(): OpenLineageHttpSinkStats {
    return {
      queued: this.#queue.count,
      queuedBytes: this.#queue.bytes,
      delivered: this.#delivered,
      rejected: this.#rejected,
      dropped: this.#dropped,
      retries: this.#retries,
    };
  }

  async #close(): Promise<void> {
    this.#closing = true;
    this.#wake?.();
    await this.#loop;
    await this.#queue.close();
    this.#agent.destroy();
    this.#notifyProgress();
  }

  #drained(): boolean {
    // Before the queue directory was read, the events left on disk are not counted yet.
    return (this.#queueOpened && this.#queue.count === 0) || this.#queueFailed || this.#closed !== undefined;
  }

  #drop(reason: string): void {
    this.#dropped += 1;
    this.#droppedSinceLog += 1;
    const now = Date.now();
    if (this.#lastDropLog !== 0 && now - this.#lastDropLog < this.#dropLogIntervalMs) return;
    this.#lastDropLog = now;
    const dropped = this.#droppedSinceLog;
    this.#droppedSinceLog = 0;
    this.#logger.error(
      { dropped, droppedTotal: this.#dropped, queued: this.#queue.count, queuedBytes: this.#queue.bytes, queueDir: this.#options.queueDir },
      `OpenLineage: run events DROPPED, ${reason}`,
    );
  }

  async #run(): Promise<void> {
    try {
      await this.#queue.ready;
    } catch (err) {
      this.#queueFailed = true;
      const lost = this.#queue.count;
      this.#dropped += lost;
      this.#logger.error({ err, queueDir: this.#options.queueDir, dropped: lost }, 'OpenLineage: the queue directory cannot be used; run events will be DROPPED');
      this.#notifyProgress();
      return;
    }
    this.#queueOpened = true;
    this.#notifyProgress();
    while (!this.#closing) {
      let entry: QueueEntry | undefined;
      try {
        entry = await this.#queue.next();
      } catch (err) {
        this.#logger.error({ err, queueDir: this.#options.queueDir }, 'OpenLineage: reading the queue failed; trying again');
        await this.#sleep(this.#retryMaxMs);
        continue;
      }
      if (entry === undefined) {
        if (this.#closing) break;
        await new Promise<void>((resolve) => {
          this.#wake = resolve;
          void this.#queue.waitForData().then(resolve);
        });
        this.#wake = undefined;
        continue;
      }
      const done = await this.#deliver(entry.line);
      if (!done) break;
      await this.#queue.ack(entry);
      this.#notifyProgress();
    }
  }

  /** Sends one event until it is delivered or refused (true), or until the sink closes (false). */
  async #deliver(line: string): Promise<boolean> {
    for (let attempt = 1; ; attempt++) {
      const outcome = await this.#post(line);
      if ('status' in outcome) {
        if (outcome.status >= 200 && outcome.status < 300) {
          this.#delivered += 1;
          if (attempt > 1) this.#logger.info({ attempts: attempt }, 'OpenLineage: endpoint reachable again; event delivered');
          return true;
        }
        if (!isRetryableStatus(outcome.status)) {
          this.#rejected += 1;
          this.#logger.warn(
            { status: outcome.status, answer: outcome.body, url: this.#shownUrl, event: summary(line) },
            'OpenLineage: the endpoint refused a run event; dropped (it would be refused again)',
          );
          return true;
        }
      }
      if (this.#closing) return false;
      const delay = Math.min(
        this.#retryMaxMs,
        Math.max(backoffDelay(attempt, this.#retryInitialMs, this.#retryMaxMs), 'status' in outcome ? (outcome.retryAfterMs ?? 0) : 0),
      );
      if (attempt === 1 || attempt % 10 === 0) {
        this.#logger.warn(
          'status' in outcome
            ? { status: outcome.status, answer: outcome.body, attempt, retryInMs: delay, queued: this.#queue.count, url: this.#shownUrl }
            : { err: outcome.error, attempt, retryInMs: delay, queued: this.#queue.count, url: this.#shownUrl },
          'OpenLineage: delivering a run event failed; retrying',
        );
      }
      this.#retries += 1;
      await this.#sleep(delay);
      if (this.#closing) return false;
    }
  }

  #post(line: string): Promise<Attempt> {
    const body = Buffer.from(line);
    const headers: Record<string, string | number> = {
      'content-type': 'application/json',
      'content-length': body.length,
    };
    if (this.#options.apiKey !== undefined) headers['authorization'] = `Bearer ${this.#options.apiKey}`;
    const send = this.#target.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise<Attempt>((resolve) => {
      let settled = false;
      const finish = (attempt: Attempt): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(attempt);
      };
      const request = send(this.#target, { method: 'POST', headers, agent: this.#agent }, (response: IncomingMessage) => {
        const chunks: Buffer[] = [];
        let kept = 0;
        response.on('data', (chunk: Buffer) => {
          if (kept < ANSWER_LOG_BYTES) {
            chunks.push(chunk);
            kept += chunk.length;
          }
        });
        response.on('end', () => {
          const retryAfter = response.headers['retry-after'];
          finish({
            status: response.statusCode ?? 0,
            body: Buffer.concat(chunks).toString('utf8', 0, Math.min(kept, ANSWER_LOG_BYTES)),
            retryAfterMs: parseRetryAfter(Array.isArray(retryAfter) ? retryAfter[0] : retryAfter),
          });
        });
        response.on('error', (error) => finish({ error }));
      });
      const timer = setTimeout(() => request.destroy(new Error(`no answer within ${this.#timeoutMs} ms`)), this.#timeoutMs);
      request.on('error', (error) => finish({ error }));
      request.end(body);
    });
  }

  #sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      timer.unref();
      const wake = (): void => done();
      this.#wake = wake;
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
    }).finally(() => {
      this.#wake = undefined;
    });
  }

  #notifyProgress(): void {
    const waiters = this.#progressWaiters;
    this.#progressWaiters = [];
    for (const resolve of waiters) resolve();
  }
}

/** What identifies an event in a log line, without its lineage. */
function summary(line: string): Record<string, unknown> {
  try {
    const parsed = JSON.parse(line) as { eventType?: unknown; eventTime?: unknown; run?: { runId?: unknown }; job?: { namespace?: unknown; name?: unknown } };
    return { eventType: parsed.eventType, eventTime: parsed.eventTime, runId: parsed.run?.runId, job: parsed.job?.name, jobNamespace: parsed.job?.namespace };
  } catch {
    return { bytes: line.length };
  }
}
