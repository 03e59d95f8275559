import { beforeEach, describe, expect, it } from 'vitest';
import { useTempDir } from '../test-support/temp-dir.js';
import { FileAuditStore } from './file-store.js';
import { followAuditRecords } from './follow.js';
import type { AuditEvent, AuditRecord } from './types.js';

function cancel(i: number): AuditEvent {
  return {
    type: 'cancel',
    time: new Date(Date.UTC(2024, 0, 1, 0, 0, i)).toISOString(),
    dialect: 'postgres',
    outcome: 'forwarded',
    target: `t${i}`,
  };
}

const silent = { error: () => undefined };
const tempDir = useTempDir('sluice-audit-');
let dir: string;
beforeEach(() => {
  dir = tempDir();
});

/** Takes `count` records from the generator, then aborts it. */
async function take(gen: AsyncGenerator<AuditRecord>, count: number, onEach?: (r: AuditRecord) => Promise<void>) {
  const out: AuditRecord[] = [];
  if (count === 0) return out;
  for await (const r of gen) {
    out.push(r);
    await onEach?.(r);
    if (out.length >= count) break;
  }
  return out;
}

describe('followAuditRecords', () => {
  it('yields the last N records, then new ones across segment rotation', async () => {
    const store = await FileAuditStore.open({ dir, segmentBytes: 1024, groupCommitMs: 1, logger: silent });
    for (let i = 1; i <= 30; i++) await store.append(cancel(i), { durable: true });
    expect(store.stats.segment).toBeGreaterThan(2);

    const ac = new AbortController();
    const gen = followAuditRecords(dir, { fromEnd: 12, signal: ac.signal, pollMs: 10 });
    let appended = 30;
    const seen = await take(gen, 12 + 25, async (r) => {
      // Once the backlog is out, keep writing (rotating several times) while following.
      if (r.seq === 30) {
        for (let i = 0; i < 25; i++) await store.append(cancel(++appended), { durable: i % 3 === 0 });
      }
    });
    ac.abort();
    expect(seen.map((r) => r.seq)).toEqual(Array.from({ length: 37 }, (_, i) => 19 + i));
    expect(store.stats.segment).toBeGreaterThan(4);
    await store.close();
  });

  it('waits for the first segment of an empty directory and stops on abort', async () => {
    const ac = new AbortController();
    const gen = followAuditRecords(dir, { signal: ac.signal, pollMs: 5 });
    const first = gen.next();
    const store = await FileAuditStore.open({ dir, logger: silent });
    await store.append(cancel(1), { durable: true });
    expect((await first).value).toMatchObject({ seq: 1 });
    const pending = gen.next();
    setTimeout(() => ac.abort(), 30);
    expect(await pending).toEqual({ done: true, value: undefined });
    await store.close();
  });

  it('with fromEnd 0 yields only new records', async () => {
    const store = await FileAuditStore.open({ dir, logger: silent });
    for (let i = 1; i <= 5; i++) await store.append(cancel(i), { durable: true });
    const ac = new AbortController();
    const gen = followAuditRecords(dir, { fromEnd: 0, signal: ac.signal, pollMs: 5 });
    const next = gen.next();
    await new Promise((r) => setTimeout(r, 20));
    await store.append(cancel(6), { durable: true });
    expect((await next).value).toMatchObject({ seq: 6 });
    ac.abort();
    await gen.return(undefined);
    await store.close();
  });
});
