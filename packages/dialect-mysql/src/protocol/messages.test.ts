import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CLIENT_CONNECT_ATTRS,
  CLIENT_CONNECT_WITH_DB,
  CLIENT_DEPRECATE_EOF,
  CLIENT_LONG_FLAG,
  CLIENT_MYSQL,
  CLIENT_PLUGIN_AUTH,
  CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA,
  CLIENT_PROTOCOL_41,
  CLIENT_REMEMBER_OPTIONS,
  CLIENT_SECURE_CONNECTION,
  CLIENT_SESSION_TRACK,
  CLIENT_SSL,
  CLIENT_TRANSACTIONS,
  ColumnType,
  Command,
  ServerStatus,
  SSL_REQUEST_LENGTH,
  binaryValueLayout,
  commandOf,
  createRowRanges,
  decodeAuthMoreData,
  decodeAuthSwitchRequest,
  decodeBinaryRow,
  decodeClientHandshake,
  decodeColumnCount,
  decodeColumnDefinition41,
  decodeComChangeUser,
  decodeComFieldList,
  decodeComInitDb,
  decodeComProcessKill,
  decodeComQuery,
  decodeComSetOption,
  decodeComStmtExecute,
  decodeComStmtFetch,
  decodeComStmtPrepare,
  decodeComStmtSendLongData,
  decodeEof,
  decodeErr,
  decodeHandshakeV10,
  decodeLocalInfileRequest,
  decodeOk,
  decodeStatementId,
  decodeStmtPrepareOk,
  decodeTextRow,
  encodeAuthMoreData,
  encodeAuthSwitchRequest,
  encodeBinaryRow,
  encodeColumnCount,
  encodeColumnDefinition41,
  encodeComChangeUser,
  encodeComFieldList,
  encodeComInitDb,
  encodeComProcessKill,
  encodeComQuery,
  encodeComStmtExecute,
  encodeComStmtFetch,
  encodeComStmtPrepare,
  encodeEof,
  encodeErr,
  encodeHandshakeResponse41,
  encodeHandshakeV10,
  encodeLocalInfileRequest,
  encodeOk,
  encodeSimpleCommand,
  encodeSslRequest,
  encodeStatementCommand,
  encodeStmtPrepareOk,
  encodeTextRow,
  endsRows,
  formatBinaryValue,
  intersectCapabilities,
  isEofPacket,
  isErrPacket,
  isLocalInfileRequest,
  isOkPacket,
  rowValue,
  type ColumnDefinition41,
  type HandshakeResponse41,
  type HandshakeV10,
  type RowRanges,
} from './messages.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const str = (s: string): Buffer => Buffer.from(s, 'utf8');
const cat = (...parts: Buffer[]): Buffer => Buffer.concat(parts);
const scramble = hex('01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f 10 11 12 13 14');

function values(payload: Buffer, ranges: RowRanges): (string | null)[] {
  return Array.from(ranges.starts, (_, i) => rowValue(payload, ranges, i)?.toString('latin1') ?? null);
}

/** Every strict prefix of `payload` makes `decode` throw RangeError. */
function expectTruncationsThrow(payload: Buffer, decode: (b: Buffer) => unknown): void {
  for (let cut = 0; cut < payload.length; cut++) {
    expect(() => decode(payload.subarray(0, cut)), `cut at ${cut}`).toThrow(RangeError);
  }
}

describe('HandshakeV10', () => {
  // A MariaDB greeting (CLIENT_MYSQL clear, extended capabilities 0x1d), bit 31 set.
  const layout = cat(
    hex('0a'),
    str('5.5.5-10.11.19-MariaDB\0'),
    hex('2a 00 00 00'), // connection id 42
    hex('01 02 03 04 05 06 07 08'), // scramble part 1
    hex('00'),
    hex('fe f7'), // capabilities, low
    hex('2d'), // utf8mb4_general_ci
    hex('02 00'), // autocommit
    hex('ff 81'), // capabilities, high
    hex('15'), // 21 bytes of plugin data
    hex('00 00 00 00 00 00'),
    hex('1d 00 00 00'), // MariaDB extended capabilities
    hex('09 0a 0b 0c 0d 0e 0f 10 11 12 13 14 00'), // scramble part 2 + NUL
    str('mysql_native_password\0'),
  );
  const greeting: HandshakeV10 = {
    serverVersion: '5.5.5-10.11.19-MariaDB',
    connectionId: 42,
    authPluginData: scramble,
    capabilities: 0x81fff7fe,
    mariadbCapabilities: 0x1d,
    charset: 45,
    statusFlags: ServerStatus.AUTOCOMMIT,
    authPluginName: 'mysql_native_password',
  };

  it('decodes and encodes the documented layout', () => {
    expect(decodeHandshakeV10(layout)).toEqual(greeting);
    expect(encodeHandshakeV10(greeting)).toEqual(layout);
    expect(greeting.capabilities & CLIENT_REMEMBER_OPTIONS).not.toBe(0);
    expect(intersectCapabilities(greeting.capabilities, CLIENT_REMEMBER_OPTIONS | CLIENT_SSL)).toBe(CLIENT_REMEMBER_OPTIONS);
  });

  it('ignores the extended capabilities of a MySQL server (CLIENT_MYSQL set)', () => {
    const mysql = Buffer.from(layout);
    mysql[mysql.indexOf(0xfe, 30)] = 0xff; // low capabilities 0xf7ff
    const h = decodeHandshakeV10(mysql);
    expect(h.capabilities & CLIENT_MYSQL).toBe(1);
    expect(h.mariadbCapabilities).toBe(0);
    const again = encodeHandshakeV10(h);
    expect(decodeHandshakeV10(again)).toEqual(h);
  });

  it('reads a plugin name that lacks its NUL (MySQL 5.5.7-5.5.9)', () => {
    const h = decodeHandshakeV10(layout.subarray(0, layout.length - 1));
    expect(h.authPluginName).toBe('mysql_native_password');
  });

  it('rejects other protocol versions and truncated greetings', () => {
    const v9 = Buffer.from(layout);
    v9[0] = 9;
    expect(() => decodeHandshakeV10(v9)).toThrow(RangeError);
    // Up to the low capability flags every field is required.
    for (let cut = 0; cut < 1 + 23 + 4 + 8 + 1 + 2; cut++) expect(() => decodeHandshakeV10(layout.subarray(0, cut))).toThrow(RangeError);
  });

  it('round-trips random greetings (property)', () => {
    fc.assert(
      fc.property(
        fc.record({
          serverVersion: fc.string({ maxLength: 40 }).map((s) => s.replace(/\0/g, '')),
          connectionId: fc.nat({ max: 0xffffffff }),
          // The scramble never ends with NUL (the NUL after it is the terminator).
          authPluginData: fc.uint8Array({ minLength: 20, maxLength: 20 }).map((b) => Buffer.from(b.map((x) => x || 1))),
          capabilities: fc.nat({ max: 0xffffffff }).map((c) => (c | CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH) >>> 0),
          mariadbCapabilities: fc.nat({ max: 0xffffffff }),
          charset: fc.nat({ max: 255 }),
          statusFlags: fc.nat({ max: 0xffff }),
          authPluginName: fc.constantFrom('mysql_native_password', 'caching_sha2_password', 'client_ed25519'),
        }),
        (h) => {
          const expected = { ...h, mariadbCapabilities: h.capabilities & CLIENT_MYSQL ? 0 : h.mariadbCapabilities };
          expect(decodeHandshakeV10(encodeHandshakeV10(h))).toEqual(expected);
        },
      ),
    );
  });
});

