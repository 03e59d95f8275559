/**
 * kill -9 under load: several sessions run reads, INSERTs and UPDATEs through the built gateway
 * in front of a throwaway PostgreSQL; the gateway is SIGKILLed mid-load. Then:
 *
 * - the trail verifies (a line cut off by the kill is the only problem allowed, and the store
 *   truncates it when it reopens);
 * - every privileged statement that reached the database (every row inserted, every row
 *   updated) has its `intent` record, which is fsynced before the statement is forwarded;
 * - every statement a client saw succeed has its record, reads included: the gateway hands a
 *   statement's record to the operating system before it writes the reply that carries the
 *   outcome, so a kill of the process cannot take it (a power cut could take what was not yet
 *   synced: reads are synced within the group-commit window);
 * - the gateway starts again on the same directories, appends, and the trail still verifies.
 *
 * Each statement names itself with an alias (`AS r_c3_n17`, `INSERT INTO t AS i_c3_n17`):
 * identifiers survive the audit's normalization (literals do not), so each record can be tied
 * to exactly one statement and each row to exactly one INSERT.
 */
import { startTempPostgres, type TempPostgres } from '@sluice/testkit';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pgClientOptions, readAuditDir, startGatewayProcess, verifyAudit, waitUntil, within, type GatewayProcess } from './support.js';

const RUNS = Number(process.env['SLUICE_KILL_RUNS'] ?? 2);
const CLIENTS = 6;
const LOAD_MS = 4000;
const GROUP_COMMIT_MS = 50;

type Kind = 'read' | 'insert' | 'update';
interface Acked {
  readonly alias: string;
  readonly kind: Kind;
  readonly at: number;
}

