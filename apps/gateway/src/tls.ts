import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import type { ClientCertificatePolicy } from '@sluice/core';
import { listenerTlsOf } from './config/tls.js';
import type { GatewayConfig } from './config/schema.js';

/** What one listener gets: its TLS context, whether TLS is required, and its client certificate policy. */
export interface ListenerTls {
  readonly context: tls.SecureContext | undefined;
  readonly requireTls: boolean;
  readonly clientCertificates: ClientCertificatePolicy | undefined;
}

function read(file: string, what: string, keys: string): Buffer {
  try {
    return readFileSync(file);
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code ?? (cause as Error).message;
    throw new Error(`cannot read the ${what} ${file} (${keys}): ${code}`, { cause });
  }
}

/**
 * Loads the TLS settings of the listener of `dialect` (the global tls block merged with
 * listenTls.<dialect>). Throws an error naming the config keys when a file cannot be read or
 * does not hold what it should.
 */
export function loadListenerTls(config: GatewayConfig, dialect: string): ListenerTls {
  const settings = listenerTlsOf(config, dialect);
  if (!settings) return { context: undefined, requireTls: false, clientCertificates: undefined };
  const cert = read(settings.certFile, 'TLS certificate', settings.certSource);
  const key = read(settings.keyFile, 'TLS key', settings.certSource);
  const ca = settings.clientCaFile !== undefined ? read(settings.clientCaFile, 'client CA file', settings.caSource!) : undefined;
  if (ca !== undefined && !/-----BEGIN CERTIFICATE-----/.test(ca.toString('latin1'))) {
    throw new Error(`the client CA file ${settings.clientCaFile} (${settings.caSource}) holds no PEM certificate; give the CA certificate(s) client certificates are signed by`);
  }
  let context: tls.SecureContext;
  try {
    context = tls.createSecureContext({ cert, key, ...(ca !== undefined ? { ca } : {}) });
  } catch (cause) {
    // The message of OpenSSL names the problem (a key that does not match, a bad PEM), never the key itself.
    throw new Error(`cannot load the TLS certificate, key or client CA of the ${dialect} listener (${settings.certSource}${settings.caSource ? `, ${settings.caSource}` : ''}): ${(cause as Error).message}`, { cause });
  }
  return {
    context,
    requireTls: settings.require,
    clientCertificates: ca !== undefined ? { required: settings.requireClientCert } : undefined,
  };
}
