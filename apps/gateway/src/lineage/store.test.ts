import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { LineageStore } from '@sluice/core';
import pg from 'pg';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it, type TestContext } from 'vitest';
import {
  aliceSelect,
  ARCHIVE,
  bobSelect,
  carolReplica,
  CUSTOMERS,
  etlInsert,
  HOUR,
  iso,
  MINUTE,
  PRIMARY,
  REPLICA,
  RUN_ALICE,
  RUN_BOB,
  RUN_CAROL,
  RUN_ETL,
  T0,
} from './fixtures.js';
import { isPostgresUrl, openLineageStore } from './open.js';
import { openPostgresLineageStore } from './postgres-store.js';
import { LineageQueryError } from './queries.js';
import { LineageStoreError, SCHEMA_VERSION } from './schema.js';
import { openSqliteLineageStore } from './sqlite-store.js';
import { openWorkerLineageStore } from './worker-store.js';
import { postgresAvailable, TEST_POSTGRES_URL } from './test-services.js';

const logger = pino({ level: 'silent' });

/** One implementation under test: each `location()` is a fresh, empty store location. */
interface Harness {
  readonly name: string;
  setUp(): Promise<boolean>;
  tearDown(): Promise<void>;
  location(): string;
  open(location: string): Promise<LineageStore>;
  openReadonly(location: string): Promise<LineageStore>;
  rows(location: string, table: string): Promise<number>;
  versions(location: string): Promise<number[]>;
}

function sqliteHarness(): Harness {
  let dir = '';
  let n = 0;
  const query = <T>(location: string, sql: string): T[] => {
    const db = new Database(location, { readonly: true });
    try {
      return db.prepare(sql).all() as T[];
    } finally {
      db.close();
    }
  };
  return {
    name: 'SQLite',
    async setUp() {
      dir = mkdtempSync(join(tmpdir(), 'sluice-lineage-'));
      return true;
    },
    async tearDown() {
      if (dir) rmSync(dir, { recursive: true, force: true });
    },
    location: () => join(dir, `store-${++n}`, 'lineage.db'),
    open: (location) => openSqliteLineageStore({ path: location, logger }),
    openReadonly: (location) => openSqliteLineageStore({ path: location, logger, readonly: true }),
    rows: async (location, table) => query<{ n: number }>(location, `SELECT count(*) AS n FROM ${table}`)[0]!.n,
    versions: async (location) => query<{ version: number }>(location, 'SELECT version FROM schema_version ORDER BY version').map((r) => r.version),
  };
}

/** The SQLite store on its worker thread, as the gateway runs it. */
function workerHarness(): Harness {
  const sqlite = sqliteHarness();
  return {
    ...sqlite,
    name: 'SQLite on a worker thread',
    open: (location) => openWorkerLineageStore({ path: location, logger }),
    openReadonly: (location) => openWorkerLineageStore({ path: location, logger, readonly: true }),
  };
}

