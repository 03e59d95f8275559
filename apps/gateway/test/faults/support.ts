/**
 * Shared pieces of the fault and load tests: the built gateway CLI as a child process in front
 * of throwaway servers, with its config, audit trail and approvals journal in a temp dir.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli, startCli, type RunningCli } from '../helpers.js';

/** The service identity the load runs as (allowed everything but guardrail-blocked statements). */
export const LOADER = { subject: 'loader@example.com', token: 'loader-fault-token-0123456789' } as const;
/** An identity whose writes are held for review, and the approver who could decide them. */
export const REQUESTER = { subject: 'requester@example.com', token: 'requester-fault-token-0123456789' } as const;
export const APPROVER = { subject: 'approver@example.com', token: 'approver-fault-token-0123456789' } as const;

export interface GatewayOptions {
  /** PostgreSQL upstream URL (target `pg`). */
  readonly postgres?: string;
  /** MySQL upstream URL (target `my`). */
  readonly mysql?: string;
  /** Admin API on this loopback port (a fixed port: the approvals CLI reads it from the config). */
  readonly adminPort?: number;
  /** Extra top-level YAML (e.g. an `audit:` section). */
  readonly rest?: string;
  /** Reuse this directory (a restart on the same audit trail); default a new temp dir. */
  readonly dir?: string;
  /** Environment of the gateway process. */
  readonly env?: NodeJS.ProcessEnv;
}

export interface GatewayProcess {
  readonly dir: string;
  readonly file: string;
  readonly cli: RunningCli;
  readonly pid: number;
  /** Port of the PostgreSQL listener (0 when there is none). */
  readonly pgPort: number;
  /** Port of the MySQL listener (0 when there is none). */
  readonly myPort: number;
  /** Base URL of the admin API, when asked for. */
  readonly adminUrl: string | undefined;
  readonly auditDir: string;
}

export function gatewayYaml(options: GatewayOptions): string {
  const listen: string[] = [];
  const targets: string[] = [];
  if (options.postgres) {
    listen.push('  postgres: 127.0.0.1:0');
    targets.push(`  - name: pg\n    dialect: postgres\n    upstream: ${options.postgres}`);
  }
  if (options.mysql) {
    listen.push('  mysql: 127.0.0.1:0');
    targets.push(`  - name: my\n    dialect: mysql\n    upstream: ${options.mysql}`);
  }
  return `listen:
${listen.join('\n')}
allowPlaintextLoopback: true
targets:
${targets.join('\n')}
identities:
  tokens:
    - { subject: ${LOADER.subject}, kind: service, groups: [loaders], token: ${LOADER.token} }
    - { subject: ${REQUESTER.subject}, kind: human, groups: [requesters], token: ${REQUESTER.token} }
    - { subject: ${APPROVER.subject}, kind: human, groups: [approvers], token: ${APPROVER.token} }
  failedLogins:
    maxAttempts: 1000000
policy:
  rules:
    - name: loaders-all
      identities: { groups: [loaders] }
      operations: [read, write, ddl, transaction, session-setting]
      effect: allow
    - name: requesters-read
      identities: { groups: [requesters] }
      operations: [read, transaction, session-setting]
      effect: allow
    - name: requester-writes-reviewed
      identities: { groups: [requesters] }
      operations: [write]
      effect: review
approvals:
  dir: ./approvals
  approvers: { groups: [approvers] }
${options.adminPort ? `admin: 127.0.0.1:${options.adminPort}\n` : ''}lineage:
  enabled: false
telemetry:
  enabled: false
pidFile: ./run/gw.pid
log:
  level: warn
${options.rest ?? ''}`;
}

/** Writes the config and starts the built gateway; resolves once it listens. */
export async function startGatewayProcess(options: GatewayOptions): Promise<GatewayProcess> {
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'sluice-fault-'));
  const file = join(dir, 'sluice.yaml');
  writeFileSync(file, gatewayYaml(options));
  const cli = startCli(['start', '--config', file], { ...options.env });
  const out = await cli.waitFor(options.adminPort ? /admin API on \S+/ : /listening on .*\n/, 60_000);
  const pg = /postgres 127\.0\.0\.1:(\d+)/.exec(out);
  const my = /mysql 127\.0\.0\.1:(\d+)/.exec(out);
  const admin = /admin API on (\S+)/.exec(out);
  return {
    dir,
    file,
    cli,
    pid: cli.child.pid!,
    pgPort: pg ? Number(pg[1]) : 0,
    myPort: my ? Number(my[1]) : 0,
    adminUrl: admin ? admin[1]!.replace(/\/$/, '') : undefined,
    auditDir: join(dir, '.sluice', 'audit'),
  };
}

/** node-postgres options for a session through the gateway as `who`. */
export function pgClientOptions(gw: GatewayProcess, who: { subject: string; token: string } = LOADER) {
  return {
    host: '127.0.0.1',
    port: gw.pgPort,
    database: 'pg',
    user: who.subject,
    password: who.token,
    connectionTimeoutMillis: 20_000,
  };
}

/** mysql2 options for a session through the gateway as `who`. */
export function myClientOptions(gw: GatewayProcess, who: { subject: string; token: string } = LOADER) {
  return {
    host: '127.0.0.1',
    port: gw.myPort,
    user: who.subject,
    password: who.token,
    database: 'my',
    connectTimeout: 20_000,
    authPlugins: { mysql_clear_password: () => () => Buffer.from(`${who.token}\0`) },
  };
}

export interface AuditLine {
  readonly type: string;
  readonly phase?: string;
  readonly text?: string;
  readonly outcome?: string;
  readonly action?: string;
  readonly requestId?: string;
  readonly sessionId?: string;
  readonly reason?: string;
  readonly seq: number;
}

/**
 * The records in the audit directory, read straight from the segment files; a last line
 * without its newline (a write cut off by a crash) is left out and counted.
 */
export function readAuditDir(dir: string): { records: AuditLine[]; torn: number } {
  const records: AuditLine[] = [];
  let torn = 0;
  if (!existsSync(dir)) return { records, torn };
  const files = readdirSync(dir)
    .filter((f) => /^audit-\d+\.jsonl$/.test(f))
    .sort();
  for (const f of files) {
    const text = readFileSync(join(dir, f), 'utf8');
    const lines = text.split('\n');
    const last = lines.pop();
    if (last !== undefined && last !== '') torn++;
    for (const l of lines) if (l !== '') records.push(JSON.parse(l) as AuditLine);
  }
  return { records, torn };
}

/** `sluice audit verify --config FILE`, run as a separate process. */
export function verifyAudit(file: string): { code: number | null; stdout: string; stderr: string } {
  return runCli(['audit', 'verify', '--config', file]);
}

/** Polls `check` until it returns true, or fails after `timeoutMs` with `what`. */
export async function waitUntil(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<number> {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return Date.now() - started;
}

/** A promise that settles within `ms` or rejects saying it hung. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
    }),
  ]);
}

/** Resident set size of a process in kB, from /proc (undefined once it is gone). */
export function rssKb(pid: number): number | undefined {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}
