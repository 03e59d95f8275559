import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SecureContext } from 'node:tls';
import {
  CompositeAuthenticator,
  type Dialect,
  type DialectListener,
  FileAuditStore,
  Governor,
  type IdentityKind,
  MemoryFailureLimiter,
  OidcAuthenticator,
  readAuditRecords,
  type AuditRecord,
  type Target,
  TokenAuthenticator,
  GUARDRAIL_NAMES,
  Policy,
  policySchema,
  compileMasking,
  maskingSchema,
  type MaskingRuntime,
  type Logger,
  openApprovals,
  type Approvals,
  type NotifierConfig,
  type SessionLimitsConfig,
} from '@sluice/core';
import { pino } from 'pino';

export interface HarnessToken {
  readonly subject: string;
  readonly kind: IdentityKind;
  readonly groups?: readonly string[];
  readonly token: string;
  readonly expiresAt?: string;
}

export interface HarnessOptions<TOptions> {
  readonly dialect: Dialect<TOptions>;
  /** Targets by name: the dialect-specific options as they would appear in the config. */
  readonly targets: Readonly<Record<string, unknown>>;
  readonly tokens: readonly HarnessToken[];
  readonly oidc?: readonly { issuer: string; audience: string; groupsClaim?: string; usernameClaim?: string }[];
  readonly tls?: SecureContext;
  readonly requireTls?: boolean;
  /** Loopback clients may send tokens in clear without TLS (MySQL). Default true in tests. */
  readonly allowPlaintextLoopback?: boolean;
  readonly maxMessageBytes?: number;
  readonly authTimeoutMs?: number;
  /** Connection and statement-rate limits and idle timeouts, as the `limits:` section of the config. */
  readonly limits?: SessionLimitsConfig & { readonly idleSessionTimeoutMs?: number; readonly idleInTransactionTimeoutMs?: number };
  readonly failedLogins?: { maxAttempts: number; windowSeconds: number; lockoutSeconds: number };
  readonly groupCommitMs?: number;
  readonly auditDir?: string;
  /** Audit segment size (small values force rotation, for fault tests). */
  readonly auditSegmentBytes?: number;
  /**
   * The `policy:` section as in the YAML config. Without it the harness allows every statement
   * and switches every guardrail off: protocol tests exercise the relay, not the policy.
   */
  readonly policy?: unknown;
  /** The `masking:` section as in the YAML config; without it nothing is masked. */
  readonly masking?: unknown;
  /** Turns inline approvals on (a journal in a temporary directory). */
  readonly approvals?: {
    readonly approvers: { readonly groups?: readonly string[]; readonly subjects?: readonly string[] };
    readonly timeoutMs?: number;
    readonly notifiers?: readonly NotifierConfig[];
  };
}

/** The harness's policy when a test gives none: everything allowed, no guardrail. */
export const PERMISSIVE_POLICY = {
  rules: [{ name: 'harness-allow-all', effect: 'allow', guardrails: Object.fromEntries(GUARDRAIL_NAMES.map((g) => [g, 'off'])) }],
};

export interface TestGateway {
  readonly host: string;
  readonly port: number;
  readonly auditDir: string;
  readonly governor: Governor;
  readonly listener: DialectListener;
  /** The approvals service, when `approvals` was given. */
  readonly approvals: Approvals | undefined;
  /** Flushes the audit store and returns every record so far. */
  auditRecords(): Promise<AuditRecord[]>;
  /** Stops accepting and ends the sessions (with `graceMs`, as a graceful shutdown), then closes the audit store. */
  close(options?: { readonly graceMs?: number }): Promise<void>;
}

/**
 * Runs one dialect behind the real core pipeline (token and OIDC identity, the embedded
 * hash-chained audit store) on a loopback port, without the app. Plugin authors use it to test
 * a dialect; the conformance suite is built on it.
 */
/** The harness's masking runtime from a `masking:` section (none when absent or `enabled: false`). */
function maskingOf(raw: unknown, logger: Logger): { masking?: MaskingRuntime } {
  if (raw === undefined) return {};
  const config = maskingSchema.parse(raw);
  return config.enabled === false ? {} : { masking: compileMasking(config, { logger }) };
}

