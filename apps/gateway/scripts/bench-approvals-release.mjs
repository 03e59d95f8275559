#!/usr/bin/env node
// How long a statement held on one gateway replica waits after an approval made through another
// one: two approvals services in this process on one PostgreSQL database (each with its own
// pool, LISTEN connection and audit trail), N approvals made on B, each timed from the start of
// B's approve() to A's ticket settling.
//
//   node apps/gateway/scripts/bench-approvals-release.mjs [notify|poll] [approvals] [pollIntervalMs]
//
// notify: A listens (NOTIFY) and polls; poll: A only polls (as when its LISTEN connection is
// down). Uses SLUICE_TEST_POSTGRES_URL (default the local `test` database) and a schema of its
// own, dropped before and after. Build first (pnpm build).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { pino } from 'pino';
import { FileAuditStore, openApprovals } from '@sluice/core';
import { openPostgresApprovalBackend } from '../dist/store/postgres-approvals.js';

const mode = process.argv[2] ?? 'notify';
if (!['notify', 'poll'].includes(mode)) throw new Error(`unknown mode ${mode}: notify or poll`);
const count = Number(process.argv[3] ?? 50);
const pollIntervalMs = Number(process.argv[4] ?? 1000);
if (!Number.isInteger(count) || count < 1) throw new Error(`approvals must be a positive whole number, got ${process.argv[3]}`);
if (!(pollIntervalMs > 0)) throw new Error(`pollIntervalMs must be a positive number, got ${process.argv[4]}`);
const url = process.env.SLUICE_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const schema = 'sluice_approvals_bench';
const logger = pino({ level: 'silent' });
const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-approvals-'));

async function dropSchema() {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await client.end();
}

async function replica(id, listen) {
  const audit = await FileAuditStore.open({ dir: join(dir, id), groupCommitMs: 5, logger });
  const backend = await openPostgresApprovalBackend({ url, replicaId: id, logger, schema, pollIntervalMs, listen });
  const approvals = await openApprovals({ backend, replicaId: id, audit, logger, approvers: { groups: ['dba'], subjects: [] } });
  return { approvals, audit };
}

await dropSchema();
const a = await replica('bench-a', mode === 'notify');
const b = await replica('bench-b', true);
const alice = { subject: 'alice', kind: 'human', groups: [], method: 'oidc' };
const bob = { subject: 'bob', kind: 'human', groups: ['dba'], method: 'oidc' };
const times = [];
for (let i = 0; i < count; i++) {
  const ticket = await a.approvals.request({
    dialect: 'postgres', sessionId: 's', statementId: `st-${i}`, requester: alice, target: 'prod',
    statement: 'DELETE FROM t WHERE id = 1', normalized: 'DELETE FROM t WHERE id = $1', fingerprint: 'f', digest: 'd',
    operations: ['write'], objects: [], hazards: [], rule: 'bench', why: 'bench',
    approvers: { groups: ['dba'], subjects: [] }, timeoutMs: 60_000,
  });
  // B decides at a random moment of A's poll period, like an admin API call that arrives at any time.
  await new Promise((r) => setTimeout(r, Math.random() * pollIntervalMs));
  const started = performance.now();
  await b.approvals.approve(ticket.request.id, bob);
  await ticket.settled;
  times.push(performance.now() - started);
  if (!(await a.approvals.consume(ticket.request.id, 'd'))) throw new Error('the approved statement was not released');
}
for (const r of [a, b]) {
  await r.approvals.close();
  await r.audit.close();
}
await dropSchema();
rmSync(dir, { recursive: true, force: true });
times.sort((x, y) => x - y);
const at = (q) => times[Math.min(times.length - 1, Math.floor(q * times.length))];
console.log(
  `${mode}: ${count} approvals on B released on A (poll every ${pollIntervalMs} ms): ` +
    `median ${at(0.5).toFixed(1)} ms, p90 ${at(0.9).toFixed(1)} ms, max ${times[times.length - 1].toFixed(1)} ms, min ${times[0].toFixed(1)} ms`,
);
