/**
 * Mask plans: which columns of a result are masked (and how), computed once per result
 * description, and the row rewrite that applies one.
 *
 * A result column is resolved to its sources in three ways, all of them used:
 * 1. RowDescription's table OID and column number name a plain column whatever its alias
 *    (PostgreSQL keeps them through subqueries and CTEs); a view's column is traced through
 *    the view's definition to the table columns it shows;
 * 2. the statement's column lineage (from the parse tree) gives the sources of computed
 *    columns (expressions, functions, aggregates, CASE, subqueries, set operations...),
 *    traced through the views and SQL functions it names;
 * 3. a column that cannot be resolved (its position is unknown and it is computed, or it
 *    comes from a function whose body cannot be seen) is scanned by the content detectors.
 * A column with any sensitive source is masked with the strongest strategy of its sources.
 */
import { maskTextBytes, type ColumnSource, type DetectorKind, type MaskStrategy, type MaskTextOptions, type ResultLineage } from '@sluice/core';
import type { CatalogSnapshot } from './catalog.js';
import { isTextual, maskValue, scanValue, textOptionsFor, type ValueShape } from './values.js';

/** A column of a RowDescription. */
export interface ResultField extends ValueShape {
  readonly name: string;
  readonly tableOid: number;
  readonly attnum: number;
}

export function decodeRowDescription(frame: Buffer): ResultField[] {
  const n = frame.readInt16BE(5);
  const fields: ResultField[] = [];
  let at = 7;
  for (let i = 0; i < n; i++) {
    const nul = frame.indexOf(0, at);
    if (nul < 0) throw new RangeError('RowDescription field name is not terminated');
    const name = frame.toString('utf8', at, nul);
    at = nul + 1;
    fields.push({
      name,
      tableOid: frame.readUInt32BE(at),
      attnum: frame.readInt16BE(at + 4),
      typeOid: frame.readUInt32BE(at + 6),
      typmod: frame.readInt32BE(at + 12),
      format: frame.readInt16BE(at + 16),
    });
    at += 18;
  }
  return fields;
}



/** What masks one statement's results: the rules, detectors and key in force for it. */
export interface MaskRules {
  readonly target: string;
  /** The strongest configured (or policy) strategy among sources, and the rule that set it. */
  readonly strongest: (sources: readonly ColumnSource[]) => { readonly strategy: MaskStrategy; readonly rule: string } | undefined;
  /** True when a source is a free-text column that is always scanned. */
  readonly scanned: (source: ColumnSource) => boolean;
  readonly detectors: ReadonlySet<DetectorKind>;
  readonly detectorStrategy: MaskStrategy;
  readonly hashKey: Buffer;
}

/** Everything known about where a result's columns come from. */
export interface ResultSources {
  readonly lineage: ResultLineage | undefined;
  readonly catalog: CatalogSnapshot;
  /** Called when a user relation's OID is not in the catalog (it is out of date). */
  readonly onUnknownRelation?: () => void;
}

/** OIDs below this are the system's own objects (FirstNormalObjectId). */
const FIRST_USER_OID = 16384;

export interface ColumnAction {
  readonly index: number;
  readonly name: string;
  readonly shape: ValueShape;
  /** `mask` applies `strategy`; `scan` runs the detectors. */
  readonly mode: 'mask' | 'scan';
  readonly strategy: MaskStrategy;
  /** The rule behind a mask (`detector` for scans). */
  readonly rule: string;
}

/** A masked (or scanned) result column, for the audit record: never a value. */
export interface MaskedColumn {
  readonly column: string;
  readonly by: string;
}

