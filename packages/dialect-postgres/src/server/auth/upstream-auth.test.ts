/**
 * md5Password and ScramClient against a real PostgreSQL server, over a hand-driven startup
 * exchange on node:net.
 */
import { connect, type Socket } from 'node:net';
import { serialize } from 'pg-protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTempPostgres, type TempPostgres } from '@sluice/testkit';
import { md5Password } from './md5.js';
import { ScramClient } from './scram.js';

interface BackendMessage {
  readonly type: string;
  readonly body: Buffer;
}

/** Reads backend messages (type byte, int32 length, body) from a socket. */
class MessageReader {
  #buffer = Buffer.alloc(0);
  #waiting: Array<(m: BackendMessage | Error) => void> = [];
  #queue: Array<BackendMessage | Error> = [];

  constructor(socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.#buffer = Buffer.concat([this.#buffer, chunk]);
      while (this.#buffer.length >= 5) {
        const length = this.#buffer.readInt32BE(1);
        if (this.#buffer.length < 1 + length) break;
        this.#deliver({ type: String.fromCharCode(this.#buffer[0]!), body: this.#buffer.subarray(5, 1 + length) });
        this.#buffer = this.#buffer.subarray(1 + length);
      }
    });
    socket.on('error', (err) => this.#deliver(err));
    socket.on('close', () => this.#deliver(new Error('connection closed')));
  }

  #deliver(m: BackendMessage | Error): void {
    const waiter = this.#waiting.shift();
    if (waiter) waiter(m);
    else this.#queue.push(m);
  }

