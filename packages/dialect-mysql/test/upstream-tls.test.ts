import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import net from 'node:net';
import { networkInterfaces } from 'node:os';
import tls from 'node:tls';
import type { AuditRecord } from '@sluice/core';
import {
  makeSelfSignedCert,
  servicesRequired,
  startTempMariaDb,
  startTestGateway,
  type SelfSignedCert,
  type TempMariaDb,
  type TestGateway,
} from '@sluice/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mysqlDialect } from '../src/index.js';
import { connectUpstream, sendKill, UpstreamError, type MysqlUpstreamConnection, type MysqlUpstreamOptions } from '../src/protocol/upstream.js';
import { queryUpstream } from '../src/server/query.js';
import { connectMysql } from './mysql-driver.js';

/**
 * Upstream TLS and the upstream login against real MariaDB servers started for this suite
 * (the shared server on 3306 has TLS off):
 *
 * - `secure`: TLS with a self-signed certificate for localhost / 127.0.0.1 (it is its own CA),
 *   require_secure_transport=ON;
 * - `plain`: no TLS at all.
 *
 * Both have the gateway's account (mysql_native_password), an ed25519 account and a PAM
 * account; the PAM plugin asks the client for the password in clear (mysql_clear_password).
 * No PAM service is configured for it, so PAM refuses whatever password arrives: the server's
 * access-denied error shows the gateway answered the request (a relay in between shows whether
 * the password crossed the wire in clear), the gateway's own refusal shows it did not.
 *
 * The cases run through connectUpstream directly and through the gateway with mysql2 as the
 * client, where a failing upstream login is native error 2013 for the client and a refused
 * connection, with the reason, in the audit log.
 */

const GW_USER = 'sluice_gw';
const GW_PASSWORD = `gw-${randomBytes(8).toString('hex')}`;
const WRONG_PASSWORD = `wrong-${randomBytes(8).toString('hex')}`;
const ED_USER = 'sluice_ed';
const ED_PASSWORD = `ed-${randomBytes(8).toString('hex')}`;
const PAM_USER = 'sluice_pam';
const PAM_PASSWORD = `pam-${randomBytes(8).toString('hex')}`;

const SUBJECT = 'tls-tester@example.com';
const TOKEN = `token-${randomBytes(12).toString('hex')}`;

/** Loads the PAM plugin in-process (the v2 plugin needs a setuid helper) and has it ask for the password in clear. */
const PAM_ARGS = ['--plugin-load-add=auth_pam_v1', '--pam-use-cleartext-plugin=ON'];
const USERS = [
  { name: GW_USER, password: GW_PASSWORD },
  { name: ED_USER, password: ED_PASSWORD, plugin: 'ed25519' as const },
];

let cert: SelfSignedCert;
let otherCert: SelfSignedCert;
let secure: TempMariaDb;
let plain: TempMariaDb;
let gw: TestGateway;
let available = false;

/** A TCP relay that records what the client sent. */
interface Relay {
  readonly host: string;
  readonly port: number;
  /** Every byte received from the client side so far. */
  sent(): Buffer;
  close(): Promise<void>;
}

async function startRelay(listenHost: string, to: { host: string; port: number }): Promise<Relay> {
  const chunks: Buffer[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(to.port, to.host);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    }
    client.on('data', (d: Buffer) => chunks.push(Buffer.from(d)));
    client.pipe(upstream);
    upstream.pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, listenHost, resolve);
  });
  const { port } = server.address() as net.AddressInfo;
  return {
    host: listenHost,
    port,
    sent: () => Buffer.concat(chunks),
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** An address of this machine that is not loopback (the gateway must treat it as remote). */
function remoteAddress(): string {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (!a.internal && a.family === 'IPv4') return a.address;
  }
  throw new Error('this machine has no non-loopback IPv4 address: the clear-password checks toward a remote upstream cannot run');
}

