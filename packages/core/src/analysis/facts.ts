/**
 * What a dialect's analysis of one statement finds, gathered while walking its parse tree (and
 * tokens): operation classes, objects (with the columns seen), hazards, functions called, and
 * why a part could not be analysed. Dialects extend it with their own facts (a PREPARE's
 * statement, settings changed...) and freeze it into an Analysis with `objectRefs()`.
 */
import { type Hazard, type ObjectAccess, type ObjectRef, OperationClass } from './types.js';

export type ObjectKind = ObjectRef['kind'];

/** An object being collected; columns grow while the walk goes on. */
export interface ObjectEntry {
  readonly schema: string | undefined;
  readonly name: string;
  readonly kind: ObjectKind;
  readonly access: ObjectAccess;
  readonly columns: Set<string>;
  /** Some column of this object was referenced in a way that could not be attributed. */
  columnsUnknown: boolean;
}

export class StatementFacts {
  readonly operations: OperationClass[] = [];
  readonly hazards: Hazard[] = [];
  readonly functions: string[] = [];
  readonly unanalysable: string[] = [];
  readonly #objects = new Map<string, ObjectEntry>();
  /**
   * True when the result depends on the value of a literal (an always-true WHERE decided by
   * constants, a DO body, a SQL string given to a function...). Such an analysis must not be
   * shared with other texts of the same normalized shape.
   */
  literalDependent = false;
  /** `EXECUTE name`: the session substitutes what it prepared. */
  execute: string | undefined;
  /** `DEALLOCATE name`. */
  deallocate: string | undefined;

  op(op: OperationClass): void {
    if (!this.operations.includes(op)) this.operations.push(op);
  }

  hazard(h: Hazard): void {
    if (!this.hazards.includes(h)) this.hazards.push(h);
  }

  fn(name: string): void {
    if (!this.functions.includes(name)) this.functions.push(name);
  }

  /** Classes the statement as unknown, saying why. */
  unknown(reason: string): void {
    this.op(OperationClass.Unknown);
    if (!this.unanalysable.includes(reason)) this.unanalysable.push(reason);
  }

  /** The entry for an object with this access (one per schema, name, kind and access). */
  object(schema: string | undefined, name: string, kind: ObjectKind, access: ObjectAccess): ObjectEntry {
    const key = `${kind}\u0000${access}\u0000${schema ?? ''}\u0000${schema === undefined ? 0 : 1}\u0000${name}`;
    let entry = this.#objects.get(key);
    if (entry === undefined) {
      entry = { schema, name, kind, access, columns: new Set(), columnsUnknown: false };
      this.#objects.set(key, entry);
    }
    return entry;
  }

  get objectEntries(): IterableIterator<ObjectEntry> {
    return this.#objects.values();
  }

  /**
   * Adds another statement's facts (a CTE body, a statement inside a block, the statement
   * EXPLAIN shows). `asRead` keeps only what a plan without execution shows: objects as read,
   * functions; `dropRead` leaves out the `read` class (a query whose rows are copied out).
   */
  merge(other: StatementFacts, how: { readonly asRead?: boolean; readonly dropRead?: boolean } = {}): void {
    if (other.literalDependent) this.literalDependent = true;
    for (const f of other.functions) this.fn(f);
    for (const o of other.objectEntries) {
      const entry = this.object(o.schema, o.name, o.kind, how.asRead === true ? 'read' : o.access);
      for (const c of o.columns) entry.columns.add(c);
      if (o.columnsUnknown) entry.columnsUnknown = true;
    }
    if (how.asRead === true) {
      this.op(OperationClass.Read);
      return;
    }
    for (const op of other.operations) if (!(how.dropRead === true && op === OperationClass.Read)) this.op(op);
    for (const h of other.hazards) this.hazard(h);
    for (const u of other.unanalysable) if (!this.unanalysable.includes(u)) this.unanalysable.push(u);
  }

  /** Objects as the Analysis reports them. */
  objectRefs(): ObjectRef[] {
    const out: ObjectRef[] = [];
    for (const o of this.#objects.values()) {
      const ref: { schema?: string; name: string; kind: ObjectKind; access: ObjectAccess; columns?: readonly string[] } =
        o.schema === undefined
          ? { name: o.name, kind: o.kind, access: o.access }
          : { schema: o.schema, name: o.name, kind: o.kind, access: o.access };
      if (!o.columnsUnknown && o.columns.size > 0) ref.columns = Object.freeze([...o.columns]);
      out.push(Object.freeze(ref));
    }
    return out;
  }
}
