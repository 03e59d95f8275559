import type { ColumnSource } from '@sluice/core';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { catalogFor, MysqlCatalog, MysqlCatalogSnapshot, type MysqlCatalogData } from './catalog.js';

const keys = (s: readonly ColumnSource[]): string[] => [...new Set(s.map((x) => `${x.schema ?? ''}.${x.table}.${x.column}`))].sort();

const DATA: MysqlCatalogData = {
  dialect: 'mariadb',
  relations: [
    { schema: 'shop', name: 'customers', kind: 'table' },
    { schema: 'shop', name: 'orders', kind: 'table' },
    { schema: 'shop', name: 'v1', kind: 'view' },
    { schema: 'shop', name: 'v2', kind: 'view' },
    { schema: 'shop', name: 'hidden', kind: 'view' },
    { schema: 'crm', name: 'customers', kind: 'table' },
  ],
  views: [
    {
      schema: 'shop',
      name: 'v1',
      definition:
        'select `shop`.`customers`.`id` AS `id`,`shop`.`customers`.`email` AS `mail`,concat(`shop`.`customers`.`first`,`shop`.`customers`.`last`) AS `full`,`secret_of`(`shop`.`customers`.`id`) AS `s` from `shop`.`customers`',
      columns: ['id', 'mail', 'full', 's'],
    },
    // A view over a view, written without the schema as MariaDB does for the inner view's columns.
    { schema: 'shop', name: 'v2', definition: 'select `v1`.`mail` AS `m`,`v1`.`full` AS `f`,`v1`.`id` AS `id` from `shop`.`v1`', columns: ['m', 'f', 'id'] },
    // The user may not see this definition.
    { schema: 'shop', name: 'hidden', definition: undefined, columns: ['a'] },
  ],
  functions: [{ schema: 'shop', name: 'secret_of' }],
};

describe('MysqlCatalogSnapshot', () => {
  const snap = new MysqlCatalogSnapshot(DATA);

  it('traces view columns to the table columns they show, with direct and opaque', () => {
    const cols = snap.viewColumns('shop', 'v1')!;
    expect(cols.map((c) => [c.name, keys(c.sources), c.direct, c.opaque])).toEqual([
      ['id', ['shop.customers.id'], true, false],
      ['mail', ['shop.customers.email'], true, false],
      ['full', ['shop.customers.first', 'shop.customers.last'], false, false],
      ['s', ['shop.customers.id'], false, true],
    ]);
  });

  it('traces views over views to the base tables', () => {
    const cols = snap.viewColumns('shop', 'v2')!;
    expect(cols.map((c) => [c.name, keys(c.sources), c.direct, c.opaque])).toEqual([
      ['m', ['shop.customers.email', 'shop.v1.mail'], true, false],
      ['f', ['shop.customers.first', 'shop.customers.last', 'shop.v1.full'], false, false],
      ['id', ['shop.customers.id', 'shop.v1.id'], true, false],
    ]);
  });

  it('makes a view whose definition cannot be seen opaque', () => {
    const [a] = snap.viewColumns('shop', 'hidden')!;
    expect(a?.opaque).toBe(true);
    expect(snap.trace([{ table: 'hidden', column: 'a' }], 'shop').opaque).toBe(true);
  });

  it('traces statement sources: views, whole rows, unknown relations, system schemas', () => {
    const t = snap.trace([{ table: 'v2', column: 'm' }], 'shop');
    expect(keys(t.sources)).toEqual(['.v2.m', 'shop.customers.email', 'shop.v1.mail']);
    expect([t.direct, t.opaque, t.unknown]).toEqual([true, false, false]);
    const star = snap.trace([{ schema: 'shop', table: 'v1', column: '*' }], undefined);
    expect(star.opaque).toBe(true); // column s comes from a stored function
    expect(keys(star.sources)).toContain('shop.customers.email');
    expect(snap.trace([{ table: 'nope', column: 'x' }], 'shop')).toMatchObject({ unknown: true, opaque: true });
    expect(snap.trace([{ schema: 'mysql', table: 'general_log', column: 'argument' }], 'shop')).toMatchObject({ unknown: false, opaque: true });
    // Unqualified without a default schema: any schema.
    expect(snap.trace([{ table: 'customers', column: 'email' }], undefined)).toMatchObject({ unknown: false, opaque: false });
    // Names are compared without case.
    expect(snap.trace([{ table: 'V2', column: 'M' }], 'SHOP').sources.length).toBeGreaterThan(1);
  });

  it('knows stored functions; qualified names are always taken as stored', () => {
    expect(snap.isStoredFunction('secret_of', 'shop')).toBe(true);
    expect(snap.isStoredFunction('SECRET_OF', undefined)).toBe(true);
    expect(snap.isStoredFunction('secret_of', 'crm')).toBe(false);
    expect(snap.isStoredFunction('upper', 'shop')).toBe(false);
    expect(snap.isStoredFunction('crm.anything', 'shop')).toBe(true);
  });

  it('does not loop on views that read each other', () => {
    const loop = new MysqlCatalogSnapshot({
      relations: [],
      views: [
        { schema: 's', name: 'a', definition: 'select `s`.`b`.`x` AS `x` from `s`.`b`', columns: ['x'] },
        { schema: 's', name: 'b', definition: 'select `s`.`a`.`x` AS `x` from `s`.`a`', columns: ['x'] },
      ],
      functions: [],
    });
    expect(loop.viewColumns('s', 'a')![0]!.opaque).toBe(true);
  });
});

