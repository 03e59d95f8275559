import { request as httpRequest } from 'node:http';
import { MemoryFailureLimiter, type ApprovalRequest } from '@sluice/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, IDENTITIES, reviewInput, startAdminFixture, TOKENS, type AdminFixture } from './admin-fixtures.js';

describe('admin API (real approvals service, real audit store, real tokens)', () => {
  let fx: AdminFixture;
  const call = (method: string, path: string, options: Parameters<typeof api>[3] = {}) => api(fx.url, method, path, options);

  beforeAll(async () => {
    fx = await startAdminFixture();
  });
  afterAll(async () => {
    await fx.close();
  });

  it('answers /v1/health without authentication', async () => {
    const r = await call('GET', '/v1/health');
    expect(r.status).toBe(200);
    expect(r.json).toEqual({ ok: true });
    expect(r.headers.get('content-type')).toMatch(/^application\/json/);
    expect((await call('POST', '/v1/health')).status).toBe(405);
  });

  it('refuses a missing or bad credential with 401 and WWW-Authenticate: Bearer, echoing no secret', async () => {
    const none = await call('GET', '/v1/approvals');
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect(none.json.error.code).toBe('unauthenticated');
    expect(none.json.error.message).toMatch(/Authorization: Bearer <token>/);

    const secret = 'not-a-real-token-abcdefgh';
    const bad = await call('GET', '/v1/approvals', { token: { raw: secret } });
    expect(bad.status).toBe(401);
    expect(bad.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect(bad.json).toEqual({ error: { code: 'unauthenticated', message: 'authentication failed: unknown token' } });
    expect(bad.text).not.toContain(secret);

    const basic = await fetch(`${fx.url}/v1/approvals`, { headers: { authorization: `Basic ${Buffer.from('a:b').toString('base64')}` } });
    expect(basic.status).toBe(401);
    expect(((await basic.json()) as { error: { message: string } }).error.message).toMatch(/must be "Bearer <token>"/);
  });

  it('shows each identity what it may see: approvers everything, others their own requests', async () => {
    const mine = await fx.approvals.request(reviewInput());
    const bobs = await fx.approvals.request(reviewInput({ requester: IDENTITIES.bob, statement: 'TRUNCATE audit_scratch' }));
    const id = mine.request.id;

    const asBob = await call('GET', '/v1/approvals', { token: 'bob' });
    expect(asBob.status).toBe(200);
    const bobIds = (asBob.json.approvals as ApprovalRequest[]).map((r) => r.id);
    expect(bobIds).toEqual(expect.arrayContaining([id, bobs.request.id]));

    const asAlice = await call('GET', '/v1/approvals', { token: 'alice' });
    const aliceList = asAlice.json.approvals as ApprovalRequest[];
    expect(aliceList.map((r) => r.id)).toContain(id);
    expect(aliceList.every((r) => r.requester.subject === 'alice@example.com')).toBe(true);

    const asDave = await call('GET', '/v1/approvals?status=all', { token: 'dave' });
    expect(asDave.json.approvals).toEqual([]);

    const one = await call('GET', `/v1/approvals/${id}`, { token: 'alice' });
    expect(one.status).toBe(200);
    expect(one.json.approval).toMatchObject({
      id,
      status: 'pending',
      statement: `DELETE FROM public.orders\n WHERE id = $1 AND note = 'x'`,
      parameters: ['42'],
      requester: { subject: 'alice@example.com' },
    });
    expect((await call('GET', `/v1/approvals/${id}`, { token: 'carol' })).status).toBe(200);
    const hidden = await call('GET', `/v1/approvals/${id}`, { token: 'dave' });
    expect(hidden.status).toBe(404);
    expect(hidden.json.error.code).toBe('not-found');

    const filtered = await call('GET', '/v1/approvals?target=elsewhere', { token: 'bob' });
    expect(filtered.json.approvals).toEqual([]);
    const badStatus = await call('GET', '/v1/approvals?status=pending,done', { token: 'bob' });
    expect(badStatus.status).toBe(400);
    expect(badStatus.json.error.message).toMatch(/unknown status "done"/);
    await fx.approvals.reject(bobs.request.id, IDENTITIES.carol, { reason: 'cleanup' });
  });

  it('approves a request while its ticket waits: the ticket settles approved', async () => {
    const ticket = await fx.approvals.request(reviewInput());
    const r = await call('POST', `/v1/approvals/${ticket.request.id}/approve`, { token: 'bob', body: { reason: 'looks right' } });
    expect(r.status).toBe(200);
    expect(r.json.approval).toMatchObject({
      id: ticket.request.id,
      status: 'approved',
      decidedBy: { subject: 'bob@example.com' },
      decisionReason: 'looks right',
    });
    const settled = await ticket.settled;
    expect(settled.status).toBe('approved');
    expect(settled.request.decidedBy?.subject).toBe('bob@example.com');

    const again = await call('POST', `/v1/approvals/${ticket.request.id}/approve`, { token: 'carol' });
    expect(again.status).toBe(409);
    expect(again.json.error.code).toBe('not-pending');
    expect(again.json.error.message).toMatch(/already approved by bob@example.com/);
  });

  it('rejects a request: the ticket settles rejected with the reason', async () => {
    const ticket = await fx.approvals.request(reviewInput());
    const r = await call('POST', `/v1/approvals/${ticket.request.id}/reject`, { token: 'carol', body: { reason: 'not during business hours' } });
    expect(r.status).toBe(200);
    expect(r.json.approval).toMatchObject({ status: 'rejected', decisionReason: 'not during business hours' });
    expect((await ticket.settled).status).toBe('rejected');
  });

  it('refuses self-approval and non-approvers with 403, unknown ids with 404', async () => {
    const bobs = await fx.approvals.request(reviewInput({ requester: IDENTITIES.bob }));
    const self = await call('POST', `/v1/approvals/${bobs.request.id}/approve`, { token: 'bob' });
    expect(self.status).toBe(403);
    expect(self.json.error.code).toBe('self-approval');
    expect(self.json.error.message).toMatch(/another approver must decide it/);

    const alices = await fx.approvals.request(reviewInput());
    const outsider = await call('POST', `/v1/approvals/${alices.request.id}/approve`, { token: 'dave' });
    expect(outsider.status).toBe(403);
    expect(outsider.json.error.code).toBe('not-an-approver');
    expect(outsider.json.error.message).toMatch(/dave@example.com may not decide/);
    const own = await call('POST', `/v1/approvals/${alices.request.id}/reject`, { token: 'alice' });
    expect(own.status).toBe(403);

    const unknown = await call('POST', '/v1/approvals/r-zzzzzz/approve', { token: 'bob' });
    expect(unknown.status).toBe(404);
    expect(unknown.json.error).toEqual({
      code: 'not-found',
      message: 'there is no review request r-zzzzzz; list them with: sluice approvals list --all',
    });
    expect((await call('GET', '/v1/approvals/r-zzzzzz', { token: 'bob' })).status).toBe(404);
    expect(fx.approvals.get(alices.request.id)?.status).toBe('pending');
    expect(fx.approvals.get(bobs.request.id)?.status).toBe('pending');
  });

  it('approves with a grant for the requester when grantMinutes is given', async () => {
    const ticket = await fx.approvals.request(reviewInput());
    const r = await call('POST', `/v1/approvals/${ticket.request.id}/approve`, { token: 'bob', body: { grantMinutes: 90 } });
    expect(r.status).toBe(200);
    expect(r.json.approval.grantId).toMatch(/^g-/);
    const grants = fx.approvals.activeGrants('alice@example.com', 'app');
    expect(grants.map((g) => g.id)).toContain(r.json.approval.grantId);
  });

  it('refuses bad bodies with 400 naming the field, and large ones with 413', async () => {
    const ticket = await fx.approvals.request(reviewInput());
    const path = `/v1/approvals/${ticket.request.id}/approve`;
    const malformed = await call('POST', path, { token: 'bob', rawBody: '{"reason": "ok",' });
    expect(malformed.status).toBe(400);
    expect(malformed.json.error.code).toBe('invalid');
    expect(malformed.json.error.message).toMatch(/not valid JSON/);

    const zero = await call('POST', path, { token: 'bob', body: { grantMinutes: 0 } });
    expect(zero.status).toBe(400);
    expect(zero.json.error.message).toMatch(/^invalid request body: grantMinutes: /);
    const typo = await call('POST', path, { token: 'bob', body: { reasn: 'x' } });
    expect(typo.json.error.message).toBe('invalid request body: unknown field "reasn"');
    const notObject = await call('POST', path, { token: 'bob', body: ['x'] });
    expect(notObject.status).toBe(400);

    const large = await call('POST', path, { token: 'bob', body: { reason: 'x'.repeat(70 * 1024) } });
    expect(large.status).toBe(413);
    expect(large.json.error.code).toBe('too-large');
    const huge = await call('POST', path, { token: 'bob', rawBody: 'x'.repeat(8 * 1024 * 1024) });
    expect(huge.status).toBe(413);

    // A body sent without Content-Length (chunked) is cut off at the limit too.
    const chunked = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(`${fx.url}${path}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TOKENS.bob}`, 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
      });
      req.on('response', (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      for (let i = 0; i < 80; i++) req.write('x'.repeat(1024));
      req.end();
    });
    expect(chunked).toBe(413);

    expect(fx.approvals.get(ticket.request.id)?.status).toBe('pending');
    const fine = await call('POST', path, { token: 'bob', rawBody: '' });
    expect(fine.status).toBe(200);
  });

  it('answers 404 for unknown routes and 405 with Allow for wrong methods', async () => {
    const missing = await call('GET', '/v1/nothing', { token: 'bob' });
    expect(missing.status).toBe(404);
    expect(missing.json.error.code).toBe('not-found');
    const wrong = await call('DELETE', '/v1/approvals', { token: 'bob' });
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get('allow')).toBe('GET');
    expect(wrong.json.error.code).toBe('method-not-allowed');
    expect((await call('GET', '/v1/approvals/x/approve', { token: 'bob' })).status).toBe(405);
  });

  it('creates, lists and revokes grants; only approvers may', async () => {
    const created = await call('POST', '/v1/grants', {
      token: 'bob',
      body: { subject: 'alice@example.com', targets: ['app'], operations: ['write', 'ddl'], objects: ['public.*'], guardrails: ['alter-drop'], minutes: 120, reason: 'migration' },
    });
    expect(created.status).toBe(201);
    const grant = created.json.grant;
    expect(grant).toMatchObject({
      subject: 'alice@example.com',
      targets: ['app'],
      operations: ['write', 'ddl'],
      objects: ['public.*'],
      guardrails: ['alter-drop'],
      grantedBy: { subject: 'bob@example.com' },
      reason: 'migration',
    });
    expect(Date.parse(grant.expiresAt) - Date.parse(grant.createdAt)).toBe(120 * 60_000);

    expect(((await call('GET', '/v1/grants', { token: 'carol' })).json.grants as { id: string }[]).map((g) => g.id)).toContain(grant.id);
    expect(((await call('GET', '/v1/grants', { token: 'alice' })).json.grants as { id: string }[]).map((g) => g.id)).toContain(grant.id);
    expect((await call('GET', '/v1/grants', { token: 'dave' })).json.grants).toEqual([]);

    const byOutsider = await call('POST', '/v1/grants', { token: 'dave', body: { subject: 'alice@example.com', operations: ['write'], minutes: 5 } });
    expect(byOutsider.status).toBe(403);
    expect(byOutsider.json.error.code).toBe('not-an-approver');
    const toSelf = await call('POST', '/v1/grants', { token: 'bob', body: { subject: 'bob@example.com', operations: ['write'], minutes: 5 } });
    expect(toSelf.status).toBe(403);
    expect(toSelf.json.error.code).toBe('self-approval');
    const badOp = await call('POST', '/v1/grants', { token: 'bob', body: { subject: 'alice@example.com', operations: ['wrte'], minutes: 5 } });
    expect(badOp.status).toBe(400);
    expect(badOp.json.error.message).toMatch(/operations\[0\]: unknown operation class "wrte"/);
    const noMinutes = await call('POST', '/v1/grants', { token: 'bob', body: { subject: 'alice@example.com', operations: ['write'] } });
    expect(noMinutes.json.error.message).toMatch(/minutes/);
    const tooLong = await call('POST', '/v1/grants', { token: 'bob', body: { subject: 'alice@example.com', operations: ['write'], minutes: 60 * 24 * 31 } });
    expect(tooLong.status).toBe(400);
    // A grant for a target that does not exist could never apply: refused, naming the targets.
    const noTarget = await call('POST', '/v1/grants', { token: 'bob', body: { subject: 'alice@example.com', targets: ['prod'], operations: ['write'], minutes: 5 } });
    expect(noTarget.status).toBe(400);
    expect(noTarget.json.error.message).toMatch(/no target named "prod" is configured \(targets: app, reporting\)/);

    expect((await call('DELETE', `/v1/grants/${grant.id}`, { token: 'dave' })).status).toBe(403);
    const revoked = await call('DELETE', `/v1/grants/${grant.id}`, { token: 'carol' });
    expect(revoked.status).toBe(200);
    expect(revoked.json.grant).toMatchObject({ id: grant.id, revokedBy: { subject: 'carol@example.com' } });
    expect(fx.approvals.activeGrants('alice@example.com', 'app').map((g) => g.id)).not.toContain(grant.id);
    expect((await call('DELETE', `/v1/grants/${grant.id}`, { token: 'carol' })).status).toBe(409);
    expect((await call('DELETE', '/v1/grants/g-zzzzzz', { token: 'carol' })).status).toBe(404);
    expect(((await call('GET', '/v1/grants', { token: 'bob' })).json.grants as { id: string }[]).map((g) => g.id)).not.toContain(grant.id);
    expect(((await call('GET', '/v1/grants?all=true', { token: 'bob' })).json.grants as { id: string }[]).map((g) => g.id)).toContain(grant.id);
  });
});

