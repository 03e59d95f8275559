#!/usr/bin/env node
// Benchmark for the MySQL/MariaDB dialect: sysbench oltp_point_select and oltp_read_only at 1,
// 8 and 32 threads, and a 1,000,000-row read through the mysql client, directly against the
// server, through a plain Node.js byte pipe (the floor any Node.js proxy starts from) and
// through the gateway (identity and audit on), in the same run; the read also through a second
// gateway whose config masks a text column of the table read. Prints a markdown report.
//
//   pnpm bench:mysql                        # defaults: 10 s per sysbench run
//   BENCH_SECONDS=20 BENCH_THREADS=8 pnpm bench:mysql
//   BENCH_READS_ONLY=1 pnpm bench:mysql     # only the 1,000,000-row reads (plain and masked)
//   BENCH_WORKLOADS=point pnpm bench:mysql  # only the workloads whose name contains this
//   BENCH_MASKING=off pnpm bench:mysql      # without the masked read
//   BENCH_GATEWAY_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" pnpm bench:mysql
//                                           # extra node flags for the gateway processes
//
// sysbench links libmariadb, which answers the gateway's switch to mysql_clear_password by
// itself (libmysqlclient would need LIBMYSQL_ENABLE_CLEARTEXT_PLUGIN=1, set here for it too):
// the same load generator drives all three columns. The gateway listens on a loopback address
// with allowPlaintextLoopback, so no TLS is involved in any column.
//
// Needs: MariaDB or MySQL at MYSQL_HOST:MYSQL_PORT (default 127.0.0.1:3306, user root, empty
// password), sysbench and the mysql client on the PATH, and a build (`pnpm build`; the
// package script builds first). Creates the database sluice_bench.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HOST = process.env.MYSQL_HOST ?? '127.0.0.1';
const PORT = Number(process.env.MYSQL_PORT ?? 3306);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const THREADS = (process.env.BENCH_THREADS ?? '1,8,32').split(',').map(Number);
const ROWS = Number(process.env.BENCH_ROWS ?? 1_000_000);
const TABLE_SIZE = Number(process.env.BENCH_TABLE_SIZE ?? 100_000);
const READS = Number(process.env.BENCH_READS ?? 3);
const DB = 'sluice_bench';
const TARGET = 'sluice_bench';
const SUBJECT = 'bench';
const TOKEN = 'bench-token-not-secret';
const CLK_TCK = 100;
const CLI = fileURLToPath(new URL('../apps/gateway/dist/cli.js', import.meta.url));
/** The masked variant masks this column of the table read (CHAR(32), an MD5 in hex). */
const MASKED_COLUMN = 'bench_rows.label';

const ENV = { ...process.env, LIBMYSQL_ENABLE_CLEARTEXT_PLUGIN: '1' };
const run = (cmd, args, env = {}) => execFileSync(cmd, args, { encoding: 'utf8', env: { ...ENV, ...env }, maxBuffer: 64 << 20 });
const mysql = (sql) => run('mysql', ['-h', HOST, '-P', String(PORT), '-u', 'root', '-N', '-B', '-e', sql]);

const direct = { name: 'direct', host: HOST, port: PORT, user: 'root', password: '', db: DB };

