/**
 * The OpenTelemetry SDK, owned by the app: started only when telemetry is on, configured from
 * the standard OTEL_* environment variables (exporters, endpoints, protocol, headers, resource
 * attributes, sampling). Packages use @opentelemetry/api only; with the SDK off their calls are
 * never made (the governor has no telemetry observer), so off costs nothing.
 *
 * Metrics are exported both ways: pushed over OTLP when telemetry is on (as the OTEL_* variables
 * say) and pulled by Prometheus from the admin listener's /metrics when `telemetry.prometheus` is
 * on and `admin` is set. Either one alone works: Prometheus without OTLP gets a meter provider
 * of its own (no traces are made, no SDK is started).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { metrics, type Meter } from '@opentelemetry/api';
import { OTLPMetricExporter as GrpcMetricExporter } from '@opentelemetry/exporter-metrics-otlp-grpc';
import { OTLPMetricExporter as JsonMetricExporter } from '@opentelemetry/exporter-metrics-otlp-http';
import { OTLPMetricExporter as ProtobufMetricExporter } from '@opentelemetry/exporter-metrics-otlp-proto';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { ConsoleMetricExporter, MeterProvider, PeriodicExportingMetricReader, type MetricReader, type PushMetricExporter } from '@opentelemetry/sdk-metrics';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { TelemetryObserver } from '@sluice/core';
import type { Logger } from 'pino';
import type { GatewayConfig } from './config/schema.js';

/** Environment variables that turn telemetry on when `telemetry.enabled` is `auto`. */
const SIGNALS = ['OTEL_EXPORTER_OTLP_ENDPOINT', 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', 'OTEL_EXPORTER_OTLP_METRICS_ENDPOINT', 'OTEL_TRACES_EXPORTER'] as const;

/** Whether telemetry is on for a setting and an environment. OTEL_SDK_DISABLED=true always turns it off. */
export function telemetryEnabled(setting: GatewayConfig['telemetry']['enabled'], env: NodeJS.ProcessEnv): boolean {
  if ((env.OTEL_SDK_DISABLED ?? '').trim().toLowerCase() === 'true') return false;
  if (setting !== 'auto') return setting;
  return SIGNALS.some((name) => (env[name] ?? '').trim() !== '' && env[name]?.trim() !== 'none');
}

export interface Telemetry {
  /** The governance observer (undefined when neither OTLP nor Prometheus is on). */
  readonly observer: TelemetryObserver | undefined;
  /** The meter the gateway's own gauges go on (undefined when no metrics are collected). */
  readonly meter: Meter | undefined;
  /** Answers a Prometheus scrape with the exposition text (undefined when Prometheus is off). */
  readonly prometheus: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
  /** Exports what is buffered and stops the SDK. */
  shutdown(): Promise<void>;
}

export interface TelemetryStartOptions {
  /** Serve the metrics to Prometheus (the caller mounts `prometheus` on the admin listener). */
  readonly prometheus?: boolean;
}

const OFF: Telemetry = { observer: undefined, meter: undefined, prometheus: undefined, shutdown: () => Promise.resolve() };

/** A positive whole number of milliseconds from the environment, else the default. */
function millisFrom(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const n = Number(env[name]);
  return Number.isFinite(n) && n > 0 ? n : fallback;
}

/**
 * The push readers OTEL_METRICS_EXPORTER asks for (otlp by default, console, none), each as the
 * SDK would build it from the environment: the OTLP protocol from OTEL_EXPORTER_OTLP_(METRICS_)
 * PROTOCOL, the period from OTEL_METRIC_EXPORT_INTERVAL and OTEL_METRIC_EXPORT_TIMEOUT. Used
 * when Prometheus is a reader too (the SDK takes either its own readers or those given).
 * `prometheus` in the variable is served on the admin listener, not on a port of its own.
 */
export function pushMetricReadersFromEnv(env: NodeJS.ProcessEnv, logger: Logger): MetricReader[] {
  const names = new Set((env.OTEL_METRICS_EXPORTER ?? '').split(',').map((n) => n.trim().toLowerCase()).filter((n) => n !== ''));
  if (names.size === 0) names.add('otlp');
  if (names.has('none')) return [];
  const intervalMs = millisFrom(env, 'OTEL_METRIC_EXPORT_INTERVAL', 60_000);
  const timeoutMs = Math.min(millisFrom(env, 'OTEL_METRIC_EXPORT_TIMEOUT', 30_000), intervalMs);
  const periodic = (exporter: PushMetricExporter) => new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: intervalMs, exportTimeoutMillis: timeoutMs });
  const readers: MetricReader[] = [];
  for (const name of names) {
    if (name === 'otlp') {
      const protocol = (env.OTEL_EXPORTER_OTLP_METRICS_PROTOCOL ?? env.OTEL_EXPORTER_OTLP_PROTOCOL ?? '').trim() || 'http/protobuf';
      if (protocol === 'grpc') readers.push(periodic(new GrpcMetricExporter()));
      else if (protocol === 'http/json') readers.push(periodic(new JsonMetricExporter()));
      else {
        if (protocol !== 'http/protobuf') logger.warn({ protocol }, 'unknown OTLP metrics protocol; using http/protobuf (the choices: grpc, http/json, http/protobuf)');
        readers.push(periodic(new ProtobufMetricExporter()));
      }
    } else if (name === 'console') {
      readers.push(periodic(new ConsoleMetricExporter()));
    } else if (name !== 'prometheus') {
      logger.warn({ exporter: name }, 'unknown OTEL_METRICS_EXPORTER value ignored (the choices: otlp, console, prometheus, none)');
    }
  }
  return readers;
}

