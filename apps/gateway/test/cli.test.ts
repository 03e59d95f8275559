import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireService } from '@sluice/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, psql, runCli, startCli, type RunningCli } from './helpers.js';

const ALICE_TOKEN = 'alice-cli-token-123';

/** The example from the configuration docs, as written, on a free port. */
function exampleConfig(port: number): string {
  return `listen:
  postgres: 127.0.0.1:${port}
targets:
  - name: app
    dialect: postgres
    upstream: postgres://postgres@127.0.0.1:5432/test
identities:
  tokens:
    - subject: alice@example.com
      kind: human
      groups: [analysts]
      token: \${ALICE_TOKEN}
    - subject: retrain-bot
      kind: agent
      groups: [pipelines]
      tokenSha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
audit:
  dir: ./.sluice/audit
policy:
  rules:
    - name: analysts-read
      identities: { groups: [analysts] }
      operations: [read, copy-out, transaction, session-setting]
      effect: allow
    - name: pipelines-load
      identities: { groups: [pipelines] }
      operations: [read, write, ddl, copy-in, copy-out, transaction, session-setting]
      effect: allow
masking:
  hashKeyEnv: SLUICE_MASK_KEY
  columns:
    - { column: public.customers.email, strategy: partial }
    - { column: "*.*.ssn", strategy: redact }
    - { column: customers.full_name, strategy: hash }
  scan: [support.tickets.body]
  exempt: { groups: [compliance] }
`;
}

describe('the sluice CLI with the documented example config (real PostgreSQL, real psql)', () => {
  let dir: string;
  let configFile: string;
  let port: number;
  let gateway: RunningCli | undefined;
  let available = false;

  beforeAll(async () => {
    available = await requireService('PostgreSQL', '127.0.0.1', 5432);
    if (!available) return;
    dir = mkdtempSync(join(tmpdir(), 'sluice-cli-'));
    port = await freePort();
    configFile = join(dir, 'sluice.yaml');
    writeFileSync(configFile, exampleConfig(port));
    psql('postgres://postgres@127.0.0.1:5432/test', 'DROP TABLE IF EXISTS sluice_cli_people; CREATE TABLE sluice_cli_people (id int, ssn text); INSERT INTO sluice_cli_people VALUES (1, $$219-09-9999$$)');
    gateway = startCli(['start', '--config', configFile], { ALICE_TOKEN, SLUICE_MASK_KEY: 'cli-test-masking-key-123' });
    await gateway.waitFor(/listening on postgres/);
  });

  afterAll(async () => {
    await gateway?.stop();
    if (available) psql('postgres://postgres@127.0.0.1:5432/test', 'DROP TABLE IF EXISTS sluice_cli_people');
  });

  const live = (name: string, body: () => Promise<void> | void) =>
    it(name, async () => {
      if (!available) return;
      await body();
    });

  const aliceUrl = () => `postgres://${encodeURIComponent('alice@example.com')}:${ALICE_TOKEN}@127.0.0.1:${port}/app`;

  live('masks what the masking section names (ssn in any schema and table)', () => {
    const r = psql(aliceUrl(), 'SELECT id, ssn AS s, upper(ssn) AS u FROM sluice_cli_people');
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('1|[redacted]|[redacted]');
  });

  live('psql reaches the test database through the gateway with a token', () => {
    const r = psql(aliceUrl(), 'SELECT current_database()');
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('test');
  });

  live('the agent token stored as a SHA-256 hash works (its token is "test")', () => {
    const r = psql(`postgres://retrain-bot:test@127.0.0.1:${port}/app`, 'SELECT 40 + 2');
    expect(r.stdout.trim()).toBe('42');
  });

  live('the policy decides: an analyst may read but not write, and hears which rule says so', () => {
    const r = psql(aliceUrl(), 'CREATE TABLE sluice_cli_never (id int)');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/ERROR: {2}denied: no policy rule allows ddl/);
  });

  live('psql sees a wrong token refused with a message that names the problem', () => {
    const r = psql(`postgres://${encodeURIComponent('alice@example.com')}:wrong@127.0.0.1:${port}/app`, 'SELECT 1');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/authentication failed: unknown token/);
    expect(r.stderr).not.toContain('wrong');
  });

  live('psql runs a script with a transaction and COPY through the gateway', () => {
    const r = psql(
      `postgres://retrain-bot:test@127.0.0.1:${port}/app`,
      `CREATE TABLE IF NOT EXISTS sluice_cli_t (id int, email text); DELETE FROM sluice_cli_t WHERE id = 1;
       BEGIN; INSERT INTO sluice_cli_t VALUES (1, 'x@example.com'); COMMIT;
       COPY sluice_cli_t TO STDOUT;`,
    );
    expect(r.stderr).not.toMatch(/ERROR|FATAL/);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('1\tx@example.com');
  });

  live('audit verify passes, then catches a record edited by hand and names it', async () => {
    // Reads are group-committed within 50 ms; give the last records time to land.
    await new Promise((r) => setTimeout(r, 200));
    const ok = runCli(['audit', 'verify', '--config', configFile]);
    expect(ok.stderr).toBe('');
    expect(ok.stdout).toMatch(/audit trail intact: \d+ records/);
    expect(ok.code).toBe(0);

    const tail = runCli(['audit', 'tail', '--config', configFile, '-n', '50']);
    expect(tail.code).toBe(0);
    expect(tail.stdout).toContain('alice@example.com');
    expect(tail.stdout).toMatch(/select current_database\(\)/i);

    const csv = runCli(['audit', 'export', '--config', configFile, '--since', '1h', '--format', 'csv']);
    expect(csv.code).toBe(0);
    expect(csv.stdout.split('\n')[0]).toMatch(/^seq,time,type/);
    expect(csv.stdout).not.toContain('x@example.com');

    const unwritable = runCli(['audit', 'export', '--config', configFile, '--output', join(dir, 'no-such-dir', 'x.csv')]);
    expect(unwritable.code).toBe(1);
    expect(unwritable.stderr).toMatch(/cannot write .*x\.csv: ENOENT/);

    const auditDir = join(dir, '.sluice', 'audit');
    const segment = join(auditDir, readdirSync(auditDir).filter((f) => f.endsWith('.jsonl')).sort()[0]!);
    const lines = readFileSync(segment, 'utf8').split('\n');
    const victim = lines.findIndex((l) => l.includes('"type":"statement"'));
    expect(victim).toBeGreaterThan(0);
    lines[victim] = lines[victim]!.replace('alice@example.com', 'mallory@example.com');
    writeFileSync(segment, lines.join('\n'));
    const bad = runCli(['audit', 'verify', '--config', configFile]);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toMatch(new RegExp(`line ${victim + 1}`));
    expect(bad.stdout).toMatch(/edited/);
  });
});

