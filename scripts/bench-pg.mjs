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
import { cpus, totalmem } from 'node:os';
import { readFileSync } from 'node:fs';
import { CLK_TCK, DB, HOST, PORT, SECONDS, SUBJECT, TOKEN, benchConfig, cpuTicks, pgbench, psqlDirect, setupPgbench, startGatewayProcess, startPipe } from './bench-pg-common.mjs';

const CLIENTS = (process.env.BENCH_CLIENTS ?? '1,8,32').split(',').map(Number);
const SCALE = Number(process.env.BENCH_SCALE ?? 10);
const ROWS = Number(process.env.BENCH_ROWS ?? 1_000_000);

function setup() {
  setupPgbench(SCALE);
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

function startGateway() {
  return startGatewayProcess(benchConfig(process.env.BENCH_MASKING === 'off' ? '' : `masking:
  hashKey: bench-masking-key-not-secret
  columns:
    - { column: bench_people.email, strategy: partial }
    - { column: bench_people.phone, strategy: partial }
    - { column: bench_people.card, strategy: partial }
    - { column: bench_people.full_name, strategy: hash }
`));
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