/** Sources of one result column. `resolved` is false when something it draws from cannot be seen. */
function columnSources(field: ResultField, index: number, fieldCount: number, sources: ResultSources): { list: ColumnSource[]; resolved: boolean; direct: boolean } {
  const { catalog, lineage } = sources;
  const list: ColumnSource[] = [];
  let resolved = true;
  // A plain column (the wire names its table and column): its value is the stored value.
  let direct = field.tableOid !== 0 && catalog.relation(field.tableOid) !== undefined;
  if (field.tableOid !== 0) {
    const rel = catalog.relation(field.tableOid);
    if (rel === undefined) {
      // A system catalog (scanned: pg_stats holds sample values of user columns), or a
      // relation made after the catalog was read: then it may hold anything the statement reads.
      resolved = false;
      if (field.tableOid >= FIRST_USER_OID) {
        if (lineage !== undefined) list.push(...catalog.expand(lineage.all));
        sources.onUnknownRelation?.();
      }
    } else {
      const col = rel.columns.find((c) => c.attnum === field.attnum);
      list.push({ schema: rel.schema, table: rel.name, column: col?.name ?? '*' });
      if (rel.kind === 'v' || rel.kind === 'm') list.push(...catalog.viewColumnSources(rel.oid, field.attnum));
    }
  }
  const columns = lineage?.columns;
  if (columns !== undefined && columns.length === fieldCount) {
    const c = columns[index]!;
    if (field.tableOid === 0) direct = c.direct;
    list.push(...catalog.expand(c.sources));
    for (const fn of c.functions) {
      for (const f of catalog.functionsNamed(fn)) {
        if (f.sources === undefined) resolved = false;
        else list.push(...catalog.expand(f.sources));
      }
    }
  } else if (field.tableOid === 0) {
    // A computed column at a position the analysis cannot tell: it may draw on anything the
    // result draws on.
    if (lineage === undefined) resolved = false;
    else {
      list.push(...catalog.expand(lineage.all));
      for (const fn of lineage.functions) {
        for (const f of catalog.functionsNamed(fn)) {
          if (f.sources === undefined) resolved = false;
          else list.push(...catalog.expand(f.sources));
        }
      }
    }
  }
  return { list, resolved, direct };
}

/** The actions for a result; empty when nothing in it needs masking or scanning. */
export function planColumns(fields: readonly ResultField[], sources: ResultSources, rules: MaskRules): ColumnAction[] {
  const actions: ColumnAction[] = [];
  for (let i = 0; i < fields.length; i++) {
    const field = fields[i]!;
    const { list, resolved, direct } = columnSources(field, i, fields.length, sources);
    const match = rules.strongest(list);
    if (match !== undefined) {
      // `partial` and `hash` keep something of the value: on a value the query computed, the
      // query chooses what is kept (`substr(email, n)` row by row, a guess concatenated to
      // compare hashes). Only stored values get them; computed ones are redacted.
      const strategy = direct || match.strategy === 'redact' || match.strategy === 'null' ? match.strategy : 'redact';
      actions.push({ index: i, name: field.name, shape: field, mode: 'mask', strategy, rule: match.rule });
    } else if (rules.detectors.size > 0 && (!resolved || list.some(rules.scanned))) {
      actions.push({ index: i, name: field.name, shape: field, mode: 'scan', strategy: rules.detectorStrategy, rule: 'detector' });
    }
  }
  return actions;
}

/**
 * Copies `src[from, to)` into `dst` at `at`; returns the end. Short runs (most column values)
 * are copied in a loop: a call into the native copy costs more than the bytes.
 */
function copyBytes(src: Buffer, from: number, to: number, dst: Buffer, at: number): number {
  const n = to - from;
  if (n > 48) return at + src.copy(dst, at, from, to);
  for (let i = 0; i < n; i++) dst[at + i] = src[from + i]!;
  return at + n;
}

/**
 * What one upstream chunk becomes for the client, built in one buffer: the bytes relayed as
 * they are and the rows rewritten in place, so that each byte is copied once.
 */
export class OutBuffer {
  buf: Buffer;
  at = 0;

  constructor(size: number) {
    this.buf = Buffer.allocUnsafe(Math.max(256, size));
  }

  ensure(n: number): void {
    if (this.at + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.at + n + 256));
    this.buf.copy(next, 0, 0, this.at);
    this.buf = next;
  }

  write(src: Buffer, from = 0, to = src.length): void {
    this.ensure(to - from);
    this.at = copyBytes(src, from, to, this.buf, this.at);
  }

  /** The bytes written (a view: the buffer is not reused). */
  bytes(): Buffer {
    return this.buf.subarray(0, this.at);
  }
}

const SCRATCH_BYTES = 256;
const scratch = new Uint8Array(SCRATCH_BYTES);
const scratchViews: Uint8Array[] = [];

/**
 * A value of a row as a Uint8Array for the byte masker. A short value is copied into a scratch
 * buffer seen through a view kept per length (no object per value); the masker reads it and
 * returns a buffer of its own, never the view.
 */
