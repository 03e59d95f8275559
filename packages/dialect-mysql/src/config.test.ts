import { describe, expect, it } from 'vitest';
import { mysqlTargetOptions } from './config.js';

const errorOf = (input: unknown): string => {
  const r = mysqlTargetOptions.safeParse(input);
  expect(r.success).toBe(false);
  return r.error!.issues.map((i) => i.message).join('; ');
};

describe('MySQL target options', () => {
  it('reads the upstream URL: user, password, host, port, schema and ssl-mode', () => {
    const o = mysqlTargetOptions.parse({ upstream: 'mysql://app:s%40cret@db.internal:3307/shop?ssl-mode=VERIFY_IDENTITY' });
    expect(o.upstream).toMatchObject({ host: 'db.internal', port: 3307, user: 'app', password: 's@cret', database: 'shop', tls: { mode: 'verify-full' } });
  });

  it('defaults: port 3306, no schema, no TLS; mariadb:// is accepted too', () => {
    const o = mysqlTargetOptions.parse({ upstream: 'mariadb://root@127.0.0.1' });
    expect(o.upstream).toMatchObject({ port: 3306, database: undefined, password: undefined, tls: { mode: 'disable' }, connectTimeoutMs: 10_000 });
  });

  it('upstreamTls.mode wins over the URL', () => {
    const o = mysqlTargetOptions.parse({ upstream: 'mysql://root@h/db?ssl-mode=REQUIRED', upstreamTls: { mode: 'verify-ca', caFile: '/ca.pem' } });
    expect(o.upstream.tls).toEqual({ mode: 'verify-ca', caFile: '/ca.pem', serverName: undefined });
  });

  it('says what is wrong, without repeating a password', () => {
    expect(errorOf({ upstream: 'not a url :pw' })).toContain('expected a URL like mysql://');
    expect(errorOf({ upstream: 'postgres://u:pw@h/db' })).toBe('expected a mysql:// URL, got the scheme "postgres:"');
    expect(errorOf({ upstream: 'mysql://h/db' })).toContain('must name the database user');
    expect(errorOf({ upstream: 'mysql://u@h/db?ssl-mode=SOMETIMES' })).toContain('ssl-mode must be one of');
    expect(errorOf({ upstream: 'mysql://u@h/db', serverPublicKeyFile: '/nonexistent/key.pem' })).toContain('cannot read /nonexistent/key.pem');
    expect(errorOf({ upstream: 'mysql://u@h/db', extra: 1 })).toMatch(/unrecognized/i);
  });
});