describe('SSLRequest and HandshakeResponse41', () => {
  const caps =
    CLIENT_LONG_FLAG |
    CLIENT_CONNECT_WITH_DB |
    CLIENT_PROTOCOL_41 |
    CLIENT_TRANSACTIONS |
    CLIENT_SECURE_CONNECTION |
    CLIENT_PLUGIN_AUTH |
    CLIENT_CONNECT_ATTRS |
    CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA;
  const auth = hex('aa bb cc dd ee ff 00 11 22 33 44 55 66 77 88 99 a0 b0 c0 d0');
  const layout = cat(
    hex('0c a2 38 00'), // capabilities 0x38a20c
    hex('00 00 00 01'), // max packet 16 MiB
    hex('2d'),
    Buffer.alloc(23),
    str('sluice\0'),
    hex('14'),
    auth,
    str('test\0'),
    str('mysql_native_password\0'),
    hex('14 0c'),
    str('_client_name'),
    hex('06'),
    str('sluice'),
  );
  const response: HandshakeResponse41 = {
    capabilities: caps,
    maxPacketSize: 0x1000000,
    charset: 45,
    mariadbCapabilities: 0,
    username: 'sluice',
    authResponse: auth,
    database: 'test',
    authPluginName: 'mysql_native_password',
    connectAttributes: new Map([['_client_name', 'sluice']]),
  };

  it('decodes and encodes the documented layout', () => {
    expect(caps).toBe(0x38a20c);
    expect(encodeHandshakeResponse41(response)).toEqual(layout);
    expect(decodeClientHandshake(layout)).toEqual({ kind: 'response', ...response });
  });

  it('tells a 32-byte SSLRequest from a response', () => {
    const ssl = encodeSslRequest({ capabilities: caps | CLIENT_SSL, maxPacketSize: 0x1000000, charset: 45, mariadbCapabilities: 0 });
    expect(ssl.length).toBe(SSL_REQUEST_LENGTH);
    expect(ssl).toEqual(cat(hex('0c aa 38 00 00 00 00 01 2d'), Buffer.alloc(23)));
    expect(decodeClientHandshake(ssl)).toEqual({ kind: 'ssl', capabilities: caps | CLIENT_SSL, maxPacketSize: 0x1000000, charset: 45, mariadbCapabilities: 0 });
    expect(() => encodeSslRequest({ capabilities: caps, maxPacketSize: 0, charset: 45, mariadbCapabilities: 0 })).toThrow(RangeError);
    // Over TLS the full response follows, with CLIENT_SSL set.
    const full = decodeClientHandshake(encodeHandshakeResponse41({ ...response, capabilities: caps | CLIENT_SSL }));
    expect(full.kind).toBe('response');
  });

  it('carries MariaDB extended capabilities in the filler when CLIENT_MYSQL is clear', () => {
    const b = encodeHandshakeResponse41({ ...response, mariadbCapabilities: 0x4 });
    expect(b.readUInt32LE(28)).toBe(4);
    expect(decodeClientHandshake(b)).toMatchObject({ mariadbCapabilities: 4 });
    const mysql = encodeHandshakeResponse41({ ...response, capabilities: caps | CLIENT_MYSQL, mariadbCapabilities: 0x4 });
    expect(mysql.readUInt32LE(28)).toBe(0);
  });

  it('reads the older auth response forms (1-byte length, NUL-terminated)', () => {
    const short = { ...response, capabilities: caps & ~CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA };
    const b = encodeHandshakeResponse41(short);
    expect(b.subarray(32 + 7, 32 + 8)).toEqual(hex('14'));
    expect(decodeClientHandshake(b)).toEqual({ kind: 'response', ...short });
    const old = {
      ...response,
      capabilities: CLIENT_PROTOCOL_41 | CLIENT_CONNECT_WITH_DB,
      authResponse: str('text'),
      authPluginName: undefined,
      connectAttributes: undefined,
    };
    expect(decodeClientHandshake(encodeHandshakeResponse41(old))).toEqual({ kind: 'response', ...old });
    expect(() => encodeHandshakeResponse41({ ...short, authResponse: Buffer.alloc(256) })).toThrow(RangeError);
  });

  it('reports a pre-4.1 response as unsupported', () => {
    expect(decodeClientHandshake(hex('05 a0 ff ff ff 00'))).toEqual({ kind: 'unsupported', capabilities: 0xa005 });
  });

  it('round-trips random responses (property)', () => {
    const optional = [CLIENT_CONNECT_WITH_DB, CLIENT_PLUGIN_AUTH, CLIENT_CONNECT_ATTRS, CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA, CLIENT_SSL, CLIENT_MYSQL];
    fc.assert(
      fc.property(
        fc.subarray(optional),
        fc.string({ maxLength: 20 }).map((s) => s.replace(/\0/g, '')),
        fc.uint8Array({ maxLength: 300 }),
        fc.string({ maxLength: 20 }).map((s) => s.replace(/\0/g, '')),
        fc.dictionary(fc.string({ maxLength: 10 }), fc.string({ maxLength: 10 })),
        fc.nat({ max: 0xffffffff }),
        (flags, username, authBytes, database, attrs, ext) => {
          const capabilities = flags.reduce((a, b) => a | b, CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION) >>> 0;
          const lenenc = (capabilities & CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA) !== 0;
          const r: HandshakeResponse41 = {
            capabilities,
            maxPacketSize: 1 << 24,
            charset: 45,
            mariadbCapabilities: capabilities & CLIENT_MYSQL ? 0 : ext,
            username,
            authResponse: Buffer.from(lenenc ? authBytes : authBytes.subarray(0, 255)),
            database: capabilities & CLIENT_CONNECT_WITH_DB ? database : undefined,
            authPluginName: capabilities & CLIENT_PLUGIN_AUTH ? 'caching_sha2_password' : undefined,
            connectAttributes: capabilities & CLIENT_CONNECT_ATTRS ? new Map(Object.entries(attrs)) : undefined,
          };
          // An empty trailing database or attribute list is indistinguishable from none; they come back as written.
          const back = decodeClientHandshake(encodeHandshakeResponse41(r));
          expect(back.kind).toBe('response');
          if (back.kind !== 'response') return;
          expect(back.username).toBe(r.username);
          expect(back.authResponse.equals(r.authResponse)).toBe(true);
          expect(back.capabilities).toBe(r.capabilities);
          expect(back.mariadbCapabilities).toBe(r.mariadbCapabilities);
          expect(back.database ?? '').toBe(r.database ?? '');
          expect(back.authPluginName ?? '').toBe(r.authPluginName ?? '');
          expect([...(back.connectAttributes ?? [])]).toEqual([...(r.connectAttributes ?? [])]);
        },
      ),
    );
  });
});

