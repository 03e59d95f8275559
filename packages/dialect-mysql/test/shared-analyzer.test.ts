/**
 * The statement analyzer and its caches are shared by the sessions with the same settings.
 * One analyzer per session kept up to three caches of 5,000 entries for each session: memory
 * grew with the number of sessions times the statement shapes each had seen (500 pooled
 * sessions that had each seen 200 shapes held about 300 MB of analyses; shared, about 2 MB).
 */
import { requireService, startTestGateway, type TestGateway } from '@sluice/testkit';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sharedMySqlAnalyzer } from '../src/analyze/index.js';
import { mysqlDialect } from '../src/index.js';
import { connectMysql } from './mysql-driver.js';

const BOT = { subject: 'shared-analyzer-bot', token: 'shared-analyzer-token-0123456789' };

describe('shared analyzer', () => {
  it('is one per dialect and sql_mode flags, whatever the sql_mode text', () => {
    const a = sharedMySqlAnalyzer({ dialect: 'mariadb', sqlMode: 'STRICT_TRANS_TABLES,ANSI_QUOTES' });
    expect(sharedMySqlAnalyzer({ dialect: 'mariadb', sqlMode: ' ansi_quotes , NO_ZERO_DATE' })).toBe(a);
    expect(sharedMySqlAnalyzer({ dialect: 'mariadb', sqlMode: { ansiQuotes: true } })).toBe(a);
    expect(sharedMySqlAnalyzer({ dialect: 'mysql', sqlMode: 'ANSI_QUOTES' })).not.toBe(a);
    expect(sharedMySqlAnalyzer({ dialect: 'mariadb', sqlMode: '' })).not.toBe(a);
    // The text is read as the settings say: "x" is an identifier with ANSI_QUOTES, a string without.
    expect(a.analyze('SELECT "x" FROM shared_an_t').objects?.map((o) => o.name)).toEqual(['shared_an_t']);
    expect(a.analyze('SELECT "x" FROM shared_an_t').lineage?.columns?.[0]?.sources.map((s) => s.column)).toEqual(['x']);
    expect(sharedMySqlAnalyzer({ dialect: 'mariadb', sqlMode: '' }).analyze('SELECT "x" FROM shared_an_t').lineage?.columns?.[0]?.sources).toEqual([]);
  });

  it('stays at most 32 analyzers (2 dialects x 16 flag combinations) for any number of sql_mode values', () => {
    const modes = ['ANSI_QUOTES', 'NO_BACKSLASH_ESCAPES', 'PIPES_AS_CONCAT', 'HIGH_NOT_PRECEDENCE', 'STRICT_TRANS_TABLES', 'NO_ZERO_DATE', 'ONLY_FULL_GROUP_BY'];
    const seen = new Set<unknown>();
    for (const dialect of ['mysql', 'mariadb'] as const) {
      for (let bits = 0; bits < 1 << modes.length; bits++) {
        const mode = modes.filter((_, i) => (bits & (1 << i)) !== 0).join(',');
        seen.add(sharedMySqlAnalyzer({ dialect, sqlMode: mode }));
        seen.add(sharedMySqlAnalyzer({ dialect, sqlMode: mode.toLowerCase() }));
      }
    }
    expect(seen.size).toBe(32);
  });

  describe('through the gateway', () => {
    let available = false;
    let gw: TestGateway | undefined;
    let sqlMode = '';

    beforeAll(async () => {
      available = await requireService('MariaDB', '127.0.0.1', 3306);
      if (!available) return;
      const direct = await mysql.createConnection({ host: '127.0.0.1', port: 3306, user: 'root', database: 'test' });
      try {
        const [rows] = await direct.query<mysql.RowDataPacket[]>('SELECT @@SESSION.sql_mode AS mode');
        sqlMode = String(rows[0]!.mode ?? '');
      } finally {
        await direct.end();
      }
      gw = await startTestGateway({
        dialect: mysqlDialect,
        targets: { shared: { upstream: 'mysql://root@127.0.0.1:3306/test' } },
        tokens: [{ subject: BOT.subject, kind: 'service', groups: ['bots'], token: BOT.token }],
      });
    }, 60_000);

    afterAll(async () => {
      await gw?.close();
    });

    it('analyses a statement shape once for all sessions, not once per session', async () => {
      if (!available) return;
      const SESSIONS = 12;
      const SHAPES = 5;
      const analyzer = sharedMySqlAnalyzer({ dialect: 'mariadb', sqlMode });
      const before = analyzer.size;
      const sessions = await Promise.all(Array.from({ length: SESSIONS }, () => connectMysql(gw!, 'shared', BOT.subject, BOT.token)));
      try {
        for (let k = 0; k < SHAPES; k++) {
          for (const [s, c] of sessions.entries()) {
            // Same shape in every session, other literals: only the first text is parsed and kept.
            const [rows] = await c.query<mysql.RowDataPacket[]>(`SELECT ${s} AS shared_analyzer_shape_${k}, ${s * 7 + k} AS n`);
            expect(rows).toEqual([{ [`shared_analyzer_shape_${k}`]: s, n: s * 7 + k }]);
          }
        }
      } finally {
        await Promise.all(sessions.map((c) => c.end()));
      }
      // One analyzer per session would leave the shared one untouched (0), and keep
      // SESSIONS x SHAPES analyses in the sessions' own caches.
      expect(analyzer.size - before).toBe(SHAPES);
    }, 60_000);
  });
});
