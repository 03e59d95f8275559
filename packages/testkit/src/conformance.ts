import net from 'node:net';
import { verifyAuditLog, type AuditRecord, type Dialect } from '@sluice/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from './gateway-harness.js';
import { requireService } from './services.js';

export interface ConformanceClient {
  query(text: string): Promise<{ rowCount: number }>;
  close(): Promise<void>;
}

/** What a dialect provides so the suite can drive it with the dialect's own real client. */
export interface ConformanceDriver {
  /** Opens a client connection through the gateway (authenticating with the password). */
  connect(address: { host: string; port: number }, target: string, username: string, password: string): Promise<ConformanceClient>;
  /** The native code of the error raised by `connect` or `query`, if any. */
  errorCode(err: unknown): string | undefined;
  /** The native code a failed login must carry (28P01 for PostgreSQL). */
  readonly authFailedCode: string;
  /** A statement returning exactly one row that contains the literal 'conformance-literal-4711'. */
  readonly probeStatement: string;
  /** Malformed or hostile first bytes a client might send. */
  readonly malformedInputs: readonly { readonly name: string; readonly bytes: Buffer }[];
  /** True when `response` (all bytes the gateway sent back) holds a native error message. */
  isNativeError(response: Buffer): boolean;
  /** The native code of a statement the policy refused (42501 for PostgreSQL). */
  readonly accessDeniedCode: string;
  /** A statement that drops a table (which need not exist): the drop-table guardrail stops it. */
  readonly dropTableStatement: string;
  /** A statement that only looks like a DROP TABLE (in a string literal) and returns one row. */
  readonly lookAlikeStatement: string;
}

export interface ConformanceOptions<TOptions> {
  readonly dialect: Dialect<TOptions>;
  readonly driver: ConformanceDriver;
  /** The upstream the suite's target points at (a real server). */
  readonly upstream: { readonly name: string; readonly host: string; readonly port: number; readonly targetOptions: unknown };
}

const TOKEN = 'conformance-token-ok';
const SUBJECT = 'conformance@example.com';

/** Sends bytes on a fresh connection and collects everything until the gateway closes it. */
export function sendRaw(address: { host: string; port: number }, bytes: Buffer, timeoutMs = 5000): Promise<{ response: Buffer; closed: boolean }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const socket = net.connect(address, () => socket.write(bytes));
    const finish = (closed: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ response: Buffer.concat(chunks), closed });
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    socket.on('data', (c) => chunks.push(c));
    socket.on('close', () => finish(true));
    socket.on('error', () => undefined);
  });
}

/**
 * The conformance suite every dialect passes: connect, authenticate, fail authentication,
 * run a statement and find its audit record, and survive bad input with a clean error.
 */
