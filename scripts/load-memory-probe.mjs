// Loaded into the gateway process by scripts/load.mjs (node --import): writes the process's
// memory figures to $SLUICE_MEMORY_PROBE_FILE every second, so the load run can sample the
// heap of a gateway it only knows as a child process. Nothing else changes in the gateway.
import { renameSync, writeFileSync } from 'node:fs';

const file = process.env.SLUICE_MEMORY_PROBE_FILE;
if (file) {
  const write = () => {
    try {
      writeFileSync(`${file}.tmp`, JSON.stringify({ time: Date.now(), ...process.memoryUsage() }));
      renameSync(`${file}.tmp`, file);
    } catch {
      // The run's directory is gone: nobody reads the figures any more.
    }
  };
  write();
  setInterval(write, 1000).unref();
  // With --expose-gc: every 5 s a full collection, and the heap that survives it (live
  // objects only, no garbage waiting for the collector): the figure that shows a leak.
  const gc = globalThis.gc;
  if (typeof gc === 'function') {
    setInterval(() => {
      gc();
      try {
        const { heapUsed } = process.memoryUsage();
        writeFileSync(`${file}.gc.tmp`, JSON.stringify({ time: Date.now(), heapUsed }));
        renameSync(`${file}.gc.tmp`, `${file}.gc`);
      } catch {
        // As above.
      }
    }, 5000).unref();
  }
}
