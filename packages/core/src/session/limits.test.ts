import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { OperationClass, type Analysis } from '../analysis/types.js';
import { FileAuditStore } from '../audit/file-store.js';
import { readAuditRecords } from '../audit/reader.js';
import { ClientFacingError, ErrorKind } from '../errors.js';
import type { Identity } from '../identity/types.js';
import { MemoryFailureLimiter } from '../identity/memory-failure-limiter.js';
import { TokenAuthenticator } from '../identity/token-authenticator.js';
import { policySchema } from '../policy/config.js';
import { Policy } from '../policy/engine.js';
import { SessionActivity } from './activity.js';
import { Governor } from './governor.js';
import { Admission, SessionLimiter, sessionLimitsSchema, sourceKey, type LimitRefusal } from './limits.js';

const logger = pino({ level: 'silent' });

function admitted(r: Admission | LimitRefusal): Admission {
  if (!(r instanceof Admission)) throw new Error(`refused: ${JSON.stringify(r)}`);
  return r;
}

afterEach(() => {
  vi.useRealTimers();
});

describe('SessionLimiter', () => {
  it('is not created when nothing is limited (no counting at all)', () => {
    expect(SessionLimiter.of(undefined)).toBeUndefined();
    expect(SessionLimiter.of(sessionLimitsSchema.parse({}))).toBeUndefined();
    expect(SessionLimiter.of(sessionLimitsSchema.parse({ statementsPerSecond: {} }))).toBeUndefined();
    expect(SessionLimiter.of({ connections: { perSource: 1 } })).toBeInstanceOf(SessionLimiter);
  });

  it('counts sessions per identity and per source, refuses past the limit, and forgets a key whose sessions all ended', () => {
    const l = SessionLimiter.of({ connections: { perIdentity: 2, perSource: 3 } })!;
    const a1 = admitted(l.admit('ann', '10.0.0.1'));
    const a2 = admitted(l.admit('ann', '10.0.0.2'));
    expect(l.admit('ann', '10.0.0.3')).toEqual({ scope: 'identity', key: 'ann', limit: 2 });
    expect(l.check('ann', '10.0.0.3')).toEqual({ scope: 'identity', key: 'ann', limit: 2 });
    const b1 = admitted(l.admit('bob', '10.0.0.1'));
    const b2 = admitted(l.admit('carl', '10.0.0.1'));
    // The fourth session from 10.0.0.1 is over the source limit, whoever asks.
    expect(l.admit('dora', '::ffff:10.0.0.1')).toEqual({ scope: 'source', key: '10.0.0.1', limit: 3 });
    a1.release();
    a1.release(); // idempotent
    expect(l.check('ann', '10.0.0.9')).toBeUndefined();
    const d = admitted(l.admit('dora', '10.0.0.1'));
    expect(l.admit('eve', '10.0.0.1')).toMatchObject({ scope: 'source' });
    for (const a of [a2, b1, b2, d]) a.release();
    expect(l.size).toBe(0);
  });

  it('a per-identity override replaces the default for that subject only', () => {
    const l = SessionLimiter.of({ connections: { perIdentity: 1 }, identities: { 'svc:etl': { connections: 3 } } })!;
    admitted(l.admit('svc:etl', 'a'));
    admitted(l.admit('svc:etl', 'b'));
    admitted(l.admit('svc:etl', 'c'));
    expect(l.admit('svc:etl', 'd')).toMatchObject({ scope: 'identity', limit: 3 });
    admitted(l.admit('ann', 'a'));
    expect(l.admit('ann', 'b')).toMatchObject({ scope: 'identity', limit: 1 });
  });

  it('token buckets: a burst of rate × burstSeconds, then the rate; the identity and the source each have one', () => {
    vi.useFakeTimers({ now: 1_000_000 });
    const l = SessionLimiter.of({ statementsPerSecond: { perIdentity: 10, perSource: 100, burstSeconds: 2 } })!;
    const a = admitted(l.admit('ann', '10.0.0.1'));
    expect(a.rated).toBe(true);
    for (let i = 0; i < 20; i++) expect(a.take(1)).toBeUndefined();
    const over = a.take(1)!;
    expect(over).toMatchObject({ scope: 'identity', key: 'ann', limit: 10 });
    expect(over.retryAfterSeconds).toBeCloseTo(0.1, 5);
    // Another session of the same identity shares the bucket; another identity does not.
    const a2 = admitted(l.admit('ann', '10.0.0.2'));
    expect(a2.take(1)).toMatchObject({ scope: 'identity' });
    const b = admitted(l.admit('bob', '10.0.0.1'));
    expect(b.take(1)).toBeUndefined();
    vi.advanceTimersByTime(100);
    expect(a.take(1)).toBeUndefined();
    expect(a.take(1)).toMatchObject({ scope: 'identity' });
    // A request of several statements takes as many tokens, or none.
    vi.advanceTimersByTime(1000);
    expect(a.take(11)).toMatchObject({ scope: 'identity' });
    expect(a.take(10)).toBeUndefined();
  });

  it('the source bucket limits every identity from that address', () => {
    vi.useFakeTimers({ now: 1_000_000 });
    const l = SessionLimiter.of({ statementsPerSecond: { perSource: 5, burstSeconds: 1 } })!;
    const a = admitted(l.admit('ann', '10.0.0.1'));
    const b = admitted(l.admit('bob', '10.0.0.1'));
    const c = admitted(l.admit('carl', '10.0.0.2'));
    for (let i = 0; i < 5; i++) expect((i % 2 === 0 ? a : b).take(1)).toBeUndefined();
    expect(a.take(1)).toMatchObject({ scope: 'source', key: '10.0.0.1', limit: 5 });
    expect(b.take(1)).toMatchObject({ scope: 'source' });
    expect(c.take(1)).toBeUndefined();
  });

  it('keeps an emptied bucket after the last session ends until it has refilled, then drops it (no reset by reconnecting, bounded memory)', () => {
    vi.useFakeTimers({ now: 1_000_000 });
    const l = SessionLimiter.of({ statementsPerSecond: { perIdentity: 1, burstSeconds: 1 } })!;
    const a = admitted(l.admit('ann', '10.0.0.1'));
    expect(a.take(1)).toBeUndefined();
    a.release();
    const again = admitted(l.admit('ann', '10.0.0.1'));
    expect(again.take(1)).toMatchObject({ scope: 'identity' });
    again.release();
    expect(l.size).toBe(1); // the identity's emptied bucket lingers; the source had no rate
    vi.advanceTimersByTime(10_000);
    admitted(l.admit('bob', '10.0.0.9')).release(); // a later admission sweeps
    expect(l.size).toBe(0);
    for (let i = 0; i < 10_000; i++) admitted(l.admit(`user-${i}`, `10.1.${i >> 8}.${i & 255}`)).release();
    expect(l.size).toBe(0);
  });

  it('sourceKey unwraps IPv4-mapped IPv6 addresses only', () => {
    expect(sourceKey('::ffff:127.0.0.1')).toBe('127.0.0.1');
    expect(sourceKey('::1')).toBe('::1');
    expect(sourceKey('10.0.0.1')).toBe('10.0.0.1');
  });
});

