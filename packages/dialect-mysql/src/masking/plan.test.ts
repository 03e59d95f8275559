import {
  DETECTOR_NAMES,
  hashToInt,
  maskText,
  REDACTED_MARKER,
  SensitiveColumns,
  type ColumnSource,
  type DetectorKind,
  type MaskStrategy,
  type ResultLineage,
  type StatementMasking,
} from '@sluice/core';
import { describe, expect, it } from 'vitest';
import { resultLineageOfSql } from '../analyze/lineage.js';
import { ColumnFlag, ColumnType } from '../protocol/constants.js';
import { createRowRanges, decodeBinaryRow, decodeTextRow, encodeBinaryRow, encodeTextRow, rowValue, type ColumnDefinition41 } from '../protocol/messages.js';
import { MysqlCatalogSnapshot } from './catalog.js';
import { planColumns, planResult, type ResultSourcesMy } from './plan.js';

const KEY = Buffer.from('0123456789abcdef0123456789abcdef');
const UTF8MB4 = 45;
const BINARY = 63;
const LATIN1 = 8;

function masking(
  columns: readonly { column: string; strategy: MaskStrategy }[],
  options: { scan?: string[]; detectors?: readonly DetectorKind[]; detectorStrategy?: MaskStrategy } = {},
): StatementMasking {
  const sc = new SensitiveColumns({ columns, scan: options.scan ?? [] });
  return {
    target: 'db',
    strongest: (s) => sc.strongest('db', s),
    scanned: (s) => sc.scanned('db', s),
    sensitiveTable: (schema, table) => sc.mayMatchTable('db', schema, table),
    detectors: new Set(options.detectors ?? []),
    detectorStrategy: options.detectorStrategy ?? 'partial',
    hashKey: KEY,
  };
}

/** A column of `test.<orgTable>` (or a computed one when orgTable is empty). */
function col(name: string, c: Partial<ColumnDefinition41> = {}): ColumnDefinition41 {
  const orgTable = c.orgTable ?? 'customers';
  return {
    catalog: 'def',
    schema: orgTable === '' ? '' : 'test',
    table: orgTable,
    orgTable,
    name,
    orgName: orgTable === '' ? '' : name,
    charset: UTF8MB4,
    columnLength: 400,
    type: ColumnType.VAR_STRING,
    flags: 0,
    decimals: 0,
    ...c,
  };
}

const CATALOG = new MysqlCatalogSnapshot({
  relations: [
    { schema: 'test', name: 'customers', kind: 'table' },
    { schema: 'test', name: 'orders', kind: 'table' },
    { schema: 'test', name: 'other', kind: 'table' },
  ],
  views: [
    {
      schema: 'test',
      name: 'contacts',
      definition: 'select `test`.`customers`.`id` AS `cid`,`test`.`customers`.`email` AS `mail`,ucase(`test`.`customers`.`email`) AS `up`,`test`.`lookup`(`test`.`customers`.`id`) AS `secret` from `test`.`customers`',
      columns: ['cid', 'mail', 'up', 'secret'],
    },
  ],
  functions: [{ schema: 'test', name: 'lookup' }],
});

function sources(sql: string | undefined, extra: Partial<ResultSourcesMy> = {}): ResultSourcesMy {
  const lineage: ResultLineage | undefined = sql === undefined ? undefined : resultLineageOfSql(sql, { dialect: 'mariadb' });
  return { lineage, catalog: CATALOG, defaultSchema: 'test', ...extra };
}

const EMAIL = masking([{ column: 'test.customers.email', strategy: 'partial' }]);

/** Text row → values as strings (null for NULL). */
function textValues(row: Buffer, n: number): (string | null)[] {
  const r = decodeTextRow(row, n);
  return Array.from({ length: n }, (_, i) => rowValue(row, r, i)?.toString('utf8') ?? null);
}

