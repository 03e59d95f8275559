import { DETECTOR_NAMES, REDACTED_MARKER, SensitiveColumns, hashToInt, type MaskStrategy, type StatementMasking } from '@sluice/core';
import { requireService } from '@sluice/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMySqlAnalyzer } from '../src/analyze/analyze.js';
import { loadCatalog, planResult, type MysqlCatalogSnapshot } from '../src/masking/index.js';
import { Command } from '../src/protocol/constants.js';
import {
  createRowRanges,
  decodeBinaryRow,
  decodeColumnCount,
  decodeColumnDefinition41,
  decodeErr,
  decodeStmtPrepareOk,
  decodeTextRow,
  encodeComQuery,
  encodeComStmtExecute,
  encodeComStmtPrepare,
  encodeSimpleCommand,
  encodeStatementCommand,
  endsRows,
  isErrPacket,
  isOkPacket,
  rowValue,
  type BinaryParam,
  type ColumnDefinition41,
} from '../src/protocol/messages.js';
import { connectUpstream, type MysqlUpstreamConnection, type MysqlUpstreamOptions } from '../src/protocol/upstream.js';
import { PacketConnection } from './packet-connection.js';

/**
 * Masking against the real MariaDB 10.11 on 127.0.0.1:3306 (root, empty password, database
 * `test`): what the server puts in org_table / org_name for every kind of result column (the
 * plan relies on it), and whole results of real queries planned and masked, in the text and
 * the binary protocol.
 */

let available = false;
function live(name: string, body: () => Promise<void>, timeout = 30_000): void {
  it(name, async () => {
    if (!available) return;
    await body();
  }, timeout);
}

const ROOT: MysqlUpstreamOptions = { host: '127.0.0.1', port: 3306, user: 'root', password: '', database: 'test', connectTimeoutMs: 5000 };

interface Result {
  readonly columns: ColumnDefinition41[];
  readonly rows: Buffer[];
}

/** Commands and their responses over a logged-in connection. */
class Wire extends PacketConnection {
  /** The next message's payload; an ERR is thrown. */
  async read(): Promise<Buffer> {
    const { payload } = await this.message();
    if (isErrPacket(payload)) throw new Error(decodeErr(payload).message);
    return payload;
  }


  async columns(count: number): Promise<ColumnDefinition41[]> {
    const cols: ColumnDefinition41[] = [];
    for (let i = 0; i < count; i++) cols.push(decodeColumnDefinition41(await this.read()));
    if (!this.deprecateEof && count > 0) await this.read();
    return cols;
  }

  async #resultset(first: Buffer): Promise<Result> {
    const columns = await this.columns(decodeColumnCount(first));
    const rows: Buffer[] = [];
    for (;;) {
      const p = await this.read();
      if (endsRows(p, this.deprecateEof)) return { columns, rows };
      rows.push(p);
    }
  }

  async query(sql: string): Promise<Result> {
    this.command(encodeComQuery(sql));
    const first = await this.read();
    if (isOkPacket(first)) return { columns: [], rows: [] };
    return this.#resultset(first);
  }

  async exec(sql: string): Promise<void> {
    await this.query(sql);
  }

  /** Prepares, executes once with the parameters and closes: the binary resultset. */
  async execute(sql: string, params: readonly BinaryParam[]): Promise<Result> {
    this.command(encodeComStmtPrepare(sql));
    const ok = decodeStmtPrepareOk(await this.read());
    await this.columns(ok.paramCount);
    await this.columns(ok.columnCount);
    this.command(encodeComStmtExecute({ statementId: ok.statementId, params }));
    const result = await this.#resultset(await this.read());
    this.command(encodeStatementCommand(Command.STMT_CLOSE, ok.statementId));
    return result;
  }

  close(): void {
    this.command(encodeSimpleCommand(Command.QUIT));
    this.conn.socket.end();
  }
}

async function open(): Promise<Wire> {
  return new Wire(await connectUpstream(ROOT));
}

const KEY = Buffer.from('fedcba9876543210fedcba9876543210');

