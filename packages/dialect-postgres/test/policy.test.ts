import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { requireService, startTestGateway, type TestGateway } from '@sluice/testkit';
import pg from 'pg';
import { serialize } from 'pg-protocol';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { postgresDialect } from '../src/index.js';
import { connectPg } from './pg-driver.js';
import { liveTest, rawClient } from './support.js';

/**
 * Policy and guardrails through the gateway against the real PostgreSQL: what is denied never
 * reaches the database, look-alikes pass, and the session stays usable after a refusal.
 */
const run = promisify(execFile);
const UPSTREAM = 'postgres://postgres@127.0.0.1:5432/test';

const ALICE = { subject: 'alice@example.com', kind: 'human', groups: ['analysts'], token: 'alice-policy-token' } as const;
const DAVE = { subject: 'dave@example.com', kind: 'human', groups: ['dba'], token: 'dave-policy-token' } as const;
const ETL = { subject: 'etl', kind: 'service', groups: ['pipelines'], token: 'etl-policy-token' } as const;
const BOT = { subject: 'report-bot', kind: 'agent', groups: ['analysts'], token: 'bot-policy-token' } as const;

const POLICY = {
  rules: [
    { name: 'analysts-read', identities: { groups: ['analysts'] }, operations: ['read', 'transaction', 'session-setting'], effect: 'allow' },
    { name: 'agents-no-secrets', identities: { kinds: ['agent'] }, objects: ['sluice_pol_secrets'], effect: 'deny' },
    {
      name: 'dba-everything',
      identities: { groups: ['dba'] },
      operations: ['read', 'write', 'ddl', 'admin', 'privilege', 'transaction', 'session-setting', 'copy-in', 'copy-out', 'unknown'],
      effect: 'allow',
    },
    { name: 'pipelines-write', identities: { groups: ['pipelines'] }, operations: ['read', 'write', 'transaction'], effect: 'allow' },
    { name: 'etl-may-truncate-staging', identities: { subjects: ['etl'] }, targets: ['app'], objects: ['sluice_pol_staging'], guardrails: { truncate: 'off' } },
  ],
};

let gw: TestGateway;
let available = false;
let direct: pg.Client;

beforeAll(async () => {
  available = await requireService('PostgreSQL', '127.0.0.1', 5432);
  if (!available) return;
  gw = await startTestGateway({ dialect: postgresDialect, targets: { app: { upstream: UPSTREAM } }, tokens: [ALICE, DAVE, ETL, BOT], policy: POLICY });
  direct = new pg.Client({ connectionString: UPSTREAM });
  await direct.connect();
  await direct.query('DROP TABLE IF EXISTS sluice_pol_t, sluice_pol_staging, sluice_pol_secrets, drop_log');
  await direct.query('DROP SCHEMA IF EXISTS sluice_pol_schema CASCADE');
  await direct.query('CREATE TABLE sluice_pol_t (id int primary key, note text, extra int)');
  await direct.query("INSERT INTO sluice_pol_t VALUES (1, 'a', 1), (2, 'b', 2), (3, 'c', 3)");
  await direct.query('CREATE TABLE sluice_pol_staging (id int)');
  await direct.query('INSERT INTO sluice_pol_staging VALUES (1), (2)');
  await direct.query('CREATE TABLE sluice_pol_secrets (id int, secret text)');
  await direct.query('CREATE TABLE drop_log (id int, what text)');
  await direct.query('CREATE SCHEMA sluice_pol_schema');
});

afterAll(async () => {
  if (direct) {
    await direct.query('DROP TABLE IF EXISTS sluice_pol_t, sluice_pol_staging, sluice_pol_secrets, drop_log');
    await direct.query('DROP SCHEMA IF EXISTS sluice_pol_schema CASCADE');
    await direct.end();
  }
  await gw?.close();
});

const live = liveTest(() => available);

const as = (who: { subject: string; token: string }) => connectPg(gw, 'app', who.subject, who.token);
const count = async (table: string) => Number((await direct.query(`SELECT count(*) AS n FROM ${table}`)).rows[0].n);
const tableExists = async (table: string) => (await direct.query('SELECT to_regclass($1) AS t', [table])).rows[0].t !== null;

