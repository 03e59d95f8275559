/**
 * The relay reads the server's packets from whatever chunks TCP delivers. Here a proxy between
 * the gateway and MariaDB cuts the server's bytes into pieces of 1 to 7 bytes (so packet
 * headers, first bytes and bodies are split at every offset), and each answer must arrive
 * exactly as it does without the gateway.
 */
import net from 'node:net';
import { requireService, startTestGateway, type TestGateway } from '@sluice/testkit';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mysqlDialect } from '../src/index.js';
import { connectMysql } from './mysql-driver.js';

const TOKEN = 'split-token';
const SUBJECT = 'split@example.com';

/** A TCP proxy to `port` that delivers the server's bytes in small pieces, one per tick. */
async function startChoppingProxy(port: number): Promise<{ port: number; pieces: () => number; close: () => Promise<void> }> {
  let pieces = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(port, '127.0.0.1');
    sockets.add(client);
    sockets.add(upstream);
    client.setNoDelay(true);
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    client.pipe(upstream);
    const queue: Buffer[] = [];
    let sizeIndex = 0;
    let pumping = false;
    const pump = (): void => {
      const next = queue[0];
      if (!next || client.destroyed) {
        pumping = false;
        return;
      }
      const size = (sizeIndex++ % 7) + 1;
      const piece = next.subarray(0, size);
      if (piece.length === next.length) queue.shift();
      else queue[0] = next.subarray(size);
      client.write(piece);
      pieces++;
      setImmediate(pump);
    };
    upstream.on('data', (chunk: Buffer) => {
      queue.push(chunk);
      if (!pumping) {
        pumping = true;
        setImmediate(pump);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    pieces: () => pieces,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('relay with the server answer split at every offset', () => {
  let available = false;
  let proxy: Awaited<ReturnType<typeof startChoppingProxy>> | undefined;
  let gw: TestGateway | undefined;
  /** Masking, through the proxy and without it. */
  let maskedChopped: TestGateway | undefined;
  let maskedWhole: TestGateway | undefined;
  let direct: mysql.Connection | undefined;

  beforeAll(async () => {
    available = await requireService('MariaDB', '127.0.0.1', 3306);
    if (!available) return;
    direct = await mysql.createConnection({ host: '127.0.0.1', port: 3306, user: 'root', database: 'test', multipleStatements: true });
    await direct.query('DROP TABLE IF EXISTS split_my_t');
    await direct.query('CREATE TABLE split_my_t (id INT PRIMARY KEY, name VARCHAR(40), note TEXT, amount DECIMAL(10,2), at DATETIME(3), flag TINYINT, big BIGINT UNSIGNED)');
    const rows = Array.from({ length: 40 }, (_, i) => [i, `name-${i}`, i % 5 === 0 ? null : 'x'.repeat(i * 3), i * 1.25, new Date(Date.UTC(2026, 0, 1, 0, 0, i)), i % 2, BigInt(2) ** BigInt(63) + BigInt(i)]);
    await direct.query('INSERT INTO split_my_t VALUES ?', [rows]);
    proxy = await startChoppingProxy(3306);
    gw = await startTestGateway({
      dialect: mysqlDialect,
      targets: { split: { upstream: `mysql://root@127.0.0.1:${proxy.port}/test` } },
      tokens: [{ subject: SUBJECT, kind: 'service', token: TOKEN }],
    });
    const masking = {
      hashKey: 'split-test-hash-key-0123456789',
      columns: [
        { column: 'split_my_t.name', strategy: 'partial' },
        { column: 'split_my_t.note', strategy: 'redact' },
        { column: 'split_my_t.big', strategy: 'hash' },
      ],
    };
    maskedChopped = await startTestGateway({
      dialect: mysqlDialect,
      targets: { split: { upstream: `mysql://root@127.0.0.1:${proxy.port}/test` } },
      tokens: [{ subject: SUBJECT, kind: 'service', token: TOKEN }],
      masking,
    });
    maskedWhole = await startTestGateway({
      dialect: mysqlDialect,
      targets: { split: { upstream: 'mysql://root@127.0.0.1:3306/test' } },
      tokens: [{ subject: SUBJECT, kind: 'service', token: TOKEN }],
      masking,
    });
  });

  afterAll(async () => {
    await gw?.close();
    await maskedChopped?.close();
    await maskedWhole?.close();
    await proxy?.close();
    await direct?.query('DROP TABLE IF EXISTS split_my_t');
    await direct?.end();
  });

  const live = (name: string, fn: () => Promise<void>) =>
    it(name, async () => {
      if (!available) return;
      await fn();
    }, 60_000);

  live('text results, multi-results, errors and prepared statements arrive exactly as without the gateway', async () => {
    const client = await connectMysql(gw!, 'split', SUBJECT, TOKEN, { multipleStatements: true, supportBigNumbers: true, bigNumberStrings: true, dateStrings: true });
    const plainDirect = await mysql.createConnection({ host: '127.0.0.1', port: 3306, user: 'root', database: 'test', multipleStatements: true, supportBigNumbers: true, bigNumberStrings: true, dateStrings: true });
    try {
      const queries = [
        'SELECT * FROM split_my_t ORDER BY id',
        'SELECT id, name FROM split_my_t WHERE id < 3; SELECT COUNT(*) AS n FROM split_my_t; SELECT note FROM split_my_t WHERE id = 7',
        'UPDATE split_my_t SET flag = flag WHERE id > 100',
      ];
      for (const q of queries) {
        const [viaGateway] = await client.query(q);
        const [withoutGateway] = await plainDirect.query(q);
        expect(viaGateway, q).toEqual(withoutGateway);
      }
      for (const [q, params] of [
        ['SELECT * FROM split_my_t WHERE id >= ? ORDER BY id', [10]],
        ['SELECT name, amount, at FROM split_my_t WHERE id IN (?, ?, ?)', [1, 2, 30]],
      ] as const) {
        const [viaGateway] = await client.execute(q, [...params]);
        const [withoutGateway] = await plainDirect.execute(q, [...params]);
        expect(viaGateway, q).toEqual(withoutGateway);
      }
      await expect(client.query('SELECT nope FROM split_my_t')).rejects.toMatchObject({ errno: 1054, sqlState: '42S22' });
      const [after] = await client.query('SELECT 1 AS one');
      expect(after).toEqual([{ one: 1 }]);
      // The server's answers really came in small pieces.
      expect(proxy!.pieces()).toBeGreaterThan(2000);
    } finally {
      await client.end();
      await plainDirect.end();
    }
  });

  live('masked rows rewritten from split answers are the same as from whole ones', async () => {
    const options = { multipleStatements: true, supportBigNumbers: true, bigNumberStrings: true, dateStrings: true } as const;
    const chopped = await connectMysql(maskedChopped!, 'split', SUBJECT, TOKEN, options);
    const whole = await connectMysql(maskedWhole!, 'split', SUBJECT, TOKEN, options);
    try {
      for (const q of ['SELECT * FROM split_my_t ORDER BY id', 'SELECT name AS n, concat(note, name) AS c FROM split_my_t ORDER BY id; SELECT big FROM split_my_t WHERE id < 4']) {
        const [a] = await chopped.query(q);
        const [b] = await whole.query(q);
        expect(a, q).toEqual(b);
        expect(JSON.stringify(a)).not.toContain('name-1');
      }
      const [a] = await chopped.execute('SELECT * FROM split_my_t WHERE id > ? ORDER BY id', [2]);
      const [b] = await whole.execute('SELECT * FROM split_my_t WHERE id > ? ORDER BY id', [2]);
      expect(a).toEqual(b);
      expect(JSON.stringify(a)).not.toContain('name-1');
    } finally {
      await chopped.end();
      await whole.end();
    }
  });
});
