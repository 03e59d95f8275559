/**
 * Mask plans for MySQL / MariaDB results: which columns are masked (and how), computed once
 * per result from its column definitions, and the row rewrite that applies one.
 *
 * A result column is resolved to its sources in three ways, all of them used:
 * 1. the column definition's org_table / org_name (with its schema) name a stored column
 *    whatever alias it was given; a view's column is traced through the view's definition to
 *    the table columns it shows. MariaDB names a derived table, a CTE and an aliased view by
 *    their alias there, and clears both for computed values, UNION columns and scalar
 *    subqueries (see test/masking-wire.test.ts): those are left to the next two;
 * 2. the statement's column lineage gives the sources of each column by position, through
 *    expressions, functions, subqueries, derived tables, CTEs and set operations; views it
 *    names are traced, a stored function it calls is opaque;
 * 3. a column that cannot be resolved (computed at a position the lineage cannot tell, from a
 *    stored function, a system table or a relation the catalog does not know) is scanned by
 *    the content detectors.
 * A column with any sensitive source is masked with the strongest strategy of its sources;
 * `partial` and `hash` only on stored values shown as they are, a computed one is redacted.
 */
import type { ColumnSource, DetectorKind, MaskedColumn, MaskStrategy, MaskTextOptions, ResultLineage, StatementMasking } from '@sluice/core';
import { maskTextBytes } from '@sluice/core';
import { binaryValueLayout, createRowRanges, decodeBinaryRow, decodeTextRow, type ColumnDefinition41, type RowRanges } from '../protocol/messages.js';
import { lenencIntSize, LENENC_NULL } from '../protocol/packets.js';
import { isSystemSchema, type MysqlCatalogSnapshot, type TracedSources } from './catalog.js';
import { maskValue, scanValue, shapeOf, textOptionsFor, type ValueShape } from './values.js';

/** Everything known about where a result's columns come from. */
export interface ResultSourcesMy {
  readonly lineage: ResultLineage | undefined;
  readonly catalog: MysqlCatalogSnapshot;
  /** The session's current schema (what unqualified names are in); undefined when none is selected. */
  readonly defaultSchema: string | undefined;
  /** Called (at most once per plan) when the statement names a relation the catalog does not know. */
  readonly onUnknownRelation?: () => void;
}

/** What is done to one result column. */
export interface MysqlColumnAction {
  readonly index: number;
  /** The name the client sees. */
  readonly name: string;
  readonly shape: ValueShape;
  /** `mask` applies `strategy`; `scan` runs the detectors (and masks what they find with `strategy`). */
  readonly mode: 'mask' | 'scan';
  readonly strategy: MaskStrategy;
  /** The rule behind a mask (`detector` for scans). */
  readonly rule: string;
}

export interface MysqlRowMasker {
  /**
   * For the audit: each masked result column and what masked it (the rule's name, or
   * `detector:<kind>` once a detector has found something in it). Planned masks are listed
   * from the start; detector findings are added as rows are masked.
   */
  readonly masked: readonly MaskedColumn[];
  /** The plan. */
  readonly actions: readonly MysqlColumnAction[];
  /**
   * A row payload (without packet header) → the masked payload, or undefined when this row is
   * unchanged. With `headroom`, the payload starts that many bytes into the buffer returned
   * (room for the packet header, so the row is not copied again). Throws RangeError on a row
   * that does not have the planned columns.
   */
  maskRow(payload: Buffer, headroom?: number): Buffer | undefined;
}

/**
 * How the column definition places a column: a table's column, a view's, a system table's, a
 * relation the catalog does not list (a derived table, a CTE, an aliased view, or a table
 * made since the catalog was read: a temporary one never shows), or a computed value.
 */
type WireKind = 'base' | 'view' | 'system' | 'unlisted' | 'computed';

interface WireResolution {
  readonly kind: WireKind;
  readonly sources: readonly ColumnSource[];
  readonly direct: boolean;
  readonly opaque: boolean;
  /** The table it names (for base and view columns). */
  readonly schema?: string;
  readonly table?: string;
}

const COMPUTED: WireResolution = { kind: 'computed', sources: [], direct: false, opaque: false };
const UNLISTED: WireResolution = { kind: 'unlisted', sources: [], direct: false, opaque: false };

const lower = (s: string): string => s.toLowerCase();

/** Resolves the columns of one result. */
class Resolver {
  readonly #columns: readonly ColumnDefinition41[];
  readonly #sources: ResultSourcesMy;
  readonly #catalog: MysqlCatalogSnapshot;
  readonly #positioned: boolean;
  readonly #wire: WireResolution[];
  #all: TracedSources | undefined;
  #allOpaque = false;
  #unexplained: boolean | undefined;
  #reported = false;