describe('kill -9 under load (throwaway PostgreSQL)', () => {
  let server: TempPostgres;
  const gateways: GatewayProcess[] = [];

  beforeAll(async () => {
    server = await startTempPostgres({ config: ['max_connections = 100'] });
  }, 120_000);

  afterAll(async () => {
    for (const g of gateways) await g.cli.stop('SIGKILL');
    await server?.stop();
  }, 60_000);

  it(`keeps every privileged and every acknowledged statement in a trail that verifies (${RUNS} runs)`, async () => {
    const figures: string[] = [];
    for (let run = 1; run <= RUNS; run++) {
      const table = `fault_kill_rows_${run}`;
      await server.psql(`CREATE TABLE ${table} (id serial PRIMARY KEY, v text UNIQUE NOT NULL, touched text)`);
      const gw = await startGatewayProcess({
        postgres: server.url('postgres', undefined, 'postgres'),
        rest: `audit:\n  groupCommitMs: ${GROUP_COMMIT_MS}\n`,
      });
      gateways.push(gw);

      const acked: Acked[] = [];
      const failures: string[] = [];
      let stopping = false;
      const clients = await Promise.all(
        Array.from({ length: CLIENTS }, async () => {
          const c = new pg.Client(pgClientOptions(gw));
          c.on('error', () => undefined);
          await c.connect();
          return c;
        }),
      );
      const loops = clients.map(async (c, ci) => {
        let lastInserted: string | undefined;
        for (let n = 1; !stopping; n++) {
          const k: Kind = n % 3 === 0 ? 'insert' : n % 3 === 1 ? 'read' : lastInserted ? 'update' : 'read';
          const alias = `${k[0]}_c${ci}_n${n}`;
          try {
            if (k === 'read') {
              // Simple protocol for half of the reads, extended for the other half.
              if (n % 2 === 0) await c.query(`SELECT 1 AS ${alias}`);
              else await c.query(`SELECT $1::int AS ${alias}`, [n]);
            } else if (k === 'insert') {
              await c.query(`INSERT INTO ${table} AS ${alias} (v) VALUES ($1)`, [alias]);
              lastInserted = alias;
            } else {
              await c.query(`UPDATE ${table} AS ${alias} SET touched = '${alias}' WHERE v = '${lastInserted}'`);
            }
            acked.push({ alias, kind: k, at: Date.now() });
          } catch (err) {
            if (!stopping) failures.push(`${alias}: ${(err as Error).message}`);
            return;
          }
        }
      });

      await new Promise((resolve) => setTimeout(resolve, LOAD_MS));
      const killedAt = Date.now();
      stopping = true;
      gw.cli.child.kill('SIGKILL');
      await gw.cli.stop('SIGKILL');
      // Every client in flight settles (with an error) once its connection drops.
      await within(Promise.all(loops), 15_000, 'the clients after the kill');
      await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
      expect(failures, 'no statement failed before the kill').toEqual([]);

      // The trail as the kill left it: intact but perhaps for a cut-off last line.
      const verified = verifyAudit(gw.file);
      const tornAtKill = verified.code !== 0;
      if (tornAtKill) {
        expect(verified.stderr + verified.stdout).toMatch(/is incomplete: the line has no end/);
      } else {
        expect(verified.stdout).toMatch(/audit trail intact/);
      }
      const { records } = readAuditDir(gw.auditDir);
      const intents = new Set<string>();
      const anyRecord = new Set<string>();
      for (const r of records) {
        if (r.type !== 'statement' || r.text === undefined) continue;
        const alias = /\b([riu]_c\d+_n\d+)\b/.exec(r.text)?.[1];
        if (alias === undefined) continue;
        anyRecord.add(alias);
        if (r.phase === 'intent') intents.add(alias);
      }

      // (1) Everything that reached the database has its intent record.
      const rows = (await server.psql(`SELECT v, coalesce(touched, '') FROM ${table}`))
        .trim()
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => l.split('|') as [string, string]);
      expect(rows.length, 'rows inserted before the kill').toBeGreaterThan(0);
      const reached = [...rows.map(([v]) => v), ...rows.map(([, t]) => t).filter((t) => t !== '')];
      const reachedWithoutIntent = reached.filter((a) => !intents.has(a));
      expect(reachedWithoutIntent, 'privileged statements that reached the database without an intent record').toEqual([]);

      // (2) Every acknowledged statement has its record.
      const ackedPrivileged = acked.filter((a) => a.kind !== 'read');
      expect(
        ackedPrivileged.filter((a) => !intents.has(a.alias)).map((a) => a.alias),
        'acknowledged privileged statements without an intent record',
      ).toEqual([]);
      expect(ackedPrivileged.length, 'privileged statements acknowledged before the kill').toBeGreaterThan(0);
      const ackedReads = acked.filter((a) => a.kind === 'read');
      expect(ackedReads.length, 'reads acknowledged before the kill').toBeGreaterThan(0);
      const readsMissing = ackedReads.filter((a) => !anyRecord.has(a.alias));
      expect(readsMissing.map((a) => `${a.alias} (${killedAt - a.at} ms before the kill)`), 'acknowledged reads without a record').toEqual([]);

      // (3) A restart on the same directories repairs, appends, and the trail verifies.
      const again = await startGatewayProcess({ postgres: server.url('postgres', undefined, 'postgres'), dir: gw.dir });
      gateways.push(again);
      const c = new pg.Client(pgClientOptions(again));
      await c.connect();
      await c.query(`INSERT INTO ${table} AS i_after_restart (v) VALUES ('after-restart-${run}')`);
      expect((await c.query('SELECT 1 AS r_after_restart')).rows).toEqual([{ r_after_restart: 1 }]);
      await c.end();
      expect(await again.cli.stop('SIGTERM')).toBe(0);
      const after = verifyAudit(again.file);
      expect(after.stderr).toBe('');
      expect(after.code).toBe(0);
      const recordsAfter = readAuditDir(again.auditDir);
      expect(recordsAfter.torn).toBe(0);
      expect(recordsAfter.records.length).toBeGreaterThan(records.length);
      expect(recordsAfter.records.some((r) => r.phase === 'intent' && r.text?.includes('i_after_restart'))).toBe(true);
      expect(recordsAfter.records.some((r) => r.text?.includes('r_after_restart'))).toBe(true);

      figures.push(
        `run ${run}: ${acked.length} acknowledged statements (${ackedReads.length} reads, ${ackedPrivileged.length} privileged), ` +
          `${rows.length} rows inserted and ${rows.filter(([, t]) => t !== '').length} updated at the kill, ` +
          `0 privileged without intent, ${readsMissing.length} acknowledged reads without a record` +
          `, trail ${tornAtKill ? 'had a cut-off last line (repaired at restart)' : 'intact at the kill'}, ${records.length} records`,
      );
      await waitUntil(() => again.cli.child.exitCode !== null, 10_000, 'the restarted gateway to exit');
    }
    process.stdout.write(`\n[faults/kill] groupCommitMs ${GROUP_COMMIT_MS}, ${CLIENTS} clients, ${LOAD_MS} ms of load per run\n${figures.map((f) => `[faults/kill] ${f}`).join('\n')}\n`);
  }, 300_000);
});
