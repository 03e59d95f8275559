#!/usr/bin/env node
// Benchmark for the MySQL/MariaDB dialect: sysbench oltp_point_select and oltp_read_only at 1,
// 8 and 32 threads, and a 1,000,000-row read through the mysql client, directly against the
// server and through a plain Node.js byte pipe (the floor any Node.js proxy starts from), in the
// same run. Prints a markdown report.
//
//   pnpm bench:mysql                        # defaults: 10 s per sysbench run
//   BENCH_SECONDS=20 BENCH_THREADS=8 pnpm bench:mysql
//
// Needs: MariaDB or MySQL at MYSQL_HOST:MYSQL_PORT (default 127.0.0.1:3306, user root, empty
// password), sysbench and the mysql client on the PATH. Creates the database sluice_bench.
import { execFileSync, spawn } from 'node:child_process';
import { cpus, totalmem } from 'node:os';

const HOST = process.env.MYSQL_HOST ?? '127.0.0.1';
const PORT = Number(process.env.MYSQL_PORT ?? 3306);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const THREADS = (process.env.BENCH_THREADS ?? '1,8,32').split(',').map(Number);
const ROWS = Number(process.env.BENCH_ROWS ?? 1_000_000);
const TABLE_SIZE = Number(process.env.BENCH_TABLE_SIZE ?? 100_000);
const DB = 'sluice_bench';
const CLK_TCK = 100;

const run = (cmd, args) => execFileSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20 });
const mysql = (sql, port = PORT) => run('mysql', ['-h', HOST, '-P', String(port), '-u', 'root', '-N', '-B', '-e', sql]);

function setup() {
  mysql(`CREATE DATABASE IF NOT EXISTS ${DB}`);
  const sbtest = mysql(`SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '${DB}' AND table_name = 'sbtest1'`).trim();
  if (sbtest !== '1') {
    process.stderr.write(`preparing sysbench tables (${TABLE_SIZE} rows)...\n`);
    run('sysbench', [...sysbenchArgs(PORT), 'oltp_read_only', 'prepare']);
  }
  const rows = mysql(`SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '${DB}' AND table_name = 'bench_rows'`).trim();
  const count = rows === '1' ? Number(mysql(`SELECT COUNT(*) FROM ${DB}.bench_rows`).trim()) : 0;
  if (count !== ROWS) {
    process.stderr.write(`creating bench_rows with ${ROWS} rows...\n`);
    mysql(
      `DROP TABLE IF EXISTS ${DB}.bench_rows; CREATE TABLE ${DB}.bench_rows (id INT PRIMARY KEY, label CHAR(32), amount DECIMAL(12,2), created_at DATETIME) ENGINE=InnoDB; ` +
        `INSERT INTO ${DB}.bench_rows SELECT seq, MD5(seq), seq * 1.5, NOW() FROM ${DB}.seq_1_to_${ROWS}`,
    );
  }
}

function sysbenchArgs(port) {
  return ['--db-driver=mysql', `--mysql-host=${HOST}`, `--mysql-port=${port}`, '--mysql-user=root', `--mysql-db=${DB}`, '--tables=1', `--table-size=${TABLE_SIZE}`];
}

/** A plain Node.js byte pipe to the same server. */
async function startPipe() {
  const code = `
    const net = require('node:net');
    const server = net.createServer({ noDelay: true }, (c) => {
      const u = net.connect(${PORT}, ${JSON.stringify(HOST)});
      u.setNoDelay(true);
      c.pipe(u); u.pipe(c);
      c.on('error', () => u.destroy()); u.on('error', () => c.destroy());
    });
    server.listen(0, '127.0.0.1', () => console.log('listening ' + server.address().port));
  `;
  const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise((resolve) => {
    child.stdout.on('data', (d) => {
      const m = /listening (\d+)/.exec(String(d));
      if (m) resolve(Number(m[1]));
    });
  });
  return { child, port };
}

