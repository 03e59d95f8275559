import { describe, expect, it } from 'vitest';
import { passwordMessage, queryMessage, startupMessage } from '../../src/testing/index.js';
import { pgLoginLength } from './frames.js';

describe('pgLoginLength (where a recorded login ends)', () => {
  it('ends after the password message that follows the startup message', () => {
    const login = Buffer.concat([startupMessage({ user: 'u', database: 'app' }), passwordMessage('t')]);
    expect(pgLoginLength(Buffer.concat([login, queryMessage('SELECT 1')]))).toBe(login.length);
  });

  it('fails on a broken recording instead of looping or reading past the end', () => {
    expect(() => pgLoginLength(Buffer.alloc(0))).toThrow(/ends before its startup message/);
    expect(() => pgLoginLength(Buffer.alloc(8))).toThrow(/startup packet of length 0/);
    expect(() => pgLoginLength(startupMessage({ user: 'u' }))).toThrow(/does not send a password/);
  });
});
