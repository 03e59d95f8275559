import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireService } from '@sluice/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminUrl, DEFAULT_ADMIN_URL, parseMinutes, resolveAdminUrl } from '../src/commands/approvals.js';
import { IDENTITIES, reviewInput, startAdminFixture, TOKENS, type AdminFixture } from './admin-fixtures.js';
import { cli, freePort, gatewayConfig, LOCAL_POSTGRES, psql, runCli as runBuiltCli, startCli, type RunningCli } from './helpers.js';

/** A config the loader accepts, with the admin API at `admin` (or none). */
function configText(admin: string | undefined): string {
  return gatewayConfig({
    tokens: `    - subject: alice@example.com
      kind: human
      token: \${ALICE_TOKEN}`,
    rest: admin !== undefined ? `admin: ${admin}\n` : '',
  });
}

describe('sluice approvals against a running admin API', () => {
  let fx: AdminFixture;
  let as: (who: keyof typeof TOKENS) => string[];

  beforeAll(async () => {
    fx = await startAdminFixture();
    as = (who) => ['--admin', fx.url, '--token', TOKENS[who]];
  });
  afterAll(async () => {
    await fx.close();
  });

  it('lists pending requests as a compact table with the statement on one line', async () => {
    const ticket = await fx.approvals.request(reviewInput());
    const r = await cli(['approvals', 'list', ...as('bob')]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const [header, ...rows] = r.stdout.trimEnd().split('\n');
    expect(header).toMatch(/^ID\s+AGE\s+REQUESTER\s+TARGET\s+RULE\s+STATUS\s+STATEMENT$/);
    const row = rows.find((l) => l.startsWith(ticket.request.id));
    expect(row).toMatch(/\d+s\s+alice@example\.com\s+app\s+review-deletes\s+pending\s+DELETE FROM public\.orders WHERE id = \$1 AND note = 'x'$/);

    const json = await cli(['approvals', 'list', '--json', ...as('alice')]);
    const list = JSON.parse(json.stdout) as { id: string }[];
    expect(list.map((x) => x.id)).toContain(ticket.request.id);

    const none = await cli(['approvals', 'list', ...as('dave')]);
    expect(none.stdout).toMatch(/^no pending review requests/);
    await fx.approvals.abandon(ticket.request.id, 'test over');
  });

  it('shows every field, with the exact statement and its parameters', async () => {
    const ticket = await fx.approvals.request(reviewInput({ parameters: ['42', null], reason: 'ticket OPS-7' }));
    const r = await cli(['approvals', 'show', ticket.request.id, ...as('carol')]);
    expect(r.code).toBe(0);
    for (const expected of [
      `id:`,
      ticket.request.id,
      'status:',
      'requester:',
      'alice@example.com (human, groups analysts)',
      'target:',
      'app (postgres)',
      'rule:',
      'review-deletes',
      'why:',
      'deletes on app need a second pair of eyes',
      'client reason:',
      'ticket OPS-7',
      'operations:',
      'objects:',
      'public.orders (table, write)',
      'approvers:',
      'groups dba',
      'expires:',
      'digest:',
      ticket.request.digest,
      `statement:\n  DELETE FROM public.orders\n   WHERE id = $1 AND note = 'x'\n`,
      'parameters:\n  $1 = "42"\n  $2 = NULL\n',
    ]) {
      expect(r.stdout).toContain(expected);
    }
    const json = await cli(['approvals', 'show', ticket.request.id, '--json', ...as('carol')]);
    expect(JSON.parse(json.stdout)).toMatchObject({ id: ticket.request.id, parameters: ['42', null] });

    const hidden = await cli(['approvals', 'show', ticket.request.id, ...as('dave')]);
    expect(hidden.code).toBe(1);
    expect(hidden.stderr).toBe(`sluice: there is no review request ${ticket.request.id}; list them with: sluice approvals list --all\n`);
    await fx.approvals.abandon(ticket.request.id, 'test over');
  });

  it('approves (releasing the waiting statement) and says so in one line', async () => {
    const ticket = await fx.approvals.request(reviewInput());
    const r = await cli(['approvals', 'approve', ticket.request.id, '--reason', 'checked the WHERE', ...as('bob')]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`approved ${ticket.request.id} (alice@example.com on app): the held statement may now run\n`);
    const settled = await ticket.settled;
    expect(settled).toMatchObject({ status: 'approved', request: { decisionReason: 'checked the WHERE' } });

    const again = await cli(['approvals', 'approve', ticket.request.id, ...as('carol')]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^sluice: request r-\w+ is not pending: it was already approved by bob@example\.com/);
  });

  it('approves with --grant, creating a grant for the requester', async () => {
    const ticket = await fx.approvals.request(reviewInput());
    const r = await cli(['approvals', 'approve', ticket.request.id, '--grant', '2h', ...as('bob')]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/; granted alice@example\.com the same for 2h as g-\w+\n$/);
    const bad = await cli(['approvals', 'approve', 'r-whatever', '--grant', 'soon', ...as('bob')]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--grant takes a duration such as 30m, 2h or 1d, got "soon"');
  });

  it('rejects with a reason', async () => {
    const ticket = await fx.approvals.request(reviewInput());
    const r = await cli(['approvals', 'reject', ticket.request.id, '--reason', 'use the archive job', ...as('carol')]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`rejected ${ticket.request.id} (alice@example.com on app): the statement was refused: use the archive job\n`);
    expect((await ticket.settled).status).toBe('rejected');
  });

  it('prints the API message and exits 1 on self-approval and for non-approvers', async () => {
    const bobs = await fx.approvals.request(reviewInput({ requester: IDENTITIES.bob }));
    const self = await cli(['approvals', 'approve', bobs.request.id, ...as('bob')]);
    expect(self.code).toBe(1);
    expect(self.stdout).toBe('');
    expect(self.stderr).toMatch(/^sluice: nobody approves their own request .*; another approver must decide it\n$/);
    const outsider = await cli(['approvals', 'reject', bobs.request.id, ...as('dave')]);
    expect(outsider.code).toBe(1);
    expect(outsider.stderr).toMatch(/^sluice: dave@example\.com may not decide request r-\w+: approvers are groups dba\n$/);
    const badToken = await cli(['approvals', 'list', '--admin', fx.url, '--token', 'wrong-token-value']);
    expect(badToken.code).toBe(1);
    expect(badToken.stderr).toBe('sluice: authentication failed: unknown token\n');
    await fx.approvals.abandon(bobs.request.id, 'test over');
  });

  it('grants, lists grants and revokes', async () => {
    const created = await cli([
      'approvals', 'grant',
      '--subject', 'alice@example.com',
      '--operations', 'write,ddl',
      '--target', 'app',
      '--target', 'reporting',
      '--objects', 'public.*',
      '--guardrails', 'alter-drop',
      '--for', '2h',
      '--reason', 'schema migration',
      ...as('bob'),
    ]);
    expect(created.stderr).toBe('');
    expect(created.code).toBe(0);
    const id = /^granted (g-\w+) to alice@example\.com: write, ddl on app, reporting objects public\.\* lifting alter-drop, until \S+ \(2h\)\n$/.exec(
      created.stdout,
    )?.[1];
    expect(id).toBeDefined();
    const grant = fx.approvals.listGrants().find((g) => g.id === id)!;
    expect(grant).toMatchObject({ targets: ['app', 'reporting'], operations: ['write', 'ddl'], reason: 'schema migration' });
    expect(Date.parse(grant.expiresAt) - Date.parse(grant.createdAt)).toBe(2 * 3600_000);

    const listed = await cli(['approvals', 'grants', ...as('carol')]);
    expect(listed.code).toBe(0);
    expect(listed.stdout.split('\n')[0]).toMatch(/^ID\s+SUBJECT\s+TARGETS\s+OPERATIONS\s+OBJECTS\s+GUARDRAILS\s+ENDS\s+GRANTED BY$/);
    expect(listed.stdout).toMatch(new RegExp(`${id}\\s+alice@example\\.com\\s+app,reporting\\s+write,ddl\\s+public\\.\\*\\s+alter-drop\\s+in (1h|2h|119m|120m)\\s+bob@example\\.com`));

    const wrongOp = await cli(['approvals', 'grant', '--subject', 'alice@example.com', '--operations', 'writes', '--for', '1h', ...as('bob')]);
    expect(wrongOp.code).toBe(1);
    expect(wrongOp.stderr).toMatch(/operations\[0\]: unknown operation class "writes"/);
    const missing = await cli(['approvals', 'grant', '--subject', 'alice@example.com', '--for', '1h', ...as('bob')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('approvals grant needs --operations');

    const revoked = await cli(['approvals', 'revoke', id!, ...as('carol')]);
    expect(revoked.code).toBe(0);
    expect(revoked.stdout).toBe(`revoked ${id} (alice@example.com: write, ddl on app, reporting objects public.* lifting alter-drop)\n`);
    const twice = await cli(['approvals', 'revoke', id!, ...as('carol')]);
    expect(twice.code).toBe(1);
    expect(twice.stderr).toMatch(/already revoked by carol@example\.com/);
    const after = await cli(['approvals', 'grants', ...as('carol')]);
    expect(after.stdout).not.toContain(id!);
    const all = await cli(['approvals', 'grants', '--all', ...as('carol')]);
    expect(all.stdout).toMatch(new RegExp(`${id}.*revoked \\d+s ago`));
  });

  it('takes the credential from SLUICE_TOKEN, and the address from --config', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-cli-admin-'));
    const file = join(dir, 'sluice.yaml');
    writeFileSync(file, configText(`127.0.0.1:${fx.server.port}`));
    const r = await cli(['approvals', 'list', '--all', '--config', file], { SLUICE_TOKEN: TOKENS.bob, ALICE_TOKEN: undefined });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^ID\s+AGE/);

    const noAdmin = join(dir, 'no-admin.yaml');
    writeFileSync(noAdmin, configText(undefined));
    const off = await cli(['approvals', 'list', '--config', noAdmin], { SLUICE_TOKEN: TOKENS.bob });
    expect(off.code).toBe(1);
    expect(off.stderr).toContain('has no admin address');
  });
});

describe('sluice approvals without a reachable API or a credential', () => {
  it('says how to pass a credential when there is none', async () => {
    const r = await cli(['approvals', 'list', '--admin', 'http://127.0.0.1:9'], { SLUICE_TOKEN: undefined });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^sluice: no credential for the admin API: pass --token SECRET or set SLUICE_TOKEN/);
  });

  it('says the API cannot be reached when the connection is refused', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const r = await cli(['approvals', 'list', '--admin', url, '--token', 'x']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`sluice: cannot reach the admin API at ${url}: is the gateway running with \`admin:\` configured?\n`);
    const approve = await cli(['approvals', 'approve', 'r-abc123', '--admin', `127.0.0.1:${port}`, '--token', 'x']);
    expect(approve.stderr).toBe(`sluice: cannot reach the admin API at ${url}: is the gateway running with \`admin:\` configured?\n`);
  });

  it('refuses unknown subcommands and missing ids as usage errors', async () => {
    const unknown = await cli(['approvals', 'aprove', 'r-1', '--token', 'x']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown approvals command "aprove"');
    const noId = await cli(['approvals', 'show', '--token', 'x']);
    expect(noId.code).toBe(2);
    expect(noId.stderr).toContain('missing ID');
  });
});

describe('where sluice approvals finds the admin API', () => {
  it('prefers --admin, then --config, then the demo config in the current directory, then the default', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-cli-where-'));
    expect(resolveAdminUrl({ admin: 'https://gw.example:8443/' }, dir)).toBe('https://gw.example:8443');
    expect(resolveAdminUrl({}, dir)).toBe(DEFAULT_ADMIN_URL);
    mkdirSync(join(dir, '.sluice', 'demo'), { recursive: true });
    writeFileSync(join(dir, '.sluice', 'demo', 'sluice.yaml'), configText('0.0.0.0:7171'));
    expect(resolveAdminUrl({}, dir)).toBe('http://127.0.0.1:7171');
    writeFileSync(join(dir, '.sluice', 'demo', 'sluice.yaml'), configText(undefined));
    expect(resolveAdminUrl({}, dir)).toBe(DEFAULT_ADMIN_URL);
  });

  it('turns host:port into a URL, reaching wildcard addresses on loopback', () => {
    expect(adminUrl('127.0.0.1:7070')).toBe('http://127.0.0.1:7070');
    expect(adminUrl('[::]:7070')).toBe('http://[::1]:7070');
    expect(adminUrl('[::1]:7070')).toBe('http://[::1]:7070');
    expect(adminUrl('admin.internal:80')).toBe('http://admin.internal:80');
  });

  it('refuses an --admin address without a usable port as a usage error, before any request', async () => {
    for (const bad of ['host:abc', '127.0.0.1:99999', '127.0.0.1:', 'http://127.0.0.1:99999', 'http://[::1']) {
      expect(() => adminUrl(bad)).toThrow(`--admin must be a URL such as http://127.0.0.1:7070 or host:port, got "${bad}"`);
    }
    const r = await cli(['approvals', 'list', '--admin', 'host:abc', '--token', TOKENS.bob]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--admin must be a URL');
    expect(r.stderr).not.toContain('cannot reach');
  });

  it('reads durations in minutes, hours and days', () => {
    expect(parseMinutes('30m', '--for')).toBe(30);
    expect(parseMinutes('2h', '--for')).toBe(120);
    expect(parseMinutes('1d', '--for')).toBe(1440);
    expect(() => parseMinutes('0h', '--for')).toThrow('--for takes a duration');
    expect(() => parseMinutes('2', '--for')).toThrow('--for takes a duration');
  });
});

describe('a statement held for review, decided with the built CLI (real gateway, real PostgreSQL)', () => {
  const ALICE = 'alice-e2e-token-0123456789';
  const BOB = 'bob-e2e-token-0123456789';
  let gateway: RunningCli | undefined;
  let available = false;
  let port = 0;
  let adminPort = 0;
  let file = '';

  beforeAll(async () => {
    available = await requireService('PostgreSQL', '127.0.0.1', 5432);
    if (!available) return;
    const setup = psql(
      LOCAL_POSTGRES,
      'DROP TABLE IF EXISTS sluice_review_t; CREATE TABLE sluice_review_t (id int); INSERT INTO sluice_review_t VALUES (1), (2), (3);',
    );
    expect(setup.code).toBe(0);
    const dir = mkdtempSync(join(tmpdir(), 'sluice-review-e2e-'));
    [port, adminPort] = [await freePort(), await freePort()];
    file = join(dir, 'sluice.yaml');
    writeFileSync(
      file,
      gatewayConfig({
        port,
        tokens: `    - { subject: alice@example.com, kind: human, groups: [analysts], token: ${ALICE} }
    - { subject: bob@example.com, kind: human, groups: [dba], token: ${BOB} }`,
        rest: `policy:
  default: deny
  rules:
    - name: analysts-read
      identities: { groups: [analysts] }
      operations: [read, transaction, session-setting]
      effect: allow
    - name: analysts-write-with-review
      identities: { groups: [analysts] }
      operations: [write]
      effect: review
approvals:
  timeoutSeconds: 60
  approvers: { groups: [dba] }
admin: 127.0.0.1:${adminPort}
`,
      }),
    );
    gateway = startCli(['start', '--config', file]);
    await gateway.waitFor(/listening on postgres/);
  });
  afterAll(async () => {
    await gateway?.stop();
  });

  it('holds the DELETE until bob approves it with sluice approvals approve; a rejected one fails', async () => {
    if (!available) return;
    const { default: pg } = await import('pg');
    const client = new pg.Client({ host: '127.0.0.1', port, database: 'app', user: 'alice@example.com', password: ALICE });
    client.on('error', () => undefined);
    await client.connect();
    try {
      const held = client.query('DELETE FROM sluice_review_t WHERE id = 1');
      let settled = false;
      void held.then(
        () => (settled = true),
        () => (settled = true),
      );

      const env = { SLUICE_TOKEN: BOB };
      let listed = runBuiltCli(['approvals', 'list', '--config', file, '--json'], env);
      for (let i = 0; i < 50 && (listed.code !== 0 || JSON.parse(listed.stdout).length === 0); i++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        listed = runBuiltCli(['approvals', 'list', '--config', file, '--json'], env);
      }
      expect(listed.stderr).toBe('');
      const [request] = JSON.parse(listed.stdout) as { id: string; statement: string; requester: { subject: string } }[];
      expect(request).toMatchObject({ statement: 'DELETE FROM sluice_review_t WHERE id = 1', requester: { subject: 'alice@example.com' } });
      expect(settled).toBe(false);

      const table = runBuiltCli(['approvals', 'list', '--config', file], env);
      expect(table.stdout).toMatch(new RegExp(`${request!.id}\\s+\\d+s\\s+alice@example\\.com\\s+app\\s+analysts-write-with-review\\s+pending`));
      const self = runBuiltCli(['approvals', 'approve', request!.id, '--config', file], { SLUICE_TOKEN: ALICE });
      expect(self.code).toBe(1);
      expect(self.stderr).toMatch(/^sluice: nobody approves their own request/);

      const approved = runBuiltCli(['approvals', 'approve', request!.id, '--config', file, '--reason', 'ok'], env);
      expect(approved.stderr).toBe('');
      expect(approved.stdout).toMatch(/^approved r-\w+ \(alice@example\.com on app\)/);
      expect((await held).rowCount).toBe(1);

      const refused = client.query('DELETE FROM sluice_review_t WHERE id = 2');
      let pending = runBuiltCli(['approvals', 'list', '--config', file, '--json'], env);
      for (let i = 0; i < 50 && JSON.parse(pending.stdout || '[]').length === 0; i++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        pending = runBuiltCli(['approvals', 'list', '--config', file, '--json'], env);
      }
      const [second] = JSON.parse(pending.stdout) as { id: string }[];
      const rejected = runBuiltCli(['approvals', 'reject', second!.id, '--config', file, '--reason', 'not today'], env);
      expect(rejected.code).toBe(0);
      await expect(refused).rejects.toThrow(/not today|rejected/);
      const rows = psql(LOCAL_POSTGRES, 'SELECT id FROM sluice_review_t ORDER BY id');
      expect(rows.stdout.trim().split('\n')).toEqual(['2', '3']);
    } finally {
      await client.end().catch(() => undefined);
    }
  });
});