describe('authentication packets', () => {
  it('AuthSwitchRequest: 0xFE, plugin name, data', () => {
    const layout = cat(hex('fe'), str('mysql_native_password\0'), scramble, hex('00'));
    expect(encodeAuthSwitchRequest('mysql_native_password', cat(scramble, hex('00')))).toEqual(layout);
    const sw = decodeAuthSwitchRequest(layout);
    expect(sw.pluginName).toBe('mysql_native_password');
    expect(sw.pluginData).toEqual(cat(scramble, hex('00')));
    expect(decodeAuthSwitchRequest(hex('fe'))).toEqual({ pluginName: 'mysql_old_password', pluginData: Buffer.alloc(0) });
    expect(() => decodeAuthSwitchRequest(cat(hex('fe'), str('no-nul')))).toThrow(RangeError);
    expect(() => decodeAuthSwitchRequest(hex('00'))).toThrow(RangeError);
  });

  it('AuthMoreData: 0x01 and data', () => {
    expect(encodeAuthMoreData(hex('03'))).toEqual(hex('01 03'));
    expect(decodeAuthMoreData(hex('01 04'))).toEqual(hex('04'));
    expect(decodeAuthMoreData(cat(hex('01'), str('-----BEGIN PUBLIC KEY-----')))).toEqual(str('-----BEGIN PUBLIC KEY-----'));
    expect(() => decodeAuthMoreData(hex('02'))).toThrow(RangeError);
    expect(() => decodeAuthMoreData(Buffer.alloc(0))).toThrow(RangeError);
  });
});

