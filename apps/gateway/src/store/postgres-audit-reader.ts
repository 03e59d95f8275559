/**
 * Reading and verifying the audit chains kept in a shared PostgreSQL store (see postgres-audit.ts).
 *
 * Verification checks every replica's chain from its first record: each line hashes to its
 * `hash`, `seq` runs 1, 2, 3… without gaps, each `prev` is the hash before it, and the chain ends
 * exactly at its head (`audit_heads`), which is written in the same statement as the records, so
 * records removed from the end of a chain are caught too. Records of a replica without a head are
 * reported. As with the embedded store, someone able to rewrite the tables with recomputed hashes
 * and heads is caught only by comparing with an anchor kept elsewhere (the heads printed by a
 * previous verification).
 */
import { GENESIS_HASH, hashedTextOf, parseAuditRecordLine, redactUrlPassword, sha256Hex, type AuditRecord } from '@sluice/core';
import pg from 'pg';

export interface ChainVerification {
  readonly replica: string;
  readonly records: number;
  readonly lastHash: string;
  /** A sentence naming the first bad record, when the chain is broken. */
  readonly problem?: string;
}

export interface StoreVerification {
  readonly ok: boolean;
  readonly records: number;
  readonly chains: readonly ChainVerification[];
}

const PAGE = 5_000;

