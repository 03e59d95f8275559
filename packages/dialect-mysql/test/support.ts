import { spawn } from 'node:child_process';
import net, { type Socket } from 'node:net';
import type { ApprovalRequest, Approvals, AuditRecord, Identity } from '@sluice/core';
import mysql from 'mysql2/promise';
import { it } from 'vitest';
import * as Caps from '../src/protocol/constants.js';
import { Command } from '../src/protocol/constants.js';
import {
  decodeClientHandshake,
  encodeColumnCount,
  encodeColumnDefinition41,
  encodeEof,
  encodeHandshakeV10,
  encodeLocalInfileRequest,
  encodeOk,
  encodeTextRow,
} from '../src/protocol/messages.js';
import { encodePacket, MessageReader } from '../src/protocol/packets.js';
import { connectUpstream } from '../src/protocol/upstream.js';
import { queryUpstream, type QueryResult } from '../src/server/query.js';

/**
 * Shared pieces of the MySQL integration suites: the live-test wrapper, direct connections to
 * MariaDB for setup and checks, audit helpers, a raw protocol client for commands mysql2 does
 * not send, and the mysql command-line client.
 */

/** The MariaDB the suites run against, as a gateway target. */
export const UPSTREAM = 'mysql://root@127.0.0.1:3306/test';
export const DIRECT = { host: '127.0.0.1', port: 3306, user: 'root', database: 'test' } as const;

/**
 * A test that runs only when its server is there (`requireService` has already said loudly
 * when it is not, and fails the run under SLUICE_REQUIRE_SERVICES=1).
 */
export function liveTest(isAvailable: () => boolean) {
  return (name: string, body: () => Promise<void>, timeout = 30_000): void => {
    it(name, async () => {
      if (!isAvailable()) return;
      await body();
    }, timeout);
  };
}

/** A connection straight to MariaDB (no gateway), for setup and for checking what happened. */
export async function directConnection(extra: mysql.ConnectionOptions = {}): Promise<mysql.Connection> {
  const c = await mysql.createConnection({ ...DIRECT, ...extra });
  c.on('error', () => undefined);
  return c;
}

/** The callback-style connection under a promise connection (for result streams). */
export function coreOf(c: mysql.Connection): import('mysql2').Connection {
  return (c as unknown as { connection: import('mysql2').Connection }).connection;
}

/** Resolves when the client's socket to the gateway has closed. */
export function closedSocket(c: mysql.Connection): Promise<void> {
  const socket = (coreOf(c) as unknown as { stream: Socket }).stream;
  return new Promise((resolve) => {
    if (socket.destroyed) resolve();
    else socket.once('close', () => resolve());
  });
}

/** The identity of a harness token, as an approver acting through the approvals service. */
export function identityOf(t: { subject: string; kind: Identity['kind']; groups: readonly string[] }): Identity {
  return { subject: t.subject, kind: t.kind, groups: [...t.groups], method: 'token' };
}

/** Polls `probe` until it returns something other than undefined; fails after the deadline. */
export async function eventually<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 5000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Waits for a pending review request whose statement matches, and returns it. */
export function pendingRequest(approvals: Approvals, statement: RegExp, timeoutMs = 5000): Promise<ApprovalRequest> {
  return eventually(`a pending request for ${statement}`, () => approvals.list({ status: 'pending' }).find((r) => statement.test(r.statement)), timeoutMs);
}

/**
 * Waits until MariaDB runs a statement whose text matches (on any connection), so that a test
 * acts on a statement that really is in progress upstream.
 */
export function runningUpstream(direct: mysql.Connection, like: string, timeoutMs = 5000): Promise<number> {
  return eventually(`a running statement like ${like}`, async () => {
    const [rows] = await direct.query<mysql.RowDataPacket[]>(
      "SELECT ID AS id FROM information_schema.PROCESSLIST WHERE COMMAND = 'Query' AND INFO LIKE ? AND ID <> CONNECTION_ID()",
      [like],
    );
    return rows[0]?.id as number | undefined;
  }, timeoutMs);
}

export type StatementRecord = Extract<AuditRecord, { type: 'statement' }>;

/** The statement records of the audit trail, optionally only those matching. */
export function statementRecords(records: readonly AuditRecord[], where: (r: StatementRecord) => boolean = () => true): StatementRecord[] {
  return records.filter((r): r is StatementRecord => r.type === 'statement' && where(r));
}

/**
 * mysql2's mysql_clear_password answer with the password of the command in progress, so that
 * a COM_CHANGE_USER sends the new identity's token (the driver helper's plugin keeps the first).
 */
export const clearPasswordPlugin = {
  mysql_clear_password: (meta: { connection: unknown; command: unknown }) => () => {
    const command = meta.command as { password?: string };
    const connection = meta.connection as { config: { password?: string } };
    return Buffer.from(`${command.password ?? connection.config.password ?? ''}\0`);
  },
};

