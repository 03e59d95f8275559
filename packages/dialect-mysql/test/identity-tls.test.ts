/**
 * Identity and TLS through the MySQL dialect against the real MariaDB: the token travels in
 * clear (mysql_clear_password), so only over TLS or, when allowed, on loopback; service tokens
 * and OIDC JWTs log in; wrong tokens and unknown targets get the native errors and are audited
 * without their secret.
 */
import { rm } from 'node:fs/promises';
import net from 'node:net';
import tls from 'node:tls';
import {
  makeSelfSignedCert,
  requireService,
  startOidcIssuer,
  startTestGateway,
  type OidcIssuer,
  type SelfSignedCert,
  type TestGateway,
} from '@sluice/testkit';
import type mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { mysqlDialect } from '../src/index.js';
import { CLIENT_PLUGIN_AUTH, CLIENT_PROTOCOL_41, CLIENT_SECURE_CONNECTION, CLIENT_SSL } from '../src/protocol/constants.js';
import { encodeSslRequest } from '../src/protocol/messages.js';
import { encodePacket } from '../src/protocol/packets.js';
import { connectMysql } from './mysql-driver.js';
import { liveTest, mysqlCli, statementRecords, UPSTREAM } from './support.js';

const BOB = { subject: 'bob@example.com', kind: 'human', groups: ['staff'], token: 'bob-identity-my-token' } as const;

let available = false;
beforeAll(async () => {
  available = await requireService('MariaDB', '127.0.0.1', 3306);
});
const live = liveTest(() => available);

type LoginError = { errno?: number; sqlState?: string; message: string };

/** The error of a login that is expected to fail (undefined when it succeeds). */
async function loginError(gw: { host: string; port: number }, user: string, password: string, database = 'app', extra: mysql.ConnectionOptions = {}): Promise<LoginError | undefined> {
  try {
    const c = await connectMysql(gw, database, user, password, extra);
    await c.end();
    return undefined;
  } catch (err) {
    return err as LoginError;
  }
}

const cliArgs = (gw: { port: number }, user: string, token: string, database = 'app') => ['-h', '127.0.0.1', '-P', String(gw.port), '-u', user, `-p${token}`, database];