  next(): Promise<BackendMessage> {
    const queued = this.#queue.shift();
    const settle = (m: BackendMessage | Error): BackendMessage => {
      if (m instanceof Error) throw m;
      return m;
    };
    if (queued !== undefined) return Promise.resolve(queued).then(settle);
    return new Promise<BackendMessage | Error>((resolve) => this.#waiting.push(resolve)).then(settle);
  }
}

function errorText(body: Buffer): string {
  // ErrorResponse fields: code byte + C string, terminated by a zero byte.
  const fields: string[] = [];
  let i = 0;
  while (i < body.length && body[i] !== 0) {
    const code = String.fromCharCode(body[i]!);
    const end = body.indexOf(0, i + 1);
    fields.push(`${code}:${body.toString('utf8', i + 1, end)}`);
    i = end + 1;
  }
  return fields.join(' ');
}

interface LoginResult {
  readonly ok: boolean;
  readonly methods: string[];
  readonly error?: string;
}

/** Logs in as `user` with `password`, answering whatever the server asks for. */
async function login(pg: TempPostgres, user: string, password: string): Promise<LoginResult> {
  const socket = connect({ host: pg.host, port: pg.port });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const reader = new MessageReader(socket);
  const methods: string[] = [];
  let scram: ScramClient | undefined;
  try {
    socket.write(serialize.startup({ user, database: 'postgres' }));
    for (;;) {
      const m = await reader.next();
      if (m.type === 'E') return { ok: false, methods, error: errorText(m.body) };
      if (m.type === 'Z') return { ok: true, methods };
      if (m.type !== 'R') continue; // ParameterStatus, BackendKeyData
      const code = m.body.readInt32BE(0);
      switch (code) {
        case 0: // AuthenticationOk
          methods.push('ok');
          break;
        case 5: // AuthenticationMD5Password
          methods.push('md5');
          socket.write(serialize.password(md5Password(user, password, m.body.subarray(4, 8))));
          break;
        case 10: {
          // AuthenticationSASL: list of mechanisms
          const mechanisms = m.body.toString('utf8', 4).split('\0').filter(Boolean);
          methods.push(`sasl:${mechanisms.join('|')}`);
          expect(mechanisms).toContain('SCRAM-SHA-256');
          scram = new ScramClient(password);
          socket.write(serialize.sendSASLInitialResponseMessage('SCRAM-SHA-256', scram.clientFirstMessage()));
          break;
        }
        case 11: // AuthenticationSASLContinue
          methods.push('sasl-continue');
          socket.write(serialize.sendSCRAMClientFinalMessage(scram!.handleServerFirst(m.body.toString('utf8', 4))));
          break;
        case 12: // AuthenticationSASLFinal
          methods.push('sasl-final');
          scram!.verifyServerFinal(m.body.toString('utf8', 4));
          break;
        default:
          throw new Error(`unexpected authentication request ${code}`);
      }
    }
  } finally {
    socket.end(serialize.end());
    socket.destroy();
  }
}

describe('upstream authentication against a real server', () => {
  let pg: TempPostgres;

  beforeAll(async () => {
    pg = await startTempPostgres({
      // With the md5 method, md5-stored users get MD5 and SCRAM-stored users get SCRAM.
      auth: 'md5',
      users: [
        { name: 'md5_user', password: 'md5 pass;word', encryption: 'md5' },
        { name: 'scram_user', password: "scr'am pass", encryption: 'scram-sha-256' },
        { name: 'fullwidth', password: 'ｐａｓｓ\u00adword', encryption: 'scram-sha-256' },
        { name: 'Mixed Case', password: 'é-pässwörd', encryption: 'scram-sha-256' },
      ],
    });
  }, 120_000);

  afterAll(async () => {
    await pg?.stop();
  }, 60_000);

  it('logs in with MD5', async () => {
    const result = await login(pg, 'md5_user', 'md5 pass;word');
    expect(result).toEqual({ ok: true, methods: ['md5', 'ok'] });
  });

  it('logs in with SCRAM-SHA-256 and verifies the server signature', async () => {
    const result = await login(pg, 'scram_user', "scr'am pass");
    expect(result).toEqual({ ok: true, methods: ['sasl:SCRAM-SHA-256', 'sasl-continue', 'sasl-final', 'ok'] });
  });

  it('prepares non-ASCII passwords the way the server does', async () => {
    expect((await login(pg, 'fullwidth', 'ｐａｓｓ\u00adword')).ok).toBe(true);
    // The server stored SASLprep('ｐａｓｓ\u00adword') = 'password'.
    expect((await login(pg, 'fullwidth', 'password')).ok).toBe(true);
    expect((await login(pg, 'Mixed Case', 'é-pässwörd')).ok).toBe(true);
    // Decomposed é (e + U+0301) prepares to the same NFKC form.
    expect((await login(pg, 'Mixed Case', 'e\u0301-pässwörd')).ok).toBe(true);
  });

  it('is refused with a wrong password (MD5)', async () => {
    const result = await login(pg, 'md5_user', 'wrong');
    expect(result.ok).toBe(false);
    expect(result.error).toMatch(/C:28P01/);
  });

  it('is refused with a wrong password (SCRAM)', async () => {
    const result = await login(pg, 'scram_user', 'wrong');
    expect(result.ok).toBe(false);
    expect(result.methods).toEqual(['sasl:SCRAM-SHA-256', 'sasl-continue']);
    expect(result.error).toMatch(/C:28P01/);
  });

  it('works against a server that requires scram-sha-256', async () => {
    const scramOnly = await startTempPostgres({
      auth: 'scram-sha-256',
      users: [{ name: 'app', password: 'app-secret' }],
    });
    try {
      const ok = await login(scramOnly, 'app', 'app-secret');
      expect(ok.ok).toBe(true);
      expect(ok.methods[0]).toBe('sasl:SCRAM-SHA-256');
      const superuser = await login(scramOnly, 'postgres', scramOnly.superuserPassword);
      expect(superuser.ok).toBe(true);
      expect(scramOnly.url('app')).toBe(`postgresql://app:app-secret@127.0.0.1:${scramOnly.port}/postgres`);
      expect((await scramOnly.psql('select 40 + 2')).trim()).toBe('42');
    } finally {
      await scramOnly.stop();
    }
  }, 120_000);
});
