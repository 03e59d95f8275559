import type { Analysis, Logger, MaskedColumn, ResultLineage, StatementMasking } from '@sluice/core';
import { catalogFor, planResult } from '../masking/index.js';
import type { ColumnDefinition41 } from '../protocol/messages.js';
import type { MysqlUpstreamOptions } from '../protocol/upstream.js';

/** How the rows of one result are rewritten, and what the audit records about it. */
export interface RowMask {
  /** The masked row payload, or undefined when this row is unchanged. */
  maskRow(payload: Buffer): Buffer | undefined;
  readonly masked: readonly MaskedColumn[];
}

/** Result masking as the session uses it: the target's catalog, and a plan per result. */
export interface ResultMasking {
  /** Undefined when the catalog of the target is current; else when it is (rejects when unreadable). */
  catalogReady(upstream: MysqlUpstreamOptions, analysis: Analysis): Promise<void> | undefined;
  /** The row rewrite for a result, or undefined when nothing in it can need masking. */
  planResult(
    upstream: MysqlUpstreamOptions,
    columns: readonly ColumnDefinition41[],
    lineage: ResultLineage | undefined,
    schema: string | undefined,
    masking: StatementMasking,
    binary: boolean,
  ): RowMask | undefined;
  /** The schema changed (DDL through the gateway): read the catalog again before the next statement. */
  invalidate(upstream: MysqlUpstreamOptions): void;
}

/**
 * The masking of the package: one catalog per upstream endpoint and account (shared by every
 * session going there), a plan per result.
 */
export function createResultMasking(logger: Pick<Logger, 'warn'>): ResultMasking {
  return {
    catalogReady: (upstream) => catalogFor(upstream, logger).ready(),
    planResult(upstream, columns, lineage, schema, masking, binary) {
      const catalog = catalogFor(upstream, logger);
      const snapshot = catalog.snapshot;
      // The session waits for the catalog before any statement whose rows may be masked.
      if (snapshot === undefined) throw new Error('the masking catalog is not loaded');
      return planResult(
        columns,
        { lineage, catalog: snapshot, defaultSchema: schema, onUnknownRelation: () => catalog.noteUnknownRelation() },
        masking,
        binary,
      );
    },
    invalidate: (upstream) => catalogFor(upstream, logger).invalidate(),
  };
}
