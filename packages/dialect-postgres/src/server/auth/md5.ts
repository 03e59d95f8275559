/**
 * The response to AuthenticationMD5Password (PostgreSQL protocol, "Message Flow"): the
 * string `md5` followed by hex(md5(hex(md5(password || user)) || salt)).
 *
 * MD5 authentication is deprecated upstream in favour of SCRAM-SHA-256; it is supported here
 * because servers with md5-stored passwords still ask for it.
 */
import { createHash } from 'node:crypto';

export function md5Password(user: string, password: string, salt: Buffer): string {
  if (salt.length !== 4) throw new Error(`MD5 authentication salt must be 4 bytes, got ${salt.length}`);
  const inner = createHash('md5').update(password, 'utf8').update(user, 'utf8').digest('hex');
  const outer = createHash('md5').update(inner, 'latin1').update(salt).digest('hex');
  return 'md5' + outer;
}
