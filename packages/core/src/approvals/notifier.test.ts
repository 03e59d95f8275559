import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  buildSlackMessage,
  createNotifiers,
  SLACK_STATEMENT_LIMIT,
  validateNotifierConfig,
  verifyWebhookSignature,
  webhookSignature,
  type WebhookPayload,
} from './notifier.js';
import type { ApprovalRequest } from './types.js';

interface Captured {
  readonly method: string | undefined;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

interface Receiver {
  readonly url: string;
  readonly received: Captured[];
  /** Resolves once `n` requests have arrived. */
  waitFor(n: number): Promise<void>;
}

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
});

/** A local HTTP server that records what it is sent and answers with `statuses` in turn (then 200). */
async function receiver(statuses: number[] = []): Promise<Receiver> {
  const received: Captured[] = [];
  const waiters: { n: number; resolve: () => void }[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ method: req.method, headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      res.statusCode = statuses.shift() ?? 200;
      res.end('ok');
      for (const w of waiters) if (received.length >= w.n) w.resolve();
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hooks/sluice`,
    received,
    waitFor: (n) =>
      received.length >= n ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ n, resolve })),
  };
}

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function logger() {
  const warnings: { obj: object; msg: string }[] = [];
  return {
    warnings,
    warn: (obj: object, msg: string) => warnings.push({ obj, msg }),
    error: (obj: object, msg: string) => warnings.push({ obj, msg }),
  };
}

const request: ApprovalRequest = {
  id: 'r-7k3p9q',
  status: 'pending',
  createdAt: '2024-05-01T12:00:00.000Z',
  expiresAt: '2024-05-01T12:05:00.000Z',
  dialect: 'postgres',
  sessionId: 's-1',
  statementId: 'st-1',
  requester: { subject: 'alice', kind: 'human', groups: ['eng'], method: 'oidc' },
  target: 'prod',
  statement: 'UPDATE accounts SET balance = $1 WHERE id = $2',
  normalized: 'UPDATE accounts SET balance = $1 WHERE id = $2',
  fingerprint: 'ab'.repeat(8),
  digest: 'd'.repeat(64),
  parameters: ['1000000', '42'],
  operations: ['write'],
  objects: [{ name: 'accounts', kind: 'table', access: 'write' }],
  hazards: [],
  rule: 'prod-writes',
  why: 'writes on prod need review',
  reason: 'INC-1234',
  approvers: { groups: ['dba'], subjects: [] },
};

describe('webhook notifier', () => {
  it('posts the event with headers and a signature a receiver can verify', async () => {
    const rx = await receiver();
    const secret = 'whsec-test-0123456789';
    const now = Date.parse('2024-05-01T12:00:01.500Z');
    const notifiers = createNotifiers([{ kind: 'webhook', url: rx.url, secret }], { logger: logger(), now: () => now });
    notifiers.notify('approval.requested', request);
    await rx.waitFor(1);
    const got = rx.received[0]!;
    expect(got.method).toBe('POST');
    expect(got.headers['content-type']).toBe('application/json');
    expect(got.headers['x-sluice-event']).toBe('approval.requested');
    expect(got.headers['x-sluice-timestamp']).toBe(String(Math.floor(now / 1000)));
    const signature = got.headers['x-sluice-signature'];
    expect(signature).toMatch(/^sha256=[0-9a-f]{64}$/);

    // What a receiver does: recompute over "<timestamp>.<raw body>" with the shared secret.
    const timestamp = got.headers['x-sluice-timestamp'] as string;
    expect(signature).toBe(webhookSignature(secret, timestamp, got.body));
    const headers = { timestamp, signature: signature as string };
    expect(verifyWebhookSignature(secret, headers, got.body, { now })).toBe(true);
    expect(verifyWebhookSignature('another-secret', headers, got.body, { now })).toBe(false);
    expect(verifyWebhookSignature(secret, headers, got.body.replace('alice', 'mallo'), { now })).toBe(false);
    // A replay long after it was sent is refused.
    expect(verifyWebhookSignature(secret, headers, got.body, { now: now + 10 * 60_000 })).toBe(false);

    const payload = JSON.parse(got.body) as WebhookPayload;
    expect(payload.event).toBe('approval.requested');
    expect(payload.sentAt).toBe(new Date(now).toISOString());
    expect(payload.request).toMatchObject({ id: 'r-7k3p9q', requester: { subject: 'alice' }, parameterCount: 2 });
    expect(payload.request).not.toHaveProperty('parameters');
    expect(got.body).not.toContain('1000000');
    await notifiers.idle();
    notifiers.close();
  });

  it('sends no signature without a secret', async () => {
    const rx = await receiver();
    const notifiers = createNotifiers([{ kind: 'webhook', url: rx.url }], { logger: logger() });
    notifiers.notify('approval.expired', { ...request, status: 'expired' });
    await rx.waitFor(1);
    expect(rx.received[0]!.headers['x-sluice-signature']).toBeUndefined();
    expect(rx.received[0]!.headers['x-sluice-event']).toBe('approval.expired');
    notifiers.close();
  });

  it('retries twice on 5xx, then gives up with a warning that does not reveal the URL path', async () => {
    const rx = await receiver([503, 502, 500]);
    const log = logger();
    const notifiers = createNotifiers([{ kind: 'webhook', url: `${rx.url}/T0SECRET`, secret: 'shh-secret' }], {
      logger: log,
      retryDelayMs: 5,
    });
    notifiers.notify('approval.approved', request);
    await notifiers.idle();
    expect(rx.received).toHaveLength(3);
    expect(log.warnings).toHaveLength(1);
    const logged = JSON.stringify(log.warnings);
    expect(logged).toContain('HTTP 500');
    expect(logged).not.toContain('T0SECRET');
    expect(logged).not.toContain('shh-secret');
    notifiers.close();
  });

  it('succeeds on a retry after a 5xx and does not retry a 4xx', async () => {
    const rx = await receiver([503]);
    const log = logger();
    const notifiers = createNotifiers([{ kind: 'webhook', url: rx.url }], { logger: log, retryDelayMs: 5 });
    notifiers.notify('approval.approved', request);
    await notifiers.idle();
    expect(rx.received).toHaveLength(2);
    expect(log.warnings).toHaveLength(0);

    const refusing = await receiver([404, 404, 404]);
    const refused = createNotifiers([{ kind: 'webhook', url: refusing.url }], { logger: log, retryDelayMs: 5 });
    refused.notify('approval.approved', request);
    await refused.idle();
    expect(refusing.received).toHaveLength(1);
    expect(log.warnings).toHaveLength(1);
    notifiers.close();
    refused.close();
  });

  it('returns at once and only logs when nothing listens', async () => {
    const port = await closedPort();
    const log = logger();
    const notifiers = createNotifiers([{ kind: 'webhook', url: `http://127.0.0.1:${port}/x` }], { logger: log, retryDelayMs: 5 });
    const started = performance.now();
    notifiers.notify('approval.requested', request);
    expect(performance.now() - started).toBeLessThan(20);
    await notifiers.idle();
    expect(log.warnings).toHaveLength(1);
    expect(log.warnings[0]!.msg).toMatch(/could not be delivered/);
    expect(log.warnings[0]!.obj).toMatchObject({ origin: `http://127.0.0.1:${port}`, requestId: 'r-7k3p9q' });
  });

  it('close() aborts waiting retries', async () => {
    const port = await closedPort();
    const log = logger();
    const notifiers = createNotifiers([{ kind: 'webhook', url: `http://127.0.0.1:${port}/x` }], { logger: log, retryDelayMs: 60_000 });
    notifiers.notify('approval.requested', request);
    await new Promise((r) => setTimeout(r, 50));
    notifiers.close();
    await notifiers.idle();
    notifiers.notify('approval.requested', request);
    await notifiers.idle();
  });

  it('refuses bad configurations', () => {
    expect(() => validateNotifierConfig({ kind: 'webhook', url: 'not a url' })).toThrow(/not a valid URL/);
    expect(() => validateNotifierConfig({ kind: 'slack', url: 'ftp://example.com/x' })).toThrow(/http or https/);
    expect(() => validateNotifierConfig({ kind: 'webhook', url: 'https://example.com', timeoutMs: 0 })).toThrow(/timeoutMs/);
    expect(() => validateNotifierConfig({ kind: 'webhook', url: 'https://example.com', secret: '' })).toThrow(/secret/);
  });
});

