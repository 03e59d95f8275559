import net from 'node:net';
import type { ApprovalRequest, Approvals, Identity } from '@sluice/core';
import type pg from 'pg';
import { it } from 'vitest';
import { passwordMessage, splitBackendFrames, startupMessage } from '../src/testing/index.js';

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

/** The identity of a harness token, as an approver acting through the approvals service. */
export function identityOf(t: { subject: string; kind: Identity['kind']; groups: readonly string[] }): Identity {
  return { subject: t.subject, kind: t.kind, groups: [...t.groups], method: 'token' };
}

/** Waits for a pending review request whose statement matches, and returns it. */
export async function pendingRequest(approvals: Approvals, statement: RegExp, timeoutMs = 5000): Promise<ApprovalRequest> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const found = approvals.list({ status: 'pending' }).find((r) => statement.test(r.statement));
    if (found) return found;
    if (Date.now() > until) throw new Error(`no pending request for ${statement}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The columns of a table, read directly from the server. */
export async function columnNames(direct: pg.Client, table: string): Promise<string[]> {
  const r = await direct.query('SELECT column_name FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position', [table]);
  return r.rows.map((x: { column_name: string }) => x.column_name);
}

/** A raw protocol client, logged in: sends frames, reads back message types. */
export interface RawClient {
  send(...messages: Buffer[]): void;
  /** Message types received since the last `take` (one letter each), once `until` holds them. */
  take(until: (types: string) => boolean, timeoutMs?: number): Promise<string>;
  /** The NoticeResponse frames received so far, as text. */
  notices(): string[];
  /** Every message received so far. */
  frames(): { type: string; frame: Buffer }[];
  close(): void;
}

export async function rawClient(address: { host: string; port: number }, who: { subject: string; token: string }, database = 'app'): Promise<RawClient> {
  const socket = net.connect({ host: address.host, port: address.port });
  await new Promise((r) => socket.once('connect', r));
  let received = Buffer.alloc(0);
  socket.on('data', (d) => {
    received = Buffer.concat([received, d]);
  });
  let consumed = 0;
  const frames = () => splitBackendFrames(received);
  const client: RawClient = {
    send: (...m) => socket.write(Buffer.concat(m)),
    async take(until, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const types = frames().slice(consumed).map((f) => f.type).join('');
        if (until(types)) {
          consumed += types.length;
          return types;
        }
        if (Date.now() > deadline) throw new Error(`timed out; got "${types}"`);
        await new Promise((res) => setTimeout(res, 10));
      }
    },
    notices: () => frames().filter((f) => f.type === 'N').map((f) => f.frame.toString('utf8')),
    frames,
    close: () => socket.end(),
  };
  client.send(startupMessage({ user: who.subject, database }));
  await client.take((t) => t.includes('R'));
  client.send(passwordMessage(who.token));
  await client.take((t) => t.includes('Z'));
  return client;
}

/**
 * Which of `secrets` (or their upper-case, lower-case, reversed, base64 or hex forms) appear in
 * `value` (any JSON-able result): what masking must never let through.
 */
export function leaksOf(secrets: readonly string[], value: unknown): string[] {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  if (text === undefined) return [];
  const found: string[] = [];
  for (const s of secrets) {
    const forms = [s, s.toLowerCase(), s.toUpperCase(), [...s].reverse().join(''), Buffer.from(s).toString('base64'), Buffer.from(s).toString('hex')];
    for (const f of forms) if (text.includes(f)) found.push(f);
  }
  return found;
}
