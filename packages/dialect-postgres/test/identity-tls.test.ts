import { mkdtemp, rm, symlink } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import {
  makeSelfSignedCert,
  requireService,
  sendRaw,
  startOidcIssuer,
  startTempPostgres,
  startTestGateway,
  type OidcIssuer,
  type SelfSignedCert,
  type TempPostgres,
  type TestGateway,
} from '@sluice/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postgresDialect } from '../src/index.js';
import { firstErrorCode, frontendMessage, passwordMessage, queryMessage, startupMessage } from '../src/testing/index.js';
import { connectPg } from './pg-driver.js';

const UPSTREAM = 'postgres://postgres@127.0.0.1:5432/test';
const BOB = { subject: 'bob@example.com', token: 'bob-token-1' };

let pgUp = false;
beforeAll(async () => {
  pgUp = await requireService('PostgreSQL', '127.0.0.1', 5432);
});
const live = (name: string, body: () => Promise<void>, timeout?: number) =>
  it(name, async () => {
    if (!pgUp) return;
    await body();
  }, timeout);

describe('identity: service tokens and OIDC JWTs presented as the password', () => {
  let gw: TestGateway;
  let issuer: OidcIssuer;
  beforeAll(async () => {
    if (!pgUp) return;
    issuer = await startOidcIssuer({ audience: 'sluice' });
    gw = await startTestGateway({
      dialect: postgresDialect,
      targets: { app: { upstream: UPSTREAM } },
      tokens: [
        { subject: BOB.subject, kind: 'human', token: BOB.token },
        { subject: 'old-bot', kind: 'agent', token: 'expired-token', expiresAt: '2020-01-01T00:00:00Z' },
      ],
      oidc: [{ issuer: issuer.issuer, audience: 'sluice', usernameClaim: 'email' }],
      failedLogins: { maxAttempts: 8, windowSeconds: 60, lockoutSeconds: 60 },
    });
  });
  afterAll(async () => {
    await gw?.close();
    await issuer?.close();
  });

  const loginError = async (user: string, password: string, database = 'app') => {
    try {
      const c = await connectPg(gw, database, user, password);
      await c.end();
      return undefined;
    } catch (err) {
      return err as { code?: string; message: string };
    }
  };

  live('a JWT from the OIDC issuer logs in; groups come from its claim', async () => {
    const jwt = await issuer.sign({ sub: 'u-123', email: 'dana@example.com', groups: ['analysts', 'sre'] }, { expiresIn: 300 });
    const c = await connectPg(gw, 'app', 'dana@example.com', jwt);
    expect((await c.query('SELECT 1 AS x')).rows[0].x).toBe(1);
    await c.end();
    const rec = (await gw.auditRecords()).filter((r) => r.type === 'connect' && r.outcome === 'accepted').at(-1);
    expect(rec).toMatchObject({ actor: { subject: 'dana@example.com', method: 'oidc', groups: ['analysts', 'sre'] } });
    expect(JSON.stringify(await gw.auditRecords())).not.toContain(jwt);
  });

  live('an expired JWT is refused with 28P01 and says it expired', async () => {
    const jwt = await issuer.sign({ sub: 'u-1', email: 'dana@example.com' }, { expiresIn: -120 });
    const err = await loginError('dana@example.com', jwt);
    expect(err?.code).toBe('28P01');
    expect(err?.message).toMatch(/expired/);
  });

  live('a JWT signed by another key is refused', async () => {
    const jwt = await issuer.sign({ sub: 'u-1', email: 'dana@example.com' }, { expiresIn: 300, wrongKey: true });
    const err = await loginError('dana@example.com', jwt);
    expect(err?.code).toBe('28P01');
    expect(err?.message).toMatch(/signature/);
  });

  live('a JWT for another user name is refused', async () => {
    const jwt = await issuer.sign({ sub: 'u-1', email: 'dana@example.com' }, { expiresIn: 300 });
    const err = await loginError('eve@example.com', jwt);
    expect(err?.code).toBe('28P01');
    expect(err?.message).toMatch(/does not belong to user/);
  });

  live('a token for another subject, an expired token and an unknown target are refused clearly', async () => {
    expect(await loginError('someone-else', BOB.token)).toMatchObject({ code: '28P01', message: expect.stringMatching(/does not belong to user/) });
    expect(await loginError('old-bot', 'expired-token')).toMatchObject({ code: '28P01', message: expect.stringMatching(/expired/) });
    const missing = await loginError(BOB.subject, BOB.token, 'nope');
    expect(missing).toMatchObject({ code: '3D000', message: expect.stringMatching(/no target named "nope"/) });
  });

  live('failed logins are rate limited per source address, then even a good token waits', async () => {
    // Earlier tests in this block already failed from 127.0.0.1; keep failing until locked.
    let locked: { code?: string; message: string } | undefined;
    for (let i = 0; i < 12 && !locked; i++) {
      const e = await loginError(BOB.subject, `wrong-${i}`);
      if (e?.code === '53300') locked = e;
    }
    expect(locked?.message).toMatch(/too many failed login attempts/);
    const blocked = await loginError(BOB.subject, BOB.token);
    expect(blocked?.code).toBe('53300');
    const refused = (await gw.auditRecords()).filter((r) => r.type === 'connect' && r.outcome === 'refused');
    expect(refused.some((r) => r.type === 'connect' && /too many/.test(r.reason ?? ''))).toBe(true);
  });
});

