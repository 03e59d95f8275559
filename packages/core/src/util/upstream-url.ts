import { z } from 'zod';
import { redactUrlPassword } from '../errors.js';

/** The parts of a `scheme://user[:password]@host[:port][/database][?params]` upstream URL. */
export interface UpstreamUrl {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  /** Only the gateway holds it; never sent to a client, logged or audited. */
  readonly password: string | undefined;
  /** Empty when the URL names none. */
  readonly database: string;
  readonly params: URLSearchParams;
}

/**
 * Reads a target's upstream URL inside a zod transform: the errors name what is expected, with
 * the password of the given URL never repeated. `schemes` are the accepted protocols
 * (`postgres:`), `example` what a good URL looks like.
 */
export function readUpstreamUrl(
  raw: string,
  ctx: z.RefinementCtx,
  expected: { readonly schemes: readonly string[]; readonly defaultPort: number; readonly example: string },
): UpstreamUrl | typeof z.NEVER {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    ctx.addIssue({ code: 'custom', message: `expected a URL like ${expected.example}, got "${redactUrlPassword(raw)}"` });
    return z.NEVER;
  }
  const scheme = expected.schemes[0]!.replace(/:$/, '');
  if (!expected.schemes.includes(url.protocol)) {
    ctx.addIssue({ code: 'custom', message: `expected a ${scheme}:// URL, got the scheme "${url.protocol}"` });
    return z.NEVER;
  }
  const user = decodeURIComponent(url.username);
  if (!user) {
    ctx.addIssue({ code: 'custom', message: `the upstream URL must name the database user (${scheme}://USER@host/db)` });
    return z.NEVER;
  }
  return {
    host: url.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1',
    port: url.port ? Number(url.port) : expected.defaultPort,
    user,
    password: url.password ? decodeURIComponent(url.password) : undefined,
    database: decodeURIComponent(url.pathname.replace(/^\//, '')),
    params: url.searchParams,
  };
}
