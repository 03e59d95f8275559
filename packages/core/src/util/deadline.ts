/**
 * Resolves as `work` does, or rejects once `ms` have passed without it settling: a stalled
 * disk must not make a caller wait for ever (the work itself keeps running; its outcome is
 * ignored after the deadline).
 */
export async function withDeadline<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms (is the disk stalled?)`)), ms);
  });
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
