import net from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import fc from 'fast-check';

/**
 * Pieces for fuzzing a dialect's client side over real sockets: run settings (seed, number of
 * cases, time limit) from the environment, byte mutations of recorded sessions as fast-check
 * arbitraries, a raw wire client that says whether the gateway answered or closed within a
 * bound, a recording TCP proxy to capture real clients, and a heap probe.
 */

// ---------------------------------------------------------------- settings

export interface FuzzSettings {
  /** The fast-check seed: printed, and replayed with SLUICE_FUZZ_SEED. */
  readonly seed: number;
  /** Number of cases (an upper bound when a time limit is set). */
  readonly runs: number;
  /** Stop after this long (SLUICE_FUZZ_MINUTES), when set. */
  readonly timeLimitMs: number | undefined;
}

function envInteger(name: string): number | undefined {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return undefined;
  const n = Number(raw);
  if (!Number.isSafeInteger(n)) throw new Error(`${name} must be an integer, got "${raw}"`);
  return n;
}

/**
 * The settings of a fuzz pass: SLUICE_FUZZ_SEED (default `defaultSeed`, fixed so that CI runs
 * are reproducible), SLUICE_FUZZ_RUNS (default `defaultRuns`), SLUICE_FUZZ_MINUTES (a time
 * limit; the number of runs then defaults to unbounded). Prints them with the replay command.
 */
export function fuzzSettings(name: string, defaults: { runs: number; seed: number }): FuzzSettings {
  const seed = envInteger('SLUICE_FUZZ_SEED') ?? defaults.seed;
  const minutes = process.env.SLUICE_FUZZ_MINUTES ? Number(process.env.SLUICE_FUZZ_MINUTES) : undefined;
  if (minutes !== undefined && !(minutes > 0)) throw new Error(`SLUICE_FUZZ_MINUTES must be a positive number, got "${process.env.SLUICE_FUZZ_MINUTES}"`);
  const timeLimitMs = minutes === undefined ? undefined : Math.round(minutes * 60_000);
  const runs = envInteger('SLUICE_FUZZ_RUNS') ?? (timeLimitMs === undefined ? defaults.runs : 1_000_000);
  if (runs < 1) throw new Error(`SLUICE_FUZZ_RUNS must be at least 1, got ${runs}`);
  process.stdout.write(
    `[fuzz ${name}] seed=${seed} runs=${runs}${timeLimitMs ? ` minutes=${minutes}` : ''} (replay: SLUICE_FUZZ_SEED=${seed} SLUICE_FUZZ_RUNS=${runs})\n`,
  );
  return { seed, runs, timeLimitMs };
}

/** fast-check parameters for the settings. */
export function fuzzParameters(settings: FuzzSettings): fc.Parameters<unknown> {
  return {
    seed: settings.seed,
    numRuns: settings.runs,
    endOnFailure: false,
    ...(settings.timeLimitMs !== undefined ? { interruptAfterTimeLimit: settings.timeLimitMs } : {}),
  };
}

/** The vitest timeout for a fuzz test: the time limit, or a generous time per case, plus setup. */
export function fuzzTimeoutMs(settings: FuzzSettings, perCaseMs: number): number {
  return (settings.timeLimitMs ?? settings.runs * perCaseMs) + 120_000;
}

// ---------------------------------------------------------------- byte mutations

/** A length field inside a recorded stream (a frame header, a length-encoded string, a count). */
export interface LengthField {
  readonly offset: number;
  readonly size: 1 | 2 | 3 | 4;
  readonly endian: 'BE' | 'LE';
  readonly value: number;
}

export type Mutation =
  | { readonly op: 'flip'; readonly at: number; readonly bit: number }
  | { readonly op: 'set'; readonly at: number; readonly value: number }
  | { readonly op: 'insert'; readonly at: number; readonly bytes: Uint8Array }
  | { readonly op: 'delete'; readonly at: number; readonly count: number }
  | { readonly op: 'length'; readonly field: number; readonly change: LengthChange }
  | { readonly op: 'truncate'; readonly at: number }
  | { readonly op: 'splice'; readonly other: number; readonly from: number; readonly count: number; readonly at: number }
  | { readonly op: 'repeat'; readonly from: number; readonly count: number };