function cpuTicks(pid) {
  const stat = run('cat', [`/proc/${pid}/stat`]).split(') ')[1].split(' ');
  return Number(stat[11]) + Number(stat[12]);
}

function sysbench(port, test, threads) {
  const out = run('sysbench', [...sysbenchArgs(port), `--threads=${threads}`, `--time=${SECONDS}`, '--report-interval=0', test, 'run']);
  const tps = Number(/transactions:\s+\d+\s+\(([\d.]+) per sec/.exec(out)?.[1] ?? NaN);
  const qps = Number(/queries:\s+\d+\s+\(([\d.]+) per sec/.exec(out)?.[1] ?? NaN);
  const lat = Number(/avg:\s+([\d.]+)/.exec(out)?.[1] ?? NaN);
  const errors = Number(/errors:\s+(\d+)/.exec(out)?.[1] ?? 0);
  return { tps, qps, lat, errors };
}

function timedRead(port) {
  const t0 = process.hrtime.bigint();
  execFileSync('sh', ['-c', `mysql -h ${HOST} -P ${port} -u root -N -B -e 'SELECT * FROM ${DB}.bench_rows' > /dev/null`]);
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main() {
  setup();
  const pipe = await startPipe();
  const lines = [];
  try {
    const results = [];
    for (const test of ['oltp_point_select', 'oltp_read_only']) {
      for (const threads of THREADS) {
        process.stderr.write(`${test}, ${threads} thread(s): direct...`);
        const direct = sysbench(PORT, test, threads);
        process.stderr.write(' pipe...');
        const before = cpuTicks(pipe.child.pid);
        const piped = sysbench(pipe.port, test, threads);
        const cpu = cpuTicks(pipe.child.pid) - before;
        process.stderr.write(' done\n');
        results.push({ test, threads, direct, piped, cpuPerQueryUs: (cpu / CLK_TCK / (piped.qps * SECONDS)) * 1e6 });
      }
    }
    process.stderr.write(`reading ${ROWS} rows through the mysql client (3 runs each)...\n`);
    const d = [];
    const p = [];
    for (let i = 0; i < 3; i++) {
      d.push(timedRead(PORT));
      p.push(timedRead(pipe.port));
    }
    const version = mysql('SELECT VERSION()').trim();
    lines.push(`Machine: ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, server ${version}; load generator, database and proxies share the cores.`);
    lines.push(`sysbench 1.0, 1 table of ${TABLE_SIZE} rows, ${SECONDS} s per run.`);
    lines.push('');
    lines.push('| workload | threads | direct qps | Node pipe qps | **pipe/direct** | direct latency ms | pipe latency ms | pipe CPU µs/query |');
    lines.push('|---|---:|---:|---:|---:|---:|---:|---:|');
    for (const r of results) {
      lines.push(`| ${r.test} | ${r.threads} | ${r.direct.qps.toFixed(0)} | ${r.piped.qps.toFixed(0)} | **${((r.piped.qps / r.direct.qps) * 100).toFixed(0)}%** | ${r.direct.lat.toFixed(3)} | ${r.piped.lat.toFixed(3)} | ${r.cpuPerQueryUs.toFixed(0)} |`);
    }
    lines.push('');
    lines.push(`| ${ROWS.toLocaleString('en')}-row SELECT * through the mysql client | direct | Node pipe | pipe/direct |`);
    lines.push('|---|---:|---:|---:|');
    lines.push(`| seconds (median of 3) | ${median(d).toFixed(2)} | ${median(p).toFixed(2)} | |`);
    lines.push(`| rows per second | ${(ROWS / median(d)).toFixed(0)} | ${(ROWS / median(p)).toFixed(0)} | ${((median(d) / median(p)) * 100).toFixed(0)}% |`);
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    pipe.child.kill('SIGTERM');
  }
}

main().catch((err) => {
  process.stderr.write(`bench failed: ${err.message}\n`);
  process.exitCode = 1;
});