describe('admin API failure limits', () => {
  it('locks out an address after repeated bad credentials (429 with Retry-After), even for a good token', async () => {
    const fx = await startAdminFixture({ limiter: new MemoryFailureLimiter({ maxAttempts: 3, windowSeconds: 60, lockoutSeconds: 30 }) });
    try {
      expect((await api(fx.url, 'GET', '/v1/approvals', { token: 'bob' })).status).toBe(200);
      // A request without any credential is not a guess and does not count.
      for (let i = 0; i < 5; i++) expect((await api(fx.url, 'GET', '/v1/approvals')).status).toBe(401);
      for (let i = 0; i < 3; i++) expect((await api(fx.url, 'GET', '/v1/approvals', { token: { raw: `guess-${i}-abcdefgh` } })).status).toBe(401);
      const locked = await api(fx.url, 'GET', '/v1/approvals', { token: 'bob' });
      expect(locked.status).toBe(429);
      expect(Number(locked.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(locked.json.error).toMatchObject({ code: 'rate-limited' });
      expect(locked.json.error.message).toMatch(/too many failed authentication attempts from this address; try again in \d+ s/);
      expect((await api(fx.url, 'GET', '/v1/health')).status).toBe(200);
    } finally {
      await fx.close();
    }
  });

  it('survives a handler error with a generic 500', async () => {
    const fx = await startAdminFixture();
    try {
      const original = fx.approvals.list.bind(fx.approvals);
      (fx.approvals as { list: unknown }).list = () => {
        throw new Error('disk on fire at /secret/path');
      };
      const r = await api(fx.url, 'GET', '/v1/approvals', { token: 'bob' });
      expect(r.status).toBe(500);
      expect(r.json.error.code).toBe('internal');
      expect(r.text).not.toContain('/secret/path');
      (fx.approvals as { list: unknown }).list = original;
      expect((await api(fx.url, 'GET', '/v1/approvals', { token: 'bob' })).status).toBe(200);
    } finally {
      await fx.close();
    }
  });
});

describe('startAdminServer', () => {
  it('refuses an address it cannot listen on, naming it', async () => {
    const fx = await startAdminFixture();
    try {
      const { startAdminServer } = await import('../src/admin/server.js');
      const { pino } = await import('pino');
      await expect(
        startAdminServer({
          address: `127.0.0.1:${fx.server.port}`,
          approvals: fx.approvals,
          authenticator: { identify: () => Promise.reject(new Error('unused')) },
          failureLimiter: new MemoryFailureLimiter({ maxAttempts: 3, windowSeconds: 60, lockoutSeconds: 30 }),
          logger: pino({ level: 'silent' }),
        }),
      ).rejects.toThrow(`cannot listen on 127.0.0.1:${fx.server.port} (admin): EADDRINUSE`);
    } finally {
      await fx.close();
    }
  });
});
