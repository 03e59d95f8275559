import type { ConformanceDriver } from '@sluice/testkit';
import pg from 'pg';
import { firstErrorCode, frontendMessage, startupMessage } from '../src/testing/index.js';

export function pgClientConfig(address: { host: string; port: number }, database: string, user: string, password: string, extra: pg.ClientConfig = {}): pg.ClientConfig {
  return { host: address.host, port: address.port, database, user, password, connectionTimeoutMillis: 10_000, ...extra };
}

export async function connectPg(address: { host: string; port: number }, database: string, user: string, password: string, extra: pg.ClientConfig = {}): Promise<pg.Client> {
  const client = new pg.Client(pgClientConfig(address, database, user, password, extra));
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

const oversized = Buffer.alloc(9);
oversized.writeInt32BE(9, 0);
oversized.writeInt32BE(196608, 4);

/** The PostgreSQL dialect's conformance driver, using node-postgres as the real client. */
export const pgConformanceDriver: ConformanceDriver = {
  async connect(address, target, username, password) {
    const client = await connectPg(address, target, username, password);
    return {
      query: async (text) => {
        const r = await client.query(text);
        return { rowCount: r.rows.length };
      },
      close: () => client.end(),
    };
  },
  errorCode: (err) => (err as { code?: string })?.code,
  authFailedCode: '28P01',
  probeStatement: "SELECT 'conformance-literal-4711' AS probe",
  malformedInputs: [
    { name: 'garbage bytes', bytes: Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n') },
    { name: 'random bytes', bytes: Buffer.from([0xff, 0xfe, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08]) },
    { name: 'truncated startup message', bytes: Buffer.concat([Buffer.from([0, 0, 0, 40]), Buffer.from([0, 3, 0, 0]), Buffer.from('user\0ab')]) },
    { name: 'length smaller than header', bytes: Buffer.from([0, 0, 0, 2, 0, 0, 0, 0]) },
    { name: 'oversized startup message', bytes: Buffer.concat([Buffer.from([0x7f, 0xff, 0xff, 0xff]), Buffer.alloc(64)]) },
    { name: 'unknown protocol version', bytes: Buffer.from([0, 0, 0, 8, 0, 9, 0, 0]) },
    {
      name: 'query before authentication',
      bytes: Buffer.concat([startupMessage({ user: 'x', database: 'conformance' }), frontendMessage('Query', 'select 1\0')]),
    },
  ],
  isNativeError: (response) => firstErrorCode(response) !== undefined,
  accessDeniedCode: '42501',
  dropTableStatement: 'DROP TABLE IF EXISTS sluice_conformance_never_created',
  lookAlikeStatement: "SELECT 'DROP TABLE sluice_conformance_never_created' AS looks_dangerous",
};