  constructor(columns: readonly ColumnDefinition41[], sources: ResultSourcesMy) {
    this.#columns = columns;
    this.#sources = sources;
    this.#catalog = sources.catalog;
    const lineage = sources.lineage;
    this.#positioned = lineage?.columns !== undefined && lineage.columns.length === columns.length;
    this.#wire = columns.map((c) => this.#wireOf(c));
  }

  #unknown(): void {
    if (this.#reported) return;
    this.#reported = true;
    this.#sources.onUnknownRelation?.();
  }

  #trace(list: readonly ColumnSource[]): TracedSources {
    const t = this.#catalog.trace(list, this.#sources.defaultSchema);
    if (t.unknown) this.#unknown();
    return t;
  }

  /** What the stored functions among `functions` read; undefined when none is one. */
  #functionReads(functions: readonly string[]): TracedSources | undefined {
    let out: TracedSources | undefined;
    for (const f of functions) {
      if (!this.#catalog.isStoredFunction(f, this.#sources.defaultSchema)) continue;
      // A stored function the catalog has no body for (made since it was read): opaque.
      const reads = this.#catalog.routineReads(f, 'FUNCTION', this.#sources.defaultSchema) ?? { sources: [], direct: false, opaque: true, unknown: true };
      out = out === undefined ? { ...reads, sources: [...reads.sources] } : { sources: [...out.sources, ...reads.sources], direct: false, opaque: out.opaque || reads.opaque, unknown: out.unknown || reads.unknown };
    }
    return out;
  }

  #storedFunction(functions: readonly string[]): boolean {
    for (const f of functions) if (this.#catalog.isStoredFunction(f, this.#sources.defaultSchema)) return true;
    return false;
  }

  /** What the column definition alone says. */
  #wireOf(c: ColumnDefinition41): WireResolution {
    if (c.orgTable === '' || c.orgName === '') return COMPUTED;
    // A view's computed column comes with an empty schema: the view is then looked up by name.
    const schema = c.schema === '' ? undefined : c.schema;
    if (isSystemSchema(schema)) {
      return { kind: 'system', sources: [{ schema: schema!, table: c.orgTable, column: lower(c.orgName) }], direct: true, opaque: true, schema: schema!, table: c.orgTable };
    }
    const rels = this.#catalog.relations(schema, c.orgTable);
    if (rels.length === 0) {
      // What it names, should the statement turn out to read a relation of that name.
      if (schema === undefined) return UNLISTED;
      return { kind: 'unlisted', sources: [], direct: false, opaque: false, schema, table: c.orgTable };
    }
    const sources: ColumnSource[] = [];
    let kind: WireKind = 'unlisted';
    let direct = true;
    let opaque = false;
    for (const rel of rels) {
      const self: ColumnSource = { schema: rel.schema, table: rel.name, column: lower(c.orgName) };
      if (rel.kind === 'view') {
        kind = 'view';
        const t = this.#catalog.trace([self], rel.schema);
        sources.push(...t.sources);
        if (!t.direct) direct = false;
        if (t.opaque) opaque = true;
      } else if (schema !== undefined) {
        // A stored column of a table: only with its schema (a derived table's computed column
        // has none, whatever name it was given).
        if (kind !== 'view') kind = 'base';
        sources.push(self);
      }
    }
    if (sources.length === 0) return UNLISTED;
    return { kind, sources, direct, opaque, schema: schema ?? rels[0]!.schema, table: c.orgTable };
  }

  /** Everything the result draws on, traced (once). */
  #everything(): TracedSources | undefined {
    const lineage = this.#sources.lineage;
    if (lineage === undefined) return undefined;
    if (this.#all === undefined) {
      const all = this.#trace(lineage.all);
      const fn = this.#functionReads(lineage.functions);
      this.#all = fn === undefined ? all : { ...all, sources: [...all.sources, ...fn.sources], opaque: all.opaque || fn.opaque };
      this.#allOpaque = this.#all.opaque;
    }
    return this.#all;
  }

  /** True when the statement reads a relation of that name (as far as the lineage tells). */
  #reads(schema: string | undefined, table: string): boolean {
    const t = lower(table);
    const ds = this.#sources.defaultSchema;
    for (const s of this.#sources.lineage?.all ?? []) {
      if (lower(s.table) !== t) continue;
      const ss = s.schema ?? ds;
      if (ss === undefined || schema === undefined || lower(ss) === lower(schema)) return true;
    }
    return false;
  }

  /**
   * With positions unknown: true when the result draws on something no column definition
   * accounts for. Then a column whose definition names a relation by its own name may really
   * be a derived table or CTE given that name, showing anything the statement reads.
   */
  #hasUnexplained(): boolean {
    if (this.#unexplained !== undefined) return this.#unexplained;
    const ds = this.#sources.defaultSchema;
    const named: { schema: string | undefined; table: string; column: string }[] = [];
    this.#wire.forEach((w, i) => {
      if (w.table !== undefined && w.kind !== 'system') named.push({ schema: w.schema, table: lower(w.table!), column: lower(this.#columns[i]!.orgName) });
    });
    const explained = (s: ColumnSource): boolean => {
      const t = lower(s.table);
      const schema = s.schema ?? ds;
      const c = lower(s.column);
      return named.some(
        (n) => n.table === t && (schema === undefined || n.schema === undefined || lower(n.schema) === lower(schema)) && (c === '*' || n.column === c),
      );
    };
    this.#unexplained = (this.#sources.lineage?.all ?? []).some((s) => !explained(s));
    return this.#unexplained;
  }

  /** The sources of result column `i`; `resolved` is false when something it draws on cannot be seen. */
  resolve(i: number): { sources: ColumnSource[]; resolved: boolean; direct: boolean } {
    const c = this.#columns[i]!;
    const lineage = this.#sources.lineage;
    const wire = this.#wire[i]!;
    const list: ColumnSource[] = [...wire.sources];
    let resolved = !wire.opaque;
    let direct = wire.kind === 'base' || (wire.kind === 'view' && wire.direct) || wire.kind === 'unlisted';
    if (lineage === undefined) {
      // The statement could not be analysed: nothing confirms the column definition (a derived
      // table may carry a table's name), so every column is also scanned.
      resolved = false;
      if (wire.kind === 'unlisted' && wire.table !== undefined) list.push({ schema: wire.schema!, table: wire.table, column: lower(c.orgName) });
      if (wire.kind !== 'base' || c.table === c.orgTable) direct = false;
      return { sources: list, resolved, direct };
    }
    if (this.#positioned) {
      const lc = lineage.columns![i]!;
      const t = this.#trace(lc.sources);
      list.push(...t.sources);
      if (t.opaque) resolved = false;
      // A stored function's value draws on whatever its body reads.
      const fn = this.#functionReads(lc.functions);
      if (fn !== undefined) {
        list.push(...fn.sources);
        if (fn.opaque) resolved = false;
      }
      direct = direct && wire.kind !== 'computed' && lc.direct && t.direct;
      return { sources: list, resolved, direct };
    }
    // Positions unknown (a `*` over a relation whose columns the analysis does not list):
    // a column the definition names is what it names, unless the statement reads no relation
    // of that name (it is a derived table's or a CTE's: those never appear among the sources)
    // or something is left unexplained.
    let named = wire.kind !== 'computed' && wire.kind !== 'system' && wire.table !== undefined && this.#reads(wire.schema, wire.table);
    if (named && c.table === c.orgTable && this.#hasUnexplained()) named = false;
    if (named && wire.kind === 'unlisted') {
      // A relation the statement reads and the catalog does not list: its column is what the
      // definition says, scanned as well since the catalog cannot tell what it is.
      list.push({ schema: wire.schema!, table: wire.table!, column: lower(c.orgName) });
      resolved = false;
      this.#unknown();
    } else if (!named && wire.kind !== 'system') {
      const all = this.#everything()!;
      list.push(...all.sources);
      if (this.#allOpaque) resolved = false;
      direct = false;
    }
    return { sources: list, resolved, direct };
  }
}

/** The actions for a result; empty when nothing in it needs masking or scanning. */
export function planColumns(columns: readonly ColumnDefinition41[], sources: ResultSourcesMy, masking: StatementMasking, binary: boolean): MysqlColumnAction[] {
  const resolver = new Resolver(columns, sources);
  const charsetOf = (id: number) => sources.catalog.charsetOf(id);
  const actions: MysqlColumnAction[] = [];
  for (let i = 0; i < columns.length; i++) {
    const c = columns[i]!;
    const { sources: list, resolved, direct } = resolver.resolve(i);
    const match = masking.strongest(list);
    if (match !== undefined) {
      // `partial` and `hash` keep something of the value: on a value the query computed, the
      // query would choose what is kept (`substr(email, n)` row by row, a guess concatenated to
      // compare hashes). Only stored values get them; computed ones are redacted.
      const strategy = direct || match.strategy === 'redact' || match.strategy === 'null' ? match.strategy : 'redact';
      actions.push({ index: i, name: c.name, shape: shapeOf(c, binary, charsetOf), mode: 'mask', strategy, rule: match.rule });
    } else if (masking.detectors.size > 0 && (!resolved || list.some((s) => masking.scanned(s)))) {
      actions.push({ index: i, name: c.name, shape: shapeOf(c, binary, charsetOf), mode: 'scan', strategy: masking.detectorStrategy, rule: 'detector' });
    }
  }
  return actions;
}

/**
 * The row masker of a result, or undefined when nothing in it can need masking (no column
 * sensitive, none scanned): its rows are then relayed as they are.
 */
export function planResult(columns: readonly ColumnDefinition41[], sources: ResultSourcesMy, masking: StatementMasking, binary: boolean): MysqlRowMasker | undefined {
  const actions = planColumns(columns, sources, masking, binary);
  if (actions.length === 0) return undefined;
  return new RowMasker(columns, actions, masking, binary);
}

const SCRATCH_BYTES = 256;
const scratch = new Uint8Array(SCRATCH_BYTES);
const scratchViews: Uint8Array[] = [];

/**
 * A value of a row as a Uint8Array for the byte masker. A short value is copied into a scratch
 * buffer seen through a view kept per length (no object per value); the masker reads it and
 * returns a buffer of its own, never the view.
 */
function valueView(payload: Buffer, start: number, len: number): Uint8Array {
  if (len > SCRATCH_BYTES) return new Uint8Array(payload.buffer, payload.byteOffset + start, len);
  for (let i = 0; i < len; i++) scratch[i] = payload[start + i]!;
  return (scratchViews[len] ??= scratch.subarray(0, len));
}

/** Writes a length-encoded integer at `at`; returns the end. */
function putLenenc(out: Buffer, at: number, n: number): number {
  if (n < 0xfb) {
    out[at] = n;
    return at + 1;
  }
  if (n < 0x10000) {
    out[at] = 0xfc;
    out[at + 1] = n & 0xff;
    out[at + 2] = n >>> 8;
    return at + 3;
  }
  if (n < 0x1000000) {
    out[at] = 0xfd;
    out[at + 1] = n & 0xff;
    out[at + 2] = (n >>> 8) & 0xff;
    out[at + 3] = n >>> 16;
    return at + 4;
  }
  out[at] = 0xfe;
  out.writeUInt32LE(n >>> 0, at + 1);
  out.writeUInt32LE(Math.floor(n / 0x100000000), at + 5);
  return at + 9;
}

/** Layout of a binary-protocol value: its fixed width, LENGTH_PREFIXED, or TEMPORAL (a one-byte length). */
const LENGTH_PREFIXED = -1;
const TEMPORAL = -2;
function fixedWidthOf(type: number): number {
  const layout = binaryValueLayout(type);
  if (typeof layout === 'object') return layout.fixed;
  return layout === 'lenenc' ? LENGTH_PREFIXED : TEMPORAL;
}

/** Applies a plan to the rows of one result. */
class RowMasker implements MysqlRowMasker {
  readonly actions: readonly MysqlColumnAction[];
  readonly #masking: StatementMasking;
  readonly #binary: boolean;
  readonly #columnCount: number;
  readonly #types: Uint8Array;
  /** Per action: the text options (masks of text columns) and whether it takes the byte path. */
  readonly #options: (MaskTextOptions | undefined)[];
  readonly #bytePath: boolean[];
  /** Per action: the binary value's fixed width, LENGTH_PREFIXED or TEMPORAL (always LENGTH_PREFIXED in text rows). */
  readonly #fixed: number[];
  readonly #ranges: RowRanges;
  /** Per action, for the row being masked: undefined (unchanged), null (NULL) or the new value. */
  readonly #out: (Buffer | null | undefined)[];
  readonly #maskedBy = new Map<string, Set<string>>();
  #masked: MaskedColumn[] | undefined;

  constructor(columns: readonly ColumnDefinition41[], actions: readonly MysqlColumnAction[], masking: StatementMasking, binary: boolean) {
    this.actions = [...actions].sort((a, b) => a.index - b.index);
    this.#masking = masking;
    this.#binary = binary;
    this.#columnCount = columns.length;
    this.#types = Uint8Array.from(columns, (c) => c.type);
    this.#ranges = createRowRanges(columns.length);
    this.#out = new Array<Buffer | null | undefined>(this.actions.length);
    this.#options = this.actions.map((a) => (a.mode === 'mask' && (a.shape.family === 'text' || a.shape.family === 'json') ? textOptionsFor(a.shape, masking.hashKey) : undefined));
    // UTF-8 text under a strategy (the common case) goes straight to the byte masker.
    this.#bytePath = this.actions.map((a) => a.mode === 'mask' && a.strategy !== 'null' && a.shape.family === 'text' && a.shape.codec === 'utf8');
    this.#fixed = this.actions.map((a) => (binary ? fixedWidthOf(a.shape.type) : LENGTH_PREFIXED));
    // A planned mask is recorded whether or not a row comes.
    for (const a of this.actions) if (a.mode === 'mask') this.#note(a.name, a.rule);
  }

  get masked(): readonly MaskedColumn[] {
    if (this.#masked === undefined) {
      const out: MaskedColumn[] = [];
      for (const [column, by] of this.#maskedBy) for (const b of by) out.push({ column, by: b });
      this.#masked = out;
    }
    return this.#masked;
  }

  #note(column: string, by: string): void {
    let set = this.#maskedBy.get(column);
    if (!set) this.#maskedBy.set(column, (set = new Set()));
    if (set.has(by)) return;
    set.add(by);
    this.#masked = undefined;
  }

  #value(k: number, payload: Buffer, start: number, end: number): Buffer | null | undefined {
    const a = this.actions[k]!;
    const m = this.#masking;
    if (a.mode === 'mask') {
      if (this.#bytePath[k]) return maskTextBytes(valueView(payload, start, end - start), a.strategy, this.#options[k]!);
      return maskValue(payload.subarray(start, end), a.shape, a.strategy, m.hashKey, this.#options[k]);
    }
    const found = scanValue(payload.subarray(start, end), a.shape, m.detectors, a.strategy, m.hashKey);
    if (found === undefined) return undefined;
    for (const kind of found.kinds as readonly DetectorKind[]) this.#note(a.name, `detector:${kind}`);
    return found.value;
  }

  maskRow(payload: Buffer, headroom = 0): Buffer | undefined {
    const ranges = this.#binary ? decodeBinaryRow(payload, this.#types, this.#ranges) : decodeTextRow(payload, this.#columnCount, this.#ranges);
    const { starts, ends } = ranges;
    const actions = this.actions;
    const out = this.#out;
    let changed = false;
    // Size of the new row: the old one, less the replaced values, plus their replacements.
    let size = payload.length;
    for (let k = 0; k < actions.length; k++) {
      const i = actions[k]!.index;
      const start = starts[i]!;
      if (start < 0) {
        out[k] = undefined;
        continue;
      }
      let v = this.#value(k, payload, start, ends[i]!);
      // Only hashed integers replace a fixed-width value, at its width; a date or time is only
      // ever made NULL. Anything else would break the row's layout: NULL instead.
      const fixed = this.#fixed[k]!;
      if (v && (fixed === TEMPORAL || (fixed >= 0 && v.length !== fixed))) v = null;
      out[k] = v;
      if (v === undefined) continue;
      changed = true;
      const from = i === 0 ? this.#firstValueAt() : ends[i - 1]!;
      size -= ends[i]! - from;
      if (v === null) size += this.#binary ? 0 : 1;
      else size += fixed >= 0 ? v.length : lenencIntSize(v.length) + v.length;
    }
    if (!changed) return undefined;
    const row = Buffer.allocUnsafe(headroom + size);
    let at = headroom;
    let copied = 0;
    for (let k = 0; k < actions.length; k++) {
      const v = out[k];
      if (v === undefined) continue;
      const i = actions[k]!.index;
      const from = i === 0 ? this.#firstValueAt() : ends[i - 1]!;
      at += payload.copy(row, at, copied, from);
      if (v === null) {
        if (this.#binary) {
          const bit = i + 2;
          row[headroom + 1 + (bit >> 3)]! |= 1 << (bit & 7);
        } else row[at++] = LENENC_NULL;
      } else {
        // A fixed-width value keeps its width (hashed integers are made to it).
        if (this.#fixed[k]! === LENGTH_PREFIXED) at = putLenenc(row, at, v.length);
        at += v.copy(row, at);
      }
      copied = ends[i]!;
    }
    at += payload.copy(row, at, copied);
    if (at !== headroom + size) throw new Error(`masked row of ${at - headroom} bytes, expected ${size}`);
    return row;
  }

  /** Where the first value starts: after 0x00 and the NULL bitmap in a binary row. */
  #firstValueAt(): number {
    return this.#binary ? 1 + ((this.#columnCount + 9) >> 3) : 0;
  }
}