describe('OK, ERR and EOF', () => {
  it('OK: the shortest form', () => {
    const layout = hex('00 00 00 02 00 00 00');
    expect(isOkPacket(layout)).toBe(true);
    expect(decodeOk(layout)).toEqual({
      header: 0,
      affectedRows: 0n,
      lastInsertId: 0n,
      statusFlags: ServerStatus.AUTOCOMMIT,
      warnings: 0,
      info: '',
      sessionStateChanges: undefined,
    });
    expect(encodeOk({ statusFlags: ServerStatus.AUTOCOMMIT })).toEqual(layout);
  });

  it('OK: counts, warnings and info without session tracking', () => {
    const layout = cat(hex('00 03 fc e8 03 03 00 01 00'), str('Rows matched: 3  Changed: 3  Warnings: 1'));
    const ok = decodeOk(layout);
    expect(ok).toMatchObject({ affectedRows: 3n, lastInsertId: 1000n, statusFlags: 3, warnings: 1, info: 'Rows matched: 3  Changed: 3  Warnings: 1' });
    expect(encodeOk(ok)).toEqual(layout);
  });

  it('OK: session state changes with CLIENT_SESSION_TRACK', () => {
    const caps = CLIENT_PROTOCOL_41 | CLIENT_SESSION_TRACK;
    // status AUTOCOMMIT | SESSION_STATE_CHANGED; info ''; state: schema changed to "test".
    const layout = hex('00 00 00 02 40 00 00 00 07 01 05 04 74 65 73 74');
    const ok = decodeOk(layout, caps);
    expect(ok.info).toBe('');
    expect(ok.sessionStateChanges).toEqual(hex('01 05 04 74 65 73 74'));
    expect(encodeOk(ok, caps)).toEqual(layout);
    // With session tracking, info is optional at the end of the packet.
    expect(decodeOk(hex('00 00 00 02 00 00 00'), caps).info).toBe('');
    const withInfo = encodeOk({ info: 'hello' }, caps);
    expect(withInfo).toEqual(cat(hex('00 00 00 00 00 00 00 05'), str('hello')));
    expect(decodeOk(withInfo, caps).info).toBe('hello');
  });

  it('OK: the 0xFE form that ends a resultset under CLIENT_DEPRECATE_EOF, and huge counts', () => {
    const layout = hex('fe 00 00 22 00 00 00');
    expect(decodeOk(layout).header).toBe(0xfe);
    expect(isEofPacket(layout)).toBe(true);
    expect(endsRows(layout, true)).toBe(true);
    const big = encodeOk({ affectedRows: 2n ** 64n - 1n, lastInsertId: 2n ** 63n });
    expect(decodeOk(big)).toMatchObject({ affectedRows: 2n ** 64n - 1n, lastInsertId: 2n ** 63n });
    // Before 4.1 with CLIENT_TRANSACTIONS: status but no warnings.
    expect(decodeOk(hex('00 01 00 02 00'), CLIENT_TRANSACTIONS)).toMatchObject({ affectedRows: 1n, statusFlags: 2, warnings: 0 });
  });

  it('OK round-trips (property)', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
        fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
        fc.nat({ max: 0xffff }),
        fc.nat({ max: 0xffff }),
        fc.string({ maxLength: 50 }),
        fc.uint8Array({ minLength: 1, maxLength: 40 }),
        fc.boolean(),
        (affectedRows, lastInsertId, statusFlags, warnings, info, state, track) => {
          const caps = CLIENT_PROTOCOL_41 | (track ? CLIENT_SESSION_TRACK : 0);
          const changed = (statusFlags & ServerStatus.SESSION_STATE_CHANGED) !== 0 && track;
          const ok = { header: 0 as const, affectedRows, lastInsertId, statusFlags, warnings, info, sessionStateChanges: changed ? Buffer.from(state) : undefined };
          expect(decodeOk(encodeOk(ok, caps), caps)).toEqual(ok);
        },
      ),
    );
  });

  it('ERR: errno, SQLSTATE marker and message', () => {
    const layout = cat(hex('ff 15 04 23'), str('28000'), str("Access denied for user 'x'@'localhost' (using password: YES)"));
    expect(isErrPacket(layout)).toBe(true);
    expect(decodeErr(layout)).toEqual({ errno: 1045, sqlstate: '28000', message: "Access denied for user 'x'@'localhost' (using password: YES)" });
    expect(encodeErr(1045, '28000', "Access denied for user 'x'@'localhost' (using password: YES)")).toEqual(layout);
  });

  it('ERR: no SQLSTATE before CLIENT_PROTOCOL_41 is agreed', () => {
    const early = encodeErr(1040, '08004', 'Too many connections', 0);
    expect(early).toEqual(cat(hex('ff 10 04'), str('Too many connections')));
    expect(decodeErr(early)).toEqual({ errno: 1040, sqlstate: undefined, message: 'Too many connections' });
    expect(decodeErr(early, 0)).toEqual({ errno: 1040, sqlstate: undefined, message: 'Too many connections' });
    // Without 4.1, a '#' is part of the message.
    expect(decodeErr(cat(hex('ff 10 04'), str('#hash tag')), 0).message).toBe('#hash tag');
    expect(() => encodeErr(1040, '8004', 'x')).toThrow(RangeError);
    expect(() => encodeErr(70000, '08004', 'x')).toThrow(RangeError);
    expect(() => decodeErr(hex('ff 10'))).toThrow(RangeError);
  });

  it('EOF: 0xFE, warnings, status; shorter than 9 bytes', () => {
    const layout = hex('fe 01 00 0a 00');
    expect(isEofPacket(layout)).toBe(true);
    expect(decodeEof(layout)).toEqual({ warnings: 1, statusFlags: ServerStatus.AUTOCOMMIT | ServerStatus.MORE_RESULTS_EXISTS });
    expect(encodeEof({ warnings: 1, statusFlags: 10 })).toEqual(layout);
    expect(encodeEof({ warnings: 1, statusFlags: 10 }, 0)).toEqual(hex('fe'));
    expect(decodeEof(hex('fe'), 0)).toEqual({ warnings: 0, statusFlags: 0 });
    expect(() => decodeEof(hex('fe 01 00'))).toThrow(RangeError);
    // A text row whose first value has an 8-byte length also starts with 0xFE, but is long.
    const row = hex('fe 01 00 00 00 00 00 00 00 41');
    expect(isEofPacket(row)).toBe(false);
    expect(endsRows(row, false)).toBe(false);
    expect(endsRows(layout, false)).toBe(true);
    expect(endsRows(hex('00 00 00 02 00 00 00'), true)).toBe(false);
  });
});

