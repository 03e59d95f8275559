/**
 * The OpenTelemetry SDK, owned by the app: started only when telemetry is on, configured from
 * the standard OTEL_* environment variables (exporters, endpoints, protocol, headers, resource
 * attributes, sampling). Packages use @opentelemetry/api only; with the SDK off their calls are
 * never made (the governor has no telemetry observer), so off costs nothing.
 */
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
  /** The governance observer (undefined when telemetry is off). */
  readonly observer: TelemetryObserver | undefined;
  /** Exports what is buffered and stops the SDK. */
  shutdown(): Promise<void>;
}

const OFF: Telemetry = { observer: undefined, shutdown: () => Promise.resolve() };

export function startTelemetry(config: GatewayConfig['telemetry'], logger: Logger, version: string, env: NodeJS.ProcessEnv = process.env): Telemetry {
  if (!telemetryEnabled(config.enabled, env)) return OFF;
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
  });
  try {
    sdk.start();
  } catch (err) {
    logger.error({ err }, 'OpenTelemetry could not start; continuing without traces and metrics');
    return OFF;
  }
  logger.info(
    { endpoint: env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? env.OTEL_EXPORTER_OTLP_ENDPOINT ?? 'http://localhost:4318', protocol: env.OTEL_EXPORTER_OTLP_PROTOCOL ?? 'http/protobuf' },
    'OpenTelemetry traces and metrics are on',
  );
  return {
    observer: new TelemetryObserver({ version }),
    shutdown: async () => {
      try {
        await sdk.shutdown();
      } catch (err) {
        logger.warn({ err }, 'OpenTelemetry did not shut down cleanly');
      }
    },
  };
}
