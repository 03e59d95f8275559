import { createHash, randomBytes } from 'node:crypto';
import { requireService } from '@sluice/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuthPlugin, nativePasswordScramble } from '../src/protocol/auth.js';
import {
  CLIENT_DEPRECATE_EOF,
  CLIENT_MYSQL,
  CLIENT_PROTOCOL_41,
  CLIENT_SSL,
  ColumnFlag,
  ColumnType,
  Command,
  ServerStatus,
  createRowRanges,
  decodeBinaryRow,
  decodeColumnCount,
  decodeColumnDefinition41,
  decodeComStmtExecute,
  decodeEof,
  decodeErr,
  decodeOk,
  decodeStmtPrepareOk,
  decodeTextRow,
  encodeBinaryRow,
  encodeComQuery,
  encodeComStmtExecute,
  encodeComStmtPrepare,
  encodeSimpleCommand,
  encodeStatementCommand,
  encodeTextRow,
  endsRows,
  formatBinaryValue,
  isEofPacket,
  isErrPacket,
  isOkPacket,
  rowValue,
  type ColumnDefinition41,
  type ErrPacket,
  type OkPacket,
} from '../src/protocol/messages.js';
import { MAX_PACKET_PAYLOAD } from '../src/protocol/packets.js';
import { UpstreamError, connectUpstream, sendKill, type MysqlUpstreamConnection, type MysqlUpstreamOptions } from '../src/protocol/upstream.js';
import { PacketConnection } from './packet-connection.js';

/**
 * The upstream connection phase and the codec against the real MariaDB 10.11 on
 * 127.0.0.1:3306 (root with an empty password, database `test`).
 *
 * MariaDB has no caching_sha2_password (and this server has TLS off): those paths are covered
 * by the unit tests, with vectors computed there and scripted servers
 * (src/protocol/auth.test.ts, src/protocol/upstream.test.ts).
 */

/**
 * A test that runs only when its server is there (`requireService` has already said loudly
 * when it is not, and fails the run under SLUICE_REQUIRE_SERVICES=1).
 */
function liveTest(isAvailable: () => boolean) {
  return (name: string, body: () => Promise<void>, timeout = 30_000): void => {
    it(name, async () => {
      if (!isAvailable()) return;
      await body();
    }, timeout);
  };
}

let available = false;
const live = liveTest(() => available);
const ROOT: MysqlUpstreamOptions = { host: '127.0.0.1', port: 3306, user: 'root', password: '', database: 'test', connectTimeoutMs: 5000 };
const NATIVE = { ...ROOT, user: 'sluice_native', password: 'pw' };

/** Commands and their responses over a logged-in connection, with the codec under test. */
class Wire extends PacketConnection {
  async read(): Promise<Buffer> {
    return (await this.message()).payload;
  }

  /** Reads a resultset's column definitions (and the EOF after them unless CLIENT_DEPRECATE_EOF). */
  async columns(count: number): Promise<ColumnDefinition41[]> {
    const cols: ColumnDefinition41[] = [];
    for (let i = 0; i < count; i++) cols.push(decodeColumnDefinition41(await this.read()));
    if (!this.deprecateEof) expect(isEofPacket(await this.read())).toBe(true);
    return cols;
  }

  /** Rows up to the packet that ends them (returned too). */
  async rows(): Promise<{ rows: Buffer[]; end: Buffer }> {
    const rows: Buffer[] = [];
    for (;;) {
      const p = await this.read();
      if (isErrPacket(p)) throw new Error(`ERR in rows: ${decodeErr(p).message}`);
      if (endsRows(p, this.deprecateEof)) return { rows, end: p };
      rows.push(p);
    }
  }

  /** A text-protocol query: OK, ERR, or columns and rows as text. */
  async query(sql: string): Promise<
    | { kind: 'ok'; ok: OkPacket }
    | { kind: 'err'; err: ErrPacket }
    | { kind: 'rows'; columns: ColumnDefinition41[]; rows: (string | null)[][]; end: Buffer }
  > {
    this.command(encodeComQuery(sql));
    const first = await this.read();
    if (isErrPacket(first)) return { kind: 'err', err: decodeErr(first) };
    if (isOkPacket(first)) return { kind: 'ok', ok: decodeOk(first, this.conn.capabilities) };
    const columns = await this.columns(decodeColumnCount(first));
    const { rows, end } = await this.rows();
    const ranges = createRowRanges(columns.length);
    const text = rows.map((r) => {
      decodeTextRow(r, columns.length, ranges);
      // Re-encoding the decoded values gives the server's bytes back.
      expect(encodeTextRow(columns.map((_, i) => rowValue(r, ranges, i))).equals(r)).toBe(true);
      return columns.map((_, i) => rowValue(r, ranges, i)?.toString('utf8') ?? null);
    });
    return { kind: 'rows', columns, rows: text, end };
  }

