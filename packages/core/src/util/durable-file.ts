/**
 * The file operations both fsynced append-only stores (the audit log and the approvals journal)
 * rest on: writing a whole buffer, and making a new or renamed directory entry durable.
 */
import type { FileHandle } from 'node:fs/promises';
import { open } from 'node:fs/promises';

/** Writes all of `data` at the handle's position, looping over short writes. */
export async function writeFully(fh: FileHandle, data: Buffer): Promise<void> {
  let written = 0;
  while (written < data.length) {
    const { bytesWritten } = await fh.write(data, written, data.length - written);
    if (bytesWritten <= 0) throw new Error('the write made no progress');
    written += bytesWritten;
  }
}

/** Makes a directory entry (a new or renamed file) durable. Directories cannot be opened for sync on Windows. */
export async function syncDirectory(dir: string): Promise<void> {
  if (process.platform === 'win32') return;
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
