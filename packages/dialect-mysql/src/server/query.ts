import type { Socket } from 'node:net';
import { CLIENT_DEPRECATE_EOF, ResponseHeader, ServerStatus } from '../protocol/constants.js';
import { decodeColumnCount, decodeErr, decodeOk, decodeEof, decodeTextRow, encodeComQuery, endsRows, rowValue } from '../protocol/messages.js';
import { encodePacket, MessageReader } from '../protocol/packets.js';
import { UpstreamError } from '../protocol/upstream.js';

/** Largest response the gateway's own queries accept (settings and catalog reads are small). */
const MAX_RESPONSE_MESSAGE = 64 * 1024 * 1024;

export interface QueryResult {
  /** Rows of the last resultset, values as text (NULL as null). */
  readonly rows: (string | null)[][];
  /** Status flags of the final OK / EOF. */
  readonly status: number;
}

/**
 * Runs one statement of the gateway's own on an upstream connection that is between commands
 * (at login, or while the client waits), in the text protocol, and resolves with its rows.
 * Attaches its own listeners only for the time of the query and leaves the socket paused.
 * `leftover` is whatever was received on the socket and not yet read.
 */
export function queryUpstream(socket: Socket, capabilities: number, sql: string, leftover?: Buffer, timeoutMs = 10_000): Promise<QueryResult> {
  return commandUpstream(socket, capabilities, encodeComQuery(sql), leftover, timeoutMs);
}

/**
 * Sends one command of the gateway's own (a COM_QUERY, COM_RESET_CONNECTION...) on an upstream
 * connection between commands and reads its answer: an OK (no rows), an ERR (rejected as an
 * UpstreamError carrying errno and SQLSTATE), or result sets. As queryUpstream.
 */
export function commandUpstream(socket: Socket, capabilities: number, command: Buffer, leftover?: Buffer, timeoutMs = 10_000): Promise<QueryResult> {
  const deprecateEof = (capabilities & CLIENT_DEPRECATE_EOF) !== 0;
  const reader = new MessageReader({ maxMessageBytes: MAX_RESPONSE_MESSAGE });
  return new Promise<QueryResult>((resolve, reject) => {
    let phase: 'first' | 'columns' | 'columns-eof' | 'rows' = 'first';
    let columns = 0;
    let left = 0;
    let rows: (string | null)[][] = [];
    let settled = false;
    const finish = (err: Error | undefined, result?: QueryResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('close', onClose);
      socket.pause();
      if (err) reject(err);
      else resolve(result!);
    };
    const onPacket = (payload: Buffer): void => {
      switch (phase) {
        case 'first':
          if (payload[0] === ResponseHeader.ERR) {
            const e = decodeErr(payload, capabilities);
            throw new UpstreamError(`the upstream refused the gateway's command: ${e.message}`, e);
          }
          if (payload[0] === ResponseHeader.OK) {
            const ok = decodeOk(payload, capabilities);
            if (ok.statusFlags & ServerStatus.MORE_RESULTS_EXISTS) return;
            return finish(undefined, { rows, status: ok.statusFlags });
          }
          columns = decodeColumnCount(payload);
          left = columns;
          rows = [];
          phase = 'columns';
          return;
        case 'columns':
          if (--left === 0) phase = deprecateEof ? 'rows' : 'columns-eof';
          return;
        case 'columns-eof':
          phase = 'rows';
          return;
        case 'rows': {
          if (payload[0] === ResponseHeader.ERR) {
            const e = decodeErr(payload, capabilities);
            throw new UpstreamError(`the upstream failed the gateway's query: ${e.message}`, e);
          }
          if (endsRows(payload, deprecateEof)) {
            const status = deprecateEof ? decodeOk(payload, capabilities).statusFlags : decodeEof(payload, capabilities).statusFlags;
            if (status & ServerStatus.MORE_RESULTS_EXISTS) {
              phase = 'first';
              return;
            }
            return finish(undefined, { rows, status });
          }
          const ranges = decodeTextRow(payload, columns);
          const row: (string | null)[] = [];
          for (let i = 0; i < columns; i++) row.push(rowValue(payload, ranges, i)?.toString('utf8') ?? null);
          rows.push(row);
          return;
        }
      }
    };
    const onData = (chunk: Buffer): void => {
      try {
        reader.push(chunk);
        for (let m = reader.next(); m && !settled; m = reader.next()) onPacket(m.payload);
      } catch (err) {
        finish(err instanceof UpstreamError ? err : new UpstreamError(`bad response to the gateway's query: ${(err as Error).message}`, undefined, { cause: err }));
      }
    };
    const onError = (err: Error): void => finish(new UpstreamError(`upstream connection failed: ${err.message}`, undefined, { cause: err }));
    const onClose = (): void => finish(new UpstreamError('the upstream closed the connection'));
    const timer = setTimeout(() => finish(new UpstreamError(`the gateway's query did not complete within ${timeoutMs} ms`)), timeoutMs);
    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('close', onClose);
    socket.write(encodePacket(command, 0));
    if (leftover && leftover.length > 0) onData(leftover);
    if (!settled) socket.resume();
  });
}
