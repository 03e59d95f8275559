/**
 * TLS towards clients, configured per listener (tls as the default, listenTls.<dialect> over
 * it), and mutual TLS: real clients (pg, psql, mysql2, the mysql CLI) through the gateway, in
 * front of the real PostgreSQL and MariaDB. Refusals are checked in the audit trail.
 */
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { type AuditRecord, readAuditRecords } from '@sluice/core';
import { makeCertAuthority, requireService, type IssuedCert, type TestCertAuthority } from '@sluice/testkit';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, parseConfig } from '../src/config/load.js';
import { listenerTlsOf } from '../src/config/tls.js';
import { dialects } from '../src/dialects.js';
import { startGateway, StartupError, type RunningGateway } from '../src/gateway.js';

const ALICE = { subject: 'alice@example.com', token: 'tls-alice-token-0123456789' };
const pgUp = await requireService('PostgreSQL', '127.0.0.1', 5432);
const myUp = await requireService('MariaDB', '127.0.0.1', 3306);

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command without blocking this process (the gateway runs here). */
function run(cmd: string, args: readonly string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 30_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${cmd} did not finish within ${timeoutMs} ms; stdout: ${stdout}; stderr: ${stderr}`));
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

interface Gw {
  readonly dir: string;
  readonly gateway: RunningGateway;
  readonly pgPort: number;
  readonly myPort: number;
  /** What the gateway logged (JSON lines). */
  logs(): string;
  /** Polls the audit trail until a record matches (refusals are written without waiting). */
  waitForAudit(match: (r: AuditRecord) => boolean, what: string): Promise<AuditRecord>;
  close(): Promise<void>;
}

/** Starts the gateway in this process from a config with both listeners and `tlsYaml`. */
async function startWith(tlsYaml: string): Promise<Gw> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-tls-'));
  const file = join(dir, 'sluice.yaml');
  writeFileSync(
    file,
    `listen:
  postgres: 127.0.0.1:0
  mysql: 127.0.0.1:0
allowPlaintextLoopback: true
targets:
  - name: app
    dialect: postgres
    upstream: postgres://postgres@127.0.0.1:5432/test
  - name: shop
    dialect: mysql
    upstream: mysql://root@127.0.0.1:3306/test
identities:
  tokens:
    - { subject: ${ALICE.subject}, kind: human, groups: [readers], token: ${ALICE.token} }
policy:
  rules:
    - { name: readers, identities: { groups: [readers] }, operations: [read, session-setting, transaction], effect: allow }
lineage:
  enabled: false
telemetry:
  enabled: false
audit:
  dir: ./audit
  groupCommitMs: 5
${tlsYaml}
`,
  );
  let logged = '';
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      logged += chunk.toString();
      done();
    },
  });
  const gateway = await startGateway(loadConfig(file, dialects), pino({ level: 'debug' }, sink));
  const port = (d: string) => gateway.addresses.find((a) => a.dialect === d)!.port;
  const auditDir = join(dir, 'audit');
  return {
    dir,
    gateway,
    pgPort: port('postgres'),
    myPort: port('mysql'),
    logs: () => logged,
    async waitForAudit(match, what) {
      const deadline = Date.now() + 10_000;
      for (;;) {
        const records: AuditRecord[] = [];
        for await (const r of readAuditRecords(auditDir)) records.push(r);
        const found = records.find(match);
        if (found) return found;
        if (Date.now() > deadline) throw new Error(`no audit record ${what} within 10 s; records: ${JSON.stringify(records.filter((r) => r.type === 'connect'))}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async close() {
      await gateway.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const pgConnect = async (port: number, ssl: pg.ClientConfig['ssl']) => {
  const c = new pg.Client({ host: '127.0.0.1', port, user: ALICE.subject, password: ALICE.token, database: 'app', ssl, connectionTimeoutMillis: 10_000 });
  c.on('error', () => undefined);
  await c.connect();
  return c;
};

const pgError = async (port: number, ssl: pg.ClientConfig['ssl']) => {
  try {
    const c = await pgConnect(port, ssl);
    await c.end();
  } catch (err) {
    return err as Error & { code?: string };
  }
  throw new Error('the PostgreSQL login was expected to be refused, but it succeeded');
};

const myConnect = async (port: number, ssl: mysql.ConnectionOptions['ssl']) => {
  const c = await mysql.createConnection({
    host: '127.0.0.1',
    port,
    user: ALICE.subject,
    password: ALICE.token,
    database: 'shop',
    connectTimeout: 10_000,
    ...(ssl !== undefined ? { ssl } : {}),
    authPlugins: { mysql_clear_password: () => () => Buffer.from(`${ALICE.token}\0`) },
  });
  c.on('error', () => undefined);
  return c;
};

const myError = async (port: number, ssl: mysql.ConnectionOptions['ssl']) => {
  try {
    const c = await myConnect(port, ssl);
    await c.end();
  } catch (err) {
    return err as Error & { errno?: number; sqlState?: string };
  }
  throw new Error('the MySQL login was expected to be refused, but it succeeded');
};

const psqlArgs = (port: number, extra: string) => [
  `host=127.0.0.1 port=${port} dbname=app user=${ALICE.subject} ${extra}`,
  '-X', '-At', '-v', 'ON_ERROR_STOP=1', '-c', 'SELECT 6 * 7',
];
const psqlEnv = { PGPASSWORD: ALICE.token, PGCONNECT_TIMEOUT: '10' };
const mysqlArgs = (port: number, extra: readonly string[]) => [
  '--no-defaults', '-h', '127.0.0.1', '-P', String(port), '-u', ALICE.subject, `-p${ALICE.token}`, ...extra, '-N', '-e', 'SELECT 6 * 7', 'shop',
];

let ca: TestCertAuthority;
let otherCa: TestCertAuthority;
let server: IssuedCert;
let client: IssuedCert;
let stranger: IssuedCert;
let expired: IssuedCert;

beforeAll(() => {
  ca = makeCertAuthority('Sluice Clients CA');
  otherCa = makeCertAuthority('Some Other CA');
  server = ca.issueServer();
  client = ca.issueClient('etl-runner');
  stranger = otherCa.issueClient('stranger');
  expired = ca.issueClient('old-runner', { expired: true });
  // libpq refuses a private key others can read.
  for (const c of [client, stranger, expired]) chmodSync(c.keyFile, 0o600);
});

afterAll(() => {
  for (const d of [ca?.dir, otherCa?.dir]) if (d) rmSync(d, { recursive: true, force: true });
});

describe('listenTls: configuration', () => {
  const base = (rest: string, listen = '  postgres: 127.0.0.1:6432\n') => `listen:
${listen}targets:
  - { name: app, dialect: postgres, upstream: 'postgres://postgres@127.0.0.1:5432/test' }
identities:
  tokens: []
${rest}`;
  const problems = (text: string): string => {
    try {
      parseConfig(text, '/tmp/sluice-tls-test.yaml', dialects);
    } catch (err) {
      if (err instanceof ConfigError) return err.problems.join('\n');
      throw err;
    }
    return '';
  };

  it('an old config with one global tls block keeps working and applies to every listener', () => {
    const { config } = parseConfig(base('tls: { certFile: c.pem, keyFile: k.pem, require: true }'), '/etc/sluice/sluice.yaml', dialects);
    expect(listenerTlsOf(config, 'postgres')).toMatchObject({ certFile: '/etc/sluice/c.pem', keyFile: '/etc/sluice/k.pem', require: true, requireClientCert: false });
    expect(listenerTlsOf(config, 'postgres')?.clientCaFile).toBeUndefined();
  });

  it('a listener block overrides the defaults field by field; a client CA requires a certificate (and TLS) unless told otherwise', () => {
    const { config } = parseConfig(
      base(
        `tls: { certFile: c.pem, keyFile: k.pem }
listenTls:
  postgres: { clientCaFile: ca.pem }
  mysql: { certFile: /srv/my.pem, keyFile: /srv/my-key.pem, clientCaFile: ca.pem, requireClientCert: false }
`,
        '  postgres: 127.0.0.1:6432\n  mysql: 127.0.0.1:3307\n',
      ),
      '/etc/sluice/sluice.yaml',
      dialects,
    );
    expect(listenerTlsOf(config, 'postgres')).toMatchObject({ certFile: '/etc/sluice/c.pem', require: true, clientCaFile: '/etc/sluice/ca.pem', requireClientCert: true });
    expect(listenerTlsOf(config, 'mysql')).toMatchObject({ certFile: '/srv/my.pem', keyFile: '/srv/my-key.pem', require: false, requireClientCert: false });
  });

  it('explains a block for a listener that does not exist, a missing certificate, a lone certFile and requireClientCert without a CA', () => {
    expect(problems(base('listenTls:\n  mysql: { require: true }\n'))).toMatch(/listenTls\.mysql: there is no mysql listener \(listen\.mysql is not set\): add the listener or remove listenTls\.mysql/);
    expect(problems(base('listenTls:\n  postgres: { require: true }\n'))).toMatch(/listenTls\.postgres: the postgres listener needs a server certificate for TLS: set certFile and keyFile here or in tls/);
    expect(problems(base('listenTls:\n  postgres: { certFile: c.pem }\n'))).toMatch(/listenTls\.postgres: set certFile and keyFile together/);
    expect(problems(base('tls: { certFile: c.pem, keyFile: k.pem }\nlistenTls:\n  postgres: { requireClientCert: true }\n'))).toMatch(
      /listenTls\.postgres\.requireClientCert: requireClientCert needs clientCaFile/,
    );
    expect(problems(base('tls: { certFile: c.pem, keyFile: k.pem, requireClientCert: true }\n'))).toMatch(/tls\.requireClientCert: requireClientCert needs clientCaFile/);
    expect(problems(base('listenTls:\n  postgres: { require: true, sslmode: on }\n'))).toMatch(/listenTls\.postgres: unknown key "sslmode"/);
    // An empty path would name the config file's directory: refused here, not at start with EISDIR.
    expect(problems(base("tls: { certFile: '', keyFile: k.pem }\n"))).toMatch(/tls\.certFile: /);
    expect(problems(base("tls: { certFile: c.pem, keyFile: '' }\n"))).toMatch(/tls\.keyFile: /);
    expect(problems(base("tls: { certFile: c.pem, keyFile: k.pem }\nlistenTls:\n  postgres: { clientCaFile: '' }\n"))).toMatch(/listenTls\.postgres\.clientCaFile: /);
  });

  it('a client CA file that holds no certificate stops the start, naming the key', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-tls-bad-'));
    try {
      writeFileSync(join(dir, 'ca.pem'), 'not a certificate\n');
      const file = join(dir, 'sluice.yaml');
      writeFileSync(
        file,
        base(`tls: { certFile: ${server.certFile}, keyFile: ${server.keyFile} }\nlistenTls:\n  postgres: { clientCaFile: ./ca.pem }\naudit: { dir: ./audit }\nlineage: { enabled: false }\ntelemetry: { enabled: false }\n`).replace(
          '127.0.0.1:6432',
          '127.0.0.1:0',
        ),
      );
      const started = startGateway(loadConfig(file, dialects), pino({ level: 'silent' }));
      await expect(started).rejects.toBeInstanceOf(StartupError);
      await expect(started).rejects.toThrow(/the client CA file .*ca\.pem \(listenTls\.postgres\.clientCaFile\) holds no PEM certificate/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe.runIf(pgUp && myUp)('TLS required on one listener, not on the other', () => {
  let pgRequired: Gw;
  let myRequired: Gw;
  beforeAll(async () => {
    pgRequired = await startWith(`tls: { certFile: ${server.certFile}, keyFile: ${server.keyFile} }\nlistenTls:\n  postgres: { require: true }\n`);
    myRequired = await startWith(`tls: { certFile: ${server.certFile}, keyFile: ${server.keyFile} }\nlistenTls:\n  mysql: { require: true }\n`);
  }, 60_000);
  afterAll(async () => {
    await pgRequired?.close();
    await myRequired?.close();
  });

  it('PostgreSQL: the listener with require refuses a plaintext client with the usual message; the other one accepts it', async () => {
    const err = await pgError(pgRequired.pgPort, false);
    expect(err.code).toBe('28P01');
    expect(err.message).toMatch(/this gateway requires TLS; connect with sslmode=require/);
    await pgRequired.waitForAudit((r) => r.type === 'connect' && r.outcome === 'refused' && /requires TLS/.test(r.reason ?? ''), 'of the refused plaintext login');
    const psqlPlain = await run('psql', psqlArgs(pgRequired.pgPort, 'sslmode=disable'), psqlEnv);
    expect(psqlPlain.code).not.toBe(0);
    expect(psqlPlain.stderr).toMatch(/this gateway requires TLS/);
    const tlsOk = await pgConnect(pgRequired.pgPort, { ca: ca.caCert.toString() });
    expect((await tlsOk.query('SELECT 1 AS x')).rows[0].x).toBe(1);
    await tlsOk.end();

    const plain = await pgConnect(myRequired.pgPort, false);
    expect((await plain.query('SELECT 2 AS x')).rows[0].x).toBe(2);
    await plain.end();
    const accepted = await myRequired.waitForAudit((r) => r.type === 'connect' && r.outcome === 'accepted' && r.dialect === 'postgres', 'of the plaintext login');
    expect(accepted).toMatchObject({ tls: false });
  }, 60_000);

  it('MySQL: the listener with require refuses a plaintext client at the handshake with 1045; the other one accepts it', async () => {
    const err = await myError(myRequired.myPort, undefined);
    expect(err).toMatchObject({ errno: 1045, sqlState: '28000' });
    expect(err.message).toMatch(/this gateway requires TLS/);
    const cli = await run('mysql', mysqlArgs(myRequired.myPort, ['--skip-ssl']));
    expect(cli.code).toBe(1);
    expect(cli.stderr).toMatch(/ERROR 1045 \(28000\).*this gateway requires TLS/);
    await myRequired.waitForAudit((r) => r.type === 'connect' && r.dialect === 'mysql' && r.outcome === 'refused' && /requires TLS/.test(r.reason ?? ''), 'of the refused plaintext login');
    const tlsOk = await myConnect(myRequired.myPort, { ca: ca.caCert.toString() });
    const [rows] = await tlsOk.query('SELECT 1 AS x');
    expect(rows).toEqual([{ x: 1 }]);
    await tlsOk.end();

    const plain = await myConnect(pgRequired.myPort, undefined);
    const [plainRows] = await plain.query('SELECT 2 AS x');
    expect(plainRows).toEqual([{ x: 2 }]);
    await plain.end();
  }, 60_000);
});

describe.runIf(pgUp && myUp)('mutual TLS: client certificates signed by the configured CA', () => {
  let gw: Gw;
  beforeAll(async () => {
    gw = await startWith(`tls: { certFile: ${server.certFile}, keyFile: ${server.keyFile} }
listenTls:
  postgres: { clientCaFile: ${ca.caFile} }
  mysql: { clientCaFile: ${ca.caFile} }
`);
  }, 60_000);
  afterAll(async () => gw?.close());

  const refusedWith = (dialect: string, reason: RegExp) =>
    gw.waitForAudit((r) => r.type === 'connect' && r.dialect === dialect && r.outcome === 'refused' && reason.test(r.reason ?? ''), `refusing ${dialect} with ${reason}`);

  it('pg with a valid client certificate logs in with its token; the connect record names the certificate', async () => {
    const c = await pgConnect(gw.pgPort, { ca: ca.caCert.toString(), cert: client.cert.toString(), key: client.key.toString() });
    expect((await c.query('SELECT 6 * 7 AS x')).rows[0].x).toBe(42);
    await c.end();
    const accepted = await gw.waitForAudit((r) => r.type === 'connect' && r.dialect === 'postgres' && r.outcome === 'accepted', 'of the accepted login');
    expect(accepted).toMatchObject({ tls: true, actor: { subject: ALICE.subject }, clientCert: { subject: 'etl-runner', fingerprint256: expect.stringMatching(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/) } });
  }, 60_000);

  it('a valid certificate is not enough: a wrong token is still refused', async () => {
    const err = await (async () => {
      const c = new pg.Client({ host: '127.0.0.1', port: gw.pgPort, user: ALICE.subject, password: 'not-the-token', database: 'app', ssl: { ca: ca.caCert.toString(), cert: client.cert.toString(), key: client.key.toString() } });
      c.on('error', () => undefined);
      try {
        await c.connect();
        await c.end();
        return undefined;
      } catch (e) {
        return e as Error & { code?: string };
      }
    })();
    expect(err?.code).toBe('28P01');
  }, 60_000);

  it('pg without a certificate, with one from another CA and with an expired one is refused natively, audited and logged', async () => {
    const none = await pgError(gw.pgPort, { ca: ca.caCert.toString() });
    expect(none.code).toBe('28P01');
    expect(none.message).toMatch(/no client certificate was presented/);
    await refusedWith('postgres', /no client certificate was presented/);

    const foreign = await pgError(gw.pgPort, { ca: ca.caCert.toString(), cert: stranger.cert.toString(), key: stranger.key.toString() });
    expect(foreign.message).toMatch(/the client certificate "stranger" is not signed by the configured client CA/);
    await refusedWith('postgres', /"stranger" is not signed by the configured client CA/);

    const old = await pgError(gw.pgPort, { ca: ca.caCert.toString(), cert: expired.cert.toString(), key: expired.key.toString() });
    expect(old.message).toMatch(/the client certificate "old-runner" has expired/);
    await refusedWith('postgres', /"old-runner" has expired/);

    const plain = await pgError(gw.pgPort, false);
    expect(plain.message).toMatch(/this gateway requires TLS/);
    expect(gw.logs()).toMatch(/"reason":"no client certificate was presented[^"]*","msg":"client certificate refused"/);
    expect(gw.logs()).not.toContain(ALICE.token);
  }, 60_000);

  it('psql with sslmode=verify-ca and a client certificate connects; without one or with a foreign one it is refused', async () => {
    const ok = await run('psql', psqlArgs(gw.pgPort, `sslmode=verify-ca sslrootcert=${ca.caFile} sslcert=${client.certFile} sslkey=${client.keyFile}`), psqlEnv);
    expect(ok).toMatchObject({ code: 0, stdout: '42\n' });
    const none = await run('psql', psqlArgs(gw.pgPort, `sslmode=verify-ca sslrootcert=${ca.caFile} sslcert=${join(gw.dir, 'absent.crt')} sslkey=${join(gw.dir, 'absent.key')}`), psqlEnv);
    expect(none.code).not.toBe(0);
    expect(none.stderr).toMatch(/no client certificate was presented/);
    const foreign = await run('psql', psqlArgs(gw.pgPort, `sslmode=verify-ca sslrootcert=${ca.caFile} sslcert=${stranger.certFile} sslkey=${stranger.keyFile}`), psqlEnv);
    expect(foreign.code).not.toBe(0);
    expect(foreign.stderr).toMatch(/not signed by the configured client CA/);
  }, 60_000);

  it('mysql2 with a valid client certificate logs in; without one or with a foreign one it is refused with 1045 and audited', async () => {
    const c = await myConnect(gw.myPort, { ca: ca.caCert.toString(), cert: client.cert.toString(), key: client.key.toString() });
    const [rows] = await c.query('SELECT 6 * 7 AS x');
    expect(rows).toEqual([{ x: 42 }]);
    await c.end();
    const accepted = await gw.waitForAudit((r) => r.type === 'connect' && r.dialect === 'mysql' && r.outcome === 'accepted', 'of the accepted MySQL login');
    expect(accepted).toMatchObject({ tls: true, clientCert: { subject: 'etl-runner' } });

    const none = await myError(gw.myPort, { ca: ca.caCert.toString() });
    expect(none).toMatchObject({ errno: 1045, sqlState: '28000' });
    expect(none.message).toMatch(/no client certificate was presented/);
    await refusedWith('mysql', /no client certificate was presented/);

    const foreign = await myError(gw.myPort, { ca: ca.caCert.toString(), cert: stranger.cert.toString(), key: stranger.key.toString() });
    expect(foreign.message).toMatch(/"stranger" is not signed by the configured client CA/);
    await refusedWith('mysql', /"stranger" is not signed/);

    const old = await myError(gw.myPort, { ca: ca.caCert.toString(), cert: expired.cert.toString(), key: expired.key.toString() });
    expect(old.message).toMatch(/"old-runner" has expired/);
    await refusedWith('mysql', /"old-runner" has expired/);
  }, 60_000);

  it('the mysql CLI with --ssl-cert/--ssl-key/--ssl-ca connects; without a certificate or with a foreign one it gets 1045', async () => {
    const ok = await run('mysql', mysqlArgs(gw.myPort, [`--ssl-ca=${ca.caFile}`, `--ssl-cert=${client.certFile}`, `--ssl-key=${client.keyFile}`]));
    expect(ok).toMatchObject({ code: 0, stdout: '42\n' });
    const none = await run('mysql', mysqlArgs(gw.myPort, [`--ssl-ca=${ca.caFile}`]));
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/ERROR 1045 \(28000\).*no client certificate was presented/);
    const foreign = await run('mysql', mysqlArgs(gw.myPort, [`--ssl-ca=${ca.caFile}`, `--ssl-cert=${stranger.certFile}`, `--ssl-key=${stranger.keyFile}`]));
    expect(foreign.code).toBe(1);
    expect(foreign.stderr).toMatch(/ERROR 1045 \(28000\).*not signed by the configured client CA/);
  }, 60_000);
});

describe.runIf(pgUp && myUp)('mutual TLS with requireClientCert: false', () => {
  let gw: Gw;
  beforeAll(async () => {
    gw = await startWith(`tls: { certFile: ${server.certFile}, keyFile: ${server.keyFile}, clientCaFile: ${ca.caFile}, requireClientCert: false }\n`);
  }, 60_000);
  afterAll(async () => gw?.close());

  it('a client without a certificate logs in (no clientCert on its record); a foreign certificate is still refused', async () => {
    const bare = await pgConnect(gw.pgPort, { ca: ca.caCert.toString() });
    expect((await bare.query('SELECT 1 AS x')).rows[0].x).toBe(1);
    await bare.end();
    const accepted = await gw.waitForAudit((r) => r.type === 'connect' && r.dialect === 'postgres' && r.outcome === 'accepted', 'of the login without a certificate');
    expect(accepted).toMatchObject({ tls: true });
    expect(accepted).not.toHaveProperty('clientCert');
    const plain = await myConnect(gw.myPort, undefined);
    await plain.end();

    const foreign = await pgError(gw.pgPort, { ca: ca.caCert.toString(), cert: stranger.cert.toString(), key: stranger.key.toString() });
    expect(foreign.message).toMatch(/"stranger" is not signed by the configured client CA/);
    const foreignMy = await myError(gw.myPort, { ca: ca.caCert.toString(), cert: stranger.cert.toString(), key: stranger.key.toString() });
    expect(foreignMy).toMatchObject({ errno: 1045 });
    await gw.waitForAudit((r) => r.type === 'connect' && r.dialect === 'mysql' && r.outcome === 'refused' && /"stranger" is not signed/.test(r.reason ?? ''), 'of the refused foreign certificate');
  }, 60_000);
});
