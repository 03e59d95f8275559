/**
 * Lineage retention: observations last seen longer ago than the retention are pruned, once
 * when retention starts and then every interval.
 */
import type { LineageStore } from '@sluice/core';
import type { Logger } from 'pino';

/** 90 days. */
export const DEFAULT_LINEAGE_RETENTION_MS = 90 * 86_400_000;
/** Once an hour. */
export const DEFAULT_LINEAGE_PRUNE_INTERVAL_MS = 3_600_000;

export interface LineageRetentionOptions {
  /** How long observations are kept after they were last seen. Default 90 days. */
  readonly retentionMs?: number;
  /** Time between prunes. Default one hour. */
  readonly intervalMs?: number;
  readonly logger: Logger;
  /** The clock (tests). */
  readonly now?: () => number;
}

export interface LineageRetention {
  /** Prunes now (waiting for a prune under way first); resolves with how many observations went. */
  pruneNow(): Promise<number>;
  /** Stops the timer and waits for a prune under way. */
  stop(): Promise<void>;
}

export function startLineageRetention(store: LineageStore, options: LineageRetentionOptions): LineageRetention {
  const retentionMs = options.retentionMs ?? DEFAULT_LINEAGE_RETENTION_MS;
  const intervalMs = options.intervalMs ?? DEFAULT_LINEAGE_PRUNE_INTERVAL_MS;
  if (!(retentionMs > 0)) throw new RangeError(`lineage retention must be positive, got ${retentionMs} ms`);
  if (!(intervalMs > 0)) throw new RangeError(`the lineage prune interval must be positive, got ${intervalMs} ms`);
  const now = options.now ?? Date.now;
  const logger = options.logger.child({ component: 'lineage-retention' });
  let running: Promise<number> = Promise.resolve(0);
  let stopped = false;

  const prune = (): Promise<number> => {
    running = running.catch(() => 0).then(async () => {
      const before = now() - retentionMs;
      const pruned = await store.prune(before);
      if (pruned > 0) logger.info({ pruned, before: new Date(before).toISOString() }, `lineage retention: pruned ${pruned} observation(s)`);
      return pruned;
    });
    return running;
  };
  const scheduled = () => {
    if (stopped) return;
    prune().catch((err: unknown) => logger.error({ err }, 'lineage retention: pruning failed; trying again at the next interval'));
  };

  const first = setTimeout(scheduled, 0);
  const timer = setInterval(scheduled, intervalMs);
  first.unref();
  timer.unref();

  return {
    pruneNow: prune,
    async stop() {
      stopped = true;
      clearTimeout(first);
      clearInterval(timer);
      await running.catch(() => undefined);
    },
  };
}
