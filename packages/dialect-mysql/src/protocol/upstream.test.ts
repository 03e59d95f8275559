import { constants, createHash, generateKeyPairSync, privateDecrypt } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import { makeSelfSignedCert, type SelfSignedCert } from '@sluice/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CLIENT_CONNECT_ATTRS,
  CLIENT_CONNECT_WITH_DB,
  CLIENT_DEPRECATE_EOF,
  CLIENT_MULTI_STATEMENTS,
  CLIENT_MYSQL,
  CLIENT_PROTOCOL_41,
  CLIENT_SESSION_TRACK,
  CLIENT_SSL,
  CLIENT_COMPRESS,
  CLIENT_QUERY_ATTRIBUTES,
  Command,
  type ClientHandshake,
  decodeClientHandshake,
  decodeComQuery,
  encodeAuthMoreData,
  encodeAuthSwitchRequest,
  encodeErr,
  encodeHandshakeV10,
  encodeOk,
  type HandshakeV10,
} from './messages.js';
import { MessageReader, PacketSequence, encodePacket } from './packets.js';
import { DEFAULT_CLIENT_CAPABILITIES, UpstreamError, connectUpstream, negotiateCapabilities, sendKill, type MysqlUpstreamOptions } from './upstream.js';

/**
 * connectUpstream against scripted servers written with the codec in the server role: the
 * paths MariaDB cannot show (caching_sha2_password, TLS, odd servers). The live tests in
 * test/upstream.test.ts cover the real server.
 */
const sha = (alg: string, ...parts: Buffer[]) => parts.reduce((h, p) => h.update(p), createHash(alg)).digest();
const xor = (a: Buffer, b: Buffer) => Buffer.from(a.map((x, i) => x ^ b[i % b.length]!));
const nonce = Buffer.from('4142434445464748494a4b4c4d4e4f5051525354', 'hex');
const SERVER_CAPS = (0xffffffff & ~CLIENT_SSL & ~CLIENT_COMPRESS) >>> 0;

function greeting(h: Partial<HandshakeV10> = {}): Buffer {
  return encodeHandshakeV10({
    serverVersion: '8.0.99-fake',
    connectionId: 77,
    authPluginData: nonce,
    capabilities: SERVER_CAPS,
    mariadbCapabilities: 0,
    charset: 255,
    statusFlags: 2,
    authPluginName: 'caching_sha2_password',
    ...h,
  });
}

/** One accepted connection, seen from the server side. */
class ServerConn {
  socket: net.Socket;
  readonly reader = new MessageReader({ maxMessageBytes: 1 << 20 });
  readonly seq = new PacketSequence();
  #wake: (() => void) | undefined;
  closed = false;

  constructor(socket: net.Socket) {
    this.socket = socket;
    this.#listen();
  }