describe('planning', () => {
  it('returns no masker when nothing in the result can need masking', () => {
    const cols = [col('id', { type: ColumnType.LONG }), col('name')];
    expect(planResult(cols, sources('select id, name from customers'), EMAIL, false)).toBeUndefined();
    // Computed columns of known sources: nothing to scan either, even with detectors on.
    const withDetectors = masking([], { detectors: DETECTOR_NAMES });
    expect(planResult([col('n', { orgTable: '', type: ColumnType.LONGLONG })], sources('select count(*) from customers'), withDetectors, false)).toBeUndefined();
  });

  it('resolves a column by its definition whatever its alias, and records the rule', () => {
    const cols = [col('id', { type: ColumnType.LONG }), col('contact', { orgName: 'email', table: 'c' })];
    const m = planResult(cols, sources('select c.id, c.email as contact from customers c'), EMAIL, false)!;
    expect(m.actions.map((a) => [a.name, a.mode, a.strategy])).toEqual([['contact', 'mask', 'partial']]);
    expect(m.masked).toEqual([{ column: 'contact', by: 'column:test.customers.email' }]);
  });

  it('redacts a computed value of a partial column (the query would choose what is kept)', () => {
    const cols = [col('upper(email)', { orgTable: '' })];
    const [a] = planColumns(cols, sources('select upper(email) from customers'), EMAIL, false);
    expect([a?.mode, a?.strategy]).toEqual(['mask', 'redact']);
    // A CTE keeps a stored value stored (MariaDB names the CTE in org_table).
    const cte = [col('email', { orgTable: 'c', table: 'c' })];
    expect(planColumns(cte, sources('with c as (select email from customers) select email from c'), EMAIL, false)[0]?.strategy).toBe('partial');
    // A UNION column is computed.
    const u = [col('email', { orgTable: '' })];
    expect(planColumns(u, sources('select email from customers union select note from orders'), EMAIL, false)[0]?.strategy).toBe('redact');
  });

  it('takes the strongest strategy of every source', () => {
    const rules = masking([
      { column: 'customers.email', strategy: 'partial' },
      { column: 'customers.ssn', strategy: 'null' },
    ]);
    const cols = [col('x', { orgTable: '' })];
    const [a] = planColumns(cols, sources("select concat(email, ssn) as x from customers"), rules, false);
    expect(a?.strategy).toBe('null');
  });

  it('falls back to the definitions when positions are unknown, and gives computed columns everything', () => {
    const cols = [col('id', { type: ColumnType.LONG }), col('email'), col('name'), col('u', { orgTable: '' })];
    const actions = planColumns(cols, sources('select *, upper(name) as u from customers'), EMAIL, false);
    expect(actions.map((a) => [a.name, a.strategy])).toEqual([
      ['email', 'partial'],
      ['u', 'redact'],
    ]);
  });

  it('does not take a derived table named like a table for that table', () => {
    // `select * from (select *, ssn as name from other) customers`: MariaDB names the derived
    // table in org_table; the statement reads no table `customers`.
    const rules = masking([{ column: 'other.ssn', strategy: 'partial' }]);
    const cols = [col('id', { type: ColumnType.LONG }), col('name')];
    const sql = 'select * from (select *, ssn as name from other) customers';
    expect(planColumns(cols, sources(sql), rules, false).map((a) => [a.name, a.strategy])).toEqual([
      ['id', 'redact'],
      ['name', 'redact'],
    ]);
    // ... nor when it does read `customers` too, next to the derived table of that name.
    const joined = 'select * from (select *, ssn as name from other) customers join customers c2 on true';
    const cols2 = [col('name'), col('email', { table: 'c2' })];
    expect(planColumns(cols2, sources(joined), rules, false).map((a) => a.name)).toEqual(['name']);
  });

  it('traces a view column to the table columns it shows', () => {
    const view = (name: string, c: Partial<ColumnDefinition41> = {}) => col(name, { orgTable: 'contacts', table: 'contacts', ...c });
    const rules = masking([{ column: 'customers.email', strategy: 'partial' }], { detectors: ['email'] });
    const actions = planColumns([view('cid', { type: ColumnType.LONG }), view('mail'), view('up', { schema: '' }), view('secret', { schema: '' })], sources('select * from contacts'), rules, false);
    expect(actions.map((a) => [a.name, a.mode, a.strategy])).toEqual([
      ['mail', 'mask', 'partial'],
      // ucase() in the view: computed.
      ['up', 'mask', 'redact'],
      // A stored function in the view: opaque, scanned.
      ['secret', 'scan', 'partial'],
    ]);
    // A configured view column is masked too.
    const onView = masking([{ column: 'contacts.cid', strategy: 'hash' }]);
    expect(planColumns([view('cid', { type: ColumnType.LONG })], sources('select cid from contacts'), onView, false)[0]?.strategy).toBe('hash');
  });

  it('traces an aliased view through the lineage (MariaDB then names the alias in org_table)', () => {
    const cols = [col('mail', { orgTable: 'v', table: 'v' }), col('up', { orgTable: 'v', table: 'v', schema: '' })];
    const actions = planColumns(cols, sources('select v.mail, v.up from contacts v'), EMAIL, false);
    expect(actions.map((a) => [a.name, a.strategy])).toEqual([
      ['mail', 'partial'],
      ['up', 'redact'],
    ]);
  });

  it('scans what cannot be resolved: stored functions, system tables, unknown relations, unanalysed statements', () => {
    const rules = masking([], { detectors: DETECTOR_NAMES });
    expect(planColumns([col('f', { orgTable: '' })], sources('select lookup(id) as f from customers'), rules, false)[0]?.mode).toBe('scan');
    expect(planColumns([col('f', { orgTable: '' })], sources('select test.other_fn(id) as f from customers'), rules, false)[0]?.mode).toBe('scan');
    const sys = col('SQL_TEXT', { schema: 'performance_schema', orgTable: 'events_statements_history', table: 'events_statements_history' });
    let unknown = 0;
    const onUnknownRelation = () => unknown++;
    expect(planColumns([sys], sources('select sql_text from performance_schema.events_statements_history', { onUnknownRelation }), rules, false)[0]?.mode).toBe('scan');
    expect(unknown).toBe(0);
    const fresh = [col('a', { orgTable: 'fresh', table: 'fresh' }), col('b', { orgTable: 'fresh', table: 'fresh' })];
    expect(planColumns(fresh, sources('select a, b from fresh', { onUnknownRelation }), rules, false).map((a) => a.mode)).toEqual(['scan', 'scan']);
    expect(unknown).toBe(1);
    expect(planColumns([col('email')], sources(undefined), rules, false)[0]?.mode).toBe('scan');
    // Without detectors, nothing is scanned.
    expect(planColumns(fresh, sources('select a, b from fresh'), masking([]), false)).toEqual([]);
  });

  it('takes a star over a relation the catalog does not list (a temporary table) column by column, and scans it', () => {
    const rules = masking([{ column: '*.*.ssn', strategy: 'partial' }], { detectors: ['email'] });
    const tmp = (name: string) => col(name, { orgTable: 'tmp_people', table: 'tmp_people' });
    let unknown = 0;
    const actions = planColumns([tmp('id'), tmp('ssn'), tmp('note')], sources('select * from tmp_people', { onUnknownRelation: () => unknown++ }), rules, false);
    expect(actions.map((a) => [a.name, a.mode, a.strategy])).toEqual([
      ['id', 'scan', 'partial'],
      ['ssn', 'mask', 'partial'],
      ['note', 'scan', 'partial'],
    ]);
    expect(unknown).toBe(1);
    // Without detectors only the sensitive column.
    expect(planColumns([tmp('id'), tmp('ssn')], sources('select * from tmp_people'), masking([{ column: '*.*.ssn', strategy: 'hash' }]), false).map((a) => a.name)).toEqual(['ssn']);
  });

  it('always scans configured free-text columns', () => {
    const rules = masking([], { scan: ['orders.note'], detectors: ['email'] });
    expect(planColumns([col('note', { orgTable: 'orders' })], sources('select note from orders'), rules, false)[0]?.mode).toBe('scan');
  });
});