function postgresHarness(): Harness {
  const run = `sluice_lineage_test_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  const created: string[] = [];
  let admin: pg.Pool | undefined;
  return {
    name: 'PostgreSQL',
    async setUp() {
      if (!(await postgresAvailable())) return false;
      admin = new pg.Pool({ connectionString: TEST_POSTGRES_URL, max: 2 });
      return true;
    },
    async tearDown() {
      if (!admin) return;
      for (const schema of created) await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await admin.end();
    },
    location() {
      const schema = `${run}_${created.length + 1}`;
      created.push(schema);
      return schema;
    },
    open: (schema) => openPostgresLineageStore({ url: TEST_POSTGRES_URL, schema, logger }),
    openReadonly: (schema) => openPostgresLineageStore({ url: TEST_POSTGRES_URL, schema, logger, readonly: true }),
    rows: async (schema, table) => Number((await admin!.query(`SELECT count(*) AS n FROM "${schema}".${table}`)).rows[0].n),
    versions: async (schema) =>
      (await admin!.query(`SELECT version FROM "${schema}".schema_version ORDER BY version`)).rows.map((r: { version: number }) => r.version),
  };
}

/** Observations of two batches: the second repeats alice's key (merged: 5 executions from T0 to T0+6s). */
async function recordAll(store: LineageStore): Promise<void> {
  await store.record([aliceSelect(), etlInsert()]);
  await store.record([bobSelect(), carolReplica(), aliceSelect({ firstSeen: T0 + 5000, lastSeen: T0 + 6000, count: 2, sessionId: 's-alice-2' })]);
}

const carolEmail = {
  subject: 'carol@example.com',
  kind: 'human',
  job: 'report',
  runId: RUN_CAROL,
  runKey: 'weekly',
  type: 'DIRECT',
  subtype: 'AGGREGATION',
  masked: false,
  count: 2,
  firstSeen: iso(T0 + 2 * HOUR),
  lastSeen: iso(T0 + 2 * HOUR),
};
const bobEmail = {
  subject: 'bob@example.com',
  kind: 'human',
  job: 'bob@example.com',
  runId: RUN_BOB,
  type: 'DIRECT',
  subtype: 'IDENTITY',
  masked: false,
  count: 5,
  firstSeen: iso(T0 + HOUR),
  lastSeen: iso(T0 + HOUR + 5000),
};
const aliceEmail = {
  subject: 'alice@example.com',
  kind: 'human',
  job: 'adhoc',
  runId: RUN_ALICE,
  type: 'DIRECT',
  subtype: 'IDENTITY',
  masked: true,
  count: 5,
  firstSeen: iso(T0),
  lastSeen: iso(T0 + 6000),
};
const etlFlow = (from: string, to: string, subtype: string) => ({
  from: { namespace: PRIMARY, name: CUSTOMERS, field: from },
  to: { namespace: PRIMARY, name: ARCHIVE, field: to },
  type: 'DIRECT',
  subtype,
  subject: 'etl-bot',
  job: 'nightly-archive',
  runId: RUN_ETL,
  count: 1,
  firstSeen: iso(T0 + 10 * MINUTE),
  lastSeen: iso(T0 + 10 * MINUTE),
});
const aliceRead = (field: string, type: string, subtype: string, masked?: boolean) => ({
  subject: 'alice@example.com',
  kind: 'human',
  job: 'adhoc',
  runId: RUN_ALICE,
  type,
  subtype,
  ...(masked !== undefined ? { masked } : {}),
  count: 5,
  firstSeen: iso(T0),
  lastSeen: iso(T0 + 6000),
  field,
});
const carolRead = (field: string, type: string, subtype: string, masked?: boolean) => ({
  field,
  subject: 'carol@example.com',
  kind: 'human',
  job: 'report',
  runId: RUN_CAROL,
  runKey: 'weekly',
  type,
  subtype,
  ...(masked !== undefined ? { masked } : {}),
  count: 2,
  firstSeen: iso(T0 + 2 * HOUR),
  lastSeen: iso(T0 + 2 * HOUR),
});

describe.each([sqliteHarness(), workerHarness(), postgresHarness()])('lineage store: $name', (h) => {
  let available = false;
  const stores: LineageStore[] = [];

  beforeAll(async () => {
    available = await h.setUp();
  });
  afterAll(async () => {
    for (const s of stores) await s.close();
    await h.tearDown();
  });

  /** A fresh store with every observation recorded (tests skip, reported, when the server is missing). */
  const open = async (ctx: TestContext, location = h.location()) => {
    if (!available) ctx.skip();
    const store = await h.open(location);
    stores.push(store);
    return store;
  };
  const filled = async (ctx: TestContext) => {
    const store = await open(ctx);
    await recordAll(store);
    return store;
  };

  it('answers who read a column, masked or not, and where its values went', async (ctx) => {
    const store = await filled(ctx);
    expect(await store.column(`${CUSTOMERS}.email`)).toEqual({
      column: { name: CUSTOMERS, field: 'email' },
      reads: [carolEmail, bobEmail, aliceEmail],
      flowedInto: [etlFlow('email', 'email', 'IDENTITY')],
      cameFrom: [],
    });
    expect(await store.column(`${CUSTOMERS}.email`, { namespace: PRIMARY })).toEqual({
      column: { namespace: PRIMARY, name: CUSTOMERS, field: 'email' },
      reads: [bobEmail, aliceEmail],
      flowedInto: [etlFlow('email', 'email', 'IDENTITY')],
      cameFrom: [],
    });
    expect(await store.column(`${ARCHIVE}.name_upper`)).toEqual({
      column: { name: ARCHIVE, field: 'name_upper' },
      reads: [],
      flowedInto: [],
      cameFrom: [etlFlow('name', 'name_upper', 'TRANSFORMATION')],
    });
    // INDIRECT reads: statement-level flows of reads and of writes, without masking.
    expect((await store.column(`${CUSTOMERS}.created_at`)).reads).toEqual([
      {
        subject: 'etl-bot',
        kind: 'service',
        job: 'nightly-archive',
        runId: RUN_ETL,
        runKey: 'nightly-2026-01-10',
        type: 'INDIRECT',
        subtype: 'FILTER',
        count: 1,
        firstSeen: iso(T0 + 10 * MINUTE),
        lastSeen: iso(T0 + 10 * MINUTE),
      },
    ]);
    // Names match exactly.
    expect((await store.column(`${CUSTOMERS}.EMAIL`)).reads).toEqual([]);
    expect((await store.column(`${CUSTOMERS}.email`, { namespace: 'postgres://elsewhere:5432' })).reads).toEqual([]);
  });

  it('answers who read and wrote a table, and the statements that touched it', async (ctx) => {
    const store = await filled(ctx);
    const report = await store.table(CUSTOMERS);
    expect(report.table).toEqual({ name: CUSTOMERS });
    expect(report.reads).toEqual([
      carolRead('country', 'DIRECT', 'IDENTITY', false),
      carolRead('country', 'INDIRECT', 'GROUP_BY'),
      carolRead('email', 'DIRECT', 'AGGREGATION', false),
      { field: 'email', ...bobEmail },
      {
        field: 'created_at',
        subject: 'etl-bot',
        kind: 'service',
        job: 'nightly-archive',
        runId: RUN_ETL,
        runKey: 'nightly-2026-01-10',
        type: 'INDIRECT',
        subtype: 'FILTER',
        count: 1,
        firstSeen: iso(T0 + 10 * MINUTE),
        lastSeen: iso(T0 + 10 * MINUTE),
      },
      aliceRead('country', 'INDIRECT', 'FILTER'),
      aliceRead('email', 'DIRECT', 'IDENTITY', true),
      aliceRead('name', 'DIRECT', 'IDENTITY', false),
      aliceRead('name', 'INDIRECT', 'SORT'),
    ]);
    expect(report.writtenFrom).toEqual([]);
    expect(report.flowedInto).toEqual([etlFlow('email', 'email', 'IDENTITY'), etlFlow('name', 'name_upper', 'TRANSFORMATION')]);
    expect(report.statements).toEqual([
      { subject: 'carol@example.com', job: 'report', runId: RUN_CAROL, operation: 'SELECT', normalized: carolReplica().normalized, count: 2, lastSeen: iso(T0 + 2 * HOUR) },
      { subject: 'bob@example.com', job: 'bob@example.com', runId: RUN_BOB, operation: 'SELECT', normalized: bobSelect().normalized, count: 5, lastSeen: iso(T0 + HOUR + 5000) },
      { subject: 'etl-bot', job: 'nightly-archive', runId: RUN_ETL, operation: 'INSERT', normalized: etlInsert().normalized, count: 1, lastSeen: iso(T0 + 10 * MINUTE) },
      { subject: 'alice@example.com', job: 'adhoc', runId: RUN_ALICE, operation: 'SELECT', normalized: aliceSelect().normalized, count: 5, lastSeen: iso(T0 + 6000) },
    ]);

    const archive = await store.table(ARCHIVE, { namespace: PRIMARY });
    expect(archive).toEqual({
      table: { namespace: PRIMARY, name: ARCHIVE },
      reads: [],
      writtenFrom: [etlFlow('email', 'email', 'IDENTITY'), etlFlow('name', 'name_upper', 'TRANSFORMATION')],
      flowedInto: [],
      statements: [
        { subject: 'etl-bot', job: 'nightly-archive', runId: RUN_ETL, operation: 'INSERT', normalized: etlInsert().normalized, count: 1, lastSeen: iso(T0 + 10 * MINUTE) },
      ],
    });

    const replica = await store.table(CUSTOMERS, { namespace: REPLICA });
    expect(replica.reads.map((r) => r.subject)).toEqual(['carol@example.com', 'carol@example.com', 'carol@example.com']);
    expect(replica.statements.map((s) => s.subject)).toEqual(['carol@example.com']);
    expect(await store.table('app.public.nothing')).toEqual({ table: { name: 'app.public.nothing' }, reads: [], writtenFrom: [], flowedInto: [], statements: [] });
  });

  it("answers an identity's runs, reads and writes", async (ctx) => {
    const store = await filled(ctx);
    const column = (field: string) => ({ namespace: PRIMARY, name: CUSTOMERS, field });
    const withColumn = ({ field, ...entry }: ReturnType<typeof aliceRead>) => ({ column: column(field), ...entry });
    expect(await store.identity('alice@example.com')).toEqual({
      subject: 'alice@example.com',
      runs: [{ runId: RUN_ALICE, job: 'adhoc', firstSeen: iso(T0), lastSeen: iso(T0 + 6000), statements: 5 }],
      reads: [
        withColumn(aliceRead('country', 'INDIRECT', 'FILTER')),
        withColumn(aliceRead('email', 'DIRECT', 'IDENTITY', true)),
        withColumn(aliceRead('name', 'DIRECT', 'IDENTITY', false)),
        withColumn(aliceRead('name', 'INDIRECT', 'SORT')),
      ],
      writes: [],
    });
    const etl = await store.identity('etl-bot');
    expect(etl.runs).toEqual([
      { runId: RUN_ETL, runKey: 'nightly-2026-01-10', job: 'nightly-archive', firstSeen: iso(T0 + 10 * MINUTE), lastSeen: iso(T0 + 10 * MINUTE), statements: 1 },
    ]);
    expect(etl.reads.map((r) => [r.column.field, r.type, r.subtype])).toEqual([['created_at', 'INDIRECT', 'FILTER']]);
    expect(etl.writes).toEqual([etlFlow('email', 'email', 'IDENTITY'), etlFlow('name', 'name_upper', 'TRANSFORMATION')]);
    expect(await store.identity('nobody')).toEqual({ subject: 'nobody', runs: [], reads: [], writes: [] });
  });

  it('merges repeated keys, within a batch and across batches, and keeps differently masked reads apart', async (ctx) => {
    const location = h.location();
    const other = await open(ctx, location);
    await other.record([bobSelect(), bobSelect({ firstSeen: T0 + HOUR - 1000, lastSeen: T0 + HOUR + 1000, count: 2 })]);
    await other.record([bobSelect({ firstSeen: T0 + 2 * HOUR, lastSeen: T0 + 3 * HOUR, count: 10 })]);
    expect(await h.rows(location, 'observations')).toBe(1);
    expect(await h.rows(location, 'column_reads')).toBe(1);
    expect((await other.column(`${CUSTOMERS}.email`)).reads).toEqual([
      { ...bobEmail, count: 17, firstSeen: iso(T0 + HOUR - 1000), lastSeen: iso(T0 + 3 * HOUR) },
    ]);

    // The same statement with email in clear is another observation.
    await other.record([
      bobSelect({
        actor: { subject: 'alice@example.com', kind: 'human', groups: ['analysts'], method: 'oidc' },
        run: { id: RUN_ALICE },
        job: { namespace: 'sluice', name: 'adhoc' },
        result: [{ name: 'email', flows: [{ from: { namespace: PRIMARY, name: CUSTOMERS, field: 'email' }, type: 'DIRECT', subtype: 'IDENTITY', masked: true }], masked: true }],
      }),
      bobSelect({
        actor: { subject: 'alice@example.com', kind: 'human', groups: ['analysts'], method: 'oidc' },
        run: { id: RUN_ALICE },
        job: { namespace: 'sluice', name: 'adhoc' },
        count: 1,
      }),
    ]);
    expect(await h.rows(location, 'observations')).toBe(3);
    const alice = (await other.column(`${CUSTOMERS}.email`)).reads.filter((r) => r.subject === 'alice@example.com');
    expect(alice.map((r) => [r.masked, r.count])).toEqual([
      [false, 1],
      [true, 5],
    ]);
    await other.record([]);
    expect(await h.rows(location, 'observations')).toBe(3);
  });

  it('honours since, until and limit', async (ctx) => {
    const store = await filled(ctx);
    const name = `${CUSTOMERS}.email`;
    expect((await store.column(name, { since: T0 + 30 * MINUTE })).reads).toEqual([carolEmail, bobEmail]);
    expect((await store.column(name, { until: T0 + 30 * MINUTE })).reads).toEqual([aliceEmail]);
    expect((await store.column(name, { since: T0 + 30 * MINUTE, until: T0 + 90 * MINUTE })).reads).toEqual([bobEmail]);
    // An observation counts when its span meets the window.
    expect((await store.column(name, { since: T0 + 6000, until: T0 + 6000 })).reads).toEqual([aliceEmail]);
    expect((await store.column(name, { limit: 1 })).reads).toEqual([carolEmail]);
    expect((await store.column(name, { since: T0 + 30 * MINUTE })).flowedInto).toEqual([]);
    expect((await store.column(name, { until: T0 + 30 * MINUTE })).flowedInto).toEqual([etlFlow('email', 'email', 'IDENTITY')]);

    const table = await store.table(CUSTOMERS, { limit: 2, since: T0 + 30 * MINUTE });
    expect(table.reads.map((r) => r.field)).toEqual(['country', 'country']);
    expect(table.statements.map((s) => s.subject)).toEqual(['carol@example.com', 'bob@example.com']);
    expect(table.flowedInto).toEqual([]);
    expect((await store.table(CUSTOMERS, { limit: 1 })).flowedInto).toEqual([etlFlow('email', 'email', 'IDENTITY')]);

    expect((await store.identity('alice@example.com', { since: T0 + 30 * MINUTE })).runs).toEqual([]);
    expect((await store.identity('alice@example.com', { limit: 2 })).reads.map((r) => r.column.field)).toEqual(['country', 'email']);
    expect((await store.identity('etl-bot', { until: T0 })).writes).toEqual([]);
  });

  it('refuses names and limits it cannot look up', async (ctx) => {
    const store = await filled(ctx);
    await expect(store.column('email')).rejects.toThrow(LineageQueryError);
    await expect(store.column('app.public.customers.')).rejects.toThrow(/not a column name/);
    await expect(store.column('.email')).rejects.toThrow(/not a column name/);
    await expect(store.table(' ')).rejects.toThrow(/table name is empty/);
    await expect(store.identity('')).rejects.toThrow(/subject is empty/);
    await expect(store.column(`${CUSTOMERS}.email`, { limit: 0 })).rejects.toThrow(/limit must be a positive whole number/);
  });

  it('prunes observations last seen before a time, with their reads, flows and datasets', async (ctx) => {
    const location = h.location();
    const pruned = await open(ctx, location);
    await recordAll(pruned);
    expect(await h.rows(location, 'column_flows')).toBe(2);
    expect(await pruned.prune(T0 + 30 * MINUTE)).toBe(2);
    expect(await pruned.prune(T0 + 30 * MINUTE)).toBe(0);
    expect(await h.rows(location, 'observations')).toBe(2);
    expect(await h.rows(location, 'column_flows')).toBe(0);
    // bob: email; carol: country twice and email.
    expect(await h.rows(location, 'column_reads')).toBe(4);
    expect(await h.rows(location, 'datasets')).toBe(2);
    expect((await pruned.column(`${CUSTOMERS}.email`)).reads).toEqual([carolEmail, bobEmail]);
    // A key pruned and seen again starts afresh.
    await pruned.record([aliceSelect({ firstSeen: T0 + 4 * HOUR, lastSeen: T0 + 4 * HOUR, count: 1 })]);
    expect((await pruned.identity('alice@example.com')).runs).toEqual([
      { runId: RUN_ALICE, job: 'adhoc', firstSeen: iso(T0 + 4 * HOUR), lastSeen: iso(T0 + 4 * HOUR), statements: 1 },
    ]);
  });

  it('keeps its data when reopened, and migrates once however often it is opened', async (ctx) => {
    const location = h.location();
    const first = await open(ctx, location);
    await recordAll(first);
    await first.close();
    const [second, third] = await Promise.all([h.open(location), h.open(location)]);
    stores.push(second, third);
    expect((await second.column(`${CUSTOMERS}.email`)).reads).toEqual([carolEmail, bobEmail, aliceEmail]);
    await third.record([bobSelect({ count: 1 })]);
    expect((await second.column(`${CUSTOMERS}.email`, { namespace: PRIMARY })).reads[0]).toEqual({ ...bobEmail, count: 6 });
    expect(await h.versions(location)).toEqual([SCHEMA_VERSION]);
    await expect(first.column(`${CUSTOMERS}.email`)).rejects.toThrow(/is closed/);
  });

  it('opens an existing store for reading only, and refuses a missing one', async (ctx) => {
    if (!available) ctx.skip();
    const location = h.location();
    await expect(h.openReadonly(location)).rejects.toThrow(/there is no lineage store at/);
    const writer = await open(ctx, location);
    await writer.record([bobSelect()]);
    const reader = await h.openReadonly(location);
    stores.push(reader);
    expect((await reader.column(`${CUSTOMERS}.email`)).reads).toEqual([bobEmail]);
    await expect(reader.record([bobSelect()])).rejects.toThrow(/opened for reading only/);
    expect(await h.rows(location, 'observations')).toBe(1);
  });

  it('migrates a new store once when two gateways open it at the same time', async (ctx) => {
    if (!available) ctx.skip();
    const location = h.location();
    const opened = await Promise.all([h.open(location), h.open(location), h.open(location)]);
    stores.push(...opened);
    expect(await h.versions(location)).toEqual([SCHEMA_VERSION]);
    await Promise.all(opened.map((s) => s.record([bobSelect({ count: 1 })])));
    expect((await opened[0]!.column(`${CUSTOMERS}.email`)).reads).toEqual([{ ...bobEmail, count: 3 }]);
    expect(await h.rows(location, 'observations')).toBe(1);
  });
});

describe('SQLite lineage store files', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-lineage-file-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('is in WAL mode and can be read by a reader while open for writing', async () => {
    const path = join(dir, 'wal', 'lineage.db');
    const writer = await openSqliteLineageStore({ path, logger });
    await writer.record([bobSelect()]);
    const db = new Database(path, { readonly: true });
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    db.close();
    const reader = await openSqliteLineageStore({ path, logger, readonly: true });
    expect((await reader.column(`${CUSTOMERS}.email`)).reads).toEqual([bobEmail]);
    await writer.record([bobSelect({ count: 1 })]);
    expect((await reader.column(`${CUSTOMERS}.email`)).reads[0]!.count).toBe(6);
    await expect(reader.record([bobSelect()])).rejects.toThrow(/reading only/);
    await reader.close();
    await writer.close();
    const again = await openSqliteLineageStore({ path, logger, readonly: true });
    expect((await again.column(`${CUSTOMERS}.email`)).reads[0]!.count).toBe(6);
    await again.close();
  });

  it('says clearly when a file is missing, is not a store, or is newer than this gateway', async () => {
    await expect(openSqliteLineageStore({ path: join(dir, 'missing.db'), logger, readonly: true })).rejects.toThrow(
      /there is no lineage store at .*missing\.db/,
    );
    const other = join(dir, 'other.db');
    new Database(other).exec('CREATE TABLE t (x)');
    await expect(openSqliteLineageStore({ path: other, logger, readonly: true })).rejects.toThrow(/is not a sluice lineage store/);
    const newer = join(dir, 'newer.db');
    await (await openSqliteLineageStore({ path: newer, logger })).close();
    const db = new Database(newer);
    db.prepare('INSERT INTO schema_version (version, applied_at) VALUES (?, ?)').run(SCHEMA_VERSION + 1, Date.now());
    db.close();
    await expect(openSqliteLineageStore({ path: newer, logger })).rejects.toThrow(LineageStoreError);
    await expect(openSqliteLineageStore({ path: newer, logger })).rejects.toThrow(/newer than this gateway knows/);
    const text = join(dir, 'text.db');
    (await import('node:fs')).writeFileSync(text, 'not a database at all, just text that is long enough to be read as a header');
    await expect(openSqliteLineageStore({ path: text, logger })).rejects.toThrow(/lineage store at .*text\.db/);
  });
});

describe('openLineageStore', () => {
  it('chooses PostgreSQL for postgres:// and postgresql:// URLs, SQLite for anything else', async () => {
    expect(isPostgresUrl('postgres://u@h/db')).toBe(true);
    expect(isPostgresUrl('PostgreSQL://u@h/db')).toBe(true);
    expect(isPostgresUrl('./.sluice/lineage.db')).toBe(false);
    expect(isPostgresUrl('/var/lib/sluice/postgres.db')).toBe(false);
    const dir = mkdtempSync(join(tmpdir(), 'sluice-lineage-open-'));
    try {
      const store = await openLineageStore({ store: join(dir, 'x', 'lineage.db'), logger });
      await store.record([bobSelect()]);
      expect((await store.identity('bob@example.com')).runs).toHaveLength(1);
      await store.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('names the PostgreSQL store it cannot reach, without its password', async () => {
    await expect(openLineageStore({ store: 'postgres://sluice:hunter2@127.0.0.1:1/lineage', logger })).rejects.toThrow(
      /cannot open the lineage store at postgres:\/\/sluice:\*\*\*@127\.0\.0\.1:1\/lineage \(schema sluice\)/,
    );
    await expect(openPostgresLineageStore({ url: TEST_POSTGRES_URL, schema: 'Bad-Name', logger })).rejects.toThrow(/cannot be the lineage store's schema/);
  });
});
