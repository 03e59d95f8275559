import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LineageStore } from '@sluice/core';
import pg from 'pg';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { capture, gatewayConfig } from '../../test/helpers.js';
import { send } from '../admin/http.js';
import { handleLineageRequest } from '../lineage/admin.js';
import { aliceSelect, ARCHIVE, bobSelect, carolReplica, CUSTOMERS, etlInsert, HOUR, MINUTE, PRIMARY, T0 } from '../lineage/fixtures.js';
import { openPostgresLineageStore } from '../lineage/postgres-store.js';
import { openSqliteLineageStore } from '../lineage/sqlite-store.js';
import { postgresAvailable, TEST_POSTGRES_URL } from '../lineage/test-services.js';
import { lineageCommand } from './lineage.js';
import { UsageError } from './run.js';

const logger = pino({ level: 'silent' });
/** The commands' clock: three hours after the fixtures' T0. */
const NOW = T0 + 3 * HOUR;
const lineage = (args: string[], env: Record<string, string | undefined> = {}) => capture(() => lineageCommand(args, NOW), env);

describe('sluice lineage', () => {
  let dir: string;
  let path: string;
  let store: LineageStore;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-lineage-cli-'));
    path = join(dir, 'lineage.db');
    store = await openSqliteLineageStore({ path, logger });
    await store.record([aliceSelect(), etlInsert(), bobSelect(), carolReplica()]);
  });
  afterAll(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('prints who read a column, masked or not, in which runs, and where it flowed', async () => {
    const r = await lineage(['column', `${CUSTOMERS}.email`, '--store', path]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      [
        'column app.public.customers.email in every namespace',
        '',
        'read by:',
        'SUBJECT            KIND   JOB              RUN                                   HOW                 MASKED  COUNT  FIRST SEEN            LAST SEEN',
        'carol@example.com  human  report           weekly                                DIRECT AGGREGATION  no      2      2026-01-10T14:00:00Z  2026-01-10T14:00:00Z',
        'bob@example.com    human  bob@example.com  0b9f6c3e-4f65-5a53-9d3b-6a1f0f2a0003  DIRECT IDENTITY     no      5      2026-01-10T13:00:00Z  2026-01-10T13:00:05Z',
        'alice@example.com  human  adhoc            0b9f6c3e-4f65-5a53-9d3b-6a1f0f2a0001  DIRECT IDENTITY     yes     3      2026-01-10T12:00:00Z  2026-01-10T12:00:02Z',
        '',
        'flowed into:',
        'FROM                        TO                           HOW              SUBJECT  JOB              RUN                                   COUNT  FIRST SEEN            LAST SEEN',
        'app.public.customers.email  app.archive.customers.email  DIRECT IDENTITY  etl-bot  nightly-archive  0b9f6c3e-4f65-5a53-9d3b-6a1f0f2a0002  1      2026-01-10T12:10:00Z  2026-01-10T12:10:00Z',
        '',
        'came from: none',
        '',
      ].join('\n'),
    );

    const json = await lineage(['column', `${CUSTOMERS}.email`, '--store', path, '--namespace', PRIMARY, '--since', '150m', '--json']);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual(await store.column(`${CUSTOMERS}.email`, { namespace: PRIMARY, since: NOW - 150 * MINUTE }));
    expect(JSON.parse(json.stdout).reads.map((e: { subject: string }) => e.subject)).toEqual(['bob@example.com']);
  });

  it('prints a table and an identity report', async () => {
    const table = await lineage(['table', CUSTOMERS, '--store', path, '--until', '2026-01-10T12:30:00Z']);
    expect(table.code).toBe(0);
    const lines = table.stdout.split('\n');
    expect(lines[0]).toBe('table app.public.customers in every namespace');
    expect(lines).toContain('columns read:');
    expect(table.stdout).toMatch(/^created_at\s+etl-bot\s+service\s+nightly-archive\s+nightly-2026-01-10\s+INDIRECT FILTER\s+-\s+1\s+2026-01-10T12:10:00Z/m);
    expect(table.stdout).toMatch(/^email\s+alice@example\.com\s+human\s+adhoc\s+\S+\s+DIRECT IDENTITY\s+yes\s+3\s/m);
    expect(table.stdout).toMatch(/^name\s+alice@example\.com\s+human\s+adhoc\s+\S+\s+INDIRECT SORT\s+-\s+3\s/m);
    expect(table.stdout).not.toContain('bob@example.com');
    expect(table.stdout).toContain('written from: none\n');
    expect(table.stdout).toMatch(/^app\.public\.customers\.name\s+app\.archive\.customers\.name_upper\s+DIRECT TRANSFORMATION\s+etl-bot/m);
    expect(table.stdout).toMatch(/^statements:\nSUBJECT\s+JOB\s+RUN\s+OPERATION\s+COUNT\s+LAST SEEN\s+STATEMENT\n/m);
    expect(table.stdout).toMatch(/^etl-bot\s+nightly-archive\s+\S+\s+INSERT\s+1\s+2026-01-10T12:10:00Z\s+INSERT INTO archive\.customers \(email, name_upper\) SELECT email, upper\(name\) FRO…$/m);

    const identity = await lineage(['identity', 'etl-bot', '--store', path]);
    expect(identity.code).toBe(0);
    expect(identity.stdout).toContain(
      [
        'identity etl-bot',
        '',
        'runs:',
        'RUN                 JOB              FIRST SEEN            LAST SEEN             STATEMENTS',
        'nightly-2026-01-10  nightly-archive  2026-01-10T12:10:00Z  2026-01-10T12:10:00Z  1',
        '',
        'columns read:',
        'COLUMN                           NAMESPACE                   HOW              MASKED  JOB              RUN                 COUNT  FIRST SEEN            LAST SEEN',
        'app.public.customers.created_at  postgres://db.example:5432  INDIRECT FILTER  -       nightly-archive  nightly-2026-01-10  1      2026-01-10T12:10:00Z  2026-01-10T12:10:00Z',
        '',
        'columns written:',
      ].join('\n'),
    );
    expect(identity.stdout).toMatch(/^app\.public\.customers\.email\s+app\.archive\.customers\.email\s+DIRECT IDENTITY\s+etl-bot\s+nightly-archive/m);

    const none = await lineage(['column', `${ARCHIVE}.nothing`, '--store', path]);
    expect(none.code).toBe(0);
    expect(none.stdout).toContain('read by: none\n');
    expect(none.stdout).toMatch(/nothing recorded: names match exactly/);
    const nobody = await lineage(['identity', 'nobody', '--store', path, '--json']);
    expect(JSON.parse(nobody.stdout)).toEqual({ subject: 'nobody', runs: [], reads: [], writes: [] });
  });

  it("reads the store named by the config's lineage.store", async () => {
    const config = join(dir, 'sluice.yaml');
    const tokens = '    - subject: alice@example.com\n      kind: human\n      token: ${ALICE_TOKEN}';
    writeFileSync(config, gatewayConfig({ tokens, rest: `lineage:\n  store: ${path}\n` }));
    const r = await lineage(['identity', 'bob@example.com', '-c', config, '--json']);
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual(await store.identity('bob@example.com'));

    const missing = join(dir, 'missing.yaml');
    writeFileSync(missing, gatewayConfig({ tokens, rest: `lineage:\n  store: ${join(dir, 'none', 'lineage.db')}\n` }));
    const m = await lineage(['identity', 'bob@example.com', '--config', missing]);
    expect(m.code).toBe(1);
    expect(m.stderr).toBe(`sluice: there is no lineage store at ${join(dir, 'none', 'lineage.db')}: the gateway creates it once lineage is recorded (lineage.store of ${missing})\n`);
    expect(m.stdout).toBe('');

    const file = await lineage(['table', CUSTOMERS, '--store', join(dir, 'nope.db')]);
    expect(file.code).toBe(1);
    expect(file.stderr).toMatch(/^sluice: there is no lineage store at .*nope\.db.*\(--store\)\n$/);
  });

  it('refuses bad names, times, limits and option combinations with usage errors', async () => {
    const cases: [string[], RegExp][] = [
      [['column', 'email', '--store', 'x'], /"email" is not a column name: write the dataset and the column separated by a dot/],
      [['column', `${CUSTOMERS}.`, '--store', 'x'], /is not a column name/],
      [['table', CUSTOMERS, '--store', 'x', '--since', '7x'], /cannot read "7x" as a time: use ISO 8601 .* or a span like 24h or 7d/],
      [['table', CUSTOMERS, '--store', 'x', '--since', '1d', '--until', '2d'], /--since .* is after --until/],
      [['table', CUSTOMERS, '--store', 'x', '--limit', '0'], /--limit takes a whole number from 1 to 1000, got "0"/],
      [['table', CUSTOMERS, '--store', 'x', '--limit', 'ten'], /--limit takes a whole number/],
      [['identity', 'alice', '--store', 'x', '--namespace', PRIMARY], /--namespace is for columns and tables/],
      [['table', CUSTOMERS], /lineage needs where to read: --config FILE .*--store PATH\|URL, or --admin URL/],
      [['table', CUSTOMERS, '--store', 'x', '--admin', 'http://127.0.0.1:1'], /give only one of --config, --store and --admin/],
      [['table', '--store', 'x'], /missing DATASET: sluice lineage table DATASET/],
      [['table', 'a', 'b', '--store', 'x'], /unexpected argument "b"/],
      [['columns', 'a'], /unknown lineage command "columns" \(expected column, table or identity\)/],
      [[], /lineage needs a command: column, table or identity/],
      [['table', CUSTOMERS, '--admin', 'http://127.0.0.1:1'], /no credential for the admin API/],
    ];
    for (const [args, message] of cases) {
      await expect(lineage(args, { SLUICE_TOKEN: undefined }), args.join(' ')).rejects.toThrow(message);
      await expect(lineage(args, { SLUICE_TOKEN: undefined })).rejects.toBeInstanceOf(UsageError);
    }
  });

  describe('through the admin API', () => {
    let server: Server;
    let base: string;
    const seen: string[] = [];

    beforeAll(async () => {
      server = createServer((req, res) => {
        seen.push(`${req.headers.authorization} ${req.url}`);
        if (req.headers.authorization !== 'Bearer secret-token') {
          send(res, { status: 401, body: { error: { code: 'unauthenticated', message: 'authentication failed: unknown token' } } });
          return;
        }
        handleLineageRequest(store, new URL(req.url ?? '/', 'http://admin.invalid'), { now: () => NOW }).then(
          (reply) => send(res, reply ?? { status: 404, body: { error: { code: 'not-found', message: 'no such endpoint' } } }),
          () => send(res, { status: 500, body: { error: { code: 'internal', message: 'internal error' } } }),
        );
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    afterAll(async () => {
      await new Promise((resolve) => server.close(resolve));
    });

    it('asks the gateway for the report, with the query parameters, and prints it like the store', async () => {
      const direct = await lineage(['column', `${CUSTOMERS}.email`, '--store', path, '--since', '2h', '--limit', '5']);
      const viaApi = await lineage(['column', `${CUSTOMERS}.email`, '--admin', base, '--since', '2h', '--limit', '5'], { SLUICE_TOKEN: 'secret-token' });
      expect(viaApi.stderr).toBe('');
      expect(viaApi.code).toBe(0);
      expect(viaApi.stdout).toBe(direct.stdout);
      expect(seen.at(-1)).toBe(`Bearer secret-token /v1/lineage/column/app.public.customers.email?since=2026-01-10T13%3A00%3A00.000Z&limit=5`);

      const json = await lineage(['identity', 'alice@example.com', '--admin', base, '--token', 'secret-token', '--json']);
      expect(JSON.parse(json.stdout)).toEqual(await store.identity('alice@example.com'));
      expect(seen.at(-1)).toBe('Bearer secret-token /v1/lineage/identity/alice%40example.com');
    });

    it("prints the API's refusals and an unreachable API, exiting 1", async () => {
      const refused = await lineage(['table', CUSTOMERS, '--admin', base, '--token', 'wrong']);
      expect(refused).toEqual({ code: 1, stdout: '', stderr: 'sluice: authentication failed: unknown token\n' });
      const down = await lineage(['table', CUSTOMERS, '--admin', 'http://127.0.0.1:1', '--token', 'secret-token']);
      expect(down.code).toBe(1);
      expect(down.stderr).toMatch(/^sluice: cannot reach the admin API at http:\/\/127\.0\.0\.1:1/);
    });
  });

  it('reads a PostgreSQL store given by URL and schema', async (ctx) => {
    if (!(await postgresAvailable())) ctx.skip();
    const schema = `sluice_lineage_cli_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
    const admin = new pg.Client({ connectionString: TEST_POSTGRES_URL });
    await admin.connect();
    try {
      const missing = await lineage(['identity', 'bob@example.com', '--store', TEST_POSTGRES_URL, '--schema', schema]);
      expect(missing.code).toBe(1);
      expect(missing.stderr).toMatch(new RegExp(`^sluice: there is no lineage store at .*\\(schema ${schema}\\).*\\(--store\\)\\n$`));
      const pgStore = await openPostgresLineageStore({ url: TEST_POSTGRES_URL, schema, logger });
      await pgStore.record([aliceSelect(), etlInsert(), bobSelect(), carolReplica()]);
      await pgStore.close();
      const viaPg = await lineage(['column', `${CUSTOMERS}.email`, '--store', TEST_POSTGRES_URL, '--schema', schema]);
      const viaSqlite = await lineage(['column', `${CUSTOMERS}.email`, '--store', path]);
      expect(viaPg.stderr).toBe('');
      expect(viaPg.stdout).toBe(viaSqlite.stdout);
    } finally {
      await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await admin.end();
    }
  });
});
