import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { requireService, startTestGateway, type TestGateway } from '@sluice/testkit';
import {
  applyMutations,
  chunkingArb,
  decodeRecording,
  FuzzStats,
  fuzzSettings,
  fuzzTimeoutMs,
  judgeCase,
  mutationArb,
  runFuzzPass,
  splitIntoChunks,
  WireClient,
  type Mutation,
  type RecordedSession,
} from '@sluice/testkit/fuzz';
import fc from 'fast-check';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { postgresDialect } from '../src/index.js';
import { frontendMessage, passwordMessage, queryMessage, splitBackendFrames, startupMessage } from '../src/testing/index.js';
import { readErrorCode } from '../src/messages/error-response.js';
import { ADMIN_URL, FUZZ_TABLE, FUZZ_USER, STEADY_USER, TARGETS, fuzzUpstreamConnections, prepareFuzzDatabase } from './fuzz/fixture.mjs';
import { pgLengthFields, pgLoginLength, startupPacket, typedFrames, type Frames } from './fuzz/frames.js';
import { liveTest } from './support.js';

/**
 * Fuzzes the gateway's PostgreSQL client side over real sockets, in front of the real server:
 * structured frames with hostile fields (before login, instead of the password, after login)
 * and byte mutations of sessions recorded from real clients (test/fuzz/corpus). Every case
 * must end in an answer or a closed connection within a bound, never in an internal error or
 * an uncaught exception, and a well-behaved client on the same gateway must keep getting
 * answers throughout. At the end no upstream connection of the fuzz role is left, and the
 * gateway's live heap has not grown beyond a bound.
 *
 * SLUICE_FUZZ_RUNS (cases), SLUICE_FUZZ_SEED (replay), SLUICE_FUZZ_MINUTES (a time limit):
 * see docs/fuzzing.md.
 */
const settings = fuzzSettings('postgres', { runs: 800, seed: 0x5109e });
/** A parseable request must be answered (or the connection closed) within this. */
const ANSWER_BOUND_MS = 5000;
/** How long a case with broken framing is watched before the client leaves. */
const QUIET_MS = 400;
/** Live heap growth allowed over the pass (after a full collection). */
const HEAP_BOUND_BYTES = 48 * 2 ** 20;

const here = dirname(fileURLToPath(import.meta.url));
const corpusDir = join(here, 'fuzz', 'corpus');
const corpus = readdirSync(corpusDir)
  .filter((f) => f.endsWith('.json'))
  .sort()
  .map((f) => ({ name: f, bytes: decodeRecording(JSON.parse(readFileSync(join(corpusDir, f), 'utf8')) as RecordedSession) }));
const corpusBytes = corpus.map((c) => c.bytes);

type Case =
  | { readonly kind: 'pre-auth'; readonly frames: Frames; readonly then: Frames | undefined; readonly chunking: readonly number[] }
  | { readonly kind: 'after-startup'; readonly frames: Frames; readonly chunking: readonly number[] }
  | { readonly kind: 'post-auth'; readonly frames: Frames; readonly chunking: readonly number[] }
  | {
      readonly kind: 'mutated';
      readonly recording: number;
      readonly keepLogin: boolean;
      readonly mutations: readonly Mutation[];
      readonly chunking: readonly number[];
    };

const caseArb: fc.Arbitrary<Case> = fc.oneof(
  fc.record({ kind: fc.constant('pre-auth' as const), frames: startupPacket, then: fc.option(typedFrames, { nil: undefined }), chunking: chunkingArb }),
  fc.record({ kind: fc.constant('after-startup' as const), frames: typedFrames, chunking: chunkingArb }),
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('post-auth' as const), frames: typedFrames, chunking: chunkingArb }) },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('mutated' as const),
      recording: fc.nat({ max: corpus.length - 1 }),
      keepLogin: fc.boolean(),
      mutations: fc.array(mutationArb, { minLength: 1, maxLength: 4 }),
      chunking: chunkingArb,
    }),
  },
);

let gw: TestGateway;
let available = false;
let admin: pg.Client;
const stats = new FuzzStats();

beforeAll(async () => {
  available = await requireService('PostgreSQL', '127.0.0.1', 5432);
  if (!available) return;
  await prepareFuzzDatabase();
  gw = await startTestGateway({
    dialect: postgresDialect,
    targets: TARGETS,
    tokens: [FUZZ_USER, STEADY_USER],
    authTimeoutMs: 3000,
    // Thousands of failed logins from loopback are the point here, not an attack to lock out.
    failedLogins: { maxAttempts: 1_000_000_000, windowSeconds: 1, lockoutSeconds: 1 },
  });
  admin = new pg.Client({ connectionString: ADMIN_URL.replace(/\/postgres$/, '/sluice_fuzz') });
  await admin.connect();
  await admin.query(`TRUNCATE ${FUZZ_TABLE}`);
}, 120_000);

afterAll(async () => {
  await admin?.end();
  await gw?.close();
});

const live = liveTest(() => available);

/** Backend frames after `from` (the gateway's own single-byte SSL answers skipped). */
function framesAfter(received: Buffer, from: number): { type: string; frame: Buffer }[] {
  let at = from;
  while (at < received.length && (received[at] === 0x4e || received[at] === 0x53) && (at + 5 > received.length || received.readInt32BE(at + 1) > 1 << 20)) at++;
  return splitBackendFrames(received.subarray(at));
}

