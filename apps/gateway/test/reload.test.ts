import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { readReloadStatus, reloadCommand, reloadStatusFile, writeReloadStatus } from '../src/commands/reload.js';
import { runCli } from '../src/commands/run.js';
import { serveUntilStopped } from '../src/commands/start.js';
import { loadConfig } from '../src/config/load.js';
import { dialects } from '../src/dialects.js';
import type { RunningGateway } from '../src/gateway.js';
import { pino } from 'pino';
import { capture, freePort, gatewayConfig, runCli as runBuiltCli, startCli, waitForFile, type RunningCli } from './helpers.js';
import { requireService } from '@sluice/testkit';

function config(extra = ''): string {
  return gatewayConfig({
    tokens: `    - subject: alice@example.com
      kind: human
      token: alice-reload-token-0123456789`,
    rest: `pidFile: ./run/gw.pid
${extra}`,
  });
}

/**
 * A stand-in gateway: on SIGHUP it writes the verdict `sluice reload` waits for (`ok` or
 * `refuse`), writes nothing (`ignore`), or has no handler at all (`die`: SIGHUP ends it).
 */
function fakeGateway(statusFile: string, mode: 'ok' | 'refuse' | 'ignore' | 'die'): Promise<ChildProcess> {
  const script = `
    const fs = require('node:fs');
    const [file, mode] = process.argv.slice(1);
    let hangups = 0;
    if (mode !== 'die') process.on('SIGHUP', () => {
      hangups += 1;
      if (mode === 'ignore') return;
      const status = { time: new Date().toISOString(), ok: mode === 'ok', message: mode === 'ok' ? 'configuration reloaded (' + hangups + ')' : 'the new configuration was refused: policy.rules[0] is broken; the old one stays' };
      fs.writeFileSync(file + '.tmp', JSON.stringify(status));
      fs.renameSync(file + '.tmp', file);
    });
    setInterval(() => {}, 1000);
    process.stdout.write('ready\\n');
  `;
  const child = spawn(process.execPath, ['-e', script, statusFile, mode], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  return new Promise((resolve, reject) => {
    child.stdout!.once('data', () => resolve(child));
    child.once('error', reject);
  });
}

const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

function setup(extra = ''): { dir: string; file: string; pidFile: string; statusFile: string } {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-reload-'));
  const file = join(dir, 'sluice.yaml');
  writeFileSync(file, config(extra));
  const pidFile = join(dir, 'run', 'gw.pid');
  return { dir, file, pidFile, statusFile: reloadStatusFile(pidFile) };
}

async function writePid(pidFile: string, pid: number): Promise<void> {
  const { mkdir } = await import('node:fs/promises');
  await mkdir(join(pidFile, '..'), { recursive: true });
  writeFileSync(pidFile, `${pid}\n`);
}

describe('reload status file', () => {
  it('is written atomically next to the pid file and read back', async () => {
    const { pidFile, statusFile } = setup();
    await writePid(pidFile, 1234);
    expect(await readReloadStatus(pidFile)).toBeUndefined();
    await writeReloadStatus(pidFile, { ok: false, message: 'refused: x', time: new Date('2026-01-02T03:04:05Z') });
    expect(statusFile).toBe(`${pidFile}.reload.json`);
    expect(JSON.parse(readFileSync(statusFile, 'utf8'))).toEqual({ time: '2026-01-02T03:04:05.000Z', ok: false, message: 'refused: x' });
    await writeReloadStatus(pidFile, { ok: true, message: 'reloaded' });
    const status = await readReloadStatus(pidFile);
    expect(status).toMatchObject({ ok: true, message: 'reloaded' });
    expect(Date.now() - Date.parse(status!.time)).toBeLessThan(5000);
    writeFileSync(statusFile, '{"time": "yesterday"');
    expect(await readReloadStatus(pidFile)).toBeUndefined();
  });
});

describe('sluice reload (with a stand-in gateway process)', () => {
  it('signals the gateway and prints its verdict: exit 0 when it reloaded', async () => {
    const { file, pidFile, statusFile } = setup();
    const gw = await fakeGateway(statusFile, 'ok');
    await writePid(pidFile, gw.pid!);
    // A verdict from an earlier reload is not taken for this one.
    await writeReloadStatus(pidFile, { ok: false, message: 'an old failure', time: new Date(Date.now() - 60_000) });
    const r = await capture(() => runCli(['reload', '--config', file]));
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('configuration reloaded (1)\n');
    expect(r.code).toBe(0);
    const again = await capture(() => runCli(['reload', '--config', file]));
    expect(again.stdout).toBe('configuration reloaded (2)\n');
  });

  it('exits 1 with the message when the gateway refused the new config', async () => {
    const { file, pidFile, statusFile } = setup();
    const gw = await fakeGateway(statusFile, 'refuse');
    await writePid(pidFile, gw.pid!);
    const r = await capture(() => runCli(['reload', '--config', file]));
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('sluice: the new configuration was refused: policy.rules[0] is broken; the old one stays\n');
  });

  it('refuses a config that does not validate, without signalling', async () => {
    const { file, pidFile, statusFile } = setup('policy:\n  default: maybe\n');
    const gw = await fakeGateway(statusFile, 'ok');
    await writePid(pidFile, gw.pid!);
    const r = await capture(() => runCli(['reload', '--config', file]));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('policy.default');
    expect(r.stderr).toContain('the running gateway keeps its current configuration');
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(existsSync(statusFile)).toBe(false);
    expect(gw.exitCode).toBeNull();
  });

  it('does not hold variables unset in this shell against the config (the gateway has its own environment)', async () => {
    const { file, pidFile, statusFile } = setup();
    writeFileSync(file, config().replace('alice-reload-token-0123456789', '${SLUICE_RELOAD_TEST_UNSET_TOKEN}'));
    const gw = await fakeGateway(statusFile, 'ok');
    await writePid(pidFile, gw.pid!);
    const r = await capture(() => runCli(['reload', '--config', file]));
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });

  it('says where it looked when there is no pid file or the gateway is not running', async () => {
    const { file, pidFile } = setup();
    const missing = await capture(() => runCli(['reload', '--config', file]));
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe(
      `sluice: there is no pid file ${pidFile}: is the gateway running with this config? start writes ${pidFile}\n`,
    );

    const gone = spawn(process.execPath, ['-e', '']);
    const pid = gone.pid!;
    await new Promise((resolve) => gone.once('exit', resolve));
    await writePid(pidFile, pid);
    const dead = await capture(() => runCli(['reload', '--config', file]));
    expect(dead.code).toBe(1);
    expect(dead.stderr).toBe(
      `sluice: the gateway with pid ${pid} (from ${pidFile}) is not running: is the gateway running with this config? start writes ${pidFile}\n`,
    );
  });

  it('gives up when no verdict comes, and notices a gateway that died from the signal', async () => {
    const { file, pidFile, statusFile } = setup();
    const silent = await fakeGateway(statusFile, 'ignore');
    await writePid(pidFile, silent.pid!);
    const started = Date.now();
    const r = await capture(() => reloadCommand(['--config', file], { waitMs: 600 }));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/did not report the outcome of the reload within 1 s .*check its log/);
    expect(Date.now() - started).toBeLessThan(5000);

    const fragile = await fakeGateway(statusFile, 'die');
    await writePid(pidFile, fragile.pid!);
    const died = await capture(() => reloadCommand(['--config', file], { waitMs: 5000 }));
    expect(died.code).toBe(1);
    expect(died.stderr).toMatch(/exited after the reload signal without reporting an outcome/);
  });
});