function masking(columns: readonly { column: string; strategy: MaskStrategy }[], detectors = false): StatementMasking {
  const sc = new SensitiveColumns({ columns });
  return {
    target: 'mariadb',
    strongest: (s) => sc.strongest('mariadb', s),
    scanned: (s) => sc.scanned('mariadb', s),
    sensitiveTable: (schema, table) => sc.mayMatchTable('mariadb', schema, table),
    detectors: new Set(detectors ? DETECTOR_NAMES : []),
    detectorStrategy: 'partial',
    hashKey: KEY,
  };
}

const analyzer = createMySqlAnalyzer({ dialect: 'mariadb' });
let wire: Wire;
let catalog: MysqlCatalogSnapshot;

const EMAIL = 'john.smith@example.com';
const SSN = '123-45-6789';

beforeAll(async () => {
  available = await requireService('MariaDB', '127.0.0.1', 3306);
  if (!available) return;
  wire = await open();
  for (const sql of [
    'DROP VIEW IF EXISTS mask_mod_wire_v2',
    'DROP VIEW IF EXISTS mask_mod_wire_v',
    'DROP FUNCTION IF EXISTS mask_mod_wire_f',
    'DROP TABLE IF EXISTS mask_mod_wire_t',
    `CREATE TABLE mask_mod_wire_t (id INT PRIMARY KEY, email VARCHAR(40), ssn CHAR(11), n BIGINT UNSIGNED, small TINYINT,
       amount DECIMAL(10,2), born DATE, doc JSON, name VARCHAR(30), note TEXT) DEFAULT CHARSET utf8mb4`,
    `INSERT INTO mask_mod_wire_t VALUES (1, '${EMAIL}', '${SSN}', 18446744073709551615, -5, 12.50, '1980-02-03', '{"k": "v"}', 'Zoë Ångström', 'reach me at jane.doe@example.org'),
       (2, NULL, NULL, 42, NULL, NULL, NULL, NULL, NULL, NULL)`,
    `CREATE FUNCTION mask_mod_wire_f(x INT) RETURNS VARCHAR(40) READS SQL DATA RETURN (SELECT ssn FROM mask_mod_wire_t WHERE id = x)`,
    'CREATE VIEW mask_mod_wire_v AS SELECT id AS vid, email AS vmail, upper(email) AS up, mask_mod_wire_f(id) AS secret FROM mask_mod_wire_t',
    'CREATE VIEW mask_mod_wire_v2 AS SELECT vmail AS m2, up FROM mask_mod_wire_v',
  ]) {
    await wire.exec(sql);
  }
  catalog = await loadCatalog(ROOT);
});

afterAll(async () => {
  if (!available) return;
  for (const sql of ['DROP VIEW IF EXISTS mask_mod_wire_v2', 'DROP VIEW IF EXISTS mask_mod_wire_v', 'DROP FUNCTION IF EXISTS mask_mod_wire_f', 'DROP TABLE IF EXISTS mask_mod_wire_t']) {
    await wire.exec(sql);
  }
  wire.close();
});

/** `name: schema/table/org_table/org_name` of each column. */
async function described(sql: string): Promise<string[]> {
  const { columns } = await wire.query(sql);
  return columns.map((c) => `${c.name}: ${c.schema}/${c.table}/${c.orgTable}/${c.orgName}`);
}

