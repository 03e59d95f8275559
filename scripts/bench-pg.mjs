#!/usr/bin/env node
// Benchmark: pgbench and a 1,000,000-row read, directly against PostgreSQL and through the
// gateway (identity and audit on), in the same run. Prints a markdown report.
//
//   pnpm bench:pg                       # defaults: 10 s per pgbench run
//   BENCH_SECONDS=20 BENCH_CLIENTS=1,8,32 pnpm bench:pg
//   BENCH_READS_ONLY=1 pnpm bench:pg    # only the 1,000,000-row reads (plain and masked)
//   BENCH_MASKING=off pnpm bench:pg     # without the masking section (A/B of its cost)
//   BENCH_WORKLOADS=select-only pnpm bench:pg   # only the workloads whose name contains this
//
// Masking is configured (four columns of bench_people), as in a deployment that masks: the
// plain read measures a result with nothing to mask, the masked read four masked columns.
//
// Needs: a PostgreSQL server at PGHOST:PGPORT (default 127.0.0.1:5432, user postgres, trust
// auth), pgbench and psql on the PATH. Creates the database sluice_bench.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HOST = process.env.PGHOST ?? '127.0.0.1';
const PORT = Number(process.env.PGPORT ?? 5432);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const CLIENTS = (process.env.BENCH_CLIENTS ?? '1,8,32').split(',').map(Number);
const SCALE = Number(process.env.BENCH_SCALE ?? 10);
const ROWS = Number(process.env.BENCH_ROWS ?? 1_000_000);
const DB = 'sluice_bench';
const TOKEN = 'bench-token-not-secret';
const SUBJECT = 'bench-bot';
const CLK_TCK = 100;
const CLI = fileURLToPath(new URL('../apps/gateway/dist/cli.js', import.meta.url));

const run = (cmd, args, env = {}) => execFileSync(cmd, args, { encoding: 'utf8', env: { ...process.env, ...env }, maxBuffer: 64 << 20 });
const psqlDirect = (db, sql) => run('psql', ['-X', '-h', HOST, '-p', String(PORT), '-U', 'postgres', '-d', db, '-Atqc', sql]);

function setup() {
  const exists = psqlDirect('postgres', `SELECT 1 FROM pg_database WHERE datname = '${DB}'`).trim() === '1';
  if (!exists) psqlDirect('postgres', `CREATE DATABASE ${DB}`);
  const scaled = psqlDirect(DB, "SELECT count(*) FROM pg_tables WHERE tablename = 'pgbench_accounts'").trim() === '1'
    ? Number(psqlDirect(DB, 'SELECT count(*) FROM pgbench_branches').trim())
    : 0;
  if (scaled !== SCALE) {
    process.stderr.write(`initialising pgbench tables at scale ${SCALE}...\n`);
    run('pgbench', ['-i', '-q', '-s', String(SCALE), '-h', HOST, '-p', String(PORT), '-U', 'postgres', DB]);
  }
  const hasRows = psqlDirect(DB, "SELECT to_regclass('bench_rows') IS NOT NULL").trim() === 't';
  const rows = hasRows ? psqlDirect(DB, 'SELECT count(*) FROM bench_rows').trim() : '0';
  if (Number(rows) !== ROWS) {
    process.stderr.write(`creating bench_rows with ${ROWS} rows...\n`);
    psqlDirect(DB, `DROP TABLE IF EXISTS bench_rows; CREATE TABLE bench_rows AS SELECT g AS id, md5(g::text) AS label, g * 1.5 AS amount, now() AS created_at FROM generate_series(1, ${ROWS}) g`);
    psqlDirect(DB, 'VACUUM ANALYZE bench_rows');
  }
  const hasPeople = psqlDirect(DB, "SELECT to_regclass('bench_people') IS NOT NULL").trim() === 't';
  const people = hasPeople ? psqlDirect(DB, 'SELECT count(*) FROM bench_people').trim() : '0';
  if (Number(people) !== ROWS) {
    process.stderr.write(`creating bench_people with ${ROWS} rows...\n`);
    psqlDirect(
      DB,
      `DROP TABLE IF EXISTS bench_people; CREATE TABLE bench_people AS SELECT g AS id, 'user' || g || '@example.com' AS email, ` +
        `'+1 415 555 ' || lpad((g % 10000)::text, 4, '0') AS phone, '4242 4242 4242 ' || lpad((g % 10000)::text, 4, '0') AS card, ` +
        `'Person ' || g AS full_name, g * 1.5 AS amount FROM generate_series(1, ${ROWS}) g`,
    );
    psqlDirect(DB, 'VACUUM ANALYZE bench_people');
  }
}

