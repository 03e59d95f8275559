import type { Analysis, MaskedColumn, ResultLineage, StatementMasking } from '@sluice/core';
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
    onUnknownRelation: () => void,
  ): RowMask | undefined;
  /** The schema changed (DDL through the gateway): read the catalog again before the next statement. */
  invalidate(upstream: MysqlUpstreamOptions): void;
}
