// Shared by the PostgreSQL benchmarks: the server, the pgbench runner, the gateway and the
// plain byte pipe they are compared with.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const HOST = process.env.PGHOST ?? '127.0.0.1';
export const PORT = Number(process.env.PGPORT ?? 5432);
export const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
export const DB = 'sluice_bench';
export const TOKEN = 'bench-token-not-secret';
export const SUBJECT = 'bench-bot';
export const CLK_TCK = 100;
export const CLI = fileURLToPath(new URL('../apps/gateway/dist/cli.js', import.meta.url));

export const run = (cmd, args, env = {}) => execFileSync(cmd, args, { encoding: 'utf8', env: { ...process.env, ...env }, maxBuffer: 64 << 20 });
export const psqlDirect = (db, sql) => run('psql', ['-X', '-h', HOST, '-p', String(PORT), '-U', 'postgres', '-d', db, '-Atqc', sql]);

/** Creates the bench database and pgbench's tables at `scale` unless they are there. */
export function setupPgbench(scale) {
  const exists = psqlDirect('postgres', `SELECT 1 FROM pg_database WHERE datname = '${DB}'`).trim() === '1';
  if (!exists) psqlDirect('postgres', `CREATE DATABASE ${DB}`);
  const scaled = psqlDirect(DB, "SELECT count(*) FROM pg_tables WHERE tablename = 'pgbench_accounts'").trim() === '1'
    ? Number(psqlDirect(DB, 'SELECT count(*) FROM pgbench_branches').trim())
    : 0;
  if (scaled !== scale) {
    process.stderr.write(`initialising pgbench tables at scale ${scale}...\n`);
    run('pgbench', ['-i', '-q', '-s', String(scale), '-h', HOST, '-p', String(PORT), '-U', 'postgres', DB]);
  }
}

/** The gateway config every bench starts from: one target, the bench identity, audit on. */
export function benchConfig(extra = '') {
  return `listen:
  postgres: 127.0.0.1:0
targets:
  - name: bench
    dialect: postgres
    upstream: postgres://postgres@${HOST}:${PORT}/${DB}
identities:
  tokens:
    - subject: ${SUBJECT}
      kind: service
      token: ${TOKEN}
audit:
  dir: ./audit
policy:
  rules:
    - name: bench-load
      identities: { subjects: [${SUBJECT}] }
      operations: [read, write, transaction, session-setting, copy-out]
      effect: allow
${extra}log:
  level: warn
`;
}

/** Starts `sluice start` on a config in a new temporary directory; resolves with its port. */
export async function startGatewayProcess(configYaml, env = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-'));
  const config = join(dir, 'sluice.yaml');
  writeFileSync(config, configYaml);
  const child = spawn(process.execPath, [CLI, 'start', '--config', config], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env } });
  const port = await new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (c) => {
      out += c;
      const m = /listening on postgres [\d.]+:(\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`gateway exited (${code}): ${out}`)));
  });
  return { child, port, dir, config };
}

/** A plain Node.js byte pipe to the same server: the floor any Node.js gateway starts from. */
export async function startPipe() {
  const code = `
    const net = require('node:net');
    const server = net.createServer({ noDelay: true }, (c) => {
      const u = net.connect({ host: ${JSON.stringify(HOST)}, port: ${PORT} });
      u.setNoDelay(true);
      c.pipe(u); u.pipe(c);
      c.on('error', () => u.destroy()); u.on('error', () => c.destroy());
      c.on('close', () => u.destroy()); u.on('close', () => c.destroy());
    });
    server.listen(0, '127.0.0.1', () => console.log('pipe ' + server.address().port));`;
  const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise((resolve, reject) => {
    child.stdout.on('data', (c) => {
      const m = /pipe (\d+)/.exec(String(c));
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`pipe exited (${code})`)));
  });
  return { child, port };
}

export function cpuTicks(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]); // utime + stime
}

export function pgbench(target, args, seconds = SECONDS) {
  const conn = target === 'direct'
    ? ['-h', HOST, '-p', String(PORT), '-U', 'postgres', DB]
    : target.pipe
      ? ['-h', '127.0.0.1', '-p', String(target.port), '-U', 'postgres', DB]
      : ['-h', '127.0.0.1', '-p', String(target.port), '-U', SUBJECT, 'bench'];
  const env = target === 'direct' || target.pipe ? {} : { PGPASSWORD: TOKEN };
  const out = run('pgbench', [...args, '-T', String(seconds), '-n', ...conn], env);
  const tps = Number(/tps = ([\d.]+)/.exec(out)?.[1]);
  const lat = Number(/latency average = ([\d.]+) ms/.exec(out)?.[1]);
  const txs = Number(/number of transactions actually processed: (\d+)/.exec(out)?.[1]);
  const failed = Number(/number of failed transactions: (\d+)/.exec(out)?.[1] ?? 0);
  return { tps, lat, txs, failed };
}

