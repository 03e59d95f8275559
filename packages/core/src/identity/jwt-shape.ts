/** Upper bound on the header segment we are willing to decode while routing. */
const MAX_HEADER_SEGMENT = 4096;
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/**
 * True when `secret` has the shape of a compact JWS (three base64url segments) whose header
 * decodes to a JSON object with a string `alg`. Says nothing about validity.
 */
export function looksLikeJwt(secret: string): boolean {
  if (!COMPACT_JWS.test(secret)) return false;
  const headerSegment = secret.slice(0, secret.indexOf('.'));
  if (headerSegment.length > MAX_HEADER_SEGMENT) return false;
  try {
    const header: unknown = JSON.parse(Buffer.from(headerSegment, 'base64url').toString('utf8'));
    return (
      typeof header === 'object' &&
      header !== null &&
      !Array.isArray(header) &&
      typeof (header as { alg?: unknown }).alg === 'string'
    );
  } catch {
    return false;
  }
}