function login(): Buffer {
  return Buffer.concat([startupMessage({ user: FUZZ_USER.subject, database: 'app' }), passwordMessage(FUZZ_USER.token)]);
}

const hasReady = (received: Buffer, from: number) => framesAfter(received, from).some((f) => f.type === 'Z');

/** Runs one case; returns its outcome, throws when a property does not hold. */
async function runCase(c: Case, n: number): Promise<string> {
  const client = await WireClient.connect(gw);
  try {
    let mark = 0;
    let hostile: Buffer;
    let intact: boolean;
    const marker = `sluice-fuzz-probe-${n}`;
    let probe: Buffer = Buffer.alloc(0);
    if (c.kind === 'post-auth' || (c.kind === 'mutated' && c.keepLogin)) {
      const recorded = c.kind === 'mutated' ? corpusBytes[c.recording]! : undefined;
      const prefix = recorded ? recorded.subarray(0, pgLoginLength(recorded)) : login();
      await client.write([prefix]);
      if (!(await client.waitFor((r) => hasReady(r, 0), ANSWER_BOUND_MS))) {
        throw new Error(`a valid login got no ReadyForQuery within ${ANSWER_BOUND_MS} ms (received ${client.received.length} bytes, closed ${client.closed})`);
      }
      mark = client.received.length;
      // Ends an extended-protocol batch, then a COPY IN (the first query fails it) and a
      // failed transaction, then asks for the marker: a session that still works returns it.
      probe = Buffer.concat([frontendMessage('Sync'), queryMessage('ROLLBACK'), queryMessage('ROLLBACK'), queryMessage(`SELECT '${marker}'`)]);
    } else if (c.kind === 'after-startup') {
      await client.write([startupMessage({ user: FUZZ_USER.subject, database: 'app' })]);
      if (!(await client.waitFor((r) => r.length > 0, ANSWER_BOUND_MS))) throw new Error('a valid startup message got no answer');
      mark = client.received.length;
    }
    if (c.kind === 'mutated') {
      const recorded = corpusBytes[c.recording]!;
      const rest = c.keepLogin ? recorded.subarray(pgLoginLength(recorded)) : recorded;
      hostile = applyMutations(rest, c.mutations, { corpus: corpusBytes, lengthFields: pgLengthFields });
      intact = false;
    } else if (c.kind === 'pre-auth') {
      hostile = Buffer.concat([c.frames.bytes, c.then?.bytes ?? Buffer.alloc(0)]);
      intact = c.frames.intact;
    } else {
      hostile = c.frames.bytes;
      intact = c.frames.intact;
    }
    await client.write(splitIntoChunks(Buffer.concat([hostile, probe]), c.chunking));
    // After login, a well-framed batch must leave the session working (the marker comes back)
    // or end it; before login, any answer will do.
    return await judgeCase(client, {
      stats,
      label: `case ${n} (${c.kind})`,
      mark,
      marker,
      intact,
      markerRequired: c.kind === 'post-auth',
      answerBoundMs: ANSWER_BOUND_MS,
      quietMs: QUIET_MS,
      errorCodes: (received, from) =>
        framesAfter(received, from)
          .filter((f) => f.type === 'E')
          .map((f) => readErrorCode(f.frame)),
    });
  } finally {
    await client.end(ANSWER_BOUND_MS);
  }
}

describe('PostgreSQL client-side fuzzing', () => {
  live(
    'hostile frames and mutated recordings get an answer or a closed connection, never a crash or a hang, while another client keeps working',
    async () => {
      expect(corpus.length).toBeGreaterThanOrEqual(2);
      const steady = new pg.Client({ host: gw.host, port: gw.port, database: 'steady', user: STEADY_USER.subject, password: STEADY_USER.token });
      await steady.connect();
      const { steadyAnswers, steadyErrors, heapGrowth: growth } = await runFuzzPass({
        name: 'postgres',
        settings,
        stats,
        cases: caseArb,
        runCase,
        steady: async (i) => {
          const r = await steady.query('SELECT $1::int AS n', [i]);
          return r.rows[0]?.n === i ? undefined : `query ${i} answered ${JSON.stringify(r.rows)}`;
        },
        // Everything fuzzed is gone: sessions and their upstream connections.
        settled: async () => gw.listener.activeSessions === 1 && (await fuzzUpstreamConnections(admin)) === 0,
      });
      expect(stats.failures).toEqual([]);
      expect(stats.crashes).toBe(0);
      expect(stats.hangs).toBe(0);
      expect(stats.cases).toBeGreaterThan(0);
      expect(steadyErrors).toEqual([]);
      expect(steadyAnswers).toBeGreaterThan(0);
      // While the steady client is still connected: its session is the only one left.
      expect(gw.listener.activeSessions).toBe(1);
      const after = await steady.query('SELECT 42 AS n');
      expect(after.rows[0].n).toBe(42);
      await steady.end();
      expect(gw.listener.activeSessions).toBeLessThanOrEqual(1);
      expect(await fuzzUpstreamConnections(admin)).toBe(0);
      expect(growth).toBeLessThan(HEAP_BOUND_BYTES);
    },
    fuzzTimeoutMs(settings, 2000),
  );
});
