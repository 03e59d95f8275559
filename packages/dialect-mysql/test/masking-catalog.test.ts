import type { ColumnSource } from '@sluice/core';
import { requireService } from '@sluice/testkit';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { CatalogConnection, CatalogQueryError, catalogFor, loadCatalog, MysqlCatalog } from '../src/masking/index.js';
import { UpstreamError, type MysqlUpstreamOptions } from '../src/protocol/upstream.js';

/**
 * The masking catalog read from the real MariaDB 10.11 on 127.0.0.1:3306 (root, empty
 * password, database `test`): views traced to base tables (views over views too), stored
 * functions, relation kinds, collations, reloads and failures.
 */

let available = false;
function live(name: string, body: () => Promise<void>, timeout = 30_000): void {
  it(name, async () => {
    if (!available) return;
    await body();
  }, timeout);
}

const ROOT: MysqlUpstreamOptions = { host: '127.0.0.1', port: 3306, user: 'root', password: '', database: 'test', connectTimeoutMs: 5000 };
const keys = (s: readonly ColumnSource[]): string[] => [...new Set(s.map((x) => `${x.schema ?? ''}.${x.table}.${x.column}`))].sort();

const DROP = [
  'DROP VIEW IF EXISTS mask_mod_cat_v3',
  'DROP VIEW IF EXISTS mask_mod_cat_v2',
  'DROP VIEW IF EXISTS mask_mod_cat_v',
  'DROP VIEW IF EXISTS mask_mod_cat_late',
  'DROP FUNCTION IF EXISTS mask_mod_cat_f',
  'DROP TABLE IF EXISTS mask_mod_cat_t',
];

async function run(statements: readonly string[]): Promise<void> {
  const c = await CatalogConnection.open(ROOT);
  try {
    for (const s of statements) await c.query(s);
  } finally {
    c.close();
  }
}

beforeAll(async () => {
  available = await requireService('MariaDB', '127.0.0.1', 3306);
  if (!available) return;
  await run([
    ...DROP,
    'CREATE TABLE mask_mod_cat_t (id INT PRIMARY KEY, email VARCHAR(40), first VARCHAR(20), last VARCHAR(20), ssn CHAR(11))',
    'CREATE FUNCTION mask_mod_cat_f(x INT) RETURNS CHAR(11) READS SQL DATA RETURN (SELECT ssn FROM mask_mod_cat_t WHERE id = x)',
    'CREATE VIEW mask_mod_cat_v AS SELECT id, email AS mail, concat(first, \' \', last) AS full_name, mask_mod_cat_f(id) AS s FROM mask_mod_cat_t',
    'CREATE VIEW mask_mod_cat_v2 (m, n) AS SELECT mail, full_name FROM mask_mod_cat_v',
    'CREATE VIEW mask_mod_cat_v3 AS SELECT * FROM mask_mod_cat_v2 WHERE m IS NOT NULL',
  ]);
});

afterAll(async () => {
  if (!available) return;
  await run(DROP);
});

describe('the catalog of a live server', () => {
  live('traces views and views over views to the base table columns', async () => {
    const snap = await loadCatalog(ROOT);
    expect(snap.dialect).toBe('mariadb');
    const v = snap.viewColumns('test', 'mask_mod_cat_v')!;
    expect(v.map((c) => [c.name, keys(c.sources), c.direct, c.opaque])).toEqual([
      ['id', ['test.mask_mod_cat_t.id'], true, false],
      ['mail', ['test.mask_mod_cat_t.email'], true, false],
      ['full_name', ['test.mask_mod_cat_t.first', 'test.mask_mod_cat_t.last'], false, false],
      // The stored function's body is procedural: opaque.
      ['s', ['test.mask_mod_cat_t.id'], false, true],
    ]);
    // A column list on the view: its names, in order.
    const v2 = snap.viewColumns('test', 'mask_mod_cat_v2')!;
    expect(v2.map((c) => [c.name, keys(c.sources), c.direct])).toEqual([
      ['m', ['test.mask_mod_cat_t.email', 'test.mask_mod_cat_v.mail'], true],
      ['n', ['test.mask_mod_cat_t.first', 'test.mask_mod_cat_t.last', 'test.mask_mod_cat_v.full_name'], false],
    ]);
    const v3 = snap.viewColumns('test', 'mask_mod_cat_v3')!;
    expect(v3.map((c) => c.name)).toEqual(['m', 'n']);
    expect(keys(v3[0]!.sources)).toContain('test.mask_mod_cat_t.email');
    expect(v3[0]!.direct).toBe(true);
  });

  live('knows relations, their kinds, stored functions and collations', async () => {
    const snap = await loadCatalog(ROOT);
    expect(snap.relations('test', 'mask_mod_cat_t').map((r) => r.kind)).toEqual(['table']);
    expect(snap.relations('test', 'mask_mod_cat_v').map((r) => r.kind)).toEqual(['view']);
    expect(snap.relations(undefined, 'MASK_MOD_CAT_T')).toHaveLength(1);
    expect(snap.relations('test', 'mask_mod_cat_nope')).toEqual([]);
    expect(snap.isStoredFunction('mask_mod_cat_f', 'test')).toBe(true);
    expect(snap.isStoredFunction('upper', 'test')).toBe(false);
    expect(snap.charsetOf(45)).toEqual({ charset: 'utf8mb4', maxLen: 4 });
    expect(snap.charsetOf(63)).toEqual({ charset: 'binary', maxLen: 1 });
    expect(snap.charsetOf(8)).toEqual({ charset: 'latin1', maxLen: 1 });
  });

  live('MysqlCatalog: ready, current, and a new view seen after invalidate', async () => {
    const c = new MysqlCatalog(ROOT, { warn: vi.fn() });
    try {
      await c.ready();
      expect(c.ready()).toBeUndefined();
      expect(c.snapshot!.viewColumns('test', 'mask_mod_cat_late')).toBeUndefined();
      await run(['CREATE VIEW mask_mod_cat_late AS SELECT ssn AS x FROM mask_mod_cat_t']);
      c.invalidate();
      await c.ready();
      expect(keys(c.snapshot!.viewColumns('test', 'mask_mod_cat_late')![0]!.sources)).toEqual(['test.mask_mod_cat_t.ssn']);
    } finally {
      c.close();
    }
  });

  live('ready() rejects when the catalog cannot be read', async () => {
    const c = catalogFor({ ...ROOT, user: 'mask_mod_cat_nobody', password: 'wrong' }, { warn: vi.fn() });
    try {
      await expect(c.ready()).rejects.toBeInstanceOf(UpstreamError);
      expect(c.snapshot).toBeUndefined();
    } finally {
      c.close();
    }
  });

  live('a catalog read that takes too long is abandoned', async () => {
    await expect(loadCatalog(ROOT, 0)).rejects.toThrow(/took longer than 0 ms/);
  });

  live('the query helper reports server errors and keeps the connection usable', async () => {
    const conn = await CatalogConnection.open(ROOT);
    try {
      await expect(conn.query('SELECT * FROM mask_mod_cat_missing')).rejects.toBeInstanceOf(CatalogQueryError);
      expect(await conn.query("SELECT 1, NULL, 'é'")).toEqual([['1', null, 'é']]);
      expect(await conn.query('DO 1')).toEqual([]);
    } finally {
      conn.close();
    }
  });
});