describe('what MariaDB sends as org_table / org_name', () => {
  live('a table column: the table and column, whatever the aliases', async () => {
    expect(await described('SELECT email AS e, t.ssn FROM mask_mod_wire_t t')).toEqual([
      'e: test/t/mask_mod_wire_t/email',
      'ssn: test/t/mask_mod_wire_t/ssn',
    ]);
    expect(await described('SELECT email FROM test.mask_mod_wire_t')).toEqual(['email: test/mask_mod_wire_t/mask_mod_wire_t/email']);
  });

  live('a view column: the view and the view column, not the base table; no schema for a computed one', async () => {
    expect(await described('SELECT * FROM mask_mod_wire_v')).toEqual([
      'vid: test/mask_mod_wire_v/mask_mod_wire_v/vid',
      'vmail: test/mask_mod_wire_v/mask_mod_wire_v/vmail',
      'up: /mask_mod_wire_v/mask_mod_wire_v/up',
      'secret: /mask_mod_wire_v/mask_mod_wire_v/secret',
    ]);
    expect(await described('SELECT m2, up FROM mask_mod_wire_v2')).toEqual([
      'm2: test/mask_mod_wire_v2/mask_mod_wire_v2/m2',
      'up: /mask_mod_wire_v2/mask_mod_wire_v2/up',
    ]);
  });

  live('an aliased view: the alias in org_table too', async () => {
    expect(await described('SELECT x.vmail AS mail, x.up FROM mask_mod_wire_v x')).toEqual(['mail: test/x/x/vmail', 'up: /x/x/up']);
  });

  live('derived tables and CTEs: their name and column name; no schema for a computed column', async () => {
    expect(await described('SELECT d.e, d.u FROM (SELECT email AS e, upper(ssn) AS u FROM mask_mod_wire_t) d')).toEqual(['e: test/d/d/e', 'u: /d/d/u']);
    expect(await described('WITH c AS (SELECT email, lower(ssn) AS s FROM mask_mod_wire_t) SELECT * FROM c')).toEqual(['email: test/c/c/email', 's: /c/c/s']);
  });

  live('expressions and scalar subqueries: nothing; a stored function and a UNION: a name in org_name only', async () => {
    expect(await described('SELECT upper(email), id + 1, mask_mod_wire_f(id) AS f, (SELECT ssn FROM mask_mod_wire_t LIMIT 1) AS s FROM mask_mod_wire_t')).toEqual([
      'upper(email): ///',
      'id + 1: ///',
      'f: ///f',
      's: ///',
    ]);
    expect(await described('SELECT email FROM mask_mod_wire_t UNION SELECT ssn FROM mask_mod_wire_t')).toEqual(['email: ///email']);
  });

  live('a temporary table: its schema and name (it is in no other session\'s information_schema)', async () => {
    await wire.exec('CREATE TEMPORARY TABLE mask_mod_wire_tmp AS SELECT id, ssn FROM mask_mod_wire_t');
    try {
      expect(await described('SELECT * FROM mask_mod_wire_tmp')).toEqual(['id: test/mask_mod_wire_tmp/mask_mod_wire_tmp/id', 'ssn: test/mask_mod_wire_tmp/mask_mod_wire_tmp/ssn']);
      // Planned column by column even though the catalog does not list it.
      let unknown = 0;
      const sql = 'SELECT * FROM mask_mod_wire_tmp ORDER BY id';
      const { columns, rows } = await wire.query(sql);
      const m = planResult(
        columns,
        { lineage: analyzer.analyze(sql).lineage, catalog, defaultSchema: 'test', onUnknownRelation: () => unknown++ },
        masking([{ column: '*.*.ssn', strategy: 'partial' }]),
        false,
      )!;
      expect(m.actions.map((a) => a.name)).toEqual(['ssn']);
      expect(unknown).toBe(1);
      const out = m.maskRow(rows[0]!)!;
      const r = decodeTextRow(out, 2);
      expect([rowValue(out, r, 0)?.toString(), rowValue(out, r, 1)?.toString()]).toEqual(['1', '***-**-6789']);
    } finally {
      await wire.exec('DROP TEMPORARY TABLE IF EXISTS mask_mod_wire_tmp');
    }
  });

  live('system tables: their schema and name', async () => {
    expect(await described('SELECT TABLE_NAME FROM information_schema.TABLES LIMIT 1')).toEqual(['TABLE_NAME: information_schema/TABLES/TABLES/TABLE_NAME']);
  });
});

