import { describe, expect, it } from 'vitest';
import { BackendScanner } from './backend-scanner.js';

function msg(type: string, body: Buffer | string): Buffer {
  const payload = typeof body === 'string' ? Buffer.from(body) : body;
  const out = Buffer.alloc(5 + payload.length);
  out.write(type, 0, 'latin1');
  out.writeInt32BE(4 + payload.length, 1);
  payload.copy(out, 5);
  return out;
}

const stream = Buffer.concat([
  msg('T', 'rowdesc'),
  msg('D', 'row-1'),
  msg('D', Buffer.alloc(300, 7)),
  msg('C', 'SELECT 2\0'),
  msg('Z', 'I'),
  msg('E', 'SERROR\0C42P01\0Mno\0\0'),
  msg('Z', 'E'),
]);

function run(chunks: Buffer[]) {
  const scanner = new BackendScanner([0x43, 0x45, 0x5a]);
  const seen: string[] = [];
  let rows = 0;
  let consumed = 0;
  for (const chunk of chunks) {
    scanner.scan(chunk, {
      onMessage: (type, frame, end) => {
        seen.push(`${String.fromCharCode(type)}:${frame.toString('latin1', 5)}@${consumed + end}`);
      },
      onDataRow: () => rows++,
    });
    consumed += chunk.length;
  }
  return { seen, rows };
}

describe('BackendScanner', () => {
  const whole = run([stream]);

  it('reports collected messages with their end offsets and counts rows', () => {
    expect(whole.rows).toBe(2);
    expect(whole.seen.map((s) => s.split(':')[0])).toEqual(['C', 'Z', 'E', 'Z']);
    const lastEnd = Number(whole.seen.at(-1)!.split('@')[1]);
    expect(lastEnd).toBe(stream.length);
  });

  it('gives the same result for the stream split at every offset', () => {
    for (let cut = 0; cut <= stream.length; cut++) {
      expect(run([stream.subarray(0, cut), stream.subarray(cut)]), `cut ${cut}`).toEqual(whole);
    }
  });

  it('gives the same result fed byte by byte', () => {
    const bytes: Buffer[] = [];
    for (let i = 0; i < stream.length; i++) bytes.push(stream.subarray(i, i + 1));
    expect(run(bytes)).toEqual(whole);
  });

  it('hands over the head of a collected message too long to keep whole', () => {
    const huge = msg('E', Buffer.concat([Buffer.from('SERROR\0C P0001\0M'.replace(' ', '')), Buffer.alloc(1 << 20, 0x78), Buffer.from('\0\0')]));
    const z = msg('Z', 'I');
    for (const size of [1000, 70000, huge.length + z.length]) {
      const scanner = new BackendScanner([0x45, 0x5a]);
      const seen: { type: string; length: number; head: string }[] = [];
      const stream = Buffer.concat([huge, z]);
      for (let at = 0; at < stream.length; at += size) {
        scanner.scan(stream.subarray(at, at + size), {
          onMessage: (type, frame) => seen.push({ type: String.fromCharCode(type), length: frame.length, head: frame.toString('latin1', 5, 20) }),
          onDataRow: () => {},
        });
      }
      expect(seen.map((x) => x.type)).toEqual(['E', 'Z']);
      // A message inside one chunk is a view (no copy); one spanning chunks is kept up to 64 KiB.
      if (size < huge.length) expect(seen[0]!.length).toBeLessThanOrEqual(64 * 1024);
      expect(seen[0]!.head).toContain('CP0001');
    }
  });

  it('rejects an impossible length', () => {
    const scanner = new BackendScanner([]);
    expect(() => scanner.scan(Buffer.from([0x44, 0, 0, 0, 1]), { onMessage: () => {}, onDataRow: () => {} })).toThrow(RangeError);
  });
});
