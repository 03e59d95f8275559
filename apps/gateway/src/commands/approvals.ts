import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { ApprovalRequest, ApproverSpec, AuditActor, Grant, ObjectRef } from '@sluice/core';
import { AdminApiError, AdminClient, AdminUnreachableError } from '../admin/client.js';
import { ConfigError, loadConfig } from '../config/load.js';
import { dialects } from '../dialects.js';
import { noPositionals, UsageError } from './run.js';
import { loadOrReport } from './start.js';

/** Where `sluice approvals` looks for the admin API when nothing says otherwise. */
export const DEFAULT_ADMIN_URL = 'http://127.0.0.1:7070';
/** The demo's config, relative to the current directory (`sluice demo` writes it). */
export const DEMO_CONFIG = join('.sluice', 'demo', 'sluice.yaml');

const COMMON = {
  admin: { type: 'string' },
  config: { type: 'string', short: 'c' },
  token: { type: 'string' },
  json: { type: 'boolean' },
} as const;

const SUBCOMMANDS = 'list, show, approve, reject, grant, grants or revoke';

/** `sluice approvals ...`: review requests and grants, through the gateway's admin API. */
export async function approvalsCommand(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  switch (sub) {
    case 'list': {
      const { values, positionals } = parseArgs({
        args: rest,
        allowPositionals: true,
        options: { ...COMMON, all: { type: 'boolean' }, target: { type: 'string' } },
      });
      noPositionals(positionals);
      return withClient(values, async (client) => {
        const list = await client.listApprovals({ status: values.all ? 'all' : 'pending', ...(values.target ? { target: values.target } : {}) });
        if (values.json) return printJson(list);
        if (list.length === 0) {
          out(values.all ? 'no review requests\n' : 'no pending review requests (sluice approvals list --all shows decided ones too)\n');
          return 0;
        }
        const now = Date.now();
        out(
          table(
            ['ID', 'AGE', 'REQUESTER', 'TARGET', 'RULE', 'STATUS', 'STATEMENT'],
            list.map((r) => [r.id, age(r.createdAt, now), r.requester.subject, r.target, r.rule, r.status, oneLine(r.statement, 70)]),
          ),
        );
        return 0;
      });
    }
    case 'show': {
      const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: COMMON });
      const id = onePositional(positionals, 'ID', 'sluice approvals show ID');
      return withClient(values, async (client) => {
        const r = await client.getApproval(id);
        if (values.json) return printJson(r);
        out(describeRequest(r, Date.now()));
        return 0;
      });
    }
    case 'approve': {
      const { values, positionals } = parseArgs({
        args: rest,
        allowPositionals: true,
        options: { ...COMMON, reason: { type: 'string' }, grant: { type: 'string' } },
      });
      const id = onePositional(positionals, 'ID', 'sluice approvals approve ID [--reason TEXT] [--grant 2h]');
      const grantMinutes = values.grant !== undefined ? parseMinutes(values.grant, '--grant') : undefined;
      return withClient(values, async (client) => {
        const r = await client.approve(id, {
          ...(values.reason !== undefined ? { reason: values.reason } : {}),
          ...(grantMinutes !== undefined ? { grantMinutes } : {}),
        });
        if (values.json) return printJson(r);
        const grant = r.grantId !== undefined ? `; granted ${r.requester.subject} the same for ${formatMinutes(grantMinutes ?? 0)} as ${r.grantId}` : '';
        out(`approved ${r.id} (${r.requester.subject} on ${r.target}): the held statement may now run${grant}\n`);
        return 0;
      });
    }
    case 'reject': {
      const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: { ...COMMON, reason: { type: 'string' } } });
      const id = onePositional(positionals, 'ID', 'sluice approvals reject ID [--reason TEXT]');
      return withClient(values, async (client) => {
        const r = await client.reject(id, values.reason !== undefined ? { reason: values.reason } : {});
        if (values.json) return printJson(r);
        out(`rejected ${r.id} (${r.requester.subject} on ${r.target}): the statement was refused${r.decisionReason ? `: ${r.decisionReason}` : ''}\n`);
        return 0;
      });
    }
    case 'grant': {
      const { values, positionals } = parseArgs({
        args: rest,
        allowPositionals: true,
        options: {
          ...COMMON,
          subject: { type: 'string' },
          operations: { type: 'string', multiple: true },
          target: { type: 'string', multiple: true },
          objects: { type: 'string', multiple: true },
          guardrails: { type: 'string', multiple: true },
          for: { type: 'string' },
          reason: { type: 'string' },
        },
      });
      noPositionals(positionals);
      if (!values.subject) throw new UsageError('approvals grant needs --subject S (who the grant is for)');
      const operations = list(values.operations);
      if (operations.length === 0) throw new UsageError('approvals grant needs --operations, for example --operations write,ddl');
      if (!values.for) throw new UsageError('approvals grant needs --for, for example --for 2h (at most 30d)');
      const minutes = parseMinutes(values.for, '--for');
      const targets = list(values.target);
      const objects = list(values.objects);
      const guardrails = list(values.guardrails);
      return withClient(values, async (client) => {
        const g = await client.createGrant({
          subject: values.subject!,
          operations,
          minutes,
          ...(targets.length > 0 ? { targets } : {}),
          ...(objects.length > 0 ? { objects } : {}),
          ...(guardrails.length > 0 ? { guardrails } : {}),
          ...(values.reason !== undefined ? { reason: values.reason } : {}),
        });
        if (values.json) return printJson(g);
        out(`granted ${g.id} to ${g.subject}: ${describeGrantScope(g)}, until ${g.expiresAt} (${formatMinutes(minutes)})\n`);
        return 0;
      });
    }
    case 'grants': {
      const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: { ...COMMON, all: { type: 'boolean' } } });
      noPositionals(positionals);
      return withClient(values, async (client) => {
        const grants = await client.listGrants({ all: values.all ?? false });
        if (values.json) return printJson(grants);
        if (grants.length === 0) {
          out(values.all ? 'no grants\n' : 'no grants in force (sluice approvals grants --all shows ended ones too)\n');
          return 0;
        }
        const now = Date.now();
        out(
          table(
            ['ID', 'SUBJECT', 'TARGETS', 'OPERATIONS', 'OBJECTS', 'GUARDRAILS', 'ENDS', 'GRANTED BY'],
            grants.map((g) => [
              g.id,
              g.subject,
              g.targets.length > 0 ? g.targets.join(',') : '*',
              g.operations.join(','),
              g.objects.length > 0 ? g.objects.join(',') : '*',
              g.guardrails.length > 0 ? g.guardrails.join(',') : '-',
              grantEnd(g, now),
              g.grantedBy.subject,
            ]),
          ),
        );
        return 0;
      });
    }
    case 'revoke': {
      const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: COMMON });
      const id = onePositional(positionals, 'GRANT_ID', 'sluice approvals revoke GRANT_ID');
      return withClient(values, async (client) => {
        const g = await client.revokeGrant(id);
        if (values.json) return printJson(g);
        out(`revoked ${g.id} (${g.subject}: ${describeGrantScope(g)})\n`);
        return 0;
      });
    }
    case undefined:
      throw new UsageError(`approvals needs a command: ${SUBCOMMANDS}`);
    default:
      throw new UsageError(`unknown approvals command "${sub}" (expected ${SUBCOMMANDS})`);
  }
}