  async exec(sql: string): Promise<void> {
    const r = await this.query(sql);
    if (r.kind === 'err') throw new Error(`${sql}: ${r.err.message}`);
  }

  close(): void {
    this.command(encodeSimpleCommand(Command.QUIT));
    this.conn.socket.end();
  }
}

async function open(options: MysqlUpstreamOptions = ROOT): Promise<Wire> {
  return new Wire(await connectUpstream(options));
}

beforeAll(async () => {
  available = await requireService('MariaDB', '127.0.0.1', 3306);
  if (!available) return;
  const w = await open();
  for (const host of ['%', 'localhost']) {
    await w.exec(`CREATE USER IF NOT EXISTS 'sluice_native'@'${host}' IDENTIFIED VIA mysql_native_password USING PASSWORD('pw')`);
    await w.exec(`GRANT SELECT ON test.* TO 'sluice_native'@'${host}'`);
  }
  await w.exec('DROP TABLE IF EXISTS sluice_proto_t');
  await w.exec(
    'CREATE TABLE sluice_proto_t (id INT PRIMARY KEY, name VARCHAR(50) NOT NULL, created DATETIME(6), amount DECIMAL(10,2), score DOUBLE, note VARCHAR(20) NULL)',
  );
  await w.exec(
    "INSERT INTO sluice_proto_t VALUES (1, 'alice', '2024-01-02 03:04:05.123456', 12.34, 1.5, NULL), (2, 'bob', '2024-01-02 00:00:00', -0.5, -2.25, 'x'), (3, 'carol', NULL, NULL, NULL, NULL)",
  );
  w.close();
});

afterAll(async () => {
  if (!available) return;
  const w = await open();
  await w.exec('DROP TABLE IF EXISTS sluice_proto_t');
  await w.exec("DROP USER IF EXISTS 'sluice_native'@'%'");
  await w.exec("DROP USER IF EXISTS 'sluice_native'@'localhost'");
  w.close();
});