  #listen(): void {
    this.socket.on('data', (d) => {
      this.reader.push(d);
      this.#wake?.();
    });
    this.socket.on('close', () => {
      this.closed = true;
      this.#wake?.();
    });
    this.socket.on('error', () => undefined);
  }

  async read(): Promise<Buffer> {
    for (;;) {
      const m = this.reader.next();
      if (m) {
        this.seq.received(m);
        return Buffer.from(m.payload);
      }
      if (this.closed) throw new Error('client closed');
      await new Promise<void>((r) => (this.#wake = r));
    }
  }

  async readHandshake(): Promise<ClientHandshake> {
    return decodeClientHandshake(await this.read());
  }

  send(...payloads: Buffer[]): void {
    this.socket.write(Buffer.concat(payloads.map((p) => this.seq.encode(p))));
  }

  startTls(cert: SelfSignedCert): void {
    // The ClientHello may have come with the SSLRequest: hand it back to the socket for TLS.
    this.socket.removeAllListeners('data');
    this.socket.pause();
    const early = this.reader.drain();
    if (early.length > 0) this.socket.unshift(early);
    this.socket = new tls.TLSSocket(this.socket, { isServer: true, key: cert.key, cert: cert.cert });
    this.#listen();
  }
}

interface FakeServer {
  readonly port: number;
  /** Resolves with what the script returned, or rejects with its error. */
  readonly done: Promise<unknown>;
  close(): Promise<void>;
}

async function fakeServer(script: (c: ServerConn) => Promise<unknown>): Promise<FakeServer> {
  let settle!: { resolve: (v: unknown) => void; reject: (e: unknown) => void };
  const done = new Promise((resolve, reject) => (settle = { resolve, reject }));
  done.catch(() => undefined);
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    const conn = new ServerConn(socket);
    script(conn).then(settle.resolve, settle.reject);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    done,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

const servers: FakeServer[] = [];
async function serve(script: (c: ServerConn) => Promise<unknown>): Promise<MysqlUpstreamOptions & { server: FakeServer }> {
  const server = await fakeServer(script);
  servers.push(server);
  return { host: '127.0.0.1', port: server.port, user: 'gateway', password: 'pw', connectTimeoutMs: 3000, server };
}

let cert: SelfSignedCert;
beforeAll(() => {
  cert = makeSelfSignedCert('localhost');
});
afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
});

async function refusal(p: Promise<unknown>): Promise<UpstreamError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(UpstreamError);
  return err as UpstreamError;
}

