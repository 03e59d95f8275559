import { describe, expect, it } from 'vitest';
import { encodeErrorResponse, readErrorField } from '../messages/error-response.js';
import { CatalogSnapshot, PostgresCatalog } from './catalog.js';
import { CopyMasker } from './copy.js';
import { maskErrorFrame } from './errors.js';
import { OutBuffer, RowMasker, type ColumnAction, type MaskRules } from './plan.js';
import { maskValue, PgType } from './values.js';

const hashKey = Buffer.from('unit-test-masking-key');
const rules: MaskRules = {
  target: 'app',
  strongest: () => undefined,
  scanned: () => false,
  detectors: new Set(['email', 'payment-card']),
  detectorStrategy: 'partial',
  hashKey,
};
const text = { typeOid: PgType.text, typmod: -1, format: 0 };
const action = (index: number, strategy: ColumnAction['strategy'], mode: ColumnAction['mode'] = 'mask', shape = text): ColumnAction => ({
  index,
  name: `c${index}`,
  shape,
  mode,
  strategy,
  rule: mode === 'mask' ? 'r' : 'detector',
});

function copyData(line: string): Buffer {
  const body = Buffer.from(line, 'utf8');
  const head = Buffer.alloc(5);
  head[0] = 0x64;
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}
const body = (frame: Buffer) => frame.toString('utf8', 5);

describe('COPY rows', () => {
  it('masks the planned fields of a text-format row, keeping escapes, NULLs and the other fields', () => {
    const m = new CopyMasker(new RowMasker([action(1, 'partial'), action(2, 'redact')], 4, rules), { format: 'text' }, 4);
    expect(body(m.maskData(copyData('1\tjane@mail.example.org\t\\N\tx\\ty\n')))).toBe('1\tj***@m***.org\t\\N\tx\\ty\n');
    const plain = copyData('1\ta\\tb\tc\td\n');
    expect(body(m.maskData(plain))).toBe('1\t***\t[redacted]\td\n');
  });

  it('masks CSV with quotes, embedded delimiters and line breaks, and leaves the header alone', () => {
    const m = new CopyMasker(new RowMasker([action(1, 'partial')], 3, rules), { format: 'csv', header: true }, 3);
    expect(body(m.maskData(copyData('id,email,note\n')))).toBe('id,email,note\n');
    expect(body(m.maskData(copyData('1,"jane@mail.example.org","a, ""quoted""\nline"\n')))).toBe('1,"j***@m***.org","a, ""quoted""\nline"\n');
    expect(body(m.maskData(copyData('2,,x\n')))).toBe('2,,x\n');
  });

  it('refuses a row split across messages rather than pass it', () => {
    const m = new CopyMasker(new RowMasker([action(0, 'redact')], 1, rules), { format: 'text' }, 1);
    expect(() => m.maskData(copyData('half a row'))).toThrow(/split across messages/);
  });
});

describe('values of each type', () => {
  it('keeps char(n) lengths, varchar(n) limits, JSON validity and integer widths', () => {
    expect(maskValue(Buffer.from('4242424242424242   '), { typeOid: PgType.bpchar, typmod: 19 + 4, format: 0 }, 'partial', hashKey)?.toString()).toBe('************4242   ');
    expect(maskValue(Buffer.from('jane@mail.example.org'), { typeOid: PgType.varchar, typmod: 8 + 4, format: 0 }, 'partial', hashKey)?.toString()).toBe('j***@m**');
    const json = JSON.parse(maskValue(Buffer.from('"jane@mail.example.org"'), { typeOid: PgType.json, typmod: -1, format: 0 }, 'partial', hashKey)!.toString()) as unknown;
    expect(typeof json).toBe('string');
    expect(json).not.toContain('jane');
    const jsonb = maskValue(Buffer.concat([Buffer.of(1), Buffer.from('{"a":1}')]), { typeOid: PgType.jsonb, typmod: -1, format: 1 }, 'redact', hashKey)!;
    expect(jsonb[0]).toBe(1);
    expect(JSON.parse(jsonb.toString('utf8', 1))).toBe('[redacted]');
    expect(maskValue(Buffer.from('42'), { typeOid: PgType.int4, typmod: -1, format: 0 }, 'partial', hashKey)).toBeNull();
    const h4 = maskValue(Buffer.from([0, 0, 0, 42]), { typeOid: PgType.int4, typmod: -1, format: 1 }, 'hash', hashKey)!;
    expect(h4).toHaveLength(4);
    // The same number hashes the same in both formats.
    expect(maskValue(Buffer.from('42'), { typeOid: PgType.int4, typmod: -1, format: 0 }, 'hash', hashKey)!.toString()).toBe(String(h4.readInt32BE(0)));
    expect(maskValue(Buffer.alloc(16, 7), { typeOid: PgType.uuid, typmod: -1, format: 1 }, 'hash', hashKey)).toHaveLength(16);
    expect(maskValue(Buffer.from('2024-01-01'), { typeOid: 1082, typmod: -1, format: 0 }, 'hash', hashKey)).toBeNull();
  });

  it('rewrites a DataRow keeping NULLs, lengths and untouched columns', () => {
    const values = ['1', null, 'jane@mail.example.org', 'keep'];
    const parts: Buffer[] = [];
    for (const v of values) {
      const len = Buffer.alloc(4);
      len.writeInt32BE(v === null ? -1 : Buffer.byteLength(v));
      parts.push(len, v === null ? Buffer.alloc(0) : Buffer.from(v));
    }
    const payload = Buffer.concat(parts);
    const frame = Buffer.concat([Buffer.from([0x44, 0, 0, 0, 0, 0, values.length]), payload]);
    frame.writeInt32BE(frame.length - 1, 1);
    const m = new RowMasker([action(1, 'redact'), action(2, 'partial')], 4, rules);
    const sink = new OutBuffer(16);
    m.maskRowInto(frame, sink);
    const out = sink.bytes();
    expect(out.readInt32BE(1)).toBe(out.length - 1);
    const read: (string | null)[] = [];
    let at = 7;
    for (let i = 0; i < 4; i++) {
      const len = out.readInt32BE(at);
      at += 4;
      read.push(len < 0 ? null : out.toString('utf8', at, at + len));
      at += Math.max(0, len);
    }
    expect(read).toEqual(['1', null, 'j***@m***.org', 'keep']);
    expect(m.masked()).toEqual([
      { column: 'c1', by: 'r' },
      { column: 'c2', by: 'r' },
    ]);
    // A scanned column where the detectors find nothing: the row goes out as it came.
    const nothing = new RowMasker([action(3, 'partial', 'scan')], 4, rules);
    const same = new OutBuffer(16);
    nothing.maskRowInto(frame, same);
    expect(same.bytes().equals(frame)).toBe(true);
  });
});

