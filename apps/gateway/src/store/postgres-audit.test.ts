/**
 * The PostgreSQL audit store against real servers: the shared one at 127.0.0.1:5432 (in a schema
 * of this file's own) for chains, verification and tampering; a throwaway server for an outage.
 */
import { requireService, startTempPostgres, type TempPostgres } from '@sluice/testkit';
import type { AuditEvent } from '@sluice/core';
import pg from 'pg';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openPostgresAuditStore, type PostgresAuditStore } from './postgres-audit.js';
import { readPostgresAudit, streamPostgresAudit, verifyPostgresAudit } from './postgres-audit-reader.js';

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

const URL = 'postgres://postgres@127.0.0.1:5432/test';
const SCHEMA = 'sluice_audit_store_test';
const logger = pino({ level: 'silent' });
const available = await requireService('PostgreSQL', '127.0.0.1', 5432);

function event(i: number, type: 'statement' | 'config' = 'config'): AuditEvent {
  return { type, time: new Date().toISOString(), dialect: 'sluice', action: 'loaded', file: `f-${i}.yaml` } as AuditEvent;
}

async function sql(text: string, params: unknown[] = [], url = URL): Promise<pg.QueryResult> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await c.query(text, params);
  } finally {
    await c.end();
  }
}

async function until(cond: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe.runIf(available)('PostgreSQL audit store (one chain per replica)', () => {
  beforeAll(async () => {
    await sql(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`);
  });
  afterAll(async () => {
    await sql(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`);
  });

  const open = (replicaId: string, extra: Partial<Parameters<typeof openPostgresAuditStore>[0]> = {}): Promise<PostgresAuditStore> =>
    openPostgresAuditStore({ url: URL, replicaId, logger, schema: SCHEMA, groupCommitMs: 5, ...extra });

  it('appends a chain, continues it after a reopen, and verifies it with the other replicas', async () => {
    const a = await open('replica-a');
    const b = await open('replica-b');
    const first = await a.append(event(1), { durable: true });
    expect(first.seq).toBe(1);
    for (let i = 2; i <= 50; i++) a.enqueueJson(JSON.stringify(event(i)));
    await Promise.all([b.append(event(100), { durable: true }), b.appendJson(JSON.stringify(event(101)), { durable: false })]);
    await a.flush();
    expect(a.stats.syncedSeq).toBe(50);
    await a.close();
    const again = await open('replica-a');
    const next = await again.append(event(51), { durable: true });
    expect(next.seq).toBe(51);
    await again.close();
    await b.close();

    const v = await verifyPostgresAudit(URL, SCHEMA);
    expect(v.ok).toBe(true);
    expect(v.chains.map((c) => [c.replica, c.records])).toEqual([
      ['replica-a', 51],
      ['replica-b', 2],
    ]);
    const records = await collect(streamPostgresAudit(URL, { schema: SCHEMA }));
    expect(records).toHaveLength(53);
    // Read in pages of 7: the same records in the same order, none twice.
    const paged = await collect(streamPostgresAudit(URL, { schema: SCHEMA, pageSize: 7 }));
    expect(paged.map((r) => `${r.replica}:${r.record.seq}`)).toEqual(records.map((r) => `${r.replica}:${r.record.seq}`));
    expect(records.filter((r) => r.replica === 'replica-a').map((r) => r.record.seq)).toEqual(Array.from({ length: 51 }, (_, i) => i + 1));
    expect((await readPostgresAudit(URL, { schema: SCHEMA, last: 3 })).length).toBe(3);
  });

  it('refuses a second writer on the same replica chain, naming the fix', async () => {
    const a = await open('replica-lock');
    await expect(open('replica-lock')).rejects.toThrow(/another gateway is writing the audit chain of replica "replica-lock".*own replicaId/);
    await a.close();
    const b = await open('replica-lock');
    await b.close();
  });

  it('catches an edited record, a removed record and records cut from the end', async () => {
    const s = await open('replica-tamper');
    for (let i = 1; i <= 10; i++) await s.append(event(i), { durable: i % 3 === 0 });
    await s.flush();
    await s.close();
    expect((await verifyPostgresAudit(URL, SCHEMA)).ok).toBe(true);

    const original = (await sql(`SELECT line FROM ${SCHEMA}.audit_records WHERE replica = 'replica-tamper' AND seq = 4`)).rows[0].line as string;
    await sql(`UPDATE ${SCHEMA}.audit_records SET line = replace(line, 'f-4.yaml', 'f-X.yaml') WHERE replica = 'replica-tamper' AND seq = 4`);
    let v = await verifyPostgresAudit(URL, SCHEMA);
    expect(v.ok).toBe(false);
    expect(v.chains.find((c) => c.replica === 'replica-tamper')?.problem).toMatch(/seq 4 .* was edited/);
    await sql(`UPDATE ${SCHEMA}.audit_records SET line = $1 WHERE replica = 'replica-tamper' AND seq = 4`, [original]);

    await sql(`DELETE FROM ${SCHEMA}.audit_records WHERE replica = 'replica-tamper' AND seq = 6`);
    v = await verifyPostgresAudit(URL, SCHEMA);
    expect(v.chains.find((c) => c.replica === 'replica-tamper')?.problem).toMatch(/record seq 7 .* seq 6 is missing/);

    await sql(`DELETE FROM ${SCHEMA}.audit_records WHERE replica = 'replica-tamper' AND seq >= 6`);
    v = await verifyPostgresAudit(URL, SCHEMA);
    expect(v.chains.find((c) => c.replica === 'replica-tamper')?.problem).toMatch(/ends at seq 5 but its head says seq 10: records were removed from its end/);
    await sql(`DELETE FROM ${SCHEMA}.audit_heads WHERE replica = 'replica-tamper'`);
    v = await verifyPostgresAudit(URL, SCHEMA);
    expect(v.chains.find((c) => c.replica === 'replica-tamper')?.problem).toMatch(/have no chain head/);
    await sql(`DELETE FROM ${SCHEMA}.audit_records WHERE replica = 'replica-tamper'`);
  });
});

describe.runIf(available)('PostgreSQL audit store through an outage of its server', () => {
  let server: TempPostgres;
  beforeAll(async () => {
    server = await startTempPostgres();
  }, 120_000);
  afterAll(async () => {
    await server?.stop();
  });

  it('refuses while down, keeps what it was given, and writes it when the server is back', async () => {
    const store = await openPostgresAuditStore({ url: server.url(), replicaId: 'outage', logger, groupCommitMs: 5, deferWhileUnavailable: true, retryMs: 50 });
    try {
      for (let i = 1; i <= 20; i++) await store.append(event(i), { durable: true });
      expect(store.healthy).toBe(true);
      expect(store.deferring).toBe(false);

      await server.pause();
      await until(() => !store.healthy);
      expect(store.deferring).toBe(true);
      expect(store.problem).toMatch(/cannot be reached/);
      // A durable append (a privileged statement's intent) is refused at once, not held.
      const started = Date.now();
      await expect(store.append(event(21), { durable: true })).rejects.toThrow(/cannot be reached/);
      expect(Date.now() - started).toBeLessThan(5_000);
      // Records of reads are kept for later.
      for (let i = 22; i <= 40; i++) store.enqueueJson(JSON.stringify(event(i)));

      await server.resume();
      await until(() => store.healthy, 30_000);
      await store.flush();
      const last = await store.append(event(41), { durable: true });
      // Nothing acknowledged was lost and the chain has no gap: 20 + 19 kept + 1.
      expect(last.seq).toBe(40);
    } finally {
      await store.close();
    }
    const v = await verifyPostgresAudit(server.url());
    expect(v).toMatchObject({ ok: true, records: 40 });
    const files = (await collect(streamPostgresAudit(server.url()))).map((r) => (r.record as unknown as { file: string }).file);
    expect(files).toContain('f-20.yaml');
    expect(files).toContain('f-40.yaml');
    expect(files).not.toContain('f-21.yaml');
  }, 120_000);

  it('stops admitting reads before its backlog is full, and is unhealthy while the backlog overflows', async () => {
    const store = await openPostgresAuditStore({ url: server.url(), replicaId: 'outage-bounded', logger, groupCommitMs: 5, deferWhileUnavailable: true, retryMs: 50, maxPendingRecords: 10 });
    try {
      await store.append(event(1), { durable: true });
      await server.pause();
      await until(() => !store.healthy);
      for (let i = 0; i < 8; i++) store.enqueueJson(JSON.stringify(event(100 + i)));
      expect(store.deferring).toBe(true);
      store.enqueueJson(JSON.stringify(event(108)));
      // A margin below the cap: reads already admitted still find room.
      expect(store.deferring).toBe(false);
      store.enqueueJson(JSON.stringify(event(109)));
      store.enqueueJson(JSON.stringify(event(110)));
      expect(store.stats.dropped).toBe(1);
      await server.resume();
      await until(() => store.healthy, 30_000);
      expect(store.stats.pending).toBe(0);
    } finally {
      await store.close();
    }
    expect((await verifyPostgresAudit(server.url())).chains.find((c) => c.replica === 'outage-bounded')).toMatchObject({ records: 11 });
  }, 120_000);

  it('without deferring, refuses everything while down and recovers by itself', async () => {
    const store = await openPostgresAuditStore({ url: server.url(), replicaId: 'outage-strict', logger, groupCommitMs: 5, retryMs: 50 });
    try {
      await store.append(event(1), { durable: true });
      // (fast: this throwaway server runs without synchronous commits, so an immediate
      // shutdown could lose what it had acknowledged, which is not what is tested here)
      await server.restart('fast');
      // The connection broke under it: the next write finds out, or the error event did.
      await store.append(event(2), { durable: true }).catch(() => undefined);
      await until(() => store.healthy, 30_000);
      expect(store.deferring).toBe(false);
      const r = await store.append(event(3), { durable: true });
      expect(r.seq).toBeGreaterThanOrEqual(2);
    } finally {
      await store.close();
    }
    expect((await verifyPostgresAudit(server.url())).chains.find((c) => c.replica === 'outage-strict')?.problem).toBeUndefined();
  }, 120_000);
});