/** How a length field is corrupted: by a small amount, or to an extreme. */
export type LengthChange = { readonly delta: number } | { readonly to: 'zero' | 'max' | 'sign' | 'huge' };

const position = fc.nat({ max: 1 << 20 });

const lengthChange: fc.Arbitrary<LengthChange> = fc.oneof(
  fc.integer({ min: -4, max: 4 }).filter((d) => d !== 0).map((delta) => ({ delta })),
  fc.constantFrom('zero', 'max', 'sign', 'huge').map((to) => ({ to: to as 'zero' | 'max' | 'sign' | 'huge' })),
);

/** One mutation; positions are taken modulo the stream's length when applied. */
export const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant('flip' as const), at: position, bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ op: fc.constant('set' as const), at: position, value: fc.oneof(fc.constantFrom(0x00, 0xff, 0x7f, 0x80, 0xfe, 0xfb, 0xfc, 0xfd), fc.nat({ max: 255 })) }),
  fc.record({ op: fc.constant('insert' as const), at: position, bytes: fc.uint8Array({ minLength: 1, maxLength: 12 }) }),
  fc.record({ op: fc.constant('delete' as const), at: position, count: fc.integer({ min: 1, max: 12 }) }),
  { weight: 3, arbitrary: fc.record({ op: fc.constant('length' as const), field: fc.nat({ max: 10_000 }), change: lengthChange }) },
  fc.record({ op: fc.constant('truncate' as const), at: position }),
  fc.record({ op: fc.constant('splice' as const), other: fc.nat({ max: 100 }), from: position, count: fc.integer({ min: 1, max: 256 }), at: position }),
  fc.record({ op: fc.constant('repeat' as const), from: position, count: fc.integer({ min: 1, max: 64 }) }),
);

function writeField(out: Buffer, f: LengthField, value: number): void {
  const max = 2 ** (8 * f.size) - 1;
  const v = ((value % (max + 1)) + (max + 1)) % (max + 1);
  if (f.endian === 'BE') out.writeUIntBE(v, f.offset, f.size);
  else out.writeUIntLE(v, f.offset, f.size);
}

/**
 * Applies mutations in order. `lengthFields` finds the length fields of a (possibly already
 * mutated) stream, so that corruption hits real headers; `corpus` supplies splice material.
 */
export function applyMutations(
  input: Buffer,
  mutations: readonly Mutation[],
  context: { readonly corpus: readonly Buffer[]; readonly lengthFields: (bytes: Buffer) => LengthField[] },
): Buffer {
  let b = Buffer.from(input);
  for (const m of mutations) {
    const at = (n: number) => (b.length === 0 ? 0 : n % (b.length + 1));
    switch (m.op) {
      case 'flip':
        if (b.length) b[m.at % b.length]! ^= 1 << m.bit;
        break;
      case 'set':
        if (b.length) b[m.at % b.length] = m.value;
        break;
      case 'insert': {
        const p = at(m.at);
        b = Buffer.concat([b.subarray(0, p), Buffer.from(m.bytes), b.subarray(p)]);
        break;
      }
      case 'delete': {
        const p = at(m.at);
        b = Buffer.concat([b.subarray(0, p), b.subarray(p + m.count)]);
        break;
      }
      case 'length': {
        const fields = context.lengthFields(b);
        if (fields.length === 0) break;
        const f = fields[m.field % fields.length]!;
        const max = 2 ** (8 * f.size) - 1;
        const c = m.change;
        const value =
          'delta' in c ? f.value + c.delta : c.to === 'zero' ? 0 : c.to === 'max' ? max : c.to === 'sign' ? 2 ** (8 * f.size - 1) : Math.floor(max / 2);
        writeField(b, f, value);
        break;
      }
      case 'truncate':
        b = b.subarray(0, at(m.at));
        break;
      case 'splice': {
        const other = context.corpus[m.other % Math.max(context.corpus.length, 1)];
        if (!other || other.length === 0) break;
        const from = m.from % other.length;
        const p = at(m.at);
        b = Buffer.concat([b.subarray(0, p), other.subarray(from, from + m.count), b.subarray(p)]);
        break;
      }
      case 'repeat': {
        if (!b.length) break;
        const from = m.from % b.length;
        const piece = b.subarray(from, from + m.count);
        b = Buffer.concat([b.subarray(0, from + piece.length), piece, b.subarray(from + piece.length)]);
        break;
      }
    }
  }
  return b;
}