describe('text protocol rows', () => {
  const cols = [col('id', { type: ColumnType.LONG, charset: BINARY, columnLength: 11 }), col('email'), col('note')];
  const sql = 'select id, email, note from customers';

  it('rewrites only the masked values and keeps the rest byte for byte', () => {
    const m = planResult(cols, sources(sql), EMAIL, false)!;
    const row = encodeTextRow(['7', 'john.smith@example.com', 'x'.repeat(300)]);
    const out = m.maskRow(row)!;
    expect(textValues(out, 3)).toEqual(['7', 'j***@e***.com', 'x'.repeat(300)]);
  });

  it('leaves a NULL as it is (the row is unchanged)', () => {
    const m = planResult(cols, sources(sql), EMAIL, false)!;
    expect(m.maskRow(encodeTextRow(['7', null, 'x']))).toBeUndefined();
  });

  it('applies hash, redact and null', () => {
    for (const [strategy, expected] of [
      ['hash', maskText('a@b.io', 'hash', { hashKey: KEY, maxLength: 100 })],
      ['redact', REDACTED_MARKER],
      ['null', null],
    ] as const) {
      const m = planResult(cols, sources(sql), masking([{ column: 'customers.email', strategy }]), false)!;
      const out = m.maskRow(encodeTextRow(['1', 'a@b.io', 'n']))!;
      expect(textValues(out, 3)).toEqual(['1', expected, 'n']);
    }
  });

  it('handles values whose lengths take several bytes, before and after the masked one', () => {
    const m = planResult(cols, sources(sql), masking([{ column: 'customers.email', strategy: 'hash' }]), false)!;
    const long = 'y'.repeat(70_000);
    const out = m.maskRow(encodeTextRow(['1', `${'z'.repeat(300)}@example.com`, long]))!;
    const v = textValues(out, 3);
    expect(v[1]).toMatch(/^h_[0-9a-f]{16}$/);
    expect(v[2]).toBe(long);
  });

  it('keeps masked text within the declared length in characters', () => {
    // VARCHAR(5) in utf8mb4: 20 bytes.
    const short = [col('email', { columnLength: 20 })];
    const m = planResult(short, sources('select email from customers'), masking([{ column: 'customers.email', strategy: 'hash' }]), false)!;
    expect(textValues(m.maskRow(encodeTextRow(['a@b.io']))!, 1)[0]).toHaveLength(5);
    const r = planResult(short, sources('select email from customers'), masking([{ column: 'customers.email', strategy: 'redact' }]), false)!;
    expect(textValues(r.maskRow(encodeTextRow(['abcdefg']))!, 1)[0]).toBe('*****');
  });

  it('masks multi-byte UTF-8 by characters', () => {
    const m = planResult([col('name')], sources('select name from customers'), masking([{ column: 'customers.name', strategy: 'partial' }]), false)!;
    expect(textValues(m.maskRow(encodeTextRow(['Zoë Ångström']))!, 1)[0]).toBe('Z***m');
    expect(textValues(m.maskRow(encodeTextRow(['日本語のテキスト']))!, 1)[0]).toBe('日***ト');
  });

  it('reads latin1 and binary strings byte for byte', () => {
    const rules = masking([{ column: 'customers.name', strategy: 'partial' }]);
    const latin = planResult([col('name', { charset: LATIN1, columnLength: 100 })], sources('select name from customers'), rules, false)!;
    const out = latin.maskRow(encodeTextRow([Buffer.from('Zoë Ångström', 'latin1')]))!;
    expect(rowValue(out, decodeTextRow(out, 1), 0)!.toString('latin1')).toBe('Z***m');
    const bin = planResult([col('name', { charset: BINARY, type: ColumnType.BLOB, flags: ColumnFlag.BINARY | ColumnFlag.BLOB, columnLength: 65535 })], sources('select name from customers'), rules, false)!;
    const raw = Buffer.from([0x01, 0xff, 0x80, 0x7f, 0x00, 0x99]);
    const masked = bin.maskRow(encodeTextRow([raw]))!;
    expect([...rowValue(masked, decodeTextRow(masked, 1), 0)!]).toEqual([0x01, 0x2a, 0x2a, 0x2a, 0x99]);
  });

  it('gives a JSON column a JSON string literal', () => {
    const m = planResult([col('doc', { type: ColumnType.JSON, columnLength: 0xffffffff })], sources('select doc from customers'), masking([{ column: 'customers.doc', strategy: 'redact' }]), false)!;
    const v = textValues(m.maskRow(encodeTextRow(['{"ssn": "123-45-6789"}']))!, 1)[0]!;
    expect(JSON.parse(v)).toBe(REDACTED_MARKER);
  });

  it('gives other types NULL, and integers NULL unless hashed', () => {
    const types = [ColumnType.NEWDECIMAL, ColumnType.DOUBLE, ColumnType.DATE, ColumnType.DATETIME, ColumnType.BIT, ColumnType.LONG];
    const cols2 = types.map((type, i) => col(`c${i}`, { type, charset: BINARY }));
    const rules = masking(types.map((_, i) => ({ column: `customers.c${i}`, strategy: 'partial' as const })));
    const m = planResult(cols2, sources(`select ${types.map((_, i) => `c${i}`).join(', ')} from customers`), rules, false)!;
    const out = m.maskRow(encodeTextRow(['12.50', '1.5', '2024-01-02', '2024-01-02 03:04:05', '\x01', '42']))!;
    expect(textValues(out, types.length)).toEqual(types.map(() => null));
  });
});

