/**
 * Masking for one client session: turns a statement's analysis and the server's result
 * description into a mask plan (once per description), and answers the session's questions
 * about cursors, COPY, errors and the catalog.
 */
import type { Analysis, ColumnSource, GovernedSession, Logger, ResultLineage, StatementMasking } from '@sluice/core';
import type { PostgresAnalysis } from '../analyze/analyze.js';
import type { CatalogSnapshot, PostgresCatalog } from './catalog.js';
import { CopyMasker } from './copy.js';
import { maskErrorFrame } from './errors.js';
import { planColumns, RowMasker, type ResultField } from './plan.js';
import type { ValueShape } from './values.js';

/** Plans kept per analysis (a statement shape) and result description. */
interface PlanEntry {
  readonly description: Buffer;
  readonly masking: StatementMasking;
  readonly catalog: CatalogSnapshot;
  readonly actions: ReturnType<typeof planColumns>;
  readonly fieldCount: number;
}

const UNKNOWN_TYPE: Omit<ValueShape, 'format'> = { typeOid: 0, typmod: -1 };

export class SessionMasking {
  readonly #governed: GovernedSession;
  readonly #catalog: PostgresCatalog;
  readonly #log: Logger;
  /** Cursors declared in this session: their query's analysis, for FETCH. */
  readonly #cursors = new Map<string, PostgresAnalysis>();
  readonly #plans = new WeakMap<Analysis, PlanEntry>();

  constructor(governed: GovernedSession, catalog: PostgresCatalog, log: Logger) {
    this.#governed = governed;
    this.#catalog = catalog;
    this.#log = log;
  }

  /** The masking for a statement, or undefined when none of its results is masked. */
  rulesFor(analysis: Analysis): StatementMasking | undefined {
    const a = analysis as PostgresAnalysis;
    // A FETCH returns its cursor's rows: masked as the cursor's query is (a mask rule naming
    // the cursor's tables applies), and never less than the FETCH itself would be.
    if (a.fetch !== undefined) {
      const cursor = this.#cursors.get(a.fetch);
      if (cursor !== undefined) return this.#governed.maskingFor(cursor) ?? this.#governed.maskingFor(analysis);
    }
    return this.#governed.maskingFor(analysis);
  }