export async function startTestGateway<TOptions>(options: HarnessOptions<TOptions>): Promise<TestGateway> {
  const ownsDir = options.auditDir === undefined;
  const auditDir = options.auditDir ?? (await mkdtemp(join(tmpdir(), 'sluice-audit-')));
  const logger = pino({ level: process.env.SLUICE_TEST_LOG ?? 'silent' });
  const audit = await FileAuditStore.open({ dir: auditDir, groupCommitMs: options.groupCommitMs ?? 10, logger, ...(options.auditSegmentBytes ? { segmentBytes: options.auditSegmentBytes } : {}) });
  const tokens = options.tokens.map((t) => ({
    subject: t.subject,
    kind: t.kind,
    groups: [...(t.groups ?? [])],
    token: t.token,
    ...(t.expiresAt ? { expiresAt: t.expiresAt } : {}),
  }));
  const oidc = (options.oidc ?? []).map((o) => ({
    issuer: o.issuer,
    audience: o.audience,
    groupsClaim: o.groupsClaim ?? 'groups',
    usernameClaim: o.usernameClaim ?? 'sub',
  }));
  const approverSpec = {
    groups: [...(options.approvals?.approvers.groups ?? [])],
    subjects: [...(options.approvals?.approvers.subjects ?? [])],
  };
  const approvalsDir = options.approvals ? await mkdtemp(join(tmpdir(), 'sluice-approvals-')) : undefined;
  const approvals =
    options.approvals && approvalsDir
      ? await openApprovals({ dir: approvalsDir, audit, logger, approvers: approverSpec, notifiers: options.approvals.notifiers ?? [] })
      : undefined;
  const governor = new Governor({
    policy: new Policy(policySchema.parse(options.policy ?? PERMISSIVE_POLICY), { approvers: approverSpec }),
    ...(approvals ? { approvals } : {}),
    ...(options.approvals?.timeoutMs !== undefined ? { reviewTimeoutMs: options.approvals.timeoutMs } : {}),
    ...(maskingOf(options.masking, logger)),
    authenticator: new CompositeAuthenticator({
      tokens: new TokenAuthenticator(tokens as never),
      ...(oidc.length ? { oidc: new OidcAuthenticator(oidc as never) } : {}),
    }),
    audit,
    failureLimiter: new MemoryFailureLimiter(options.failedLogins ?? { maxAttempts: 1000, windowSeconds: 60, lockoutSeconds: 60 }),
    logger,
    ...(options.limits ? { limits: options.limits } : {}),
  });
  const targets = new Map<string, Target<TOptions>>();
  for (const [name, raw] of Object.entries(options.targets)) {
    targets.set(name, { name, dialect: options.dialect.name, options: options.dialect.targetOptions.parse(raw) });
  }
  const listener = options.dialect.createListener({
    governor,
    logger,
    resolveTarget: (name) => targets.get(name),
    targetNames: () => [...targets.keys()],
    tls: options.tls,
    requireTls: options.requireTls ?? false,
    allowPlaintextLoopback: options.allowPlaintextLoopback ?? true,
    limits: {
      maxMessageBytes: options.maxMessageBytes ?? 1 << 20,
      authTimeoutMs: options.authTimeoutMs ?? 5000,
      ...(options.limits?.idleSessionTimeoutMs !== undefined ? { idleSessionTimeoutMs: options.limits.idleSessionTimeoutMs } : {}),
      ...(options.limits?.idleInTransactionTimeoutMs !== undefined ? { idleInTransactionTimeoutMs: options.limits.idleInTransactionTimeoutMs } : {}),
    },
  });
  const server = net.createServer({ noDelay: true }, (s) => listener.accept(s));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    host: '127.0.0.1',
    port,
    auditDir,
    governor,
    listener,
    approvals,
    async auditRecords() {
      await audit.flush();
      const out: AuditRecord[] = [];
      for await (const r of readAuditRecords(auditDir)) out.push(r);
      return out;
    },
    async close(closeOptions) {
      server.close();
      await listener.close(closeOptions);
      await approvals?.close();
      await audit.close();
      if (approvalsDir) await rm(approvalsDir, { recursive: true, force: true });
      if (ownsDir) await rm(auditDir, { recursive: true, force: true });
    },
  };
}
