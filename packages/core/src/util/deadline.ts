/**
 * Resolves as `work` does, or rejects once `ms` have passed without it settling: a stalled
 * disk (or server) must not make a caller wait for ever (the work itself keeps running; its
 * outcome is ignored after the deadline). `hint` ends the message; by default it asks about
 * the disk. The timer does not keep the process alive.
 */
export async function withDeadline<T>(work: Promise<T>, ms: number, what: string, hint = ' (is the disk stalled?)'): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms${hint}`)), ms);
    timer.unref();
  });
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
