/**
 * The load run (scripts/load.mjs, `pnpm load`) at CI size: idle and active sessions through
 * one built gateway in front of a throwaway server, its memory sampled every second. The full
 * run (2,000 idle + 200 active for 5 minutes) is the script with its defaults; this runs the
 * same code with fewer sessions for less time, and holds it to generous bounds: no statement
 * fails, every idle session still answers at the end, and memory does not climb.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SCRIPT = fileURLToPath(new URL('../../../../scripts/load.mjs', import.meta.url));
const IDLE = Number(process.env['SLUICE_LOAD_IDLE'] ?? 300);
const ACTIVE = Number(process.env['SLUICE_LOAD_ACTIVE'] ?? 50);
const SECONDS = Number(process.env['SLUICE_LOAD_SECONDS'] ?? 20);

interface LoadResult {
  readonly idle: number;
  readonly rssWithIdleMb: number;
  readonly rssFirstMb: number;
  readonly rssLastMb: number;
  readonly rssMaxMb: number;
  readonly rssSlopeMbPerMin: number;
  readonly liveHeapFirstMb: number | null;
  readonly liveHeapLastMb: number | null;
  readonly liveHeapMaxMb: number | null;
  readonly statements: number;
  readonly errors: number;
  readonly firstErrors: string[];
  readonly idleAlive: number;
  readonly idleProblems: string[];
  readonly samples: number;
}

function runLoad(dialect: 'postgres' | 'mysql'): LoadResult {
  const r = spawnSync(
    process.execPath,
    [SCRIPT, '--dialect', dialect, '--idle', String(IDLE), '--active', String(ACTIVE), '--seconds', String(SECONDS), '--warmup', '5', '--json'],
    { encoding: 'utf8', timeout: (SECONDS + 150) * 1000, maxBuffer: 16 << 20 },
  );
  const line = /^LOAD-RESULT (.*)$/m.exec(r.stdout)?.[1];
  if (line === undefined) throw new Error(`scripts/load.mjs printed no result (exit ${r.status}, signal ${r.signal}):\n${r.stdout}\n${r.stderr}`);
  process.stdout.write(`[load] ${r.stdout.replace(/^LOAD-RESULT .*$/m, '').trim()}\n`);
  return JSON.parse(line) as LoadResult;
}

function expectSteady(result: LoadResult): void {
  expect(result.firstErrors).toEqual([]);
  expect(result.errors).toBe(0);
  expect(result.idleProblems).toEqual([]);
  expect(result.idleAlive).toBe(IDLE);
  expect(result.statements).toBeGreaterThan(ACTIVE * 10);
  expect(result.samples).toBeGreaterThanOrEqual(SECONDS - 2);
  // Flat: the heap that survives a full collection (live objects, sampled every 5 s) does not
  // climb: a leak of 1 kB per statement at the rate reached here would add several hundred MB
  // per minute. Over 20 s the RSS and the uncollected heap swing with the collector's sawtooth,
  // so they are held only to outer bounds.
  expect(result.liveHeapFirstMb).not.toBeNull();
  expect(result.liveHeapLastMb!).toBeLessThan(result.liveHeapFirstMb! + 32);
  expect(result.liveHeapMaxMb!).toBeLessThan(result.liveHeapFirstMb! + 64);
  expect(result.rssLastMb).toBeLessThan(result.rssFirstMb + 200);
  expect(result.rssMaxMb).toBeLessThan(1024);
}

describe('load at CI size: idle and active sessions through one gateway, flat memory', () => {
  it(`PostgreSQL: ${IDLE} idle + ${ACTIVE} active for ${SECONDS} s`, () => {
    expectSteady(runLoad('postgres'));
  }, (SECONDS + 180) * 1000);

  it(`MySQL (MariaDB): ${IDLE} idle + ${ACTIVE} active for ${SECONDS} s`, () => {
    expectSteady(runLoad('mysql'));
  }, (SECONDS + 180) * 1000);
});
