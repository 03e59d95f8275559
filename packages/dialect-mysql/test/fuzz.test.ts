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
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { mysqlDialect } from '../src/index.js';
import { Command } from '../src/protocol/constants.js';
import { encodePacket } from '../src/protocol/packets.js';
import { ADMIN, FUZZ_DATABASE, FUZZ_TABLE, FUZZ_USER, STEADY_USER, TARGETS, fuzzUpstreamConnections, prepareFuzzDatabase } from './fuzz/fixture.mjs';
import { commandPayload, handshakePayload, mysqlLengthFields, mysqlLoginLength, packets, serverPackets, type Packets } from './fuzz/frames.js';
import { liveTest } from './support.js';

/**
 * Fuzzes the gateway's MySQL client side over real sockets, in front of the real MariaDB:
 * structured packets with hostile fields (handshake responses, the token packet, commands after
 * login) and byte mutations of sessions recorded from real clients (test/fuzz/corpus). Every
 * case must end in an answer or a closed connection within a bound, never in an internal error
 * or an uncaught exception, and a well-behaved client on the same gateway must keep getting
 * answers throughout. At the end no upstream connection of the fuzz account is left but the
 * well-behaved client's, and the gateway's live heap has not grown beyond a bound.
 *
 * SLUICE_FUZZ_RUNS (cases), SLUICE_FUZZ_SEED (replay), SLUICE_FUZZ_MINUTES (a time limit):
 * see docs/fuzzing.md.
 */
const settings = fuzzSettings('mysql', { runs: 800, seed: 0x5109e });
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
/** A real client's login (mysql2's handshake response and token), for the cases that start logged in. */
const LOGIN = (() => {
  const recorded = corpus.find((c) => c.name.startsWith('mysql2'))!.bytes;
  return recorded.subarray(0, mysqlLoginLength(recorded));
})();
const HANDSHAKE_RESPONSE = LOGIN.subarray(0, 4 + LOGIN.readUIntLE(0, 3));

type Case =
  | { readonly kind: 'handshake'; readonly packets: Packets; readonly chunking: readonly number[] }
  | { readonly kind: 'token'; readonly packets: Packets; readonly chunking: readonly number[] }
  | { readonly kind: 'post-auth'; readonly packets: Packets; readonly chunking: readonly number[] }
  | { readonly kind: 'mutated'; readonly recording: number; readonly keepLogin: boolean; readonly mutations: readonly Mutation[]; readonly chunking: readonly number[] };

const tokenPayload = fc.oneof(
  fc.constant(Buffer.from(`${FUZZ_USER.token}\0`)),
  fc.constant(Buffer.from(FUZZ_USER.token)),
  fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b)),
);

const caseArb: fc.Arbitrary<Case> = fc.oneof(
  fc.record({ kind: fc.constant('handshake' as const), packets: packets(handshakePayload, 1), chunking: chunkingArb }),
  fc.record({ kind: fc.constant('token' as const), packets: packets(tokenPayload, 3), chunking: chunkingArb }),
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('post-auth' as const), packets: packets(commandPayload, 0), chunking: chunkingArb }) },
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
let admin: mysql.Connection;
const stats = new FuzzStats();

beforeAll(async () => {
  available = await requireService('MariaDB', '127.0.0.1', 3306);
  if (!available) return;
  await prepareFuzzDatabase();
  gw = await startTestGateway({
    dialect: mysqlDialect,
    targets: TARGETS,
    tokens: [FUZZ_USER, STEADY_USER],
    authTimeoutMs: 3000,
    // Thousands of failed logins from loopback are the point here, not an attack to lock out.
    failedLogins: { maxAttempts: 1_000_000_000, windowSeconds: 1, lockoutSeconds: 1 },
  });
  admin = await mysql.createConnection(ADMIN);
  await admin.query(`TRUNCATE ${FUZZ_DATABASE}.${FUZZ_TABLE}`);
}, 120_000);

afterAll(async () => {
  await admin?.end();
  await gw?.close();
});

const live = liveTest(() => available);

/** The greeting has arrived (the first packet from the gateway). */
const greeted = (r: Buffer) => serverPackets(r).length >= 1;
/** The login is complete: an OK packet after the greeting. */
const loggedIn = (r: Buffer) => serverPackets(r).slice(1).some((p) => p.payload[0] === 0x00);