function setup() {
  mysql(`CREATE DATABASE IF NOT EXISTS ${DB}`);
  const sbtest = mysql(`SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '${DB}' AND table_name = 'sbtest1'`).trim();
  const size = sbtest === '1' ? Number(mysql(`SELECT COUNT(*) FROM ${DB}.sbtest1`).trim()) : 0;
  if (size !== TABLE_SIZE) {
    process.stderr.write(`preparing sysbench tables (${TABLE_SIZE} rows)...\n`);
    if (sbtest === '1') mysql(`DROP TABLE ${DB}.sbtest1`);
    run('sysbench', [...sysbenchArgs(direct), 'oltp_read_only', 'prepare']);
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

function sysbenchArgs(t) {
  return [
    '--db-driver=mysql',
    `--mysql-host=${t.host}`,
    `--mysql-port=${t.port}`,
    `--mysql-user=${t.user}`,
    ...(t.password ? [`--mysql-password=${t.password}`] : []),
    `--mysql-db=${t.db}`,
    '--tables=1',
    `--table-size=${TABLE_SIZE}`,
  ];
}

function gatewayConfig(dir, masked) {
  return `listen:
  mysql: 127.0.0.1:0
allowPlaintextLoopback: true
targets:
  - name: ${TARGET}
    dialect: mysql
    upstream: mysql://root@${HOST}:${PORT}/${DB}
identities:
  tokens:
    - subject: ${SUBJECT}
      kind: service
      token: ${TOKEN}
policy:
  default: deny
  rules:
    - name: bench-load
      identities: { subjects: [${SUBJECT}] }
      effect: allow
      operations: [read, write, ddl, session-setting, transaction, admin, unknown]
audit:
  dir: ${join(dir, 'audit')}
${masked ? `masking:
  hashKey: bench-masking-key-not-secret
  columns:
    - { column: ${MASKED_COLUMN}, strategy: partial }
` : ''}log:
  level: warn
`;
}

/** Starts `sluice start` with a generated config in its own temp dir. */
async function startGateway({ masked = false, nodeArgs = [] } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-mysql-'));
  const config = join(dir, 'sluice.yaml');
  writeFileSync(config, gatewayConfig(dir, masked));
  const child = spawn(process.execPath, [...nodeArgs, CLI, 'start', '--config', config], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stderr.on('data', (c) => {
    out += c;
    process.stderr.write(c);
  });
  const port = await new Promise((resolve, reject) => {
    child.stdout.on('data', (c) => {
      out += c;
      const m = /listening on mysql [\d.]+:(\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`gateway exited (${code}): ${out.trim()}`)));
  });
  return { name: masked ? 'gateway, masking' : 'gateway', child, dir, host: '127.0.0.1', port, user: SUBJECT, password: TOKEN, db: TARGET };
}

async function stopGateway(gw) {
  if (!gw) return;
  if (gw.child.exitCode === null) {
    const exited = new Promise((resolve) => gw.child.once('exit', resolve));
    gw.child.kill('SIGTERM');
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 15_000))]);
    if (gw.child.exitCode === null) gw.child.kill('SIGKILL');
  }
  if (!process.env.BENCH_KEEP_TMP) rmSync(gw.dir, { recursive: true, force: true });
}

