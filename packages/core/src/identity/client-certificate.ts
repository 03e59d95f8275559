/**
 * Mutual TLS: the checks a dialect runs on a client's certificate before it lets the client
 * log in. The TLS upgrade asks for the certificate without ending the handshake when it is
 * missing or does not verify, so that the refusal can be sent as the dialect's own error (over
 * the encrypted connection) and audited with a reason naming the problem. The certificate is
 * an additional factor: the client still authenticates with its token.
 */
import type { PeerCertificate, TLSSocket } from 'node:tls';

/** What a listener asks of client certificates (set when a client CA is configured). */
export interface ClientCertificatePolicy {
  /** Refuse a client that presents no certificate. A certificate that does not verify is always refused. */
  readonly required: boolean;
}

/** A verified client certificate, as recorded on the session's connect audit record. */
export interface ClientCertificateInfo {
  /** The subject's common name (CN), or the whole subject when it has none. */
  readonly subject: string;
  /** SHA-256 fingerprint, colon-separated hex as OpenSSL prints it. */
  readonly fingerprint256: string;
}

export type ClientCertificateCheck =
  | { readonly ok: true; readonly certificate?: ClientCertificateInfo }
  | { readonly ok: false; readonly reason: string };

/** The TLS socket options a dialect's upgrade uses for `policy`: ask for a certificate, decide later. */
export function clientCertificateSocketOptions(policy: ClientCertificatePolicy | undefined): { requestCert?: boolean; rejectUnauthorized?: boolean } {
  // rejectUnauthorized stays false: checkClientCertificate decides once the handshake is done,
  // so that a refusal reaches the client as a native error instead of a bare TLS alert.
  return policy ? { requestCert: true, rejectUnauthorized: false } : {};
}

const UNTRUSTED = new Set([
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
]);

function subjectOf(cert: PeerCertificate): string {
  const cn = cert.subject?.CN as string | string[] | undefined;
  if (Array.isArray(cn)) return cn.join(', ');
  if (cn) return cn;
  return Object.entries(cert.subject ?? {})
    .map(([k, v]) => `${k}=${String(v)}`)
    .join(', ');
}

/**
 * The outcome of OpenSSL's verification of the client's chain against the CAs of the socket's
 * context (done during the handshake): undefined when it verified, else OpenSSL's code. A TLS
 * server socket made from an accepted connection (as dialects do after their protocol's TLS
 * request) does not set `authorized` itself, so the result is read as node's TLS server reads
 * it; when it cannot be read the certificate counts as unverified (fail closed).
 */
function verifyErrorOf(socket: TLSSocket): string | undefined {
  if (socket.authorized) return undefined;
  const recorded = socket.authorizationError as unknown as string | Error | null | undefined;
  if (recorded) return typeof recorded === 'string' ? recorded : ((recorded as { code?: string }).code ?? recorded.message);
  const handle = (socket as unknown as { _handle?: { verifyError?: () => (Error & { code?: string }) | null } })._handle;
  if (typeof handle?.verifyError !== 'function') return 'VERIFICATION_RESULT_UNAVAILABLE';
  const err = handle.verifyError();
  return err ? (err.code ?? err.message) : undefined;
}

/**
 * Decides whether a client may go on to log in, given its TLS socket (undefined when the
 * client did not upgrade) and the listener's policy (undefined: no client certificates asked
 * for). The reasons name the problem and what to do, and contain nothing secret.
 */
export function checkClientCertificate(socket: TLSSocket | undefined, policy: ClientCertificatePolicy | undefined): ClientCertificateCheck {
  if (!policy) return { ok: true };
  if (!socket) {
    return policy.required
      ? { ok: false, reason: 'this listener requires a client certificate (mutual TLS); connect with TLS and a certificate signed by the configured client CA' }
      : { ok: true };
  }
  const cert = socket.getPeerCertificate();
  const presented = cert !== null && typeof cert === 'object' && Object.keys(cert).length > 0;
  if (!presented) {
    return policy.required
      ? { ok: false, reason: 'no client certificate was presented; this listener requires one signed by the configured client CA (mutual TLS)' }
      : { ok: true };
  }
  const subject = subjectOf(cert);
  const codeText = verifyErrorOf(socket);
  if (codeText === undefined) return { ok: true, certificate: { subject, fingerprint256: cert.fingerprint256 } };
  if (codeText === 'CERT_HAS_EXPIRED') {
    return { ok: false, reason: `the client certificate "${subject}" has expired (valid until ${cert.valid_to}); use a current certificate` };
  }
  if (codeText === 'CERT_NOT_YET_VALID') {
    return { ok: false, reason: `the client certificate "${subject}" is not valid yet (valid from ${cert.valid_from})` };
  }
  if (UNTRUSTED.has(codeText)) {
    return { ok: false, reason: `the client certificate "${subject}" is not signed by the configured client CA (${codeText})` };
  }
  return { ok: false, reason: `the client certificate "${subject}" could not be verified (${codeText})` };
}