describe('SessionActivity', () => {
  it('fires the idle timeout that applies (outside or inside a transaction) only while idle', () => {
    vi.useFakeTimers();
    const timeouts: string[] = [];
    const act = new SessionActivity(
      { idleSessionTimeoutMs: 100, idleInTransactionTimeoutMs: 50 },
      { onIdleTimeout: (err, reason) => timeouts.push(`${reason}:${err.kind}`), onDrained: () => timeouts.push('drained') },
    );
    act.idle(false);
    vi.advanceTimersByTime(90);
    act.busyNow();
    vi.advanceTimersByTime(500); // busy: a running statement is never idle
    expect(timeouts).toEqual([]);
    act.idle(true);
    vi.advanceTimersByTime(49);
    expect(timeouts).toEqual([]);
    vi.advanceTimersByTime(2);
    expect(timeouts).toEqual([`idle-in-transaction-timeout:${ErrorKind.IdleInTransactionTimeout}`]);
    act.idle(false); // stopped: nothing more
    vi.advanceTimersByTime(1000);
    expect(timeouts).toHaveLength(1);
  });

  it('without timeouts nothing fires; drain ends an idle session at once and a busy one when it becomes idle', () => {
    vi.useFakeTimers();
    const events: string[] = [];
    const idleOne = new SessionActivity({}, { onIdleTimeout: () => events.push('timeout'), onDrained: () => events.push('idle drained') });
    idleOne.idle(false);
    vi.advanceTimersByTime(1_000_000);
    idleOne.drain();
    const busyOne = new SessionActivity({ idleSessionTimeoutMs: 10 }, { onIdleTimeout: () => events.push('timeout'), onDrained: () => events.push('busy drained') });
    busyOne.idle(false);
    busyOne.busyNow();
    busyOne.drain();
    expect(events).toEqual(['idle drained']);
    vi.advanceTimersByTime(100);
    busyOne.idle(false);
    expect(events).toEqual(['idle drained', 'busy drained']);
  });
});

