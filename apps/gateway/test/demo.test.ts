import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, startCli, type RunningCli } from './helpers.js';

describe('sluice demo: the gateway in front of the embedded PGlite (no server needed)', () => {
  let dir: string;
  let demo: RunningCli;
  let port: number;
  let admin: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-demo-'));
    demo = startCli(['demo', '--dir', dir, '--port', '0', '--admin-port', '0']);
    const out = await demo.waitFor(/Press Ctrl-C to stop/, 90_000);
    port = Number(/gateway\s+127\.0\.0\.1:(\d+)/.exec(out)![1]);
    admin = /admin API\s+(http:\/\/127\.0\.0\.1:\d+)/.exec(out)![1]!;
  }, 120_000);

  afterAll(async () => {
    await demo?.stop('SIGINT');
    rmSync(dir, { recursive: true, force: true });
  });

  const connect = async (user: string, password: string) => {
    const c = new pg.Client({ host: '127.0.0.1', port, database: 'demo', user, password });
    c.on('error', () => undefined);
    await c.connect();
    return c;
  };

  it('prints the demo tokens and a psql line ready to paste', () => {
    expect(demo.output()).toContain('alice-demo-token');
    expect(demo.output()).toMatch(/psql "postgres:\/\/alice%40example\.com:alice-demo-token@127\.0\.0\.1:\d+\/demo"/);
  });

  it('node-postgres reads the seeded PII tables through the gateway, simple and extended', async () => {
    const c = await connect('alice@example.com', 'alice-demo-token');
    const customers = await c.query('SELECT count(*)::int AS n FROM customers');
    expect(customers.rows[0].n).toBe(50);
    const one = await c.query('SELECT email FROM customers WHERE id = $1', [1]);
    expect(one.rows[0].email).toMatch(/^.\*\*\*@e\*\*\*\.(com|org|net)$/);
    const keys = await c.query('SELECT count(*)::int AS n FROM api_keys');
    expect(keys.rows[0].n).toBeGreaterThan(0);
    await c.end();
  });

  it('masks customer PII for an analyst (SELECT *, an aliased function, COPY) and not for compliance', async () => {
    const clear = await connect('carol@example.com', 'carol-demo-token');
    const truth = (await clear.query('SELECT * FROM customers ORDER BY id LIMIT 5')).rows;
    expect(truth[0].email).toMatch(/@example\.(com|org|net)$/);
    expect((await clear.query('SELECT lower(email) AS x FROM customers ORDER BY id LIMIT 1')).rows[0].x).toBe(truth[0].email.toLowerCase());
    await clear.end();
    const alice = await connect('alice@example.com', 'alice-demo-token');
    const masked = (await alice.query('SELECT * FROM customers ORDER BY id LIMIT 5')).rows;
    expect(masked).toHaveLength(5);
    const lowered = (await alice.query('SELECT lower(email) AS x FROM customers ORDER BY id LIMIT 5')).rows;
    await alice.end();
    const copy = spawnSync('psql', [`postgres://alice%40example.com:alice-demo-token@127.0.0.1:${port}/demo`, '-X', '-c', 'COPY customers TO STDOUT'], { encoding: 'utf8' });
    expect(copy.status).toBe(0);
    for (const row of truth) {
      for (const value of [row.email, row.full_name, row.phone, row.card_number].filter((v): v is string => typeof v === 'string' && v.length > 0)) {
        expect(JSON.stringify([masked, lowered])).not.toContain(value.toLowerCase());
        expect(JSON.stringify([masked, lowered])).not.toContain(value);
        expect(copy.stdout).not.toContain(value);
      }
    }
    expect(masked[0].id).toBe(truth[0].id);
    expect(masked[0].created_at).toEqual(truth[0].created_at);
  });

  it("stops an analyst's DROP TABLE, and holds a DBA's ALTER TABLE until an approver approves it", async () => {
    const alice = await connect('alice@example.com', 'alice-demo-token');
    await expect(alice.query('DROP TABLE customers')).rejects.toMatchObject({
      code: '42501',
      message: expect.stringContaining('blocked by guardrail "drop-table"'),
    });
    await expect(alice.query("UPDATE orders SET status = 'cancelled' WHERE id = 1")).rejects.toMatchObject({ code: '42501' });
    expect((await alice.query('SELECT count(*)::int AS n FROM customers')).rows[0].n).toBe(50);
    await alice.end();

    const dave = await connect('dave@example.com', 'dave-demo-token');
    const held = dave.query('ALTER TABLE customers ADD COLUMN loyalty_tier text');
    let list = { code: 0 as number | null, stdout: '', stderr: '' };
    const until = Date.now() + 20_000;
    while (!/loyalty_tier/.test(list.stdout) && Date.now() < until) {
      list = runCli(['approvals', 'list', '--admin', admin, '--token', 'carol-demo-token']);
    }
    expect(list.code).toBe(0);
    const id = /^(r-\S+)\s.*loyalty_tier/m.exec(list.stdout)![1]!;
    const self = runCli(['approvals', 'approve', id, '--admin', admin, '--token', 'dave-demo-token']);
    expect(self.code).toBe(1);
    expect(self.stderr).toMatch(/nobody approves their own request/);
    const ok = runCli(['approvals', 'approve', id, '--admin', admin, '--token', 'carol-demo-token', '--reason', 'planned change']);
    expect(ok.code).toBe(0);
    await held;
    const cols = await dave.query("SELECT count(*)::int AS n FROM information_schema.columns WHERE table_name = 'customers' AND column_name = 'loyalty_tier'");
    expect(cols.rows[0].n).toBe(1);
    await dave.end();
  }, 90_000);

  it('refuses a wrong token and records who connected and every statement they ran', async () => {
    await expect(connect('alice@example.com', 'nope')).rejects.toMatchObject({ code: '28P01' });
    const c = await connect('retrain-bot', 'bot-demo-token');
    await c.query("SELECT full_name FROM customers WHERE email = 'someone@example.com'");
    await c.end();
    await new Promise((r) => setTimeout(r, 300));
    const config = join(dir, 'sluice.yaml');
    const tail = runCli(['audit', 'tail', '--config', config, '-n', '100', '--json']);
    const records = tail.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(records.some((r) => r.type === 'connect' && r.outcome === 'refused' && r.username === 'alice@example.com')).toBe(true);
    const bot = records.filter((r) => (r.actor as { subject?: string } | undefined)?.subject === 'retrain-bot');
    expect(bot.map((r) => r.type)).toEqual(['connect', 'statement', 'disconnect']);
    expect(bot[1]).toMatchObject({ text: 'select full_name from customers where email = ?', outcome: 'ok' });
    expect(tail.stdout).not.toContain('someone@example.com');
    const verify = runCli(['audit', 'verify', '--config', config]);
    expect(verify.code).toBe(0);
  });
});

describe('sluice demo with a stray argument', () => {
  it('is a usage error before anything starts (no embedded PostgreSQL left running)', () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'sluice-demo-args-')), 'demo');
    const r = runCli(['demo', 'stray', '--dir', dir, '--port', '0', '--admin-port', '0']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('sluice: unexpected argument "stray"');
    expect(r.stdout).not.toContain('Starting the embedded PostgreSQL');
    expect(existsSync(dir)).toBe(false);
  });
});
