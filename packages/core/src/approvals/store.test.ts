import { appendFile, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { useTempDir } from '../test-support/temp-dir.js';
import { ApprovalStore, JOURNAL_FILE } from './store.js';
import type { ApprovalRequest, Grant } from './types.js';

const dir = useTempDir('sluice-approvals-store-');

interface Logged {
  readonly warnings: string[];
  readonly errors: string[];
}

function logger(): Logged & { warn(o: object, m: string): void; error(o: object, m: string): void } {
  const warnings: string[] = [];
  const errors: string[] = [];
  return { warnings, errors, warn: (_o, m) => warnings.push(m), error: (_o, m) => errors.push(m) };
}

const actor = { subject: 'alice', kind: 'human', groups: ['eng'], method: 'oidc' } as const;

function request(id: string, status: ApprovalRequest['status'] = 'pending', createdAt = '2024-05-01T12:00:00.000Z'): ApprovalRequest {
  return {
    id,
    status,
    createdAt,
    expiresAt: '2024-05-01T12:05:00.000Z',
    dialect: 'postgres',
    sessionId: 's-1',
    statementId: 'st-1',
    requester: actor,
    target: 'prod',
    statement: "DELETE FROM t WHERE note = 'a\nb'",
    normalized: 'DELETE FROM t WHERE note = ?',
    fingerprint: 'ab'.repeat(8),
    digest: 'd'.repeat(64),
    operations: ['write'],
    objects: [{ name: 't', kind: 'table', access: 'write' }],
    hazards: [],
    rule: 'writes-need-review',
    why: 'writes on prod need a second person',
    approvers: { groups: ['dba'], subjects: [] },
    ...(status !== 'pending' ? { decidedAt: createdAt } : {}),
  };
}

function grant(id: string, expiresAt = '2024-05-01T13:00:00.000Z'): Grant {
  return {
    id,
    subject: 'alice',
    targets: ['prod'],
    operations: ['write'],
    objects: ['public.t'],
    guardrails: [],
    createdAt: '2024-05-01T12:00:00.000Z',
    expiresAt,
    grantedBy: { ...actor, subject: 'bob' },
  };
}

const clock = () => Date.parse('2024-05-01T12:01:00.000Z');

describe('ApprovalStore', () => {
  it('creates its directory with mode 0700 and replays what was put', async () => {
    const path = join(dir(), 'state', 'approvals');
    const log = logger();
    const store = await ApprovalStore.open({ dir: path, logger: log, now: clock });
    expect((await stat(path)).mode & 0o777).toBe(0o700);
    await store.put({ kind: 'request', record: request('r-aaaaaa') });
    await store.put({ kind: 'request', record: request('r-aaaaaa', 'approved') }, { kind: 'grant', record: grant('g-bbbbbb') });
    await store.close();
    expect((await stat(join(path, JOURNAL_FILE))).mode & 0o777).toBe(0o600);

    const again = await ApprovalStore.open({ dir: path, logger: log, now: clock });
    expect(again.requests.get('r-aaaaaa')).toEqual(request('r-aaaaaa', 'approved'));
    expect(again.grants.get('g-bbbbbb')).toEqual(grant('g-bbbbbb'));
    await again.close();
    expect(log.warnings).toEqual([]);
  });

  it('writes concurrent puts and resolves each once it is synced', async () => {
    const store = await ApprovalStore.open({ dir: dir(), logger: logger(), now: clock });
    const ids = Array.from({ length: 50 }, (_, i) => `r-${String(i).padStart(6, '0')}`);
    await Promise.all(ids.map((id) => store.put({ kind: 'request', record: request(id) })));
    const lines = (await readFile(join(dir(), JOURNAL_FILE), 'utf8')).trimEnd().split('\n');
    expect(lines).toHaveLength(50);
    await store.close();
    await expect(store.put({ kind: 'request', record: request('r-late00') })).rejects.toThrow(/closed/);
  });

  it('ignores a torn last line with a warning and keeps appending cleanly', async () => {
    const store = await ApprovalStore.open({ dir: dir(), logger: logger(), now: clock });
    await store.put({ kind: 'request', record: request('r-aaaaaa') });
    await store.close();
    const path = join(dir(), JOURNAL_FILE);
    await appendFile(path, '{"kind":"request","record":{"id":"r-bbbbbb","sta');

    const log = logger();
    const again = await ApprovalStore.open({ dir: dir(), logger: log, now: clock });
    expect([...again.requests.keys()]).toEqual(['r-aaaaaa']);
    expect(log.warnings).toHaveLength(1);
    expect(log.warnings[0]).toMatch(/last line of .*approvals\.jsonl is incomplete or unreadable/);
    // The torn bytes are gone, so the next line does not glue onto them.
    await again.put({ kind: 'request', record: request('r-cccccc') });
    await again.close();
    const third = await ApprovalStore.open({ dir: dir(), logger: logger(), now: clock });
    expect([...third.requests.keys()]).toEqual(['r-aaaaaa', 'r-cccccc']);
    await third.close();
  });

  it('refuses a journal damaged in the middle, naming the file and the line', async () => {
    const path = join(dir(), JOURNAL_FILE);
    const line = (r: ApprovalRequest) => `${JSON.stringify({ kind: 'request', record: r })}\n`;
    await writeFile(path, line(request('r-aaaaaa')) + '{"kind":"request","record":{"id":\n' + line(request('r-bbbbbb')));
    await expect(ApprovalStore.open({ dir: dir(), logger: logger(), now: clock })).rejects.toThrow(
      `the approvals journal ${path} is damaged at line 2: not valid JSON`,
    );
    await writeFile(path, line(request('r-aaaaaa')) + '{"kind":"request","record":{"id":"r-x","status":"lost"}}\n' + line(request('r-b')));
    await expect(ApprovalStore.open({ dir: dir(), logger: logger(), now: clock })).rejects.toThrow(
      /damaged at line 2: a request with an unknown status "lost"/,
    );
  });

  it('refuses journal lines whose times are not dates or whose grant lists are not lists of names', async () => {
    const path = join(dir(), JOURNAL_FILE);
    const line = (kind: string, record: object) => `${JSON.stringify({ kind, record })}\n`;
    const cases: [string, object, RegExp][] = [
      ['grant', { ...grant('g-aaaaaa'), expiresAt: 'tomorrow' }, /damaged at line 1: a grant whose expiresAt is not a date \("tomorrow"\)/],
      ['grant', { ...grant('g-aaaaaa'), revokedAt: 12 }, /damaged at line 1: a grant without revokedAt/],
      ['grant', { ...grant('g-aaaaaa'), objects: [1] }, /damaged at line 1: a grant whose objects is not a list of names/],
      ['grant', { ...grant('g-aaaaaa'), guardrails: undefined }, /damaged at line 1: a grant whose guardrails is not a list of names/],
      ['request', { ...request('r-aaaaaa'), createdAt: '' }, /damaged at line 1: a request whose createdAt is not a date/],
      ['request', { ...request('r-aaaaaa', 'rejected'), decidedAt: 'soon' }, /damaged at line 1: a request whose decidedAt is not a date/],
    ];
    for (const [kind, record, message] of cases) {
      await writeFile(path, line(kind, record) + line('request', request('r-bbbbbb')));
      await expect(ApprovalStore.open({ dir: dir(), logger: logger(), now: clock }), JSON.stringify(record)).rejects.toThrow(message);
    }
  });

  it('compacts a journal of many superseded lines on open', async () => {
    const store = await ApprovalStore.open({ dir: dir(), logger: logger(), now: clock });
    for (let i = 0; i < 90; i++) {
      const id = `r-${String(i % 3).padStart(6, '0')}`;
      await store.put({ kind: 'request', record: { ...request(id), statementId: `st-${i}` } });
    }
    await store.close();
    const again = await ApprovalStore.open({ dir: dir(), logger: logger(), now: clock });
    expect([...again.requests.keys()]).toEqual(['r-000000', 'r-000001', 'r-000002']);
    expect(again.requests.get('r-000002')?.statementId).toBe('st-89');
    await again.put({ kind: 'grant', record: grant('g-new000') });
    await again.close();
    const lines = (await readFile(join(dir(), JOURNAL_FILE), 'utf8')).trimEnd().split('\n');
    expect(lines).toHaveLength(4);
  });

  it('drops decided requests and ended grants past the retention', async () => {
    const store = await ApprovalStore.open({ dir: dir(), logger: logger(), now: clock });
    await store.put({ kind: 'request', record: request('r-old000', 'rejected', '2024-01-01T00:00:00.000Z') });
    await store.put({ kind: 'request', record: request('r-oldpnd', 'pending', '2024-01-01T00:00:00.000Z') });
    await store.put({ kind: 'request', record: request('r-new000', 'rejected') });
    await store.put({ kind: 'grant', record: grant('g-old000', '2024-01-02T00:00:00.000Z') });
    await store.put({ kind: 'grant', record: grant('g-new000') });
    await store.close();
    const again = await ApprovalStore.open({ dir: dir(), logger: logger(), now: clock, retentionMs: 7 * 24 * 3600_000 });
    expect([...again.requests.keys()]).toEqual(['r-oldpnd', 'r-new000']);
    expect([...again.grants.keys()]).toEqual(['g-new000']);
    await again.close();
    expect((await readFile(join(dir(), JOURNAL_FILE), 'utf8')).trimEnd().split('\n')).toHaveLength(3);
  });

  it('refuses a journal path that is not a regular file', async () => {
    const { mkdir } = await import('node:fs/promises');
    await mkdir(join(dir(), JOURNAL_FILE));
    await expect(ApprovalStore.open({ dir: dir(), logger: logger(), now: clock })).rejects.toThrow(/not a regular file/);
  });
});
