/**
 * Two gateway replicas (the built CLI, two processes) on one shared PostgreSQL store
 * (`store: postgres://…`): a statement held for approval on replica A is approved through
 * replica B's admin API and released on A; the audit trail stays verifiable as one chain per
 * replica; and when the store goes away, both fail closed as configured and recover by
 * themselves. The upstream database is the real PostgreSQL at 127.0.0.1:5432; the store is a
 * throwaway server, so it can be stopped.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventually, requireService, startTempPostgres, type TempPostgres } from '@sluice/testkit';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, runCli, startCli, type RunningCli } from './helpers.js';

const ALICE = 'alice-token-replicas-0123456789';
const BOB = 'bob-token-replicas-0123456789ab';
const TABLE = 'replicas_e2e_orders';
const available = await requireService('PostgreSQL', '127.0.0.1', 5432);

interface Replica {
  readonly id: string;
  readonly config: string;
  readonly pgPort: number;
  readonly adminPort: number;
  cli: RunningCli;
}

async function direct<T>(work: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ host: '127.0.0.1', port: 5432, user: 'postgres', database: 'test' });
  await c.connect();
  try {
    return await work(c);
  } finally {
    await c.end();
  }
}

function client(r: Replica, notices: string[] = []): pg.Client {
  const c = new pg.Client({ host: '127.0.0.1', port: r.pgPort, user: 'alice@example.com', password: ALICE, database: 'app' });
  c.on('notice', (n) => notices.push(n.message ?? ''));
  c.on('error', () => undefined);
  return c;
}

async function admin(r: Replica, method: string, path: string): Promise<{ status: number; body: any }> {
  const res = await fetch(`http://127.0.0.1:${r.adminPort}${path}`, { method, headers: { authorization: `Bearer ${BOB}` } });
  return { status: res.status, body: await res.json().catch(() => null) };
}

describe.runIf(available)('two replicas on one PostgreSQL store', () => {
  let store: TempPostgres;
  const replicas: Replica[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'sluice-replicas-'));

  beforeAll(async () => {
    store = await startTempPostgres();
    await direct(async (c) => {
      await c.query(`DROP TABLE IF EXISTS ${TABLE}`);
      await c.query(`CREATE TABLE ${TABLE} (id int PRIMARY KEY, note text)`);
      await c.query(`INSERT INTO ${TABLE} SELECT g, 'new' FROM generate_series(1, 10) g`);
    });
    for (const [id, whenDown] of [['gw-a', 'refuse'], ['gw-b', 'allow-reads']] as const) {
      const pgPort = await freePort();
      const adminPort = await freePort();
      const config = join(dir, `${id}.yaml`);
      writeFileSync(
        config,
        `store: ${store.url()}
replicaId: ${id}
listen:
  postgres: 127.0.0.1:${pgPort}
admin: 127.0.0.1:${adminPort}
targets:
  - name: app
    dialect: postgres
    upstream: postgres://postgres@127.0.0.1:5432/test
identities:
  tokens:
    - { subject: alice@example.com, kind: human, groups: [analysts], token: ${ALICE} }
    - { subject: bob@example.com, kind: human, groups: [dba], token: ${BOB} }
audit:
  whenStoreUnavailable: ${whenDown}
approvals:
  timeoutSeconds: 120
  approvers: { groups: [dba] }
lineage: { enabled: false }
pidFile: ./${id}.pid
policy:
  default: deny
  rules:
    - { name: reads, identities: { groups: [analysts] }, operations: [read, transaction, session-setting], effect: allow }
    - { name: writes-need-review, identities: { groups: [analysts] }, operations: [write], effect: review }
`,
      );
      const cli = startCli(['start', '--config', config], {}, dir);
      replicas.push({ id, config, pgPort, adminPort, cli });
    }
    await Promise.all(replicas.map((r) => r.cli.waitFor(/admin API on/)));
  }, 180_000);

  afterAll(async () => {
    await Promise.all(replicas.map((r) => r.cli.stop()));
    await direct((c) => c.query(`DROP TABLE IF EXISTS ${TABLE}`)).catch(() => undefined);
    await store?.stop();
  });

  it('releases on replica A a statement approved through replica B', async () => {
    const [a, b] = replicas as [Replica, Replica];
    const notices: string[] = [];
    const c = client(a, notices);
    await c.connect();
    try {
      const held = c.query(`UPDATE ${TABLE} SET note = 'approved on b' WHERE id = 1`);
      const id = await eventually('the review request id in a notice', () => /\b(r-[0-9a-z]{6})\b/.exec(notices.join('\n'))?.[1]);
      // B has never seen this request in its own process: it reads it from the shared store.
      const seen = await eventually('replica B to read the request from the store', async () => {
        const r = await admin(b, 'GET', `/v1/approvals/${id}`);
        return r.status === 200 ? r.body.approval : undefined;
      });
      expect(seen).toMatchObject({ id, status: 'pending', requester: { subject: 'alice@example.com' } });
      const approved = await admin(b, 'POST', `/v1/approvals/${id}/approve`);
      expect(approved.status).toBe(200);
      const started = Date.now();
      const result = await held;
      const releaseMs = Date.now() - started;
      expect(result.rowCount).toBe(1);
      // Bounded by the store's poll interval (1 s) even if the notification were lost.
      expect(releaseMs).toBeLessThan(10_000);
      process.stdout.write(`cross-replica release: ${releaseMs} ms from B's approval to A's result\n`);
      const row = await direct((d) => d.query(`SELECT note FROM ${TABLE} WHERE id = 1`));
      expect(row.rows[0].note).toBe('approved on b');

      // Both replicas agree on the outcome.
      const onA = await eventually('replica A to record the execution', async () => {
        const r = await admin(a, 'GET', `/v1/approvals/${id}`);
        return r.body?.approval?.status === 'executed' ? r.body.approval : undefined;
      });
      expect(onA.decidedBy.subject).toBe('bob@example.com');

      // One trail, two verifiable chains: requested and executed on A, approved on B.
      const verify = runCli(['audit', 'verify', '--config', a.config], {}, dir);
      expect(verify.stdout).toMatch(/replica gw-a: \d+ records verified/);
      expect(verify.stdout).toMatch(/replica gw-b: \d+ records verified/);
      expect(verify.stdout).toMatch(/audit trail intact: \d+ records in 2 replica chain\(s\)/);
      expect(verify.code).toBe(0);
      const tail = runCli(['audit', 'tail', '-n', '200', '--json', '--config', b.config], {}, dir);
      const records = tail.stdout.trim().split('\n').map((l) => JSON.parse(l));
      const steps = records.filter((r) => r.type === 'approval' && r.requestId === id).map((r) => r.action);
      expect(steps).toEqual(['requested', 'approved', 'executed']);
      const statement = records.find((r) => r.type === 'statement' && r.phase === 'complete' && r.approval === id);
      expect(statement).toMatchObject({ outcome: 'ok', rows: 1, actor: { subject: 'alice@example.com' } });
    } finally {
      await c.end();
    }
  }, 120_000);

  it('refuses on replica A a statement rejected through replica B, with the reason', async () => {
    const [a, b] = replicas as [Replica, Replica];
    const notices: string[] = [];
    const c = client(a, notices);
    await c.connect();
    try {
      const held = c.query(`DELETE FROM ${TABLE} WHERE id = 2`).then(
        () => null,
        (err: Error) => err,
      );
      const id = await eventually('the review request id in a notice', () => /\b(r-[0-9a-z]{6})\b/.exec(notices.join('\n'))?.[1]);
      const rejected = await eventually('replica B to accept the rejection', async () => {
        const res = await fetch(`http://127.0.0.1:${b.adminPort}/v1/approvals/${id}/reject`, {
          method: 'POST',
          headers: { authorization: `Bearer ${BOB}`, 'content-type': 'application/json' },
          body: JSON.stringify({ reason: 'keep row 2' }),
        });
        return res.status === 200 ? res.status : undefined;
      });
      expect(rejected).toBe(200);
      const err = await held;
      expect(err?.message).toMatch(/keep row 2/);
      const row = await direct((d) => d.query(`SELECT count(*)::int AS n FROM ${TABLE} WHERE id = 2`));
      expect(row.rows[0].n).toBe(1);
    } finally {
      await c.end();
    }
  }, 120_000);

  it('with the store down: refuses writes everywhere, reads where configured, and recovers', async () => {
    const [a, b] = replicas as [Replica, Replica];
    const ca = client(a);
    const cb = client(b);
    await ca.connect();
    await cb.connect();
    try {
      const before = await ca.query(`SELECT count(*)::int AS n FROM ${TABLE}`);
      expect(before.rows[0].n).toBe(10);
      await store.pause();
      const down = Date.now();
      // Readiness says why, within a bound.
      const notReady = await eventually('replica A to report not ready', async () => {
        const r = await fetch(`http://127.0.0.1:${a.adminPort}/readyz`);
        return r.status === 503 ? await r.json() : undefined;
      });
      const noticedMs = Date.now() - down;
      expect(JSON.stringify(notReady)).toMatch(/cannot be reached/);
      // A (refuse): nothing runs. B (allow-reads): reads run, writes do not.
      await expect(ca.query(`SELECT count(*) FROM ${TABLE}`)).rejects.toThrow(/audit store cannot write/);
      await eventually('replica B to report not ready', async () => ((await fetch(`http://127.0.0.1:${b.adminPort}/readyz`)).status === 503 ? true : undefined));
      const readDuringOutage = await cb.query(`SELECT count(*)::int AS outage_read FROM ${TABLE}`);
      expect(readDuringOutage.rows[0].outage_read).toBe(10);
      await expect(cb.query(`UPDATE ${TABLE} SET note = 'x' WHERE id = 3`)).rejects.toThrow(/audit store cannot write/);
      // A new session needs a durable connect record: refused with a clear error.
      const late = client(b);
      await expect(late.connect()).rejects.toThrow(/audit store cannot write/);

      await store.resume();
      const back = Date.now();
      await eventually('replica A to be ready again', async () => ((await fetch(`http://127.0.0.1:${a.adminPort}/readyz`)).status === 200 ? true : undefined), 30_000);
      await eventually('replica B to be ready again', async () => ((await fetch(`http://127.0.0.1:${b.adminPort}/readyz`)).status === 200 ? true : undefined), 30_000);
      process.stdout.write(
        `store outage: not ready ${noticedMs} ms after the store stopped; both replicas ready ${Date.now() - back} ms after it accepted connections again\n`,
      );
      const after = await ca.query(`SELECT count(*)::int AS n FROM ${TABLE}`);
      expect(after.rows[0].n).toBe(10);

      // Nothing acknowledged was lost, and B's read during the outage was audited once it was back.
      const verify = runCli(['audit', 'verify', '--config', a.config], {}, dir);
      expect(verify.code).toBe(0);
      const tail = runCli(['audit', 'tail', '-n', '500', '--json', '--config', b.config], {}, dir);
      const texts = tail.stdout.trim().split('\n').map((l) => JSON.parse(l)).filter((r) => r.type === 'statement').map((r) => r.text as string);
      expect(texts.some((t) => t.includes('outage_read'))).toBe(true);
    } finally {
      await ca.end().catch(() => undefined);
      await cb.end().catch(() => undefined);
    }
  }, 180_000);
});
