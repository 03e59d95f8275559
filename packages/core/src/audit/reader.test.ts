import { readFile, unlink, writeFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { useTempDir } from '../test-support/temp-dir.js';
import { canonicalJson, encodeRecordLine, sha256Hex } from './chain.js';
import { FileAuditStore } from './file-store.js';
import { readAuditRecords, verifyAuditLog } from './reader.js';
import type { AuditEvent, AuditRecord } from './types.js';

function statement(i: number, time?: string): AuditEvent {
  return {
    type: 'statement',
    time: time ?? new Date(Date.UTC(2024, 0, 1, 0, 0, i)).toISOString(),
    dialect: 'postgres',
    sessionId: 's1',
    phase: 'complete',
    statementId: `st${i}`,
    actor: { subject: 'bob', kind: 'agent', groups: [], method: 'token' },
    target: 'prod',
    text: `UPDATE t SET a = $1 WHERE id = ${i}`,
    fingerprint: 'cd'.repeat(8),
    operations: ['write'],
    protocol: 'extended',
    decision: 'allow',
    outcome: 'ok',
    rows: 1,
    durationMs: 2,
  };
}

const silent = { error: () => undefined };
const tempDir = useTempDir('sluice-audit-');
let dir: string;
beforeEach(() => {
  dir = tempDir();
});

async function writeLog(count: number, segmentBytes?: number): Promise<AuditRecord[]> {
  const store = await FileAuditStore.open({ dir, logger: silent, ...(segmentBytes ? { segmentBytes } : {}) });
  const out: AuditRecord[] = [];
  for (let i = 1; i <= count; i++) out.push(await store.append(statement(i), { durable: true }));
  await store.close();
  return out;
}

const file1 = () => join(dir, 'audit-000001.jsonl');

async function lines(path = file1()): Promise<string[]> {
  return (await readFile(path, 'utf8')).split('\n').slice(0, -1);
}
async function writeLines(ls: string[], path = file1()): Promise<void> {
  await writeFile(path, ls.map((l) => l + '\n').join(''));
}

async function collect(it: AsyncIterable<AuditRecord>): Promise<AuditRecord[]> {
  const out: AuditRecord[] = [];
  for await (const r of it) out.push(r);
  return out;
}

describe('verifyAuditLog', () => {
  it('accepts an intact log and reports the chain head', async () => {
    const records = await writeLog(30);
    expect(await verifyAuditLog(dir)).toEqual({ ok: true, records: 30, lastHash: records[29]!.hash });
  });

  it('verifies an empty directory with 0 records and throws for a missing one', async () => {
    expect(await verifyAuditLog(dir)).toMatchObject({ ok: true, records: 0 });
    await expect(verifyAuditLog(join(dir, 'nope'))).rejects.toThrow(/audit directory .*nope does not exist/);
  });

  it('names a record edited by hand', async () => {
    await writeLog(30);
    const ls = await lines();
    ls[16] = ls[16]!.replace('WHERE id = 17', 'WHERE id = 99');
    await writeLines(ls);
    const v = await verifyAuditLog(dir);
    expect(v).toEqual({
      ok: false,
      records: 16,
      problem: {
        seq: 17,
        file: 'audit-000001.jsonl',
        line: 17,
        kind: 'edited',
        message: 'record seq 17 (audit-000001.jsonl line 17) was edited: its hash does not match its content',
      },
    });
  });

  it('names the record edited and re-hashed, found by the next record', async () => {
    await writeLog(30);
    const ls = await lines();
    const rec = JSON.parse(ls[9]!) as Record<string, unknown>;
    rec['text'] = 'SELECT 1';
    delete rec['hash'];
    const canonical = canonicalJson(rec);
    ls[9] = encodeRecordLine(canonical, sha256Hex(canonical));
    await writeLines(ls);
    const v = await verifyAuditLog(dir);
    expect(v).toMatchObject({ ok: false, records: 9, problem: { seq: 10, line: 10, kind: 'edited' } });
    if (!v.ok) expect(v.problem.message).toMatch(/record seq 10 \(audit-000001\.jsonl line 10\) was edited/);
  });

  it('reports a re-formatted line as edited', async () => {
    await writeLog(5);
    const ls = await lines();
    ls[2] = JSON.stringify(JSON.parse(ls[2]!), null, 0).replace('{', '{ ');
    await writeLines(ls);
    expect(await verifyAuditLog(dir)).toMatchObject({ ok: false, records: 2, problem: { seq: 3, kind: 'edited' } });
  });

  it('names the record after a removed one', async () => {
    await writeLog(30);
    const ls = await lines();
    ls.splice(16, 1);
    await writeLines(ls);
    const v = await verifyAuditLog(dir);
    expect(v).toMatchObject({
      ok: false,
      records: 16,
      problem: { seq: 18, file: 'audit-000001.jsonl', line: 17, kind: 'removed' },
    });
    if (!v.ok) {
      expect(v.problem.message).toBe(
        'record seq 18 (audit-000001.jsonl line 17) does not follow record seq 16 (audit-000001.jsonl line 16): ' +
          'record seq 17 is missing, so records were removed',
      );
    }
  });

  it('detects removal of the first records', async () => {
    await writeLog(5);
    const ls = await lines();
    await writeLines(ls.slice(2));
    const v = await verifyAuditLog(dir);
    expect(v).toMatchObject({ ok: false, records: 0, problem: { seq: 3, line: 1, kind: 'removed' } });
    if (!v.ok) expect(v.problem.message).toMatch(/records seq 1 to 2 are missing/);
  });

  it('names swapped records as reordered', async () => {
    await writeLog(30);
    const ls = await lines();
    [ls[16], ls[17]] = [ls[17]!, ls[16]!];
    await writeLines(ls);
    const v = await verifyAuditLog(dir);
    expect(v).toMatchObject({
      ok: false,
      records: 16,
      problem: { seq: 18, file: 'audit-000001.jsonl', line: 17, kind: 'reordered' },
    });
    if (!v.ok) {
      expect(v.problem.message).toMatch(/record seq 17 should come before it but is at audit-000001\.jsonl line 18/);
    }
  });

  it('names a record moved back as reordered', async () => {
    await writeLog(30);
    const ls = await lines();
    const [moved] = ls.splice(4, 1);
    ls.push(moved!);
    await writeLines(ls);
    // Seq 6 now sits where seq 5 was, and seq 5 is at the end: the first bad record is seq 6.
    expect(await verifyAuditLog(dir)).toMatchObject({
      ok: false,
      records: 4,
      problem: { seq: 6, line: 5, kind: 'reordered' },
    });
  });

  it('names a duplicated record as reordered', async () => {
    await writeLog(10);
    const ls = await lines();
    ls.splice(5, 0, ls[4]!);
    await writeLines(ls);
    expect(await verifyAuditLog(dir)).toMatchObject({
      ok: false,
      records: 5,
      problem: { seq: 5, line: 6, kind: 'reordered' },
    });
  });

  it('names a line that is not JSON as malformed', async () => {
    await writeLog(10);
    const ls = await lines();
    ls[3] = 'hello, world';
    await writeLines(ls);
    const v = await verifyAuditLog(dir);
    expect(v).toMatchObject({ ok: false, records: 3, problem: { seq: null, line: 4, kind: 'malformed' } });
    if (!v.ok) {
      expect(v.problem.message).toMatch(/^the line at audit-000001\.jsonl line 4 is malformed: it is not valid JSON/);
    }
  });

  it('names an empty line as malformed', async () => {
    await writeLog(4);
    const ls = await lines();
    ls.splice(2, 0, '');
    await writeLines(ls);
    expect(await verifyAuditLog(dir)).toMatchObject({ ok: false, records: 2, problem: { line: 3, kind: 'malformed' } });
  });

  it('detects a whole middle segment removed', async () => {
    await writeLog(40, 2048);
    const files = (await readdir(dir)).sort();
    expect(files.length).toBeGreaterThanOrEqual(4);
    const firstOfThird = JSON.parse((await lines(join(dir, files[2]!)))[0]!) as AuditRecord;
    await unlink(join(dir, files[1]!));
    const v = await verifyAuditLog(dir);
    expect(v).toMatchObject({
      ok: false,
      problem: { seq: firstOfThird.seq, file: files[2], line: 1, kind: 'removed' },
    });
    if (!v.ok) expect(v.problem.message).toMatch(/segment file audit-000002\.jsonl is missing/);
  });

  it('accepts a log whose tail was cut (undetectable without an anchor) but reports a different head', async () => {
    const records = await writeLog(10);
    const ls = await lines();
    await writeLines(ls.slice(0, 8));
    const v = await verifyAuditLog(dir);
    expect(v).toEqual({ ok: true, records: 8, lastHash: records[7]!.hash });
    expect(v.ok && v.lastHash).not.toBe(records[9]!.hash);
  });
});

describe('readAuditRecords', () => {
  it('streams all records in order across segments', async () => {
    await writeLog(40, 2048);
    const all = await collect(readAuditRecords(dir));
    expect(all.map((r) => r.seq)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
  });

  it('filters by since (inclusive) and until (exclusive)', async () => {
    await writeLog(20); // statement i at 00:00:i
    const at = (s: number) => new Date(Date.UTC(2024, 0, 1, 0, 0, s));
    const between = await collect(readAuditRecords(dir, { since: at(5), until: at(9) }));
    expect(between.map((r) => r.seq)).toEqual([5, 6, 7, 8]);
    expect((await collect(readAuditRecords(dir, { since: at(18) }))).map((r) => r.seq)).toEqual([18, 19, 20]);
    expect((await collect(readAuditRecords(dir, { until: at(3) }))).map((r) => r.seq)).toEqual([1, 2]);
  });

  it('skips an unterminated last line and throws on a malformed one', async () => {
    await writeLog(3);
    await writeFile(file1(), (await readFile(file1(), 'utf8')) + '{"seq":4');
    expect(await collect(readAuditRecords(dir))).toHaveLength(3);
    const ls = await lines();
    ls[1] = 'garbage';
    await writeLines(ls);
    await expect(collect(readAuditRecords(dir))).rejects.toThrow(/audit-000001\.jsonl line 2 is not an audit record/);
  });

  it('throws for a missing directory', async () => {
    await expect(collect(readAuditRecords(join(dir, 'missing')))).rejects.toThrow(/does not exist/);
  });
});
