import { randomBytes } from 'node:crypto';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';

/**
 * The outcome of a configuration reload, written by the gateway after each SIGHUP to
 * `<pidFile>.reload.json` and read by `sluice reload`.
 */
export interface ReloadStatus {
  /** When the reload finished, ISO 8601. */
  readonly time: string;
  readonly ok: boolean;
  /** What happened, for the person who asked: what changed, or why the new config was refused. */
  readonly message: string;
}

/** Where the outcome of a reload is written for a gateway with this pid file. */
export function reloadStatusFile(pidFile: string): string {
  return `${pidFile}.reload.json`;
}

/**
 * Writes the outcome of a reload next to the pid file (atomically: a reader never sees half a
 * file). `time` defaults to now.
 */
export async function writeReloadStatus(
  pidFile: string,
  status: { readonly ok: boolean; readonly message: string; readonly time?: string | Date },
): Promise<void> {
  const time = status.time === undefined ? new Date().toISOString() : typeof status.time === 'string' ? status.time : status.time.toISOString();
  const record: ReloadStatus = { time, ok: status.ok, message: status.message };
  const file = reloadStatusFile(pidFile);
  const temp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await writeFile(temp, `${JSON.stringify(record)}\n`, { mode: 0o644 });
    await rename(temp, file);
  } catch (err) {
    await rm(temp, { force: true }).catch(() => undefined);
    throw err;
  }
}

/** The last reload outcome, or undefined when there is none (or it cannot be read). */
export async function readReloadStatus(pidFile: string): Promise<ReloadStatus | undefined> {
  let text: string;
  try {
    text = await readFile(reloadStatusFile(pidFile), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const value = JSON.parse(text) as Partial<ReloadStatus> | null;
    if (
      value === null ||
      typeof value !== 'object' ||
      typeof value.time !== 'string' ||
      Number.isNaN(Date.parse(value.time)) ||
      typeof value.ok !== 'boolean' ||
      typeof value.message !== 'string'
    ) {
      return undefined;
    }
    return { time: value.time, ok: value.ok, message: value.message };
  } catch {
    return undefined;
  }
}