/** Runs a query through the plan: the masked rows as text (null for NULL), or the rows as they came. */
async function maskedText(sql: string, rules: StatementMasking): Promise<{ rows: (string | null)[][]; masked: readonly unknown[]; planned: boolean }> {
  const { columns, rows } = await wire.query(sql);
  const m = planResult(columns, { lineage: analyzer.analyze(sql).lineage, catalog, defaultSchema: 'test' }, rules, false);
  const ranges = createRowRanges(columns.length);
  const out = rows.map((r) => {
    const row = m?.maskRow(r) ?? r;
    decodeTextRow(row, columns.length, ranges);
    return columns.map((_, i) => rowValue(row, ranges, i)?.toString('utf8') ?? null);
  });
  return { rows: out, masked: m?.masked ?? [], planned: m !== undefined };
}

describe('real results, planned and masked', () => {
  const rules = masking([
    { column: 'test.mask_mod_wire_t.email', strategy: 'partial' },
    { column: 'mask_mod_wire_t.ssn', strategy: 'redact' },
    { column: '*.mask_mod_wire_t.n', strategy: 'hash' },
    { column: 'mask_mod_wire_t.name', strategy: 'partial' },
  ]);
  const withDetectors = masking(
    [
      { column: 'test.mask_mod_wire_t.email', strategy: 'partial' },
      { column: 'mask_mod_wire_t.ssn', strategy: 'redact' },
    ],
    true,
  );

  live('plain columns, aliases and SELECT *', async () => {
    const r = await maskedText('SELECT t.email AS contact, ssn, n, name, id FROM mask_mod_wire_t t ORDER BY id', rules);
    expect(r.rows[0]).toEqual(['j***@e***.com', REDACTED_MARKER, BigInt.asUintN(64, hashToInt(KEY, '18446744073709551615', 64)).toString(), 'Z***m', '1']);
    expect(r.rows[1]).toEqual([null, null, BigInt.asUintN(64, hashToInt(KEY, '42', 64)).toString(), null, '2']);
    expect(r.masked).toEqual([
      { column: 'contact', by: 'column:test.mask_mod_wire_t.email' },
      { column: 'ssn', by: 'column:mask_mod_wire_t.ssn' },
      { column: 'n', by: 'column:*.mask_mod_wire_t.n' },
      { column: 'name', by: 'column:mask_mod_wire_t.name' },
    ]);
    const star = await maskedText('SELECT * FROM mask_mod_wire_t WHERE id = 1', rules);
    expect(star.rows[0]!.slice(0, 3)).toEqual(['1', 'j***@e***.com', REDACTED_MARKER]);
    expect(star.rows[0]![9]).toBe('reach me at jane.doe@example.org');
  });

  live('views, views over views and aliased views', async () => {
    const v = await maskedText('SELECT * FROM mask_mod_wire_v WHERE vid = 1', rules);
    // The stored function's result cannot be traced: it is only scanned, and there are no detectors here.
    expect(v.rows[0]).toEqual(['1', 'j***@e***.com', REDACTED_MARKER, SSN]);
    const scanned = await maskedText('SELECT * FROM mask_mod_wire_v WHERE vid = 1', withDetectors);
    expect(scanned.rows[0]).toEqual(['1', 'j***@e***.com', REDACTED_MARKER, '***-**-6789']);
    const v2 = await maskedText('SELECT * FROM mask_mod_wire_v2', rules);
    expect(v2.rows.find((r) => r[0] !== null)).toEqual(['j***@e***.com', REDACTED_MARKER]);
    const x = await maskedText('SELECT x.vmail AS mail, x.up FROM mask_mod_wire_v x WHERE x.vid = 1', rules);
    expect(x.rows[0]).toEqual(['j***@e***.com', REDACTED_MARKER]);
  });

  live('computed values are redacted; derived tables, CTEs and UNION are followed', async () => {
    const sqls = [
      'SELECT concat(email, \'\') AS a, substr(ssn, 1, 3) AS b FROM mask_mod_wire_t WHERE id = 1',
      'SELECT d.a, d.b FROM (SELECT email AS a, ssn AS b FROM mask_mod_wire_t WHERE id = 1) d',
      'WITH c AS (SELECT email AS a, ssn AS b FROM mask_mod_wire_t WHERE id = 1) SELECT * FROM c',
      'SELECT email AS a, ssn AS b FROM mask_mod_wire_t WHERE id = 1 UNION ALL SELECT \'x\', \'y\'',
      'SELECT (SELECT email FROM mask_mod_wire_t WHERE id = 1) AS a, mask_mod_wire_f(1) AS b',
    ];
    for (const sql of sqls) {
      const r = await maskedText(sql, withDetectors);
      const text = JSON.stringify(r.rows);
      expect(text, sql).not.toContain('john');
      // A detector's partial mask keeps the last four digits, as the configured one would.
      expect(text, sql).not.toContain('123-45');
    }
    expect((await maskedText(sqls[1]!, rules)).rows[0]).toEqual(['j***@e***.com', REDACTED_MARKER]);
    expect((await maskedText(sqls[0]!, rules)).rows[0]).toEqual([REDACTED_MARKER, '***']);
  });

  live("a stored function's value draws on the columns its body reads", async () => {
    const r = await maskedText('SELECT mask_mod_wire_f(1) AS f, note FROM mask_mod_wire_t WHERE id = 1', masking([{ column: 'mask_mod_wire_t.ssn', strategy: 'partial' }], true));
    expect(r.rows[0]).toEqual(['[redacted]', 'reach me at jane.doe@example.org']);
    expect((r.masked as { column: string }[]).map((m) => m.column)).toEqual(['f']);
  });

  live('a result with nothing sensitive is not planned', async () => {
    expect((await maskedText('SELECT id, amount, born FROM mask_mod_wire_t', rules)).planned).toBe(false);
  });

  live('binary protocol (prepared statements): the same masks, type-valid', async () => {
    const sql = 'SELECT id, email, n, small, amount, born, doc FROM mask_mod_wire_t WHERE id = ?';
    const binRules = masking([
      { column: 'mask_mod_wire_t.email', strategy: 'partial' },
      { column: 'mask_mod_wire_t.n', strategy: 'hash' },
      { column: 'mask_mod_wire_t.small', strategy: 'hash' },
      { column: 'mask_mod_wire_t.amount', strategy: 'partial' },
      { column: 'mask_mod_wire_t.born', strategy: 'hash' },
      { column: 'mask_mod_wire_t.doc', strategy: 'redact' },
    ]);
    const id = Buffer.alloc(4);
    id.writeInt32LE(1);
    const { columns, rows } = await wire.execute(sql, [{ type: 3, unsigned: false, value: id }]);
    const m = planResult(columns, { lineage: analyzer.analyze(sql).lineage, catalog, defaultSchema: 'test' }, binRules, true)!;
    const out = m.maskRow(rows[0]!)!;
    const types = columns.map((c) => c.type);
    const r = decodeBinaryRow(out, types);
    expect(rowValue(out, r, 0)!.readInt32LE(0)).toBe(1);
    expect(rowValue(out, r, 1)!.toString()).toBe('j***@e***.com');
    expect(rowValue(out, r, 2)!.readBigUInt64LE(0)).toBe(BigInt.asUintN(64, hashToInt(KEY, '18446744073709551615', 64)));
    expect(rowValue(out, r, 3)!.readInt8(0)).toBe(Number(BigInt.asIntN(8, hashToInt(KEY, '-5', 64))));
    expect(rowValue(out, r, 4)).toBeNull();
    expect(rowValue(out, r, 5)).toBeNull();
    // MariaDB's JSON is LONGTEXT: the marker as text.
    expect(rowValue(out, r, 6)!.toString()).toBe(REDACTED_MARKER);
    // The same keyed numbers as in the text protocol.
    const text = await maskedText('SELECT n, small FROM mask_mod_wire_t WHERE id = 1', binRules);
    expect(text.rows[0]).toEqual([rowValue(out, r, 2)!.readBigUInt64LE(0).toString(), String(rowValue(out, r, 3)!.readInt8(0))]);
  });
});