/** Serves a Prometheus scrape from the reader, without a server of its own. */
function prometheusReader(): PrometheusExporter {
  // No target_info: the endpoint answers without authentication, and the resource (host,
  // process arguments) is not the scraper's business; Prometheus labels targets itself.
  return new PrometheusExporter({ preventServerStart: true, withoutTargetInfo: true });
}

export function startTelemetry(
  config: GatewayConfig['telemetry'],
  logger: Logger,
  version: string,
  env: NodeJS.ProcessEnv = process.env,
  options: TelemetryStartOptions = {},
): Telemetry {
  const otlp = telemetryEnabled(config.enabled, env);
  const prometheus = options.prometheus === true ? prometheusReader() : undefined;
  if (!otlp && !prometheus) return OFF;
  const serve = prometheus ? (req: IncomingMessage, res: ServerResponse) => prometheus.getMetricsRequestHandler(req, res) : undefined;
  if (otlp) {
    // Logs go to the gateway's own log, not through the SDK; no auto-instrumentation (the
    // gateway's own HTTP calls are not the user's database work).
    //
    // No context manager either: spans are parented explicitly (the session span, or the
    // caller's traceparent), never through the active context, and the default one
    // (AsyncLocalStorage) would add work to every asynchronous step of every session. The SDK
    // takes null as "register none".
    const sdk = new NodeSDK({
      ...(env.OTEL_SERVICE_NAME ? {} : { serviceName: config.serviceName }),
      instrumentations: [],
      logRecordProcessors: [],
      contextManager: null as unknown as undefined,
      // Given readers replace those the SDK would take from the environment: give it the same.
      ...(prometheus ? { metricReaders: [...pushMetricReadersFromEnv(env, logger), prometheus] } : {}),
    });
    let started = true;
    try {
      sdk.start();
    } catch (err) {
      started = false;
      logger.error({ err }, 'OpenTelemetry could not start; continuing without OTLP traces and metrics');
    }
    if (started) {
      logger.info(
        { endpoint: env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? env.OTEL_EXPORTER_OTLP_ENDPOINT ?? 'http://localhost:4318', protocol: env.OTEL_EXPORTER_OTLP_PROTOCOL ?? 'http/protobuf' },
        'OpenTelemetry traces and metrics are on',
      );
      return {
        observer: new TelemetryObserver({ version }),
        meter: metrics.getMeter('sluice', version),
        prometheus: serve,
        shutdown: async () => {
          try {
            await sdk.shutdown();
          } catch (err) {
            logger.warn({ err }, 'OpenTelemetry did not shut down cleanly');
          }
        },
      };
    }
    if (!prometheus) return OFF;
  }
  // Prometheus alone: a meter provider of its own, not registered globally; no tracer provider
  // (the observer's spans are the API's no-op ones and record nothing).
  const provider = new MeterProvider({ readers: [prometheus!] });
  const meter = provider.getMeter('sluice', version);
  return {
    observer: new TelemetryObserver({ version, meter }),
    meter,
    prometheus: serve,
    shutdown: async () => {
      try {
        await provider.shutdown();
      } catch (err) {
        logger.warn({ err }, 'the Prometheus metrics did not shut down cleanly');
      }
    },
  };
}