export function runConformanceSuite<TOptions>(options: ConformanceOptions<TOptions>): void {
  const { dialect, driver, upstream } = options;
  describe(`conformance: ${dialect.name}`, () => {
    let gw: TestGateway | undefined;
    let available = false;

    beforeAll(async () => {
      available = await requireService(upstream.name, upstream.host, upstream.port);
      if (!available) return;
      gw = await startTestGateway({
        dialect,
        targets: { conformance: upstream.targetOptions },
        tokens: [{ subject: SUBJECT, kind: 'service', groups: ['conformance'], token: TOKEN }],
        authTimeoutMs: 2000,
      });
    });

    afterAll(async () => {
      await gw?.close();
    });

    /** Runs a test body only when the upstream is there (its absence was reported loudly). */
    const live = (name: string, body: (gw: TestGateway) => Promise<void>) =>
      it(name, async () => {
        if (!available) return;
        await body(gw!);
      });

    const records = async (g: TestGateway, type: AuditRecord['type']) => (await g.auditRecords()).filter((r) => r.type === type);

    live('connects and authenticates with a valid token', async (g) => {
      const client = await driver.connect(g, 'conformance', SUBJECT, TOKEN);
      const result = await client.query(driver.probeStatement);
      expect(result.rowCount).toBe(1);
      await client.close();
      const accepted = (await records(g, 'connect')).filter((r) => r.type === 'connect' && r.outcome === 'accepted');
      expect(accepted.length).toBeGreaterThan(0);
      expect(accepted.at(-1)).toMatchObject({ dialect: dialect.name, target: 'conformance', actor: { subject: SUBJECT, kind: 'service' } });
    });

    live('refuses a wrong token with the native auth error, and audits the attempt', async (g) => {
      let code: string | undefined;
      try {
        const c = await driver.connect(g, 'conformance', SUBJECT, 'not-the-token');
        await c.close();
      } catch (err) {
        code = driver.errorCode(err);
      }
      expect(code).toBe(driver.authFailedCode);
      const refused = (await records(g, 'connect')).filter((r) => r.type === 'connect' && r.outcome === 'refused');
      expect(refused.at(-1)).toMatchObject({ username: SUBJECT, outcome: 'refused' });
      const serialized = JSON.stringify(await g.auditRecords());
      expect(serialized).not.toContain('not-the-token');
      expect(serialized).not.toContain(TOKEN);
    });

    live('records every statement with identity, normalized text, rows and outcome', async (g) => {
      const client = await driver.connect(g, 'conformance', SUBJECT, TOKEN);
      await client.query(driver.probeStatement);
      await client.close();
      // The disconnect record is written as the session ends; give it a moment.
      let all: AuditRecord[] = [];
      for (let i = 0; i < 50; i++) {
        all = await g.auditRecords();
        const last = all.filter((r) => r.type === 'statement' && r.phase === 'complete').at(-1);
        if (all.some((r) => r.type === 'disconnect' && r.sessionId === last?.sessionId)) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      const statements = all.filter((r) => r.type === 'statement' && r.phase === 'complete');
      const probe = statements.at(-1);
      expect(probe).toMatchObject({ actor: { subject: SUBJECT }, target: 'conformance', outcome: 'ok', rows: 1, decision: 'allow' });
      expect(probe && 'fingerprint' in probe && probe.fingerprint).toMatch(/^[0-9a-f]{8,}$/);
      expect(JSON.stringify(all)).not.toContain('conformance-literal-4711');
      expect(all.some((r) => r.type === 'disconnect' && r.sessionId === probe?.sessionId)).toBe(true);
      const verified = await verifyAuditLog(g.auditDir);
      expect(verified.ok).toBe(true);
    });

    live('denies by default, blocks a guardrail natively, lets a look-alike pass, and keeps the session', async () => {
      const guarded = await startTestGateway({
        dialect,
        targets: { conformance: upstream.targetOptions },
        tokens: [{ subject: SUBJECT, kind: 'service', groups: ['conformance'], token: TOKEN }],
        policy: {
          rules: [{ name: 'conformance-read', identities: { groups: ['conformance'] }, operations: ['read', 'transaction', 'session-setting'], effect: 'allow' }],
        },
      });
      try {
        const client = await driver.connect(guarded, 'conformance', SUBJECT, TOKEN);
        let code: string | undefined;
        let message = '';
        try {
          await client.query(driver.dropTableStatement);
        } catch (err) {
          code = driver.errorCode(err);
          message = (err as Error).message;
        }
        expect(code).toBe(driver.accessDeniedCode);
        expect(message).toContain('guardrail "drop-table"');
        expect((await client.query(driver.lookAlikeStatement)).rowCount).toBe(1);
        expect((await client.query(driver.probeStatement)).rowCount).toBe(1);
        await client.close();
        const denied = (await guarded.auditRecords()).filter((r) => r.type === 'statement' && r.decision === 'deny');
        expect(denied.at(-1)).toMatchObject({ rule: 'guardrail:drop-table', guardrail: 'drop-table', outcome: 'not-executed', actor: { subject: SUBJECT } });
      } finally {
        await guarded.close();
      }
    });

    live('answers bad input with a clean error and keeps serving others', async (g) => {
      const bystander = await driver.connect(g, 'conformance', SUBJECT, TOKEN);
      for (const input of driver.malformedInputs) {
        const { response, closed } = await sendRaw(g, input.bytes);
        expect(closed, `${input.name}: the gateway closes the connection`).toBe(true);
        if (response.length > 0) expect(driver.isNativeError(response), `${input.name}: a native error`).toBe(true);
      }
      const result = await bystander.query(driver.probeStatement);
      expect(result.rowCount).toBe(1);
      await bystander.close();
      const fresh = await driver.connect(g, 'conformance', SUBJECT, TOKEN);
      expect((await fresh.query(driver.probeStatement)).rowCount).toBe(1);
      await fresh.close();
    });
  });
}