/** How a stream is cut into writes: whole, or chunks of sizes cycling through a list. */
export const chunkingArb: fc.Arbitrary<readonly number[]> = fc.oneof(
  fc.constant([]),
  fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 6 }),
  fc.array(fc.integer({ min: 1, max: 1024 }), { minLength: 1, maxLength: 6 }),
);

/** Cuts `bytes` into chunks (at most `maxChunks`; the last takes the rest). */
export function splitIntoChunks(bytes: Buffer, sizes: readonly number[], maxChunks = 48): Buffer[] {
  if (sizes.length === 0 || bytes.length === 0) return [bytes];
  const out: Buffer[] = [];
  let at = 0;
  for (let i = 0; at < bytes.length; i++) {
    const n = out.length === maxChunks - 1 ? bytes.length - at : sizes[i % sizes.length]!;
    out.push(bytes.subarray(at, at + n));
    at += n;
  }
  return out;
}

// ---------------------------------------------------------------- the wire client

/** A raw TCP client for one fuzz case: writes bytes, records what comes back and when it closes. */
export class WireClient {
  readonly #socket: net.Socket;
  #received: Buffer = Buffer.alloc(0);
  #closed = false;
  #waiters = new Set<() => void>();

  private constructor(socket: net.Socket) {
    this.#socket = socket;
    socket.on('data', (d: Buffer) => {
      this.#received = Buffer.concat([this.#received, d]);
      this.#wake();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.#closed = true;
      this.#wake();
    });
  }

