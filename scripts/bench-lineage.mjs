#!/usr/bin/env node
// Benchmark: what lineage and tracing cost on pgbench's select-only workload. The same
// workload runs directly against PostgreSQL and through four gateways started side by side
// (lineage off or on, tracing off or on), in interleaved rounds, and the report compares each
// with the gateway that has both off. A second gateway with both off measures the noise.
//
//   pnpm bench:lineage                         # defaults: 10 s per run, 1 and 8 clients, 3 rounds
//   BENCH_SECONDS=20 BENCH_ROUNDS=5 BENCH_CLIENTS=8 pnpm bench:lineage
//
// Tracing exports over OTLP/HTTP (protobuf, the default protocol) to a receiver in its own
// process that accepts and discards every request, so the export is paid in full. Tracing runs
// with the default sampler (every session and statement recorded), and once with 10% of
// sessions sampled (a statement carrying a sampled traceparent is always recorded).
//
// Needs: a PostgreSQL server at PGHOST:PGPORT (default 127.0.0.1:5432, user postgres, trust
// auth), pgbench and psql on the PATH. Creates the database sluice_bench.
import { spawn } from 'node:child_process';
import { cpus, totalmem } from 'node:os';
import { SECONDS, benchConfig, pgbench, psqlDirect, setupPgbench, startGatewayProcess } from './bench-pg-common.mjs';

const CLIENTS = (process.env.BENCH_CLIENTS ?? '1,8').split(',').map(Number);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const SCALE = Number(process.env.BENCH_SCALE ?? 10);

/** An OTLP/HTTP receiver that answers 200 to everything and counts what it got. */
async function startReceiver() {
  const code = `
    const http = require('node:http');
    let requests = 0, bytes = 0;
    const server = http.createServer((req, res) => {
      req.on('data', (c) => { bytes += c.length; });
      req.on('end', () => { requests++; res.writeHead(200, { 'content-type': req.headers['content-type'] || 'application/x-protobuf' }); res.end(); });
    });
    server.listen(0, '127.0.0.1', () => console.log('receiver ' + server.address().port));
    process.on('SIGUSR2', () => console.log('received ' + requests + ' ' + bytes));`;
  const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise((resolve, reject) => {
    child.stdout.once('data', (c) => {
      const m = /receiver (\d+)/.exec(String(c));
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`receiver exited (${code})`)));
  });
  return { child, port };
}

function receivedSoFar(receiver) {
  return new Promise((resolve) => {
    receiver.child.stdout.once('data', (c) => {
      const m = /received (\d+) (\d+)/.exec(String(c));
      resolve(m ? { requests: Number(m[1]), bytes: Number(m[2]) } : { requests: 0, bytes: 0 });
    });
    receiver.child.kill('SIGUSR2');
  });
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main() {
  setupPgbench(SCALE);
  const receiver = await startReceiver();
  const otel = {
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${receiver.port}`,
    OTEL_BSP_SCHEDULE_DELAY: '1000',
    OTEL_METRIC_EXPORT_INTERVAL: '10000',
  };
  const off = { OTEL_SDK_DISABLED: 'true' };
  const configs = [
    { name: 'lineage off, tracing off', yaml: benchConfig('lineage:\n  enabled: false\n'), env: off },
    { name: 'lineage off, tracing off (again)', yaml: benchConfig('lineage:\n  enabled: false\n'), env: off },
    { name: 'lineage on, tracing off', yaml: benchConfig('lineage:\n  store: ./lineage.db\n'), env: off },
    { name: 'lineage off, tracing on', yaml: benchConfig('lineage:\n  enabled: false\n'), env: otel },
    { name: 'lineage on, tracing on', yaml: benchConfig('lineage:\n  store: ./lineage.db\n'), env: otel },
    {
      name: 'lineage on, tracing on, 10% of sessions sampled',
      yaml: benchConfig('lineage:\n  store: ./lineage.db\n'),
      env: { ...otel, OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.1' },
    },
  ];
  const gateways = [];
  for (const c of configs) gateways.push({ ...c, gw: await startGatewayProcess(c.yaml, c.env) });
  const results = [];
  try {
    for (const clients of CLIENTS) {
      const args = ['-S', '-M', 'simple', '-c', String(clients), '-j', String(Math.min(clients, 2))];
      const tps = { direct: [] };
      for (const g of gateways) tps[g.name] = [];
      for (let round = 1; round <= ROUNDS; round++) {
        process.stderr.write(`select-only, ${clients} client(s), round ${round}/${ROUNDS}: direct`);
        tps.direct.push(pgbench('direct', args).tps);
        // Rotate the order each round so no configuration always runs first or last.
        const order = gateways.map((_, i) => gateways[(i + round) % gateways.length]);
        for (const g of order) {
          process.stderr.write(` | ${g.name}`);
          const r = pgbench(g.gw, args);
          if (r.failed > 0 || !Number.isFinite(r.tps)) throw new Error(`${g.name}: ${r.failed} failed transactions`);
          tps[g.name].push(r.tps);
        }
        process.stderr.write('\n');
      }
      results.push({ clients, tps });
    }
    const received = await receivedSoFar(receiver);
    const lines = [];
    lines.push(`Machine: ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, PostgreSQL ${psqlDirect('postgres', 'SHOW server_version').trim()}; load generator, database, gateways and the OTLP receiver share the cores.`);
    lines.push(`pgbench -S -M simple, scale ${SCALE}, ${SECONDS} s per run, ${ROUNDS} interleaved rounds (median tps shown). Identity and audit on in every gateway.`);
    lines.push(`The OTLP receiver took ${received.requests} export requests (${(received.bytes / 2 ** 20).toFixed(1)} MiB).`);
    lines.push('');
    lines.push('| clients | configuration | tps (median) | gateway/direct | vs lineage and tracing off |');
    lines.push('|---:|---|---:|---:|---:|');
    for (const r of results) {
      const direct = median(r.tps.direct);
      const base = median(r.tps[configs[0].name]);
      lines.push(`| ${r.clients} | direct | ${direct.toFixed(0)} | | |`);
      for (const c of configs) {
        const t = median(r.tps[c.name]);
        lines.push(`| ${r.clients} | ${c.name} | ${t.toFixed(0)} | ${((t / direct) * 100).toFixed(0)}% | ${((t / base) * 100).toFixed(0)}% |`);
      }
    }
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    for (const g of gateways) g.gw.child.kill('SIGTERM');
    receiver.child.kill('SIGTERM');
  }
}

main().catch((err) => {
  process.stderr.write(`bench failed: ${err.message}\n`);
  process.exitCode = 1;
});
