import { bench, describe } from 'vitest';
import { analyzeUncached, createMySqlAnalyzer } from './analyze.js';
import { lex } from './lexer.js';
import { scanSql } from './normalize.js';
import { parserText, parseStatement } from './parse.js';

// sysbench oltp_read_write's statements, one at a time, with fresh literals every call.
let seq = 0;
function sysbenchStatement(): string {
  seq = (seq + 1) % 1_000_000;
  const id = (seq * 7919) % 100_000;
  switch (seq % 6) {
    case 0:
      return `SELECT c FROM sbtest1 WHERE id=${id}`;
    case 1:
      return `SELECT c FROM sbtest1 WHERE id BETWEEN ${id} AND ${id + 99} ORDER BY c`;
    case 2:
      return `UPDATE sbtest1 SET k=k+1 WHERE id=${id}`;
    case 3:
      return `UPDATE sbtest1 SET c='${seq}-${id}-abcdef' WHERE id=${id}`;
    case 4:
      return `DELETE FROM sbtest1 WHERE id=${id}`;
    default:
      return `INSERT INTO sbtest1 (id, k, c, pad) VALUES (${id}, ${seq % 1000}, '${seq}-c', '${id}-pad')`;
  }
}

const fixed = 'SELECT c FROM sbtest1 WHERE id=48213';
const join =
  "SELECT u.id, u.email, o.total FROM users u JOIN orders o ON o.user_id = u.id WHERE u.created_at > '2024-01-01' " +
  "AND o.status IN ('paid', 'shipped', 'delivered') AND o.total > 100.50 AND u.id NOT IN (SELECT user_id FROM banned) ORDER BY o.total DESC LIMIT 50";

describe('MySQL analysis', () => {
  const noCache = createMySqlAnalyzer({ cacheSize: 0 });
  const cached = createMySqlAnalyzer();
  const hot = createMySqlAnalyzer();
  bench('cache miss (parser runs): sysbench statement, varying literals', () => {
    noCache.analyze(sysbenchStatement());
  });
  bench('cache miss (parser runs): join with IN list and subquery', () => {
    analyzeUncached(join);
  });
  bench('cache miss, keywords only: GRANT', () => {
    analyzeUncached("GRANT SELECT, INSERT ON shop.* TO 'app'@'%'");
  });
  bench('shape-cache hit: sysbench statement, new literals every call', () => {
    cached.analyze(sysbenchStatement());
  });
  bench('raw-text cache hit: same text', () => {
    hot.analyze(fixed);
  });
});

describe('stages (point select)', () => {
  const scan = scanSql(fixed);
  const s = scan.statements[0]!;
  const text = parserText(scan.tokens, s.start, s.end).text;
  bench('lex', () => {
    lex(fixed);
  });
  bench('lex + split + normalize', () => {
    scanSql(fixed);
  });
  bench('parse (node-sql-parser, MySQL grammar)', () => {
    parseStatement(text, 'mysql');
  });
  bench('full analysis, no cache', () => {
    analyzeUncached(fixed);
  });
});