async function startGateway() {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-'));
  const config = join(dir, 'sluice.yaml');
  writeFileSync(config, `listen:
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
${process.env.BENCH_MASKING === 'off' ? '' : `masking:
  hashKey: bench-masking-key-not-secret
  columns:
    - { column: bench_people.email, strategy: partial }
    - { column: bench_people.phone, strategy: partial }
    - { column: bench_people.card, strategy: partial }
    - { column: bench_people.full_name, strategy: hash }
`}log:
  level: warn
`);
  const child = spawn(process.execPath, [CLI, 'start', '--config', config], { stdio: ['ignore', 'pipe', 'inherit'] });
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
async function startPipe() {
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

function cpuTicks(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]); // utime + stime
}

function pgbench(target, args) {
  const conn = target === 'direct'
    ? ['-h', HOST, '-p', String(PORT), '-U', 'postgres', DB]
    : target.pipe
      ? ['-h', '127.0.0.1', '-p', String(target.port), '-U', 'postgres', DB]
      : ['-h', '127.0.0.1', '-p', String(target.port), '-U', SUBJECT, 'bench'];
  const env = target === 'direct' || target.pipe ? {} : { PGPASSWORD: TOKEN };
  const out = run('pgbench', [...args, '-T', String(SECONDS), '-n', ...conn], env);
  const tps = Number(/tps = ([\d.]+)/.exec(out)?.[1]);
  const lat = Number(/latency average = ([\d.]+) ms/.exec(out)?.[1]);
  const txs = Number(/number of transactions actually processed: (\d+)/.exec(out)?.[1]);
  const failed = Number(/number of failed transactions: (\d+)/.exec(out)?.[1] ?? 0);
  return { tps, lat, txs, failed };
}

