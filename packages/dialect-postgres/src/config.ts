import { redactUrlPassword } from '@sluice/core';
import { z } from 'zod';

/** Upstream TLS modes, as libpq names them. */
export const upstreamTlsModes = ['disable', 'prefer', 'require', 'verify-ca', 'verify-full'] as const;
export type UpstreamTlsMode = (typeof upstreamTlsModes)[number];

export interface UpstreamEndpoint {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  /** Only the gateway holds it; never sent to a client, logged or audited. */
  readonly password: string | undefined;
  readonly database: string;
}

export interface PostgresTargetOptions {
  readonly upstream: UpstreamEndpoint;
  readonly upstreamTls: {
    readonly mode: UpstreamTlsMode;
    /** PEM file with the CA that signed the server certificate (verify-ca, verify-full). */
    readonly caFile: string | undefined;
    /** Server name to verify (verify-full); defaults to the upstream host. */
    readonly serverName: string | undefined;
  };
  readonly connectTimeoutMs: number;
}

function parseUpstreamUrl(raw: string, ctx: z.RefinementCtx): { endpoint: UpstreamEndpoint; sslmode?: UpstreamTlsMode } | typeof z.NEVER {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    ctx.addIssue({ code: 'custom', message: `expected a URL like postgres://user:password@host:5432/database, got "${redactUrlPassword(raw)}"` });
    return z.NEVER;
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
    ctx.addIssue({ code: 'custom', message: `expected a postgres:// URL, got the scheme "${url.protocol}"` });
    return z.NEVER;
  }
  const database = decodeURIComponent(url.pathname.replace(/^\//, ''));
  const user = decodeURIComponent(url.username);
  if (!user) {
    ctx.addIssue({ code: 'custom', message: 'the upstream URL must name the database user (postgres://USER@host/db)' });
    return z.NEVER;
  }
  const sslmode = url.searchParams.get('sslmode');
  if (sslmode !== null && !(upstreamTlsModes as readonly string[]).includes(sslmode)) {
    ctx.addIssue({ code: 'custom', message: `sslmode must be one of ${upstreamTlsModes.join(', ')}, got "${sslmode}"` });
    return z.NEVER;
  }
  return {
    endpoint: {
      host: url.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1',
      port: url.port ? Number(url.port) : 5432,
      user,
      password: url.password ? decodeURIComponent(url.password) : undefined,
      database: database || user,
    },
    ...(sslmode ? { sslmode: sslmode as UpstreamTlsMode } : {}),
  };
}


export const postgresTargetOptions = z
  .object({
    /** postgres://user:password@host:port/database[?sslmode=...]; the password may come from ${ENV}. */
    upstream: z.string(),
    upstreamTls: z
      .object({
        mode: z.enum(upstreamTlsModes).optional(),
        caFile: z.string().optional(),
        serverName: z.string().optional(),
      })
      .strict()
      .optional(),
    connectTimeoutMs: z.number().int().positive().default(10_000),
  })
  .strict()
  .transform((raw, ctx): PostgresTargetOptions => {
    const parsed = parseUpstreamUrl(raw.upstream, ctx);
    if (parsed === z.NEVER) return z.NEVER;
    return {
      upstream: parsed.endpoint,
      upstreamTls: {
        mode: raw.upstreamTls?.mode ?? parsed.sslmode ?? 'disable',
        caFile: raw.upstreamTls?.caFile,
        serverName: raw.upstreamTls?.serverName,
      },
      connectTimeoutMs: raw.connectTimeoutMs,
    };
  });