describe('errors', () => {
  const ctx = { sensitiveStatement: true, sensitiveTable: () => false, detectors: new Set(['email'] as const), strategy: 'partial' as const, hashKey };

  it('redacts values echoed by data exceptions and integrity violations of sensitive statements', () => {
    const cast = encodeErrorResponse({ severity: 'ERROR', code: '22P02', message: 'invalid input syntax for type integer: "jane@mail.example.org"' });
    expect(readErrorField(maskErrorFrame(cast, ctx)!, 0x4d)).toBe('invalid input syntax for type integer: "[redacted]"');
    const dup = encodeErrorResponse({ severity: 'ERROR', code: '23505', message: 'duplicate key value violates unique constraint "c_email_key"', detail: 'Key (email)=(x1) already exists.' });
    expect(readErrorField(maskErrorFrame(dup, ctx)!, 0x44)).toBe('Key (email)=([redacted]) already exists.');
  });

  it('leaves other errors as they are unless a detector finds something', () => {
    const other = encodeErrorResponse({ severity: 'ERROR', code: '42703', message: 'column "emial" does not exist' });
    expect(maskErrorFrame(other, { ...ctx, sensitiveStatement: false })).toBeUndefined();
    // For a statement that touches a sensitive column, quoted values of any class are redacted.
    expect(readErrorField(maskErrorFrame(encodeErrorResponse({ severity: 'ERROR', code: '42704', message: 'unrecognized configuration parameter "123-45-6789"' }), ctx)!, 0x4d)).toBe('unrecognized configuration parameter "[redacted]"');
    const leak = encodeErrorResponse({ severity: 'ERROR', code: 'P0001', message: 'customer jane@mail.example.org is blocked' });
    expect(readErrorField(maskErrorFrame(leak, { ...ctx, sensitiveStatement: false })!, 0x4d)).toBe('customer j***@m***.org is blocked');
  });
});

describe('the catalog', () => {
  const log = { warn: () => undefined } as never;
  const empty = () => new CatalogSnapshot([], new Map(), []);

  it('waits for a first load, serves it, and waits again after a schema change', async () => {
    let loads = 0;
    const c = new PostgresCatalog({} as never, log, 60_000, async () => {
      loads++;
      return empty();
    });
    expect(c.current()).toBeUndefined();
    await c.ready();
    expect(c.current()).toBeDefined();
    c.invalidate();
    expect(c.current()).toBeUndefined();
    await c.ready();
    expect(loads).toBe(2);
  });

  it('a failed load is reported and leaves nothing to serve (the statement is refused)', async () => {
    const c = new PostgresCatalog({} as never, log, 60_000, () => Promise.reject(new Error('permission denied for pg_proc')));
    await expect(c.ready()).rejects.toThrow(/permission denied/);
    expect(c.current()).toBeUndefined();
  });

  it('traces view columns to the table columns they show', () => {
    const snap = new CatalogSnapshot(
      [
        { oid: 20000, schema: 'public', name: 'people', kind: 'r', columns: [{ attnum: 1, name: 'id', typeOid: 23, typmod: -1 }, { attnum: 2, name: 'email', typeOid: 25, typmod: -1 }] },
        { oid: 20001, schema: 'public', name: 'v', kind: 'v', columns: [{ attnum: 1, name: 'contact', typeOid: 25, typmod: -1 }] },
        { oid: 20002, schema: 'public', name: 'vv', kind: 'v', columns: [{ attnum: 1, name: 'x', typeOid: 25, typmod: -1 }] },
      ],
      new Map([
        [20001, ' SELECT lower(people.email) AS contact FROM people;'],
        [20002, ' SELECT upper(v.contact) AS x FROM v;'],
      ]),
      [],
    );
    expect(snap.viewColumnSources(20001, 1)).toContainEqual({ table: 'people', column: 'email' });
    expect(snap.viewColumnSources(20002, 1)).toContainEqual({ table: 'people', column: 'email' });
  });
});