  /**
   * Before a statement is forwarded: resolves when the catalog is current (undefined when it
   * already is). Rejects when it cannot be read: the statement must then be refused.
   */
  catalogReady(): Promise<unknown> | undefined {
    const current = this.#catalog.current();
    if (current !== undefined) {
      this.#last = current;
      return undefined;
    }
    return this.#catalog.ready().then((c) => {
      this.#last = c;
    });
  }

  /** The reason a statement cannot run with masking, if any (checked before it is forwarded). */
  refusal(analysis: Analysis): string | undefined {
    for (const p of (analysis.parts ?? [analysis]) as readonly PostgresAnalysis[]) {
      if (p.copy?.format !== 'binary') continue;
      const rules = this.rulesFor(p);
      if (rules === undefined) continue;
      const catalog = this.#catalog.current();
      const all = p.lineage?.all ?? [];
      const sources = catalog === undefined ? all : catalog.expand(all);
      if (sources.length === 0 || rules.strongest(sources) !== undefined || rules.detectors.size > 0) {
        return 'COPY in the binary format cannot be masked; use the text or CSV format';
      }
    }
    return undefined;
  }

  /** The lineage of the rows a statement returns (a FETCH returns its cursor's). */
  #resultAnalysis(analysis: Analysis): PostgresAnalysis {
    const a = analysis as PostgresAnalysis;
    if (a.fetch !== undefined) return this.#cursors.get(a.fetch) ?? a;
    return a;
  }

  /** A RowMasker for a result, or undefined when nothing in it is masked or scanned. */
  /**
   * `description` identifies the result's shape (plans are cached by it); `owned`: it is the
   * caller's own copy, kept as it is (otherwise it is copied: it may be a view of a chunk).
   */
  rowMasker(analysis: Analysis, description: Buffer, fields: () => readonly ResultField[], owned = false): RowMasker | undefined {
    const rules = this.rulesFor(analysis);
    if (rules === undefined) return undefined;
    const catalog = this.#catalog.current() ?? this.#last;
    if (catalog === undefined) throw new Error('the masking catalog is not loaded');
    // Plans are kept by the statement whose rows these are (for a FETCH, its cursor's query).
    const source = this.#resultAnalysis(analysis);
    const known = this.#plans.get(source);
    let entry: PlanEntry;
    if (known !== undefined && known.masking === rules && known.catalog === catalog && (known.description === description || known.description.equals(description))) {
      entry = known;
    } else {
      const f = fields();
      const actions = planColumns(f, { lineage: source.lineage, catalog, onUnknownRelation: this.#stale }, rules);
      entry = { description: owned ? description : Buffer.from(description), masking: rules, catalog, actions, fieldCount: f.length };
      this.#plans.set(source, entry);
    }
    if (entry.actions.length === 0) return undefined;
    return new RowMasker(entry.actions, entry.fieldCount, rules);
  }

  /** A relation the catalog does not know: it is out of date; the next statement waits for a new one. */
  readonly #stale = (): void => {
    this.#catalog.invalidate();
  };

  /** The transaction ended: cursors not declared WITH HOLD end with it. */
  transactionEnded(): void {
    for (const [name, a] of this.#cursors) if (a.declareHold !== true) this.#cursors.delete(name);
  }

  /** The latest snapshot seen: results of statements forwarded before a schema change use it. */
  #last: CatalogSnapshot | undefined;

  /** A CopyMasker for a COPY ... TO STDOUT, or undefined when nothing in it is masked. */
  copyMasker(analysis: Analysis, columnCount: number, binary = false): CopyMasker | undefined {
    const a = analysis as PostgresAnalysis;
    const rules = this.rulesFor(a);
    if (rules === undefined) return undefined;
    // A COPY the analysis did not recognise: its columns cannot be resolved and are scanned.
    const format = a.copy ?? { format: binary ? ('binary' as const) : ('text' as const) };
    const catalog = this.#catalog.current() ?? this.#last;
    if (catalog === undefined) throw new Error('the masking catalog is not loaded');
    const fields = this.#copyFields(a.lineage, catalog, columnCount);
    const actions = planColumns(fields, { lineage: a.lineage, catalog }, rules);
    if (actions.length === 0) return undefined;
    // Refused before it runs; this is the backstop: the session ends rather than pass it.
    if (binary || format.format === 'binary') throw new Error('a COPY in the binary format would need masking');
    return new CopyMasker(new RowMasker(actions, fields.length, rules), format, fields.length);
  }

  /**
   * The columns of a COPY: for `COPY table`, the table's columns with their types; for
   * `COPY (query)`, columns of unknown type (a masked value is then written as NULL).
   */
  #copyFields(lineage: ResultLineage | undefined, catalog: CatalogSnapshot, columnCount: number): ResultField[] {
    const columns = lineage?.columns;
    const direct = columns !== undefined && columns.length === columnCount && columns.every((c) => c.direct && c.sources.length === 1);
    const tableOf = (s: ColumnSource) => {
      const rels = catalog.relationsNamed(s.schema, s.table);
      return rels.length === 1 ? rels[0] : rels.find((r) => r.schema === 'public');
    };
    if (direct) {
      return columns.map((c, i) => {
        const s = c.sources[0]!;
        const rel = tableOf(s);
        const col = rel?.columns.find((x) => x.name === s.column);
        return { name: c.name || `column${i + 1}`, tableOid: 0, attnum: 0, format: 0, ...(col ? { typeOid: col.typeOid, typmod: col.typmod } : UNKNOWN_TYPE) };
      });
    }
    // `COPY table TO STDOUT`: every column of the table.
    const star = lineage?.all.length === 1 && lineage.all[0]!.column === '*' ? tableOf(lineage.all[0]!) : undefined;
    if (star !== undefined && star.columns.length === columnCount) {
      return star.columns.map((c) => ({ name: c.name, tableOid: star.oid, attnum: c.attnum, typeOid: c.typeOid, typmod: c.typmod, format: 0 }));
    }
    return Array.from({ length: columnCount }, (_, i) => ({
      name: columns?.[i]?.name ?? `column${i + 1}`,
      tableOid: 0,
      attnum: 0,
      format: 0,
      ...UNKNOWN_TYPE,
    }));
  }

  /** The error or notice without sensitive values, or undefined when it can go as it is. */
  maskError(frame: Buffer, analysis: Analysis | undefined, truncated: boolean): Buffer | undefined {
    const rules = analysis === undefined ? this.#governed.maskingFor(NO_STATEMENT) : this.rulesFor(analysis);
    if (rules === undefined) return truncated ? maskErrorFrame(frame, PASS, true) : undefined;
    const source = analysis === undefined ? undefined : this.#resultAnalysis(analysis);
    const lineage = source?.lineage;
    let sensitiveStatement = false;
    if (source !== undefined) {
      for (const o of [...(analysis!.objects ?? []), ...(source.objects ?? [])]) {
        if (o.kind === 'table' && rules.sensitiveTable(o.schema, o.name)) sensitiveStatement = true;
      }
      if (lineage !== undefined) {
        const catalog = this.#catalog.current() ?? this.#last;
        const all = [...lineage.all, ...lineage.predicates];
        // Through views and SQL functions too.
        if (rules.strongest(catalog === undefined ? all : catalog.expand(all)) !== undefined) sensitiveStatement = true;
        if (catalog !== undefined) {
          for (const fn of lineage.functions) {
            for (const f of catalog.functionsNamed(fn)) {
              if (f.sources === undefined || rules.strongest(catalog.expand(f.sources)) !== undefined) sensitiveStatement = true;
            }
          }
        }
      }
    }
    return maskErrorFrame(
      frame,
      {
        sensitiveStatement,
        sensitiveTable: rules.sensitiveTable,
        detectors: rules.detectors,
        strategy: rules.detectorStrategy,
        hashKey: rules.hashKey,
      },
      truncated,
    );
  }

  /** A statement completed: cursors and schema changes are noted. */
  completed(analysis: Analysis, ok: boolean): void {
    if (!ok) return;
    const a = analysis as PostgresAnalysis;
    // CLOSE and DISCARD end cursors: what is known of them is forgotten (a FETCH of an unknown
    // cursor is judged by its description alone, never by a stale query).
    const command = analysis.commands[0];
    if (command === 'CLOSE' || command === 'DISCARD') this.#cursors.clear();
    if (a.declare !== undefined) this.#cursors.set(a.declare, a);
    if (analysis.operations.includes('ddl')) this.#catalog.invalidate();
  }

  get log(): Logger {
    return this.#log;
  }
}

const NO_STATEMENT: Analysis = Object.freeze({ normalized: '', fingerprint: '', operations: [], statementCount: 0, commands: [] });
const PASS = { sensitiveStatement: false, sensitiveTable: () => false, detectors: new Set<never>(), strategy: 'redact' as const, hashKey: Buffer.alloc(0) };