describe('bad input inside and outside a session', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    if (!pgUp) return;
    gw = await startTestGateway({
      dialect: postgresDialect,
      targets: { app: { upstream: UPSTREAM } },
      tokens: [{ subject: BOB.subject, kind: 'human', token: BOB.token }],
      maxMessageBytes: 64 * 1024,
    });
  });
  afterAll(async () => gw?.close());

  const login = Buffer.concat([startupMessage({ user: BOB.subject, database: 'app' }), passwordMessage(BOB.token)]);

  live('an oversized, an unknown and a truncated message each end only their own session', async () => {
    const bystander = await connectPg(gw, 'app', BOB.subject, BOB.token);
    const oversized = await sendRaw(gw, Buffer.concat([login, queryMessage(`select '${'x'.repeat(100_000)}'`)]));
    expect(oversized.closed).toBe(true);
    expect(firstErrorCode(oversized.response)).toBe('08P01');
    expect(oversized.response.toString()).toMatch(/exceeds the gateway's limit/);

    // Before login, a large startup packet is refused at its header, without buffering it.
    const bigStartup = Buffer.alloc(8);
    bigStartup.writeInt32BE(60 << 20, 0);
    bigStartup.writeInt32BE(196608, 4);
    const early = await sendRaw(gw, bigStartup);
    expect(early.closed).toBe(true);
    expect(firstErrorCode(early.response)).toBe('08P01');

    const unknown = await sendRaw(gw, Buffer.concat([login, frontendMessage(0x7a, 'zzz')]));
    expect(firstErrorCode(unknown.response)).toBe('08P01');

    const badLength = await sendRaw(gw, Buffer.concat([login, Buffer.from([0x51, 0, 0, 0, 1])]));
    expect(firstErrorCode(badLength.response)).toBe('08P01');

    // A truncated message, then the client vanishes.
    const s = net.connect({ host: gw.host, port: gw.port });
    await new Promise((r) => s.once('connect', r));
    s.write(Buffer.concat([login, queryMessage('select 1').subarray(0, 7)]));
    await new Promise((r) => setTimeout(r, 200));
    s.destroy();

    expect((await bystander.query('SELECT 7 AS seven')).rows[0].seven).toBe(7);
    await bystander.end();
  });

  live('a wrong password message type during login is a protocol violation', async () => {
    const r = await sendRaw(gw, Buffer.concat([startupMessage({ user: BOB.subject, database: 'app' }), queryMessage('select 1')]));
    expect(firstErrorCode(r.response)).toBe('08P01');
  });
});