function timedRead(target, table = 'bench_rows') {
  const args = target === 'direct'
    ? ['-X', '-h', HOST, '-p', String(PORT), '-U', 'postgres', '-d', DB]
    : ['-X', '-h', '127.0.0.1', '-p', String(target.port), '-U', SUBJECT, '-d', 'bench'];
  const env = target === 'direct' ? {} : { PGPASSWORD: TOKEN };
  const t0 = process.hrtime.bigint();
  // The whole result crosses the wire (and the gateway); psql writes it to /dev/null.
  execFileSync('psql', [...args, '-Atq', '-c', `SELECT * FROM ${table}`, '-o', '/dev/null'], { env: { ...process.env, ...env }, stdio: 'ignore' });
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

/** The gateway's resident set in KiB. */
function rssKb(pid) {
  const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

/** As timedRead, without blocking this process (its memory sampler keeps running). */
function timedReadAsync(target, table) {
  const args = ['-X', '-h', '127.0.0.1', '-p', String(target.port), '-U', SUBJECT, '-d', 'bench', '-Atq', '-c', `SELECT * FROM ${table}`, '-o', '/dev/null'];
  const t0 = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const child = spawn('psql', args, { env: { ...process.env, PGPASSWORD: TOKEN }, stdio: 'ignore' });
    child.once('exit', (code) => (code === 0 ? resolve(Number(process.hrtime.bigint() - t0) / 1e9) : reject(new Error(`psql exited with ${code}`))));
  });
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main() {
  setup();
  const gw = await startGateway();
  const pipe = { ...(await startPipe()), pipe: true };
  const results = [];
  const scenarios = [
    { name: 'select-only, simple', args: ['-S', '-M', 'simple'], statements: 1 },
    { name: 'select-only, prepared', args: ['-S', '-M', 'prepared'], statements: 1 },
    { name: 'TPC-B-like, simple', args: ['-M', 'simple'], statements: 7 },
  ];
  try {
    const only = process.env.BENCH_WORKLOADS;
    for (const s of process.env.BENCH_READS_ONLY ? [] : scenarios.filter((x) => !only || x.name.includes(only))) {
      for (const c of CLIENTS) {
        const jobs = String(Math.min(c, 2));
        const args = [...s.args, '-c', String(c), '-j', jobs];
        process.stderr.write(`${s.name}, ${c} client(s): direct...`);
        const direct = pgbench('direct', args);
        process.stderr.write(' pipe...');
        const pipeBefore = cpuTicks(pipe.child.pid);
        const piped = pgbench(pipe, args);
        const pipeCpu = cpuTicks(pipe.child.pid) - pipeBefore;
        process.stderr.write(' gateway...');
        const before = cpuTicks(gw.child.pid);
        const via = pgbench(gw, args);
        const cpu = cpuTicks(gw.child.pid) - before;
        process.stderr.write(' done\n');
        const cpuPerStatementUs = (cpu / CLK_TCK / (via.txs * s.statements)) * 1e6;
        const pipeCpuPerStatementUs = (pipeCpu / CLK_TCK / (piped.txs * s.statements)) * 1e6;
        results.push({ scenario: s.name, clients: c, direct, piped, via, ratio: via.tps / direct.tps, pipeRatio: piped.tps / direct.tps, cpuPerStatementUs, pipeCpuPerStatementUs });
      }
    }
    process.stderr.write(`reading ${ROWS} rows through psql (3 runs each)...\n`);
    const directTimes = [];
    const gwTimes = [];
    let readCpu = 0;
    for (let i = 0; i < 3; i++) {
      directTimes.push(timedRead('direct'));
      const before = cpuTicks(gw.child.pid);
      gwTimes.push(timedRead(gw));
      readCpu += cpuTicks(gw.child.pid) - before;
    }
    const d = median(directTimes);
    const g = median(gwTimes);
    process.stderr.write(`reading ${ROWS} rows with 4 masked columns (3 runs each)...\n`);
    const maskedDirect = [];
    const maskedGw = [];
    let maskedCpu = 0;
    const rssBefore = rssKb(gw.child.pid);
    let rssPeak = rssBefore;
    const sampler = setInterval(() => {
      rssPeak = Math.max(rssPeak, rssKb(gw.child.pid));
    }, 50);
    for (let i = 0; i < 3; i++) {
      maskedDirect.push(timedRead('direct', 'bench_people'));
      const before = cpuTicks(gw.child.pid);
      maskedGw.push(await timedReadAsync(gw, 'bench_people'));
      maskedCpu += cpuTicks(gw.child.pid) - before;
    }
    clearInterval(sampler);
    const md = median(maskedDirect);
    const mg = median(maskedGw);
    const cpuModel = cpus()[0]?.model ?? 'unknown';
    const lines = [];
    lines.push(`Machine: ${cpus().length} cores (${cpuModel}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, PostgreSQL ${psqlDirect('postgres', 'SHOW server_version').trim()}; load generator, database and gateway share the cores.`);
    lines.push(`pgbench scale ${SCALE}, ${SECONDS} s per run, -j min(clients, 2). Identity and audit on (every statement audited; writes fsynced before they run).`);
    lines.push('');
    lines.push('| workload | clients | direct tps | gateway tps | **gateway/direct** | Node pipe/direct | direct latency ms | gateway latency ms | gateway CPU µs/statement | Node pipe CPU µs/statement |');
    lines.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const r of results) {
      lines.push(`| ${r.scenario} | ${r.clients} | ${r.direct.tps.toFixed(0)} | ${r.via.tps.toFixed(0)} | **${(r.ratio * 100).toFixed(0)}%** | ${(r.pipeRatio * 100).toFixed(0)}% | ${r.direct.lat.toFixed(3)} | ${r.via.lat.toFixed(3)} | ${r.cpuPerStatementUs.toFixed(0)} | ${r.pipeCpuPerStatementUs.toFixed(0)} |`);
    }
    lines.push('');
    lines.push(`| ${ROWS.toLocaleString('en')}-row SELECT * through psql | direct | gateway | gateway/direct |`);
    lines.push('|---|---:|---:|---:|');
    lines.push(`| seconds (median of 3) | ${d.toFixed(2)} | ${g.toFixed(2)} | |`);
    lines.push(`| rows per second | ${(ROWS / d).toFixed(0)} | ${(ROWS / g).toFixed(0)} | ${((d / g) * 100).toFixed(0)}% |`);
    lines.push(`| gateway CPU per 1M rows | | ${(readCpu / 3 / CLK_TCK).toFixed(2)} s | |`);
    lines.push('');
    lines.push(`| ${ROWS.toLocaleString('en')}-row SELECT * with 4 masked columns (bench_people) | direct | gateway | gateway/direct |`);
    lines.push('|---|---:|---:|---:|');
    lines.push(`| seconds (median of 3) | ${md.toFixed(2)} | ${mg.toFixed(2)} | |`);
    lines.push(`| rows per second | ${(ROWS / md).toFixed(0)} | ${(ROWS / mg).toFixed(0)} | ${((md / mg) * 100).toFixed(0)}% |`);
    lines.push(`| gateway CPU per 1M rows | | ${(maskedCpu / 3 / CLK_TCK).toFixed(2)} s | |`);
    lines.push(`| gateway resident memory before / peak during the reads | | ${(rssBefore / 1024).toFixed(0)} / ${(rssPeak / 1024).toFixed(0)} MiB | |`);
    const failures = results.filter((r) => r.via.failed > 0 || !Number.isFinite(r.via.tps));
    if (failures.length) lines.push(`\nWARNING: ${failures.length} gateway run(s) had failed transactions.`);
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    gw.child.kill('SIGTERM');
    pipe.child.kill('SIGTERM');
  }
}

main().catch((err) => {
  process.stderr.write(`bench failed: ${err.message}\n`);
  process.exitCode = 1;
});
