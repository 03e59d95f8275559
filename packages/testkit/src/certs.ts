import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface SelfSignedCert {
  readonly certFile: string;
  readonly keyFile: string;
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly dir: string;
}

/** A self-signed certificate for `commonName` (and 127.0.0.1, localhost), made with the openssl CLI. */
export function makeSelfSignedCert(commonName = 'localhost'): SelfSignedCert {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-cert-'));
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  try {
    execFileSync(
      'openssl',
      [
        'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2',
        '-keyout', keyFile, '-out', certFile,
        '-subj', `/CN=${commonName}`,
        '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
      ],
      { stdio: 'pipe' },
    );
  } catch (err) {
    throw new Error(`cannot make a test certificate: the openssl command failed or is missing (${(err as Error).message})`);
  }
  return { certFile, keyFile, cert: readFileSync(certFile), key: readFileSync(keyFile), dir };
}