describe('hashed integers', () => {
  const intCol = (type: number, flags = 0, columnLength = 11) => col('n', { type, flags, charset: BINARY, columnLength });
  const rules = masking([{ column: 'customers.n', strategy: 'hash' }]);
  const src = sources('select n from customers');
  const text = (type: number, value: string, flags = 0, columnLength = 11): string => {
    const m = planResult([intCol(type, flags, columnLength)], src, rules, false)!;
    return textValues(m.maskRow(encodeTextRow([value]))!, 1)[0]!;
  };
  const binary = (type: number, value: Buffer, flags = 0): Buffer => {
    const m = planResult([intCol(type, flags)], src, rules, true)!;
    const out = m.maskRow(encodeBinaryRow([type], [value]))!;
    return rowValue(out, decodeBinaryRow(out, [type]), 0)!;
  };

  it('keeps the width and signedness of each integer type', () => {
    const full = hashToInt(KEY, '42', 64);
    expect(text(ColumnType.LONGLONG, '42')).toBe(full.toString());
    expect(text(ColumnType.LONGLONG, '42', ColumnFlag.UNSIGNED)).toBe(BigInt.asUintN(64, full).toString());
    expect(text(ColumnType.LONG, '42')).toBe(BigInt.asIntN(32, full).toString());
    expect(text(ColumnType.LONG, '42', ColumnFlag.UNSIGNED)).toBe(BigInt.asUintN(32, full).toString());
    expect(text(ColumnType.INT24, '42')).toBe(BigInt.asIntN(24, full).toString());
    expect(text(ColumnType.SHORT, '42')).toBe(BigInt.asIntN(16, full).toString());
    expect(text(ColumnType.TINY, '42', ColumnFlag.UNSIGNED)).toBe(BigInt.asUintN(8, full).toString());
    const year = Number(text(ColumnType.YEAR, '1999', 0, 4));
    expect(year).toBeGreaterThanOrEqual(1901);
    expect(year).toBeLessThanOrEqual(2155);
  });

  it('pads ZEROFILL columns and hashes the number, not its padding', () => {
    const padded = text(ColumnType.LONG, '0000000042', ColumnFlag.UNSIGNED | ColumnFlag.ZEROFILL, 10);
    expect(padded).toHaveLength(10);
    expect(BigInt(padded)).toBe(BigInt.asUintN(32, hashToInt(KEY, '42', 64)));
  });

  it('gives the same numbers in the binary protocol, as little-endian bytes of the fixed width', () => {
    const full = hashToInt(KEY, '42', 64);
    const b8 = Buffer.alloc(8);
    b8.writeBigUInt64LE(42n);
    expect(binary(ColumnType.LONGLONG, b8, ColumnFlag.UNSIGNED).readBigUInt64LE(0)).toBe(BigInt.asUintN(64, full));
    // An unsigned BIGINT above the signed range is read as unsigned.
    const big = Buffer.alloc(8);
    big.writeBigUInt64LE(18446744073709551615n);
    expect(binary(ColumnType.LONGLONG, big, ColumnFlag.UNSIGNED).readBigUInt64LE(0)).toBe(BigInt.asUintN(64, hashToInt(KEY, '18446744073709551615', 64)));
    const b4 = Buffer.alloc(4);
    b4.writeInt32LE(42);
    expect(binary(ColumnType.LONG, b4).readInt32LE(0)).toBe(Number(BigInt.asIntN(32, full)));
    expect(binary(ColumnType.INT24, b4).readInt32LE(0)).toBe(Number(BigInt.asIntN(24, full)));
    const b2 = Buffer.alloc(2);
    b2.writeInt16LE(42);
    expect(binary(ColumnType.SHORT, b2).readInt16LE(0)).toBe(Number(BigInt.asIntN(16, full)));
    expect(binary(ColumnType.TINY, Buffer.of(42))).toHaveLength(1);
  });

  it('is deterministic (joins still line up) and differs between values', () => {
    expect(text(ColumnType.LONG, '42')).toBe(text(ColumnType.LONG, '42'));
    expect(text(ColumnType.LONG, '42')).not.toBe(text(ColumnType.LONG, '43'));
  });
});