/** Capabilities of the raw client: what a typical driver asks for, with LOCAL INFILE. */
const RAW_CAPABILITIES = (Caps.CLIENT_LONG_FLAG | Caps.CLIENT_TRANSACTIONS | Caps.CLIENT_MULTI_RESULTS | Caps.CLIENT_PS_MULTI_RESULTS | Caps.CLIENT_MULTI_STATEMENTS | Caps.CLIENT_LOCAL_FILES) >>> 0;

/** A client speaking the protocol itself, for commands drivers do not send and for reading slowly. */
export interface RawMysqlClient {
  readonly socket: Socket;
  /** The connection id the gateway announced. */
  readonly connectionId: number;
  /** A text-protocol statement; rows of the last result as text. Rejects with the server's error. */
  query(sql: string): Promise<QueryResult>;
  /** Sends one command packet and resolves with the first message of the answer. */
  command(payload: Buffer): Promise<{ readonly payload: Buffer; readonly sequenceId: number }>;
  close(): void;
}

/** Logs in through the gateway with the token in clear (allowed on loopback) and hands over the socket. */
export async function rawClient(address: { host: string; port: number }, database: string, user: string, token: string): Promise<RawMysqlClient> {
  const c = await connectUpstream({
    host: address.host,
    port: address.port,
    user,
    password: token,
    database,
    tls: { mode: 'disable' },
    capabilities: RAW_CAPABILITIES,
    // The gateway's greeting names mysql_native_password; it then asks for the token in clear.
    initialAuthPlugin: 'mysql_native_password',
  });
  const socket = c.socket;
  socket.on('error', () => undefined);
  let leftover: Buffer | undefined = c.leftover;
  return {
    socket,
    connectionId: c.connectionId,
    query: (sql) => {
      const l = leftover;
      leftover = undefined;
      return queryUpstream(socket, c.capabilities, sql, l);
    },
    command: (payload) =>
      new Promise((resolve, reject) => {
        const reader = new MessageReader({ maxMessageBytes: 1 << 20 });
        const onData = (chunk: Buffer): void => {
          reader.push(chunk);
          const m = reader.next();
          if (!m) return;
          done();
          resolve({ payload: Buffer.from(m.payload), sequenceId: m.sequenceId });
        };
        const onClose = (): void => {
          done();
          reject(new Error('the gateway closed the connection'));
        };
        const done = (): void => {
          socket.off('data', onData);
          socket.off('close', onClose);
          socket.pause();
        };
        socket.on('data', onData);
        socket.on('close', onClose);
        socket.write(encodePacket(payload, 0));
        if (leftover && leftover.length > 0) {
          const l = leftover;
          leftover = undefined;
          onData(l);
        }
        socket.resume();
      }),
    close: () => socket.destroy(),
  };
}

export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs the mysql command-line client (asynchronously: the gateway runs in this process and
 * must keep serving), without reading option files, with `input` on its stdin.
 */
export function mysqlCli(args: readonly string[], input?: string, timeoutMs = 20_000): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('mysql', ['--no-defaults', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`mysql did not finish within ${timeoutMs} ms; stdout: ${stdout}; stderr: ${stderr}`));
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(input ?? '');
  });
}

/** What a scripted server saw of the exchange it provoked. */
export interface InfileTrapServer {
  readonly port: number;
  /** Packets received in answer to the file request (the file's content, then an empty packet). */
  readonly fileAnswers: { readonly sequenceId: number; readonly payload: Buffer }[];
  close(): Promise<void>;
}

/**
 * A server that speaks just enough of the protocol to be a gateway's upstream (any login is
 * accepted; every query returns one row) and that answers any statement containing `trap` with
 * a LOCAL INFILE request for /etc/passwd, as a compromised or malicious server could: no real
 * server asks for a client file for a statement that is not LOAD DATA LOCAL.
 */
