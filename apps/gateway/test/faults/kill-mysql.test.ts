/**
 * kill -9 under load on the MySQL listener: several mysql2 sessions run reads (text and
 * prepared), INSERTs and UPDATEs through the built gateway in front of a throwaway MariaDB; the
 * gateway is SIGKILLed mid-load. Then, as for PostgreSQL (kill.test.ts): the trail verifies,
 * every row that reached the database has its `intent` record, and every statement a client saw
 * succeed has its record, reads included (the relay records a statement's outcome before it
 * writes the reply, and the audit store hands each record to the operating system at once).
 *
 * Statements name themselves with an alias (`SELECT 1 AS r_c3_n17`, `INSERT INTO t (v) SELECT …
 * AS i_c3_n17`): identifiers survive the audit's normalization, literals do not.
 */
import { startTempMariaDb, type TempMariaDb } from '@sluice/testkit';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { myClientOptions, readAuditDir, startGatewayProcess, verifyAudit, within, type GatewayProcess } from './support.js';

const RUNS = Number(process.env['SLUICE_KILL_RUNS'] ?? 1);
const CLIENTS = 6;
const LOAD_MS = 4000;

type Kind = 'read' | 'insert' | 'update';

describe('kill -9 under load (throwaway MariaDB)', () => {
  let server: TempMariaDb;
  const gateways: GatewayProcess[] = [];

  beforeAll(async () => {
    server = await startTempMariaDb();
  }, 120_000);

  afterAll(async () => {
    for (const g of gateways) await g.cli.stop('SIGKILL');
    await server?.stop();
  }, 60_000);

  it(`keeps every privileged and every acknowledged statement in a trail that verifies (${RUNS} run(s))`, async () => {
    const figures: string[] = [];
    for (let run = 1; run <= RUNS; run++) {
      const table = `fault_kill_my_${run}`;
      await server.query(`CREATE TABLE ${table} (id int AUTO_INCREMENT PRIMARY KEY, v varchar(64) UNIQUE NOT NULL, touched varchar(64))`, 'test');
      const gw = await startGatewayProcess({ mysql: server.url('root'), rest: 'audit:\n  groupCommitMs: 50\n' });
      gateways.push(gw);

      const acked: { alias: string; kind: Kind }[] = [];
      const failures: string[] = [];
      let stopping = false;
      const clients = await Promise.all(Array.from({ length: CLIENTS }, () => mysql.createConnection(myClientOptions(gw))));
      for (const c of clients) c.on('error', () => undefined);
      const loops = clients.map(async (c, ci) => {
        let lastInserted: string | undefined;
        for (let n = 1; !stopping; n++) {
          const k: Kind = n % 3 === 0 ? 'insert' : n % 3 === 1 ? 'read' : lastInserted ? 'update' : 'read';
          const alias = `${k[0]}_c${ci}_n${n}`;
          try {
            if (k === 'read') {
              // Text protocol for half of the reads, prepared statements for the other half.
              if (n % 2 === 0) await c.query(`SELECT 1 AS ${alias}`);
              else await c.execute(`SELECT ? + 0 AS ${alias}`, [n]);
            } else if (k === 'insert') {
              await c.query(`INSERT INTO ${table} (v) SELECT ? AS ${alias}`, [alias]);
              lastInserted = alias;
            } else {
              await c.query(`UPDATE ${table} AS ${alias} SET touched = ? WHERE v = ?`, [alias, lastInserted]);
            }
            acked.push({ alias, kind: k });
          } catch (err) {
            if (!stopping) failures.push(`${alias}: ${(err as Error).message}`);
            return;
          }
        }
      });

      await new Promise((resolve) => setTimeout(resolve, LOAD_MS));
      stopping = true;
      gw.cli.child.kill('SIGKILL');
      await gw.cli.stop('SIGKILL');
      await within(Promise.all(loops), 15_000, 'the clients after the kill');
      await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
      expect(failures, 'no statement failed before the kill').toEqual([]);

      const verified = verifyAudit(gw.file);
      expect(verified.stdout + verified.stderr).toMatch(/audit trail intact|is incomplete: the line has no end/);
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
      const cells = (await server.query(`SELECT v, COALESCE(touched, '') FROM ${table}`, 'test'))
        .trim()
        .split('\n')
        .flatMap((l) => l.split('\t').map((x) => x.trim()))
        .filter((x) => /^[iu]_c\d+_n\d+$/.test(x));
      const inserted = cells.filter((x) => x.startsWith('i_'));
      const updated = cells.filter((x) => x.startsWith('u_'));
      expect(inserted.length).toBeGreaterThan(0);
      expect(cells.filter((v) => !intents.has(v)), 'rows inserted or updated without an intent record').toEqual([]);
      const ackedPrivileged = acked.filter((a) => a.kind !== 'read');
      expect(ackedPrivileged.filter((a) => !intents.has(a.alias)).map((a) => a.alias), 'acknowledged privileged statements without an intent record').toEqual([]);
      expect(ackedPrivileged.length, 'privileged statements acknowledged before the kill').toBeGreaterThan(0);
      const ackedReads = acked.filter((a) => a.kind === 'read');
      expect(ackedReads.length, 'reads acknowledged before the kill').toBeGreaterThan(0);
      const readsMissing = ackedReads.filter((a) => !anyRecord.has(a.alias));
      expect(readsMissing.map((a) => a.alias), 'acknowledged reads without a record').toEqual([]);
      figures.push(
        `run ${run}: ${acked.length} acknowledged statements (${ackedReads.length} reads, ${acked.length - ackedReads.length} privileged), ` +
          `${inserted.length} rows inserted and ${updated.length} updated at the kill, 0 privileged without intent, ` +
          `${readsMissing.length} acknowledged reads without a record, ${records.length} records`,
      );
    }
    process.stdout.write(`\n[faults/kill-mysql] ${CLIENTS} clients, ${LOAD_MS} ms of load per run\n${figures.map((f) => `[faults/kill-mysql] ${f}`).join('\n')}\n`);
  }, 300_000);
});
