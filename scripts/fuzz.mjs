#!/usr/bin/env node
// The long fuzz pass: runs each dialect's client-side fuzz suite (packages/dialect-*/test/fuzz.test.ts)
// for a share of the time given, with a random seed (printed, to replay a failure), and prints
// cases run, crashes, hangs and the largest live-heap growth per dialect. See docs/fuzzing.md.
//
//   pnpm fuzz                         # 10 minutes in all, a random seed
//   pnpm fuzz --minutes 30            # longer
//   pnpm fuzz --seed 12345            # replay a seed (same cases as the run that printed it)
//   pnpm fuzz --dialect mysql         # one dialect only
//   pnpm fuzz --runs 5000             # a number of cases per dialect instead of a time limit
//
// Needs PostgreSQL at 127.0.0.1:5432 and MariaDB at 127.0.0.1:3306 (as the test suites do).
import { spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const DIALECTS = { postgres: 'packages/dialect-postgres', mysql: 'packages/dialect-mysql' };

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    seed: { type: 'string' },
    dialect: { type: 'string' },
    runs: { type: 'string' },
  },
});
const minutes = Number(values.minutes);
if (!(minutes > 0)) throw new Error(`--minutes must be a positive number, got "${values.minutes}"`);
if (values.dialect && !(values.dialect in DIALECTS)) throw new Error(`--dialect must be one of ${Object.keys(DIALECTS).join(', ')}, got "${values.dialect}"`);
if (values.runs !== undefined && !(Number.isSafeInteger(Number(values.runs)) && Number(values.runs) > 0)) throw new Error(`--runs must be a positive integer, got "${values.runs}"`);
const seed = values.seed ?? String(randomInt(1, 2 ** 31 - 1));
if (!Number.isSafeInteger(Number(seed))) throw new Error(`--seed must be an integer, got "${seed}"`);
const chosen = values.dialect ? [values.dialect] : Object.keys(DIALECTS);
const share = minutes / chosen.length;

function runSuite(name) {
  const env = { ...process.env, SLUICE_FUZZ_SEED: seed, SLUICE_REQUIRE_SERVICES: process.env.SLUICE_REQUIRE_SERVICES ?? '1' };
  if (values.runs) env.SLUICE_FUZZ_RUNS = values.runs;
  else env.SLUICE_FUZZ_MINUTES = String(share);
  process.stdout.write(`\n== ${name}: ${values.runs ? `${values.runs} cases` : `${share.toFixed(1)} minutes`}, seed ${seed}\n`);
  return new Promise((resolve) => {
    const child = spawn('npx', ['vitest', 'run', 'test/fuzz.test.ts'], { cwd: join(root, DIALECTS[name]), env, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      process.stdout.write(d);
    });
    child.on('close', (code) => {
      const line = out.split('\n').find((l) => l.startsWith('SLUICE_FUZZ_SUMMARY '));
      resolve({ name, code, summary: line ? JSON.parse(line.slice('SLUICE_FUZZ_SUMMARY '.length)) : undefined });
    });
  });
}

const results = [];
for (const name of chosen) results.push(await runSuite(name));

process.stdout.write(`\nFuzz pass, seed ${seed} (replay: pnpm fuzz --seed ${seed}${values.runs ? ` --runs ${values.runs}` : ` --minutes ${minutes}`}${values.dialect ? ` --dialect ${values.dialect}` : ''})\n\n`);
process.stdout.write('| dialect | cases | crashes | hangs | max heap growth | seconds | result |\n|---|---|---|---|---|---|---|\n');
let failed = false;
for (const r of results) {
  const s = r.summary;
  const ok = r.code === 0 && s !== undefined;
  failed ||= !ok;
  process.stdout.write(
    s
      ? `| ${r.name} | ${s.cases} | ${s.crashes} | ${s.hangs} | ${s.maxHeapGrowthMb} MB | ${s.seconds} | ${ok ? 'pass' : `FAIL (exit ${r.code})`} |\n`
      : `| ${r.name} | - | - | - | - | - | FAIL (exit ${r.code}, no summary: see the output above) |\n`,
  );
}
process.exitCode = failed ? 1 : 0;
