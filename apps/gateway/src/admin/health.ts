/**
 * Health for probes and load balancers, answered on the admin listener without authentication:
 *
 *   GET /healthz  liveness: 200 {"status":"ok"} whenever the process and its event loop answer.
 *   GET /readyz   readiness: 200 when every check passes; 503 naming each failing check and what
 *                 to do. A check is a name and a function answering undefined (ready) or a
 *                 message (not ready); one that throws or does not answer in time is not ready.
 *
 * The answers are read by anyone who can reach the admin listener: messages say what is wrong
 * and what to do, never a credential (URL passwords are removed from every message).
 *
 * The gateway's own gauges for Prometheus and OTLP are registered here too (gatewayGauges).
 */
import type { Meter } from '@opentelemetry/api';
import { redactUrlPassword } from '@sluice/core';

/** One readiness check: undefined when ready, else what is wrong and what to do. */
export interface ReadinessCheck {
  readonly name: string;
  check(): Promise<string | undefined> | string | undefined;
}

export interface ReadinessReport {
  readonly ready: boolean;
  /** Every check by name: `ok`, or what is wrong. */
  readonly checks: Readonly<Record<string, string>>;
}

/** Longest wait for one check; one that takes longer is not ready. */
export const READINESS_CHECK_TIMEOUT_MS = 3_000;

/** Runs every check at once, each bounded by `timeoutMs`. */
export async function evaluateReadiness(checks: readonly ReadinessCheck[], timeoutMs = READINESS_CHECK_TIMEOUT_MS): Promise<ReadinessReport> {
  const results = await Promise.all(
    checks.map(async (c): Promise<[string, string | undefined]> => {
      let timer: NodeJS.Timeout | undefined;
      try {
        const late = new Promise<string>((resolve) => {
          timer = setTimeout(() => resolve(`did not answer within ${timeoutMs} ms; check the gateway log`), timeoutMs);
          timer.unref();
        });
        return [c.name, await Promise.race([Promise.resolve().then(() => c.check()), late])];
      } catch (err) {
        return [c.name, `the check failed: ${(err as Error)?.message ?? String(err)}; check the gateway log`];
      } finally {
        clearTimeout(timer);
      }
    }),
  );
  const out: Record<string, string> = {};
  let ready = true;
  for (const [name, problem] of results) {
    if (problem === undefined) out[name] = 'ok';
    else {
      ready = false;
      out[name] = redactUrlPassword(problem);
    }
  }
  return { ready, checks: out };
}

/** The body of a /readyz answer. */
export function readinessBody(report: ReadinessReport): { status: 'ok' | 'unavailable'; checks: Readonly<Record<string, string>> } {
  return { status: report.ready ? 'ok' : 'unavailable', checks: report.checks };
}

export interface GatewayGaugeSources {
  /** 1 while the audit store accepts records. */
  readonly auditHealthy: () => boolean;
  /** Review requests waiting for a decision. */
  readonly pendingApprovals: () => number;
  /** Whether each dialect's listener accepts connections. */
  readonly listeners: () => ReadonlyArray<{ readonly dialect: string; readonly accepting: boolean }>;
}

/**
 * Gauges an operator alerts on, read when metrics are collected (nothing is done per statement):
 * `sluice.audit.healthy` (0/1), `sluice.approvals.pending`, `sluice.listener.accepting` (0/1 per
 * dialect). Sessions per dialect are `sluice.sessions.active` (by db.system.name).
 */
export function registerGatewayGauges(meter: Meter, sources: GatewayGaugeSources): void {
  meter
    .createObservableGauge('sluice.audit.healthy', { description: 'Whether the audit store accepts records (1) or refuses them, so statements are refused (0)' })
    .addCallback((r) => r.observe(sources.auditHealthy() ? 1 : 0));
  meter
    .createObservableGauge('sluice.approvals.pending', { description: 'Review requests waiting for a decision' })
    .addCallback((r) => r.observe(sources.pendingApprovals()));
  meter
    .createObservableGauge('sluice.listener.accepting', { description: 'Whether a listener accepts new connections (1) or not (0)' })
    .addCallback((r) => {
      for (const l of sources.listeners()) r.observe(l.accepting ? 1 : 0, { 'sluice.dialect': l.dialect });
    });
}
