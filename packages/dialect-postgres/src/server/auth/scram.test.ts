import { describe, expect, it } from 'vitest';
import { md5Password } from './md5.js';
import { saslPrep, ScramClient, ScramError } from './scram.js';

// RFC 7677 section 3.
const RFC = {
  password: 'pencil',
  clientNonce: 'rOprNGfwEbeRWgbNEkqO',
  clientFirst: 'n,,n=user,r=rOprNGfwEbeRWgbNEkqO',
  serverFirst: 'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096',
  clientFinal:
    'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
  serverFinal: 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=',
};

function rfcClient(): ScramClient {
  return new ScramClient(RFC.password, RFC.clientNonce, 'user');
}

describe('ScramClient', () => {
  it('reproduces the RFC 7677 SCRAM-SHA-256 exchange', () => {
    const client = rfcClient();
    expect(client.clientFirstMessage()).toBe(RFC.clientFirst);
    expect(client.handleServerFirst(RFC.serverFirst)).toBe(RFC.clientFinal);
    expect(() => client.verifyServerFinal(RFC.serverFinal)).not.toThrow();
  });

  it('sends an empty user name and the n,, header by default, like libpq', () => {
    const client = new ScramClient('pw', 'abc');
    expect(client.clientFirstMessage()).toBe('n,,n=,r=abc');
  });

  it('generates a fresh 24-character nonce', () => {
    const a = new ScramClient('pw').clientFirstMessage();
    const b = new ScramClient('pw').clientFirstMessage();
    expect(a).toMatch(/^n,,n=,r=[A-Za-z0-9+/]{24}$/);
    expect(a).not.toBe(b);
  });

  it('rejects a bad client nonce', () => {
    expect(() => new ScramClient('pw', 'a,b')).toThrow(ScramError);
    expect(() => new ScramClient('pw', '')).toThrow(ScramError);
  });

  it('rejects a wrong server signature', () => {
    const client = rfcClient();
    client.clientFirstMessage();
    client.handleServerFirst(RFC.serverFirst);
    expect(() => client.verifyServerFinal('v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=')).toThrow(/signature mismatch/);
  });

  it('reports a server error in server-final', () => {
    const client = rfcClient();
    client.clientFirstMessage();
    client.handleServerFirst(RFC.serverFirst);
    expect(() => client.verifyServerFinal('e=invalid-proof')).toThrow(/invalid-proof/);
  });

  it.each([
    ['a nonce that does not extend the client nonce', 'r=XXXXrNGfwEbeRWgbNEkqO%hvY,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096', /nonce/],
    ['a nonce equal to the client nonce', 'r=rOprNGfwEbeRWgbNEkqO,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096', /nonce/],
    ['a nonce with a non-printable character', 'r=rOprNGfwEbeRWgbNEkqO\u0001x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096', /nonce/],
    ['a missing salt', 'r=rOprNGfwEbeRWgbNEkqOxyz,i=4096', /expected r=, s= and i=/],
    ['attributes out of order', 'r=rOprNGfwEbeRWgbNEkqOxyz,i=4096,s=W22ZaJ0SNY7soEsUEjb6gQ==', /salt/],
    ['a salt that is not base64', 'r=rOprNGfwEbeRWgbNEkqOxyz,s=not*base64,i=4096', /salt/],
    ['an unpadded salt', 'r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ,i=4096', /salt/],
    ['an empty salt', 'r=rOprNGfwEbeRWgbNEkqOxyz,s=,i=4096', /salt/],
    ['a zero iteration count', 'r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0', /iteration/],
    ['a negative iteration count', 'r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=-1', /iteration/],
    ['a fractional iteration count', 'r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1.5', /iteration/],
    ['a huge iteration count', 'r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=99999999999', /iteration/],
    ['a mandatory extension', 'm=ext,r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096', /extension/],
  ])('rejects a server-first-message with %s', (_what, message, error) => {
    const client = rfcClient();
    client.clientFirstMessage();
    expect(() => client.handleServerFirst(message)).toThrow(error);
  });

  it('enforces the message order', () => {
    const client = rfcClient();
    expect(() => client.handleServerFirst(RFC.serverFirst)).toThrow(/out of order/);
    const other = rfcClient();
    other.clientFirstMessage();
    expect(() => other.clientFirstMessage()).toThrow(/already sent/);
    expect(() => other.verifyServerFinal(RFC.serverFinal)).toThrow(/out of order/);
  });

  it('rejects a malformed server-final-message', () => {
    const client = rfcClient();
    client.clientFirstMessage();
    client.handleServerFirst(RFC.serverFirst);
    expect(() => client.verifyServerFinal('x=1')).toThrow(/missing verifier/);
  });
});

describe('saslPrep', () => {
  it('leaves ASCII passwords alone, control characters included (as PostgreSQL does)', () => {
    expect(saslPrep('pencil')).toBe('pencil');
    expect(saslPrep('a\u0007b')).toBe('a\u0007b');
  });

  it('applies the RFC 4013 examples', () => {
    expect(saslPrep('I\u00adX')).toBe('IX'); // soft hyphen mapped to nothing
    expect(saslPrep('\u00aa')).toBe('a'); // NFKC
    expect(saslPrep('\u2168')).toBe('IX'); // NFKC
    expect(saslPrep('a\u00a0b')).toBe('a b'); // non-ASCII space
  });

  it('falls back to the raw password when SASLprep rejects it', () => {
    expect(saslPrep('é\u0007')).toBe('é\u0007'); // prohibited control character
    expect(saslPrep('\u0627\u0031')).toBe('\u0627\u0031'); // RTL string not ending in an RTL character
    expect(saslPrep('\u0627a\u0627')).toBe('\u0627a\u0627'); // RTL mixed with LTR letters
    expect(saslPrep('x\ue000')).toBe('x\ue000'); // private use
  });

  it('accepts a right-to-left password', () => {
    expect(saslPrep('\u0627\u0031\u0628')).toBe('\u0627\u0031\u0628');
  });
});

describe('md5Password', () => {
  it('computes md5(md5(password + user) + salt)', () => {
    const salt = Buffer.from([0x01, 0x02, 0x03, 0x04]);
    const value = md5Password('alice', 'secret', salt);
    expect(value).toMatch(/^md5[0-9a-f]{32}$/);
    expect(value).toBe(md5Password('alice', 'secret', Buffer.from(salt)));
    expect(value).not.toBe(md5Password('alice', 'secret', Buffer.from([1, 2, 3, 5])));
    expect(value).not.toBe(md5Password('bob', 'secret', salt));
  });

  it('matches a known value', () => {
    // Computed independently: 'md5' + md5(hex(md5('secret' + 'alice')) + bytes 01 02 03 04).
    expect(md5Password('alice', 'secret', Buffer.from('01020304', 'hex'))).toBe(KNOWN_MD5);
  });

  it('rejects a salt that is not 4 bytes', () => {
    expect(() => md5Password('a', 'b', Buffer.alloc(3))).toThrow(/4 bytes/);
  });
});

const KNOWN_MD5 = 'md598a0412b9c31436fc53776e863350083';
