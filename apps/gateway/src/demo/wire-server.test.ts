import { describe, expect, it } from 'vitest';
import { finalReadyStatus, mayCopyFromStdin } from './wire-server.js';

function msg(type: string, body: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(5);
  head.write(type, 0, 'latin1');
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}

describe('finalReadyStatus', () => {
  it('reports the status of a ReadyForQuery that ends the reply', () => {
    expect(finalReadyStatus(Buffer.concat([msg('C', Buffer.from('SELECT 1\0')), msg('Z', Buffer.from('I'))]))).toBe('I');
    expect(finalReadyStatus(msg('Z', Buffer.from('T')))).toBe('T');
    expect(finalReadyStatus(msg('Z', Buffer.from('E')))).toBe('E');
  });

  it('is null when the reply ends with anything else, is empty or is cut short', () => {
    expect(finalReadyStatus(Buffer.concat([msg('Z', Buffer.from('I')), msg('1')]))).toBeNull();
    expect(finalReadyStatus(Buffer.alloc(0))).toBeNull();
    expect(finalReadyStatus(msg('Z', Buffer.from('I')).subarray(0, 5))).toBeNull();
    // A DataRow whose bytes end like a ReadyForQuery is still a DataRow.
    expect(finalReadyStatus(msg('D', Buffer.from([0, 1, 0, 0, 0, 6, 0x5a, 0, 0, 0, 5, 0x49])))).toBeNull();
  });
});

describe('mayCopyFromStdin', () => {
  it('catches COPY ... FROM STDIN however it is spelled', () => {
    expect(mayCopyFromStdin('COPY t FROM STDIN')).toBe(true);
    expect(mayCopyFromStdin('copy public.t (a, b)\n  from  stdin with (format csv)')).toBe(true);
    expect(mayCopyFromStdin('select 1; Copy/**/t from/* x */StdIn')).toBe(true);
  });

  it('leaves COPY TO STDOUT and ordinary SQL alone', () => {
    expect(mayCopyFromStdin('COPY t TO STDOUT')).toBe(false);
    expect(mayCopyFromStdin('SELECT copy_count FROM stdin_log')).toBe(false);
    expect(mayCopyFromStdin('SELECT 1')).toBe(false);
  });
});