describe('commands', () => {
  it('COM_QUERY, COM_INIT_DB, COM_STMT_PREPARE: text after the command byte', () => {
    expect(encodeComQuery('SELECT 1')).toEqual(hex('03 53 45 4c 45 43 54 20 31'));
    expect(decodeComQuery(hex('03 53 45 4c 45 43 54 20 31'))).toBe('SELECT 1');
    expect(decodeComQuery(encodeComQuery('SELECT "é"'))).toBe('SELECT "é"');
    expect(encodeComInitDb('test')).toEqual(cat(hex('02'), str('test')));
    expect(decodeComInitDb(cat(hex('02'), str('test')))).toBe('test');
    expect(encodeComStmtPrepare('SELECT ?')).toEqual(cat(hex('16'), str('SELECT ?')));
    expect(decodeComStmtPrepare(cat(hex('16'), str('SELECT ?')))).toBe('SELECT ?');
    expect(() => decodeComQuery(hex('16'))).toThrow(RangeError);
    expect(() => decodeComQuery(Buffer.alloc(0))).toThrow(RangeError);
    expect(commandOf(hex('0e'))).toBe(Command.PING);
  });

  it('commands without arguments', () => {
    expect(encodeSimpleCommand(Command.PING)).toEqual(hex('0e'));
    expect(encodeSimpleCommand(Command.QUIT)).toEqual(hex('01'));
    expect(encodeSimpleCommand(Command.RESET_CONNECTION)).toEqual(hex('1f'));
    expect(encodeSimpleCommand(Command.STATISTICS)).toEqual(hex('09'));
  });

  it('COM_FIELD_LIST, COM_PROCESS_KILL, COM_SET_OPTION', () => {
    expect(encodeComFieldList('t', '%')).toEqual(cat(hex('04'), str('t\0%')));
    expect(decodeComFieldList(cat(hex('04'), str('t\0%')))).toEqual({ table: 't', wildcard: '%' });
    expect(encodeComProcessKill(42)).toEqual(hex('0c 2a 00 00 00'));
    expect(decodeComProcessKill(hex('0c 2a 00 00 00'))).toBe(42);
    expect(() => decodeComProcessKill(hex('0c 2a 00 00'))).toThrow(RangeError);
    expect(decodeComSetOption(hex('1b 01 00'))).toBe(1);
  });

  it('COM_STMT_CLOSE, COM_STMT_RESET, COM_STMT_FETCH, COM_STMT_SEND_LONG_DATA', () => {
    expect(encodeStatementCommand(Command.STMT_CLOSE, 5)).toEqual(hex('19 05 00 00 00'));
    expect(encodeStatementCommand(Command.STMT_RESET, 5)).toEqual(hex('1a 05 00 00 00'));
    expect(decodeStatementId(hex('19 05 00 00 00'))).toBe(5);
    expect(() => decodeStatementId(hex('19 05 00'))).toThrow(RangeError);
    expect(encodeComStmtFetch(1, 10)).toEqual(hex('1c 01 00 00 00 0a 00 00 00'));
    expect(decodeComStmtFetch(hex('1c 01 00 00 00 0a 00 00 00'))).toEqual({ statementId: 1, rows: 10 });
    expectTruncationsThrow(hex('1c 01 00 00 00 0a 00 00 00'), decodeComStmtFetch);
    expect(decodeComStmtSendLongData(cat(hex('18 07 00 00 00 01 00'), str('chunk')))).toEqual({ statementId: 7, param: 1, data: str('chunk') });
  });

  describe('COM_STMT_EXECUTE', () => {
    // Statement 1, no cursor, one iteration; parameters (LONG 42, NULL, VAR_STRING 'abc').
    const layout = hex('17 01 00 00 00 00 01 00 00 00 02 01 03 00 fd 00 fd 00 2a 00 00 00 03 61 62 63');

    it('decodes the statement id, flags, types and the values as ranges', () => {
      const e = decodeComStmtExecute(layout, 3);
      expect(e).toMatchObject({ statementId: 1, flags: 0, iterationCount: 1, newParamsBound: true });
      expect(e.paramTypes).toEqual([
        { type: ColumnType.LONG, unsigned: false },
        { type: ColumnType.VAR_STRING, unsigned: false },
        { type: ColumnType.VAR_STRING, unsigned: false },
      ]);
      expect([...e.values!.starts]).toEqual([18, -1, 23]);
      expect([...e.values!.ends]).toEqual([22, 22, 26]);
      expect(rowValue(layout, e.values!, 0)).toEqual(hex('2a 00 00 00'));
      expect(rowValue(layout, e.values!, 2)?.toString()).toBe('abc');
      expect(formatBinaryValue(ColumnType.LONG, rowValue(layout, e.values!, 0)!)).toBe('42');
    });

    it('encodes the same bytes', () => {
      expect(
        encodeComStmtExecute({
          statementId: 1,
          params: [
            { type: ColumnType.LONG, unsigned: false, value: hex('2a 00 00 00') },
            { type: ColumnType.VAR_STRING, unsigned: false, value: null },
            { type: ColumnType.VAR_STRING, unsigned: false, value: str('abc') },
          ],
        }),
      ).toEqual(layout);
      expect(encodeComStmtExecute({ statementId: 9, params: [] })).toEqual(hex('17 09 00 00 00 00 01 00 00 00'));
    });

    it('uses the previous types when they are not re-bound, and says when they are unknown', () => {
      const rebound = encodeComStmtExecute({
        statementId: 1,
        newParamsBound: false,
        params: [{ type: ColumnType.LONGLONG, unsigned: true, value: hex('ff ff ff ff ff ff ff ff') }],
      });
      expect(rebound).toEqual(hex('17 01 00 00 00 00 01 00 00 00 00 00 ff ff ff ff ff ff ff ff'));
      expect(decodeComStmtExecute(rebound, 1).values).toBeUndefined();
      const e = decodeComStmtExecute(rebound, 1, [{ type: ColumnType.LONGLONG, unsigned: true }]);
      expect(formatBinaryValue(ColumnType.LONGLONG, rowValue(rebound, e.values!, 0)!, true)).toBe('18446744073709551615');
      expect(formatBinaryValue(ColumnType.LONGLONG, rowValue(rebound, e.values!, 0)!, false)).toBe('-1');
      expect(() => decodeComStmtExecute(rebound, 1, [])).toThrow(RangeError);
      // The unsigned flag travels in the type's second byte.
      const u = encodeComStmtExecute({ statementId: 1, params: [{ type: ColumnType.TINY, unsigned: true, value: hex('ff') }] });
      expect(u).toEqual(hex('17 01 00 00 00 00 01 00 00 00 00 01 01 80 ff'));
      expect(decodeComStmtExecute(u, 1).paramTypes).toEqual([{ type: ColumnType.TINY, unsigned: true }]);
    });

    it('skips values sent with COM_STMT_SEND_LONG_DATA', () => {
      const b = encodeComStmtExecute({
        statementId: 2,
        params: [
          { type: ColumnType.BLOB, unsigned: false, value: Buffer.alloc(0) },
          { type: ColumnType.LONG, unsigned: false, value: hex('01 00 00 00') },
        ],
      });
      // Drop the empty blob's length byte, as a client that streamed it would.
      const streamed = cat(b.subarray(0, 16), b.subarray(17));
      const e = decodeComStmtExecute(streamed, 2, undefined, new Set([0]));
      expect(e.values!.starts[0]).toBe(e.values!.ends[0]);
      expect(rowValue(streamed, e.values!, 1)).toEqual(hex('01 00 00 00'));
    });

    it('rejects truncated and overlong packets', () => {
      expectTruncationsThrow(layout, (b) => decodeComStmtExecute(b, 3));
      expect(() => decodeComStmtExecute(cat(layout, hex('00')), 3)).toThrow(RangeError);
    });
  });

  it('COM_CHANGE_USER', () => {
    const caps = CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH | CLIENT_CONNECT_ATTRS;
    const layout = cat(hex('11'), str('bob\0'), hex('14'), scramble, str('db\0'), hex('2d 00'), str('mysql_native_password\0'), hex('04 01 61 01 62'));
    const c = decodeComChangeUser(layout, caps);
    expect(c).toEqual({
      username: 'bob',
      authResponse: scramble,
      database: 'db',
      charset: 45,
      authPluginName: 'mysql_native_password',
      connectAttributes: new Map([['a', 'b']]),
    });
    expect(encodeComChangeUser(c, caps)).toEqual(layout);
    const bare = cat(hex('11'), str('bob\0'), hex('00'), str('db\0'));
    expect(decodeComChangeUser(bare, caps)).toMatchObject({ username: 'bob', database: 'db', charset: undefined });
    expect(() => decodeComChangeUser(cat(hex('11'), str('bob\0'), hex('14'), scramble.subarray(0, 5)), caps)).toThrow(RangeError);
  });
});