interface CommonValues {
  readonly admin?: string | undefined;
  readonly config?: string | undefined;
  readonly token?: string | undefined;
}

/** Finds the API and the credential, runs `body`, and turns API and network errors into exit 1. */
async function withClient(values: CommonValues, body: (client: AdminClient) => Promise<number>): Promise<number> {
  const token = values.token ?? process.env.SLUICE_TOKEN;
  if (token === undefined || token === '') {
    throw new UsageError(
      'no credential for the admin API: pass --token SECRET or set SLUICE_TOKEN to a service token or an OIDC token of an identity in the gateway config',
    );
  }
  const url = resolveAdminUrl(values);
  if (url === undefined) return 1;
  try {
    return await body(new AdminClient(url, token));
  } catch (err) {
    if (err instanceof AdminApiError || err instanceof AdminUnreachableError) {
      process.stderr.write(`sluice: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}

/**
 * The admin API's base URL: --admin, else `admin` of --config, else `admin` of the demo's
 * config in the current directory, else http://127.0.0.1:7070. Undefined (after printing why)
 * when --config cannot be used.
 */
export function resolveAdminUrl(values: CommonValues, cwd = process.cwd()): string | undefined {
  if (values.admin !== undefined && values.admin !== '') return adminUrl(values.admin);
  if (values.config !== undefined && values.config !== '') {
    const loaded = loadOrReport(values.config, { allowUnsetEnv: true });
    if (!loaded) return undefined;
    if (loaded.config.admin === undefined) {
      process.stderr.write(
        `sluice: ${values.config} has no admin address, so the gateway serves no admin API: add for example "admin: 127.0.0.1:7070" and restart it, or pass --admin URL\n`,
      );
      return undefined;
    }
    return adminUrl(loaded.config.admin);
  }
  const demo = join(cwd, DEMO_CONFIG);
  if (existsSync(demo)) {
    try {
      const admin = loadConfig(demo, dialects, process.env, { allowUnsetEnv: true }).config.admin;
      if (admin !== undefined) return adminUrl(admin);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
    }
  }
  return DEFAULT_ADMIN_URL;
}

/** A URL from --admin or a config's `host:port`; a wildcard listen address is reached on loopback. */
export function adminUrl(value: string): string {
  const invalid = () => new UsageError(`--admin must be a URL such as http://127.0.0.1:7070 or host:port, got "${value}"`);
  if (/^https?:\/\//i.test(value)) {
    if (!URL.canParse(value)) throw invalid();
    return value.replace(/\/+$/, '');
  }
  const at = value.lastIndexOf(':');
  if (at <= 0) throw invalid();
  let host = value.slice(0, at).replace(/^\[|\]$/g, '');
  const port = value.slice(at + 1);
  if (!/^\d{1,5}$/.test(port) || Number(port) > 65535) throw invalid();
  if (host === '0.0.0.0') host = '127.0.0.1';
  else if (host === '::') host = '::1';
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** 30m, 2h, 1d (also 90min, 1w) as minutes. */
export function parseMinutes(value: string, option: string): number {
  const m = /^(\d+)\s*(m|min|h|d|w)$/.exec(value.trim());
  const n = m ? Number(m[1]) : NaN;
  if (!m || !Number.isSafeInteger(n) || n <= 0) {
    throw new UsageError(`${option} takes a duration such as 30m, 2h or 1d, got "${value}"`);
  }
  const per = { m: 1, min: 1, h: 60, d: 1440, w: 10080 }[m[2] as 'm' | 'min' | 'h' | 'd' | 'w'];
  return n * per;
}

function formatMinutes(minutes: number): string {
  if (minutes % 1440 === 0) return `${minutes / 1440}d`;
  if (minutes % 60 === 0) return `${minutes / 60}h`;
  return `${minutes}m`;
}

function onePositional(positionals: readonly string[], name: string, usage: string): string {
  if (positionals.length === 0) throw new UsageError(`missing ${name}: ${usage}`);
  if (positionals.length > 1) throw new UsageError(`unexpected argument "${positionals[1]}"`);
  return positionals[0]!;
}

/** Values of a repeatable, comma-separated option. */
function list(values: readonly string[] | undefined): string[] {
  return (values ?? []).flatMap((v) => v.split(',')).map((v) => v.trim()).filter((v) => v !== '');
}

function out(text: string): void {
  process.stdout.write(text);
}

function printJson(value: unknown): number {
  out(`${JSON.stringify(value, null, 2)}\n`);
  return 0;
}

function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return `${[line(header), ...rows.map(line)].join('\n')}\n`;
}

/** Whitespace runs (newlines included) as one space, cut to `max` characters. */
function oneLine(text: string, max: number): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

/** How long ago, compactly: 45s, 12m, 3h, 2d. */
function age(iso: string, now: number): string {
  return span(now - Date.parse(iso));
}

function span(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86_400)}d`;
}

/** An ISO time followed by how far it is from now. */
function when(iso: string, now: number): string {
  const delta = Date.parse(iso) - now;
  if (Number.isNaN(delta)) return iso;
  return `${iso} (${delta >= 0 ? `in ${span(delta)}` : `${span(-delta)} ago`})`;
}

function actor(a: AuditActor): string {
  return `${a.subject} (${a.kind}${a.groups.length > 0 ? `, groups ${a.groups.join(', ')}` : ''})`;
}

function spec(s: ApproverSpec): string {
  const parts: string[] = [];
  if (s.groups.length > 0) parts.push(`groups ${s.groups.join(', ')}`);
  if (s.subjects.length > 0) parts.push(`subjects ${s.subjects.join(', ')}`);
  return parts.join('; ') || '(none)';
}

function objectName(o: ObjectRef): string {
  const name = o.schema !== undefined ? `${o.schema}.${o.name}` : o.name;
  return `${name} (${o.kind}, ${o.access}${o.columns && o.columns.length > 0 ? `: ${o.columns.join(', ')}` : ''})`;
}

/** Every field of a request, with the exact statement and its parameters. */
export function describeRequest(r: ApprovalRequest, now: number): string {
  const rows: [string, string][] = [
    ['id', r.id],
    ['status', r.status],
    ['requester', actor(r.requester)],
    ['target', `${r.target} (${r.dialect})`],
    ['created', when(r.createdAt, now)],
    ['expires', when(r.expiresAt, now)],
    ['rule', r.rule],
    ['why', r.why],
  ];
  if (r.reason !== undefined) rows.push(['client reason', r.reason]);
  rows.push(
    ['operations', r.operations.join(', ') || '(none)'],
    ['objects', r.objects.map(objectName).join('; ') || '(none)'],
    ['hazards', r.hazards.join(', ') || '(none)'],
    ['approvers', spec(r.approvers)],
  );
  if (r.decidedAt !== undefined) rows.push(['decided', when(r.decidedAt, now)]);
  if (r.decidedBy !== undefined) rows.push(['decided by', actor(r.decidedBy)]);
  if (r.decisionReason !== undefined) rows.push(['decision reason', r.decisionReason]);
  if (r.grantId !== undefined) rows.push(['grant', r.grantId]);
  rows.push(['session', r.sessionId], ['statement id', r.statementId], ['fingerprint', r.fingerprint], ['digest', r.digest]);
  const width = Math.max(...rows.map(([k]) => k.length)) + 1;
  let text = rows.map(([k, v]) => `${`${k}:`.padEnd(width)} ${v}`).join('\n');
  text += `\nstatement:\n${indent(r.statement)}\n`;
  if (r.normalized !== r.statement) text += `normalized:\n${indent(r.normalized)}\n`;
  if (r.parameters !== undefined && r.parameters.length > 0) {
    text += `parameters:\n${r.parameters.map((p, i) => `  $${i + 1} = ${p === null ? 'NULL' : JSON.stringify(p)}`).join('\n')}\n`;
  }
  return text;
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n');
}

function describeGrantScope(g: Grant): string {
  const parts = [g.operations.join(', ')];
  parts.push(g.targets.length > 0 ? `on ${g.targets.join(', ')}` : 'on every target');
  if (g.objects.length > 0) parts.push(`objects ${g.objects.join(', ')}`);
  if (g.guardrails.length > 0) parts.push(`lifting ${g.guardrails.join(', ')}`);
  return parts.join(' ');
}

function grantEnd(g: Grant, now: number): string {
  if (g.revokedAt !== undefined) return `revoked ${span(now - Date.parse(g.revokedAt))} ago`;
  const left = Date.parse(g.expiresAt) - now;
  return left > 0 ? `in ${span(left)}` : `ended ${span(-left)} ago`;
}