function options(db: TempMariaDb, extra: Partial<MysqlUpstreamOptions> = {}): MysqlUpstreamOptions {
  return { host: db.host, port: db.port, user: GW_USER, password: GW_PASSWORD, database: 'test', connectTimeoutMs: 10_000, ...extra };
}

/** The server's view of the session's TLS cipher ('' without TLS). */
async function cipherOf(conn: MysqlUpstreamConnection): Promise<string> {
  const { rows } = await queryUpstream(conn.socket, conn.capabilities, "SHOW STATUS LIKE 'Ssl_cipher'", conn.leftover);
  return rows[0]?.[1] ?? '';
}

/** Logs in, reads the cipher the server sees, closes. */
async function loginCipher(o: MysqlUpstreamOptions): Promise<{ tls: boolean; cipher: string; isTlsSocket: boolean }> {
  const conn = await connectUpstream(o);
  try {
    return { tls: conn.tls, cipher: await cipherOf(conn), isTlsSocket: conn.socket instanceof tls.TLSSocket };
  } finally {
    conn.socket.destroy();
  }
}

async function refusal(o: MysqlUpstreamOptions): Promise<UpstreamError> {
  const err = await connectUpstream(o).then(
    (conn) => {
      conn.socket.destroy();
      return new Error('the upstream login succeeded but was expected to fail');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(UpstreamError);
  return err as UpstreamError;
}

/** Through the gateway: the cipher the upstream session runs with. */
async function gatewayCipher(target: string): Promise<string> {
  const c = await connectMysql(gw, target, SUBJECT, TOKEN);
  try {
    const [rows] = await c.query("SHOW STATUS LIKE 'Ssl_cipher'");
    const row = (rows as { Variable_name: string; Value: string }[])[0];
    expect(row?.Variable_name).toBe('Ssl_cipher');
    return row?.Value ?? '';
  } finally {
    await c.end();
  }
}

/** Through the gateway: the login fails; resolves with the client's error. */
async function gatewayRefusal(target: string): Promise<{ errno?: number; sqlMessage?: string; message: string }> {
  const err = await connectMysql(gw, target, SUBJECT, TOKEN).then(
    async (c) => {
      await c.end();
      return new Error(`the login to ${target} succeeded but was expected to fail`);
    },
    (e: unknown) => e as Error,
  );
  expect(err).toMatchObject({ errno: 2013 });
  return err as { errno?: number; sqlMessage?: string; message: string };
}

/** The reason of the last refused connection to `target` in the audit log. */
async function refusedReason(target: string): Promise<string> {
  const refused = (await gw.auditRecords()).filter(
    (r): r is Extract<AuditRecord, { type: 'connect' }> => r.type === 'connect' && r.outcome === 'refused' && r.target === target,
  );
  expect(refused.length).toBeGreaterThan(0);
  const last = refused.at(-1)!;
  expect(last.username).toBe(SUBJECT);
  return last.reason ?? '';
}

/** Waits for a condition on the server (polled: the server has no way to announce it). */
async function until(what: string, check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Runs only when the servers started (their absence was reported loudly). */
function live(name: string, body: () => Promise<void>, timeout = 30_000): void {
  it(name, async () => {
    if (!available) return;
    await body();
  }, timeout);
}

beforeAll(async () => {
  cert = makeSelfSignedCert('localhost');
  otherCert = makeSelfSignedCert('localhost');
  const started = await Promise.allSettled([
    startTempMariaDb({ ssl: { certFile: cert.certFile, keyFile: cert.keyFile }, users: USERS, requireSecureTransport: true, serverArgs: PAM_ARGS }),
    startTempMariaDb({ users: USERS, serverArgs: PAM_ARGS }),
  ]);
  const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) {
    await Promise.all(started.map((s) => (s.status === 'fulfilled' ? s.value.stop() : undefined)));
    const line = `SERVICE MISSING: a temporary MariaDB server could not be started (${(failed.reason as Error).message}); the upstream TLS tests did NOT run`;
    if (servicesRequired()) throw new Error(`${line} (SLUICE_REQUIRE_SERVICES=1)`);
    process.stderr.write(`\n!!!!! ${line} !!!!!\n\n`);
    return;
  }
  [secure, plain] = started.map((s) => (s as PromiseFulfilledResult<TempMariaDb>).value) as [TempMariaDb, TempMariaDb];
  for (const db of [secure, plain]) {
    await db.query(`CREATE USER '${PAM_USER}'@'%' IDENTIFIED VIA pam USING 'sluice-test-no-such-service';`);
  }
  expect((await secure.query('SELECT @@have_ssl, @@require_secure_transport;')).trim()).toBe('YES\t1');
  expect((await plain.query('SELECT @@have_ssl;')).trim()).toBe('DISABLED');

  const url = (db: TempMariaDb, user = GW_USER, password?: string) => db.url(user, password, 'test');
  gw = await startTestGateway({
    dialect: mysqlDialect,
    tokens: [{ subject: SUBJECT, kind: 'human', token: TOKEN }],
    targets: {
      tls_require: { upstream: url(secure), upstreamTls: { mode: 'require' } },
      tls_prefer: { upstream: url(secure), upstreamTls: { mode: 'prefer' } },
      tls_verify_ca: { upstream: url(secure), upstreamTls: { mode: 'verify-ca', caFile: cert.certFile } },
      tls_wrong_ca: { upstream: url(secure), upstreamTls: { mode: 'verify-ca', caFile: otherCert.certFile } },
      tls_full: { upstream: url(secure), upstreamTls: { mode: 'verify-full', caFile: cert.certFile, serverName: 'localhost' } },
      tls_full_url: { upstream: `${url(secure)}?ssl-mode=VERIFY_IDENTITY`, upstreamTls: { caFile: cert.certFile } },
      tls_full_mismatch: { upstream: url(secure), upstreamTls: { mode: 'verify-full', caFile: cert.certFile, serverName: 'db.example.com' } },
      tls_disabled: { upstream: url(secure), upstreamTls: { mode: 'disable' } },
      tls_wrong_password: { upstream: url(secure, GW_USER, WRONG_PASSWORD), upstreamTls: { mode: 'require' } },
      tls_ed25519: { upstream: url(secure, ED_USER, ED_PASSWORD), upstreamTls: { mode: 'require' } },
      plain_prefer: { upstream: url(plain), upstreamTls: { mode: 'prefer' } },
      plain_require: { upstream: url(plain), upstreamTls: { mode: 'require' } },
    },
  });
  available = true;
}, 60_000);

afterAll(async () => {
  await gw?.close();
  await Promise.all([secure?.stop(), plain?.stop()]);
  for (const c of [cert, otherCert]) if (c) await rm(c.dir, { recursive: true, force: true });
}, 60_000);

describe('upstream TLS, connectUpstream against a real MariaDB', () => {
  live('require: the session is encrypted (the server reports a cipher)', async () => {
    const r = await loginCipher(options(secure, { tls: { mode: 'require' } }));
    expect(r.tls).toBe(true);
    expect(r.isTlsSocket).toBe(true);
    expect(r.cipher).toMatch(/^[A-Z0-9_-]+$/);
  });

  live('require: a server without TLS is refused before the login', async () => {
    const err = await refusal(options(plain, { tls: { mode: 'require' } }));
    expect(err.message).toBe('the upstream does not offer TLS but the TLS mode is "require"');
    expect(err.errno).toBeUndefined();
  });

  live('prefer: TLS when the server offers it, plain when it does not', async () => {
    const withTls = await loginCipher(options(secure, { tls: { mode: 'prefer' } }));
    expect(withTls.tls).toBe(true);
    expect(withTls.cipher).not.toBe('');
    const without = await loginCipher(options(plain, { tls: { mode: 'prefer' } }));
    expect(without).toEqual({ tls: false, cipher: '', isTlsSocket: false });
  });

  live('verify-ca: the right CA connects (whatever the name), a wrong CA or none fails the handshake', async () => {
    const ok = await loginCipher(options(secure, { tls: { mode: 'verify-ca', caFile: cert.certFile } }));
    expect(ok.cipher).not.toBe('');
    const otherName = await loginCipher(options(secure, { tls: { mode: 'verify-ca', caFile: cert.certFile, serverName: 'db.example.com' } }));
    expect(otherName.cipher).not.toBe('');

    const wrong = await refusal(options(secure, { tls: { mode: 'verify-ca', caFile: otherCert.certFile } }));
    expect(wrong.message).toMatch(/^upstream TLS handshake failed: self[- ]signed certificate/);
    const systemCas = await refusal(options(secure, { tls: { mode: 'verify-ca' } }));
    expect(systemCas.message).toMatch(/^upstream TLS handshake failed: self[- ]signed certificate/);
  });

  live('verify-full: a name in the certificate connects, another name fails', async () => {
    const byName = await loginCipher(options(secure, { tls: { mode: 'verify-full', caFile: cert.certFile, serverName: 'localhost' } }));
    expect(byName.cipher).not.toBe('');
    // Without serverName the host (127.0.0.1) is checked against the certificate's IP address.
    const byIp = await loginCipher(options(secure, { tls: { mode: 'verify-full', caFile: cert.certFile } }));
    expect(byIp.cipher).not.toBe('');

    const mismatch = await refusal(options(secure, { tls: { mode: 'verify-full', caFile: cert.certFile, serverName: 'db.example.com' } }));
    expect(mismatch.message).toMatch(/^upstream TLS handshake failed: Hostname\/IP does not match certificate's altnames: Host: db\.example\.com/);
    const wrongCa = await refusal(options(secure, { tls: { mode: 'verify-full', caFile: otherCert.certFile, serverName: 'localhost' } }));
    expect(wrongCa.message).toMatch(/^upstream TLS handshake failed: self[- ]signed certificate/);
  });

  live('a CA file that cannot be read is a clear error', async () => {
    const err = await refusal(options(secure, { tls: { mode: 'verify-ca', caFile: `${cert.dir}/no-such-ca.pem` } }));
    expect(err.message).toMatch(/no-such-ca\.pem/);
    expect(err.message).toMatch(/ENOENT/);
  });

  live('disable: a server requiring secure transport refuses the login with its own error', async () => {
    const err = await refusal(options(secure, { tls: { mode: 'disable' } }));
    // MariaDB does not say why: the same account and password log in over TLS (above) and,
    // without TLS, to the server that does not require it (below).
    expect(err.errno).toBe(1045);
    expect(err.message).toBe(`the upstream refused the gateway: Access denied for user '${GW_USER}'@'127.0.0.1' (using password: YES) (1045/28000)`);
    expect(err.message).not.toContain(GW_PASSWORD);
    expect(await loginCipher(options(plain, { tls: { mode: 'disable' } }))).toEqual({ tls: false, cipher: '', isTlsSocket: false });
  });

  live('a wrong password: the server\'s access-denied error, without the password', async () => {
    const err = await refusal(options(secure, { password: WRONG_PASSWORD, tls: { mode: 'require' } }));
    expect(err.errno).toBe(1045);
    expect(err.sqlstate).toBe('28000');
    expect(err.message).toBe(`the upstream refused the gateway: Access denied for user '${GW_USER}'@'127.0.0.1' (using password: YES) (1045/28000)`);
    expect(err.message).not.toContain(WRONG_PASSWORD);
  });

  live('an ed25519 account: the login fails on the unsupported plugin, before any password is sent', async () => {
    const err = await refusal(options(secure, { user: ED_USER, password: ED_PASSWORD, tls: { mode: 'require' } }));
    expect(err.message).toBe('the upstream asks for authentication plugin "client_ed25519", which the gateway does not support');
    const plainErr = await refusal(options(plain, { user: ED_USER, password: ED_PASSWORD }));
    expect(plainErr.message).toBe(err.message);
  });

  live('mysql_clear_password: the password goes to a loopback upstream without TLS, and to a remote one only over TLS', async () => {
    const pam = { user: PAM_USER, password: PAM_PASSWORD };
    // PAM's refusal (it does not say "using password: YES" whatever it got).
    const denied = new RegExp(`^Access denied for user '${PAM_USER}'@'127\\.0\\.0\\.1'`);

    // Loopback, no TLS: sent in clear (it is on the wire), PAM refuses it.
    const loopback = await startRelay('127.0.0.1', plain);
    try {
      const err = await refusal({ ...options(plain, pam), host: loopback.host, port: loopback.port });
      expect(err.errno).toBe(1045);
      expect(err.serverMessage).toMatch(denied);
      expect(loopback.sent().includes(Buffer.from(`${PAM_PASSWORD}\0`))).toBe(true);
    } finally {
      await loopback.close();
    }

    const address = remoteAddress();
    // Remote, no TLS: the gateway refuses to send it; it never reaches the wire.
    const remotePlain = await startRelay(address, plain);
    try {
      const err = await refusal({ ...options(plain, pam), host: remotePlain.host, port: remotePlain.port });
      expect(err.message).toBe('the upstream asks for the password in clear (mysql_clear_password) over a connection without TLS');
      expect(err.errno).toBeUndefined();
      expect(remotePlain.sent().length).toBeGreaterThan(0);
      expect(remotePlain.sent().includes(Buffer.from(PAM_PASSWORD))).toBe(false);
    } finally {
      await remotePlain.close();
    }

    // Remote over TLS: answered inside TLS (the server refuses it after its PAM check; the wire never shows it).
    const remoteTls = await startRelay(address, secure);
    try {
      const err = await refusal({ ...options(secure, pam), host: remoteTls.host, port: remoteTls.port, tls: { mode: 'require' } });
      expect(err.errno).toBe(1045);
      expect(err.serverMessage).toMatch(denied);
      expect(remoteTls.sent().includes(Buffer.from(PAM_PASSWORD))).toBe(false);
    } finally {
      await remoteTls.close();
    }
  });
});

describe('sendKill against an upstream that takes TLS only', () => {
  live('the kill connection logs in with the same TLS settings and interrupts the statement', async () => {
    const tlsOptions = options(secure, { tls: { mode: 'verify-full', caFile: cert.certFile, serverName: 'localhost' } });
    const conn = await connectUpstream(tlsOptions);
    try {
      const started = Date.now();
      const slow = queryUpstream(conn.socket, conn.capabilities, 'SELECT SLEEP(30) AS tls_kill_probe', conn.leftover, 60_000).then(
        () => undefined,
        (e: unknown) => e,
      );
      await until('the statement to run upstream', async () =>
        (await secure.query(`SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ${conn.connectionId} AND INFO LIKE '%tls_kill_probe%';`)).trim() === '1',
      );
      await sendKill(tlsOptions, conn.connectionId);
      expect(await slow).toMatchObject({ errno: 1317 });
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(await cipherOf({ ...conn, leftover: Buffer.alloc(0) })).not.toBe('');
    } finally {
      conn.socket.destroy();
    }
  });
});

describe('upstream TLS through the gateway, mysql2 as the client', () => {
  live('require: the upstream session is encrypted', async () => {
    expect(await gatewayCipher('tls_require')).toMatch(/^[A-Z0-9_-]+$/);
  });

  live('prefer: TLS when offered, plain otherwise', async () => {
    expect(await gatewayCipher('tls_prefer')).not.toBe('');
    expect(await gatewayCipher('plain_prefer')).toBe('');
  });

  live('verify-ca with the right CA, verify-full with a matching name (also from the URL\'s ssl-mode) connect encrypted', async () => {
    expect(await gatewayCipher('tls_verify_ca')).not.toBe('');
    expect(await gatewayCipher('tls_full')).not.toBe('');
    expect(await gatewayCipher('tls_full_url')).not.toBe('');
  });

  live('a wrong CA: the client gets 2013, the audit says why, and the gateway keeps serving others', async () => {
    const bystander = await connectMysql(gw, 'tls_require', SUBJECT, TOKEN);
    try {
      const err = await gatewayRefusal('tls_wrong_ca');
      expect(err.message).toMatch(/tls_wrong_ca/);
      expect(await refusedReason('tls_wrong_ca')).toMatch(/upstream TLS handshake failed: self[- ]signed certificate/);

      const [rows] = await bystander.query("SHOW STATUS LIKE 'Ssl_cipher'");
      expect((rows as { Value: string }[])[0]?.Value).not.toBe('');
      expect(await gatewayCipher('tls_require')).not.toBe('');
    } finally {
      await bystander.end();
    }
  });

  live('verify-full with a name not in the certificate: 2013, the audit names the mismatch', async () => {
    await gatewayRefusal('tls_full_mismatch');
    expect(await refusedReason('tls_full_mismatch')).toMatch(/Hostname\/IP does not match certificate's altnames: Host: db\.example\.com/);
  });

  live('require toward a server without TLS: 2013, the audit says the server offers none', async () => {
    await gatewayRefusal('plain_require');
    expect(await refusedReason('plain_require')).toMatch(/the upstream does not offer TLS but the TLS mode is "require"/);
  });

  live('disable toward a server requiring secure transport: 2013, the server\'s refusal in the audit', async () => {
    await gatewayRefusal('tls_disabled');
    const direct = await refusal(options(secure, { tls: { mode: 'disable' } }));
    expect(await refusedReason('tls_disabled')).toContain(direct.message);
  });

  live('a wrong upstream password: 2013, the audit says access denied, and no password is written anywhere', async () => {
    const err = await gatewayRefusal('tls_wrong_password');
    expect(err.message).not.toContain(WRONG_PASSWORD);
    expect(await refusedReason('tls_wrong_password')).toContain(
      `the upstream refused the gateway: Access denied for user '${GW_USER}'@'127.0.0.1' (using password: YES) (1045/28000)`,
    );
    const everything = JSON.stringify(await gw.auditRecords());
    for (const secret of [WRONG_PASSWORD, GW_PASSWORD, ED_PASSWORD, TOKEN]) expect(everything).not.toContain(secret);
  });

  live('mysql_clear_password asked by a remote upstream without TLS: 2013, the audit says why, the password stays home', async () => {
    const relay = await startRelay(remoteAddress(), plain);
    const remote = await startTestGateway({
      dialect: mysqlDialect,
      tokens: [{ subject: SUBJECT, kind: 'human', token: TOKEN }],
      targets: { pam_remote: { upstream: `mysql://${PAM_USER}:${PAM_PASSWORD}@${relay.host}:${relay.port}/test`, upstreamTls: { mode: 'disable' } } },
    });
    try {
      const err = await connectMysql(remote, 'pam_remote', SUBJECT, TOKEN).then(
        async (c) => {
          await c.end();
          return new Error('the login succeeded but was expected to fail');
        },
        (e: unknown) => e,
      );
      expect(err).toMatchObject({ errno: 2013 });
      const refused = (await remote.auditRecords()).filter((r) => r.type === 'connect' && r.outcome === 'refused');
      expect(refused).toHaveLength(1);
      expect(refused[0]).toMatchObject({ target: 'pam_remote', username: SUBJECT });
      expect((refused[0] as { reason?: string }).reason).toContain(
        'the upstream asks for the password in clear (mysql_clear_password) over a connection without TLS',
      );
      expect(JSON.stringify(refused)).not.toContain(PAM_PASSWORD);
      expect(relay.sent().includes(Buffer.from(PAM_PASSWORD))).toBe(false);
    } finally {
      await remote.close();
      await relay.close();
    }
  });

  live('an ed25519 account: 2013, the audit names the unsupported plugin', async () => {
    await gatewayRefusal('tls_ed25519');
    expect(await refusedReason('tls_ed25519')).toContain(
      'the upstream asks for authentication plugin "client_ed25519", which the gateway does not support',
    );
  });
});