describe('resultsets', () => {
  const column: ColumnDefinition41 = {
    catalog: 'def',
    schema: 'test',
    table: 't',
    orgTable: 'sluice_proto_t',
    name: 'n',
    orgName: 'name',
    charset: 45,
    columnLength: 400,
    type: ColumnType.VAR_STRING,
    flags: 0,
    decimals: 0,
    extendedMetadata: undefined,
    defaultValues: undefined,
  };
  const columnLayout = cat(
    hex('03'),
    str('def'),
    hex('04'),
    str('test'),
    hex('01'),
    str('t'),
    hex('0e'),
    str('sluice_proto_t'),
    hex('01'),
    str('n'),
    hex('04'),
    str('name'),
    hex('0c 2d 00 90 01 00 00 fd 00 00 00 00 00'),
  );

  it('column count packet', () => {
    expect(encodeColumnCount(3)).toEqual(hex('03'));
    expect(decodeColumnCount(hex('fc 2c 01'))).toBe(300);
    expect(() => decodeColumnCount(hex('fb'))).toThrow(RangeError);
    expect(() => decodeColumnCount(hex('03 00'))).toThrow(RangeError);
  });

  it('ColumnDefinition41: names, then the fixed fields', () => {
    expect(decodeColumnDefinition41(columnLayout)).toEqual(column);
    expect(encodeColumnDefinition41(column)).toEqual(columnLayout);
    expectTruncationsThrow(columnLayout, (b) => decodeColumnDefinition41(b));
    // COM_FIELD_LIST adds default values; MariaDB's extended metadata sits before the fixed fields.
    const withDefault = { ...column, defaultValues: str('x') };
    expect(decodeColumnDefinition41(encodeColumnDefinition41(withDefault))).toEqual(withDefault);
    const ext = { ...column, extendedMetadata: hex('00 04 6a 73 6f 6e') };
    expect(decodeColumnDefinition41(encodeColumnDefinition41(ext), { extendedMetadata: true })).toEqual(ext);
  });

  it('COM_STMT_PREPARE_OK', () => {
    const layout = hex('00 01 00 00 00 02 00 01 00 00 00 00');
    const p = { statementId: 1, columnCount: 2, paramCount: 1, warnings: 0 };
    expect(decodeStmtPrepareOk(layout)).toEqual(p);
    expect(encodeStmtPrepareOk(p)).toEqual(layout);
    expect(decodeStmtPrepareOk(layout.subarray(0, 10))).toEqual(p);
    expect(() => decodeStmtPrepareOk(layout.subarray(0, 9))).toThrow(RangeError);
  });

  it('LOCAL INFILE request', () => {
    const layout = cat(hex('fb'), str('/tmp/data.csv'));
    expect(isLocalInfileRequest(layout)).toBe(true);
    expect(isLocalInfileRequest(hex('01'))).toBe(false);
    expect(decodeLocalInfileRequest(layout)).toBe('/tmp/data.csv');
    expect(encodeLocalInfileRequest('/tmp/data.csv')).toEqual(layout);
    expect(() => decodeLocalInfileRequest(hex('03'))).toThrow(RangeError);
  });

  describe('text rows', () => {
    const layout = hex('01 31 fb 03 61 62 63 00');

    it('decodes length-encoded values and 0xFB NULL into ranges', () => {
      const r = decodeTextRow(layout, 4);
      expect(values(layout, r)).toEqual(['1', null, 'abc', '']);
      expect([...r.starts]).toEqual([1, -1, 4, 8]);
      expect(encodeTextRow(['1', null, str('abc'), ''])).toEqual(layout);
    });

    it('rejects truncated rows and trailing bytes', () => {
      expectTruncationsThrow(layout, (b) => decodeTextRow(b, 4));
      expect(() => decodeTextRow(layout, 3)).toThrow(RangeError);
      expect(() => decodeTextRow(hex('ff'), 1)).toThrow(RangeError);
    });

    it('round-trips random rows and reuses the ranges (property)', () => {
      const into = createRowRanges(5);
      fc.assert(
        fc.property(fc.array(fc.option(fc.uint8Array({ maxLength: 300 }), { nil: null }), { minLength: 5, maxLength: 5 }), (vals) => {
          const b = encodeTextRow(vals);
          const r = decodeTextRow(b, 5, into);
          expect(r).toBe(into);
          vals.forEach((v, i) => {
            const got = rowValue(b, r, i);
            expect(got === null ? null : [...got]).toEqual(v === null ? null : [...v]);
          });
          const again = encodeTextRow(vals.map((_, i) => rowValue(b, r, i)));
          expect(again.equals(b)).toBe(true);
        }),
      );
    });
  });

  describe('binary rows', () => {
    const types = [ColumnType.LONG, ColumnType.VAR_STRING, ColumnType.DATETIME, ColumnType.NEWDECIMAL, ColumnType.DOUBLE, ColumnType.LONG];
    // Six columns: 1-byte bitmap with offset 2; column 5 NULL is bit 7.
    const layout = cat(
      hex('00 80'),
      hex('01 00 00 00'),
      hex('03'),
      str('abc'),
      hex('07 e8 07 01 02 03 04 05'),
      hex('05'),
      str('12.34'),
      hex('00 00 00 00 00 00 f8 3f'),
    );

    it('decodes values by column type into ranges', () => {
      const r = decodeBinaryRow(layout, types);
      expect([...r.starts]).toEqual([2, 7, 11, 19, 24, -1]);
      expect([...r.ends]).toEqual([6, 10, 18, 24, 32, 32]);
      const v = (i: number) => rowValue(layout, r, i);
      expect(formatBinaryValue(ColumnType.LONG, v(0)!)).toBe('1');
      expect(v(1)?.toString()).toBe('abc');
      expect(formatBinaryValue(ColumnType.DATETIME, v(2)!)).toBe('2024-01-02 03:04:05');
      expect(formatBinaryValue(ColumnType.NEWDECIMAL, v(3)!)).toBe('12.34');
      expect(formatBinaryValue(ColumnType.DOUBLE, v(4)!)).toBe('1.5');
      expect(v(5)).toBeNull();
      expect(encodeBinaryRow(types, types.map((_, i) => v(i)))).toEqual(layout);
    });

    it('reads every integer width and the date and time forms', () => {
      const t = [ColumnType.TINY, ColumnType.SHORT, ColumnType.YEAR, ColumnType.INT24, ColumnType.LONGLONG, ColumnType.FLOAT, ColumnType.DATE, ColumnType.TIMESTAMP, ColumnType.DATETIME, ColumnType.TIME, ColumnType.TIME, ColumnType.TIME];
      const vals = [
        hex('ff'),
        hex('fe ff'),
        hex('e8 07'),
        hex('40 e2 01 00'),
        hex('00 00 00 00 00 00 00 80'),
        hex('00 00 c0 3f'),
        hex('e8 07 0c 1f'),
        Buffer.alloc(0),
        hex('e8 07 0c 1f 17 3b 3b 40 e2 01 00'),
        hex('01 01 00 00 00 02 03 04'),
        hex('00 00 00 00 00 0a 0b 0c 06 00 00 00'),
        Buffer.alloc(0),
      ];
      const b = encodeBinaryRow(t, vals);
      const r = decodeBinaryRow(b, t);
      const text = t.map((type, i) => formatBinaryValue(type, rowValue(b, r, i)!));
      expect(text).toEqual([
        '-1',
        '-2',
        '2024',
        '123456',
        '-9223372036854775808',
        '1.5',
        '2024-12-31',
        '0000-00-00 00:00:00',
        '2024-12-31 23:59:59.123456',
        '-26:03:04',
        '10:11:12.000006',
        '00:00:00',
      ]);
      expect(formatBinaryValue(ColumnType.TINY, hex('ff'), true)).toBe('255');
      expect(formatBinaryValue(ColumnType.SHORT, hex('fe ff'), true)).toBe('65534');
      expect(formatBinaryValue(ColumnType.LONG, hex('ff ff ff ff'), true)).toBe('4294967295');
    });

    it('rejects invalid date/time lengths, fixed values of the wrong size, and truncations', () => {
      expect(() => decodeBinaryRow(hex('00 00 05 01 02 03 04 05'), [ColumnType.DATETIME])).toThrow(RangeError);
      expect(() => decodeBinaryRow(hex('00 00 07 01 02 03 04 05 06 07'), [ColumnType.TIME])).toThrow(RangeError);
      expect(() => encodeBinaryRow([ColumnType.LONG], [hex('01')])).toThrow(RangeError);
      expect(() => encodeBinaryRow([ColumnType.DATE], [hex('01')])).toThrow(RangeError);
      expect(() => encodeBinaryRow([ColumnType.DATE], [])).toThrow(RangeError);
      expect(() => decodeBinaryRow(hex('01 00'), [ColumnType.NULL])).toThrow(RangeError);
      expectTruncationsThrow(layout, (b) => decodeBinaryRow(b, types));
      expect(() => decodeBinaryRow(cat(layout, hex('00')), types)).toThrow(RangeError);
    });

    const typeArb = fc.constantFrom(
      ...Object.values(ColumnType).filter((t) => t !== ColumnType.NULL),
    );
    const valueFor = (type: number): fc.Arbitrary<Uint8Array> => {
      const layoutOf = binaryValueLayout(type);
      if (layoutOf === 'lenenc') return fc.uint8Array({ maxLength: 300 });
      if (layoutOf === 'datetime') return fc.constantFrom(0, 4, 7, 11).chain((n) => fc.uint8Array({ minLength: n, maxLength: n }));
      if (layoutOf === 'time') return fc.constantFrom(0, 8, 12).chain((n) => fc.uint8Array({ minLength: n, maxLength: n }));
      return fc.uint8Array({ minLength: layoutOf.fixed, maxLength: layoutOf.fixed });
    };
    const rowArb = fc
      .array(typeArb, { maxLength: 20 })
      .chain((ts) => fc.tuple(fc.constant(ts), fc.tuple(...ts.map((t) => fc.option(valueFor(t), { nil: null })))));

    it('round-trips random rows of every type (property)', () => {
      fc.assert(
        fc.property(rowArb, ([ts, vals]) => {
          const b = encodeBinaryRow(ts, vals);
          const r = decodeBinaryRow(b, ts);
          vals.forEach((v, i) => {
            const got = rowValue(b, r, i);
            expect(got === null ? null : [...got]).toEqual(v === null ? null : [...v]);
          });
          expect(encodeBinaryRow(ts, ts.map((_, i) => rowValue(b, r, i))).equals(b)).toBe(true);
          expectTruncationsThrow(b, (x) => decodeBinaryRow(x, ts));
        }),
      );
    });
  });
});

