import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmbeddedPostgres, type EmbeddedPostgres } from './embedded-postgres.js';

const STATEMENT_TIMEOUT_MS = 2_500;
const IDLE_IN_TRANSACTION_TIMEOUT_MS = 1_500;

function client(db: EmbeddedPostgres, extra: Partial<pg.ClientConfig> = {}): pg.Client {
  const c = new pg.Client({ connectionString: db.url, ...extra });
  c.on('error', () => undefined);
  return c;
}

async function connected(db: EmbeddedPostgres, extra: Partial<pg.ClientConfig> = {}): Promise<pg.Client> {
  const c = client(db, extra);
  await c.connect();
  return c;
}

async function count(c: pg.Client, table: string): Promise<number> {
  const r = await c.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`);
  return r.rows[0]?.n ?? -1;
}

/** A bare protocol client, for sequences node-postgres never sends. */
class RawClient {
  private received = Buffer.alloc(0);
  closed = false;
  private constructor(private readonly socket: Socket) {
    socket.on('data', (d: Buffer) => (this.received = Buffer.concat([this.received, d])));
    socket.on('close', () => (this.closed = true));
    socket.on('error', () => undefined);
  }

  static async open(port: number): Promise<RawClient> {
    const socket = connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    const raw = new RawClient(socket);
    const params = Buffer.from('user\0someone\0database\0whatever\0\0');
    const head = Buffer.alloc(8);
    head.writeInt32BE(8 + params.length, 0);
    head.writeInt32BE(196608, 4);
    raw.socket.write(Buffer.concat([head, params]));
    await raw.until((types) => types.includes('Z'));
    raw.take();
    return raw;
  }

  static msg(type: string, ...parts: Array<string | Buffer>): Buffer {
    const body = Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(`${p}\0`) : p)));
    const head = Buffer.alloc(5);
    head.write(type, 0, 'latin1');
    head.writeInt32BE(body.length + 4, 1);
    return Buffer.concat([head, body]);
  }

  send(...messages: Buffer[]): void {
    this.socket.write(Buffer.concat(messages));
  }

  /** Message types received so far, plus the text of DataRows and error codes. */
  types(): string[] {
    const out: string[] = [];
    let at = 0;
    while (at + 5 <= this.received.length) {
      const type = String.fromCharCode(this.received[at] ?? 0);
      const len = this.received.readInt32BE(at + 1);
      if (at + 1 + len > this.received.length) break;
      const body = this.received.subarray(at + 5, at + 1 + len);
      if (type === 'D') out.push(`D:${body.subarray(6).toString()}`);
      else if (type === 'E') out.push(`E:${/C([0-9A-Z]{5})\0/.exec(body.toString('latin1'))?.[1] ?? '?'}`);
      else if (type === 'Z') out.push(`Z:${String.fromCharCode(body[0] ?? 0)}`);
      else out.push(type);
      at += 1 + len;
    }
    return out;
  }

  take(): string[] {
    const types = this.types();
    this.received = Buffer.alloc(0);
    return types;
  }

  async until(done: (types: string[]) => boolean, ms = 5_000): Promise<string[]> {
    const deadline = Date.now() + ms;
    while (!done(this.types().map((t) => t.slice(0, 1)))) {
      if (Date.now() > deadline) throw new Error(`timed out; received ${this.types().join(',')}`);
      if (this.closed && !done(this.types())) return this.types();
      await new Promise((r) => setTimeout(r, 10));
    }
    return this.types();
  }

  close(): void {
    this.socket.destroy();
  }
}

const Parse = (name: string, sql: string): Buffer => RawClient.msg('P', name, sql, Buffer.from([0, 0]));
const Bind = (portal: string, stmt: string): Buffer => RawClient.msg('B', portal, stmt, Buffer.alloc(6));
const Execute = (portal: string): Buffer => RawClient.msg('E', portal, Buffer.alloc(4));
const Sync = (): Buffer => RawClient.msg('S');
const Flush = (): Buffer => RawClient.msg('H');
const Query = (sql: string): Buffer => RawClient.msg('Q', sql);

describe('startEmbeddedPostgres', () => {
  let dir: string;
  let db: EmbeddedPostgres;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-embedded-pg-'));
    db = await startEmbeddedPostgres({
      dataDir: join(dir, 'pgdata'),
      statementTimeoutMs: STATEMENT_TIMEOUT_MS,
      idleInTransactionTimeoutMs: IDLE_IN_TRANSACTION_TIMEOUT_MS,
    });
  });

  afterAll(async () => {
    await db?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('seeds the demo schema on first start and describes how to reach it', async () => {
    expect(db.seeded).toBe(true);
    expect(db.host).toBe('127.0.0.1');
    expect(db.port).toBeGreaterThan(0);
    expect(db.url).toBe(`postgres://postgres@127.0.0.1:${db.port}/postgres`);
    const c = await connected(db);
    try {
      expect(await count(c, 'customers')).toBe(50);
      expect(await count(c, 'products')).toBe(12);
      expect(await count(c, 'orders')).toBe(200);
      expect(await count(c, 'api_keys')).toBe(40);
      const orphans = await c.query('SELECT 1 FROM orders o LEFT JOIN customers c ON c.id = o.customer_id WHERE c.id IS NULL');
      expect(orphans.rowCount).toBe(0);
    } finally {
      await c.end();
    }
  });

  it('accepts any user name and password, ignores the database name, and answers SSLRequest with N', async () => {
    const c = await connected(db, { connectionString: undefined, host: db.host, port: db.port, user: 'mallory', password: 'wrong', database: 'nope' });
    const r = await c.query<{ u: string; d: string }>('SELECT current_user AS u, current_database() AS d');
    expect(r.rows[0]).toEqual({ u: 'postgres', d: 'postgres' });
    await c.end();

    const tls = client(db, { ssl: { rejectUnauthorized: false } });
    await expect(tls.connect()).rejects.toThrow(/does not support SSL/);
  });

  it('runs extended-protocol queries with parameters, named statements included', async () => {
    const c = await connected(db);
    try {
      const byId = await c.query<{ email: string }>('SELECT email FROM customers WHERE id = $1', [7]);
      expect(byId.rows[0]?.email).toMatch(/@example\.(com|org|net)$/);
      const named = { name: 'orders_by_status', text: 'SELECT count(*)::int AS n FROM orders WHERE status = $1 AND amount_cents > $2' };
      const a = await c.query<{ n: number }>({ ...named, values: ['delivered', 0] });
      const b = await c.query<{ n: number }>({ ...named, values: ['delivered', 1_000_000] });
      expect(a.rows[0]?.n).toBeGreaterThan(0);
      expect(b.rows[0]?.n).toBe(0);
      await expect(c.query('SELECT 1/$1::int', [0])).rejects.toMatchObject({ code: '22012' });
      expect((await c.query('SELECT 1 AS ok')).rows).toEqual([{ ok: 1 }]);
    } finally {
      await c.end();
    }
  });

  it('serves concurrent clients, one transaction at a time', async () => {
    const [a, b] = await Promise.all([connected(db), connected(db)]);
    try {
      // Interleaved parameterised queries, both clients using the same statement name.
      const run = async (c: pg.Client, tag: string): Promise<number> => {
        let wrong = 0;
        for (let i = 0; i < 40; i++) {
          const r = await c.query<{ t: string; i: number }>({ name: 'same_name', text: 'SELECT $1::text AS t, $2::int AS i', values: [tag, i] });
          if (r.rows[0]?.t !== tag || r.rows[0]?.i !== i) wrong++;
        }
        return wrong;
      };
      expect(await Promise.all([run(a, 'a'), run(b, 'b')])).toEqual([0, 0]);

      // b waits while a holds a transaction open, then sees its committed work.
      await a.query('BEGIN');
      await a.query("INSERT INTO products (sku, name, price_cents) VALUES ('TMP-1', 'temporary', 1)");
      let bDone = false;
      const bCount = b.query<{ n: number }>("SELECT count(*)::int AS n FROM products WHERE sku = 'TMP-1'").then((r) => {
        bDone = true;
        return r.rows[0]?.n;
      });
      await new Promise((r) => setTimeout(r, 300));
      expect(bDone).toBe(false);
      await a.query('COMMIT');
      expect(await bCount).toBe(1);
      await a.query("DELETE FROM products WHERE sku = 'TMP-1'");

      // Settings are not isolated: both clients share PGlite's one session.
      await a.query("SET application_name = 'shared'");
      expect((await b.query('SHOW application_name')).rows[0]).toEqual({ application_name: 'shared' });
      await a.query('RESET application_name');
    } finally {
      await Promise.all([a.end(), b.end()]);
    }
  });

  it('rolls back the transaction of a client that disconnects and resets the session after the last one', async () => {
    const a = await connected(db);
    const defaultPath = (await a.query('SHOW search_path')).rows[0];
    await a.query('BEGIN');
    await a.query("INSERT INTO products (sku, name, price_cents) VALUES ('GONE-1', 'never committed', 1)");
    await a.query('SET search_path = pg_catalog');
    expect((await a.query('SHOW search_path')).rows[0]).not.toEqual(defaultPath);
    await a.end();
    const b = await connected(db);
    try {
      expect(await count(b, "public.products WHERE sku = 'GONE-1'")).toBe(0);
      expect((await b.query('SHOW search_path')).rows[0]).toEqual(defaultPath);
    } finally {
      await b.end();
    }
  });

  it('disconnects a client that holds a transaction idle while another one waits', async () => {
    const [holder, waiter] = await Promise.all([connected(db), connected(db)]);
    try {
      await holder.query('BEGIN');
      await holder.query("INSERT INTO products (sku, name, price_cents) VALUES ('IDLE-1', 'abandoned', 1)");
      const holderError = new Promise<Error>((resolve) => holder.once('error', resolve));
      const started = Date.now();
      expect(await count(waiter, "products WHERE sku = 'IDLE-1'")).toBe(0);
      expect(Date.now() - started).toBeGreaterThanOrEqual(IDLE_IN_TRANSACTION_TIMEOUT_MS - 100);
      expect(await holderError).toMatchObject({ code: '25P03' });
    } finally {
      await Promise.all([holder.end().catch(() => undefined), waiter.end()]);
    }
  });

  it('keeps an unfinished extended-protocol sequence to itself until its Sync', async () => {
    const a = await RawClient.open(db.port);
    const b = await RawClient.open(db.port);
    try {
      a.send(Parse('', "SELECT 'from a'"), Flush());
      await a.until((t) => t.includes('1'));
      b.send(Parse('', "SELECT 'from b'"), Bind('', ''), Execute(''), Sync());
      await new Promise((r) => setTimeout(r, 200));
      expect(b.types()).toEqual([]);
      a.send(Bind('', ''), Execute(''), Sync());
      expect(await a.until((t) => t.includes('Z'))).toEqual(['1', '2', 'D:from a', 'C', 'Z:I']);
      expect(await b.until((t) => t.includes('Z'))).toEqual(['1', '2', 'D:from b', 'C', 'Z:I']);

      // After an error the backend skips messages until Sync; b must not be skipped.
      a.take();
      b.take();
      a.send(Parse('', 'SELECT 1/0'), Bind('', ''), Execute(''), Flush());
      await a.until((t) => t.includes('E'));
      b.send(Query('SELECT 42'));
      await new Promise((r) => setTimeout(r, 200));
      a.send(Sync());
      await a.until((t) => t.includes('Z'));
      expect(await b.until((t) => t.includes('Z'))).toEqual(['T', 'D:42', 'C', 'Z:I']);
    } finally {
      a.close();
      b.close();
    }
  });

  it('refuses COPY FROM STDIN without harm and supports COPY TO STDOUT', async () => {
    const c = await connected(db);
    try {
      await expect(c.query('COPY products (sku, name, price_cents) FROM STDIN')).rejects.toMatchObject({ code: '0A000' });
      await expect(c.query({ name: 'copy_in', text: 'COPY products FROM STDIN', values: [] })).rejects.toMatchObject({ code: '0A000' });
      expect(await count(c, 'products')).toBe(12);
    } finally {
      await c.end();
    }
    const raw = await RawClient.open(db.port);
    try {
      raw.send(Query('COPY (SELECT id FROM products ORDER BY id LIMIT 2) TO STDOUT'));
      expect(await raw.until((t) => t.includes('Z'))).toEqual(['H', 'd', 'd', 'c', 'C', 'Z:I']);
    } finally {
      raw.close();
    }
  });

  it('closes a client that sends an unknown message type, and only that client', async () => {
    const bad = await RawClient.open(db.port);
    const good = await connected(db);
    try {
      bad.send(RawClient.msg('p', 'password'));
      expect(await bad.until((t) => t.includes('E'))).toEqual(['E:08P01']);
      await bad.until(() => bad.closed);
      expect(await count(good, 'customers')).toBe(50);
    } finally {
      bad.close();
      await good.end();
    }
  });

  it('restarts the database after a statement overruns the time limit', async () => {
    const slow = await connected(db);
    const bystander = await connected(db);
    const started = Date.now();
    await expect(slow.query('SELECT pg_sleep(30)')).rejects.toMatchObject({ code: '57014' });
    expect(Date.now() - started).toBeLessThan(STATEMENT_TIMEOUT_MS + 2_000);
    await expect(bystander.query('SELECT 1')).rejects.toThrow();
    const after = await connected(db);
    try {
      expect(await count(after, 'customers')).toBe(50);
    } finally {
      await after.end();
    }
  });

  it('persists across a restart on the same directory without seeding again', async () => {
    const c = await connected(db);
    await c.query("INSERT INTO customers (full_name, email) VALUES ('Persisted Person', 'persisted@example.com')");
    await c.end();
    await expect(startEmbeddedPostgres({ dataDir: join(dir, 'pgdata') })).rejects.toThrow(/in use/);
    await db.close();

    db = await startEmbeddedPostgres({ dataDir: join(dir, 'pgdata') });
    expect(db.seeded).toBe(false);
    const again = await connected(db);
    try {
      expect(await count(again, 'customers')).toBe(51);
      expect(await count(again, 'orders')).toBe(200);
    } finally {
      await again.end();
    }
  });
});
