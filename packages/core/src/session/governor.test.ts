import { mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { OperationClass, type Analysis } from '../analysis/types.js';
import { FileAuditStore } from '../audit/file-store.js';
import { readAuditRecords, verifyAuditLog } from '../audit/reader.js';
import { ClientFacingError } from '../errors.js';
import type { Identity } from '../identity/types.js';
import { MemoryFailureLimiter } from '../identity/memory-failure-limiter.js';
import { TokenAuthenticator } from '../identity/token-authenticator.js';
import { Governor } from './governor.js';
import { Policy } from '../policy/engine.js';
import { policySchema } from '../policy/config.js';

const logger = pino({ level: 'silent' });
const analysis = (normalized: string, operations: OperationClass[]): Analysis => ({
  normalized,
  fingerprint: 'abcdef0123456789',
  operations,
  statementCount: 1,
  commands: [normalized.split(' ')[0]!.toUpperCase()],
});

let dir: string;
afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function setup(options: { failing?: boolean } = {}) {
  dir = await mkdtemp(join(tmpdir(), 'sluice-governor-'));
  if (options.failing) await symlink('/dev/full', join(dir, 'audit-000001.jsonl'));
  const audit = await FileAuditStore.open({ dir, groupCommitMs: 5, logger });
  const governor = new Governor({
    authenticator: new TokenAuthenticator([{ subject: 'ann', kind: 'human', groups: ['g'], token: 'ann-token' }]),
    audit,
    failureLimiter: new MemoryFailureLimiter({ maxAttempts: 2, windowSeconds: 60, lockoutSeconds: 60 }),
    logger,
    policy: new Policy(policySchema.parse({ rules: [{ name: 'everyone', effect: 'allow' }] }), { approvers: { groups: ['dba'], subjects: [] } }),
  });
  return { audit, governor };
}

const identity: Identity = { subject: 'ann', kind: 'human', groups: ['g'], method: 'token' };
const start = (extra: Partial<Identity> = {}) => ({
  dialect: 'postgres',
  identity: { ...identity, ...extra },
  username: 'ann',
  target: 'app',
  sourceAddress: '127.0.0.1',
  tls: false,
});

describe('Governor', () => {
  it('records a read once, and a write as a durable intent before its outcome', async () => {
    const { audit, governor } = await setup();
    const session = await governor.openSession(start());
    const read = session.beginStatement({ analysis: analysis('select ?', [OperationClass.Read]), protocol: 'simple' });
    expect(read.ready).toBeUndefined();
    read.complete({ outcome: 'ok', rows: 1, command: 'SELECT' });
    const write = session.beginStatement({ analysis: analysis('delete from t where id = ?', [OperationClass.Write]), protocol: 'extended' });
    expect(write.ready).toBeInstanceOf(Promise);
    await write.ready;
    // The intent is on disk before the caller forwards the statement.
    const before = [];
    for await (const r of readAuditRecords(dir)) before.push(r);
    expect(before.some((r) => r.type === 'statement' && r.phase === 'intent' && r.text === 'delete from t where id = ?')).toBe(true);
    write.complete({ outcome: 'error', errorCode: '23503' });
    await session.end('client');
    await audit.close();
    const all = [];
    for await (const r of readAuditRecords(dir)) all.push(r);
    expect(all.map((r) => (r.type === 'statement' ? `${r.type}:${r.phase}` : r.type))).toEqual([
      'connect',
      'statement:complete',
      'statement:intent',
      'statement:complete',
      'disconnect',
    ]);
    for (const r of all) {
      expect(r.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      expect(new Date(r.time).toISOString()).toBe(r.time);
      expect(Math.abs(Date.parse(r.time) - Date.now())).toBeLessThan(60_000);
    }
    expect(all[3]).toMatchObject({ outcome: 'error', errorCode: '23503', protocol: 'extended', actor: { subject: 'ann', groups: ['g'] } });
    expect(await verifyAuditLog(dir)).toMatchObject({ ok: true, records: 5 });
  });

  it('refuses statements of an identity whose credential has expired', async () => {
    const { audit, governor } = await setup();
    const session = await governor.openSession(start({ expiresAt: Date.now() - 1000 }));
    expect(() => session.beginStatement({ analysis: analysis('select ?', [OperationClass.Read]), protocol: 'simple' })).toThrow(/expired/);
    await audit.close();
    const statements = [];
    for await (const r of readAuditRecords(dir)) if (r.type === 'statement') statements.push(r);
    expect(statements).toHaveLength(1);
    expect(statements[0]).toMatchObject({ decision: 'deny', rule: 'credential-expired', outcome: 'not-executed', text: 'select ?' });
  });

  it('fails closed when the audit store cannot write', async () => {
    const { audit, governor } = await setup({ failing: true });
    const err = await governor.openSession(start()).catch((e: unknown) => e);
    expect(ClientFacingError.is(err) && err.kind).toBe('governance_unavailable');
    expect(audit.healthy).toBe(false);
    await audit.close().catch(() => undefined);
  });

  it('rate limits failed logins per source address and audits each refusal', async () => {
    const { audit, governor } = await setup();
    const attempt = (secret: string) => ({ dialect: 'postgres', credentials: { username: 'ann', secret, sourceAddress: '10.0.0.9' }, tls: false });
    await expect(governor.authenticate(attempt('bad-1'))).rejects.toThrow(/unknown token/);
    await expect(governor.authenticate(attempt('bad-2'))).rejects.toThrow(/unknown token/);
    await expect(governor.authenticate(attempt('ann-token'))).rejects.toThrow(/too many failed login attempts/);
    await audit.close();
    const refused = [];
    for await (const r of readAuditRecords(dir)) if (r.type === 'connect' && r.outcome === 'refused') refused.push(r);
    expect(refused).toHaveLength(3);
    expect(JSON.stringify(refused)).not.toMatch(/bad-1|bad-2|ann-token/);
  });
});