describe('TLS towards clients', () => {
  let gw: TestGateway;
  let cert: SelfSignedCert;
  beforeAll(async () => {
    if (!pgUp) return;
    cert = makeSelfSignedCert();
    gw = await startTestGateway({
      dialect: postgresDialect,
      targets: { app: { upstream: UPSTREAM } },
      tokens: [{ subject: BOB.subject, kind: 'human', token: BOB.token }],
      tls: tls.createSecureContext({ cert: cert.cert, key: cert.key }),
      requireTls: true,
    });
  });
  afterAll(async () => {
    await gw?.close();
    if (cert) await rm(cert.dir, { recursive: true, force: true });
  });

  live('node-postgres with ssl verifying the gateway certificate works', async () => {
    const c = await connectPg(gw, 'app', BOB.subject, BOB.token, { ssl: { ca: cert.cert, servername: 'localhost' } });
    expect((await c.query('SELECT 1 AS x')).rows[0].x).toBe(1);
    await c.end();
    const rec = (await gw.auditRecords()).filter((r) => r.type === 'connect' && r.outcome === 'accepted').at(-1);
    expect(rec).toMatchObject({ tls: true });
  });

  live('a plaintext client is refused when TLS is required', async () => {
    await expect(connectPg(gw, 'app', BOB.subject, BOB.token)).rejects.toMatchObject({ message: expect.stringMatching(/requires TLS/) });
  });

  live('psql with sslmode=require connects', async () => {
    // Asynchronous on purpose: the gateway runs in this process and must keep serving.
    const { execFile } = await import('node:child_process');
    const { promisify } = await import('node:util');
    const r = await promisify(execFile)('psql', [`postgres://${encodeURIComponent(BOB.subject)}:${BOB.token}@127.0.0.1:${gw.port}/app?sslmode=require`, '-XAtc', 'select 40+2'], { encoding: 'utf8', timeout: 20_000 });
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('42');
  });
});

describe('upstream authentication and TLS (temporary PostgreSQL clusters)', () => {
  let scramPg: TempPostgres;
  let md5Pg: TempPostgres;
  let cert: SelfSignedCert;
  beforeAll(async () => {
    cert = makeSelfSignedCert();
    [scramPg, md5Pg] = await Promise.all([
      startTempPostgres({ auth: 'scram-sha-256', users: [{ name: 'gw', password: 'gw-s3cret' }], ssl: { certFile: cert.certFile, keyFile: cert.keyFile } }),
      startTempPostgres({ auth: 'md5', users: [{ name: 'gw5', password: 'md5-s3cret', encryption: 'md5' }] }),
    ]);
  }, 120_000);
  afterAll(async () => {
    await Promise.all([scramPg?.stop(), md5Pg?.stop()]);
    if (cert) await rm(cert.dir, { recursive: true, force: true });
  });

  it('logs in upstream with SCRAM-SHA-256 and md5, over TLS when configured; clients never see the password', async () => {
    const gw = await startTestGateway({
      dialect: postgresDialect,
      targets: {
        scram: { upstream: `postgres://gw:gw-s3cret@127.0.0.1:${scramPg.port}/postgres` },
        scramtls: { upstream: `postgres://gw:gw-s3cret@127.0.0.1:${scramPg.port}/postgres`, upstreamTls: { mode: 'verify-full', caFile: cert.certFile, serverName: 'localhost' } },
        md5: { upstream: `postgres://gw5:md5-s3cret@127.0.0.1:${md5Pg.port}/postgres` },
        wrong: { upstream: `postgres://gw:not-the-password@127.0.0.1:${scramPg.port}/postgres` },
      },
      tokens: [{ subject: BOB.subject, kind: 'human', token: BOB.token }],
    });
    try {
      const a = await connectPg(gw, 'scram', BOB.subject, BOB.token);
      expect((await a.query('SELECT current_user AS u')).rows[0].u).toBe('gw');
      expect((await a.query('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()')).rows[0].ssl).toBe(false);
      await a.end();
      const t = await connectPg(gw, 'scramtls', BOB.subject, BOB.token);
      expect((await t.query('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()')).rows[0].ssl).toBe(true);
      await t.end();
      const m = await connectPg(gw, 'md5', BOB.subject, BOB.token);
      expect((await m.query('SELECT current_user AS u')).rows[0].u).toBe('gw5');
      await m.end();
      const err = await connectPg(gw, 'wrong', BOB.subject, BOB.token).then(
        () => undefined,
        (e: { code?: string; message: string; detail?: string }) => e,
      );
      expect(err?.code).toBe('08006');
      expect(err?.message).toMatch(/unavailable/);
      expect(JSON.stringify(err)).not.toContain('not-the-password');
      const refused = (await gw.auditRecords()).filter((r) => r.type === 'connect' && r.outcome === 'refused');
      expect(refused.at(-1)).toMatchObject({ target: 'wrong' });
      expect(JSON.stringify(await gw.auditRecords())).not.toMatch(/gw-s3cret|md5-s3cret|not-the-password/);
    } finally {
      await gw.close();
    }
  }, 60_000);
});

