/**
 * Secrets never reach what the gateway writes. The built gateway runs as a child process at log
 * level trace and is driven through scenarios that use every kind of secret it handles: static
 * tokens (right and wrong), OIDC JWTs (right, expired, wrong signature), upstream database
 * passwords (right, wrong, unreachable server) for PostgreSQL and MariaDB, the webhook secret,
 * the OpenLineage API key, the masking hash key, admin API tokens and the TLS private key.
 * Then everything it wrote (log output, audit files, approvals journal, lineage store,
 * OpenLineage file and queue, `sluice audit tail`) is scanned for each secret as is and
 * base64 / base64url / hex encoded, and for JWT signatures.
 */
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { makeCertAuthority, eventually, requireService, startOidcIssuer, startTempPostgres, type OidcIssuer, type TempPostgres, type TestCertAuthority } from '@sluice/testkit';
import Database from 'better-sqlite3';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, freePort, startCli, type RunningCli } from './helpers.js';

// ------------------------------------------------------------------ the scanner

interface Secret {
  /** What kind of secret it is, for the failure message. */
  readonly kind: string;
  readonly value: string;
}

interface Finding {
  readonly file: string;
  readonly kind: string;
  readonly encoding: string;
}

/** The forms a secret may take in output: as is, base64, base64url and hex of its bytes. */
function formsOf(secret: Secret): { encoding: string; text: string }[] {
  const bytes = Buffer.from(secret.value, 'utf8');
  const forms = [
    { encoding: 'as is', text: secret.value },
    { encoding: 'base64', text: bytes.toString('base64').replace(/=+$/, '') },
    { encoding: 'base64url', text: bytes.toString('base64url') },
    { encoding: 'hex', text: bytes.toString('hex') },
    { encoding: 'HEX', text: bytes.toString('hex').toUpperCase() },
  ];
  // Encoded forms of very short values would match by chance; every secret here is long.
  return forms.filter((f, i) => forms.findIndex((g) => g.text === f.text) === i && f.text.length >= 12);
}

/** Every place in `outputs` (name to content) where a secret appears in one of its forms. */
function scan(outputs: ReadonlyMap<string, Buffer | string>, secrets: readonly Secret[]): Finding[] {
  const findings: Finding[] = [];
  for (const [file, content] of outputs) {
    const text = typeof content === 'string' ? content : content.toString('latin1');
    // SQLite and other binary files may hold UTF-8 text; latin1 keeps every byte as one character.
    const utf8 = typeof content === 'string' ? content : content.toString('utf8');
    for (const secret of secrets) {
      for (const form of formsOf(secret)) {
        const needleLatin1 = Buffer.from(form.text, 'utf8').toString('latin1');
        if (text.includes(needleLatin1) || utf8.includes(form.text)) findings.push({ file, kind: secret.kind, encoding: form.encoding });
      }
    }
  }
  return findings;
}

/** Every regular file under `dir` (recursively), except those `skip` names. */
function filesUnder(dir: string, skip: (path: string) => boolean): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (skip(path)) continue;
    const st = statSync(path);
    if (st.isDirectory()) out.push(...filesUnder(path, skip));
    else if (st.isFile()) out.push(path);
  }
  return out;
}