describe('TLS towards clients, required', () => {
  let gw: TestGateway;
  let cert: SelfSignedCert;
  beforeAll(async () => {
    if (!available) return;
    cert = makeSelfSignedCert();
    gw = await startTestGateway({
      dialect: mysqlDialect,
      targets: { app: { upstream: UPSTREAM } },
      tokens: [BOB],
      tls: tls.createSecureContext({ cert: cert.cert, key: cert.key }),
      requireTls: true,
    });
  });
  afterAll(async () => {
    await gw?.close();
    if (cert) await rm(cert.dir, { recursive: true, force: true });
  });

  // mysql2 sends its first TLS bytes right behind the SSLRequest, often in the same segment.
  live('mysql2 over TLS logs in, without and with verifying the certificate; the login is audited as TLS', async () => {
    const c = await connectMysql(gw, 'app', BOB.subject, BOB.token, { ssl: { rejectUnauthorized: false } });
    expect((await c.query('SELECT 1 AS x'))[0]).toEqual([{ x: 1 }]);
    await c.end();
    const verified = await connectMysql(gw, 'app', BOB.subject, BOB.token, { ssl: { ca: cert.cert.toString(), rejectUnauthorized: true } });
    expect((await verified.query('SELECT 2 AS x'))[0]).toEqual([{ x: 2 }]);
    await verified.end();
    const accepted = (await gw.auditRecords()).filter((r) => r.type === 'connect' && r.outcome === 'accepted');
    expect(accepted.slice(-2)).toMatchObject([
      { tls: true, actor: { subject: BOB.subject } },
      { tls: true, actor: { subject: BOB.subject } },
    ]);
  });

  live('the first TLS bytes sent in the same segment as the SSLRequest start the TLS handshake', async () => {
    const socket = net.connect({ host: gw.host, port: gw.port });
    socket.on('error', () => undefined);
    try {
      await new Promise((resolve) => socket.once('data', resolve));
      const capabilities = (CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH | CLIENT_SSL) >>> 0;
      // Held back and sent as one write: the SSLRequest and the TLS ClientHello together.
      socket.cork();
      socket.write(encodePacket(encodeSslRequest({ capabilities, maxPacketSize: 1 << 24, charset: 45, mariadbCapabilities: 0 }), 1));
      const secure = tls.connect({ socket, ca: cert.cert, servername: 'localhost' });
      setImmediate(() => socket.uncork());
      await new Promise<void>((resolve, reject) => {
        secure.once('secureConnect', () => resolve());
        secure.once('error', reject);
      });
      expect(secure.authorized).toBe(true);
      secure.destroy();
    } finally {
      socket.destroy();
    }
  });

  live('mysql2 refuses a certificate it does not trust', async () => {
    const err = await loginError(gw, BOB.subject, BOB.token, 'app', { ssl: { rejectUnauthorized: true } });
    expect(err?.message).toMatch(/self[- ]signed certificate/i);
  });

  live('a plaintext client is refused with 1045 saying TLS is required, and audited', async () => {
    const err = await loginError(gw, BOB.subject, BOB.token);
    expect(err).toMatchObject({ errno: 1045, sqlState: '28000', message: expect.stringContaining('this gateway requires TLS') });
    const refused = (await gw.auditRecords()).filter((r) => r.type === 'connect' && r.outcome === 'refused').at(-1);
    expect(refused).toMatchObject({ tls: false, reason: expect.stringContaining('requires TLS') });
    expect(JSON.stringify(refused)).not.toContain(BOB.token);
  });

  live('the mysql client connects with --ssl, verifying the certificate or not; the login is audited as TLS', async () => {
    const ok = await mysqlCli([...cliArgs(gw, BOB.subject, BOB.token), '--ssl', '-N', '-e', 'SELECT 40 + 2']);
    expect(ok).toMatchObject({ code: 0, stdout: '42\n', stderr: '' });
    const verified = await mysqlCli([...cliArgs(gw, BOB.subject, BOB.token), `--ssl-ca=${cert.certFile}`, '--ssl-verify-server-cert', '-N', '-e', 'SELECT 43']);
    expect(verified).toMatchObject({ code: 0, stdout: '43\n', stderr: '' });
    const accepted = (await gw.auditRecords()).filter((r) => r.type === 'connect' && r.outcome === 'accepted');
    expect(accepted.slice(-2)).toMatchObject([
      { tls: true, actor: { subject: BOB.subject } },
      { tls: true, actor: { subject: BOB.subject } },
    ]);
    // A client that verifies against the system CAs does not trust this self-signed one.
    const untrusted = await mysqlCli([...cliArgs(gw, BOB.subject, BOB.token), '--ssl-verify-server-cert', '-e', 'SELECT 1']);
    expect(untrusted.code).toBe(1);
    expect(untrusted.stderr).toMatch(/ERROR 2026 \(HY000\)/);
  });

  live('the mysql client with --skip-ssl is refused with 1045', async () => {
    const plain = await mysqlCli([...cliArgs(gw, BOB.subject, BOB.token), '--skip-ssl', '-e', 'SELECT 1']);
    expect(plain.code).toBe(1);
    expect(plain.stderr).toMatch(/ERROR 1045 \(28000\).*this gateway requires TLS/);
  });
});

