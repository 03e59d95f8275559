import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Identity, LineageStore } from '@sluice/core';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { handleLineageRequest, LINEAGE_PATH, lineageRoutes, parseLineageTime } from './admin.js';
import { aliceSelect, bobSelect, CUSTOMERS, etlInsert, HOUR, iso, MINUTE, PRIMARY, T0 } from './fixtures.js';
import { LineageStoreError } from './schema.js';
import { openSqliteLineageStore } from './sqlite-store.js';

const logger = pino({ level: 'silent' });
const url = (path: string) => new URL(path, 'http://admin.invalid');

describe('lineage admin API handlers', () => {
  let dir: string;
  let store: LineageStore;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-lineage-admin-'));
    store = await openSqliteLineageStore({ path: join(dir, 'lineage.db'), logger });
    await store.record([aliceSelect(), etlInsert(), bobSelect()]);
  });
  afterAll(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers the column, table and identity reports with their query parameters', async () => {
    const column = await handleLineageRequest(store, url(`/v1/lineage/column/${encodeURIComponent(`${CUSTOMERS}.email`)}?namespace=${encodeURIComponent(PRIMARY)}`));
    expect(column).toEqual({ status: 200, body: { report: await store.column(`${CUSTOMERS}.email`, { namespace: PRIMARY }) } });
    const body = (column!.body as { report: { reads: { subject: string }[] } }).report;
    expect(body.reads.map((r) => r.subject)).toEqual(['bob@example.com', 'alice@example.com']);

    const since = iso(T0 + 30 * MINUTE);
    const table = await handleLineageRequest(store, url(`/v1/lineage/table/${CUSTOMERS}/?since=${since}&limit=1`));
    expect(table).toEqual({ status: 200, body: { report: await store.table(CUSTOMERS, { since: T0 + 30 * MINUTE, limit: 1 }) } });

    const identity = await handleLineageRequest(store, url(`/v1/lineage/identity/${encodeURIComponent('etl-bot')}?until=${iso(T0 + HOUR)}`));
    expect(identity).toEqual({ status: 200, body: { report: await store.identity('etl-bot', { until: T0 + HOUR }) } });

    const recent = await handleLineageRequest(store, url(`/v1/lineage/identity/bob%40example.com?since=1h`), { now: () => T0 + HOUR + 30 * MINUTE });
    expect((recent!.body as { report: { runs: unknown[] } }).report.runs).toHaveLength(1);
    const old = await handleLineageRequest(store, url(`/v1/lineage/identity/bob%40example.com?since=1h`), { now: () => T0 + 3 * HOUR });
    expect((old!.body as { report: { runs: unknown[] } }).report.runs).toHaveLength(0);

    expect(await handleLineageRequest(store, url('/v1/approvals'))).toBeUndefined();
  });

  it('answers 400 naming the bad parameter', async () => {
    const cases: [string, RegExp][] = [
      ['/v1/lineage/column/email', /"email" is not a column name/],
      ['/v1/lineage/column/%E0%A4%A', /not valid percent-encoding/],
      ['/v1/lineage/table/%20', /table name is empty/],
      [`/v1/lineage/table/${CUSTOMERS}?since=yesterday`, /^since: expected an ISO 8601 time .* got "yesterday"/],
      [`/v1/lineage/table/${CUSTOMERS}?until=12`, /^until: expected/],
      [`/v1/lineage/table/${CUSTOMERS}?since=2026-02-01&until=2026-01-01`, /since \(2026-02-01T00:00:00.000Z\) is after until/],
      [`/v1/lineage/table/${CUSTOMERS}?limit=0`, /^limit: expected a whole number from 1 to 1000, got "0"/],
      [`/v1/lineage/table/${CUSTOMERS}?limit=5000`, /^limit: /],
      [`/v1/lineage/table/${CUSTOMERS}?limit=1.5`, /^limit: /],
      [`/v1/lineage/table/${CUSTOMERS}?namespace=`, /^namespace: empty/],
      ['/v1/lineage/identity/alice?namespace=x', /^namespace: an identity report covers every namespace/],
    ];
    for (const [path, message] of cases) {
      const reply = await handleLineageRequest(store, url(path));
      expect(reply?.status, path).toBe(400);
      expect(reply?.body, path).toMatchObject({ error: { code: 'invalid', message: expect.stringMatching(message) } });
    }
  });

  it('gives route entries for the admin server, with an optional authorization and a 503 for a broken store', async () => {
    const [route] = lineageRoutes(store, { authorize: (identity, request) => identity.groups.includes('dba') || request.name === identity.subject });
    expect(route!.pattern).toBe(LINEAGE_PATH);
    const match = route!.pattern.exec(`/v1/lineage/identity/${encodeURIComponent('alice@example.com')}`)!;
    const alice: Identity = { subject: 'alice@example.com', kind: 'human', groups: [], method: 'oidc' };
    const own = await route!.methods.GET({ params: match.slice(1), query: new URLSearchParams(), identity: alice });
    expect(own.status).toBe(200);
    const other = route!.pattern.exec(`/v1/lineage/table/${CUSTOMERS}`)!;
    await expect(route!.methods.GET({ params: other.slice(1), query: new URLSearchParams(), identity: alice })).rejects.toMatchObject({
      status: 403,
      message: expect.stringMatching(/alice@example.com may not see this lineage/),
    });
    const dba: Identity = { subject: 'bob@example.com', kind: 'human', groups: ['dba'], method: 'token' };
    expect((await route!.methods.GET({ params: other.slice(1), query: new URLSearchParams('limit=2'), identity: dba })).status).toBe(200);

    const broken = { table: () => Promise.reject(new LineageStoreError('the lineage store at /x is closed')) } as unknown as LineageStore;
    expect(await handleLineageRequest(broken, url(`/v1/lineage/table/${CUSTOMERS}`))).toEqual({
      status: 503,
      body: { error: { code: 'unavailable', message: 'the lineage store cannot answer: the lineage store at /x is closed' } },
      headers: {},
    });
  });

  it('reads times as ISO 8601 or spans back from now', () => {
    expect(parseLineageTime('7d', T0)).toBe(T0 - 7 * 24 * HOUR);
    expect(parseLineageTime('30m', T0)).toBe(T0 - 30 * MINUTE);
    expect(parseLineageTime('2026-01-10T12:00:00Z', 0)).toBe(T0);
    expect(parseLineageTime('2026-01-10', 0)).toBe(Date.UTC(2026, 0, 10));
    expect(parseLineageTime('7 days', T0)).toBeUndefined();
    expect(parseLineageTime('2026-13-45', T0)).toBeUndefined();
  });
});
