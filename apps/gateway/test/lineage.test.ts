/**
 * Lineage end to end: the real gateway in front of the real PostgreSQL and MariaDB, statements
 * labelled with a job and run (a sqlcommenter comment, MySQL connection attributes), the
 * embedded lineage store answering `sluice lineage`, the admin API's lineage endpoints, and
 * OpenLineage events posted to a Marquez-compatible HTTP endpoint and validated against the
 * shipped schema.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ColumnReport, IdentityReport, TableReport } from '@sluice/core';
import { requireService } from '@sluice/testkit';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/load.js';
import { dialects } from '../src/dialects.js';
import { startGateway, type RunningGateway } from '../src/gateway.js';
import { createOpenLineageValidator } from '../../../packages/core/test/openlineage-schema/validate.js';
import { cli } from './helpers.js';

const validator = createOpenLineageValidator();

const PG = { host: '127.0.0.1', port: 5432 };
const MY = { host: '127.0.0.1', port: 3306 };
const ETL_TOKEN = 'etl-bot-lineage-token-0123456789';
const ANALYST_TOKEN = 'ann-lineage-token-0123456789';
const AUDITOR_TOKEN = 'carol-lineage-token-0123456789';

const pgUp = await requireService('PostgreSQL', PG.host, PG.port);
const myUp = await requireService('MariaDB', MY.host, MY.port);

interface Received {
  readonly body: Record<string, unknown>;
}

let dir: string;
let gateway: RunningGateway;
let marquez: Server;
const events: Received[] = [];
let pgPort = 0;
let myPort = 0;

async function adminGet(path: string, token: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${gateway.adminUrl}${path}`, { headers: { authorization: `Bearer ${token}` } });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function waitFor<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function eventsOf(job: string, type?: string): Record<string, unknown>[] {
  return events
    .map((e) => e.body)
    .filter((b) => (b.job as { name: string }).name === job && (type === undefined || b.eventType === type));
}

describe.runIf(pgUp && myUp)('lineage through the gateway (real PostgreSQL and MariaDB)', () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-lineage-e2e-'));
    marquez = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        if (req.method === 'POST' && req.url === '/api/v1/lineage') {
          events.push({ body: JSON.parse(body) as Record<string, unknown> });
          res.writeHead(201).end();
        } else {
          res.writeHead(404).end();
        }
      });
    });
    await new Promise<void>((r) => marquez.listen(0, '127.0.0.1', r));
    const marquezUrl = `http://127.0.0.1:${(marquez.address() as AddressInfo).port}`;

    const direct = new pg.Client({ host: PG.host, port: PG.port, user: 'postgres', database: 'test' });
    await direct.connect();
    await direct.query(`DROP TABLE IF EXISTS lin_e2e_people, lin_e2e_scores`);
    await direct.query(`CREATE TABLE lin_e2e_people (id int PRIMARY KEY, email text, team text, points int)`);
    await direct.query(`CREATE TABLE lin_e2e_scores (team text, members int, email_domain text, best int)`);
    await direct.query(`INSERT INTO lin_e2e_people VALUES (1, 'ann@example.com', 'red', 5), (2, 'bob@example.org', 'red', 7), (3, 'cy@example.net', 'blue', 2)`);
    await direct.end();
    const my = await mysql.createConnection({ host: MY.host, port: MY.port, user: 'root', database: 'test' });
    await my.query('DROP TABLE IF EXISTS lin_e2e_orders, lin_e2e_totals');
    await my.query('CREATE TABLE lin_e2e_orders (id int PRIMARY KEY, customer varchar(100), amount int)');
    await my.query('CREATE TABLE lin_e2e_totals (customer varchar(100), total int)');
    await my.query("INSERT INTO lin_e2e_orders VALUES (1, 'ann@example.com', 10), (2, 'ann@example.com', 5), (3, 'bob@example.org', 7)");
    await my.end();

    const file = join(dir, 'sluice.yaml');
    writeFileSync(
      file,
      `listen:
  postgres: 127.0.0.1:0
  mysql: 127.0.0.1:0
allowPlaintextLoopback: true
targets:
  - name: app
    dialect: postgres
    upstream: postgres://postgres@${PG.host}:${PG.port}/test
  - name: shop
    dialect: mysql
    upstream: mysql://root@${MY.host}:${MY.port}/test
identities:
  tokens:
    - { subject: etl-bot, kind: agent, groups: [pipelines], token: ${ETL_TOKEN} }
    - { subject: ann, kind: human, groups: [analysts], token: ${ANALYST_TOKEN} }
    - { subject: carol, kind: human, groups: [compliance], token: ${AUDITOR_TOKEN} }
policy:
  rules:
    - { name: pipelines, identities: { groups: [pipelines] }, operations: [read, write, transaction, session-setting], effect: allow }
    - { name: analysts, identities: { groups: [analysts] }, operations: [read, transaction, session-setting], effect: allow }
masking:
  hashKey: lineage-e2e-masking-key
  columns:
    - { column: lin_e2e_people.email, strategy: partial }
    - { column: lin_e2e_orders.customer, strategy: partial }
approvals:
  approvers: { groups: [compliance] }
lineage:
  store: ./lineage.db
  flushIntervalMs: 100
  openlineage:
    url: ${marquezUrl}
    queueDir: ./openlineage-queue
audit:
  dir: ./audit
  groupCommitMs: 5
admin: 127.0.0.1:0
log:
  level: silent
`,
    );
    gateway = await startGateway(loadConfig(file, dialects), pino({ level: 'silent' }));
    pgPort = gateway.addresses.find((a) => a.dialect === 'postgres')!.port;
    myPort = gateway.addresses.find((a) => a.dialect === 'mysql')!.port;
  });

  afterAll(async () => {
    await gateway?.close();
    await new Promise((r) => marquez?.close(r));
    if (dir) rmSync(dir, { recursive: true, force: true });
    if (pgUp) {
      const direct = new pg.Client({ host: PG.host, port: PG.port, user: 'postgres', database: 'test' });
      await direct.connect();
      await direct.query('DROP TABLE IF EXISTS lin_e2e_people, lin_e2e_scores');
      await direct.end();
    }
    if (myUp) {
      const my = await mysql.createConnection({ host: MY.host, port: MY.port, user: 'root', database: 'test' });
      await my.query('DROP TABLE IF EXISTS lin_e2e_orders, lin_e2e_totals');
      await my.end();
    }
  });

  it('PostgreSQL: a labelled INSERT ... SELECT records column flows, and reads record masking, per identity, job and run', async () => {
    const etl = new pg.Client({ host: '127.0.0.1', port: pgPort, user: 'etl-bot', password: ETL_TOKEN, database: 'app' });
    await etl.connect();
    const comment = `/* traceparent='00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',job='score-teams',run='2026-11-26' */`;
    await etl.query(
      `INSERT INTO lin_e2e_scores (team, members, email_domain, best) SELECT team, count(*), max(split_part(email, '@', 2)), max(points) FROM lin_e2e_people WHERE points > 0 GROUP BY team ${comment}`,
    );
    const read = await etl.query(`SELECT email, team FROM lin_e2e_people WHERE id = 1 ${comment}`);
    expect(read.rows[0].email).not.toBe('ann@example.com');
    await etl.end();
    const ann = new pg.Client({ host: '127.0.0.1', port: pgPort, user: 'ann', password: ANALYST_TOKEN, database: 'app', application_name: 'weekly-report' });
    await ann.connect();
    await ann.query('SELECT id, points FROM lin_e2e_people ORDER BY points');
    await ann.end();

    const column = await waitFor('the lineage of email', async () => {
      const r = await cli(['lineage', 'column', 'test.public.lin_e2e_people.email', '--config', join(dir, 'sluice.yaml'), '--json']);
      if (r.code !== 0) return undefined;
      const report = JSON.parse(r.stdout) as ColumnReport;
      return report.reads.length > 0 && report.flowedInto.length > 0 ? report : undefined;
    });
    const reads = column.reads.filter((r) => r.type === 'DIRECT');
    expect(reads).toHaveLength(1);
    expect(reads[0]).toMatchObject({ subject: 'etl-bot', kind: 'agent', job: 'score-teams', runKey: '2026-11-26', subtype: 'IDENTITY', masked: true, count: 1 });
    // email flowed, transformed, into email_domain; the masked read did not stop the write copying it in clear.
    const into = column.flowedInto.map((f) => `${f.to.name}.${f.to.field}:${f.type}:${f.subtype}`);
    expect(into).toContain('test.public.lin_e2e_scores.email_domain:DIRECT:AGGREGATION');
    expect(column.flowedInto.every((f) => f.subject === 'etl-bot' && f.job === 'score-teams')).toBe(true);

    const best = await cli(['lineage', 'column', 'test.public.lin_e2e_scores.best', '--config', join(dir, 'sluice.yaml'), '--json']);
    const bestReport = JSON.parse(best.stdout) as ColumnReport;
    expect(bestReport.cameFrom.map((f) => `${f.from.name}.${f.from.field}:${f.subtype}`)).toEqual(['test.public.lin_e2e_people.points:AGGREGATION']);

    // The team column grouped the written rows (an INDIRECT read) and was copied into scores.team.
    const team = await cli(['lineage', 'column', 'test.public.lin_e2e_people.team', '--config', join(dir, 'sluice.yaml'), '--json']);
    const teamReport = JSON.parse(team.stdout) as ColumnReport;
    expect(teamReport.reads.some((r) => r.subject === 'etl-bot' && r.type === 'INDIRECT' && r.subtype === 'GROUP_BY')).toBe(true);
    expect(teamReport.flowedInto.some((f) => f.to.field === 'team' && f.type === 'DIRECT' && f.subtype === 'IDENTITY')).toBe(true);

    // The analyst's job is her application name; her run is her session.
    const identity = await waitFor('ann in the store', async () => {
      const r = await cli(['lineage', 'identity', 'ann', '--config', join(dir, 'sluice.yaml'), '--json']);
      const report = JSON.parse(r.stdout) as IdentityReport;
      return report.reads.length > 0 ? report : undefined;
    });
    expect(identity.runs).toHaveLength(1);
    expect(identity.runs[0]!.job).toBe('weekly-report');
    expect(identity.runs[0]!.runKey).toBeUndefined();
    const annReads = identity.reads.map((r) => `${r.column.field}:${r.type}:${r.subtype}:${r.masked ?? '-'}`).sort();
    expect(annReads).toEqual(['id:DIRECT:IDENTITY:false', 'points:DIRECT:IDENTITY:false', 'points:INDIRECT:SORT:-']);

    // Human output answers the question in words.
    const human = await cli(['lineage', 'column', 'test.public.lin_e2e_people.email', '--config', join(dir, 'sluice.yaml')]);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/etl-bot\s+agent\s+score-teams\s+2026-11-26\s+DIRECT IDENTITY\s+yes/);
    expect(human.stdout).toContain('test.public.lin_e2e_scores');
  });

  it('PostgreSQL: OpenLineage events reach the HTTP endpoint, validate against the schema, and say what was masked', async () => {
    const complete = await waitFor('COMPLETE of score-teams', () => (eventsOf('score-teams', 'COMPLETE').length > 0 ? eventsOf('score-teams', 'COMPLETE') : undefined));
    for (const e of events) expect(validator.validate(e.body), JSON.stringify(e.body).slice(0, 400)).toEqual([]);
    const starts = eventsOf('score-teams', 'START');
    expect(starts).toHaveLength(1);
    const done = complete[0]!;
    const run = done.run as { runId: string; facets: { sluice_identity: Record<string, unknown> } };
    expect(run.runId).toBe((starts[0]!.run as { runId: string }).runId);
    expect(run.facets.sluice_identity).toMatchObject({ subject: 'etl-bot', kind: 'agent', runKey: '2026-11-26', traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' });
    const outputs = done.outputs as { namespace: string; name: string; facets: { columnLineage?: { fields: Record<string, { inputFields: { name: string; field: string; transformations: { type: string; subtype: string; masking?: boolean }[] }[] }> } } }[];
    const scores = outputs.find((o) => o.name === 'test.public.lin_e2e_scores')!;
    expect(scores.namespace).toBe('postgres://127.0.0.1:5432');
    const domain = scores.facets.columnLineage!.fields.email_domain!.inputFields;
    expect(domain.map((f) => `${f.name}.${f.field}:${f.transformations[0]!.subtype}`)).toEqual(['test.public.lin_e2e_people.email:AGGREGATION']);
    const result = outputs.find((o) => o.name.startsWith('results.') && o.facets.columnLineage?.fields.email !== undefined)!;
    const email = result.facets.columnLineage!.fields.email!.inputFields[0]!;
    expect(email).toMatchObject({ name: 'test.public.lin_e2e_people', field: 'email', transformations: [{ type: 'DIRECT', subtype: 'IDENTITY', masking: true }] });
    const teamCol = result.facets.columnLineage!.fields.team!.inputFields[0]!;
    expect(teamCol.transformations[0]!.masking).toBe(false);
  });

  it('MySQL: connection attributes name the job and run; datasets are named schema.table in the mysql:// namespace', async () => {
    const conn = await mysql.createConnection({
      host: '127.0.0.1',
      port: myPort,
      user: 'etl-bot',
      password: ETL_TOKEN,
      database: 'shop',
      connectAttributes: { job: 'totals', run: 'nightly-1' },
      authPlugins: { mysql_clear_password: () => () => Buffer.from(`${ETL_TOKEN}\0`) },
    });
    await conn.query('INSERT INTO lin_e2e_totals (customer, total) SELECT customer, sum(amount) FROM lin_e2e_orders GROUP BY customer');
    const [rows] = await conn.query('SELECT customer, amount FROM lin_e2e_orders WHERE id = 1');
    expect((rows as { customer: string }[])[0]!.customer).not.toBe('ann@example.com');
    await conn.end();

    const report = await waitFor('the lineage of customer', async () => {
      const r = await cli(['lineage', 'column', 'test.lin_e2e_orders.customer', '--config', join(dir, 'sluice.yaml'), '--namespace', 'mysql://127.0.0.1:3306', '--json']);
      if (r.code !== 0) return undefined;
      const c = JSON.parse(r.stdout) as ColumnReport;
      return c.reads.some((x) => x.type === 'DIRECT') && c.flowedInto.length > 0 ? c : undefined;
    });
    expect(report.reads.find((r) => r.type === 'DIRECT')).toMatchObject({ subject: 'etl-bot', job: 'totals', runKey: 'nightly-1', masked: true });
    expect(report.flowedInto.map((f) => `${f.to.namespace} ${f.to.name}.${f.to.field}:${f.type}:${f.subtype}`)).toContain(
      'mysql://127.0.0.1:3306 test.lin_e2e_totals.customer:DIRECT:IDENTITY',
    );
    const table = await cli(['lineage', 'table', 'test.lin_e2e_totals', '--config', join(dir, 'sluice.yaml'), '--json']);
    const t = JSON.parse(table.stdout) as TableReport;
    expect(t.writtenFrom.map((f) => `${f.from.field}->${f.to.field}:${f.subtype}`).sort()).toEqual(
      expect.arrayContaining(['amount->total:AGGREGATION', 'customer->customer:IDENTITY']),
    );
    expect(t.statements.some((s) => s.operation === 'INSERT' && s.subject === 'etl-bot')).toBe(true);
  });

  it('the admin API answers lineage to readers and to an identity about itself, and refuses others', async () => {
    const name = encodeURIComponent('test.public.lin_e2e_people.email');
    const asReader = await adminGet(`/v1/lineage/column/${name}?since=1h`, AUDITOR_TOKEN);
    expect(asReader.status).toBe(200);
    const report = asReader.body.report as ColumnReport;
    expect(report.reads.some((r) => r.subject === 'etl-bot' && r.masked === true)).toBe(true);
    const asAnalyst = await adminGet(`/v1/lineage/column/${name}`, ANALYST_TOKEN);
    expect(asAnalyst.status).toBe(403);
    const self = await adminGet('/v1/lineage/identity/ann', ANALYST_TOKEN);
    expect(self.status).toBe(200);
    expect((self.body.report as IdentityReport).subject).toBe('ann');
    const other = await adminGet('/v1/lineage/identity/etl-bot', ANALYST_TOKEN);
    expect(other.status).toBe(403);
    const bad = await adminGet(`/v1/lineage/column/${name}?since=yesterday-ish`, AUDITOR_TOKEN);
    expect(bad.status).toBe(400);
  });
});