describe('graceful shutdown (real PostgreSQL)', () => {
  it('SIGTERM ends open sessions with admin_shutdown, records them, flushes the audit and exits 0', async () => {
    if (!(await requireService('PostgreSQL', '127.0.0.1', 5432))) return;
    const dir = mkdtempSync(join(tmpdir(), 'sluice-stop-'));
    const port = await freePort();
    const configFile = join(dir, 'sluice.yaml');
    writeFileSync(configFile, exampleConfig(port));
    const gw = startCli(['start', '--config', configFile], { ALICE_TOKEN, SLUICE_MASK_KEY: 'cli-test-masking-key-123' });
    await gw.waitFor(/listening on postgres/);
    const { default: pg } = await import('pg');
    const client = new pg.Client({ host: '127.0.0.1', port, database: 'app', user: 'alice@example.com', password: ALICE_TOKEN });
    const ended = new Promise<{ code?: string }>((resolve) => client.on('error', (e: Error) => resolve(e as Error & { code?: string })));
    await client.connect();
    await client.query('SELECT 1');
    expect(await gw.stop('SIGTERM')).toBe(0);
    expect((await ended).code).toBe('57P01');
    const tail = runCli(['audit', 'tail', '--config', configFile, '-n', '10', '--json']);
    const records = tail.stdout.trim().split('\n').map((l) => JSON.parse(l) as { type: string; reason?: string });
    expect(records.at(-1)).toMatchObject({ type: 'disconnect', reason: 'shutdown' });
    expect(runCli(['audit', 'verify', '--config', configFile]).code).toBe(0);
  });
});

describe('config validation', () => {
  it('an invalid file stops start-up with the key, the bad value and what is expected', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-badcfg-'));
    const file = join(dir, 'bad.yaml');
    writeFileSync(
      file,
      `listen:
  postgres: 127.0.0.1:6432
targets:
  - name: app
    dialect: postgress
    upstream: postgres://postgres@127.0.0.1:5432/test
identities:
  tokens:
    - subject: a
      kind: robot
      token: x
`,
    );
    const r = runCli(['start', '--config', file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('targets[0].dialect');
    expect(r.stderr).toContain('postgress');
    expect(r.stderr).toContain('identities.tokens[0].kind');
    expect(r.stderr).toContain('robot');
  });

  it('a missing environment variable is named with its key', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-badcfg-'));
    const file = join(dir, 'env.yaml');
    writeFileSync(file, exampleConfig(6432));
    const env = { ...process.env };
    delete env.ALICE_TOKEN;
    const r = runCli(['check', '--config', file], { ALICE_TOKEN: '' });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('identities.tokens[0].token: the environment variable ALICE_TOKEN is not set');
  });

  it('check reads the masking hash key as start would: a missing one is named with its key', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-badcfg-'));
    const file = join(dir, 'mask.yaml');
    writeFileSync(file, exampleConfig(6432));
    const r = runCli(['check', '--config', file], { ALICE_TOKEN: 'x', SLUICE_MASK_KEY: '' });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('masking.hashKeyEnv: the environment variable SLUICE_MASK_KEY is not set or shorter than 16 characters');
    const ok = runCli(['check', '--config', file], { ALICE_TOKEN: 'x', SLUICE_MASK_KEY: 'cli-test-masking-key-123' });
    expect(ok.stdout).toContain('3 masked column pattern(s)');
    expect(ok.code).toBe(0);
  });

  it('accepts the "--" that pnpm passes through, and refuses stray arguments', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-args-'));
    const file = join(dir, 'ok.yaml');
    writeFileSync(file, exampleConfig(6432));
    const ok = runCli(['check', '--', '--config', file], { ALICE_TOKEN: 'x', SLUICE_MASK_KEY: 'cli-test-masking-key-123' });
    expect(ok.stdout).toContain('valid');
    expect(ok.code).toBe(0);
    const stray = runCli(['check', '--config', file, 'extra'], { ALICE_TOKEN: 'x' });
    expect(stray.code).toBe(2);
    expect(stray.stderr).toContain('unexpected argument "extra"');
  });

  it('an upstream URL that is not postgres:// is refused with the key', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-badcfg-'));
    const file = join(dir, 'url.yaml');
    writeFileSync(file, exampleConfig(6432).replace('postgres://postgres@127.0.0.1:5432/test', 'mysql://root@127.0.0.1/test'));
    const r = runCli(['check', '--config', file], { ALICE_TOKEN: 'x' });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('targets[0]');
    expect(r.stderr).toContain('expected a postgres:// URL');
  });
});