describe('plaintext on loopback only when allowed', () => {
  let withTls: TestGateway;
  let withoutTls: TestGateway;
  let cert: SelfSignedCert;
  beforeAll(async () => {
    if (!available) return;
    cert = makeSelfSignedCert();
    withTls = await startTestGateway({
      dialect: mysqlDialect,
      targets: { app: { upstream: UPSTREAM } },
      tokens: [BOB],
      tls: tls.createSecureContext({ cert: cert.cert, key: cert.key }),
      allowPlaintextLoopback: false,
    });
    withoutTls = await startTestGateway({ dialect: mysqlDialect, targets: { app: { upstream: UPSTREAM } }, tokens: [BOB], allowPlaintextLoopback: false });
  });
  afterAll(async () => {
    await withTls?.close();
    await withoutTls?.close();
    if (cert) await rm(cert.dir, { recursive: true, force: true });
  });

  live('TLS offered but not required, plaintext not allowed: a plaintext client is refused and told to use TLS; a TLS client logs in', async () => {
    const err = await loginError(withTls, BOB.subject, BOB.token);
    expect(err).toMatchObject({
      errno: 1045,
      sqlState: '28000',
      message: expect.stringMatching(/the token is sent in clear \(mysql_clear_password\) and this connection is not encrypted; connect with TLS/),
    });
    const c = await connectMysql(withTls, 'app', BOB.subject, BOB.token, { ssl: { rejectUnauthorized: false } });
    expect((await c.query('SELECT 1 AS x'))[0]).toEqual([{ x: 1 }]);
    await c.end();
    const cli = await mysqlCli([...cliArgs(withTls, BOB.subject, BOB.token), '--ssl', '-N', '-e', 'SELECT 1']);
    expect(cli).toMatchObject({ code: 0, stdout: '1\n', stderr: '' });
    const plainCli = await mysqlCli([...cliArgs(withTls, BOB.subject, BOB.token), '--skip-ssl', '-e', 'SELECT 1']);
    expect(plainCli.stderr).toMatch(/ERROR 1045 \(28000\).*connect with TLS/);
  });

  live('no TLS configured and plaintext not allowed: a loopback client is refused, and told why', async () => {
    const err = await loginError(withoutTls, BOB.subject, BOB.token);
    expect(err).toMatchObject({
      errno: 1045,
      sqlState: '28000',
      message: expect.stringMatching(/not encrypted; the gateway has no TLS certificate configured .*allowPlaintextLoopback: true allows plaintext/),
    });
    const cli = await mysqlCli([...cliArgs(withoutTls, BOB.subject, BOB.token), '-e', 'SELECT 1']);
    expect(cli.code).toBe(1);
    expect(cli.stderr).toMatch(/ERROR 1045 \(28000\).*not encrypted/);
    const refused = (await withoutTls.auditRecords()).filter((r) => r.type === 'connect' && r.outcome === 'refused');
    expect(refused).toHaveLength(2);
    expect(JSON.stringify(refused)).not.toContain(BOB.token);
  });
});

