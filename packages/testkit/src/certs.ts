import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
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

/** A certificate signed by a TestCertAuthority. */
export interface IssuedCert {
  readonly certFile: string;
  readonly keyFile: string;
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly commonName: string;
}

/** A throwaway certificate authority for mutual TLS tests. */
export interface TestCertAuthority {
  readonly dir: string;
  readonly caFile: string;
  readonly caCert: Buffer;
  /** A server certificate for localhost and 127.0.0.1. */
  issueServer(commonName?: string): IssuedCert;
  /** A client certificate; `expired: true` makes one whose validity ended a day ago. */
  issueClient(commonName: string, options?: { readonly expired?: boolean }): IssuedCert;
}

function openssl(args: string[]): void {
  try {
    execFileSync('openssl', args, { stdio: 'pipe' });
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim();
    throw new Error(`cannot make a test certificate: openssl ${args[0]} failed or openssl is missing (${stderr || (err as Error).message})`);
  }
}

/**
 * A certificate authority (made with the openssl CLI) that issues server and client
 * certificates. Two authorities made by this function do not trust each other: a client
 * certificate from one is "not signed by the configured CA" for a listener trusting the other.
 */
export function makeCertAuthority(name = 'Sluice Test CA'): TestCertAuthority {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-ca-'));
  const caFile = join(dir, 'ca.pem');
  const caKey = join(dir, 'ca-key.pem');
  openssl([
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2',
    '-keyout', caKey, '-out', caFile, '-subj', `/CN=${name}`,
    '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  let serial = 0;
  const issue = (commonName: string, extensions: string, days: number): IssuedCert => {
    const base = join(dir, `${++serial}-${commonName.replace(/[^A-Za-z0-9_.-]/g, '_')}`);
    const keyFile = `${base}-key.pem`;
    const certFile = `${base}.pem`;
    const extFile = `${base}.ext`;
    writeFileSync(extFile, extensions);
    openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', `${base}.csr`, '-subj', `/CN=${commonName}`]);
    openssl([
      'x509', '-req', '-in', `${base}.csr`, '-CA', caFile, '-CAkey', caKey, '-set_serial', String(1000 + serial),
      '-days', String(days), '-extfile', extFile, '-out', certFile,
    ]);
    return { certFile, keyFile, cert: readFileSync(certFile), key: readFileSync(keyFile), commonName };
  };
  return {
    dir,
    caFile,
    caCert: readFileSync(caFile),
    issueServer: (commonName = 'localhost') =>
      issue(commonName, 'basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n', 2),
    // A negative validity puts the end a day before the start: the certificate has expired.
    issueClient: (commonName, options = {}) =>
      issue(commonName, 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n', options.expired ? -1 : 2),
  };
}
