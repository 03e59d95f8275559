import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { FileAuditStore } from '../audit/file-store.js';
import { useTempDir } from '../test-support/temp-dir.js';
import { openJournalBackend } from './backend.js';
import { openApprovals } from './service.js';
import type { ApprovalRequest, Grant } from './types.js';

const logger = pino({ level: 'silent' });
const dir = useTempDir('sluice-approvals-backend-');

function request(id: string, status: ApprovalRequest['status'] = 'pending'): ApprovalRequest {
  return {
    id,
    status,
    createdAt: '2030-01-01T00:00:00.000Z',
    expiresAt: '2030-01-01T00:01:00.000Z',
    dialect: 'postgres',
    sessionId: 's-1',
    statementId: 'st-1',
    requester: { subject: 'alice', kind: 'human', groups: [], method: 'oidc' },
    target: 'prod',
    statement: 'DELETE FROM t',
    normalized: 'DELETE FROM t',
    fingerprint: 'f',
    digest: 'd',
    operations: ['write'],
    objects: [],
    hazards: [],
    rule: 'r',
    why: 'w',
    approvers: { groups: ['dba'], subjects: [] },
    owner: 'local',
  };
}

function grant(id: string): Grant {
  return {
    id,
    subject: 'alice',
    targets: [],
    operations: ['write'],
    objects: [],
    guardrails: [],
    createdAt: '2030-01-01T00:00:00.000Z',
    expiresAt: '2030-01-02T00:00:00.000Z',
    grantedBy: { subject: 'bob', kind: 'human', groups: ['dba'], method: 'oidc' },
  };
}

const decided = (r: ApprovalRequest, status: ApprovalRequest['status']): ApprovalRequest => ({
  ...r,
  status,
  decidedAt: '2030-01-01T00:00:30.000Z',
});

describe('the journal as a backend', () => {
  it('a transition takes effect only from an expected status, and only once', async () => {
    const backend = await openJournalBackend({ dir: dir(), logger });
    const r = request('r-000001');
    expect(await backend.insert({ kind: 'request', record: r })).toBe(true);
    expect(await backend.insert({ kind: 'request', record: r })).toBe(false); // the id is taken
    expect(await backend.transition(decided(r, 'executed'), ['approved'])).toBe(false);
    expect((await backend.getRequest(r.id))?.status).toBe('pending');
    expect(await backend.transition(decided(r, 'approved'), ['pending'])).toBe(true);
    expect(await backend.transition(decided(r, 'expired'), ['pending'])).toBe(false);
    expect(await backend.transition(decided(r, 'executed'), ['approved'])).toBe(true);
    expect(await backend.transition(decided(r, 'abandoned'), ['pending', 'approved'])).toBe(false);
    expect(await backend.transition(decided(request('r-unknwn'), 'approved'), ['pending'])).toBe(false);
    await backend.close();

    const again = await openJournalBackend({ dir: dir(), logger });
    expect((await again.load()).requests.map((x) => [x.id, x.status])).toEqual([[r.id, 'executed']]);
    await again.close();
  });

  it('of two concurrent transitions of one request exactly one wins, and only the winner confirms', async () => {
    const backend = await openJournalBackend({ dir: dir(), logger });
    const r = request('r-000002');
    await backend.insert({ kind: 'request', record: r });
    const confirmed: string[] = [];
    const results = await Promise.all(
      (['approved', 'rejected', 'expired'] as const).map((status) =>
        backend.transition(decided(r, status), ['pending'], {
          confirm: async () => {
            await new Promise((resolve) => setTimeout(resolve, 5));
            confirmed.push(status);
          },
        }),
      ),
    );
    expect(results.filter(Boolean)).toHaveLength(1);
    expect(confirmed).toHaveLength(1);
    expect((await backend.getRequest(r.id))?.status).toBe(confirmed[0]);
    await backend.close();
  });

  it('a failed confirm stores nothing and leaves the request as it was', async () => {
    const backend = await openJournalBackend({ dir: dir(), logger });
    const r = request('r-000003');
    await backend.insert({ kind: 'request', record: r });
    const g = grant('g-000001');
    const failing = { confirm: () => Promise.reject(new Error('the audit trail is full')) };
    await expect(backend.transition(decided(r, 'approved'), ['pending'], { ...failing, grant: g })).rejects.toThrow('the audit trail is full');
    expect((await backend.getRequest(r.id))?.status).toBe('pending');
    expect(await backend.getGrant(g.id)).toBeUndefined();
    await expect(backend.insert({ kind: 'request', record: request('r-000004') }, failing)).rejects.toThrow('the audit trail is full');
    expect(await backend.getRequest('r-000004')).toBeUndefined();
    // The request can still be decided.
    expect(await backend.transition(decided(r, 'rejected'), ['pending'])).toBe(true);
    await backend.close();

    const again = await openJournalBackend({ dir: dir(), logger });
    const loaded = await again.load();
    expect(loaded.requests.map((x) => [x.id, x.status])).toEqual([[r.id, 'rejected']]);
    expect(loaded.grants).toEqual([]);
    await again.close();
  });

  it('a grant is revoked once; an approval stores its grant with it', async () => {
    const backend = await openJournalBackend({ dir: dir(), logger });
    const g = grant('g-000002');
    expect(await backend.insert({ kind: 'grant', record: g })).toBe(true);
    const revoked = { ...g, revokedAt: '2030-01-01T00:10:00.000Z', revokedBy: g.grantedBy };
    expect(await backend.revokeGrant(revoked)).toBe(true);
    expect(await backend.revokeGrant({ ...revoked, revokedAt: '2030-01-01T00:11:00.000Z' })).toBe(false);
    expect(await backend.revokeGrant({ ...grant('g-unknwn'), revokedAt: '2030-01-01T00:11:00.000Z' })).toBe(false);

    const r = request('r-000005');
    await backend.insert({ kind: 'request', record: r });
    const withGrant = grant('g-000003');
    expect(await backend.transition({ ...decided(r, 'approved'), grantId: withGrant.id }, ['pending'], { grant: withGrant })).toBe(true);
    await backend.close();

    const again = await openJournalBackend({ dir: dir(), logger });
    const loaded = await again.load();
    expect(loaded.grants.map((x) => [x.id, x.revokedAt ?? null])).toEqual([
      [g.id, '2030-01-01T00:10:00.000Z'],
      [withGrant.id, null],
    ]);
    await again.close();
  });

  it('the service records its replica as the owner of each request (default local)', async () => {
    const audit = await FileAuditStore.open({ dir: `${dir()}/audit`, groupCommitMs: 5, logger });
    const approvers = { groups: ['dba'], subjects: [] };
    const input = {
      ...request('unused'),
      requester: { subject: 'alice', kind: 'human' as const, groups: [], method: 'oidc' as const },
      timeoutMs: 60_000,
    };
    const one = await openApprovals({ dir: `${dir()}/one`, audit, logger, approvers });
    const two = await openApprovals({ dir: `${dir()}/two`, audit, logger, approvers, replicaId: 'gw-2' });
    try {
      expect((await one.request(input)).request.owner).toBe('local');
      expect((await two.request(input)).request.owner).toBe('gw-2');
    } finally {
      await one.close();
      await two.close();
      await audit.close();
    }
  });
});
