import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import {
  CompositeAuthenticator,
  type DialectListener,
  FileAuditStore,
  Governor,
  MemoryFailureLimiter,
  OidcAuthenticator,
  type Target,
  TokenAuthenticator,
} from '@sluice/core';
import type { Logger } from 'pino';
import { dialects } from './dialects.js';
import type { LoadedConfig } from './config/load.js';

export interface ListeningAddress {
  readonly dialect: string;
  readonly host: string;
  readonly port: number;
}

export interface RunningGateway {
  readonly addresses: readonly ListeningAddress[];
  readonly governor: Governor;
  /** Stops accepting, ends sessions, flushes the audit trail. */
  close(): Promise<void>;
}

function splitHostPort(value: string): { host: string; port: number } {
  const at = value.lastIndexOf(':');
  return { host: value.slice(0, at).replace(/^\[|\]$/g, ''), port: Number(value.slice(at + 1)) };
}

export class StartupError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StartupError';
  }
}

/** Composes core, dialects and listeners from a validated config. */
export async function startGateway(loaded: LoadedConfig, logger: Logger): Promise<RunningGateway> {
  const { config } = loaded;
  let secureContext: tls.SecureContext | undefined;
  if (config.tls) {
    try {
      secureContext = tls.createSecureContext({ cert: readFileSync(config.tls.certFile), key: readFileSync(config.tls.keyFile) });
    } catch (cause) {
      throw new StartupError(`cannot load the TLS certificate or key (tls.certFile, tls.keyFile): ${(cause as Error).message}`, { cause });
    }
  }

  let audit: FileAuditStore;
  try {
    audit = await FileAuditStore.open({ dir: config.audit.dir, groupCommitMs: config.audit.groupCommitMs, logger });
  } catch (cause) {
    throw new StartupError(`cannot open the audit store at ${config.audit.dir} (audit.dir): ${(cause as Error).message}`, { cause });
  }

  const governor = new Governor({
    authenticator: new CompositeAuthenticator({
      tokens: new TokenAuthenticator(config.identities.tokens),
      ...(config.identities.oidc.length > 0 ? { oidc: new OidcAuthenticator(config.identities.oidc, { logger }) } : {}),
    }),
    audit,
    failureLimiter: new MemoryFailureLimiter(config.identities.failedLogins),
    logger,
  });

  const targetsByDialect = new Map<string, Map<string, Target<unknown>>>();
  for (const t of loaded.targets) {
    let m = targetsByDialect.get(t.dialect);
    if (!m) targetsByDialect.set(t.dialect, (m = new Map()));
    m.set(t.name, t);
  }

  const servers: net.Server[] = [];
  const listeners: DialectListener[] = [];
  const addresses: ListeningAddress[] = [];
  try {
    for (const [dialectName, address] of Object.entries(config.listen)) {
      if (!address) continue;
      const dialect = dialects.get(dialectName)!;
      const targets = targetsByDialect.get(dialectName) ?? new Map<string, Target<unknown>>();
      const listener = dialect.createListener({
        governor,
        logger: logger.child({ dialect: dialectName }),
        resolveTarget: (name) => targets.get(name),
        targetNames: () => [...targets.keys()],
        tls: secureContext,
        requireTls: config.tls?.require ?? false,
        limits: config.limits,
      });
      const { host, port } = splitHostPort(address);
      const server = net.createServer({ noDelay: true }, (socket) => listener.accept(socket));
      await new Promise<void>((resolve, reject) => {
        server.once('error', (err: NodeJS.ErrnoException) =>
          reject(new StartupError(`cannot listen on ${address} (listen.${dialectName}): ${err.code ?? err.message}`, { cause: err })),
        );
        server.listen(port, host, () => resolve());
      });
      server.on('error', (err) => logger.error({ err }, 'listener error'));
      const bound = server.address() as net.AddressInfo;
      servers.push(server);
      listeners.push(listener);
      addresses.push({ dialect: dialectName, host, port: bound.port });
    }
  } catch (err) {
    for (const s of servers) s.close();
    await audit.close();
    throw err;
  }

  let closing: Promise<void> | undefined;
  return {
    addresses,
    governor,
    close: () =>
      (closing ??= (async () => {
        for (const s of servers) s.close();
        await Promise.all(listeners.map((l) => l.close()));
        await audit.close();
      })()),
  };
}