export async function startInfileTrapServer(): Promise<InfileTrapServer> {
  const fileAnswers: { sequenceId: number; payload: Buffer }[] = [];
  const offered = (Caps.CLIENT_LONG_PASSWORD | Caps.CLIENT_FOUND_ROWS | Caps.CLIENT_LONG_FLAG | Caps.CLIENT_CONNECT_WITH_DB | Caps.CLIENT_NO_SCHEMA |
    Caps.CLIENT_LOCAL_FILES | Caps.CLIENT_IGNORE_SPACE | Caps.CLIENT_PROTOCOL_41 | Caps.CLIENT_INTERACTIVE | Caps.CLIENT_IGNORE_SIGPIPE |
    Caps.CLIENT_TRANSACTIONS | Caps.CLIENT_SECURE_CONNECTION | Caps.CLIENT_MULTI_STATEMENTS | Caps.CLIENT_MULTI_RESULTS | Caps.CLIENT_PS_MULTI_RESULTS |
    Caps.CLIENT_PLUGIN_AUTH | Caps.CLIENT_CONNECT_ATTRS | Caps.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA | Caps.CLIENT_SESSION_TRACK | Caps.CLIENT_DEPRECATE_EOF) >>> 0;
  const sockets = new Set<Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    const reader = new MessageReader({ maxMessageBytes: 1 << 20 });
    let agreed = 0;
    let state: 'login' | 'ready' | 'file' = 'login';
    const send = (payload: Buffer, sequenceId: number): void => {
      socket.write(encodePacket(payload, sequenceId & 0xff));
    };
    const column = (name: string) =>
      encodeColumnDefinition41({ catalog: 'def', schema: '', table: '', orgTable: '', name, orgName: '', charset: 45, columnLength: 1024, type: 0xfd, flags: 0, decimals: 0 });
    const resultSet = (names: readonly string[], row: readonly (string | null)[]): void => {
      const deprecateEof = (agreed & Caps.CLIENT_DEPRECATE_EOF) !== 0;
      let seq = 1;
      send(encodeColumnCount(names.length), seq++);
      for (const n of names) send(column(n), seq++);
      if (!deprecateEof) send(encodeEof({ warnings: 0, statusFlags: Caps.ServerStatus.AUTOCOMMIT }, agreed), seq++);
      send(encodeTextRow(row), seq++);
      send(deprecateEof ? encodeOk({ header: 0xfe, statusFlags: Caps.ServerStatus.AUTOCOMMIT }, agreed) : encodeEof({ warnings: 0, statusFlags: Caps.ServerStatus.AUTOCOMMIT }, agreed), seq);
    };
    send(
      encodeHandshakeV10({
        serverVersion: '10.11.0-MariaDB-scripted',
        connectionId: 77,
        authPluginData: Buffer.alloc(20, 0x41),
        capabilities: offered,
        mariadbCapabilities: 0,
        charset: Caps.Collation.UTF8MB4_GENERAL_CI,
        statusFlags: Caps.ServerStatus.AUTOCOMMIT,
        authPluginName: 'mysql_native_password',
      }),
      0,
    );
    socket.on('data', (chunk: Buffer) => {
      reader.push(chunk);
      for (let m = reader.next(); m; m = reader.next()) {
        if (state === 'login') {
          const h = decodeClientHandshake(m.payload);
          agreed = h.kind === 'response' ? h.capabilities : 0;
          send(encodeOk({ statusFlags: Caps.ServerStatus.AUTOCOMMIT }, agreed), m.sequenceId + 1);
          state = 'ready';
        } else if (state === 'file') {
          fileAnswers.push({ sequenceId: m.sequenceId, payload: Buffer.from(m.payload) });
          if (m.payload.length === 0) {
            // The end of the file: the statement is done, as a server says it.
            send(encodeOk({ statusFlags: Caps.ServerStatus.AUTOCOMMIT }, agreed), m.sequenceId + 1);
            state = 'ready';
          }
        } else if (m.payload[0] === Command.QUERY) {
          const sql = m.payload.subarray(1).toString('utf8');
          if (sql.startsWith('SELECT @@SESSION.sql_mode')) resultSet(['sql_mode', 'charset', 'db'], ['', 'utf8mb4', 'test']);
          else if (sql.includes('trap')) {
            send(encodeLocalInfileRequest('/etc/passwd'), 1);
            state = 'file';
          } else resultSet(['x'], ['1']);
        } else if (m.payload[0] === Command.QUIT) {
          socket.end();
        } else {
          send(encodeOk({ statusFlags: Caps.ServerStatus.AUTOCOMMIT }, agreed), 1);
        }
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    fileAnswers,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * A TCP relay between the gateway and MariaDB that counts the bytes the server has handed to the
 * gateway. It forwards with backpressure (pipe), so the count stops growing when the gateway
 * stops reading.
 */
export async function startCountingRelay(port: number): Promise<{ port: number; fromServer: () => number; close: () => Promise<void> }> {
  let fromServer = 0;
  const sockets = new Set<Socket>();
  const server = net.createServer((gateway) => {
    const upstream = net.connect(port, '127.0.0.1');
    for (const s of [gateway, upstream]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => sockets.delete(s));
    }
    gateway.on('close', () => upstream.destroy());
    upstream.on('close', () => gateway.destroy());
    upstream.on('data', (chunk: Buffer) => {
      fromServer += chunk.length;
    });
    upstream.pipe(gateway);
    gateway.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    fromServer: () => fromServer,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
