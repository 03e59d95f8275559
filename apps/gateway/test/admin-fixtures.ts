import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  FileAuditStore,
  MemoryFailureLimiter,
  openApprovals,
  TokenAuthenticator,
  type Approvals,
  type ApproverSpec,
  type Identity,
  type ReviewInput,
} from '@sluice/core';
import { pino } from 'pino';
import { startAdminServer, type AdminServer } from '../src/admin/server.js';

/** Tokens of the test identities: alice asks, bob and carol (group dba) approve, dave is neither. */
export const TOKENS = {
  alice: 'alice-admin-token-0123456789',
  bob: 'bob-admin-token-0123456789',
  carol: 'carol-admin-token-0123456789',
  dave: 'dave-admin-token-0123456789',
} as const;

export const APPROVERS: ApproverSpec = { groups: ['dba'], subjects: [] };

export const IDENTITIES: Record<keyof typeof TOKENS, Identity> = {
  alice: { subject: 'alice@example.com', kind: 'human', groups: ['analysts'], method: 'token' },
  bob: { subject: 'bob@example.com', kind: 'human', groups: ['dba'], method: 'token' },
  carol: { subject: 'carol@example.com', kind: 'human', groups: ['dba', 'oncall'], method: 'token' },
  dave: { subject: 'dave@example.com', kind: 'human', groups: [], method: 'token' },
};

export interface AdminFixture {
  readonly dir: string;
  readonly approvals: Approvals;
  readonly audit: FileAuditStore;
  readonly server: AdminServer;
  readonly url: string;
  close(): Promise<void>;
}

/** The real approvals service (with a real audit store) behind a real admin server. */
export async function startAdminFixture(
  options: { limiter?: MemoryFailureLimiter; approvers?: ApproverSpec } = {},
): Promise<AdminFixture> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-admin-'));
  const logger = pino({ level: 'silent' });
  const audit = await FileAuditStore.open({ dir: join(dir, 'audit'), groupCommitMs: 5, logger });
  const approvers = options.approvers ?? APPROVERS;
  const approvals = await openApprovals({ dir: join(dir, 'approvals'), audit, logger, approvers });
  const authenticator = new TokenAuthenticator(
    (Object.keys(TOKENS) as (keyof typeof TOKENS)[]).map((name) => ({
      subject: IDENTITIES[name].subject,
      kind: IDENTITIES[name].kind,
      groups: [...IDENTITIES[name].groups],
      token: TOKENS[name],
    })),
  );
  const server = await startAdminServer({
    address: '127.0.0.1:0',
    approvals,
    authenticator,
    failureLimiter: options.limiter ?? new MemoryFailureLimiter({ maxAttempts: 1000, windowSeconds: 60, lockoutSeconds: 60 }),
    logger,
    approvers,
    targetNames: () => ['app', 'reporting'],
  });
  return {
    dir,
    approvals,
    audit,
    server,
    url: server.url,
    async close() {
      await server.close();
      await approvals.close();
      await audit.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

let statements = 0;

/** A review request as a session would submit it. */
export function reviewInput(overrides: Partial<ReviewInput> = {}): ReviewInput {
  statements += 1;
  const statement = overrides.statement ?? `DELETE FROM public.orders\n WHERE id = $1 AND note = 'x'`;
  const parameters = overrides.parameters ?? ['42'];
  return {
    dialect: 'postgres',
    sessionId: `s-test-${statements}`,
    statementId: `st-${statements}`,
    requester: IDENTITIES.alice,
    target: 'app',
    statement,
    normalized: 'DELETE FROM public.orders WHERE id = $1 AND note = $2',
    fingerprint: 'f00d',
    digest: createHash('sha256').update(statement).update(JSON.stringify(parameters)).digest('hex'),
    parameters,
    operations: ['write'],
    objects: [{ schema: 'public', name: 'orders', kind: 'table', access: 'write' }],
    hazards: [],
    rule: 'review-deletes',
    why: 'deletes on app need a second pair of eyes',
    approvers: APPROVERS,
    timeoutMs: 120_000,
    ...overrides,
  };
}

export interface ApiAnswer {
  readonly status: number;
  readonly headers: Headers;
  readonly json: any;
  readonly text: string;
}

/** One call to the admin API; `token` names a test identity or is a raw secret. */
export async function api(
  base: string,
  method: string,
  path: string,
  options: { token?: keyof typeof TOKENS | { raw: string }; body?: unknown; rawBody?: string } = {},
): Promise<ApiAnswer> {
  const headers: Record<string, string> = {};
  if (options.token !== undefined) {
    headers.authorization = `Bearer ${typeof options.token === 'string' ? TOKENS[options.token] : options.token.raw}`;
  }
  let body: string | undefined;
  if (options.rawBody !== undefined) body = options.rawBody;
  else if (options.body !== undefined) body = JSON.stringify(options.body);
  if (body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(`${base}${path}`, { method, headers, ...(body !== undefined ? { body } : {}) });
  const text = await response.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: response.status, headers: response.headers, json, text };
}