function valueView(frame: Buffer, start: number, len: number): Uint8Array {
  if (len > SCRATCH_BYTES) return new Uint8Array(frame.buffer, frame.byteOffset + start, len);
  for (let i = 0; i < len; i++) scratch[i] = frame[start + i]!;
  return (scratchViews[len] ??= scratch.subarray(0, len));
}

/** Applies a plan to the DataRows of one result. */
export class RowMasker {
  readonly #byIndex: (ColumnAction | undefined)[];
  readonly #rules: MaskRules;
  readonly #maskedBy = new Map<string, Set<string>>();
  readonly #options: (MaskTextOptions | undefined)[] = [];
  /** By column: masked by a strategy and of a text type. */
  readonly #textual: boolean[] = [];

  #optionsOf(action: ColumnAction): MaskTextOptions {
    let options = this.#options[action.index];
    if (options === undefined) options = this.#options[action.index] = textOptionsFor(action.shape, this.#rules.hashKey);
    return options;
  }

  readonly #fieldCount: number;

  constructor(readonly actions: readonly ColumnAction[], fieldCount: number, rules: MaskRules) {
    this.#fieldCount = fieldCount;
    this.#byIndex = new Array<ColumnAction | undefined>(fieldCount);
    for (const a of actions) {
      this.#byIndex[a.index] = a;
      this.#textual[a.index] = a.mode === 'mask' && a.strategy !== 'null' && isTextual(a.shape.typeOid);
      // A planned mask is recorded whether or not a row comes.
      if (a.mode === 'mask') this.#note(a, a.rule);
    }
    this.#rules = rules;
  }

  /** Masks one column value: the new value (null for NULL), or undefined to keep it. */
  maskValue(action: ColumnAction, value: Buffer): Buffer | null | undefined {
    const rules = this.#rules;
    if (action.mode === 'mask') return maskValue(value, action.shape, action.strategy, rules.hashKey, undefined, this.#optionsOf(action));
    const found = scanValue(value, action.shape, rules.detectors, action.strategy, rules.hashKey);
    if (found === undefined) return undefined;
    for (const k of found.kinds) this.#note(action, `detector:${k}`);
    return found.value;
  }

  #note(action: ColumnAction, by: string): void {
    let set = this.#maskedBy.get(action.name);
    if (!set) this.#maskedBy.set(action.name, (set = new Set()));
    set.add(by);
  }

  /** Writes a DataRow frame (type byte included) to `out`, rewritten where the plan says. */
  maskRowInto(frame: Buffer, out: OutBuffer): void {
    const n = frame.readInt16BE(5);
    // A row that does not have the planned columns was not described to the gateway as it is.
    if (n !== this.#fieldCount) throw new Error(`a row of ${n} columns in a result planned with ${this.#fieldCount}`);
    const rowStart = out.at;
    out.ensure(frame.length);
    let from = 0;
    let at = 7;
    for (let i = 0; i < n; i++) {
      const len = (frame[at]! << 24) | (frame[at + 1]! << 16) | (frame[at + 2]! << 8) | frame[at + 3]!;
      const valueStart = at + 4;
      const end = len < 0 ? valueStart : valueStart + len;
      if (end > frame.length) throw new RangeError('DataRow value runs past the end of the message');
      const action = this.#byIndex[i];
      if (action !== undefined && len >= 0) {
        // Text columns under a strategy (the common case) go straight to the byte masker, on a
        // plain view of the value (cheaper than a Buffer view).
        const masked =
          this.#textual[i] === true
            ? maskTextBytes(valueView(frame, valueStart, len), action.strategy, this.#optionsOf(action))
            : this.maskValue(action, frame.subarray(valueStart, end));
        if (masked !== undefined) {
          out.write(frame, from, at);
          if (masked === null) {
            out.ensure(4);
            out.buf.writeInt32BE(-1, out.at);
            out.at += 4;
          } else {
            out.ensure(4 + masked.length);
            out.buf.writeInt32BE(masked.length, out.at);
            out.at = copyBytes(masked, 0, masked.length, out.buf, out.at + 4);
          }
          from = end;
        }
      }
      at = end;
    }
    out.write(frame, from, frame.length);
    out.buf.writeInt32BE(out.at - rowStart - 1, rowStart + 1);
  }

  /** Masked columns so far and what masked them, for the audit record. */
  masked(): MaskedColumn[] {
    const out: MaskedColumn[] = [];
    for (const [column, by] of this.#maskedBy) for (const b of by) out.push({ column, by: b });
    return out;
  }
}
