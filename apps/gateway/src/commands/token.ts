import { parseArgs } from 'node:util';
import { createHash, randomBytes } from 'node:crypto';
import { UsageError } from './run.js';

export function tokenCommand(args: string[]): number {
  const [sub, ...rest] = args;
  if (sub === 'new') {
    const { values } = parseArgs({ args: rest, allowPositionals: true, options: { bytes: { type: 'string' } } });
    const n = values.bytes ? Number(values.bytes) : 32;
    if (!Number.isInteger(n) || n < 16 || n > 256) throw new UsageError('--bytes must be an integer between 16 and 256');
    const token = `sl_${randomBytes(n).toString('base64url')}`;
    process.stdout.write(`token:       ${token}\ntokenSha256: ${createHash('sha256').update(token).digest('hex')}\n`);
    return 0;
  }
  if (sub === 'hash') {
    const { positionals } = parseArgs({ args: rest, allowPositionals: true, options: {} });
    if (positionals.length !== 1) throw new UsageError('give exactly one token to hash');
    process.stdout.write(`${createHash('sha256').update(positionals[0]!).digest('hex')}\n`);
    return 0;
  }
  throw new UsageError(`unknown token command "${sub ?? ''}" (expected new or hash)`);
}
