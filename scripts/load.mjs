// Load: many idle and some busy sessions through one gateway, with the gateway's memory sampled
// every second. Starts a throwaway upstream (PostgreSQL or MariaDB, from @sluice/testkit) with
// room for every session, the built gateway as a child process, opens the idle sessions (each
// runs one statement, then waits), then runs the active sessions in a loop of simple statements
// for the given time. Prints the figures: RSS and heap first/last/max after the warm-up, their
// slope in MB/min, statements per second, errors, and whether every idle session still works.
//
//   pnpm load                                  # PostgreSQL, 2,000 idle + 200 active for 5 min
//   pnpm load -- --dialect mysql --minutes 3
//   node scripts/load.mjs --idle 300 --active 50 --seconds 20 --warmup 5 --json
//
// Needs the build (pnpm build), the PostgreSQL or MariaDB server binaries, and a file limit
// above two descriptors per session (ulimit -n).
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const CLI = fileURLToPath(new URL('../apps/gateway/dist/cli.js', import.meta.url));
const PROBE = fileURLToPath(new URL('./load-memory-probe.mjs', import.meta.url));
// The throwaway servers, by module (the testkit's index also loads vitest-only helpers).
const TEMP_POSTGRES = new URL('../packages/testkit/dist/temp-postgres.js', import.meta.url);
const TEMP_MARIADB = new URL('../packages/testkit/dist/temp-mariadb.js', import.meta.url);
// pg and mysql2 are the gateway's (dev) dependencies; the root has none.
const requireFromGateway = createRequire(new URL('../apps/gateway/package.json', import.meta.url));

const { values } = parseArgs({
  options: {
    dialect: { type: 'string', default: 'postgres' },
    idle: { type: 'string', default: '2000' },
    active: { type: 'string', default: '200' },
    seconds: { type: 'string' },
    minutes: { type: 'string' },
    warmup: { type: 'string', default: '30' },
    json: { type: 'boolean', default: false },
  },
});

function count(name, text, min = 0) {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min) {
    process.stderr.write(`load: --${name} takes a whole number of at least ${min}, got ${JSON.stringify(text)}\n`);
    process.exit(2);
  }
  return n;
}

const DIALECT = values.dialect;
if (DIALECT !== 'postgres' && DIALECT !== 'mysql') {
  process.stderr.write(`load: --dialect is postgres or mysql, got ${JSON.stringify(DIALECT)}\n`);
  process.exit(2);
}
const IDLE = count('idle', values.idle);
const ACTIVE = count('active', values.active, 1);
const SECONDS = values.seconds !== undefined ? count('seconds', values.seconds, 1) : count('minutes', values.minutes ?? '5', 1) * 60;
const WARMUP = count('warmup', values.warmup);
if (WARMUP >= SECONDS) {
  process.stderr.write(`load: the warm-up (${WARMUP} s) must be shorter than the run (${SECONDS} s)\n`);
  process.exit(2);
}
if (!existsSync(CLI)) {
  process.stderr.write(`load: ${CLI} is missing: run pnpm build first\n`);
  process.exit(2);
}

const TOKEN = 'load-token-not-secret-0123456789';
const SUBJECT = 'load-bot';
/** Sessions opened at once while the idle ones are set up. */
const OPEN_BATCH = 50;

const log = (line) => process.stderr.write(`load: ${line}\n`);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function rssKb(pid) {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

function readProbe(file) {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return undefined;
  }
}

/** Least-squares slope of (t in ms, v) pairs, per minute. */
function slopePerMinute(points) {
  if (points.length < 2) return 0;
  const n = points.length;
  const mt = points.reduce((s, p) => s + p.t, 0) / n;
  const mv = points.reduce((s, p) => s + p.v, 0) / n;
  let num = 0;
  let den = 0;
  for (const p of points) {
    num += (p.t - mt) * (p.v - mv);
    den += (p.t - mt) ** 2;
  }
  return den === 0 ? 0 : (num / den) * 60_000;
}

const mb = (kb) => Math.round((kb / 1024) * 10) / 10;