describe('decoders on garbage', () => {
  const decoders: [string, (b: Buffer) => unknown][] = [
    ['HandshakeV10', decodeHandshakeV10],
    ['client handshake', decodeClientHandshake],
    ['AuthSwitchRequest', decodeAuthSwitchRequest],
    ['OK', (b) => decodeOk(b, CLIENT_PROTOCOL_41 | CLIENT_SESSION_TRACK)],
    ['ERR', decodeErr],
    ['EOF', decodeEof],
    ['ColumnDefinition41', (b) => decodeColumnDefinition41(b)],
    ['column count', decodeColumnCount],
    ['PREPARE_OK', decodeStmtPrepareOk],
    ['COM_STMT_EXECUTE', (b) => decodeComStmtExecute(b, 3)],
    ['COM_CHANGE_USER', (b) => decodeComChangeUser(b, CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH | CLIENT_CONNECT_ATTRS)],
    ['text row', (b) => decodeTextRow(b, 3)],
    ['binary row', (b) => decodeBinaryRow(b, [ColumnType.LONG, ColumnType.VAR_STRING, ColumnType.TIME, ColumnType.DATETIME])],
  ];

  it('return a value or throw RangeError, nothing else (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 120 }), fc.nat({ max: 255 }), (bytes, first) => {
        const b = Buffer.from(bytes);
        if (b.length > 0) b[0] = first;
        for (const [name, decode] of decoders) {
          try {
            decode(b);
          } catch (err) {
            expect(err, name).toBeInstanceOf(RangeError);
          }
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('constants match the protocol', () => {
    expect(CLIENT_DEPRECATE_EOF).toBe(1 << 24);
    expect(CLIENT_REMEMBER_OPTIONS).toBe(2 ** 31);
    expect(CLIENT_SESSION_TRACK).toBe(1 << 23);
  });
});
