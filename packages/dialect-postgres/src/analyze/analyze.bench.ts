import { createHash, hash } from 'node:crypto';
import { bench, describe } from 'vitest';
import { analyzePostgres, analyzeUncached, createPostgresAnalyzer } from './analyze.js';
import { lex } from './lexer.js';
import { scanSql } from './normalize.js';
import { parseSql } from './parse.js';

// pgbench's TPC-B-like transaction, one statement at a time, with fresh literals every call.
let seq = 0;
function pgbenchStatement(): string {
  seq = (seq + 1) % 1_000_000;
  const aid = (seq * 7919) % 100_000;
  const delta = (seq % 10_000) - 5000;
  switch (seq % 5) {
    case 0:
      return `UPDATE pgbench_accounts SET abalance = abalance + ${delta} WHERE aid = ${aid};`;
    case 1:
      return `SELECT abalance FROM pgbench_accounts WHERE aid = ${aid};`;
    case 2:
      return `UPDATE pgbench_tellers SET tbalance = tbalance + ${delta} WHERE tid = ${seq % 10};`;
    case 3:
      return `UPDATE pgbench_branches SET bbalance = bbalance + ${delta} WHERE bid = ${seq % 1};`;
    default:
      return `INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (${seq % 10}, 1, ${aid}, ${delta}, CURRENT_TIMESTAMP);`;
  }
}

const fixed = 'UPDATE pgbench_accounts SET abalance = abalance + -4232 WHERE aid = 82731;';
const normalized = 'update pgbench_accounts set abalance = abalance + ? where aid = ?';
const bigSelect =
  "SELECT u.id, u.email, o.total FROM users u JOIN orders o ON o.user_id = u.id WHERE u.created_at > '2024-01-01' " +
  "AND o.status IN ('paid', 'shipped', 'delivered') AND o.total > 100.50 ORDER BY o.total DESC LIMIT 50";

describe('analyzePostgres', () => {
  const noCache = createPostgresAnalyzer({ cacheSize: 0 });
  const cached = createPostgresAnalyzer();
  bench('cache miss (parser runs): pgbench statement, varying literals', () => {
    noCache.analyze(pgbenchStatement());
  });
  bench('cache miss (parser runs): 200-char select with IN list', () => {
    analyzeUncached(bigSelect);
  });
  bench('shape-cache hit: pgbench statement, new literals every call', () => {
    cached.analyze(pgbenchStatement());
  });
  bench('raw-text cache hit: same text', () => {
    analyzePostgres(fixed);
  });
});

describe('stages (pgbench update)', () => {
  bench('lex', () => {
    lex(fixed);
  });
  bench('lex + split + normalize', () => {
    scanSql(fixed);
  });
  bench('parse (libpg-query)', () => {
    parseSql(fixed);
  });
  bench('full analysis, no cache', () => {
    analyzeUncached(fixed);
  });
});

describe('fingerprint hash of a normalized statement', () => {
  bench('sha1 (createHash)', () => {
    createHash('sha1').update(normalized).digest('hex').slice(0, 16);
  });
  bench('sha1 (one-shot crypto.hash)', () => {
    hash('sha1', normalized, 'hex').slice(0, 16);
  });
  bench('md5 (one-shot crypto.hash)', () => {
    hash('md5', normalized, 'hex').slice(0, 16);
  });
  bench('md5 (createHash)', () => {
    createHash('md5').update(normalized).digest('hex').slice(0, 16);
  });
});