/** `values` cut into four consecutive parts (fewer when there are fewer values). */
function quarters(values) {
  const size = Math.max(1, Math.ceil(values.length / 4));
  const parts = [];
  for (let i = 0; i < values.length; i += size) parts.push(values.slice(i, i + size));
  return parts;
}

/** Starts the built gateway with the memory probe; resolves with its process and port. */
function startGateway(dir, upstream) {
  const file = join(dir, 'sluice.yaml');
  writeFileSync(
    file,
    `listen:
  ${DIALECT}: 127.0.0.1:0
allowPlaintextLoopback: true
targets:
  - name: load
    dialect: ${DIALECT}
    upstream: ${upstream}
identities:
  tokens:
    - { subject: ${SUBJECT}, kind: service, groups: [load], token: ${TOKEN} }
  failedLogins:
    maxAttempts: 1000000
policy:
  rules:
    - { name: load, identities: { groups: [load] }, operations: [read, transaction, session-setting], effect: allow }
lineage:
  enabled: false
telemetry:
  enabled: false
pidFile: ./run/gw.pid
log:
  level: warn
`,
  );
  const probeFile = join(dir, 'memory.json');
  const child = spawn(process.execPath, ['--expose-gc', '--import', PROBE, CLI, 'start', '--config', file], {
    env: { ...process.env, SLUICE_MEMORY_PROBE_FILE: probeFile },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  return new Promise((resolve, reject) => {
    const onData = (d) => {
      out += d.toString();
      if (out.length > 1 << 20) out = out.slice(-(1 << 19));
      const m = /listening on \w+ 127\.0\.0\.1:(\d+)/.exec(out);
      if (m) {
        child.stdout.off('data', onData);
        resolve({ child, port: Number(m[1]), probeFile, output: () => out });
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', (d) => {
      out += d.toString();
      if (out.length > 1 << 20) out = out.slice(-(1 << 19));
    });
    child.once('exit', (code) => reject(new Error(`the gateway exited (${code}) before it listened:\n${out}`)));
  });
}

/** A session through the gateway: query(sql) and close(). */
async function openSession(port) {
  if (DIALECT === 'postgres') {
    const pg = requireFromGateway('pg');
    const c = new pg.Client({ host: '127.0.0.1', port, database: 'load', user: SUBJECT, password: TOKEN, connectionTimeoutMillis: 60_000 });
    let lost;
    c.on('error', (err) => (lost = err));
    await c.connect();
    return {
      query: (sql) => c.query(sql),
      lost: () => lost,
      close: () => c.end().catch(() => undefined),
    };
  }
  const mysql = requireFromGateway('mysql2/promise');
  const c = await mysql.createConnection({
    host: '127.0.0.1',
    port,
    user: SUBJECT,
    password: TOKEN,
    database: 'load',
    connectTimeout: 60_000,
    authPlugins: { mysql_clear_password: () => () => Buffer.from(`${TOKEN}\0`) },
  });
  let lost;
  c.on('error', (err) => (lost = err));
  return {
    query: (sql) => c.query(sql),
    lost: () => lost,
    close: async () => c.destroy(),
  };
}

async function main() {
  const { startTempPostgres } = await import(TEMP_POSTGRES.href);
  const { startTempMariaDb } = await import(TEMP_MARIADB.href);
  const dir = mkdtempSync(join(tmpdir(), 'sluice-load-'));
  const maxConnections = IDLE + ACTIVE + 50;
  log(`starting a throwaway ${DIALECT === 'postgres' ? 'PostgreSQL' : 'MariaDB'} with max_connections ${maxConnections}`);
  const server =
    DIALECT === 'postgres'
      ? await startTempPostgres({ config: [`max_connections = ${maxConnections}`, 'shared_buffers = 64MB'] })
      : await startTempMariaDb({ serverArgs: [`--max-connections=${maxConnections}`] });
  const upstream = DIALECT === 'postgres' ? server.url('postgres', undefined, 'postgres') : server.url('root');
  let gateway;
  const sessions = [];
  try {
    gateway = await startGateway(dir, upstream);
    const pid = gateway.child.pid;
    await sleep(1000);
    const rssStart = rssKb(pid);

    // The idle sessions: each logs in and runs one statement (so its upstream session is open).
    const openStarted = Date.now();
    for (let i = 0; i < IDLE; i += OPEN_BATCH) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(OPEN_BATCH, IDLE - i) }, async () => {
          const s = await openSession(gateway.port);
          await s.query('SELECT 1 AS idle');
          return s;
        }),
      );
      sessions.push(...batch);
    }
    const openMs = Date.now() - openStarted;
    await sleep(1000);
    const rssIdle = rssKb(pid);
    log(`${IDLE} idle sessions open in ${openMs} ms; gateway RSS ${mb(rssStart)} MB before, ${mb(rssIdle)} MB with them`);

    // The active sessions, in a loop for SECONDS.
    const active = [];
    for (let i = 0; i < ACTIVE; i += OPEN_BATCH) {
      active.push(...(await Promise.all(Array.from({ length: Math.min(OPEN_BATCH, ACTIVE - i) }, () => openSession(gateway.port)))));
    }
    let statements = 0;
    const errors = [];
    const latencies = [];
    let running = true;
    const loops = active.map(async (s, i) => {
      for (let n = 0; running; n++) {
        const t = performance.now();
        try {
          await s.query(n % 2 === 0 ? 'SELECT 1 AS one' : `SELECT ${i} AS session, ${n % 1000} AS n`);
        } catch (err) {
          errors.push(err.message);
          return;
        }
        statements++;
        if (n % 20 === 0) latencies.push(performance.now() - t);
      }
    });

    const samples = [];
    const started = Date.now();
    let lastCount = 0;
    while (Date.now() - started < SECONDS * 1000) {
      await sleep(1000);
      const rss = rssKb(pid);
      if (rss === undefined) throw new Error(`the gateway is gone (exit ${gateway.child.exitCode}):\n${gateway.output()}`);
      const probe = readProbe(gateway.probeFile);
      const t = Date.now() - started;
      const afterGc = readProbe(`${gateway.probeFile}.gc`);
      samples.push({ t, rssKb: rss, heapKb: probe ? probe.heapUsed / 1024 : undefined, liveKb: afterGc ? afterGc.heapUsed / 1024 : undefined, statements });
      const second = Math.round(t / 1000);
      if (second % 10 === 0) log(`${second} s: RSS ${mb(rss)} MB, heap ${probe ? mb(probe.heapUsed / 1024) : '?'} MB, ${Math.round(((statements - lastCount) * 1000) / 1000)} statements in the last second`);
      lastCount = statements;
    }
    running = false;
    await Promise.all(loops);
    const durationMs = Date.now() - started;

    // Every idle session is still there and still answers.
    let idleAlive = 0;
    const idleProblems = [];
    for (let i = 0; i < sessions.length; i += OPEN_BATCH) {
      await Promise.all(
        sessions.slice(i, i + OPEN_BATCH).map(async (s) => {
          try {
            await s.query('SELECT 2 AS still_here');
            idleAlive++;
          } catch (err) {
            idleProblems.push(err.message);
          }
        }),
      );
    }
    for (const s of [...sessions, ...active]) await s.close();
    sessions.length = 0;

    const steady = samples.filter((s) => s.t >= WARMUP * 1000);
    const rss = steady.map((s) => s.rssKb);
    const heap = steady.map((s) => s.heapKb).filter((h) => h !== undefined);
    const live = steady.map((s) => s.liveKb).filter((h) => h !== undefined);
    latencies.sort((a, b) => a - b);
    const pct = (p) => (latencies.length ? Math.round(latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] * 100) / 100 : 0);
    const result = {
      dialect: DIALECT,
      idle: IDLE,
      active: ACTIVE,
      seconds: Math.round(durationMs / 1000),
      warmupSeconds: WARMUP,
      openIdleMs: openMs,
      rssStartMb: mb(rssStart),
      rssWithIdleMb: mb(rssIdle),
      idleKbPerSession: IDLE > 0 ? Math.round((rssIdle - rssStart) / IDLE) : 0,
      rssFirstMb: mb(rss[0]),
      rssLastMb: mb(rss.at(-1)),
      rssMaxMb: mb(Math.max(...rss)),
      rssSlopeMbPerMin: Math.round(slopePerMinute(steady.map((s) => ({ t: s.t, v: s.rssKb / 1024 }))) * 100) / 100,
      heapFirstMb: heap.length ? mb(heap[0]) : null,
      heapLastMb: heap.length ? mb(heap.at(-1)) : null,
      heapMaxMb: heap.length ? mb(Math.max(...heap)) : null,
      heapSlopeMbPerMin: heap.length
        ? Math.round(slopePerMinute(steady.filter((s) => s.heapKb !== undefined).map((s) => ({ t: s.t, v: s.heapKb / 1024 }))) * 100) / 100
        : null,
      // The lowest value in each quarter of the steady part: with a garbage collector's
      // sawtooth, the troughs show a climb the slope can hide, or noise the slope can show.
      rssTroughsMb: quarters(steady.map((s) => s.rssKb)).map((q) => mb(Math.min(...q))),
      heapTroughsMb: heap.length ? quarters(heap).map((q) => mb(Math.min(...q))) : null,
      // The heap after a forced full collection (every 5 s): live objects only.
      liveHeapFirstMb: live.length ? mb(live[0]) : null,
      liveHeapLastMb: live.length ? mb(live.at(-1)) : null,
      liveHeapMaxMb: live.length ? mb(Math.max(...live)) : null,
      liveHeapSlopeMbPerMin: live.length
        ? Math.round(slopePerMinute(steady.filter((s) => s.liveKb !== undefined).map((s) => ({ t: s.t, v: s.liveKb / 1024 }))) * 100) / 100
        : null,
      statements,
      statementsPerSecond: Math.round((statements * 1000) / durationMs),
      latencyP50Ms: pct(0.5),
      latencyP99Ms: pct(0.99),
      errors: errors.length,
      firstErrors: [...new Set(errors)].slice(0, 3),
      idleAlive,
      idleProblems: [...new Set(idleProblems)].slice(0, 3),
      samples: samples.length,
    };
    gateway.child.kill('SIGTERM');
    await new Promise((resolve) => (gateway.child.exitCode !== null ? resolve() : gateway.child.once('exit', resolve)));

    process.stdout.write(
      [
        `load (${DIALECT}): ${IDLE} idle + ${ACTIVE} active sessions through one gateway for ${result.seconds} s (warm-up ${WARMUP} s)`,
        `  idle sessions opened in ${openMs} ms; RSS ${result.rssStartMb} MB before them, ${result.rssWithIdleMb} MB with them (${result.idleKbPerSession} kB per idle session)`,
        `  RSS after warm-up: first ${result.rssFirstMb} MB, last ${result.rssLastMb} MB, max ${result.rssMaxMb} MB, slope ${result.rssSlopeMbPerMin} MB/min`,
        `  heap used after warm-up: first ${result.heapFirstMb} MB, last ${result.heapLastMb} MB, max ${result.heapMaxMb} MB, slope ${result.heapSlopeMbPerMin} MB/min`,
        `  lowest in each quarter after warm-up: RSS ${result.rssTroughsMb.join(' / ')} MB, heap ${result.heapTroughsMb?.join(' / ') ?? '?'} MB`,
        `  heap after a full collection (live objects): first ${result.liveHeapFirstMb} MB, last ${result.liveHeapLastMb} MB, max ${result.liveHeapMaxMb} MB, slope ${result.liveHeapSlopeMbPerMin} MB/min`,
        `  ${statements} statements, ${result.statementsPerSecond}/s, latency p50 ${result.latencyP50Ms} ms, p99 ${result.latencyP99Ms} ms; ${errors.length} errors`,
        `  idle sessions still answering at the end: ${idleAlive} of ${IDLE}`,
        '',
      ].join('\n'),
    );
    if (values.json) process.stdout.write(`LOAD-RESULT ${JSON.stringify(result)}\n`);
    return errors.length === 0 && idleAlive === IDLE ? 0 : 1;
  } finally {
    for (const s of sessions) await s.close();
    if (gateway && gateway.child.exitCode === null) gateway.child.kill('SIGKILL');
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`load: ${err.stack ?? err.message}\n`);
    process.exit(1);
  },
);