describe('policy through the gateway', () => {
  live('allows what a rule allows and denies the rest by default, naming the rule (42501)', async () => {
    const c = await as(ALICE);
    expect((await c.query('SELECT count(*)::int AS n FROM sluice_pol_t')).rows[0].n).toBe(3);
    await expect(c.query("UPDATE sluice_pol_t SET note = 'x' WHERE id = 1")).rejects.toMatchObject({
      code: '42501',
      message: expect.stringMatching(/no policy rule allows write/),
    });
    // Refused statements do not end the session.
    expect((await c.query('SELECT 1 AS one')).rows[0].one).toBe(1);
    await c.end();
    expect((await direct.query('SELECT note FROM sluice_pol_t WHERE id = 1')).rows[0].note).toBe('a');
    const records = await gw.auditRecords();
    const denied = records.filter((r) => r.type === 'statement' && r.actor.subject === ALICE.subject && r.decision === 'deny');
    expect(denied.map((r) => r.type === 'statement' && [r.rule, r.outcome])).toContainEqual(['default', 'not-executed']);
  });

  live('an explicit deny rule for an identity kind wins over allows, and names itself', async () => {
    const c = await as(BOT);
    expect((await c.query('SELECT count(*)::int AS n FROM sluice_pol_t')).rows[0].n).toBe(3);
    await expect(c.query('SELECT * FROM sluice_pol_secrets')).rejects.toMatchObject({
      code: '42501',
      message: expect.stringMatching(/denied by rule "agents-no-secrets"/),
    });
    // Through a join, a subquery or a CTE it is the same table.
    await expect(c.query('SELECT t.id FROM sluice_pol_t t JOIN sluice_pol_secrets s ON s.id = t.id')).rejects.toMatchObject({ code: '42501' });
    await expect(c.query('WITH x AS (SELECT * FROM "sluice_pol_secrets") SELECT count(*) FROM x')).rejects.toMatchObject({ code: '42501' });
    await expect(c.query('SELECT (SELECT max(id) FROM public.sluice_pol_secrets)')).rejects.toMatchObject({ code: '42501' });
    await c.end();
  });

  const guardrailCases: [string, string, () => Promise<void>][] = [
    ['drop-table', 'DROP TABLE sluice_pol_t', async () => expect(await tableExists('sluice_pol_t')).toBe(true)],
    ['drop-schema', 'DROP SCHEMA sluice_pol_schema CASCADE', async () => expect((await direct.query("SELECT 1 FROM pg_namespace WHERE nspname = 'sluice_pol_schema'")).rowCount).toBe(1)],
    ['drop-database', 'DROP DATABASE IF EXISTS sluice_never_dropped', async () => undefined],
    ['truncate', 'TRUNCATE sluice_pol_t', async () => expect(await count('sluice_pol_t')).toBe(3)],
    ['delete-without-where', 'DELETE FROM sluice_pol_t', async () => expect(await count('sluice_pol_t')).toBe(3)],
    ['delete-without-where', 'DELETE FROM sluice_pol_t WHERE 1=1', async () => expect(await count('sluice_pol_t')).toBe(3)],
    ['delete-without-where', 'delete from SLUICE_POL_T where true or id = 2', async () => expect(await count('sluice_pol_t')).toBe(3)],
    ['update-without-where', "UPDATE sluice_pol_t SET note = 'gone'", async () => expect((await direct.query("SELECT 1 FROM sluice_pol_t WHERE note = 'gone'")).rowCount).toBe(0)],
    ['update-without-where', "WITH u AS (UPDATE sluice_pol_t SET note = 'cte' WHERE 'a' = 'a' RETURNING id) SELECT count(*) FROM u", async () => expect((await direct.query("SELECT 1 FROM sluice_pol_t WHERE note = 'cte'")).rowCount).toBe(0)],
    ['alter-drop', 'ALTER TABLE sluice_pol_t DROP COLUMN extra', async () => expect((await direct.query("SELECT 1 FROM information_schema.columns WHERE table_name = 'sluice_pol_t' AND column_name = 'extra'")).rowCount).toBe(1)],
    ['grant-revoke', 'GRANT SELECT ON sluice_pol_t TO PUBLIC', async () => undefined],
    ['role-change', 'CREATE ROLE sluice_pol_never LOGIN', async () => expect((await direct.query("SELECT 1 FROM pg_roles WHERE rolname = 'sluice_pol_never'")).rowCount).toBe(0)],
    ['alter-system', "ALTER SYSTEM SET work_mem = '64MB'", async () => undefined],
    ['copy-program', "COPY sluice_pol_t TO PROGRAM 'cat > /tmp/sluice-never'", async () => undefined],
    ['server-file', "SELECT pg_read_file('/etc/hostname')", async () => undefined],
    ['large-object', "SELECT lo_import('/etc/hostname')", async () => undefined],
    ['create-extension', 'CREATE EXTENSION IF NOT EXISTS pgcrypto', async () => undefined],
    ['dynamic-sql', "DO $$ BEGIN EXECUTE format('DROP TABLE %I', 'sluice_pol_t'); END $$", async () => expect(await tableExists('sluice_pol_t')).toBe(true)],
    ['drop-table', "DO $$ BEGIN EXECUTE 'DROP TABLE sluice_pol_t'; END $$", async () => expect(await tableExists('sluice_pol_t')).toBe(true)],
    ['drop-table', 'SELECT 1; DROP TABLE sluice_pol_t', async () => expect(await tableExists('sluice_pol_t')).toBe(true)],
  ];

  for (const [guardrail, sql, check] of guardrailCases) {
    live(`guardrail ${guardrail} blocks: ${sql}`, async () => {
      const c = await as(DAVE);
      await expect(c.query(sql)).rejects.toMatchObject({
        code: '42501',
        message: expect.stringContaining(`guardrail "${guardrail}"`),
      });
      expect((await c.query('SELECT 1 AS ok')).rows[0].ok).toBe(1);
      await c.end();
      await check();
    });
  }

  const lookAlikes = [
    "SELECT 'DROP TABLE sluice_pol_t' AS text",
    'SELECT 1 /* DROP TABLE sluice_pol_t */',
    '-- TRUNCATE sluice_pol_t\nSELECT 2',
    "INSERT INTO drop_log VALUES (1, 'drop table sluice_pol_t')",
    'SELECT * FROM drop_log',
    "UPDATE sluice_pol_t SET note = 'kept' WHERE id = 3",
    'DELETE FROM sluice_pol_t WHERE id = 99',
    'DELETE FROM sluice_pol_t WHERE 1 = 2',
    'ALTER TABLE sluice_pol_t ADD COLUMN IF NOT EXISTS added int',
    "SELECT $$DROP SCHEMA x$$ AS dollar",
  ];
  for (const sql of lookAlikes) {
    live(`look-alike allowed: ${sql.replace(/\n/g, ' ')}`, async () => {
      const c = await as(DAVE);
      await c.query(sql);
      await c.end();
      expect(await tableExists('sluice_pol_t')).toBe(true);
    });
  }

  live('a rule can switch a guardrail off for one identity, target and table', async () => {
    const etl = await as(ETL);
    await etl.query('TRUNCATE sluice_pol_staging');
    expect(await count('sluice_pol_staging')).toBe(0);
    // Not for another table...
    await expect(etl.query('TRUNCATE sluice_pol_t')).rejects.toMatchObject({ code: '42501', message: expect.stringContaining('guardrail "truncate"') });
    await etl.end();
    // ...and not for another identity.
    const dave = await as(DAVE);
    await expect(dave.query('TRUNCATE sluice_pol_staging')).rejects.toMatchObject({ code: '42501' });
    await dave.end();
    expect(await count('sluice_pol_t')).toBe(3);
  });

  live('extended protocol: a denied statement is refused at Parse; the pipeline up to Sync is discarded and the session goes on', async () => {
    const c = await as(ALICE);
    await expect(c.query({ name: 'upd', text: 'UPDATE sluice_pol_t SET note = $1 WHERE id = $2', values: ['z', 1] })).rejects.toMatchObject({ code: '42501' });
    await expect(c.query({ text: 'DELETE FROM sluice_pol_t WHERE id = $1', values: [1] })).rejects.toMatchObject({ code: '42501' });
    expect((await c.query({ text: 'SELECT note FROM sluice_pol_t WHERE id = $1', values: [1] })).rows[0].note).toBe('a');
    // Inside a transaction a refusal is an error like any other: the transaction is aborted.
    await c.query('BEGIN');
    await expect(c.query({ text: 'DELETE FROM sluice_pol_t WHERE id = $1', values: [2] })).rejects.toMatchObject({ code: '42501' });
    await expect(c.query('SELECT count(*)::int AS n FROM sluice_pol_t')).rejects.toMatchObject({ code: '25P02' });
    await c.query('ROLLBACK');
    expect((await c.query('SELECT count(*)::int AS n FROM sluice_pol_t')).rows[0].n).toBe(3);
    await c.end();
    // A client that asks for rows in batches sends Flush, not Sync, and still hears at once.
    // (node-postgres sends no Sync after such an error, against PostgreSQL itself too, so this
    // client is not used again.)
    const batches = await as(ALICE);
    await expect(batches.query({ text: 'DELETE FROM sluice_pol_t WHERE id = $1', values: [3], rows: 10 } as pg.QueryConfig)).rejects.toMatchObject({ code: '42501' });
    await batches.end();
  });

  live('a refusal in a batch rolls back what the batch did before it, as a server error would', async () => {
    const dave = await as(DAVE);
    // DAVE may write, but not drop: the INSERT runs, then the DROP is refused in the same batch.
    const batch = dave.query('INSERT INTO sluice_pol_t VALUES (4242, $1, 0)', ['batch']).catch((e: Error) => e);
    const drop = dave.query({ text: 'DROP TABLE sluice_pol_t', values: [] as never[], name: 'drop-in-batch' }).catch((e: Error) => e);
    expect(await batch).not.toBeInstanceOf(Error);
    expect(await drop).toMatchObject({ code: '42501' });
    await dave.end();
    // Raw: one batch, one Sync.
    const c = await rawClient(gw, DAVE);
    c.send(
      serialize.parse({ text: "INSERT INTO sluice_pol_t VALUES (8888, 'rolled back', 0)" }),
      serialize.bind({}),
      serialize.execute({}),
      serialize.parse({ text: 'DROP TABLE sluice_pol_t' }),
      serialize.bind({}),
      serialize.execute({}),
      serialize.sync(),
    );
    expect(await c.take((t) => t.endsWith('Z'))).toBe('12CEZ');
    c.close();
    expect((await direct.query('SELECT count(*)::int AS n FROM sluice_pol_t WHERE id = 8888')).rows[0].n).toBe(0);
    await direct.query('DELETE FROM sluice_pol_t WHERE id = 4242');
  });

  live('raw pipeline: a refused Parse is answered in order between the answers of its neighbours', async () => {
    const c = await rawClient(gw, ALICE);
    c.send(
      serialize.parse({ text: 'SELECT 1' }),
      serialize.bind({}),
      serialize.execute({}),
      serialize.parse({ name: 'bad', text: 'DELETE FROM sluice_pol_t WHERE id = 1' }),
      serialize.bind({ statement: 'bad' }),
      serialize.describe({ type: 'P' }),
      serialize.execute({}),
      serialize.sync(),
      serialize.query('SELECT 2'),
    );
    expect(await c.take((t) => (t.match(/Z/g) ?? []).length === 2)).toBe('12DCEZTDCZ');
    c.close();
    expect(await count('sluice_pol_t')).toBe(3);
  });

  live('psql shows the refusal with the rule and a hint', async () => {
    const url = `postgres://${encodeURIComponent(ALICE.subject)}:${ALICE.token}@${gw.host}:${gw.port}/app`;
    const result = await run('psql', [url, '-X', '-c', 'DROP TABLE sluice_pol_t']).then(
      () => ({ stderr: '', failed: false }),
      (err: { stderr: string }) => ({ stderr: err.stderr, failed: true }),
    );
    expect(result.failed).toBe(true);
    expect(result.stderr).toMatch(/ERROR: {2}blocked by guardrail "drop-table"/);
    expect(result.stderr).toMatch(/HINT: {2}/);
    expect(await tableExists('sluice_pol_t')).toBe(true);
  });
});