describe('binary protocol rows', () => {
  const types = [ColumnType.LONG, ColumnType.VAR_STRING, ColumnType.DATETIME, ColumnType.DOUBLE, ColumnType.VAR_STRING, ColumnType.LONGLONG];
  const cols = [
    col('id', { type: ColumnType.LONG, charset: BINARY }),
    col('email'),
    col('born', { type: ColumnType.DATETIME, charset: BINARY }),
    col('score', { type: ColumnType.DOUBLE, charset: BINARY }),
    col('note'),
    col('card', { type: ColumnType.LONGLONG, charset: BINARY }),
  ];
  const sql = 'select id, email, born, score, note, card from customers';
  const rules = masking([
    { column: 'customers.id', strategy: 'hash' },
    { column: 'customers.email', strategy: 'partial' },
    { column: 'customers.born', strategy: 'partial' },
  ]);
  const id = Buffer.alloc(4);
  id.writeInt32LE(7);
  const dt = Buffer.from([0xe8, 0x07, 1, 2, 3, 4, 5]);
  const score = Buffer.alloc(8);
  score.writeDoubleLE(1.5);
  const card = Buffer.alloc(8);
  card.writeBigInt64LE(4111111111111111n);

  it('writes the same row after headroom for a packet header, NULL bits included', () => {
    const m = planResult(cols, sources(sql), rules, true)!;
    const row = encodeBinaryRow(types, [id, Buffer.from('john@example.com'), dt, score, Buffer.from('n'), card]);
    const plain = m.maskRow(row)!;
    const roomy = m.maskRow(row, 4)!;
    expect(roomy.length).toBe(plain.length + 4);
    expect(roomy.subarray(4)).toEqual(plain);
    const text = planResult(cols, sources(sql), rules, false)!;
    const textRow = encodeTextRow(['7', 'john@example.com', '2024-01-02 03:04:05', '1.5', 'n', '4111111111111111']);
    expect(text.maskRow(textRow, 4)!.subarray(4)).toEqual(text.maskRow(textRow)!);
  });

  it('rewrites values in place, sets the NULL bit of a value made NULL and keeps the rest', () => {
    const m = planResult(cols, sources(sql), rules, true)!;
    const row = encodeBinaryRow(types, [id, Buffer.from('john@example.com'), dt, score, Buffer.from('n'), card]);
    const out = m.maskRow(row)!;
    const r = decodeBinaryRow(out, types, createRowRanges(types.length));
    expect(rowValue(out, r, 0)!.readInt32LE(0)).toBe(Number(BigInt.asIntN(32, hashToInt(KEY, '7', 64))));
    expect(rowValue(out, r, 1)!.toString()).toBe('j***@e***.com');
    expect(rowValue(out, r, 2)).toBeNull();
    expect(rowValue(out, r, 3)!.readDoubleLE(0)).toBe(1.5);
    expect(rowValue(out, r, 4)!.toString()).toBe('n');
    expect(rowValue(out, r, 5)!.readBigInt64LE(0)).toBe(4111111111111111n);
    // Re-encoding what came out gives the same bytes: the row is well formed.
    expect(encodeBinaryRow(types, types.map((_, i) => rowValue(out, r, i))).equals(out)).toBe(true);
  });

  it('keeps NULLs and returns nothing for a row it does not change', () => {
    const m = planResult(cols, sources(sql), rules, true)!;
    expect(m.maskRow(encodeBinaryRow(types, [null, null, null, score, Buffer.from('n'), card]))).toBeUndefined();
  });

  it('scans integers of a binary row as numbers (a card number in a BIGINT becomes NULL)', () => {
    const scanning = masking([], { detectors: ['payment-card'] });
    const m = planResult(cols, sources(undefined), scanning, true)!;
    const out = m.maskRow(encodeBinaryRow(types, [id, Buffer.from('n'), dt, score, Buffer.from('card 4111 1111 1111 1111'), card]))!;
    const r = decodeBinaryRow(out, types);
    expect(rowValue(out, r, 5)).toBeNull();
    expect(rowValue(out, r, 4)!.toString()).toBe('card **** **** **** 1111');
    expect(rowValue(out, r, 2)!.equals(dt)).toBe(true);
    expect(m.masked).toEqual([
      { column: 'note', by: 'detector:payment-card' },
      { column: 'card', by: 'detector:payment-card' },
    ]);
  });

  it('rejects a row that does not have the planned columns', () => {
    const m = planResult(cols, sources(sql), rules, true)!;
    expect(() => m.maskRow(encodeBinaryRow(types.slice(0, 2), [id, Buffer.from('a')]))).toThrow(RangeError);
    const t = planResult(cols, sources(sql), rules, false)!;
    expect(() => t.maskRow(encodeTextRow(['1', 'a@b.io']))).toThrow(RangeError);
  });
});

