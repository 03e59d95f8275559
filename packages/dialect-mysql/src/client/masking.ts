import type { Analysis, Logger, MaskedColumn, ResultLineage, StatementMasking } from '@sluice/core';
import { catalogFor, isSystemSchema, planResult } from '../masking/index.js';
import type { ColumnDefinition41 } from '../protocol/messages.js';
import type { MysqlUpstreamOptions } from '../protocol/upstream.js';

/** How the rows of one result are rewritten, and what the audit records about it. */
export interface RowMask {
  /** The masked row payload (after `headroom` bytes), or undefined when this row is unchanged. */
  maskRow(payload: Buffer, headroom?: number): Buffer | undefined;
  readonly masked: readonly MaskedColumn[];
}

/** Result masking as the session uses it: the target's catalog, and a plan per result. */
export interface ResultMasking {
  /**
   * Undefined when the catalog of the target is current for the statement; else a promise of
   * when it is (rejects when unreadable). A relation the statement reads that the catalog does
   * not know (made by another client since the last read) makes it read again first, at most
   * once per name and `UNKNOWN_RETRY_MS`: a temporary table never appears.
   */
  catalogReady(upstream: MysqlUpstreamOptions, analysis: Analysis, schema: string | undefined): Promise<void> | undefined;
  /**
   * Whether the statement reads a table with a sensitive column, also through a view, or calls
   * a stored function (whose body cannot be seen): its server errors may quote such values.
   */
  touchesSensitive(upstream: MysqlUpstreamOptions, analysis: Analysis, masking: StatementMasking, schema: string | undefined): boolean;
  /** The row rewrite for a result, or undefined when nothing in it can need masking. */
  planResult(
    upstream: MysqlUpstreamOptions,
    columns: readonly ColumnDefinition41[],
    lineage: ResultLineage | undefined,
    schema: string | undefined,
    masking: StatementMasking,
    binary: boolean,
    /** The procedure, when the result is one of a CALL's: its body tells what it reads. */
    call?: string,
  ): RowMask | undefined;
  /** The schema changed (DDL through the gateway): read the catalog again before the next statement. */
  invalidate(upstream: MysqlUpstreamOptions): void;
}

/**
 * The masking of the package: one catalog per upstream endpoint and account (shared by every
 * session going there), a plan per result.
 */
export function createResultMasking(logger: Pick<Logger, 'warn'>): ResultMasking {
  /** Relation names the catalog was read again for, and when. */
  const retried = new Map<string, number>();
  return {
    catalogReady(upstream, analysis, schema) {
      const catalog = catalogFor(upstream, logger);
      const ready = catalog.ready();
      if (ready !== undefined) return ready;
      const snapshot = catalog.snapshot!;
      const now = Date.now();
      for (const o of analysis.objects ?? []) {
        if (o.kind !== 'table' || isSystemSchema(o.schema ?? schema)) continue;
        if (snapshot.relations(o.schema ?? schema, o.name).length > 0) continue;
        const k = `${upstream.host}\u0000${upstream.port}\u0000${o.schema ?? schema ?? ''}\u0000${o.name.toLowerCase()}`;
        const at = retried.get(k);
        if (at !== undefined && now - at < UNKNOWN_RETRY_MS) continue;
        if (retried.size >= 10_000) retried.clear();
        retried.set(k, now);
        catalog.invalidate();
        return catalog.ready();
      }
      return undefined;
    },
    planResult(upstream, columns, lineage, schema, masking, binary, call) {
      const catalog = catalogFor(upstream, logger);
      const snapshot = catalog.snapshot;
      // The session waits for the catalog before any statement whose rows may be masked.
      if (snapshot === undefined) throw new Error('the masking catalog is not loaded');
      if (call !== undefined) {
        // A procedure's result sets draw on what its body reads (positions unknown).
        const reads = snapshot.routineReads(call, 'PROCEDURE', schema);
        lineage = reads === undefined || reads.opaque ? undefined : { all: reads.sources, predicates: [], functions: [] };
      }
      return planResult(
        columns,
        { lineage, catalog: snapshot, defaultSchema: schema, onUnknownRelation: () => catalog.noteUnknownRelation() },
        masking,
        binary,
      );
    },
    touchesSensitive(upstream, analysis, masking, schema) {
      const snapshot = catalogFor(upstream, logger).snapshot;
      const objects = analysis.objects ?? [];
      if (objects.some((o) => masking.sensitiveTable(o.schema, o.name))) return true;
      if (snapshot === undefined) return true;
      if ((analysis.functions ?? []).some((f) => snapshot.isStoredFunction(f, schema))) return true;
      for (const o of objects) {
        if (o.kind !== 'table') continue;
        const traced = snapshot.trace([{ ...(o.schema !== undefined ? { schema: o.schema } : {}), table: o.name, column: '*' }], schema);
        if (traced.opaque && !traced.unknown) return true;
        if (traced.sources.some((s) => masking.sensitiveTable(s.schema, s.table))) return true;
      }
      return false;
    },
    invalidate: (upstream) => catalogFor(upstream, logger).invalidate(),
  };
}

/** How long a relation the catalog still does not know after a read is left to the detectors. */
const UNKNOWN_RETRY_MS = 30_000;
