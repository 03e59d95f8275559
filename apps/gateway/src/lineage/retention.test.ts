import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LineageStore } from '@sluice/core';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { aliceSelect, bobSelect, CUSTOMERS, HOUR, MINUTE, T0 } from './fixtures.js';
import { DEFAULT_LINEAGE_RETENTION_MS, startLineageRetention } from './retention.js';
import { openSqliteLineageStore } from './sqlite-store.js';

const logger = pino({ level: 'silent' });

describe('lineage retention', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-lineage-retention-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('keeps 90 days by default', () => {
    expect(DEFAULT_LINEAGE_RETENTION_MS).toBe(90 * 24 * HOUR);
  });

  it('prunes at once, then every interval, what was last seen before the retention', async () => {
    const store = await openSqliteLineageStore({ path: join(dir, 'a.db'), logger });
    await store.record([aliceSelect(), bobSelect()]);
    let now = T0 + 30 * MINUTE + DEFAULT_LINEAGE_RETENTION_MS;
    const retention = startLineageRetention(store, { intervalMs: 20, logger, now: () => now });
    await vi.waitFor(async () => expect((await store.column(`${CUSTOMERS}.email`)).reads.map((r) => r.subject)).toEqual(['bob@example.com']));
    now = T0 + 2 * HOUR + DEFAULT_LINEAGE_RETENTION_MS;
    await vi.waitFor(async () => expect((await store.column(`${CUSTOMERS}.email`)).reads).toEqual([]));
    await store.record([bobSelect({ firstSeen: now, lastSeen: now })]);
    expect(await retention.pruneNow()).toBe(0);
    await retention.stop();
    await store.close();
  });

  it('logs a failed prune and tries again at the next interval', async () => {
    const errors: unknown[] = [];
    const failing = {
      prune: vi.fn().mockRejectedValueOnce(new Error('disk full')).mockResolvedValue(3),
    } as unknown as LineageStore;
    const log = pino({ level: 'error' }, { write: (line: string) => errors.push(JSON.parse(line)) });
    const retention = startLineageRetention(failing, { retentionMs: 1000, intervalMs: 20, logger: log, now: () => 5000 });
    await vi.waitFor(() => expect(vi.mocked(failing.prune).mock.calls.length).toBeGreaterThanOrEqual(2));
    await retention.stop();
    expect(errors[0]).toMatchObject({ msg: expect.stringMatching(/pruning failed/), err: { message: 'disk full' } });
    expect(vi.mocked(failing.prune).mock.calls.length).toBeGreaterThanOrEqual(2);
    expect(vi.mocked(failing.prune)).toHaveBeenCalledWith(4000);
    expect(() => startLineageRetention(failing, { retentionMs: 0, logger })).toThrow(/must be positive/);
  });
});
