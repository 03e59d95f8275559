/**
 * TLS towards clients: the global `tls` block is every listener's default, `listenTls.<dialect>`
 * overrides it field by field for one listener. A client CA (`clientCaFile`) turns on mutual
 * TLS: clients must then present a certificate signed by it (unless `requireClientCert: false`).
 */
import { z } from 'zod';

/** Client certificates: the CA(s) they must be signed by, and whether clients must present one. */
const clientCertificateFields = {
  /** PEM file with the CA certificate(s) client certificates must be signed by; turns on mutual TLS. */
  clientCaFile: z.string().min(1).optional(),
  /** Refuse a client without a certificate. Default: true when clientCaFile is set. */
  requireClientCert: z.boolean().optional(),
};

/** The global `tls` block (every listener's default). */
export const tlsSchema = z
  .object({
    certFile: z.string().min(1),
    keyFile: z.string().min(1),
    /** Refuse clients that do not use TLS. */
    require: z.boolean().default(false),
    ...clientCertificateFields,
  })
  .strict();

/** One listener's TLS settings; what is missing is taken from `tls`. */
export const listenerTlsSchema = z
  .object({
    certFile: z.string().min(1).optional(),
    keyFile: z.string().min(1).optional(),
    /** Refuse clients that do not use TLS on this listener. */
    require: z.boolean().optional(),
    ...clientCertificateFields,
  })
  .strict()
  .refine((t) => (t.certFile === undefined) === (t.keyFile === undefined), 'set certFile and keyFile together (or neither, to use those of tls)');

/** `listenTls`: TLS settings per listener, keyed like `listen`. */
export const listenTlsSchema = z
  .object({
    postgres: listenerTlsSchema.optional(),
    mysql: listenerTlsSchema.optional(),
  })
  .strict();

type TlsBlock = z.infer<typeof tlsSchema>;
type ListenerTlsBlock = z.infer<typeof listenerTlsSchema>;

interface TlsConfig {
  readonly listen: Readonly<Record<string, string | undefined>>;
  readonly tls?: TlsBlock | undefined;
  readonly listenTls?: Readonly<Record<string, ListenerTlsBlock | undefined>> | undefined;
}

/** What one listener uses, after the per-listener block is merged over `tls`. */
export interface ListenerTlsSettings {
  readonly certFile: string;
  readonly keyFile: string;
  /** Refuse clients that do not use TLS (always true when a client certificate is required). */
  readonly require: boolean;
  readonly clientCaFile?: string;
  /** Refuse clients without a certificate (only meaningful with clientCaFile). */
  readonly requireClientCert: boolean;
  /** The config keys the certificate and key came from, for error messages. */
  readonly certSource: string;
  /** The config key of the client CA, for error messages. */
  readonly caSource?: string;
}

/** The effective TLS settings of the listener of `dialect`; undefined when it has no certificate. */
export function listenerTlsOf(config: TlsConfig, dialect: string): ListenerTlsSettings | undefined {
  const base = config.tls;
  const own = config.listenTls?.[dialect];
  const ownCert = own?.certFile !== undefined && own.keyFile !== undefined;
  const certFile = ownCert ? own.certFile! : base?.certFile;
  const keyFile = ownCert ? own.keyFile! : base?.keyFile;
  if (certFile === undefined || keyFile === undefined) return undefined;
  const clientCaFile = own?.clientCaFile ?? base?.clientCaFile;
  const requireClientCert = clientCaFile !== undefined && (own?.requireClientCert ?? base?.requireClientCert ?? true);
  return {
    certFile,
    keyFile,
    require: (own?.require ?? base?.require ?? false) || requireClientCert,
    ...(clientCaFile !== undefined ? { clientCaFile } : {}),
    requireClientCert,
    certSource: ownCert ? `listenTls.${dialect}.certFile, listenTls.${dialect}.keyFile` : 'tls.certFile, tls.keyFile',
    ...(clientCaFile !== undefined ? { caSource: own?.clientCaFile !== undefined ? `listenTls.${dialect}.clientCaFile` : 'tls.clientCaFile' } : {}),
  };
}

/** Checks across keys: a per-listener block needs its listener and, for TLS, a certificate. */
export function checkListenTls(config: TlsConfig, ctx: z.core.$RefinementCtx): void {
  if (config.tls?.requireClientCert === true && config.tls.clientCaFile === undefined) {
    ctx.addIssue({ code: 'custom', path: ['tls', 'requireClientCert'], message: 'requireClientCert needs clientCaFile (the CA client certificates must be signed by)' });
  }
  for (const [dialect, own] of Object.entries(config.listenTls ?? {})) {
    if (!own) continue;
    const path = ['listenTls', dialect];
    if (!config.listen[dialect]) {
      ctx.addIssue({ code: 'custom', path, message: `there is no ${dialect} listener (listen.${dialect} is not set): add the listener or remove listenTls.${dialect}` });
      continue;
    }
    const wantsTls = own.require === true || own.clientCaFile !== undefined || own.requireClientCert === true;
    if (wantsTls && own.certFile === undefined && config.tls === undefined) {
      ctx.addIssue({
        code: 'custom',
        path,
        message: `the ${dialect} listener needs a server certificate for TLS: set certFile and keyFile here or in tls`,
      });
    }
    if (own.requireClientCert === true && own.clientCaFile === undefined && config.tls?.clientCaFile === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: [...path, 'requireClientCert'],
        message: 'requireClientCert needs clientCaFile (here or in tls): the CA client certificates must be signed by',
      });
    }
  }
}

/** Resolves the TLS file paths of `config` with `resolve` (relative to the config file). */
export function resolveTlsFiles(config: TlsConfig, resolve: (path: string) => string): void {
  const blocks: (Partial<Record<'certFile' | 'keyFile' | 'clientCaFile', string>> | undefined)[] = [config.tls, ...Object.values(config.listenTls ?? {})];
  for (const block of blocks) {
    if (!block) continue;
    for (const key of ['certFile', 'keyFile', 'clientCaFile'] as const) {
      const value = block[key];
      if (value !== undefined) block[key] = resolve(value);
    }
  }
}