/** Runs one case; returns its outcome, throws when a property does not hold. */
async function runCase(c: Case, n: number): Promise<string> {
  const client = await WireClient.connect(gw);
  try {
    if (!(await client.waitFor(greeted, ANSWER_BOUND_MS))) throw new Error(`no greeting within ${ANSWER_BOUND_MS} ms`);
    let mark = client.received.length;
    let hostile: Buffer;
    let intact: boolean;
    const marker = `sluice-fuzz-probe-${n}`;
    let probe: Buffer = Buffer.alloc(0);
    if (c.kind === 'post-auth' || (c.kind === 'mutated' && c.keepLogin)) {
      const recorded = c.kind === 'mutated' ? corpusBytes[c.recording]! : undefined;
      await client.write([recorded ? recorded.subarray(0, mysqlLoginLength(recorded)) : LOGIN]);
      if (!(await client.waitFor(loggedIn, ANSWER_BOUND_MS))) {
        throw new Error(`a valid login got no OK within ${ANSWER_BOUND_MS} ms (received ${client.received.length} bytes, closed ${client.closed})`);
      }
      mark = client.received.length;
      probe = encodePacket(Buffer.concat([Buffer.from([Command.QUERY]), Buffer.from(`SELECT '${marker}'`)]), 0);
    } else if (c.kind === 'token') {
      await client.write([HANDSHAKE_RESPONSE]);
      if (!(await client.waitFor((r) => serverPackets(r).length >= 2, ANSWER_BOUND_MS))) throw new Error('a valid handshake response got no answer');
      mark = client.received.length;
    }
    if (c.kind === 'mutated') {
      const recorded = corpusBytes[c.recording]!;
      const rest = c.keepLogin ? recorded.subarray(mysqlLoginLength(recorded)) : recorded;
      hostile = applyMutations(rest, c.mutations, { corpus: corpusBytes, lengthFields: mysqlLengthFields });
      intact = false;
    } else {
      hostile = c.packets.bytes;
      intact = c.packets.intact;
    }
    await client.write(splitIntoChunks(Buffer.concat([hostile, probe]), c.chunking));
    // After login, well-framed commands must leave the session working (the marker comes back)
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
        serverPackets(received.subarray(from))
          .filter((p) => p.payload[0] === 0xff && p.payload.length >= 3)
          .map((p) => p.payload.readUInt16LE(1)),
    });
  } finally {
    await client.end(ANSWER_BOUND_MS);
  }
}

describe('MySQL client-side fuzzing', () => {
  live(
    'hostile frames and mutated recordings get an answer or a closed connection, never a crash or a hang, while another client keeps working',
    async () => {
      expect(corpus.length).toBeGreaterThanOrEqual(2);
      const steady = await mysql.createConnection({
        host: gw.host,
        port: gw.port,
        database: 'app',
        user: STEADY_USER.subject,
        password: STEADY_USER.token,
        authPlugins: { mysql_clear_password: () => () => Buffer.from(`${STEADY_USER.token}\0`) },
      });
      const { steadyAnswers, steadyErrors, heapGrowth: growth } = await runFuzzPass({
        name: 'mysql',
        settings,
        stats,
        cases: caseArb,
        runCase,
        steady: async (i) => {
          const [rows] = await steady.query<mysql.RowDataPacket[]>('SELECT ? AS n', [i]);
          return Number(rows[0]?.n) === i ? undefined : `query ${i} answered ${JSON.stringify(rows)}`;
        },
        // Everything fuzzed is gone: sessions and their upstream connections (the steady client's remains).
        settled: async () => gw.listener.activeSessions === 1 && (await fuzzUpstreamConnections(admin)) === 1,
      });
      expect(stats.failures).toEqual([]);
      expect(stats.crashes).toBe(0);
      expect(stats.hangs).toBe(0);
      expect(stats.cases).toBeGreaterThan(0);
      expect(steadyErrors).toEqual([]);
      expect(steadyAnswers).toBeGreaterThan(0);
      expect(gw.listener.activeSessions).toBe(1);
      expect(await fuzzUpstreamConnections(admin)).toBe(1);
      const [after] = await steady.query<mysql.RowDataPacket[]>('SELECT 42 AS n');
      expect(Number(after[0]!.n)).toBe(42);
      await steady.end();
      expect(growth).toBeLessThan(HEAP_BOUND_BYTES);
    },
    fuzzTimeoutMs(settings, 2000),
  );
});