describe('fail closed: the audit store stops writing', () => {
  live('statements are refused with a clear error once the audit trail cannot be written', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sluice-failing-audit-'));
    const gw = await startTestGateway({
      dialect: postgresDialect,
      targets: { app: { upstream: UPSTREAM } },
      tokens: [{ subject: BOB.subject, kind: 'human', token: BOB.token }],
      auditDir: dir,
      // Room for the two logins; the next batch rotates into a segment that cannot be
      // written (writes to /dev/full fail with ENOSPC, as on a full disk).
      auditSegmentBytes: 1000,
    });
    await symlink('/dev/full', join(dir, 'audit-000002.jsonl'));
    try {
      const c = await connectPg(gw, 'app', BOB.subject, BOB.token);
      const ext = await connectPg(gw, 'app', BOB.subject, BOB.token);
      let refusal: { code?: string; message: string } | undefined;
      for (let i = 0; i < 5 && !refusal; i++) {
        await c.query('SELECT 1').catch((e: { code?: string; message: string }) => {
          refusal = e;
        });
        await new Promise((r) => setTimeout(r, 30));
      }
      expect(refusal?.code).toBe('58000');
      expect(refusal?.message).toMatch(/audit store cannot write.*fails closed/);
      await expect(c.query('CREATE TABLE should_not_exist_xyz (a int)')).rejects.toMatchObject({ code: '58000' });
      await c.end().catch(() => undefined);
      // In the extended protocol the Parse and Bind are already upstream: the refusal ends the
      // session (FATAL) instead of leaving the client waiting.
      await expect(ext.query({ text: 'CREATE TABLE should_not_exist_xyz (a int)', values: [] , name: 'ddl' })).rejects.toMatchObject({ code: '58000' });
      await ext.end().catch(() => undefined);
      const check = await connectPg({ host: '127.0.0.1', port: 5432 }, 'test', 'postgres', '');
      expect((await check.query("SELECT to_regclass('should_not_exist_xyz') AS t")).rows[0].t).toBeNull();
      await check.end();
    } finally {
      await gw.close().catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    }
  });

  live('a login is refused when its connect record cannot be written', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sluice-failing-audit-'));
    await symlink('/dev/full', join(dir, 'audit-000001.jsonl'));
    const gw = await startTestGateway({
      dialect: postgresDialect,
      targets: { app: { upstream: UPSTREAM } },
      tokens: [{ subject: BOB.subject, kind: 'human', token: BOB.token }],
      auditDir: dir,
    });
    try {
      await expect(connectPg(gw, 'app', BOB.subject, BOB.token)).rejects.toMatchObject({
        code: '58000',
        message: expect.stringMatching(/audit store cannot write/),
      });
    } finally {
      await gw.close().catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    }
  });
});
