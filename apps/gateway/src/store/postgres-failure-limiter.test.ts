/**
 * Failed-login lockouts shared by two replicas through the real PostgreSQL at 127.0.0.1:5432
 * (in a schema of this file's own).
 */
import { requireService } from '@sluice/testkit';
import pg from 'pg';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PostgresFailureLimiter } from './postgres-failure-limiter.js';

const URL = 'postgres://postgres@127.0.0.1:5432/test';
const SCHEMA = 'sluice_login_limiter_test';
const logger = pino({ level: 'silent' });
const available = await requireService('PostgreSQL', '127.0.0.1', 5432);

async function sql(text: string): Promise<void> {
  const c = new pg.Client({ connectionString: URL });
  await c.connect();
  try {
    await c.query(text);
  } finally {
    await c.end();
  }
}

async function until(cond: () => boolean, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe.runIf(available)('failed-login lockouts shared through PostgreSQL', () => {
  let a: PostgresFailureLimiter;
  let b: PostgresFailureLimiter;
  beforeAll(async () => {
    await sql(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`);
    const options = { url: URL, logger, schema: SCHEMA, maxAttempts: 4, windowSeconds: 60, lockoutSeconds: 2, pollMs: 100 };
    a = await PostgresFailureLimiter.open(options);
    b = await PostgresFailureLimiter.open(options);
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await sql(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`);
  });

  it('locks an address out on every replica when its failures, spread over them, reach the limit', async () => {
    const address = '203.0.113.7';
    // Two failures on each replica: neither reaches 4 on its own count.
    a.recordFailure(address);
    b.recordFailure(address);
    a.recordFailure(address);
    expect(a.check(address).allowed).toBe(true);
    b.recordFailure(address);
    await until(() => !a.check(address).allowed && !b.check(address).allowed);
    const refused = a.check(address);
    expect(refused).toMatchObject({ allowed: false });
    expect((refused as { retryAfterSeconds: number }).retryAfterSeconds).toBeGreaterThan(0);
    // Another address is not affected.
    expect(a.check('203.0.113.8').allowed).toBe(true);

    // After the lockout a new count starts: one failure does not lock again, four do.
    await until(() => a.check(address).allowed && b.check(address).allowed, 10_000);
    a.recordFailure(address);
    await new Promise((r) => setTimeout(r, 300));
    expect(b.check(address).allowed).toBe(true);
    for (let i = 0; i < 3; i++) b.recordFailure(address);
    await until(() => !a.check(address).allowed);
  });

  it('forgets failures after a successful login', async () => {
    const address = '203.0.113.9';
    for (let i = 0; i < 3; i++) a.recordFailure(address);
    await new Promise((r) => setTimeout(r, 200));
    a.recordSuccess(address);
    await new Promise((r) => setTimeout(r, 200));
    b.recordFailure(address);
    await new Promise((r) => setTimeout(r, 300));
    expect(a.check(address).allowed).toBe(true);
    expect(b.check(address).allowed).toBe(true);
  });
});