describe('SIGHUP while the gateway serves', () => {
  it('answers a burst of signals with one reload, and a later signal with another', async () => {
    const { file, pidFile } = setup();
    let reloads = 0;
    const gateway = {
      reload: () => ({ ok: true, message: `configuration reloaded (${++reloads})` }),
      reloadRefused: () => undefined,
    } as unknown as RunningGateway;
    const before = { SIGINT: process.listeners('SIGINT'), SIGTERM: process.listeners('SIGTERM') };
    let stopped = false;
    const serving = serveUntilStopped(gateway, loadConfig(file, dialects), pino({ level: 'silent' }), async () => {
      stopped = true;
    });
    const ours = process.listeners('SIGTERM').filter((l) => !before.SIGTERM.includes(l));
    try {
      const verdict = async (n: number) => {
        const until = Date.now() + 5000;
        while ((await readReloadStatus(pidFile))?.message !== `configuration reloaded (${n})` && Date.now() < until) {
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      };
      for (let i = 0; i < 50; i++) process.emit('SIGHUP', 'SIGHUP');
      await verdict(1);
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(reloads).toBe(1);
      process.emit('SIGHUP', 'SIGHUP');
      await verdict(2);
      expect(reloads).toBe(2);
    } finally {
      expect(ours).toHaveLength(1);
      (ours[0] as () => void)();
      await serving;
      for (const signal of ['SIGINT', 'SIGTERM'] as const) {
        for (const l of process.listeners(signal)) if (!before[signal].includes(l)) process.off(signal, l);
      }
    }
    expect(stopped).toBe(true);
    expect(existsSync(pidFile)).toBe(false);
  });
});

describe('sluice reload with the real gateway (built CLI)', () => {
  let gateway: RunningCli | undefined;
  afterEach(async () => {
    await gateway?.stop();
    gateway = undefined;
  });

  it('reloads a valid config, refuses an invalid one without signalling, and the gateway keeps running', async () => {
    const port = await freePort();
    const { file, pidFile } = setup();
    writeFileSync(file, config().replace('127.0.0.1:6432', `127.0.0.1:${port}`));
    gateway = startCli(['start', '--config', file]);
    await gateway.waitFor(/listening on postgres/);
    await waitForFile(pidFile);

    const ok = runBuiltCli(['reload', '--config', file]);
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/reloaded/);

    writeFileSync(file, `${readFileSync(file, 'utf8')}policy:\n  default: maybe\n`);
    const bad = runBuiltCli(['reload', '--config', file]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('the running gateway keeps its current configuration');
    expect(gateway.child.exitCode).toBeNull();
    expect(await readReloadStatus(pidFile)).toMatchObject({ ok: true });
  });
});

describe('a reload changes what is allowed, for new and open sessions (real gateway, real PostgreSQL)', () => {
  let gateway: RunningCli | undefined;
  afterEach(async () => {
    await gateway?.stop();
    gateway = undefined;
  });

  const readOnly = `policy:
  rules:
    - name: alice-reads
      identities: { subjects: [alice@example.com] }
      operations: [read, transaction, session-setting]
      effect: allow
`;
  const readWrite = readOnly.replace('[read, transaction, session-setting]', '[read, write, ddl, transaction, session-setting]').replace('alice-reads', 'alice-writes');

  it('SIGHUP through sluice reload applies new rules; an invalid file keeps the old ones', async () => {
    if (!(await requireService('PostgreSQL', '127.0.0.1', 5432))) return;
    const port = await freePort();
    const { file, pidFile } = setup(readOnly);
    writeFileSync(file, readFileSync(file, 'utf8').replace('127.0.0.1:6432', `127.0.0.1:${port}`));
    gateway = startCli(['start', '--config', file]);
    await gateway.waitFor(/listening on postgres/);
    await waitForFile(pidFile);
    const { default: pg } = await import('pg');
    const open = new pg.Client({ host: '127.0.0.1', port, database: 'app', user: 'alice@example.com', password: 'alice-reload-token-0123456789' });
    await open.connect();
    await open.query('CREATE TABLE IF NOT EXISTS sluice_reload_t (id int)').then(
      () => expect.unreachable('ddl should be denied before the reload'),
      (err: { code?: string; message: string }) => {
        expect(err.code).toBe('42501');
        expect(err.message).toMatch(/no policy rule allows ddl/);
      },
    );

    writeFileSync(file, readFileSync(file, 'utf8').replace(readOnly, readWrite));
    const ok = runBuiltCli(['reload', '--config', file]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/policy with 1 rule/);
    // The open session decides its next statement with the new rules.
    await open.query('CREATE TABLE IF NOT EXISTS sluice_reload_t (id int)');
    await open.query('INSERT INTO sluice_reload_t VALUES (1)');

    // A file that does not validate is refused; the rules in force stay.
    writeFileSync(file, `${readFileSync(file, 'utf8')}  guardrails: { truncate: sometimes }\n`);
    const bad = runBuiltCli(['reload', '--config', file]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/policy\.guardrails\.truncate/);
    await open.query('INSERT INTO sluice_reload_t VALUES (2)');
    // Guardrails stay on through all of it.
    await expect(open.query('DROP TABLE sluice_reload_t')).rejects.toMatchObject({ code: '42501' });
    await open.query('DELETE FROM sluice_reload_t WHERE id IN (1, 2)');
    await open.end();
    expect(gateway.child.exitCode).toBeNull();

    // A SIGHUP sent without sluice reload's check: the gateway itself refuses the file. The
    // refused file would take writes away again; the rules in force (writes allowed) stay.
    writeFileSync(file, readFileSync(file, 'utf8').replace(readWrite, readOnly));
    expect(readFileSync(file, 'utf8')).toContain('alice-reads');
    const before = (await readReloadStatus(pidFile))?.time;
    gateway.child.kill('SIGHUP');
    const until = Date.now() + 10_000;
    let status = await readReloadStatus(pidFile);
    while ((status === undefined || status.time === before) && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 50));
      status = await readReloadStatus(pidFile);
    }
    expect(status).toMatchObject({ ok: false, message: expect.stringContaining('the old one stays') });
    expect(gateway.child.exitCode).toBeNull();
    // Statements after the refused reload, on a new session, are decided by the rules in force.
    const after = new pg.Client({ host: '127.0.0.1', port, database: 'app', user: 'alice@example.com', password: 'alice-reload-token-0123456789' });
    await after.connect();
    await after.query('INSERT INTO sluice_reload_t VALUES (3)');
    await expect(after.query('DROP TABLE sluice_reload_t')).rejects.toMatchObject({ code: '42501' });
    await after.query('DELETE FROM sluice_reload_t WHERE id = 3');
    await after.end();
    writeFileSync(file, readFileSync(file, 'utf8').replace('  guardrails: { truncate: sometimes }\n', ''));

    // The audit trail says which policy was in force, and when it changed.
    const tail = runBuiltCli(['audit', 'tail', '--config', file, '-n', '1000', '--json']);
    const configs = tail.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; action?: string; policyDigest?: string; rules?: number })
      .filter((r) => r.type === 'config');
    expect(configs.map((r) => r.action)).toEqual(['loaded', 'reloaded', 'reload-refused']);
    expect(configs[0]!.policyDigest).toMatch(/^[0-9a-f]{64}$/);
    expect(configs[1]!.policyDigest).not.toBe(configs[0]!.policyDigest);
  }, 60_000);
});