describe('identity: service tokens and OIDC JWTs as the password', () => {
  let gw: TestGateway;
  let issuer: OidcIssuer;
  beforeAll(async () => {
    if (!available) return;
    issuer = await startOidcIssuer({ audience: 'sluice' });
    gw = await startTestGateway({
      dialect: mysqlDialect,
      targets: { app: { upstream: UPSTREAM }, other: { upstream: UPSTREAM } },
      tokens: [BOB, { subject: 'old-bot', kind: 'agent', token: 'expired-identity-my-token', expiresAt: '2020-01-01T00:00:00Z' }],
      oidc: [{ issuer: issuer.issuer, audience: 'sluice', usernameClaim: 'email' }],
      failedLogins: { maxAttempts: 12, windowSeconds: 60, lockoutSeconds: 60 },
    });
  });
  afterAll(async () => {
    await gw?.close();
    await issuer?.close();
  });

  /** A JWT longer than 255 bytes: a length that needs more than one byte wherever it is counted. */
  const longJwt = async (claims: Record<string, unknown> = {}) => {
    const jwt = await issuer.sign({ sub: 'u-123', email: 'dana@example.com', groups: ['analysts', 'sre'], note: 'x'.repeat(400), ...claims }, { expiresIn: 300 });
    expect(jwt.length).toBeGreaterThan(255);
    return jwt;
  };

  live('a JWT from the OIDC issuer (longer than 255 bytes) logs in with mysql2; groups come from its claim; the JWT is never audited', async () => {
    const jwt = await longJwt();
    const c = await connectMysql(gw, 'app', 'dana@example.com', jwt);
    expect((await c.query('SELECT 1 AS oidc_login'))[0]).toEqual([{ oidc_login: 1 }]);
    await c.end();
    const records = await gw.auditRecords();
    const rec = records.filter((r) => r.type === 'connect' && r.outcome === 'accepted').at(-1);
    expect(rec).toMatchObject({ actor: { subject: 'dana@example.com', method: 'oidc', groups: ['analysts', 'sre'] }, target: 'app' });
    expect(statementRecords(records, (r) => r.text.includes('oidc_login')).at(-1)).toMatchObject({ actor: { subject: 'dana@example.com', method: 'oidc' } });
    expect(JSON.stringify(records)).not.toContain(jwt);
  });

  live('the mysql client logs in with a long JWT', async () => {
    const jwt = await longJwt();
    const r = await mysqlCli([...cliArgs(gw, 'dana@example.com', jwt), '-N', '-e', 'SELECT 7 * 6']);
    expect(r).toMatchObject({ code: 0, stdout: '42\n', stderr: '' });
  });

  live('an expired, a wrongly signed and another user\'s JWT are refused with 1045, saying why', async () => {
    const expired = await issuer.sign({ sub: 'u-1', email: 'dana@example.com' }, { expiresIn: -120 });
    expect(await loginError(gw, 'dana@example.com', expired)).toMatchObject({ errno: 1045, sqlState: '28000', message: expect.stringMatching(/expired/) });
    const forged = await issuer.sign({ sub: 'u-1', email: 'dana@example.com' }, { expiresIn: 300, wrongKey: true });
    expect(await loginError(gw, 'dana@example.com', forged)).toMatchObject({ errno: 1045, message: expect.stringMatching(/signature/) });
    const someoneElses = await issuer.sign({ sub: 'u-1', email: 'dana@example.com' }, { expiresIn: 300 });
    expect(await loginError(gw, 'eve@example.com', someoneElses)).toMatchObject({ errno: 1045, message: expect.stringMatching(/does not belong to user/) });
  });

  live('a wrong token is refused with 1045 (28000) and an audited refusal that does not contain the secret', async () => {
    const err = await loginError(gw, BOB.subject, 'wrong-identity-my-secret');
    expect(err).toMatchObject({ errno: 1045, sqlState: '28000', message: expect.stringMatching(/^authentication failed/) });
    const refused = (await gw.auditRecords()).filter((r) => r.type === 'connect' && r.outcome === 'refused').at(-1);
    expect(refused).toMatchObject({ username: BOB.subject, tls: false, reason: expect.stringMatching(/authentication failed/) });
    expect(JSON.stringify(await gw.auditRecords())).not.toContain('wrong-identity-my-secret');
    expect(await loginError(gw, 'old-bot', 'expired-identity-my-token')).toMatchObject({ errno: 1045, message: expect.stringMatching(/expired/) });
  });

  live('an unknown target (database name) gets 1049 naming the targets; the login is audited as refused', async () => {
    const err = await loginError(gw, BOB.subject, BOB.token, 'nope');
    expect(err).toMatchObject({ errno: 1049, sqlState: '42000', message: expect.stringMatching(/no target named "nope" is configured on this gateway; connect to one of: app, other/) });
    const refused = (await gw.auditRecords()).filter((r) => r.type === 'connect' && r.outcome === 'refused').at(-1);
    expect(refused).toMatchObject({ username: BOB.subject, reason: expect.stringContaining('no target named "nope"') });
    // With several targets a login must name one.
    expect(await loginError(gw, BOB.subject, BOB.token, '')).toMatchObject({ errno: 1049, message: expect.stringContaining('no target named') });
  });

  live('the database name selects the target', async () => {
    const c = await connectMysql(gw, 'other', BOB.subject, BOB.token);
    await c.query('SELECT 1 AS on_other');
    await c.end();
    const rec = statementRecords(await gw.auditRecords(), (r) => r.text.includes('on_other')).at(-1);
    expect(rec).toMatchObject({ target: 'other', actor: { subject: BOB.subject } });
  });

  live('failed logins are rate limited per source address with 1040, then even a good token waits', async () => {
    let locked: LoginError | undefined;
    for (let i = 0; i < 15 && !locked; i++) {
      const e = await loginError(gw, BOB.subject, `wrong-${i}`);
      if (e?.errno === 1040) locked = e;
    }
    expect(locked).toMatchObject({ sqlState: '08004', message: expect.stringMatching(/too many failed login attempts/) });
    expect(await loginError(gw, BOB.subject, BOB.token)).toMatchObject({ errno: 1040 });
  });
});

describe('a login without a database name', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    if (!available) return;
    gw = await startTestGateway({ dialect: mysqlDialect, targets: { only: { upstream: UPSTREAM } }, tokens: [BOB] });
  });
  afterAll(async () => gw?.close());

  live('gets the only MySQL target', async () => {
    const c = await connectMysql(gw, '', BOB.subject, BOB.token);
    expect((await c.query('SELECT DATABASE() AS db'))[0]).toEqual([{ db: 'test' }]);
    await c.end();
    const r = await mysqlCli(['-h', '127.0.0.1', '-P', String(gw.port), '-u', BOB.subject, `-p${BOB.token}`, '-N', '-e', 'SELECT DATABASE()']);
    expect(r).toMatchObject({ code: 0, stdout: 'test\n' });
  });
});
