import { describe, expect, it } from 'vitest';
import { MemoryFailureLimiter } from './memory-failure-limiter.js';

function clock(start = 1_000_000) {
  let now = start;
  return {
    now: () => now,
    advance: (seconds: number) => {
      now += seconds * 1000;
    },
  };
}

describe('MemoryFailureLimiter', () => {
  it('locks an address out after maxAttempts failures and lets it back in after the lockout', () => {
    const time = clock();
    const limiter = new MemoryFailureLimiter({ maxAttempts: 3, windowSeconds: 60, lockoutSeconds: 30, now: time.now });
    const ip = '203.0.113.9';
    limiter.recordFailure(ip);
    limiter.recordFailure(ip);
    expect(limiter.check(ip)).toEqual({ allowed: true });
    limiter.recordFailure(ip);
    expect(limiter.check(ip)).toEqual({ allowed: false, retryAfterSeconds: 30 });
    expect(limiter.check('203.0.113.10')).toEqual({ allowed: true });

    time.advance(10.5);
    expect(limiter.check(ip)).toEqual({ allowed: false, retryAfterSeconds: 20 });
    time.advance(19.5);
    expect(limiter.check(ip)).toEqual({ allowed: true });

    // Counting starts afresh after a lockout.
    limiter.recordFailure(ip);
    limiter.recordFailure(ip);
    expect(limiter.check(ip)).toEqual({ allowed: true });
    limiter.recordFailure(ip);
    expect(limiter.check(ip).allowed).toBe(false);
  });

  it('forgets failures older than the window', () => {
    const time = clock();
    const limiter = new MemoryFailureLimiter({ maxAttempts: 3, windowSeconds: 60, lockoutSeconds: 60, now: time.now });
    limiter.recordFailure('a');
    limiter.recordFailure('a');
    time.advance(60);
    limiter.recordFailure('a');
    limiter.recordFailure('a');
    expect(limiter.check('a')).toEqual({ allowed: true });
    limiter.recordFailure('a');
    expect(limiter.check('a').allowed).toBe(false);
  });

  it('clears failures on success, but not a running lockout', () => {
    const time = clock();
    const limiter = new MemoryFailureLimiter({ maxAttempts: 2, windowSeconds: 60, lockoutSeconds: 60, now: time.now });
    limiter.recordFailure('a');
    limiter.recordSuccess('a');
    limiter.recordFailure('a');
    expect(limiter.check('a')).toEqual({ allowed: true });
    limiter.recordFailure('a');
    limiter.recordSuccess('a');
    expect(limiter.check('a').allowed).toBe(false);
  });

  it('keeps a running lockout when more failures arrive', () => {
    const time = clock();
    const limiter = new MemoryFailureLimiter({ maxAttempts: 1, windowSeconds: 60, lockoutSeconds: 60, now: time.now });
    limiter.recordFailure('a');
    time.advance(30);
    limiter.recordFailure('a');
    expect(limiter.check('a')).toEqual({ allowed: false, retryAfterSeconds: 30 });
  });

  it('bounds memory: sweeps stale entries and drops the least recently active at the cap', () => {
    const time = clock();
    const limiter = new MemoryFailureLimiter({
      maxAttempts: 2,
      windowSeconds: 10,
      lockoutSeconds: 10,
      maxTrackedAddresses: 3,
      now: time.now,
    });
    limiter.recordFailure('a');
    limiter.recordFailure('a'); // a locked out
    limiter.recordFailure('b');
    limiter.recordFailure('c');
    expect(limiter.size).toBe(3);
    limiter.recordFailure('d'); // at the cap: nothing is stale, so the least recently active (a) goes
    expect(limiter.size).toBe(3);
    expect(limiter.check('a')).toEqual({ allowed: true });

    time.advance(10);
    limiter.recordFailure('e'); // the periodic sweep removes b, c and d
    expect(limiter.size).toBe(1);

    const big = new MemoryFailureLimiter({ maxAttempts: 5, windowSeconds: 60, lockoutSeconds: 60, maxTrackedAddresses: 1000 });
    for (let i = 0; i < 5000; i += 1) big.recordFailure(`10.0.${i >> 8}.${i & 255}`);
    expect(big.size).toBe(1000);
  });

  it('rejects nonsensical settings', () => {
    expect(() => new MemoryFailureLimiter({ maxAttempts: 0, windowSeconds: 60, lockoutSeconds: 60 })).toThrow(
      'maxAttempts must be a positive number',
    );
    expect(
      () => new MemoryFailureLimiter({ maxAttempts: 1, windowSeconds: 60, lockoutSeconds: 60, maxTrackedAddresses: 0 }),
    ).toThrow('maxTrackedAddresses must be a positive integer');
  });
});