describe('slack notifier', () => {
  it('posts text and blocks with the requester, target, rule, statement and the approve command', async () => {
    const rx = await receiver();
    const notifiers = createNotifiers([{ kind: 'slack', url: rx.url }], { logger: logger() });
    const long = `DELETE FROM t WHERE note = '<!channel> & ${'x'.repeat(3000)}'`;
    notifiers.notify('approval.requested', { ...request, statement: long });
    await rx.waitFor(1);
    const got = rx.received[0]!;
    expect(got.headers['content-type']).toBe('application/json');
    expect(got.headers['x-sluice-signature']).toBeUndefined();
    const message = JSON.parse(got.body) as { text: string; blocks: { type: string; text?: { text: string }; fields?: { text: string }[] }[] };
    expect(message.text).toContain('alice');
    expect(message.text).toContain('sluice approvals approve r-7k3p9q');
    expect(message.blocks[0]).toEqual({ type: 'header', text: { type: 'plain_text', text: 'Approval requested: r-7k3p9q', emoji: false } });
    const fields = message.blocks[1]!.fields!.map((f) => f.text).join('\n');
    expect(fields).toContain('*Requester*\nalice (human)');
    expect(fields).toContain('*Target*\nprod');
    expect(fields).toContain('*Rule*\nprod-writes');
    expect(fields).toContain('*Why*\nwrites on prod need review');
    const code = message.blocks[2]!.text!.text;
    expect(code.startsWith('```\nDELETE FROM t')).toBe(true);
    expect(code.endsWith('```')).toBe(true);
    expect(code.length).toBeLessThan(SLACK_STATEMENT_LIMIT + 200);
    expect(code).toContain('&lt;!channel&gt; &amp;');
    expect(code).not.toContain('<!channel>');
    expect(message.blocks[3]!.text!.text).toContain('`sluice approvals approve r-7k3p9q`');
    notifiers.close();
  });

  it('tells the outcome of a decision', () => {
    const decided: ApprovalRequest = {
      ...request,
      status: 'rejected',
      decidedAt: '2024-05-01T12:01:00.000Z',
      decidedBy: { subject: 'bob', kind: 'human', groups: ['dba'], method: 'oidc' },
      decisionReason: 'not during the freeze',
    };
    const message = buildSlackMessage('approval.rejected', decided);
    expect(message.text).toBe('Rejected: r-7k3p9q, requested by alice (human) on prod — by bob: not during the freeze');
    expect(message.blocks[0]).toMatchObject({ text: { text: 'Rejected: r-7k3p9q' } });
    expect(JSON.stringify(message.blocks)).not.toContain('sluice approvals approve');
  });

  it('keeps a statement with backticks inside its code block', () => {
    const message = buildSlackMessage('approval.requested', { ...request, statement: 'SELECT 1 ```; DROP' });
    const code = (message.blocks[2] as { text: { text: string } }).text.text;
    expect(code.match(/```/g)).toHaveLength(2);
  });
});
