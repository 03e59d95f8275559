/**
 * Lineage and telemetry, composed from the config: the lineage store and its retention, the
 * OpenLineage emitters, the recorder, and the OpenTelemetry SDK with its observer. The governor
 * is told of every session through the observers returned; none when both are off.
 */
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Meter } from '@opentelemetry/api';
import {
  combineSinks,
  createFileSink,
  createHttpSink,
  LineageRecorder,
  redactUrlPassword,
  type GovernanceObserver,
  type LineageStore,
  type RunEventSink,
} from '@sluice/core';
import type { Logger } from 'pino';
import type { GatewayConfig } from './config/schema.js';
import { openLineageStore } from './lineage/open.js';
import { startLineageRetention, type LineageRetention } from './lineage/retention.js';
import { startTelemetry, type Telemetry } from './telemetry.js';

/** The gateway's version, from its package.json. */
export const VERSION: string = (() => {
  try {
    return (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version?: string }).version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
})();

/** The producer URI in OpenLineage events. */
export const PRODUCER = `https://github.com/sluice-gateway/sluice/tree/v${VERSION}`;

export class ObservabilityError extends Error {}

export interface Observability {
  readonly observers: readonly GovernanceObserver[];
  /** The lineage store (for the admin API), when lineage is on. */
  readonly lineageStore: LineageStore | undefined;
  readonly recorder: LineageRecorder | undefined;
  /** The meter of the gateway's own gauges, when metrics are collected (OTLP or Prometheus). */
  readonly meter: Meter | undefined;
  /** Answers a Prometheus scrape (mounted on the admin listener), when Prometheus is on. */
  readonly prometheus: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
  /** Writes what is pending, ends open runs, stops the emitters, the store and the SDK. */
  close(): Promise<void>;
}

function sinkOf(config: NonNullable<GatewayConfig['lineage']['openlineage']>, logger: Logger, env: NodeJS.ProcessEnv): RunEventSink {
  const sinks: RunEventSink[] = [];
  if (config.url !== undefined) {
    let apiKey: string | undefined;
    if (config.apiKeyEnv !== undefined) {
      apiKey = env[config.apiKeyEnv];
      if (apiKey === undefined || apiKey === '') {
        throw new ObservabilityError(`lineage.openlineage.apiKeyEnv names ${config.apiKeyEnv}, which is not set in the environment`);
      }
    }
    sinks.push(
      createHttpSink({
        url: config.url,
        endpoint: config.endpoint,
        ...(apiKey !== undefined ? { apiKey } : {}),
        timeoutMs: config.timeoutMs,
        queueDir: config.queueDir,
        maxQueueBytes: config.maxQueueBytes,
        producer: PRODUCER,
        logger: logger.child({ component: 'openlineage-http' }),
      }),
    );
  }
  if (config.file !== undefined) {
    sinks.push(createFileSink({ path: config.file, producer: PRODUCER, logger: logger.child({ component: 'openlineage-file' }) }));
  }
  return sinks.length === 1 ? sinks[0]! : combineSinks(...sinks);
}

export async function startObservability(config: GatewayConfig, logger: Logger, env: NodeJS.ProcessEnv = process.env): Promise<Observability> {
  let store: LineageStore | undefined;
  let retention: LineageRetention | undefined;
  let sink: RunEventSink | undefined;
  let recorder: LineageRecorder | undefined;
  if (config.lineage.enabled) {
    try {
      store = await openLineageStore({ store: config.lineage.store, logger: logger.child({ component: 'lineage-store' }), thread: true });
    } catch (cause) {
      throw new ObservabilityError(`cannot open the lineage store at ${redactUrlPassword(config.lineage.store)} (lineage.store): ${redactUrlPassword((cause as Error).message)}`, { cause });
    }
    try {
      if (config.lineage.openlineage) sink = sinkOf(config.lineage.openlineage, logger, env);
    } catch (err) {
      await store.close();
      throw err;
    }
    retention = startLineageRetention(store, { retentionMs: config.lineage.retentionDays * 86_400_000, logger });
    recorder = new LineageRecorder({
      logger: logger.child({ component: 'lineage' }),
      store,
      ...(sink ? { sink } : {}),
      jobNamespace: config.lineage.namespace,
      flushIntervalMs: config.lineage.flushIntervalMs,
    });
  }
  // Prometheus is served on the admin listener: without one there is nothing to scrape.
  const telemetry: Telemetry = startTelemetry(config.telemetry, logger, VERSION, env, { prometheus: config.telemetry.prometheus && config.admin !== undefined });
  const observers: GovernanceObserver[] = [];
  if (recorder) observers.push(recorder);
  if (telemetry.observer) observers.push(telemetry.observer);
  let closing: Promise<void> | undefined;
  return {
    observers,
    lineageStore: store,
    recorder,
    meter: telemetry.meter,
    prometheus: telemetry.prometheus,
    close: () =>
      (closing ??= (async () => {
        // Each step runs whatever the one before did; the first failure is reported at the end.
        const failures: unknown[] = [];
        const step = async (run: (() => Promise<void>) | undefined): Promise<void> => {
          try {
            await run?.();
          } catch (err) {
            failures.push(err);
          }
        };
        await step(recorder && (() => recorder.close()));
        await step(sink && (() => sink.close()));
        await step(retention && (() => retention.stop()));
        await step(store && (() => store.close()));
        await step(() => telemetry.shutdown());
        if (failures.length > 0) throw failures[0];
      })()),
  };
}