describe('MysqlCatalog', () => {
  const options = { host: '127.0.0.1', port: 1, user: 'u' };
  const log = { warn: vi.fn() };
  afterEach(() => {
    vi.useRealTimers();
    log.warn.mockReset();
  });

  it('loads on first need, then is current until invalidated', async () => {
    let loads = 0;
    const c = new MysqlCatalog(options, log, { loader: async () => (loads++, MysqlCatalogSnapshot.empty()) });
    expect(c.snapshot).toBeUndefined();
    const p = c.ready()!;
    expect(c.ready()).toBeDefined();
    await p;
    expect(loads).toBe(1);
    expect(c.ready()).toBeUndefined();
    const first = c.snapshot;
    c.invalidate();
    await c.ready();
    expect(loads).toBe(2);
    expect(c.snapshot).not.toBe(first);
    c.close();
  });

  it('loads again when the schema changes while it loads', async () => {
    let loads = 0;
    let release: (() => void) | undefined;
    const c = new MysqlCatalog(options, log, {
      loader: () =>
        new Promise((resolve) => {
          loads++;
          release = () => resolve(MysqlCatalogSnapshot.empty());
        }),
    });
    const p = c.ready()!;
    c.invalidate();
    release!();
    await vi.waitFor(() => expect(loads).toBe(2));
    release!();
    await p;
    expect(c.ready()).toBeUndefined();
    c.close();
  });

  it('rejects when the catalog cannot be read, and keeps the previous snapshot on a failed refresh', async () => {
    let fail = true;
    const c = new MysqlCatalog(options, log, { ttlMs: 1000, loader: async () => (fail ? Promise.reject(new Error('no')) : MysqlCatalogSnapshot.empty()) });
    await expect(c.ready()).rejects.toThrow('no');
    fail = false;
    await c.ready();
    const s = c.snapshot;
    fail = true;
    vi.useFakeTimers();
    c.noteUnknownRelation();
    await vi.waitFor(() => expect(log.warn).toHaveBeenCalled());
    expect(c.snapshot).toBe(s);
    expect(c.ready()).toBeUndefined();
    c.close();
  });

  it('refreshes in the background every ttl, until closed', async () => {
    vi.useFakeTimers();
    let loads = 0;
    const c = new MysqlCatalog(options, log, { ttlMs: 60_000, loader: async () => (loads++, MysqlCatalogSnapshot.empty()) });
    await c.ready();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(loads).toBe(2);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(loads).toBe(3);
    c.close();
    await vi.advanceTimersByTimeAsync(180_000);
    expect(loads).toBe(3);
  });

  it('reloads for unknown relations at most once per period', async () => {
    vi.useFakeTimers();
    let loads = 0;
    const c = new MysqlCatalog(options, log, { unknownReloadMs: 5000, loader: async () => (loads++, MysqlCatalogSnapshot.empty()) });
    await c.ready();
    c.noteUnknownRelation();
    await vi.advanceTimersByTimeAsync(1);
    c.noteUnknownRelation();
    await vi.advanceTimersByTimeAsync(1);
    expect(loads).toBe(2);
    await vi.advanceTimersByTimeAsync(5000);
    c.noteUnknownRelation();
    await vi.advanceTimersByTimeAsync(1);
    expect(loads).toBe(3);
    c.close();
  });

  it('is shared per endpoint and user', () => {
    const a = catalogFor({ host: 'h', port: 3306, user: 'u', password: 'x' }, log);
    expect(catalogFor({ host: 'h', port: 3306, user: 'u', database: 'other' }, log)).toBe(a);
    expect(catalogFor({ host: 'h', port: 3306, user: 'v' }, log)).not.toBe(a);
    a.close();
    expect(catalogFor({ host: 'h', port: 3306, user: 'u' }, log)).not.toBe(a);
  });
});