describe('connectUpstream against MariaDB', () => {
  live('connects as root with an empty password', async () => {
    const w = await open();
    const c = w.conn;
    expect(c.serverVersion).toMatch(/MariaDB/);
    expect(c.serverCapabilities & CLIENT_MYSQL).toBe(0);
    expect(c.capabilities & CLIENT_PROTOCOL_41).not.toBe(0);
    expect(c.capabilities & CLIENT_DEPRECATE_EOF).toBe(0);
    expect(c.status & ServerStatus.AUTOCOMMIT).not.toBe(0);
    expect(c.authPluginName).toBe(AuthPlugin.NATIVE_PASSWORD);
    expect(c.leftover.length).toBe(0);
    expect(c.tls).toBe(false);
    const r = await w.query('SELECT CONNECTION_ID(), DATABASE()');
    expect(r.kind === 'rows' && r.rows).toEqual([[String(c.connectionId), 'test']]);
    w.close();
  });

  live('logs in as a mysql_native_password user, and follows the server\'s plugin switch', async () => {
    const w = await open(NATIVE);
    const r = await w.query('SELECT CURRENT_USER()');
    expect(r.kind === 'rows' && r.rows[0]![0]).toMatch(/^sluice_native@/);
    w.close();
    // Answering the greeting with another plugin makes the server send an AuthSwitchRequest.
    const switched = await open({ ...NATIVE, initialAuthPlugin: AuthPlugin.CACHING_SHA2_PASSWORD });
    expect(switched.conn.authPluginName).toBe(AuthPlugin.NATIVE_PASSWORD);
    switched.close();
  });

  live('the scramble passes the check the server makes against the hash it stores', async () => {
    const w = await open();
    const r = await w.query("SELECT authentication_string FROM mysql.user WHERE user = 'sluice_native' LIMIT 1");
    w.close();
    const stored = r.kind === 'rows' ? String(r.rows[0]![0]) : '';
    expect(stored).toMatch(/^\*[0-9A-F]{40}$/);
    // The server keeps SHA1(SHA1(password)); it unmasks SHA1(password) and hashes it again.
    const hash = Buffer.from(stored.slice(1), 'hex');
    const nonce = randomBytes(20);
    const mix = createHash('sha1').update(nonce).update(hash).digest();
    const candidate = Buffer.from(nativePasswordScramble('pw', nonce).map((b, i) => b ^ mix[i]!));
    expect(createHash('sha1').update(candidate).digest()).toEqual(hash);
  });

  live('a wrong password gives the server\'s errno 1045 and SQLSTATE 28000', async () => {
    const err = await connectUpstream({ ...NATIVE, password: 'wrong' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(UpstreamError);
    expect(err).toMatchObject({ errno: 1045, sqlstate: '28000' });
    expect((err as UpstreamError).serverMessage).toMatch(/Access denied for user 'sluice_native'/);
  });

  live('TLS: the server offers none here, so "require" refuses and "prefer" goes on in clear', async () => {
    const probe = await open();
    const offersTls = (probe.conn.serverCapabilities & CLIENT_SSL) !== 0;
    probe.close();
    const pref = await open({ ...ROOT, tls: { mode: 'prefer' } });
    expect(pref.conn.tls).toBe(offersTls);
    pref.close();
    if (offersTls) return;
    await expect(connectUpstream({ ...ROOT, tls: { mode: 'require' } })).rejects.toThrow(/does not offer TLS/);
  });
});

describe('the codec on the returned connection', () => {
  live('COM_QUERY SELECT 1: column count, column definition, row, EOF', async () => {
    const w = await open();
    w.command(encodeComQuery('SELECT 1'));
    expect(decodeColumnCount(await w.read())).toBe(1);
    const col = decodeColumnDefinition41(await w.read());
    expect(col).toMatchObject({ catalog: 'def', name: '1', orgTable: '', table: '' });
    expect(col.flags & ColumnFlag.NOT_NULL).not.toBe(0);
    const eof1 = await w.read();
    expect(isEofPacket(eof1)).toBe(true);
    const row = await w.read();
    expect(row).toEqual(Buffer.from([1, 0x31]));
    const eof2 = await w.read();
    expect(endsRows(eof2, false)).toBe(true);
    expect(decodeEof(eof2).statusFlags & ServerStatus.AUTOCOMMIT).not.toBe(0);
    w.close();
  });

  live('with CLIENT_DEPRECATE_EOF (asked for), rows end with an OK packet 0xFE', async () => {
    const w = await open({ ...ROOT, capabilities: CLIENT_DEPRECATE_EOF });
    expect(w.deprecateEof).toBe(true);
    w.command(encodeComQuery('SELECT 1 AS a UNION ALL SELECT 2'));
    expect(decodeColumnCount(await w.read())).toBe(1);
    expect(decodeColumnDefinition41(await w.read()).name).toBe('a');
    const { rows, end } = await w.rows();
    expect(rows.map((r) => r.toString('latin1', 1))).toEqual(['1', '2']);
    expect(end[0]).toBe(0xfe);
    expect(end.length).toBeGreaterThanOrEqual(7);
    expect(decodeOk(end, w.conn.capabilities).statusFlags & ServerStatus.AUTOCOMMIT).not.toBe(0);
    w.close();
  });

  live('column definitions name the table and column behind an alias', async () => {
    const w = await open();
    const r = await w.query('SELECT t.id, t.name AS n, t.note FROM sluice_proto_t t ORDER BY t.id');
    expect(r.kind).toBe('rows');
    if (r.kind !== 'rows') return;
    const [id, n] = r.columns;
    expect(n).toMatchObject({ schema: 'test', table: 't', orgTable: 'sluice_proto_t', name: 'n', orgName: 'name', type: ColumnType.VAR_STRING });
    expect(id!.flags & (ColumnFlag.PRI_KEY | ColumnFlag.NOT_NULL)).toBe(ColumnFlag.PRI_KEY | ColumnFlag.NOT_NULL);
    expect(id!.type).toBe(ColumnType.LONG);
    expect(r.rows).toEqual([
      ['1', 'alice', null],
      ['2', 'bob', 'x'],
      ['3', 'carol', null],
    ]);
    const ok = await w.query("UPDATE sluice_proto_t SET note = note WHERE id = 2");
    expect(ok.kind === 'ok' && ok.ok.info).toMatch(/Rows matched: 1/);
    const err = await w.query('SELECT * FROM sluice_no_such_table');
    expect(err.kind === 'err' && err.err).toMatchObject({ errno: 1146, sqlstate: '42S02' });
    w.close();
  });

  live('COM_STMT_PREPARE and COM_STMT_EXECUTE: binary rows decoded to per-column ranges', async () => {
    const w = await open();
    w.command(encodeComStmtPrepare('SELECT id, name, created, amount, score, note FROM sluice_proto_t WHERE id >= ? ORDER BY id'));
    const prepared = decodeStmtPrepareOk(await w.read());
    expect(prepared).toMatchObject({ columnCount: 6, paramCount: 1 });
    const params = await w.columns(prepared.paramCount);
    expect(params).toHaveLength(1);
    const columns = await w.columns(prepared.columnCount);
    expect(columns.map((c) => c.orgName)).toEqual(['id', 'name', 'created', 'amount', 'score', 'note']);

    const execute = encodeComStmtExecute({
      statementId: prepared.statementId,
      params: [{ type: ColumnType.LONG, unsigned: false, value: Buffer.from([1, 0, 0, 0]) }],
    });
    // What the gateway would read from a client's execute.
    const seen = decodeComStmtExecute(execute, 1);
    expect(seen.statementId).toBe(prepared.statementId);
    expect(formatBinaryValue(ColumnType.LONG, rowValue(execute, seen.values!, 0)!)).toBe('1');
    w.command(execute);
    expect(decodeColumnCount(await w.read())).toBe(6);
    const resultColumns = await w.columns(6);
    const types = resultColumns.map((c) => c.type);
    expect(types).toEqual([ColumnType.LONG, ColumnType.VAR_STRING, ColumnType.DATETIME, ColumnType.NEWDECIMAL, ColumnType.DOUBLE, ColumnType.VAR_STRING]);
    const { rows, end } = await w.rows();
    expect(isEofPacket(end)).toBe(true);
    expect(rows).toHaveLength(3);
    const shown = rows.map((payload) => {
      const ranges = decodeBinaryRow(payload, types);
      const values = types.map((_, i) => rowValue(payload, ranges, i));
      expect(encodeBinaryRow(types, values).equals(payload)).toBe(true);
      return values.map((v, i) => (v === null ? null : formatBinaryValue(types[i]!, v, (resultColumns[i]!.flags & ColumnFlag.UNSIGNED) !== 0)));
    });
    expect(shown).toEqual([
      ['1', 'alice', '2024-01-02 03:04:05.123456', '12.34', '1.5', null],
      ['2', 'bob', '2024-01-02 00:00:00', '-0.50', '-2.25', 'x'],
      ['3', 'carol', null, null, null, null],
    ]);
    // The datetime forms: 11 bytes with microseconds, 4 bytes for midnight.
    const lengths = rows.slice(0, 2).map((payload) => {
      const ranges = decodeBinaryRow(payload, types);
      return ranges.ends[2]! - ranges.starts[2]!;
    });
    expect(lengths).toEqual([11, 4]);
    w.command(encodeStatementCommand(Command.STMT_CLOSE, prepared.statementId));
    // COM_STMT_CLOSE has no response; the connection is still in step.
    const after = await w.query('SELECT 2');
    expect(after.kind === 'rows' && after.rows).toEqual([['2']]);
    w.close();
  });

  live('messages of 16 MiB and more in both directions', async () => {
    const w = await open();
    // A query of exactly 0xFFFFFF bytes: an empty packet must follow it.
    const prefix = "SELECT LENGTH('";
    const filler = 'x'.repeat(MAX_PACKET_PAYLOAD - 1 - prefix.length - 2);
    const sql = `${prefix}${filler}')`;
    expect(1 + sql.length).toBe(MAX_PACKET_PAYLOAD);
    const r = await w.query(sql);
    expect(r.kind === 'rows' && r.rows).toEqual([[String(filler.length)]]);
    // A row longer than 0xFFFFFF bytes arrives in two packets.
    w.command(encodeComQuery("SELECT REPEAT('y', 16777214)"));
    expect(decodeColumnCount(await w.read())).toBe(1);
    await w.columns(1);
    const row = await w.message();
    expect(row.packets).toBe(2);
    const ranges = decodeTextRow(row.payload, 1);
    expect(ranges.ends[0]! - ranges.starts[0]!).toBe(16777214);
    expect(endsRows(await w.read(), false)).toBe(true);
    w.close();
  }, 60_000);

  live('sendKill stops a running SELECT SLEEP(10) on another connection', async () => {
    const w = await open();
    const started = Date.now();
    w.command(encodeComQuery('SELECT SLEEP(10)'));
    await new Promise((r) => setTimeout(r, 300));
    await sendKill(ROOT, w.conn.connectionId);
    // MariaDB either ends the statement with ERR 1317 (before or after the column
    // definitions) or lets the interrupted SLEEP return 1.
    const first = await w.read();
    let outcome: string;
    if (isErrPacket(first)) {
      outcome = `errno ${decodeErr(first).errno}`;
    } else {
      expect(decodeColumnCount(first)).toBe(1);
      await w.columns(1);
      const rows: string[] = [];
      for (let p = await w.read(); ; p = await w.read()) {
        if (isErrPacket(p)) {
          outcome = `errno ${decodeErr(p).errno}`;
          break;
        }
        if (endsRows(p, false)) {
          outcome = `rows ${rows.join(',')}`;
          break;
        }
        rows.push(p.toString('latin1', 1));
      }
    }
    expect(['errno 1317', 'rows 1']).toContain(outcome);
    expect(Date.now() - started).toBeLessThan(5000);
    // The connection itself survives a KILL QUERY.
    const again = await w.query('SELECT 3');
    expect(again.kind === 'rows' && again.rows).toEqual([['3']]);
    w.close();
  });

  live('sendKill of an unknown connection gives errno 1094', async () => {
    const err = await sendKill(ROOT, 987654321).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(UpstreamError);
    expect((err as UpstreamError).errno).toBe(1094);
  });
});
