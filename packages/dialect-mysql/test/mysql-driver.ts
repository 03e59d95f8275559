import type { ConformanceDriver } from '@sluice/testkit';
import mysql from 'mysql2/promise';
import { encodePacket } from '../src/protocol/packets.js';

/**
 * Connection options for mysql2 through the gateway: the token goes as the password, in clear
 * when the gateway asks for mysql_clear_password (mysql2 needs the plugin spelled out).
 */
export function mysqlClientOptions(
  address: { host: string; port: number },
  database: string,
  user: string,
  password: string,
  extra: mysql.ConnectionOptions = {},
): mysql.ConnectionOptions {
  return {
    host: address.host,
    port: address.port,
    database,
    user,
    password,
    connectTimeout: 10_000,
    authPlugins: { mysql_clear_password: () => () => Buffer.from(`${password}\0`) },
    ...extra,
  };
}

export async function connectMysql(
  address: { host: string; port: number },
  database: string,
  user: string,
  password: string,
  extra: mysql.ConnectionOptions = {},
): Promise<mysql.Connection> {
  const c = await mysql.createConnection(mysqlClientOptions(address, database, user, password, extra));
  c.on('error', () => undefined);
  return c;
}

/** The packets (sequence id and payload) in raw bytes from the gateway. */
export function packetsOf(bytes: Buffer): { seq: number; payload: Buffer }[] {
  const out: { seq: number; payload: Buffer }[] = [];
  let at = 0;
  while (at + 4 <= bytes.length) {
    const len = bytes.readUIntLE(at, 3);
    if (at + 4 + len > bytes.length) break;
    out.push({ seq: bytes[at + 3]!, payload: bytes.subarray(at + 4, at + 4 + len) });
    at += 4 + len;
  }
  return out;
}

/** A HandshakeResponse41-sized payload without CLIENT_PROTOCOL_41 (a 3.23-era client). */
const preProtocol41 = encodePacket(Buffer.concat([Buffer.from([0x05, 0x00, 0, 0, 0, 0]), Buffer.from('user\0')]), 1);

/** The MySQL dialect's conformance driver, using mysql2 as the real client. */
export const mysqlConformanceDriver: ConformanceDriver = {
  async connect(address, target, username, password) {
    const c = await connectMysql(address, target, username, password);
    return {
      query: async (text) => {
        const [rows] = await c.query(text);
        return { rowCount: Array.isArray(rows) ? rows.length : 0 };
      },
      close: () => c.end(),
    };
  },
  errorCode: (err) => {
    const errno = (err as { errno?: number })?.errno;
    return errno === undefined ? undefined : String(errno);
  },
  authFailedCode: '1045',
  probeStatement: "SELECT 'conformance-literal-4711' AS probe",
  malformedInputs: [
    { name: 'garbage bytes', bytes: Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n') },
    { name: 'oversized packet', bytes: Buffer.concat([Buffer.from([0xff, 0xff, 0xff, 0x01]), Buffer.alloc(64)]) },
    { name: 'random bytes', bytes: Buffer.from([0x05, 0x00, 0x00, 0x01, 0xff, 0xfe, 0x00, 0x01, 0x02]) },
    { name: 'truncated handshake response', bytes: encodePacket(Buffer.from([0x0d, 0xa2, 0x0a, 0x00, 0, 0, 0, 1, 0x2d]), 1) },
    { name: 'pre-4.1 client', bytes: preProtocol41 },
    { name: 'wrong sequence id', bytes: encodePacket(Buffer.alloc(40, 0x41), 7) },
    { name: 'query before authentication', bytes: encodePacket(Buffer.from('\x03select 1', 'latin1'), 0) },
    {
      name: 'SSL request to a gateway without TLS',
      bytes: encodePacket(Buffer.concat([Buffer.from([0x00, 0x8a, 0x00, 0x00]), Buffer.from([0, 0, 0, 1, 45]), Buffer.alloc(23)]), 1),
    },
  ],
  isNativeError: (response) => packetsOf(response).some((p) => p.seq > 0 && p.payload[0] === 0xff),
  accessDeniedCode: '1142',
  dropTableStatement: 'DROP TABLE IF EXISTS sluice_conformance_never_created',
  lookAlikeStatement: "SELECT 'DROP TABLE sluice_conformance_never_created' AS looks_dangerous",
};