describe('detectors', () => {
  const rules = masking([], { detectors: DETECTOR_NAMES });

  it('masks what they find inside text, and the audit lists the detector once found', () => {
    const m = planResult([col('body', { orgTable: '' })], sources(undefined), rules, false)!;
    expect(m.masked).toEqual([]);
    expect(m.maskRow(encodeTextRow(['nothing to see here']))).toBeUndefined();
    const out = m.maskRow(encodeTextRow(['écrire à jean.dupont@example.fr, merci']))!;
    expect(textValues(out, 1)[0]).toBe('écrire à j***@e***.fr, merci');
    expect(m.masked).toEqual([{ column: 'body', by: 'detector:email' }]);
  });

  it('gives a number that is a card number NULL, and keeps a JSON document a document', () => {
    const m = planResult(
      [col('n', { orgTable: '', type: ColumnType.NEWDECIMAL, charset: BINARY }), col('doc', { orgTable: '', type: ColumnType.JSON })],
      sources(undefined),
      rules,
      false,
    )!;
    const out = m.maskRow(encodeTextRow(['4111111111111111', '{"mail": "a.b@example.com"}']))!;
    const [n, doc] = textValues(out, 2);
    expect(n).toBeNull();
    expect(JSON.parse(doc!)).toEqual({ mail: 'a***@e***.com' });
  });

  it('mask with the null strategy as NULL', () => {
    const m = planResult([col('body', { orgTable: '' })], sources(undefined), masking([], { detectors: ['email'], detectorStrategy: 'null' }), false)!;
    expect(textValues(m.maskRow(encodeTextRow(['x a@b.io']))!, 1)).toEqual([null]);
  });
});

describe('the plan reads the sources it is given', () => {
  it('matches unqualified statement sources against patterns of any schema', () => {
    const rules = masking([{ column: 'crm.customers.email', strategy: 'partial' }]);
    // A computed column of `customers` in the default schema: the statement did not qualify it.
    const [a] = planColumns([col('x', { orgTable: '' })], sources('select lower(email) as x from customers'), rules, false);
    expect(a?.strategy).toBe('redact');
  });

  it('lists the sources of whole-row references', () => {
    const s: ColumnSource[] = CATALOG.trace([{ table: 'contacts', column: '*' }], 'test').sources;
    expect(s.map((x) => `${x.schema ?? ''}.${x.table}.${x.column}`)).toEqual(
      expect.arrayContaining(['.contacts.*', 'test.customers.email', 'test.customers.id']),
    );
  });
});
