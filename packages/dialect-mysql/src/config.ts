import { readFileSync } from 'node:fs';
import { readUpstreamUrl } from '@sluice/core';
import { z } from 'zod';
import { upstreamTlsModes, type MysqlUpstreamOptions, type UpstreamTlsMode } from './protocol/upstream.js';

/**
 * A MySQL / MariaDB target: the upstream the gateway logs in to with its own account, and how.
 * Clients never see these credentials.
 */
export interface MysqlTargetOptions {
  /** Connection options for the upstream (the gateway's account, TLS, timeouts). */
  readonly upstream: MysqlUpstreamOptions & { readonly database: string | undefined };
}

/** ssl-mode values as MySQL's clients name them, mapped to the gateway's TLS modes. */
const SSL_MODES: Record<string, UpstreamTlsMode> = {
  disabled: 'disable',
  preferred: 'prefer',
  required: 'require',
  verify_ca: 'verify-ca',
  verify_identity: 'verify-full',
};

function tlsModeOf(raw: string | null, ctx: z.RefinementCtx): UpstreamTlsMode | undefined | typeof z.NEVER {
  if (raw === null) return undefined;
  const v = raw.toLowerCase();
  if ((upstreamTlsModes as readonly string[]).includes(v)) return v as UpstreamTlsMode;
  const mapped = SSL_MODES[v];
  if (mapped) return mapped;
  ctx.addIssue({
    code: 'custom',
    message: `ssl-mode must be one of DISABLED, PREFERRED, REQUIRED, VERIFY_CA, VERIFY_IDENTITY (or ${upstreamTlsModes.join(', ')}), got "${raw}"`,
  });
  return z.NEVER;
}

export const mysqlTargetOptions = z
  .object({
    /** mysql://user:password@host:port/database[?ssl-mode=REQUIRED]; the password may come from ${ENV}. */
    upstream: z.string(),
    upstreamTls: z
      .object({
        mode: z.enum(upstreamTlsModes).optional(),
        /** PEM file with the CA that signed the server certificate (verify-ca, verify-full). */
        caFile: z.string().optional(),
        /** Server name to verify (verify-full); defaults to the upstream host. */
        serverName: z.string().optional(),
      })
      .strict()
      .optional(),
    /** PEM file with the server's RSA public key, for caching_sha2_password without TLS. */
    serverPublicKeyFile: z.string().optional(),
    /**
     * Without TLS and without serverPublicKeyFile, whether the server may be asked for its RSA
     * key (caching_sha2_password). Default: only toward a loopback address.
     */
    allowPublicKeyRetrieval: z.boolean().optional(),
    connectTimeoutMs: z.number().int().positive().default(10_000),
  })
  .strict()
  .transform((raw, ctx): MysqlTargetOptions => {
    const url = readUpstreamUrl(raw.upstream, ctx, {
      schemes: ['mysql:', 'mariadb:'],
      defaultPort: 3306,
      example: 'mysql://user:password@host:3306/database',
    });
    if (url === z.NEVER) return z.NEVER;
    const sslMode = tlsModeOf(url.params.get('ssl-mode') ?? url.params.get('sslmode'), ctx);
    if (sslMode === z.NEVER) return z.NEVER;
    let serverPublicKey: Buffer | undefined;
    if (raw.serverPublicKeyFile !== undefined) {
      // Read when the config is loaded, so that a missing file is a config error.
      try {
        serverPublicKey = readFileSync(raw.serverPublicKeyFile);
      } catch (err) {
        ctx.addIssue({ code: 'custom', path: ['serverPublicKeyFile'], message: `cannot read ${raw.serverPublicKeyFile}: ${(err as Error).message}` });
        return z.NEVER;
      }
    }
    return {
      upstream: {
        host: url.host,
        port: url.port,
        user: url.user,
        password: url.password,
        database: url.database || undefined,
        tls: {
          mode: raw.upstreamTls?.mode ?? sslMode ?? 'disable',
          caFile: raw.upstreamTls?.caFile,
          serverName: raw.upstreamTls?.serverName,
        },
        connectTimeoutMs: raw.connectTimeoutMs,
        ...(serverPublicKey ? { serverPublicKey } : {}),
        ...(raw.allowPublicKeyRetrieval !== undefined ? { allowPublicKeyRetrieval: raw.allowPublicKeyRetrieval } : {}),
      },
    };
  });