  static async connect(address: { host: string; port: number }, timeoutMs = 5000): Promise<WireClient> {
    const socket = net.connect({ host: address.host, port: address.port });
    socket.setNoDelay(true);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`could not connect to ${address.host}:${address.port} within ${timeoutMs} ms`)), timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        resolve();
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
    return new WireClient(socket);
  }

  get received(): Buffer {
    return this.#received;
  }

  get closed(): boolean {
    return this.#closed;
  }

  #wake(): void {
    for (const w of this.#waiters) w();
  }

  /** Writes the chunks one by one, yielding to the event loop between them so they arrive apart. */
  async write(chunks: readonly Buffer[]): Promise<void> {
    for (const c of chunks) {
      if (this.#closed || this.#socket.destroyed) return;
      if (c.length) this.#socket.write(c);
      await new Promise((r) => setImmediate(r));
    }
  }

  /**
   * Resolves true once `done` holds for what was received (and whether the socket closed);
   * false when the socket closed without it, or after the bound.
   */
  waitFor(done: (received: Buffer, closed: boolean) => boolean, boundMs: number): Promise<boolean> {
    return new Promise((resolve) => {
      const finish = (v: boolean): void => {
        clearTimeout(timer);
        this.#waiters.delete(check);
        resolve(v);
      };
      const check = (): void => {
        if (done(this.#received, this.#closed)) finish(true);
        else if (this.#closed) finish(false);
      };
      const timer = setTimeout(() => finish(done(this.#received, this.#closed)), boundMs);
      this.#waiters.add(check);
      check();
    });
  }

  /** Ends the client's side and waits for the connection to close; false if it did not within the bound. */
  async end(boundMs: number): Promise<boolean> {
    if (!this.#closed) this.#socket.end();
    const ok = await this.waitFor((_r, closed) => closed, boundMs);
    this.#socket.destroy();
    return ok;
  }
}

// ---------------------------------------------------------------- outcomes and heap

/** What a fuzz pass saw; printed as one line for `pnpm fuzz` to collect. */
export class FuzzStats {
  cases = 0;
  /** Uncaught exceptions, unhandled rejections and internal errors reported to a client. */
  crashes = 0;
  /** Connections that neither answered nor closed within the bound. */
  hangs = 0;
  readonly outcomes: Record<string, number> = {};
  heapBaseline = 0;
  maxHeapGrowth = 0;
  readonly started = Date.now();
  readonly failures: string[] = [];

  count(outcome: string): void {
    this.cases++;
    this.outcomes[outcome] = (this.outcomes[outcome] ?? 0) + 1;
  }

  fail(what: 'crash' | 'hang', detail: string): void {
    if (what === 'crash') this.crashes++;
    else this.hangs++;
    if (this.failures.length < 20) this.failures.push(`${what}: ${detail}`);
  }

  summary(name: string, seed: number): string {
    const mb = (n: number) => Math.round((n / 2 ** 20) * 10) / 10;
    return `SLUICE_FUZZ_SUMMARY ${JSON.stringify({
      name,
      seed,
      cases: this.cases,
      crashes: this.crashes,
      hangs: this.hangs,
      maxHeapGrowthMb: mb(this.maxHeapGrowth),
      seconds: Math.round((Date.now() - this.started) / 100) / 10,
      outcomes: this.outcomes,
    })}\n`;
  }
}

let gcFunction: (() => void) | undefined;

/** A full garbage collection (exposed on demand), so heap figures compare live data only. */
export function collectGarbage(): void {
  if (!gcFunction) {
    const exposed = (globalThis as { gc?: () => void }).gc;
    if (exposed) gcFunction = exposed;
    else {
      setFlagsFromString('--expose-gc');
      gcFunction = runInNewContext('gc') as () => void;
    }
  }
  gcFunction();
}

/** Live heap bytes after a full collection. */
export function liveHeapBytes(): number {
  collectGarbage();
  collectGarbage();
  return process.memoryUsage().heapUsed;
}

/**
 * Counts uncaught exceptions and unhandled rejections while a pass runs (an in-process gateway
 * that throws from a socket callback would otherwise only show up as a vitest error).
 */
export function watchForCrashes(stats: FuzzStats): () => void {
  const onError = (err: unknown) => stats.fail('crash', `uncaught: ${err instanceof Error ? err.stack : String(err)}`);
  process.on('uncaughtException', onError);
  process.on('unhandledRejection', onError);
  return () => {
    process.off('uncaughtException', onError);
    process.off('unhandledRejection', onError);
  };
}

/**
 * Judges one case once its bytes (hostile part, then the probe asking for `marker`) are sent:
 * waits for an answer (within `answerBoundMs` when the bytes were well framed, `quietMs`
 * otherwise), fails on an internal error or on a well-framed request left unanswered on an open
 * connection, then ends the client (failing if the connection stays open) and returns the
 * outcome. Only bytes past `mark` (what came before the case's own bytes) count as its answer.
 */
export async function judgeCase(
  client: WireClient,
  options: {
    readonly stats: FuzzStats;
    /** Names the case in failures: `case <n> (<kind>)`. */
    readonly label: string;
    readonly mark: number;
    readonly marker: string;
    readonly intact: boolean;
    /** True after login: an answer only counts when it is the marker (or a close). */
    readonly markerRequired: boolean;
    readonly answerBoundMs: number;
    readonly quietMs: number;
    /** The error codes the gateway sent past `mark`, in order. */
    readonly errorCodes: (received: Buffer, mark: number) => readonly (string | number | undefined)[];
  },
): Promise<string> {
  const { stats, label, mark, marker, intact, answerBoundMs } = options;
  const answered = (r: Buffer, closed: boolean) => closed || r.includes(marker) || (!options.markerRequired && r.length > mark);
  const ok = await client.waitFor(answered, intact ? answerBoundMs : options.quietMs);
  const after = client.received.subarray(mark);
  if (after.includes('internal gateway error')) {
    stats.fail('crash', `${label}: internal error answered`);
    throw new Error(`the gateway answered an internal error: ${after.toString('latin1')}`);
  }
  if (intact && !ok) {
    stats.fail('hang', `${label}: no answer within ${answerBoundMs} ms`);
    throw new Error(`a well-framed request got no answer and the connection stayed open for ${answerBoundMs} ms`);
  }
  const codes = options.errorCodes(client.received, mark);
  const outcome = client.closed
    ? codes.length
      ? `closed after error ${codes.at(-1)}`
      : 'closed'
    : client.received.includes(marker)
      ? 'kept working'
      : after.length
        ? 'answered'
        : 'silent';
  if (!(await client.end(answerBoundMs))) {
    stats.fail('hang', `${label}: still open ${answerBoundMs} ms after the client left`);
    throw new Error('the connection stayed open after the client ended it');
  }
  return outcome;
}

// ---------------------------------------------------------------- a pass

/** What a fuzz pass leaves for the test to assert on (the pass itself asserts nothing). */
export interface FuzzPassResult {
  /** Queries the well-behaved client got the right answer to, while the cases ran. */
  readonly steadyAnswers: number;
  /** What went wrong for the well-behaved client (wrong answers, errors). */
  readonly steadyErrors: readonly string[];
  /** Live heap growth at the end of the pass, once `settled` held (or its bound passed). */
  readonly heapGrowth: number;
}

/**
 * Runs a fuzz pass: a well-behaved client keeps querying (`steady(i)` returns undefined when
 * query `i` got its right answer, else what went wrong) while fast-check runs `runCase` on each
 * case; crashes are watched and the live heap sampled every 25 cases. Then waits (up to
 * `settleMs`) for `settled` (sessions and upstream connections of the fuzzed cases gone),
 * records the final heap growth and prints the summary line for `pnpm fuzz`.
 */
export async function runFuzzPass<C extends { readonly kind: string }>(options: {
  readonly name: string;
  readonly settings: FuzzSettings;
  readonly stats: FuzzStats;
  readonly cases: fc.Arbitrary<C>;
  readonly runCase: (c: C, n: number) => Promise<string>;
  readonly steady: (i: number) => Promise<string | undefined>;
  readonly settled: () => Promise<boolean>;
  readonly settleMs?: number;
}): Promise<FuzzPassResult> {
  const { name, settings, stats } = options;
  let running = true;
  let steadyAnswers = 0;
  const steadyErrors: string[] = [];
  const steadyLoop = (async () => {
    for (let i = 0; running; i++) {
      try {
        const wrong = await options.steady(i);
        if (wrong === undefined) steadyAnswers++;
        else steadyErrors.push(wrong);
      } catch (err) {
        steadyErrors.push(String(err));
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  })();
  const unwatch = watchForCrashes(stats);
  stats.heapBaseline = liveHeapBytes();
  let n = 0;
  try {
    await fc.assert(
      fc.asyncProperty(options.cases, async (c) => {
        const i = n++;
        stats.count(`${c.kind}: ${await options.runCase(c, i)}`);
        if (i % 25 === 24) stats.maxHeapGrowth = Math.max(stats.maxHeapGrowth, liveHeapBytes() - stats.heapBaseline);
      }),
      fuzzParameters(settings),
    );
  } finally {
    running = false;
    await steadyLoop;
    unwatch();
  }
  const until = Date.now() + (options.settleMs ?? 15_000);
  while (!(await options.settled()) && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
  const heapGrowth = liveHeapBytes() - stats.heapBaseline;
  stats.maxHeapGrowth = Math.max(stats.maxHeapGrowth, heapGrowth);
  process.stdout.write(stats.summary(name, settings.seed));
  process.stdout.write(`[fuzz ${name}] steady client: ${steadyAnswers} answers, ${steadyErrors.length} errors\n`);
  return { steadyAnswers, steadyErrors, heapGrowth };
}

// ---------------------------------------------------------------- recording

/** The bytes each client sent through a recording proxy, one array of chunks per connection. */
export interface RecordingProxy {
  readonly host: string;
  readonly port: number;
  /** Client → server chunks of every connection so far, in connection order. */
  sessions(): Buffer[][];
  close(): Promise<void>;
}

/** A TCP proxy in front of `target` that records what clients send (as they sent it, chunk by chunk). */
export async function startRecordingProxy(target: { host: string; port: number }): Promise<RecordingProxy> {
  const sessions: Buffer[][] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const chunks: Buffer[] = [];
    sessions.push(chunks);
    const upstream = net.connect({ host: target.host, port: target.port });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => sockets.delete(s));
    }
    client.on('data', (d: Buffer) => chunks.push(Buffer.from(d)));
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    host: '127.0.0.1',
    port: (server.address() as net.AddressInfo).port,
    sessions: () => sessions.map((s) => [...s]),
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A recorded session as committed to a corpus: what client, doing what, and its chunks in base64. */
export interface RecordedSession {
  readonly client: string;
  readonly description: string;
  readonly chunks: readonly string[];
}

export function encodeRecording(client: string, description: string, chunks: readonly Buffer[]): RecordedSession {
  return { client, description, chunks: chunks.map((c) => c.toString('base64')) };
}

export function decodeRecording(r: RecordedSession): Buffer {
  return Buffer.concat(r.chunks.map((c) => Buffer.from(c, 'base64')));
}