// ------------------------------------------------------------------ helpers

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command without blocking this process (the OIDC issuer and the HTTP sinks run here). */
function run(cmd: string, args: readonly string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 60_000): Promise<Run> {
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

/** An HTTP server that records the requests it gets (webhook, OpenLineage API). */
interface Sink {
  readonly url: string;
  readonly requests: { path: string; headers: IncomingMessage['headers']; body: string }[];
  close(): Promise<void>;
}

async function startSink(): Promise<Sink> {
  const requests: Sink['requests'] = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8').on('data', (d: string) => (body += d));
    req.on('end', () => {
      requests.push({ path: req.url ?? '', headers: req.headers, body });
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

const errorOf = async (p: Promise<unknown>): Promise<Error & { code?: string; errno?: number }> => {
  try {
    await p;
  } catch (err) {
    return err as Error & { code?: string; errno?: number };
  }
  throw new Error('expected a refusal, but the call succeeded');
};

// ------------------------------------------------------------------ the secrets of this test

const stamp = `${process.pid}${Date.now().toString(36)}`;
const ALICE_TOKEN = `alice-static-token-${stamp}-Zq7`;
const BOB_TOKEN = `bob-approver-token-${stamp}-Kp3`;
const WRONG_TOKEN = `wrong-static-token-${stamp}-Xy9`;
const PG_PASSWORD = `pg-upstream-pass-${stamp}-Vb2`;
const PG_WRONG_PASSWORD = `pg-wrong-pass-${stamp}-Lm4`;
const PG_UNREACHABLE_PASSWORD = `pg-unreachable-pass-${stamp}-Qr8`;
const MY_PASSWORD = `my-upstream-pass-${stamp}-Ws5`;
const MY_WRONG_PASSWORD = `my-wrong-pass-${stamp}-Tn6`;
const MY_UNREACHABLE_PASSWORD = `my-unreachable-pass-${stamp}-Jh1`;
const WEBHOOK_SECRET = `webhook-hmac-secret-${stamp}-Gd0`;
const OPENLINEAGE_KEY = `openlineage-api-key-${stamp}-Fc3`;
const HASH_KEY = `masking-hash-key-${stamp}-Ry7`;
const LINEAGE_STORE_PASSWORD = `lineage-store-pass-${stamp}-Pe2`;
const CONFIG_ERROR_PASSWORD = `config-error-pass-${stamp}-Uo4`;
const MY_USER = `sluice_sec_${process.pid}`;
const TABLE = 'sluice_secrets_customers';
const MY_TABLE = `sluice_secrets_orders_${process.pid}`;

const pgUp = await requireService('PostgreSQL', '127.0.0.1', 5432);
const myUp = await requireService('MariaDB', '127.0.0.1', 3306);
const mysqlRoot = (sql: string) => run('mysql', ['--no-defaults', '-h', '127.0.0.1', '-P', '3306', '-u', 'root', 'test', '-e', sql]);

describe('the scanner', () => {
  it('finds a planted secret in every form it looks for, and names the file and the kind', () => {
    // Chosen so that its base64 and base64url differ ('+' and '-').
    const planted: Secret = { kind: 'webhook secret', value: 'planted?secret>value~0123456789' };
    const bytes = Buffer.from(planted.value);
    const outputs = new Map<string, string | Buffer>([
      ['clean.log', '{"msg":"nothing to see"}\n'],
      ['plain.log', `{"msg":"oops ${planted.value}"}\n`],
      ['b64.jsonl', `{"x":"${bytes.toString('base64')}"}\n`],
      ['b64url.jsonl', `{"x":"${bytes.toString('base64url')}"}\n`],
      ['hex.db', Buffer.concat([Buffer.from([0, 1, 2]), Buffer.from(bytes.toString('hex')), Buffer.from([0xff])])],
    ]);
    const findings = scan(outputs, [planted]);
    expect(findings.map((f) => `${f.file}: ${f.kind} (${f.encoding})`).sort()).toEqual([
      'b64.jsonl: webhook secret (base64)',
      'b64url.jsonl: webhook secret (base64url)',
      'hex.db: webhook secret (hex)',
      'plain.log: webhook secret (as is)',
    ]);
  });
});

describe.runIf(pgUp && myUp)('secrets never reach logs, audit or stores (built gateway at log level trace)', () => {
  let dir: string;
  let config: string;
  let gateway: RunningCli | undefined;
  let temp: TempPostgres;
  let issuer: OidcIssuer;
  let webhook: Sink;
  let openlineage: Sink;
  let ca: TestCertAuthority;
  let serverKey: string;
  let pgPort: number;
  let myPort: number;
  let adminPort: number;
  const jwts: Secret[] = [];
  const scenarios: string[] = [];

  beforeAll(async () => {
    expect(existsSync(CLI), `the gateway is not built (${CLI}); run pnpm build`).toBe(true);
    dir = mkdtempSync(join(tmpdir(), 'sluice-secrets-'));
    ca = makeCertAuthority('Sluice Secrets Test CA');
    const server = ca.issueServer();
    serverKey = server.key.toString('utf8');
    issuer = await startOidcIssuer({ audience: 'sluice' });
    webhook = await startSink();
    openlineage = await startSink();
    // A PostgreSQL that checks passwords (the shared one trusts every local login).
    temp = await startTempPostgres({ auth: 'scram-sha-256', users: [{ name: 'sec_app', password: PG_PASSWORD }] });
    await temp.psql(
      `CREATE DATABASE app_db OWNER sec_app;`,
    );
    await temp.psql(
      `CREATE TABLE ${TABLE} (id int PRIMARY KEY, email text, full_name text); INSERT INTO ${TABLE} VALUES (1, 'ann@example.com', 'Ann Example'); ALTER TABLE ${TABLE} OWNER TO sec_app;`,
      'app_db',
    );
    const my = await mysqlRoot(
      `DROP USER IF EXISTS '${MY_USER}'@'%'; CREATE USER '${MY_USER}'@'%' IDENTIFIED BY '${MY_PASSWORD}'; ` +
        `DROP USER IF EXISTS '${MY_USER}'@'localhost'; CREATE USER '${MY_USER}'@'localhost' IDENTIFIED BY '${MY_PASSWORD}'; ` +
        `GRANT ALL ON test.* TO '${MY_USER}'@'%'; GRANT ALL ON test.* TO '${MY_USER}'@'localhost'; ` +
        `DROP TABLE IF EXISTS ${MY_TABLE}; CREATE TABLE ${MY_TABLE} (id int PRIMARY KEY, note text); INSERT INTO ${MY_TABLE} VALUES (1, 'first');`,
    );
    expect(my.stderr).toBe('');
    [pgPort, myPort, adminPort] = [await freePort(), await freePort(), await freePort()];
    const closedPort = await freePort();
    config = join(dir, 'sluice.yaml');
    writeFileSync(
      config,
      `listen:
  postgres: 127.0.0.1:${pgPort}
  mysql: 127.0.0.1:${myPort}
admin: 127.0.0.1:${adminPort}
tls: { certFile: ${server.certFile}, keyFile: ${server.keyFile} }
allowPlaintextLoopback: true
targets:
  - { name: app, dialect: postgres, upstream: "postgres://sec_app:${PG_PASSWORD}@127.0.0.1:${temp.port}/app_db" }
  - { name: badpg, dialect: postgres, upstream: "postgres://sec_app:${PG_WRONG_PASSWORD}@127.0.0.1:${temp.port}/app_db" }
  - { name: downpg, dialect: postgres, upstream: "postgres://sec_app:${PG_UNREACHABLE_PASSWORD}@127.0.0.1:${closedPort}/app_db", connectTimeoutMs: 3000 }
  - { name: shop, dialect: mysql, upstream: "mysql://${MY_USER}:${MY_PASSWORD}@127.0.0.1:3306/test" }
  - { name: badmy, dialect: mysql, upstream: "mysql://${MY_USER}:${MY_WRONG_PASSWORD}@127.0.0.1:3306/test" }
  - { name: downmy, dialect: mysql, upstream: "mysql://${MY_USER}:${MY_UNREACHABLE_PASSWORD}@127.0.0.1:${closedPort}/test" }
identities:
  tokens:
    - { subject: alice@example.com, kind: human, groups: [analysts], token: ${ALICE_TOKEN} }
    - { subject: bob@example.com, kind: human, groups: [dba], token: ${BOB_TOKEN} }
  oidc:
    - { issuer: ${issuer.issuer}, audience: sluice, usernameClaim: email, groupsClaim: groups }
policy:
  default: deny
  rules:
    - { name: analysts-read, identities: { groups: [analysts] }, operations: [read, transaction, session-setting], effect: allow }
    - { name: analysts-write, identities: { groups: [analysts] }, operations: [write], effect: review }
approvals:
  timeoutSeconds: 60
  approvers: { groups: [dba] }
  notify:
    - { webhook: ${webhook.url}/hook, secret: ${WEBHOOK_SECRET} }
masking:
  hashKey: ${HASH_KEY}
  columns:
    - { column: "*.${TABLE}.full_name", strategy: hash }
    - { column: "*.${TABLE}.email", strategy: partial }
lineage:
  enabled: true
  flushIntervalMs: 100
  openlineage:
    url: ${openlineage.url}
    apiKeyEnv: SECRETS_TEST_OL_KEY
    file: ./openlineage.jsonl
telemetry:
  enabled: false
log:
  level: trace
`,
    );
    gateway = startCli(['start', '--config', config], { SECRETS_TEST_OL_KEY: OPENLINEAGE_KEY, OTEL_TRACES_EXPORTER: 'none', OTEL_METRICS_EXPORTER: 'none' }, dir);
    await gateway.waitFor(/listening on postgres/, 60_000);
  }, 180_000);

  afterAll(async () => {
    await gateway?.stop();
    await issuer?.close();
    await webhook?.close();
    await openlineage?.close();
    await temp?.stop();
    if (myUp) await mysqlRoot(`DROP TABLE IF EXISTS ${MY_TABLE}; DROP USER IF EXISTS '${MY_USER}'@'%'; DROP USER IF EXISTS '${MY_USER}'@'localhost';`);
    if (dir) rmSync(dir, { recursive: true, force: true });
    if (ca) rmSync(ca.dir, { recursive: true, force: true });
  }, 60_000);

  const pgClient = (user: string, password: string, database = 'app', ssl: pg.ClientConfig['ssl'] = false) => {
    const c = new pg.Client({ host: '127.0.0.1', port: pgPort, user, password, database, ssl, connectionTimeoutMillis: 20_000 });
    c.on('error', () => undefined);
    return c;
  };
  const myClient = (user: string, password: string, database: string) =>
    mysql.createConnection({
      host: '127.0.0.1',
      port: myPort,
      user,
      password,
      database,
      connectTimeout: 20_000,
      authPlugins: { mysql_clear_password: () => () => Buffer.from(`${password}\0`) },
    });

  it('static tokens (right and wrong) on both dialects, over TLS and not; masking with the hash key', async () => {
    const c = pgClient('alice@example.com', ALICE_TOKEN, 'app', { ca: ca.caCert.toString() });
    await c.connect();
    const { rows } = await c.query(`SELECT id, email, full_name FROM ${TABLE}`);
    expect(rows[0].full_name).not.toBe('Ann Example');
    expect(rows[0].email).not.toBe('ann@example.com');
    await c.end();
    expect((await errorOf(pgClient('alice@example.com', WRONG_TOKEN).connect())).code).toBe('28P01');
    const m = await myClient('alice@example.com', ALICE_TOKEN, 'shop');
    const [myRows] = await m.query(`SELECT note FROM ${MY_TABLE}`);
    expect(myRows).toEqual([{ note: 'first' }]);
    await m.end();
    expect((await errorOf(myClient('alice@example.com', WRONG_TOKEN, 'shop'))).errno).toBe(1045);
    scenarios.push('static tokens right/wrong (pg over TLS, mysql2)', 'masking hash and partial');
  }, 60_000);

  it('OIDC JWTs: right, expired, wrong signature', async () => {
    const good = await issuer.sign({ sub: 'u-7', email: 'dana@example.com', groups: ['analysts'] }, { expiresIn: 300 });
    const expired = await issuer.sign({ sub: 'u-7', email: 'dana@example.com', groups: ['analysts'] }, { expiresIn: -120 });
    const forged = await issuer.sign({ sub: 'u-7', email: 'dana@example.com', groups: ['analysts'] }, { expiresIn: 300, wrongKey: true });
    for (const [name, jwt] of [['JWT (valid)', good], ['JWT (expired)', expired], ['JWT (wrong signature)', forged]] as const) {
      jwts.push({ kind: name, value: jwt }, { kind: `${name} signature`, value: jwt.split('.')[2]! });
    }
    const c = pgClient('dana@example.com', good);
    await c.connect();
    expect((await c.query('SELECT 1 AS x')).rows[0].x).toBe(1);
    await c.end();
    expect((await errorOf(pgClient('dana@example.com', expired).connect())).message).toMatch(/expired/);
    expect((await errorOf(pgClient('dana@example.com', forged).connect())).message).toMatch(/signature/);
    const m = await myClient('dana@example.com', good, 'shop');
    await m.end();
    scenarios.push('OIDC JWT valid/expired/forged');
  }, 60_000);

  it('upstream passwords: a wrong one and an unreachable server are refused without echoing them', async () => {
    const bad = await errorOf(pgClient('alice@example.com', ALICE_TOKEN, 'badpg').connect());
    expect(bad.message).toMatch(/badpg/);
    const down = await errorOf(pgClient('alice@example.com', ALICE_TOKEN, 'downpg').connect());
    expect(down.message).toMatch(/downpg/);
    const badMy = await errorOf(myClient('alice@example.com', ALICE_TOKEN, 'badmy'));
    expect(badMy.message).toMatch(/badmy/);
    const downMy = await errorOf(myClient('alice@example.com', ALICE_TOKEN, 'downmy'));
    expect(downMy.message).toMatch(/downmy/);
    scenarios.push('upstream password right/wrong/unreachable (PostgreSQL, MariaDB)');
  }, 60_000);

  it('a write held for review: the webhook is signed with its secret; an approver decides on the admin API', async () => {
    const c = pgClient('alice@example.com', ALICE_TOKEN);
    await c.connect();
    const held = c.query(`UPDATE ${TABLE} SET email = email WHERE id = 1`);
    held.catch(() => undefined);
    const admin = `http://127.0.0.1:${adminPort}`;
    const refused = await fetch(`${admin}/v1/approvals?status=pending`, { headers: { authorization: `Bearer ${WRONG_TOKEN}` } });
    expect(refused.status).toBe(401);
    const id = await eventually('the pending request', async () => {
      const r = await fetch(`${admin}/v1/approvals?status=pending`, { headers: { authorization: `Bearer ${BOB_TOKEN}` } });
      const body = (await r.json()) as { approvals: { id: string }[] };
      return body.approvals[0]?.id;
    });
    const decided = await fetch(`${admin}/v1/approvals/${id}/approve`, {
      method: 'POST',
      headers: { authorization: `Bearer ${BOB_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ reason: 'fine' }),
    });
    expect(decided.status).toBe(200);
    expect((await held).rowCount).toBe(1);
    await c.end();
    const hook = await eventually('the signed webhook', () => webhook.requests.find((r) => r.path === '/hook'));
    // The notifier used the secret (the signature verifies) without sending it.
    expect(JSON.stringify(hook)).not.toContain(WEBHOOK_SECRET);
    const signature = String(hook.headers['x-sluice-signature'] ?? '');
    const timestamp = String(hook.headers['x-sluice-timestamp'] ?? '');
    expect(signature).toBe(`sha256=${createHmac('sha256', WEBHOOK_SECRET).update(`${timestamp}.${hook.body}`).digest('hex')}`);
    scenarios.push('review + webhook secret + admin tokens right/wrong');
  }, 90_000);

  it('the OpenLineage API gets the key as a bearer token', async () => {
    const sent = await eventually('an OpenLineage event with the API key', () =>
      openlineage.requests.find((r) => r.headers.authorization === `Bearer ${OPENLINEAGE_KEY}`),
    );
    expect(sent.path).toBe('/api/v1/lineage');
    scenarios.push('OpenLineage API key');
  }, 60_000);

  let startFailures = '';
  it('start failures: an unreachable lineage store and a config error, both with passwords in URLs', async () => {
    const scratch = mkdtempSync(join(tmpdir(), 'sluice-secrets-start-'));
    try {
      const text = readFileSync(config, 'utf8');
      const closed = await freePort();
      const storeDown = join(scratch, 'store-down.yaml');
      writeFileSync(
        storeDown,
        text
          .replace(/^  postgres: 127\.0\.0\.1:\d+$/m, '  postgres: 127.0.0.1:0')
          .replace(/^  mysql: 127\.0\.0\.1:\d+$/m, '  mysql: 127.0.0.1:0')
          .replace(/^admin: .*$/m, '')
          .replace('  flushIntervalMs: 100\n', `  flushIntervalMs: 100\n  store: "postgres://sec_app:${LINEAGE_STORE_PASSWORD}@127.0.0.1:${closed}/lineage"\n`),
      );
      const down = await run(process.execPath, [CLI, 'start', '--config', storeDown], { SECRETS_TEST_OL_KEY: OPENLINEAGE_KEY });
      expect(down.code).not.toBe(0);
      expect(down.stdout + down.stderr).toMatch(/lineage store/);
      const badConfig = join(scratch, 'bad-config.yaml');
      writeFileSync(
        badConfig,
        text.replace(/upstream: "postgres:\/\/sec_app:[^@]+@127\.0\.0\.1:(\d+)\/app_db" \}/, `upstream: "postgres://sec_app:${CONFIG_ERROR_PASSWORD}@127.0.0.1:$1/app_db?sslmode=sometimes" }`),
      );
      expect(readFileSync(badConfig, 'utf8')).toContain(CONFIG_ERROR_PASSWORD);
      const invalid = await run(process.execPath, [CLI, 'start', '--config', badConfig], { SECRETS_TEST_OL_KEY: OPENLINEAGE_KEY });
      expect(invalid.code).not.toBe(0);
      expect(invalid.stdout + invalid.stderr).toMatch(/targets\[0\]/);
      startFailures = [down.stdout, down.stderr, invalid.stdout, invalid.stderr].join('\n');
      scenarios.push('start failures (unreachable lineage store URL with password, invalid target URL with password)');
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  }, 120_000);

  it('nothing the gateway wrote holds any of the secrets, in any encoding', async () => {
    const tail = await run(process.execPath, [CLI, 'audit', 'tail', '--config', config, '-n', '100000', '--json']);
    expect(tail.code, tail.stderr).toBe(0);
    const tailText = await run(process.execPath, [CLI, 'audit', 'tail', '--config', config, '-n', '100000']);
    // Stop the gateway so that every store is flushed and closed before reading.
    const running = gateway!;
    gateway = undefined;
    expect(await running.stop('SIGTERM')).toBe(0);
    const gatewayOutput = running.output();

    const tlsKey = serverKey;
    const keyBody = tlsKey.split('\n').filter((l) => l && !l.startsWith('-----'));
    const secrets: Secret[] = [
      { kind: 'static token (alice)', value: ALICE_TOKEN },
      { kind: 'static token (approver)', value: BOB_TOKEN },
      { kind: 'static token (wrong)', value: WRONG_TOKEN },
      ...jwts,
      { kind: 'PostgreSQL upstream password', value: PG_PASSWORD },
      { kind: 'PostgreSQL upstream password (wrong)', value: PG_WRONG_PASSWORD },
      { kind: 'PostgreSQL upstream password (unreachable)', value: PG_UNREACHABLE_PASSWORD },
      { kind: 'MariaDB upstream password', value: MY_PASSWORD },
      { kind: 'MariaDB upstream password (wrong)', value: MY_WRONG_PASSWORD },
      { kind: 'MariaDB upstream password (unreachable)', value: MY_UNREACHABLE_PASSWORD },
      { kind: 'webhook secret', value: WEBHOOK_SECRET },
      { kind: 'OpenLineage API key', value: OPENLINEAGE_KEY },
      { kind: 'masking hash key', value: HASH_KEY },
      { kind: 'lineage store password', value: LINEAGE_STORE_PASSWORD },
      { kind: 'upstream password in an invalid config', value: CONFIG_ERROR_PASSWORD },
      { kind: 'TLS private key (file)', value: tlsKey },
      { kind: 'TLS private key (base64 body)', value: keyBody.join('') },
      ...keyBody.filter((l) => l.length >= 40).map((l, i) => ({ kind: `TLS private key (line ${i + 1})`, value: l })),
    ];

    const outputs = new Map<string, Buffer | string>();
    outputs.set('gateway log (stdout and stderr)', gatewayOutput);
    outputs.set('sluice audit tail --json', tail.stdout + tail.stderr);
    outputs.set('sluice audit tail', tailText.stdout + tailText.stderr);
    outputs.set('sluice start failures (output)', startFailures);
    expect(startFailures).not.toBe('');
    // Everything under the gateway's directory except the config file the secrets were written in.
    const written = filesUnder(dir, (p) => p === config);
    for (const f of written) outputs.set(relative(dir, f), readFileSync(f));
    const kinds = (re: RegExp) => written.filter((f) => re.test(relative(dir, f)));
    expect(kinds(/^\.sluice\/audit\/.*\.jsonl$/).length, 'audit files').toBeGreaterThan(0);
    expect(kinds(/^\.sluice\/approvals\//).length, 'approvals journal').toBeGreaterThan(0);
    expect(kinds(/^\.sluice\/lineage\.db$/).length, 'lineage store').toBe(1);
    expect(kinds(/^openlineage\.jsonl$/).length, 'OpenLineage file').toBe(1);
    // The lineage store's rows as text too (a page of the file could hold them compressed or split).
    const db = new Database(join(dir, '.sluice', 'lineage.db'), { readonly: true });
    try {
      const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[];
      const dump = tables.map((t) => JSON.stringify(db.prepare(`SELECT * FROM "${t.name}"`).all())).join('\n');
      expect(dump.length).toBeGreaterThan(100);
      outputs.set('lineage store rows (SQLite)', dump);
    } finally {
      db.close();
    }
    const auditText = [...outputs].filter(([f]) => f.startsWith('.sluice/audit/')).map(([, c]) => c.toString()).join('');
    // The scenarios left their marks (so the scan looks at output that could have leaked).
    expect(auditText).toMatch(/"outcome":"refused"/);
    expect(auditText).toMatch(/badpg/);
    expect(auditText).toMatch(/downmy/);
    expect(gatewayOutput).toMatch(/"level":20/);

    const findings = scan(outputs, secrets);
    const report = findings.map((f) => `${f.file}: ${f.kind} (${f.encoding})`);
    console.log(
      `secrets scan: ${secrets.length} secrets x ${new Set(secrets.flatMap((s) => formsOf(s).map((f) => `${s.kind}/${f.encoding}`))).size} forms, ` +
        `${outputs.size} outputs (${written.length} files: ${written.map((f) => relative(dir, f)).join(', ')}), scenarios: ${scenarios.join('; ')}`,
    );
    expect(report).toEqual([]);
  }, 120_000);
});
