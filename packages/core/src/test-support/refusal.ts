import { expect } from 'vitest';
import { ClientFacingError, ErrorKind } from '../errors.js';

/**
 * Awaits a login that must be refused: checks it is an auth failure whose message, detail and
 * hint reveal neither the secret nor any `window`-character run of it, and returns the message.
 */
export async function expectRefusal(promise: Promise<unknown>, secret: string, window = 6): Promise<string> {
  const err: unknown = await promise.then(
    () => {
      throw new Error('expected the login to be refused');
    },
    (e: unknown) => e,
  );
  if (!ClientFacingError.is(err)) throw err;
  expect(err.kind).toBe(ErrorKind.AuthFailed);
  const text = [err.message, err.detail ?? '', err.hint ?? ''].join('\n');
  if (secret.length > 0) expect(text).not.toContain(secret);
  const w = Math.min(window, secret.length);
  for (let i = 0; w > 0 && i + w <= secret.length; i++) expect(text).not.toContain(secret.slice(i, i + w));
  return err.message;
}

/** Source-address credentials for tests. */
export const credentials = (username: string, secret: string, sourceAddress = '192.0.2.1') => ({ username, secret, sourceAddress });