async function withClient<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000, application_name: 'sluice audit reader' });
  try {
    await client.connect();
  } catch (cause) {
    throw new Error(`cannot reach the store at ${redactUrlPassword(url)}: ${redactUrlPassword((cause as Error).message)}`, { cause });
  }
  try {
    return await work(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function assertTables(client: pg.Client, prefix: string, url: string): Promise<void> {
  const r = await client.query<{ t: string | null }>('SELECT to_regclass($1)::text AS t', [`${prefix}audit_heads`]);
  if (r.rows[0]?.t == null) throw new Error(`there is no audit trail in ${redactUrlPassword(url)}: a gateway creates it when it starts with this store`);
}

export async function verifyPostgresAudit(url: string, schema = 'sluice'): Promise<StoreVerification> {
  const prefix = `"${schema}".`;
  return withClient(url, async (client) => {
    await assertTables(client, prefix, url);
    // One snapshot for heads and records: gateways writing meanwhile do not look like tampering.
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const heads = await client.query<{ replica: string; last_seq: string; last_hash: string }>(
      `SELECT replica, last_seq, last_hash FROM ${prefix}audit_heads ORDER BY replica`,
    );
    const chains: ChainVerification[] = [];
    for (const head of heads.rows) chains.push(await verifyChain(client, prefix, head.replica, Number(head.last_seq), head.last_hash));
    const orphans = await client.query<{ replica: string; n: string }>(
      `SELECT r.replica, count(*) AS n FROM ${prefix}audit_records r LEFT JOIN ${prefix}audit_heads h USING (replica) WHERE h.replica IS NULL GROUP BY r.replica`,
    );
    for (const o of orphans.rows) {
      chains.push({ replica: o.replica, records: 0, lastHash: GENESIS_HASH, problem: `${o.n} record(s) of replica "${o.replica}" have no chain head: the head was removed` });
    }
    await client.query('COMMIT');
    return { ok: chains.every((c) => c.problem === undefined), records: chains.reduce((n, c) => n + c.records, 0), chains };
  });
}

async function verifyChain(client: pg.Client, prefix: string, replica: string, headSeq: number, headHash: string): Promise<ChainVerification> {
  let expected = 1;
  let prev = GENESIS_HASH;
  const broken = (problem: string): ChainVerification => ({ replica, records: expected - 1, lastHash: prev, problem });
  for (;;) {
    const page = await client.query<{ seq: string; line: string }>(
      `SELECT seq, line FROM ${prefix}audit_records WHERE replica = $1 AND seq >= $2 ORDER BY seq LIMIT ${PAGE}`,
      [replica, expected],
    );
    for (const row of page.rows) {
      const seq = Number(row.seq);
      const record = parseAuditRecordLine(row.line);
      if (typeof record === 'string') return broken(`record seq ${seq} of replica "${replica}" is malformed: ${record}`);
      const hashed = hashedTextOf(row.line);
      if (!hashed || hashed.hash !== record.hash || sha256Hex(hashed.text) !== hashed.hash || record.seq !== seq) {
        return broken(`record seq ${seq} of replica "${replica}" was edited: its hash does not match its content`);
      }
      if (seq !== expected) {
        const missing = seq - 1 === expected ? `record seq ${expected} is` : `records seq ${expected} to ${seq - 1} are`;
        return broken(`record seq ${seq} of replica "${replica}" does not follow seq ${expected - 1}: ${missing} missing, so records were removed`);
      }
      if (record.prev !== prev) {
        return broken(`record seq ${seq} of replica "${replica}" does not link to the record before it: a record before it was changed, or this one was forged`);
      }
      prev = record.hash;
      expected++;
    }
    if (page.rows.length < PAGE) break;
  }
  const last = expected - 1;
  if (last !== headSeq || prev !== headHash) {
    return broken(
      last < headSeq
        ? `the chain of replica "${replica}" ends at seq ${last} but its head says seq ${headSeq}: records were removed from its end`
        : `the chain of replica "${replica}" ends at seq ${last} with a hash its head (seq ${headSeq}) does not have: the head or the records were changed`,
    );
  }
  return { replica, records: last, lastHash: prev };
}

export interface StoredAuditRecord {
  readonly replica: string;
  readonly record: AuditRecord;
}

/** Records per query when a window is read page by page. */
const READ_PAGE = 5_000;

function toStored(row: { replica: string; line: string }): StoredAuditRecord {
  const record = parseAuditRecordLine(row.line);
  if (typeof record === 'string') throw new Error(`a record of replica "${row.replica}" is not an audit record: ${record}`);
  return { replica: row.replica, record };
}

/** The last `last` records (optionally in a window), in time order (ties by replica and seq). */
export async function readPostgresAudit(
  url: string,
  options: { readonly since?: Date; readonly until?: Date; readonly last: number; readonly schema?: string },
): Promise<StoredAuditRecord[]> {
  const prefix = `"${options.schema ?? 'sluice'}".`;
  return withClient(url, async (client) => {
    await assertTables(client, prefix, url);
    const where: string[] = [];
    const params: unknown[] = [];
    if (options.since) where.push(`time >= $${params.push(options.since)}`);
    if (options.until) where.push(`time < $${params.push(options.until)}`);
    const filter = where.length > 0 ? `WHERE ${where.join(' AND ')}` : '';
    const r = await client.query<{ replica: string; line: string }>(
      `SELECT * FROM (SELECT replica, seq, time, line FROM ${prefix}audit_records ${filter} ORDER BY time DESC, replica DESC, seq DESC LIMIT ${Math.max(0, Math.floor(options.last))}) t ORDER BY time, replica, seq`,
      params,
    );
    return r.rows.map(toStored);
  });
}

/**
 * Every record (optionally in a window) in time order (ties by replica and seq), read page by
 * page so that a trail of any size streams in bounded memory.
 */
export async function* streamPostgresAudit(
  url: string,
  options: { readonly since?: Date; readonly until?: Date; readonly schema?: string; readonly pageSize?: number } = {},
): AsyncGenerator<StoredAuditRecord> {
  const pageSize = options.pageSize ?? READ_PAGE;
  const prefix = `"${options.schema ?? 'sluice'}".`;
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000, application_name: 'sluice audit reader' });
  try {
    await client.connect();
  } catch (cause) {
    throw new Error(`cannot reach the store at ${redactUrlPassword(url)}: ${redactUrlPassword((cause as Error).message)}`, { cause });
  }
  try {
    await assertTables(client, prefix, url);
    // One snapshot for every page: records written meanwhile neither appear half nor twice.
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    let after: { time: Date; replica: string; seq: string } | undefined;
    for (;;) {
      const where: string[] = [];
      const params: unknown[] = [];
      if (options.since) where.push(`time >= $${params.push(options.since)}`);
      if (options.until) where.push(`time < $${params.push(options.until)}`);
      if (after) where.push(`(time, replica, seq) > ($${params.push(after.time)}, $${params.push(after.replica)}, $${params.push(after.seq)})`);
      const filter = where.length > 0 ? `WHERE ${where.join(' AND ')}` : '';
      const page = await client.query<{ replica: string; seq: string; time: Date; line: string }>(
        `SELECT replica, seq, time, line FROM ${prefix}audit_records ${filter} ORDER BY time, replica, seq LIMIT ${pageSize}`,
        params,
      );
      for (const row of page.rows) yield toStored(row);
      if (page.rows.length < pageSize) break;
      const last = page.rows.at(-1)!;
      after = { time: last.time, replica: last.replica, seq: last.seq };
    }
    await client.query('COMMIT');
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Follows new records of every replica (polling), after printing the last `fromEnd`. */
export async function* followPostgresAudit(
  url: string,
  options: { readonly fromEnd: number; readonly signal: AbortSignal; readonly pollMs?: number; readonly schema?: string },
): AsyncGenerator<StoredAuditRecord> {
  const prefix = `"${options.schema ?? 'sluice'}".`;
  const seen = new Map<string, number>();
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000, application_name: 'sluice audit follow' });
  let broken: Error | null = null;
  client.on('error', (err) => {
    broken = err;
  });
  await client.connect();
  try {
    // Heads first: what the last records show beyond them is printed by the first poll, once.
    const heads = await client.query<{ replica: string; last_seq: string }>(`SELECT replica, last_seq FROM ${prefix}audit_heads`);
    for (const h of heads.rows) seen.set(h.replica, Number(h.last_seq));
    const first = await readPostgresAudit(url, { last: options.fromEnd, ...(options.schema ? { schema: options.schema } : {}) });
    for (const r of first) if (r.record.seq <= (seen.get(r.replica) ?? 0)) yield r;
    while (!options.signal.aborted) {
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(t);
          resolve();
        };
        const t = setTimeout(() => {
          options.signal.removeEventListener('abort', done);
          resolve();
        }, options.pollMs ?? 1000);
        options.signal.addEventListener('abort', done, { once: true });
      });
      if (broken) throw new Error(`lost the connection to the store at ${redactUrlPassword(url)}: ${redactUrlPassword((broken as Error).message)}`);
      if (options.signal.aborted) break;
      const now = await client.query<{ replica: string; last_seq: string }>(`SELECT replica, last_seq FROM ${prefix}audit_heads`);
      for (const h of now.rows) {
        const from = seen.get(h.replica) ?? 0;
        const to = Number(h.last_seq);
        if (to <= from) continue;
        const r = await client.query<{ line: string }>(
          `SELECT line FROM ${prefix}audit_records WHERE replica = $1 AND seq > $2 AND seq <= $3 ORDER BY seq`,
          [h.replica, from, to],
        );
        for (const row of r.rows) yield toStored({ replica: h.replica, line: row.line });
        seen.set(h.replica, to);
      }
    }
  } finally {
    await client.end().catch(() => undefined);
  }
}