/** A plain Node.js byte pipe to the same server. */
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
    server.listen(0, '127.0.0.1', () => console.log('listening ' + server.address().port));
  `;
  const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => {
      const m = /listening (\d+)/.exec(String(d));
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', (c) => reject(new Error(`pipe exited (${c})`)));
  });
  return { name: 'pipe', child, host: '127.0.0.1', port, user: 'root', password: '', db: DB };
}

function cpuTicks(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]); // utime + stime
}

/** Resident set in KiB. */
function rssKb(pid) {
  const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

const FAILED = { tps: NaN, qps: NaN, queries: NaN, lat: NaN, errors: NaN };

function sysbench(t, test, threads) {
  let out;
  try {
    out = run('sysbench', [...sysbenchArgs(t), `--threads=${threads}`, `--time=${SECONDS}`, '--report-interval=0', test, 'run']);
  } catch (err) {
    const detail = `${err.stdout ?? ''}${err.stderr ?? ''}`.split('\n').filter((l) => /FATAL|error/i.test(l)).slice(0, 3).join(' | ');
    process.stderr.write(`\n  sysbench ${test} through ${t.name} failed: ${detail || err.message}\n`);
    return { ...FAILED, failure: detail || err.message };
  }
  const tps = Number(/transactions:\s+\d+\s+\(([\d.]+) per sec/.exec(out)?.[1] ?? NaN);
  const queries = Number(/queries:\s+(\d+)\s+\(/.exec(out)?.[1] ?? NaN);
  const qps = Number(/queries:\s+\d+\s+\(([\d.]+) per sec/.exec(out)?.[1] ?? NaN);
  const lat = Number(/avg:\s+([\d.]+)/.exec(out)?.[1] ?? NaN);
  const errors = Number(/ignored errors:\s+(\d+)/.exec(out)?.[1] ?? 0);
  return { tps, qps, queries, lat, errors };
}

/** Measures sysbench through `t`, with the CPU of the process behind it (pipe or gateway). */
function measured(t, test, threads) {
  const before = t.child ? cpuTicks(t.child.pid) : 0;
  const r = sysbench(t, test, threads);
  const cpu = t.child ? cpuTicks(t.child.pid) - before : NaN;
  return { ...r, cpuPerQueryUs: (cpu / CLK_TCK / r.queries) * 1e6 };
}

/**
 * Reads the whole table through the mysql client, output to /dev/null; resolves with the
 * seconds taken. Asynchronous, so the memory sampler keeps running.
 */
function timedRead(t, sql = `SELECT * FROM ${DB}.bench_rows`) {
  const args = ['-h', t.host, '-P', String(t.port), '-u', t.user, '-N', '-B', '-e', sql, t.db];
  const t0 = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    let err = '';
    const child = spawn('mysql', args, { env: { ...ENV, MYSQL_PWD: t.password }, stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr.on('data', (c) => (err += c));
    child.once('exit', (code) =>
      code === 0 ? resolve(Number(process.hrtime.bigint() - t0) / 1e9) : reject(new Error(`mysql through ${t.name} exited with ${code}: ${err.trim()}`)),
    );
  });
}

/** A few rows through `t`, as text lines. */
function sample(t, sql) {
  return run('mysql', ['-h', t.host, '-P', String(t.port), '-u', t.user, '-N', '-B', '-e', sql, t.db], { MYSQL_PWD: t.password }).trim();
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const pct = (x) => (Number.isFinite(x) ? `${(x * 100).toFixed(0)}%` : 'n/a');
const num = (x, d = 0) => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');

/**
 * Reads the table READS times through each target, interleaved; for targets backed by a
 * process records its CPU per read and its resident memory before and at peak.
 */
async function reads(targets) {
  const stats = new Map(targets.map((t) => [t, { times: [], cpu: 0, rssBefore: t.child ? rssKb(t.child.pid) : 0, rssPeak: 0, failure: undefined }]));
  for (const s of stats.values()) s.rssPeak = s.rssBefore;
  const sampler = setInterval(() => {
    for (const [t, s] of stats) if (t.child && t.child.exitCode === null) s.rssPeak = Math.max(s.rssPeak, rssKb(t.child.pid));
  }, 50);
  try {
    for (let i = 0; i < READS; i++) {
      for (const [t, s] of stats) {
        if (s.failure) continue;
        const before = t.child ? cpuTicks(t.child.pid) : 0;
        try {
          s.times.push(await timedRead(t));
          if (t.child) s.cpu += cpuTicks(t.child.pid) - before;
        } catch (err) {
          s.failure = err.message;
          process.stderr.write(`  read through ${t.name} failed: ${err.message}\n`);
        }
      }
    }
  } finally {
    clearInterval(sampler);
  }
  for (const s of stats.values()) {
    s.seconds = s.failure ? NaN : median(s.times);
    s.cpuPerRead = s.failure ? NaN : s.cpu / s.times.length / CLK_TCK;
  }
  return stats;
}

/**
 * Starts the gateway with masking configured and checks that a read of the masked column comes
 * back masked; on any failure returns the reason, and the masked figure is reported unavailable.
 */
async function startMaskedGateway(nodeArgs) {
  let gw;
  try {
    gw = await startGateway({ masked: true, nodeArgs });
    const clear = sample(direct, `SELECT label FROM ${DB}.bench_rows WHERE id IN (1, 2, 3) ORDER BY id`);
    const seen = sample(gw, `SELECT label FROM ${DB}.bench_rows WHERE id IN (1, 2, 3) ORDER BY id`);
    if (seen === clear) throw new Error(`${MASKED_COLUMN} came back unmasked (${seen.split('\n')[0]})`);
    return { gw, example: `${clear.split('\n')[0]} → ${seen.split('\n')[0]}` };
  } catch (err) {
    await stopGateway(gw);
    return { failure: err.message.split('\n')[0] };
  }
}

async function main() {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`pnpm build\` first`);
  setup();
  const pipe = await startPipe();
  const nodeArgs = (process.env.BENCH_GATEWAY_NODE_ARGS ?? '').split(' ').filter(Boolean);
  let gw;
  let masked;
  const lines = [];
  try {
    gw = await startGateway({ nodeArgs });
    const results = [];
    const only = process.env.BENCH_WORKLOADS;
    const tests = process.env.BENCH_READS_ONLY ? [] : ['oltp_point_select', 'oltp_read_only'].filter((x) => !only || x.includes(only));
    for (const test of tests) {
      for (const threads of THREADS) {
        process.stderr.write(`${test}, ${threads} thread(s): direct...`);
        const d = measured(direct, test, threads);
        process.stderr.write(' pipe...');
        const p = measured(pipe, test, threads);
        process.stderr.write(' gateway...');
        const g = measured(gw, test, threads);
        process.stderr.write(` done (${num(d.qps)} / ${num(p.qps)} / ${num(g.qps)} qps)\n`);
        results.push({ test, threads, d, p, g });
      }
    }

    let maskedNote;
    if (process.env.BENCH_MASKING !== 'off' && READS > 0) {
      process.stderr.write(`starting a gateway that masks ${MASKED_COLUMN}...\n`);
      const m = await startMaskedGateway(nodeArgs);
      if (m.failure) {
        maskedNote = `masked read unavailable: ${m.failure}`;
        process.stderr.write(`  ${maskedNote}\n`);
      } else {
        masked = m.gw;
        maskedNote = `masked read: ${MASKED_COLUMN} with \`partial\`, e.g. ${m.example}`;
      }
    }
    if (READS > 0) process.stderr.write(`reading ${ROWS} rows through the mysql client (${READS} runs each)...\n`);
    const targets = READS > 0 ? [direct, pipe, gw, ...(masked ? [masked] : [])] : [];
    const r = await reads(targets);
    const sd = r.get(direct);
    const sp = r.get(pipe);
    const sg = r.get(gw);
    const sm = masked ? r.get(masked) : { seconds: NaN, cpuPerRead: NaN, rssBefore: NaN, rssPeak: NaN, failure: maskedNote };

    const version = mysql('SELECT VERSION()').trim();
    const sbVersion = run('sysbench', ['--version']).trim();
    lines.push(
      `Machine: ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, server ${version}; ` +
        'load generator, database, pipe and gateway share the cores.',
    );
    lines.push(
      `${sbVersion} (libmariadb; it answers the gateway's mysql_clear_password switch), 1 table of ${TABLE_SIZE} rows, ${SECONDS} s per run, ` +
        'server-side prepared statements (sysbench default). Gateway: identity and audit on (every statement audited).',
    );
    lines.push('');
    if (results.length) {
      lines.push(
        '| workload | threads | direct qps | Node pipe qps | gateway qps | **gateway/direct** | pipe/direct | direct latency ms | gateway latency ms | gateway CPU µs/query | pipe CPU µs/query |',
      );
      lines.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
      for (const x of results) {
        lines.push(
          `| ${x.test} | ${x.threads} | ${num(x.d.qps)} | ${num(x.p.qps)} | ${num(x.g.qps)} | **${pct(x.g.qps / x.d.qps)}** | ${pct(x.p.qps / x.d.qps)} | ` +
            `${num(x.d.lat, 3)} | ${num(x.g.lat, 3)} | ${num(x.g.cpuPerQueryUs)} | ${num(x.p.cpuPerQueryUs)} |`,
        );
      }
      lines.push('');
      lines.push('Latency is sysbench\'s average per transaction (one query for oltp_point_select, 16 for oltp_read_only).');
      lines.push('');
    }
    if (READS > 0) {
      const col = (s) => (s.failure ? 'unavailable' : num(s.seconds, 2));
      const rps = (s) => (s.failure ? 'unavailable' : num(ROWS / s.seconds));
      const ratio = (s) => (s.failure ? 'unavailable' : pct(sd.seconds / s.seconds));
      lines.push(`| ${ROWS.toLocaleString('en')}-row SELECT * through the mysql client | direct | Node pipe | gateway | gateway, masking ${MASKED_COLUMN} |`);
      lines.push('|---|---:|---:|---:|---:|');
      lines.push(`| seconds (median of ${READS}) | ${col(sd)} | ${col(sp)} | ${col(sg)} | ${col(sm)} |`);
      lines.push(`| rows per second | ${rps(sd)} | ${rps(sp)} | ${rps(sg)} | ${rps(sm)} |`);
      lines.push(`| **of direct** | | ${ratio(sp)} | **${ratio(sg)}** | **${ratio(sm)}** |`);
      lines.push(`| CPU per read (pipe or gateway process) | | ${num(sp.cpuPerRead, 2)} s | ${num(sg.cpuPerRead, 2)} s | ${sm.failure ? 'unavailable' : `${num(sm.cpuPerRead, 2)} s`} |`);
      lines.push(
        `| resident memory before / peak during the reads | | ${num(sp.rssBefore / 1024)} / ${num(sp.rssPeak / 1024)} MiB | ${num(sg.rssBefore / 1024)} / ${num(sg.rssPeak / 1024)} MiB | ` +
          `${sm.failure ? 'unavailable' : `${num(sm.rssBefore / 1024)} / ${num(sm.rssPeak / 1024)} MiB`} |`,
      );
    }
    if (maskedNote) lines.push(`\n${maskedNote}`);
    const failures = results.filter((x) => !Number.isFinite(x.g.qps) || x.g.errors > 0);
    if (failures.length) lines.push(`\nWARNING: ${failures.length} gateway run(s) failed or had errors.`);
    for (const s of [sd, sp, sg]) if (s?.failure) lines.push(`\nWARNING: ${s.failure}`);
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    pipe.child.kill('SIGTERM');
    await stopGateway(masked);
    await stopGateway(gw);
  }
}

main().catch((err) => {
  process.stderr.write(`bench failed: ${err.message}\n`);
  process.exitCode = 1;
});