describe('Governor with limits', () => {
  let dir: string | undefined;
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const identity: Identity = { subject: 'ann', kind: 'human', groups: ['g'], method: 'token' };
  const start = { dialect: 'postgres', identity, username: 'ann', target: 'app', sourceAddress: '127.0.0.1', tls: false };
  const read: Analysis = { normalized: 'select ?', fingerprint: 'f', operations: [OperationClass.Read], statementCount: 1, commands: ['SELECT'] };

  it('refuses a session over the limit (audited), releases on end, and refuses a statement over the rate (recorded, session usable)', async () => {
    vi.useFakeTimers({ now: 5_000_000, toFake: ['Date'] });
    dir = await mkdtemp(join(tmpdir(), 'sluice-limits-'));
    const audit = await FileAuditStore.open({ dir, groupCommitMs: 5, logger });
    const governor = new Governor({
      authenticator: new TokenAuthenticator([]),
      audit,
      failureLimiter: new MemoryFailureLimiter({ maxAttempts: 2, windowSeconds: 60, lockoutSeconds: 60 }),
      logger,
      policy: new Policy(policySchema.parse({ rules: [{ name: 'everyone', effect: 'allow' }] }), { approvers: { groups: [], subjects: [] } }),
      limits: { connections: { perIdentity: 1 }, statementsPerSecond: { perIdentity: 2, burstSeconds: 1 } },
    });
    const s1 = await governor.openSession(start);
    const refused = await governor.openSession(start).catch((e: unknown) => e);
    expect(ClientFacingError.is(refused) && refused.kind).toBe(ErrorKind.TooManyConnections);
    await expect(
      governor.checkConnectionLimits({ dialect: 'postgres', credentials: { username: 'ann', secret: 's', sourceAddress: '127.0.0.1' }, tls: false }, identity),
    ).rejects.toMatchObject({ kind: ErrorKind.TooManyConnections, fatal: true });
    s1.beginRequest({ analysis: read, protocol: 'simple' });
    s1.beginRequest({ analysis: read, protocol: 'simple' });
    let rate: unknown;
    try {
      s1.beginRequest({ analysis: read, protocol: 'simple' });
    } catch (e) {
      rate = e;
    }
    expect(rate).toMatchObject({ kind: ErrorKind.StatementRateLimited, fatal: false });
    vi.setSystemTime(5_001_000);
    expect(s1.beginRequest({ analysis: read, protocol: 'simple' }).handles).toHaveLength(1);
    await s1.end('client');
    const s2 = await governor.openSession(start);
    await s2.end('client');
    await audit.flush();
    const records = [];
    for await (const r of readAuditRecords(dir)) records.push(r);
    const refusedConnects = records.filter((r) => r.type === 'connect' && r.outcome === 'refused');
    expect(refusedConnects).toHaveLength(2);
    expect(refusedConnects[0]).toMatchObject({ reason: expect.stringMatching(/too many connections for identity ann/) });
    const limited = records.filter((r) => r.type === 'statement' && r.rule === 'rate-limit');
    expect(limited).toHaveLength(1);
    expect(limited[0]).toMatchObject({ decision: 'deny', outcome: 'not-executed', reason: 'statement rate limit of 2/s for identity ann reached' });
    await audit.close();
  });

  it('a request of more statements than the bucket holds is refused as such (retrying would never help), while a smaller one runs', async () => {
    dir = await mkdtemp(join(tmpdir(), 'sluice-limits-'));
    const audit = await FileAuditStore.open({ dir, groupCommitMs: 5, logger });
    const governor = new Governor({
      authenticator: new TokenAuthenticator([]),
      audit,
      failureLimiter: new MemoryFailureLimiter({ maxAttempts: 2, windowSeconds: 60, lockoutSeconds: 60 }),
      logger,
      policy: new Policy(policySchema.parse({ rules: [{ name: 'everyone', effect: 'allow' }] }), { approvers: { groups: [], subjects: [] } }),
      limits: { statementsPerSecond: { perIdentity: 2, burstSeconds: 1 } },
    });
    const s = await governor.openSession(start);
    const script: Analysis = { ...read, statementCount: 3, parts: [read, read, read] };
    let err: unknown;
    try {
      s.beginRequest({ analysis: script, protocol: 'simple' });
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ kind: ErrorKind.StatementRateLimited, fatal: false });
    expect((err as Error).message).toMatch(/a request of 3 statements is more than the 2 the gateway lets run at once/);
    expect((err as ClientFacingError).hint).toMatch(/smaller requests/);
    // Nothing was taken: a request the bucket can hold still runs.
    expect(s.beginRequest({ analysis: { ...read, statementCount: 2, parts: [read, read] }, protocol: 'simple' }).handles).toHaveLength(2);
    await s.end('client');
    await audit.close();
  });
});