describe('what stored routines read', () => {
  const snapshot = new MysqlCatalogSnapshot({
    relations: [
      { schema: 'app', name: 'people', kind: 'table' },
      { schema: 'app', name: 'orders', kind: 'table' },
      { schema: 'app', name: 'people_v', kind: 'view' },
    ],
    views: [{ schema: 'app', name: 'people_v', definition: 'select `app`.`people`.`email` AS `mail` from `app`.`people`', columns: ['mail'] }],
    functions: [
      { schema: 'app', name: 'mail_of' },
      { schema: 'app', name: 'wrapped' },
      { schema: 'app', name: 'loop_a' },
    ],
    routines: [
      { schema: 'app', name: 'mail_of', type: 'FUNCTION', definition: 'RETURN (SELECT email FROM people WHERE id = x)' },
      { schema: 'app', name: 'wrapped', type: 'FUNCTION', definition: 'BEGIN DECLARE r TEXT; SELECT mail INTO r FROM people_v LIMIT 1; RETURN concat(r, mail_of(1)); END' },
      { schema: 'app', name: 'loop_a', type: 'FUNCTION', definition: 'RETURN loop_a(1)' },
      { schema: 'app', name: 'report', type: 'PROCEDURE', definition: 'BEGIN SELECT total FROM orders; SELECT lower(email) FROM people; END' },
      { schema: 'app', name: 'hidden', type: 'PROCEDURE', definition: undefined },
    ],
  });
  const keys = (t: { sources: readonly { schema?: string; table: string; column: string }[] } | undefined) =>
    [...new Set((t?.sources ?? []).map((s) => `${s.schema ?? ''}.${s.table}.${s.column}`))].sort();

  it('reads a RETURN body as the SELECT it is, with the columns it names', () => {
    const t = snapshot.routineReads('mail_of', 'FUNCTION', 'app')!;
    expect(t.opaque).toBe(false);
    expect(keys(t)).toEqual(expect.arrayContaining(['app.people.email', 'app.people.id']));
    expect(keys(t).every((k) => k.startsWith('app.people.'))).toBe(true);
  });

  it('reads a BEGIN ... END body, through views and the functions it calls', () => {
    const t = snapshot.routineReads('app.wrapped', 'FUNCTION', undefined)!;
    expect(keys(t)).toEqual(expect.arrayContaining(['app.people.email', 'app.people_v.mail']));
  });

  it('a procedure reads every table its statements read', () => {
    expect(keys(snapshot.routineReads('report', 'PROCEDURE', 'app'))).toEqual(expect.arrayContaining(['app.orders.total', 'app.people.email']));
  });

  it('is opaque when the body cannot be seen, and for recursion; undefined when unknown', () => {
    expect(snapshot.routineReads('hidden', 'PROCEDURE', 'app')!.opaque).toBe(true);
    expect(snapshot.routineReads('loop_a', 'FUNCTION', 'app')!.opaque).toBe(true);
    expect(snapshot.routineReads('nope', 'FUNCTION', 'app')).toBeUndefined();
    expect(snapshot.routineReads('report', 'FUNCTION', 'app')).toBeUndefined();
  });
});
