import { execFileSync } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { readFile, readdir, stat, symlink, writeFile, appendFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { useTempDir } from '../test-support/temp-dir.js';
import { GENESIS_HASH, hashRecord } from './chain.js';
import { FileAuditStore } from './file-store.js';
import { readAuditRecords, verifyAuditLog } from './reader.js';
import type { AuditEvent, AuditRecord } from './types.js';

const actor = { subject: 'alice', kind: 'human', groups: ['dba', 'eng'], method: 'oidc' } as const;

function event(i: number): AuditEvent {
  switch (i % 4) {
    case 0:
      return {
        type: 'connect',
        time: new Date(Date.UTC(2024, 0, 1, 0, 0, 0, i)).toISOString(),
        dialect: 'postgres',
        sessionId: `s${i}`,
        sourceAddress: '10.0.0.1',
        outcome: 'accepted',
        username: 'alice',
        actor,
        target: 'prod',
        tls: true,
      };
    case 1:
      return {
        type: 'statement',
        time: new Date(Date.UTC(2024, 0, 1, 0, 0, 0, i)).toISOString(),
        dialect: 'postgres',
        sessionId: `s${i}`,
        phase: 'complete',
        statementId: `st${i}`,
        actor,
        target: 'prod',
        text: `SELECT * FROM t WHERE id = $1 -- ${i} "quoted", ünïcode`,
        fingerprint: 'ab'.repeat(8),
        operations: ['read'],
        protocol: 'simple',
        decision: 'allow',
        outcome: 'ok',
        rows: i,
        durationMs: 3,
      };
    case 2:
      return {
        type: 'cancel',
        time: new Date(Date.UTC(2024, 0, 1, 0, 0, 0, i)).toISOString(),
        dialect: 'postgres',
        outcome: 'forwarded',
        actor,
        target: 'prod',
      };
    default:
      return {
        type: 'disconnect',
        time: new Date(Date.UTC(2024, 0, 1, 0, 0, 0, i)).toISOString(),
        dialect: 'postgres',
        sessionId: `s${i}`,
        actor,
        target: 'prod',
        durationMs: 1234,
        statements: 7,
        reason: 'client',
      };
  }
}

const silent = { error: () => undefined };

const tempDir = useTempDir('sluice-audit-');
let dir: string;
beforeEach(() => {
  dir = tempDir();
});

async function collect(it: AsyncIterable<AuditRecord>): Promise<AuditRecord[]> {
  const out: AuditRecord[] = [];
  for await (const r of it) out.push(r);
  return out;
}

describe('FileAuditStore', () => {
  it('appends 1000 mixed durable and group-committed events into a chain that verifies', async () => {
    const store = await FileAuditStore.open({ dir, groupCommitMs: 5, logger: silent });
    const promises: Promise<AuditRecord>[] = [];
    for (let i = 0; i < 1000; i++) {
      promises.push(store.append(event(i), { durable: i % 7 === 0 }));
      if (i % 50 === 0) await new Promise((r) => setImmediate(r));
    }
    const records = await Promise.all(promises);
    expect(records.map((r) => r.seq)).toEqual(Array.from({ length: 1000 }, (_, i) => i + 1));
    expect(records[0]!.prev).toBe(GENESIS_HASH);
    for (let i = 1; i < records.length; i++) expect(records[i]!.prev).toBe(records[i - 1]!.hash);
    const { hash, ...rest } = records[500]!;
    expect(hashRecord(rest)).toBe(hash);
    await store.close();

    const result = await verifyAuditLog(dir);
    expect(result).toEqual({ ok: true, records: 1000, lastHash: records[999]!.hash });
    const read = await collect(readAuditRecords(dir));
    expect(read).toHaveLength(1000);
    expect(read[1]).toEqual(records[1]);
    expect(await readdir(dir)).toEqual(['audit-000001.jsonl']);
  });

  it('writes the documented line format', async () => {
    const store = await FileAuditStore.open({ dir, logger: silent });
    const r = await store.append(event(2), { durable: true });
    await store.close();
    const text = await readFile(join(dir, 'audit-000001.jsonl'), 'utf8');
    expect(text).toBe(
      `${JSON.stringify({ ...event(2), seq: 1, prev: GENESIS_HASH }).slice(0, -1)},"hash":"${r.hash}"}\n`,
    );
  });

  it('continues the chain after a reopen', async () => {
    let store = await FileAuditStore.open({ dir, logger: silent });
    for (let i = 0; i < 5; i++) await store.append(event(i), { durable: i === 4 });
    const head = store.lastHash;
    await store.close();

    store = await FileAuditStore.open({ dir, logger: silent });
    expect(store.stats.lastSeq).toBe(5);
    const next = await store.append(event(5), { durable: true });
    expect(next.seq).toBe(6);
    expect(next.prev).toBe(head);
    await store.close();
    expect(await verifyAuditLog(dir)).toMatchObject({ ok: true, records: 6 });
  });

  it('rotates segments and keeps one chain across them and across reopen', async () => {
    let store = await FileAuditStore.open({ dir, segmentBytes: 4096, groupCommitMs: 1, logger: silent });
    for (let i = 0; i < 60; i++) await store.append(event(i), { durable: i % 2 === 0 });
    expect(store.stats.rotations).toBeGreaterThan(2);
    await store.close();

    const files = (await readdir(dir)).sort();
    expect(files.length).toBeGreaterThan(3);
    expect(files[0]).toBe('audit-000001.jsonl');
    expect(files[1]).toBe('audit-000002.jsonl');
    // A segment ends at the limit plus the lines written while the next file was being opened.
    for (const f of files.slice(0, -1)) expect((await stat(join(dir, f))).size).toBeLessThan(4096 * 2);

    store = await FileAuditStore.open({ dir, segmentBytes: 4096, logger: silent });
    expect(store.stats.segment).toBe(files.length);
    const r = await store.append(event(60), { durable: true });
    expect(r.seq).toBe(61);
    await store.close();

    expect(await verifyAuditLog(dir)).toMatchObject({ ok: true, records: 61 });
    expect((await collect(readAuditRecords(dir))).map((x) => x.seq)).toEqual(
      Array.from({ length: 61 }, (_, i) => i + 1),
    );
  });

  it('truncates a torn last line on open, logs it, and continues the chain', async () => {
    let store = await FileAuditStore.open({ dir, logger: silent });
    for (let i = 0; i < 10; i++) await store.append(event(i), { durable: true });
    const head = store.lastHash;
    await store.close();
    const file = join(dir, 'audit-000001.jsonl');
    const good = await readFile(file, 'utf8');
    await appendFile(file, '{"actor":{"groups":["dba"],"ki');

    const verdict = await verifyAuditLog(dir);
    expect(verdict).toMatchObject({ ok: false, records: 10, problem: { kind: 'torn', line: 11 } });

    const logged: { obj: object; msg: string }[] = [];
    store = await FileAuditStore.open({ dir, logger: { error: (obj, msg) => logged.push({ obj, msg }) } });
    expect(logged).toHaveLength(1);
    expect(logged[0]!.msg).toMatch(/torn/);
    expect(await readFile(file, 'utf8')).toBe(good);
    const r = await store.append(event(10), { durable: true });
    expect(r).toMatchObject({ seq: 11, prev: head });
    await store.close();
    expect(await verifyAuditLog(dir)).toMatchObject({ ok: true, records: 11 });
  });

  it('copes with a torn line that is the whole last segment', async () => {
    let store = await FileAuditStore.open({ dir, segmentBytes: 1500, logger: silent });
    for (let i = 0; i < 4; i++) await store.append(event(i), { durable: true });
    const head = store.lastHash;
    const segment = store.stats.segment;
    await store.close();
    const next = join(dir, `audit-${String(segment + 1).padStart(6, '0')}.jsonl`);
    await writeFile(next, '{"seq":5,"ty');
    store = await FileAuditStore.open({ dir, segmentBytes: 1500, logger: silent });
    expect((await stat(next)).size).toBe(0);
    const r = await store.append(event(4), { durable: true });
    expect(r).toMatchObject({ seq: 5, prev: head });
    await store.close();
    expect(await verifyAuditLog(dir)).toMatchObject({ ok: true, records: 5 });
  });

  it('refuses to open when the last complete line is not a record', async () => {
    await writeFile(join(dir, 'audit-000001.jsonl'), 'not json\n');
    await expect(FileAuditStore.open({ dir, logger: silent })).rejects.toThrow(
      /cannot continue its chain: the last line of audit-000001\.jsonl is not valid JSON/,
    );
  });

  it('creates a missing directory', async () => {
    const nested = join(dir, 'a', 'b');
    const store = await FileAuditStore.open({ dir: nested, logger: silent });
    await store.append(event(0), { durable: true });
    await store.close();
    expect(await readdir(nested)).toEqual(['audit-000001.jsonl']);
  });

  it('becomes unhealthy and rejects every append once a write fails', async () => {
    // Writes to /dev/full fail with ENOSPC.
    await symlink('/dev/full', join(dir, 'audit-000001.jsonl'));
    const logged: string[] = [];
    const store = await FileAuditStore.open({ dir, groupCommitMs: 1000, logger: { error: (_o, m) => logged.push(m) } });
    expect(store.healthy).toBe(true);
    const queued = store.append(event(1), { durable: false });
    const first = store.append(event(0), { durable: true });
    await expect(first).rejects.toThrow(`the audit store cannot write to ${dir}: ENOSPC`);
    await expect(queued).rejects.toThrow(/cannot write to/);
    expect(store.healthy).toBe(false);
    const err = await first.catch((e: unknown) => e as Error);
    expect((err as Error).cause).toMatchObject({ code: 'ENOSPC' });
    await expect(store.append(event(2), { durable: false })).rejects.toThrow(/the audit store cannot write to/);
    await expect(store.append(event(3), { durable: true })).rejects.toThrow(/ENOSPC/);
    expect(logged).toHaveLength(1);
    await store.close();
  });

  it('rejects pending records on flush when the write fails', async () => {
    await symlink('/dev/full', join(dir, 'audit-000001.jsonl'));
    const store = await FileAuditStore.open({ dir, groupCommitMs: 10_000, logger: silent });
    const p = store.append(event(0), { durable: false });
    p.catch(() => undefined);
    await expect(store.flush()).rejects.toThrow(/cannot write to/);
    await expect(p).rejects.toThrow(/cannot write to/);
    await store.close();
  });

  it('group-commits non-durable appends: few batches and fsyncs for many appends', async () => {
    const store = await FileAuditStore.open({ dir, groupCommitMs: 30, logger: silent });
    const started = Date.now();
    const all: Promise<AuditRecord>[] = [];
    for (let i = 0; i < 500; i++) all.push(store.append(event(i), { durable: false }));
    await Promise.all(all);
    expect(Date.now() - started).toBeGreaterThanOrEqual(20);
    expect(store.stats).toMatchObject({ batches: 1, records: 500, syncs: 1 });
    await store.close();
  });

  it('writes a durable append at once, taking earlier buffered appends along', async () => {
    const store = await FileAuditStore.open({ dir, groupCommitMs: 60_000, logger: silent });
    const early = store.append(event(0), { durable: false });
    const started = Date.now();
    const r = await store.append(event(1), { durable: true });
    expect(Date.now() - started).toBeLessThan(5000);
    expect(r.seq).toBe(2);
    expect((await early).seq).toBe(1);
    expect(store.stats).toMatchObject({ batches: 1, records: 2 });
    await store.close();
  });

  it('batches durable appends made while a batch is in flight', async () => {
    const store = await FileAuditStore.open({ dir, groupCommitMs: 60_000, logger: silent });
    const first = store.append(event(0), { durable: true });
    await new Promise((r) => setImmediate(r));
    const rest: Promise<AuditRecord>[] = [];
    for (let i = 1; i <= 100; i++) rest.push(store.append(event(i), { durable: true }));
    await Promise.all([first, ...rest]);
    expect(store.stats.records).toBe(101);
    expect(store.stats.batches).toBeLessThanOrEqual(3);
    await store.close();
    expect(await verifyAuditLog(dir)).toMatchObject({ ok: true, records: 101 });
  });

  it('flush() writes what is buffered; close() flushes; appends after close reject', async () => {
    const store = await FileAuditStore.open({ dir, groupCommitMs: 60_000, logger: silent });
    const a = store.append(event(0), { durable: false });
    await store.flush();
    expect(store.stats.records).toBe(1);
    expect((await a).seq).toBe(1);
    const b = store.append(event(1), { durable: false });
    await store.close();
    expect((await b).seq).toBe(2);
    expect(store.healthy).toBe(false);
    await expect(store.append(event(2), { durable: true })).rejects.toThrow(/closed/);
    await store.close();
    expect(await verifyAuditLog(dir)).toMatchObject({ ok: true, records: 2 });
  });

  it('hands a record to the operating system before the append returns (it survives the process dying)', async () => {
    const store = await FileAuditStore.open({ dir, groupCommitMs: 60_000, logger: silent });
    store.enqueueJson(JSON.stringify(event(0)));
    void store.append(event(1), { durable: false });
    // No await: the lines are already in the file, long before the group commit.
    const text = readFileSync(join(dir, 'audit-000001.jsonl'), 'utf8');
    expect(text.split('\n').filter(Boolean).map((l) => JSON.parse(l).seq)).toEqual([1, 2]);
    expect(store.stats.records).toBe(0);
    await store.close();
    expect(await verifyAuditLog(dir)).toMatchObject({ ok: true, records: 2 });
  });

  it('reopens quickly after a very long last record (the tail is read in linear time)', async () => {
    const store = await FileAuditStore.open({ dir, logger: silent });
    await store.append({ ...event(0), file: 'x'.repeat(16 * 1024 * 1024) } as AuditEvent, { durable: true });
    await store.close();
    const started = Date.now();
    const again = await FileAuditStore.open({ dir, logger: silent });
    // Quadratic re-joining of the chunks read backwards took minutes for 64 MiB; linear is well under a second.
    expect(Date.now() - started).toBeLessThan(10_000);
    expect((await again.append(event(1), { durable: true })).seq).toBe(2);
    await again.close();
  });

  it('assigns chain order at call time', async () => {
    const store = await FileAuditStore.open({ dir, groupCommitMs: 1, logger: silent });
    const a = store.append(event(0), { durable: false });
    const b = store.append(event(1), { durable: true });
    const c = store.append(event(2), { durable: false });
    expect((await Promise.all([a, b, c])).map((r) => r.seq)).toEqual([1, 2, 3]);
    await store.close();
  });

  it('rejects bad options', async () => {
    await expect(FileAuditStore.open({ dir, segmentBytes: 0 })).rejects.toThrow(RangeError);
    await expect(FileAuditStore.open({ dir, groupCommitMs: -1 })).rejects.toThrow(RangeError);
  });

  it('fails closed when a write does not finish in time (a stalled disk)', async () => {
    // The second segment is a FIFO nobody reads: opening it for writing blocks, as a write to
    // a stalled disk would.
    const fifo = join(dir, 'audit-000002.jsonl');
    const store = await FileAuditStore.open({ dir, logger: silent, segmentBytes: 1, writeTimeoutMs: 300 });
    execFileSync('mkfifo', [fifo]);
    await store.append(event(1), { durable: true });
    const stalled = store.append(event(2), { durable: true });
    await expect(stalled).rejects.toThrow(/did not finish within 300 ms/);
    expect(store.healthy).toBe(false);
    await expect(store.append(event(3), { durable: false })).rejects.toThrow(/cannot write/);
    // Release the blocked open so the test leaves no thread behind.
    closeSync(openSync(fifo, 'r'));
    await store.close().catch(() => undefined);
  });
});
