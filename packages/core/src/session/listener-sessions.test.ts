import type { Socket } from 'node:net';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { ListenerSessions } from './listener-sessions.js';

/** A session that ends when told to shut down, and on drain only once its request is answered. */
class FakeSession {
  busy = false;
  drainAsked = false;
  constructor(readonly onClosed: (s: FakeSession) => void) {}
  shutdown(): void {
    queueMicrotask(() => this.onClosed(this));
  }
  drain(): void {
    this.drainAsked = true;
    if (!this.busy) this.shutdown();
  }
}

const socket = {} as Socket;

describe('ListenerSessions.close', () => {
  it('a forced close during a graceful one ends every session, and both callers see the end', async () => {
    const sessions = new ListenerSessions<FakeSession>(pino({ level: 'silent' }));
    let busy: FakeSession | undefined;
    sessions.accept(socket, (onClosed) => (busy = Object.assign(new FakeSession(onClosed), { busy: true })));
    sessions.accept(socket, (onClosed) => new FakeSession(onClosed));
    const graceful = sessions.close({ graceMs: 60_000 });
    expect(busy?.drainAsked).toBe(true);
    await new Promise((r) => setImmediate(r));
    expect(sessions.size).toBe(1);
    const forced = sessions.close();
    const outcome = await Promise.race([Promise.all([graceful, forced]).then(() => 'closed'), new Promise((r) => setTimeout(() => r('hung'), 2000))]);
    expect(outcome).toBe('closed');
    expect(sessions.size).toBe(0);
  });

  it('a session still busy after the grace period is ended', async () => {
    const sessions = new ListenerSessions<FakeSession>(pino({ level: 'silent' }));
    sessions.accept(socket, (onClosed) => Object.assign(new FakeSession(onClosed), { busy: true }));
    const t0 = Date.now();
    await sessions.close({ graceMs: 50 });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(40);
    expect(sessions.size).toBe(0);
  });
});