describe('connectUpstream (scripted servers)', () => {
  it('logs in with mysql_native_password, database and attributes; returns what came after the OK', async () => {
    const o = await serve(async (c) => {
      c.send(greeting({ authPluginName: 'mysql_native_password' }));
      const hs = await c.readHandshake();
      // OK and, in the same write, a packet the relay must get as leftover.
      c.send(encodeOk({ statusFlags: 3 }), Buffer.from('extra'));
      return hs;
    });
    const conn = await connectUpstream({ ...o, database: 'app', connectAttributes: new Map([['program_name', 'sluice']]) });
    const hs = (await o.server.done) as ClientHandshake;
    conn.socket.destroy();
    expect(hs.kind).toBe('response');
    if (hs.kind !== 'response') return;
    const stage1 = sha('sha1', Buffer.from('pw'));
    expect(hs.authResponse).toEqual(xor(stage1, sha('sha1', nonce, sha('sha1', stage1))));
    expect(hs).toMatchObject({ username: 'gateway', database: 'app', authPluginName: 'mysql_native_password', charset: 45 });
    expect(hs.connectAttributes).toEqual(new Map([['program_name', 'sluice']]));
    expect(hs.capabilities).toBe(conn.capabilities);
    expect(conn).toMatchObject({ connectionId: 77, serverVersion: '8.0.99-fake', status: 3, tls: false, authPluginName: 'mysql_native_password' });
    expect(conn.leftover).toEqual(encodePacket(Buffer.from('extra'), 3));
    expect(conn.capabilities & CLIENT_CONNECT_WITH_DB).not.toBe(0);
    expect(conn.capabilities & CLIENT_CONNECT_ATTRS).not.toBe(0);
    expect(conn.socket.listenerCount('data')).toBe(0);
  });

  it('agrees only what both sides offer; CLIENT_DEPRECATE_EOF and the like only when asked', () => {
    const o = { host: 'h', port: 1, user: 'u' };
    const all = 0xffffffff;
    const def = negotiateCapabilities(o, all, false);
    expect(def & CLIENT_DEPRECATE_EOF).toBe(0);
    expect(def & CLIENT_SESSION_TRACK).toBe(0);
    expect(def & CLIENT_SSL).toBe(0);
    expect(def & CLIENT_COMPRESS).toBe(0);
    expect(def & CLIENT_CONNECT_WITH_DB).toBe(0);
    expect(def & DEFAULT_CLIENT_CAPABILITIES).toBe(DEFAULT_CLIENT_CAPABILITIES);
    const asked = negotiateCapabilities({ ...o, capabilities: CLIENT_DEPRECATE_EOF | CLIENT_MULTI_STATEMENTS | CLIENT_COMPRESS | CLIENT_QUERY_ATTRIBUTES }, all, true);
    expect(asked & CLIENT_DEPRECATE_EOF).not.toBe(0);
    expect(asked & CLIENT_MULTI_STATEMENTS).not.toBe(0);
    expect(asked & CLIENT_SSL).not.toBe(0);
    expect(asked & (CLIENT_COMPRESS | CLIENT_QUERY_ATTRIBUTES)).toBe(0);
    // A MariaDB server clears CLIENT_MYSQL; so does the answer.
    expect(negotiateCapabilities(o, (all & ~CLIENT_MYSQL & ~CLIENT_DEPRECATE_EOF) >>> 0, false) & (CLIENT_MYSQL | CLIENT_DEPRECATE_EOF)).toBe(0);
    expect(negotiateCapabilities({ ...o, capabilities: CLIENT_DEPRECATE_EOF }, (all & ~CLIENT_DEPRECATE_EOF) >>> 0, false) & CLIENT_DEPRECATE_EOF).toBe(0);
  });

  it('caching_sha2_password: fast authentication', async () => {
    const o = await serve(async (c) => {
      c.send(greeting());
      const hs = await c.readHandshake();
      c.send(encodeAuthMoreData(Buffer.from([3])), encodeOk({ statusFlags: 2 }));
      return hs;
    });
    const conn = await connectUpstream(o);
    conn.socket.destroy();
    const hs = (await o.server.done) as ClientHandshake & { kind: 'response' };
    const stage1 = sha('sha256', Buffer.from('pw'));
    expect(hs.authResponse).toEqual(xor(stage1, sha('sha256', sha('sha256', stage1), nonce)));
    expect(hs.authPluginName).toBe('caching_sha2_password');
    expect(conn.authPluginName).toBe('caching_sha2_password');
  });

  it('caching_sha2_password: full authentication without TLS asks for the RSA key (loopback)', async () => {
    const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const o = await serve(async (c) => {
      c.send(greeting());
      await c.readHandshake();
      c.send(encodeAuthMoreData(Buffer.from([4])));
      const ask = await c.read();
      c.send(encodeAuthMoreData(Buffer.from(publicKey.export({ type: 'spki', format: 'pem' }))));
      const encrypted = await c.read();
      const plain = privateDecrypt({ key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha1' }, encrypted);
      c.send(encodeOk({}));
      return { ask, password: xor(plain, nonce).toString() };
    });
    const conn = await connectUpstream(o);
    conn.socket.destroy();
    expect(await o.server.done).toEqual({ ask: Buffer.from([2]), password: 'pw\0' });
  });

  it('caching_sha2_password: full authentication without TLS and without key retrieval is refused', async () => {
    const o = await serve(async (c) => {
      c.send(greeting());
      await c.readHandshake();
      c.send(encodeAuthMoreData(Buffer.from([4])));
      await c.read().catch(() => undefined);
      return c.closed;
    });
    const err = await refusal(connectUpstream({ ...o, allowPublicKeyRetrieval: false }));
    expect(err.message).toMatch(/TLS/);
    expect(await o.server.done).toBe(true);
  });

  it('TLS (require): SSLRequest, upgrade, then the response and the clear password over TLS', async () => {
    const o = await serve(async (c) => {
      c.send(greeting({ capabilities: (SERVER_CAPS | CLIENT_SSL) >>> 0 }));
      const ssl = await c.readHandshake();
      c.startTls(cert);
      const hs = await c.readHandshake();
      c.send(encodeAuthMoreData(Buffer.from([4])));
      const password = await c.read();
      c.send(encodeOk({}));
      return { ssl, hs, password, seq: c.seq.next };
    });
    const conn = await connectUpstream({ ...o, tls: { mode: 'require' } });
    const r = (await o.server.done) as { ssl: ClientHandshake; hs: ClientHandshake; password: Buffer; seq: number };
    expect(conn.tls).toBe(true);
    expect(conn.socket).toBeInstanceOf(tls.TLSSocket);
    conn.socket.destroy();
    expect(r.ssl.kind).toBe('ssl');
    expect(r.hs.kind).toBe('response');
    expect(r.ssl.kind === 'ssl' && r.ssl.capabilities & CLIENT_SSL).toBeTruthy();
    expect(r.password).toEqual(Buffer.from('pw\0'));
    // greeting 0, SSLRequest 1, response 2, more data 3, password 4, OK 5.
    expect(r.seq).toBe(6);
  });

  it('TLS verify-full checks the certificate and its name', async () => {
    const script = async (c: ServerConn) => {
      c.send(greeting({ capabilities: (SERVER_CAPS | CLIENT_SSL) >>> 0, authPluginName: 'mysql_native_password' }));
      await c.readHandshake();
      c.startTls(cert);
      await c.readHandshake();
      c.send(encodeOk({}));
    };
    const ok = await serve(script);
    const conn = await connectUpstream({ ...ok, tls: { mode: 'verify-full', caFile: cert.certFile, serverName: 'localhost' } });
    conn.socket.destroy();
    const wrongName = await serve(script);
    const e1 = await refusal(connectUpstream({ ...wrongName, tls: { mode: 'verify-full', caFile: cert.certFile, serverName: 'db.example.com' } }));
    expect(e1.message).toMatch(/TLS handshake failed/);
    const noCa = await serve(script);
    const e2 = await refusal(connectUpstream({ ...noCa, tls: { mode: 'verify-ca' } }));
    expect(e2.message).toMatch(/TLS handshake failed/);
  });

  it('a server without TLS: "require" refuses, "prefer" goes on in clear', async () => {
    const script = async (c: ServerConn) => {
      c.send(greeting({ authPluginName: 'mysql_native_password' }));
      const hs = await c.readHandshake().catch(() => undefined);
      if (hs) c.send(encodeOk({}));
      return hs;
    };
    const req = await serve(script);
    expect((await refusal(connectUpstream({ ...req, tls: { mode: 'require' } }))).message).toMatch(/does not offer TLS/);
    const pref = await serve(script);
    const conn = await connectUpstream({ ...pref, tls: { mode: 'prefer' } });
    conn.socket.destroy();
    expect(conn.tls).toBe(false);
    expect(((await pref.server.done) as ClientHandshake).kind).toBe('response');
  });

  it('follows an AuthSwitchRequest to mysql_native_password with the new scramble', async () => {
    const fresh = Buffer.from('6162636465666768696a6b6c6d6e6f7071727374', 'hex');
    const o = await serve(async (c) => {
      c.send(greeting());
      await c.readHandshake();
      c.send(encodeAuthSwitchRequest('mysql_native_password', Buffer.concat([fresh, Buffer.from([0])])));
      const answer = await c.read();
      c.send(encodeOk({}));
      return answer;
    });
    const conn = await connectUpstream(o);
    conn.socket.destroy();
    const stage1 = sha('sha1', Buffer.from('pw'));
    expect(await o.server.done).toEqual(xor(stage1, sha('sha1', fresh, sha('sha1', stage1))));
    expect(conn.authPluginName).toBe('mysql_native_password');
  });

  it('answers a switch to mysql_clear_password on loopback, refuses plugins it does not speak', async () => {
    const clear = await serve(async (c) => {
      c.send(greeting());
      await c.readHandshake();
      c.send(encodeAuthSwitchRequest('mysql_clear_password', Buffer.alloc(0)));
      const answer = await c.read();
      c.send(encodeOk({}));
      return answer;
    });
    (await connectUpstream(clear)).socket.destroy();
    expect(await clear.server.done).toEqual(Buffer.from('pw\0'));
    const ed = await serve(async (c) => {
      c.send(greeting());
      await c.readHandshake();
      c.send(encodeAuthSwitchRequest('client_ed25519', nonce));
      await c.read().catch(() => undefined);
    });
    expect((await refusal(connectUpstream(ed))).message).toMatch(/client_ed25519/);
  });

  it('reports the server error: before the greeting (no SQLSTATE) and after authentication', async () => {
    const early = await serve(async (c) => {
      c.send(encodeErr(1040, '08004', 'Too many connections', 0));
    });
    const e1 = await refusal(connectUpstream(early));
    expect(e1).toMatchObject({ errno: 1040, sqlstate: undefined, serverMessage: 'Too many connections' });
    const denied = await serve(async (c) => {
      c.send(greeting({ authPluginName: 'mysql_native_password' }));
      await c.readHandshake();
      c.send(encodeErr(1045, '28000', "Access denied for user 'gateway'@'localhost' (using password: YES)"));
    });
    const e2 = await refusal(connectUpstream(denied));
    expect(e2).toMatchObject({ errno: 1045, sqlstate: '28000' });
    expect(e2.message).toMatch(/Access denied/);
  });

  it('times out a server that says nothing, and fails on a closed connection, a refused port, bad packets', async () => {
    const silent = await serve(() => new Promise(() => undefined));
    const started = Date.now();
    expect((await refusal(connectUpstream({ ...silent, connectTimeoutMs: 200 }))).message).toMatch(/timed out/);
    expect(Date.now() - started).toBeLessThan(2000);
    const hangup = await serve(async (c) => {
      c.send(greeting());
      await c.readHandshake();
      c.socket.destroy();
    });
    expect((await refusal(connectUpstream(hangup))).message).toMatch(/closed/);
    const outOfOrder = await serve(async (c) => {
      c.socket.write(encodePacket(greeting(), 3));
    });
    expect((await refusal(connectUpstream(outOfOrder))).message).toMatch(/sequence/);
    const old = await serve(async (c) => {
      c.send(greeting({ capabilities: (SERVER_CAPS & ~CLIENT_PROTOCOL_41) >>> 0 }));
    });
    expect((await refusal(connectUpstream(old))).message).toMatch(/4\.1/);
    const garbage = await serve(async (c) => {
      c.socket.write(encodePacket(Buffer.from([10, 0x41]), 0));
    });
    await refusal(connectUpstream(garbage));
    const closed = await fakeServer(async () => undefined);
    await closed.close();
    expect((await refusal(connectUpstream({ host: '127.0.0.1', port: closed.port, user: 'u' }))).message).toMatch(/cannot connect/);
  });
});

describe('sendKill (scripted server)', () => {
  const killServer = (reply: Buffer) =>
    serve(async (c) => {
      c.send(greeting({ authPluginName: 'mysql_native_password' }));
      await c.readHandshake();
      c.send(encodeOk({}));
      c.seq.reset();
      const query = decodeComQuery(await c.read());
      c.send(reply);
      c.seq.reset();
      const quit = await c.read().catch(() => undefined);
      return { query, quit };
    });

  it('runs KILL QUERY <id> on a separate connection and quits', async () => {
    const o = await killServer(encodeOk({}));
    await sendKill(o, 1234);
    expect(await o.server.done).toEqual({ query: 'KILL QUERY 1234', quit: Buffer.from([Command.QUIT]) });
  });

  it('rejects with the server error', async () => {
    const o = await killServer(encodeErr(1094, 'HY000', 'Unknown thread id: 1234'));
    const err = await refusal(sendKill(o, 1234));
    expect(err).toMatchObject({ errno: 1094, sqlstate: 'HY000' });
    await expect(sendKill(o, -1)).rejects.toThrow(RangeError);
  });
});
