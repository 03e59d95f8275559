import { readUpstreamUrl } from '@sluice/core';
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
  const url = readUpstreamUrl(raw, ctx, { schemes: ['postgres:', 'postgresql:'], defaultPort: 5432, example: 'postgres://user:password@host:5432/database' });
  if (url === z.NEVER) return z.NEVER;
  const sslmode = url.params.get('sslmode');
  if (sslmode !== null && !(upstreamTlsModes as readonly string[]).includes(sslmode)) {
    ctx.addIssue({ code: 'custom', message: `sslmode must be one of ${upstreamTlsModes.join(', ')}, got "${sslmode}"` });
    return z.NEVER;
  }
  return {
    endpoint: { host: url.host, port: url.port, user: url.user, password: url.password, database: url.database || url.user },
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
