/**
 * The walk over a PostgreSQL parse tree that turns one statement into {@link Facts}:
 * operation classes, objects and columns, hazards and functions.
 *
 * Mapping of statement kinds to operation classes (as the earlier keyword classifier had it):
 * SELECT/VALUES/TABLE/SHOW/FETCH/MOVE/CLOSE read; INSERT/UPDATE/DELETE/MERGE/TRUNCATE/LOCK/
 * NOTIFY/CALL write; CREATE/ALTER/DROP/COMMENT/REINDEX/CLUSTER/REFRESH... ddl; GRANT/REVOKE,
 * roles, SET ROLE / SESSION AUTHORIZATION privilege; VACUUM/ANALYZE/CHECKPOINT/LOAD/ALTER SYSTEM
 * admin; transaction control transaction; SET/RESET/DISCARD/DEALLOCATE/LISTEN session-setting.
 * Anything else, and anything not understood, is unknown.
 *
 * A statement reads (`read` joins its classes) when it reads a table or calls a function, so
 * an UPDATE whose WHERE reads columns is write + read and a policy sees the columns it reads.
 */
import { Hazard, type ObjectAccess, OperationClass } from '@sluice/core';
import { Facts, type ObjectEntry, type ObjectKind } from './facts.js';
import { functionEffect } from './functions.js';
import { parseSql } from './parse.js';
import { analyzeDoBlock } from './plpgsql.js';
import { as, hasLiteral, isObj, list, nameList, rangeVar, stringConstant, stringNode, text, unwrap, type Obj } from './tree.js';
import { type TruthContext, unboundedWhere } from './truth.js';

/** Nesting limit for statements inside statements (SQL strings, DO blocks, EXPLAIN ...). */
const MAX_DEPTH = 16;

export const EXECUTE_UNSEEN = 'EXECUTE of a prepared statement the analyzer has not seen';

/** A relation visible in a query: a table, or a CTE/subquery/function result (no table). */
class Rel {
  #entry: ObjectEntry | undefined;
  constructor(
    readonly name: string,
    readonly schema: string | undefined,
    /** Creates the table's read entry on first use (DML targets are read only if referenced). */
    readonly open: (() => ObjectEntry) | undefined,
    /** Only reachable by qualified names (`excluded` in ON CONFLICT). */
    readonly qualifiedOnly = false,
  ) {}

  get isTable(): boolean {
    return this.open !== undefined;
  }

  entry(): ObjectEntry | undefined {
    if (this.open === undefined) return undefined;
    return (this.#entry ??= this.open());
  }
}

class Scope {
  readonly rels: Rel[] = [];
  readonly ctes = new Set<string>();
  /** Output column names, visible to ORDER BY. */
  outputNames: ReadonlySet<string> | undefined;
  constructor(readonly parent: Scope | undefined) {}

  isCte(name: string): boolean {
    for (let s: Scope | undefined = this; s !== undefined; s = s.parent) if (s.ctes.has(name)) return true;
    return false;
  }
}

export interface WalkOptions {
  /** How deep this walk is nested in other analyses. */
  readonly depth: number;
  /** PL/pgSQL variable and label names: a column reference with such a name is not a column. */
  readonly variables?: ReadonlySet<string>;
}

/** Parses and analyses SQL text (statements or a `SELECT expr`) into `facts`. */
export function analyzeSqlInto(
  sql: string,
  facts: Facts,
  options: WalkOptions & { readonly nested?: boolean; readonly what?: string },
): boolean {
  if (options.depth > MAX_DEPTH) {
    facts.unknown('statements nested too deeply');
    return false;
  }
  const parsed = parseSql(sql);
  if (!parsed.ok) {
    facts.unknown(options.what === undefined ? parsed.error : `${options.what}: ${parsed.error}`);
    return false;
  }
  const walker = new Walker(facts, options);
  for (const s of parsed.stmts) walker.statement(s.stmt, undefined, options.nested === true);
  return true;
}

/** Analyses one parsed top-level statement. */
export function analyzeParsed(stmt: unknown, facts: Facts, options: WalkOptions = { depth: 0 }): void {
  try {
    new Walker(facts, options).statement(stmt, undefined, false);
  } catch (e) {
    // A tree too deep for the walk (RangeError) or a shape it does not expect.
    facts.unknown(`analysis failed: ${e instanceof Error ? e.name : 'error'}`);
  }
}

const DROP_TABLE_KINDS = new Set(['OBJECT_TABLE', 'OBJECT_VIEW', 'OBJECT_MATVIEW', 'OBJECT_FOREIGN_TABLE', 'OBJECT_SEQUENCE']);
const FUNCTION_KINDS = new Set(['OBJECT_FUNCTION', 'OBJECT_PROCEDURE', 'OBJECT_ROUTINE', 'OBJECT_AGGREGATE']);
/** Objects named as `[schema,] table, name` whose table is what they belong to. */
const TABLE_MEMBER_KINDS = new Set(['OBJECT_TRIGGER', 'OBJECT_RULE', 'OBJECT_POLICY', 'OBJECT_TABCONSTRAINT']);

function objectKind(objtype: unknown): ObjectKind {
  if (typeof objtype !== 'string') return 'other';
  if (DROP_TABLE_KINDS.has(objtype)) return 'table';
  if (FUNCTION_KINDS.has(objtype)) return 'function';
  switch (objtype) {
    case 'OBJECT_SCHEMA':
      return 'schema';
    case 'OBJECT_DATABASE':
      return 'database';
    case 'OBJECT_ROLE':
      return 'role';
    case 'OBJECT_EXTENSION':
      return 'extension';
    default:
      return 'other';
  }
}

/** The name parts of an object in DROP/COMMENT/ALTER ... OWNER and similar statements. */
function objectNameParts(v: unknown): string[] | undefined {
  const s = stringNode(v);
  if (s !== undefined) return [s];
  const l = as(v, 'List');
  if (l !== undefined) return nameList(l['items']);
  const owa = as(v, 'ObjectWithArgs');
  if (owa !== undefined) return nameList(owa['objname']);
  const tn = as(v, 'TypeName');
  if (tn !== undefined) return nameList(tn['names']);
  const rv = rangeVar(v);
  if (rv !== undefined) {
    const name = text(rv['relname']) ?? '';
    const schema = text(rv['schemaname']);
    return schema === undefined ? [name] : [schema, name];
  }
  const role = as(v, 'RoleSpec');
  if (role !== undefined && typeof role['rolename'] === 'string') return [role['rolename']];
  return undefined;
}

/** The settings that change the effective role (`SET ROLE`, `SET SESSION AUTHORIZATION`). */
function isRoleSetting(name: unknown): boolean {
  if (typeof name !== 'string') return false;
  const lower = name.toLowerCase();
  return lower === 'role' || lower === 'session_authorization';
}

function aliasOf(f: Obj): string | undefined {
  const alias = f['alias'];
  return isObj(alias) ? text(alias['aliasname']) : undefined;
}

/** Walks statements and expressions of one analysis into its facts. */
class Walker {
  readonly #facts: Facts;
  readonly #depth: number;
  readonly #variables: ReadonlySet<string> | undefined;
  readonly #truth: TruthContext = { literal: false };

  constructor(facts: Facts, options: WalkOptions) {
    this.#facts = facts;
    this.#depth = options.depth;
    this.#variables = options.variables;
  }

  /**
   * Analyses a statement node. `nested`: a query inside another statement (a subquery, a CTE
   * body, the source of an INSERT): it reads only if it reads a table or calls a function.
   */
  statement(node: unknown, parent: Scope | undefined, nested: boolean): void {
    const n = unwrap(node);
    if (n === undefined) {
      this.#facts.unknown('statement not understood');
      return;
    }
    const [type, f] = n;
    const facts = this.#facts;
    switch (type) {
      case 'SelectStmt':
        this.#select(f, parent, nested);
        break;
      case 'InsertStmt':
        this.#insert(f, parent);
        break;
      case 'UpdateStmt':
        this.#update(f, parent);
        break;
      case 'DeleteStmt':
        this.#delete(f, parent);
        break;
      case 'MergeStmt':
        this.#merge(f, parent);
        break;
      case 'TruncateStmt':
        facts.op(OperationClass.Write);
        facts.hazard(Hazard.Truncate);
        for (const r of list(f['relations'])) this.#namedRelation(r, 'write');
        break;
      case 'CopyStmt':
        this.#copy(f);
        break;
      case 'ExplainStmt':
        this.#explain(f);
        break;
      case 'PrepareStmt': {
        const inner = new Facts();
        new Walker(inner, { depth: this.#depth + 1 }).statement(f['query'], undefined, false);
        facts.merge(inner);
        facts.prepare = { name: text(f['name']) ?? '', facts: inner };
        break;
      }
      case 'ExecuteStmt':
        facts.unknown(EXECUTE_UNSEEN);
        facts.execute = text(f['name']) ?? '';
        this.expr(f['params'], undefined);
        break;
      case 'DeallocateStmt':
        facts.op(OperationClass.SessionSetting);
        facts.deallocate = f['isall'] === true || typeof f['name'] !== 'string' ? '*' : f['name'];
        break;
      case 'DeclareCursorStmt':
        this.statement(f['query'], parent, false);
        break;
      case 'DoStmt':
        analyzeDoBlock(f, facts, this.#depth + 1);
        break;
      case 'CallStmt':
        facts.op(OperationClass.Write);
        if (isObj(f['funccall'])) this.#funcCall(f['funccall'], undefined, true);
        break;
      case 'VariableSetStmt':
        this.#variableSet(f);
        break;
      case 'VariableShowStmt':
      case 'FetchStmt':
      case 'ClosePortalStmt':
        facts.op(OperationClass.Read);
        break;
      case 'TransactionStmt':
        facts.op(OperationClass.Transaction);
        break;
      case 'LockStmt':
        facts.op(OperationClass.Write);
        for (const r of list(f['relations'])) this.#namedRelation(r, 'write');
        break;
      case 'NotifyStmt':
        facts.op(OperationClass.Write);
        break;
      case 'DiscardStmt':
        facts.op(OperationClass.SessionSetting);
        // DISCARD ALL deallocates every prepared statement of the session.
        if (f['target'] === 'DISCARD_ALL' || f['target'] === undefined) facts.deallocate = '*';
        break;
      case 'ListenStmt':
      case 'UnlistenStmt':
      case 'ConstraintsSetStmt':
        facts.op(OperationClass.SessionSetting);
        break;
      case 'VacuumStmt':
        facts.op(OperationClass.Admin);
        for (const r of list(f['rels'])) {
          const vr = as(r, 'VacuumRelation');
          if (vr === undefined) continue;
          const entry = this.#namedRelation(vr['relation'], 'ddl');
          for (const c of nameList(vr['va_cols']) ?? []) entry?.columns.add(c);
        }
        break;
      case 'CheckPointStmt':
      case 'LoadStmt':
        facts.op(OperationClass.Admin);
        break;
      case 'AlterSystemStmt':
        facts.op(OperationClass.Admin);
        facts.hazard(Hazard.AlterSystem);
        break;
      case 'GrantStmt':
        this.#grant(f);
        break;
      case 'GrantRoleStmt':
        facts.op(OperationClass.Privilege);
        facts.hazard(Hazard.GrantRevoke);
        for (const r of list(f['granted_roles'])) {
          const name = text(as(r, 'AccessPriv')?.['priv_name']);
          if (name !== undefined) facts.object(undefined, name, 'role', 'ddl');
        }
        break;
      case 'AlterDefaultPrivilegesStmt':
      case 'ReassignOwnedStmt':
        facts.op(OperationClass.Privilege);
        facts.hazard(Hazard.GrantRevoke);
        break;
      case 'DropOwnedStmt':
        // Drops every object the roles own and revokes their privileges.
        facts.op(OperationClass.Ddl);
        facts.op(OperationClass.Privilege);
        facts.hazard(Hazard.DropTable);
        facts.hazard(Hazard.GrantRevoke);
        break;
      case 'CreateRoleStmt':
      case 'AlterRoleStmt':
      case 'AlterRoleSetStmt':
      case 'DropRoleStmt':
        this.#role(type, f);
        break;
      case 'RenameStmt':
        this.#rename(f);
        break;
      case 'DropStmt':
        this.#drop(f);
        break;
      case 'DropdbStmt':
        facts.op(OperationClass.Ddl);
        facts.hazard(Hazard.DropDatabase);
        facts.object(undefined, text(f['dbname']) ?? '', 'database', 'ddl');
        break;
      case 'CreatedbStmt':
      case 'AlterDatabaseStmt':
      case 'AlterDatabaseSetStmt':
      case 'AlterDatabaseRefreshCollStmt':
        facts.op(OperationClass.Ddl);
        facts.object(undefined, text(f['dbname']) ?? '', 'database', 'ddl');
        // ALTER DATABASE d SET role = x: every later session on d starts as x.
        if (isObj(f['setstmt']) && isRoleSetting(f['setstmt']['name'])) facts.hazard(Hazard.RoleChange);
        break;
      case 'CreateExtensionStmt':
        facts.op(OperationClass.Ddl);
        facts.hazard(Hazard.CreateExtension);
        facts.object(undefined, text(f['extname']) ?? '', 'extension', 'ddl');
        break;
      case 'AlterExtensionStmt':
      case 'AlterExtensionContentsStmt':
        facts.op(OperationClass.Ddl);
        if (f['action'] === -1) facts.hazard(Hazard.AlterDrop);
        facts.object(undefined, text(f['extname']) ?? '', 'extension', 'ddl');
        break;
      case 'CreateSchemaStmt': {
        facts.op(OperationClass.Ddl);
        const authrole = f['authrole'];
        const name = text(f['schemaname']) ?? (isObj(authrole) ? text(authrole['rolename']) : undefined);
        if (name !== undefined) facts.object(undefined, name, 'schema', 'ddl');
        for (const element of list(f['schemaElts'])) this.statement(element, undefined, false);
        break;
      }
      case 'CreateFunctionStmt': {
        // The body does not run when the routine is created.
        facts.op(OperationClass.Ddl);
        this.#namedObject(f['funcname'], 'function', 'ddl', true);
        break;
      }
      case 'AlterFunctionStmt':
        facts.op(OperationClass.Ddl);
        this.#namedObject(f['func'], 'function', 'ddl');
        break;
      case 'AlterTableStmt':
        this.#alterTable(f);
        break;
      case 'AlterDomainStmt':
        facts.op(OperationClass.Ddl);
        this.#namedObject(f['typeName'], 'other', 'ddl', true);
        if (f['subtype'] === 'X' || f['subtype'] === 'N' || (f['subtype'] === 'T' && f['def'] === undefined)) {
          facts.hazard(Hazard.AlterDrop);
        }
        // ADD CONSTRAINT checks the existing rows.
        if (f['subtype'] === 'C') this.expr(f['def'], undefined);
        break;
      case 'AlterPublicationStmt':
        facts.op(OperationClass.Ddl);
        if (f['action'] === 'AP_DropObjects') facts.hazard(Hazard.AlterDrop);
        break;
      case 'AlterSubscriptionStmt':
        facts.op(OperationClass.Ddl);
        if (f['kind'] === 'ALTER_SUBSCRIPTION_DROP_PUBLICATION') facts.hazard(Hazard.AlterDrop);
        break;
      case 'AlterOpFamilyStmt':
        facts.op(OperationClass.Ddl);
        if (f['isDrop'] === true) facts.hazard(Hazard.AlterDrop);
        break;
      case 'AlterTSConfigurationStmt':
        facts.op(OperationClass.Ddl);
        if (f['kind'] === 'ALTER_TSCONFIG_DROP_MAPPING') facts.hazard(Hazard.AlterDrop);
        break;
      case 'CreateTableAsStmt':
        this.#createTableAs(f);
        break;
      case 'IndexStmt':
        facts.op(OperationClass.Ddl);
        this.#namedRelation(f['relation'], 'ddl');
        break;
      case 'ReindexStmt':
        facts.op(OperationClass.Ddl);
        if (f['kind'] === 'REINDEX_OBJECT_INDEX') this.#namedObject(f['relation'], 'other', 'ddl');
        else if (f['relation'] !== undefined) this.#namedRelation(f['relation'], 'ddl');
        break;
      case 'CommentStmt':
      case 'SecLabelStmt':
      case 'AlterOwnerStmt':
      case 'AlterObjectSchemaStmt':
      case 'AlterObjectDependsStmt': {
        facts.op(OperationClass.Ddl);
        const objtype = f['objtype'] ?? f['objectType'];
        if (f['relation'] !== undefined) this.#namedRelation(f['relation'], 'ddl');
        else this.#typedObject(objtype, f['object'], 'ddl');
        break;
      }
      default:
        if (DDL_STATEMENTS.has(type)) {
          facts.op(OperationClass.Ddl);
          this.#ddlRelations(f);
        } else {
          facts.unknown(`statement type ${type} is not recognised`);
        }
    }
  }

  // --- queries -------------------------------------------------------------------------------

  #select(f: Obj, parent: Scope | undefined, nested: boolean): void {
    const facts = this.#facts;
    if (!nested) facts.op(OperationClass.Read);
    const scope = new Scope(parent);
    this.#with(f['withClause'], scope);
    if (f['op'] !== undefined && f['op'] !== 'SETOP_NONE') {
      if (isObj(f['larg'])) this.#select(f['larg'], scope, true);
      if (isObj(f['rarg'])) this.#select(f['rarg'], scope, true);
      // ORDER BY / LIMIT of a set operation see its output columns only.
      scope.rels.push(new Rel('', undefined, undefined));
      this.expr(f['sortClause'], scope);
      this.expr(f['limitOffset'], scope);
      this.expr(f['limitCount'], scope);
      return;
    }
    for (const item of list(f['fromClause'])) this.#fromItem(item, scope);
    this.expr(f['targetList'], scope);
    this.expr(f['whereClause'], scope);
    this.expr(f['groupClause'], scope);
    this.expr(f['havingClause'], scope);
    this.expr(f['windowClause'], scope);
    this.expr(f['distinctClause'], scope);
    this.expr(f['valuesLists'], scope);
    const outputs = new Set<string>();
    for (const t of list(f['targetList'])) {
      const name = text(as(t, 'ResTarget')?.['name']);
      if (name !== undefined) outputs.add(name);
    }
    scope.outputNames = outputs;
    this.expr(f['sortClause'], scope);
    scope.outputNames = undefined;
    this.expr(f['limitOffset'], scope);
    this.expr(f['limitCount'], scope);
    // FOR UPDATE / FOR SHARE lock rows: they need UPDATE privilege and block writers.
    if (list(f['lockingClause']).length > 0) facts.op(OperationClass.Write);
    const into = f['intoClause'];
    if (isObj(into)) {
      facts.op(OperationClass.Ddl);
      facts.op(OperationClass.Write);
      this.#namedRelation(into['rel'], 'ddl');
    }
  }

  #with(w: unknown, scope: Scope): void {
    if (!isObj(w)) return;
    const ctes: Obj[] = [];
    for (const c of list(w['ctes'])) {
      const cte = as(c, 'CommonTableExpr');
      if (cte !== undefined) ctes.push(cte);
    }
    if (w['recursive'] === true) for (const cte of ctes) scope.ctes.add(text(cte['ctename']) ?? '');
    for (const cte of ctes) {
      this.statement(cte['ctequery'], scope, true);
      scope.ctes.add(text(cte['ctename']) ?? '');
    }
  }

  #fromItem(item: unknown, scope: Scope): void {
    const n = unwrap(item);
    if (n === undefined) return;
    const [type, f] = n;
    switch (type) {
      case 'RangeVar': {
        const name = text(f['relname']) ?? '';
        const schema = text(f['schemaname']);
        const alias = aliasOf(f);
        if (schema === undefined && scope.isCte(name)) {
          scope.rels.push(new Rel(alias ?? name, undefined, undefined));
          return;
        }
        const entry = this.#table(schema, name, 'read');
        scope.rels.push(new Rel(alias ?? name, alias === undefined ? schema : undefined, () => entry));
        return;
      }
      case 'RangeSubselect':
        this.statement(f['subquery'], scope, true);
        scope.rels.push(new Rel(aliasOf(f) ?? '', undefined, undefined));
        return;
      case 'JoinExpr': {
        const before = scope.rels.length;
        this.#fromItem(f['larg'], scope);
        this.#fromItem(f['rarg'], scope);
        const joined = scope.rels.slice(before);
        const using = nameList(f['usingClause']) ?? [];
        if (f['isNatural'] === true || (using.length > 0 && joined.length !== 2)) {
          for (const r of joined) {
            const e = r.entry();
            if (e !== undefined) e.columnsUnknown = true;
          }
        } else {
          for (const r of joined) for (const c of using) r.entry()?.columns.add(c);
        }
        this.expr(f['quals'], scope);
        const alias = aliasOf(f) ?? text((f['join_using_alias'] as Obj | undefined)?.['aliasname']);
        if (alias !== undefined) scope.rels.push(new Rel(alias, undefined, undefined));
        return;
      }
      case 'RangeFunction': {
        this.expr(f['functions'], scope);
        // Without an alias, the function's name names its result.
        const first = as(list(as(list(f['functions'])[0], 'List')?.['items'])[0], 'FuncCall');
        const parts = nameList(first?.['funcname']);
        scope.rels.push(new Rel(aliasOf(f) ?? parts?.[parts.length - 1] ?? '', undefined, undefined));
        return;
      }
      case 'RangeTableSample':
        this.#fromItem(f['relation'], scope);
        this.expr(f['args'], scope);
        this.expr(f['repeatable'], scope);
        return;
      default:
        // XMLTABLE, JSON_TABLE and anything else: walk its expressions; it is not a table.
        this.expr(f, scope);
        scope.rels.push(new Rel(aliasOf(f) ?? '', undefined, undefined));
    }
  }

  #insert(f: Obj, parent: Scope | undefined): void {
    const facts = this.#facts;
    facts.op(OperationClass.Write);
    const scope = new Scope(parent);
    this.#with(f['withClause'], scope);
    const rv = rangeVar(f['relation']);
    if (rv === undefined) {
      facts.unknown('INSERT without a target');
      return;
    }
    const name = text(rv['relname']) ?? '';
    const schema = text(rv['schemaname']);
    const target = facts.object(schema, name, 'table', 'write');
    const cols = list(f['cols']);
    if (cols.length === 0) target.columns.add('*');
    for (const c of cols) {
      const col = text(as(c, 'ResTarget')?.['name']);
      if (col !== undefined) target.columns.add(col);
    }
    if (f['selectStmt'] !== undefined) this.statement(f['selectStmt'], scope, true);
    const alias = aliasOf(rv);
    scope.rels.push(new Rel(alias ?? name, alias === undefined ? schema : undefined, () => this.#table(schema, name, 'read')));
    const conflict = f['onConflictClause'];
    if (isObj(conflict)) {
      scope.rels.push(new Rel('excluded', undefined, undefined, true));
      for (const t of list(conflict['targetList'])) {
        const rt = as(t, 'ResTarget');
        if (rt === undefined) continue;
        const col = text(rt['name']);
        if (col !== undefined) target.columns.add(col);
        this.expr(rt['val'], scope);
      }
      this.expr(conflict['whereClause'], scope);
    }
    this.#returning(f, scope);
  }

  #returning(f: Obj, scope: Scope): void {
    this.expr(f['returningList'], scope);
    const rc = f['returningClause'];
    if (isObj(rc)) this.expr(rc['exprs'], scope);
  }

  /** The target of UPDATE/DELETE/MERGE: its write entry, and a scope where it can be read. */
  #target(f: Obj, scope: Scope): ObjectEntry | undefined {
    const rv = rangeVar(f['relation']);
    if (rv === undefined) {
      this.#facts.unknown('statement without a target relation');
      return undefined;
    }
    const name = text(rv['relname']) ?? '';
    const schema = text(rv['schemaname']);
    const alias = aliasOf(rv);
    const target = this.#facts.object(schema, name, 'table', 'write');
    scope.rels.push(new Rel(alias ?? name, alias === undefined ? schema : undefined, () => this.#table(schema, name, 'read')));
    return target;
  }

  #update(f: Obj, parent: Scope | undefined): void {
    this.#facts.op(OperationClass.Write);
    const scope = new Scope(parent);
    this.#with(f['withClause'], scope);
    const target = this.#target(f, scope);
    for (const item of list(f['fromClause'])) this.#fromItem(item, scope);
    for (const t of list(f['targetList'])) {
      const rt = as(t, 'ResTarget');
      if (rt === undefined) continue;
      const col = text(rt['name']);
      if (col !== undefined) target?.columns.add(col);
      this.expr(rt['val'], scope);
    }
    this.expr(f['whereClause'], scope);
    this.#returning(f, scope);
    if (this.#unbounded(f['whereClause'], scope)) this.#facts.hazard(Hazard.UpdateWithoutWhere);
    this.#settingsUpdate(f);
  }

  /**
   * `UPDATE pg_settings SET setting = ...` calls set_config() through the view's rule: it is
   * a session setting, and a role change unless the WHERE names another setting.
   */
  #settingsUpdate(f: Obj): void {
    const rv = rangeVar(f['relation']);
    const schema = text(rv?.['schemaname']);
    if (text(rv?.['relname']) !== 'pg_settings' || (schema !== undefined && schema !== 'pg_catalog')) return;
    const facts = this.#facts;
    facts.op(OperationClass.SessionSetting);
    const where = as(f['whereClause'], 'A_Expr');
    let named: string | undefined;
    if (where !== undefined && where['kind'] === 'AEXPR_OP' && nameList(where['name'])?.join('.') === '=') {
      const left = nameList(as(where['lexpr'], 'ColumnRef')?.['fields']);
      if (left !== undefined && left[left.length - 1] === 'name') named = stringConstant(where['rexpr']);
      if (hasLiteral(where['rexpr'])) facts.literalDependent = true;
    }
    if (named === undefined || isRoleSetting(named.trim())) {
      facts.op(OperationClass.Privilege);
      facts.hazard(Hazard.RoleChange);
    }
  }

  #delete(f: Obj, parent: Scope | undefined): void {
    this.#facts.op(OperationClass.Write);
    const scope = new Scope(parent);
    this.#with(f['withClause'], scope);
    this.#target(f, scope);
    for (const item of list(f['usingClause'])) this.#fromItem(item, scope);
    this.expr(f['whereClause'], scope);
    this.#returning(f, scope);
    if (this.#unbounded(f['whereClause'], scope)) this.#facts.hazard(Hazard.DeleteWithoutWhere);
  }

  /** Whether the WHERE of an UPDATE or DELETE can reach every row of its target (scope.rels[0]). */
  #unbounded(where: unknown, scope: Scope): boolean {
    const names = new Set<string>();
    const target = scope.rels[0];
    if (target !== undefined) names.add(target.name);
    const ctx: TruthContext = { literal: false };
    const unbounded = unboundedWhere(where, names, ctx, this.#variables);
    if (ctx.literal) this.#facts.literalDependent = true;
    return unbounded;
  }

  #merge(f: Obj, parent: Scope | undefined): void {
    this.#facts.op(OperationClass.Write);
    const scope = new Scope(parent);
    this.#with(f['withClause'], scope);
    const target = this.#target(f, scope);
    this.#fromItem(f['sourceRelation'], scope);
    this.expr(f['joinCondition'], scope);
    for (const w of list(f['mergeWhenClauses'])) {
      const clause = as(w, 'MergeWhenClause');
      if (clause === undefined) continue;
      this.expr(clause['condition'], scope);
      for (const t of list(clause['targetList'])) {
        const rt = as(t, 'ResTarget');
        if (rt === undefined) continue;
        const col = text(rt['name']);
        if (col !== undefined) target?.columns.add(col);
        this.expr(rt['val'], scope);
      }
      if (clause['commandType'] === 'CMD_INSERT' && list(clause['targetList']).length === 0) target?.columns.add('*');
      this.expr(clause['values'], scope);
    }
    this.#returning(f, scope);
  }

  #copy(f: Obj): void {
    const facts = this.#facts;
    const incoming = f['is_from'] === true;
    const program = f['is_program'] === true;
    const file = typeof f['filename'] === 'string';
    if (program) {
      facts.op(OperationClass.Admin);
      facts.hazard(Hazard.CopyProgram);
    } else if (file) {
      facts.op(OperationClass.Admin);
      facts.hazard(Hazard.ServerFile);
    } else {
      facts.op(incoming ? OperationClass.CopyIn : OperationClass.CopyOut);
    }
    if (f['query'] !== undefined) {
      // COPY (query) TO: the query's reads are the copy-out; anything else it does counts.
      const inner = new Facts();
      new Walker(inner, { depth: this.#depth + 1 }).statement(f['query'], undefined, false);
      facts.merge(inner, { dropRead: true });
    } else {
      const entry = this.#namedRelation(f['relation'], incoming ? 'write' : 'read', false);
      const cols = nameList(f['attlist']) ?? [];
      if (cols.length === 0) entry?.columns.add('*');
      for (const c of cols) entry?.columns.add(c);
    }
    if (program || file) facts.op(incoming ? OperationClass.Write : OperationClass.Read);
    this.expr(f['whereClause'], undefined);
  }

  #explain(f: Obj): void {
    let analyze = false;
    for (const o of list(f['options'])) {
      const d = as(o, 'DefElem');
      if (d === undefined || d['defname'] !== 'analyze') continue;
      const arg = d['arg'];
      if (arg === undefined) {
        analyze = true;
        continue;
      }
      // `analyze 0` and `analyze 1` have the same shape.
      this.#facts.literalDependent = true;
      const b = as(arg, 'Boolean');
      const i = as(arg, 'Integer');
      const s = stringNode(arg);
      if (b !== undefined) analyze = b['boolval'] === true;
      else if (i !== undefined) analyze = typeof i['ival'] === 'number' && i['ival'] !== 0;
      else if (s !== undefined) analyze = !['off', 'false', 'no', '0', 'f', 'n', 'of', 'fa', 'fal', 'fals'].includes(s.toLowerCase());
      else analyze = true;
    }
    if (analyze) {
      // EXPLAIN ANALYZE runs the statement.
      this.statement(f['query'], undefined, false);
      return;
    }
    const inner = new Facts();
    new Walker(inner, { depth: this.#depth + 1 }).statement(f['query'], undefined, false);
    this.#facts.merge(inner, { asRead: true });
  }

  #createTableAs(f: Obj): void {
    const facts = this.#facts;
    facts.op(OperationClass.Ddl);
    const into = f['into'];
    if (isObj(into)) this.#namedRelation(into['rel'], 'ddl');
    if (isObj(into) && into['skipData'] === true) return;
    facts.op(OperationClass.Write);
    // Kept apart so that `CREATE TABLE ... AS EXECUTE q` stays unknown instead of becoming q.
    const inner = new Facts();
    new Walker(inner, { depth: this.#depth + 1 }).statement(f['query'], undefined, false);
    facts.merge(inner);
  }

  // --- expressions ---------------------------------------------------------------------------

  /** Walks an expression (or any subtree) for columns, functions and subqueries. */
  expr(v: unknown, scope: Scope | undefined): void {
    if (Array.isArray(v)) {
      for (const item of v) this.expr(item, scope);
      return;
    }
    if (!isObj(v)) return;
    const n = unwrap(v);
    if (n === undefined) {
      for (const key in v) this.expr(v[key], scope);
      return;
    }
    const [type, f] = n;
    switch (type) {
      case 'ColumnRef':
        this.#column(f, scope);
        return;
      case 'FuncCall':
        this.#funcCall(f, scope);
        return;
      case 'SubLink':
        this.expr(f['testexpr'], scope);
        this.statement(f['subselect'], scope, true);
        return;
      case 'RangeVar':
        this.#namedRelation(f, 'read');
        return;
      case 'A_Const':
      case 'ParamRef':
      case 'TypeName':
        return;
      default:
        if (type.endsWith('Stmt')) {
          this.statement(v, scope, true);
          return;
        }
        for (const key in f) this.expr(f[key], scope);
    }
  }

  #column(f: Obj, scope: Scope | undefined): void {
    const fields = list(f['fields']);
    const last = fields[fields.length - 1];
    const star = as(last, 'A_Star') !== undefined;
    const col = star ? '*' : stringNode(last);
    if (col === undefined) return;
    const quals: string[] = [];
    for (const q of fields.slice(0, -1)) {
      const s = stringNode(q);
      if (s === undefined) return;
      quals.push(s);
    }
    const variables = this.#variables;
    if (variables !== undefined && variables.has(quals.length > 0 ? quals[0]! : col)) return;
    if (quals.length === 0) {
      for (let s = scope; s !== undefined; s = s.parent) {
        const rels = s.rels.filter((r) => !r.qualifiedOnly);
        if (rels.length === 0) continue;
        if (star) {
          for (const r of rels) r.entry()?.columns.add('*');
          return;
        }
        if (s.outputNames?.has(col) === true) return;
        const whole = rels.find((r) => r.name === col);
        if (whole !== undefined) {
          // A whole-row reference (`SELECT t FROM t`): every column.
          whole.entry()?.columns.add('*');
        } else if (rels.length === 1) {
          rels[0]!.entry()?.columns.add(col);
        } else {
          // Several relations: which one has the column needs the catalog.
          for (const r of rels) {
            if (!r.isTable) continue;
            r.entry()!.columnsUnknown = true;
          }
        }
        return;
      }
      return;
    }
    const relName = quals[quals.length - 1]!;
    const schemaName = quals.length >= 2 ? quals[quals.length - 2] : undefined;
    for (let s = scope; s !== undefined; s = s.parent) {
      for (const r of s.rels) {
        if (r.name === relName && (schemaName === undefined || r.schema === schemaName)) {
          r.entry()?.columns.add(col);
          return;
        }
      }
    }
  }

  /** A function call; `called` for CALL, whose procedure is the write itself. */
  #funcCall(f: Obj, scope: Scope | undefined, called = false): void {
    const facts = this.#facts;
    const names = (nameList(f['funcname']) ?? []).map((s) => s.toLowerCase());
    const name = names[names.length - 1] ?? '';
    // Functions written in SQL syntax (`substring(x from 1)`, `extract(...)`) are qualified by
    // the grammar, not by the user.
    const shown = f['funcformat'] === 'COERCE_SQL_SYNTAX' && names.length === 2 && names[0] === 'pg_catalog' ? name : names.join('.');
    facts.fn(shown);
    const args = list(f['args']);
    const effect = functionEffect(name, args.length);
    if (effect === undefined) {
      if (!called) facts.op(OperationClass.Read);
    } else {
      switch (effect.kind) {
        case 'write':
          facts.op(OperationClass.Write);
          break;
        case 'admin':
          facts.op(OperationClass.Admin);
          break;
        case 'server-file':
          facts.op(OperationClass.Admin);
          facts.hazard(Hazard.ServerFile);
          break;
        case 'large-object':
          facts.op(OperationClass.Write);
          facts.hazard(Hazard.LargeObject);
          if (effect.serverFile) facts.hazard(Hazard.ServerFile);
          break;
        case 'set-config':
          this.#setConfig(args);
          break;
        case 'sql-string':
          facts.op(OperationClass.Read);
          this.#sqlString(shown, effect.sqlArgs, args);
          break;
      }
    }
    this.expr(args, scope);
    this.expr(f['agg_order'], scope);
    this.expr(f['agg_filter'], scope);
    this.expr(f['over'], scope);
  }

  #setConfig(args: readonly unknown[]): void {
    const facts = this.#facts;
    facts.op(OperationClass.SessionSetting);
    // `set_config(1, ...)` and `set_config('role', ...)` have the same shape.
    if (hasLiteral(args[0])) facts.literalDependent = true;
    const setting = stringConstant(args[0]);
    if (setting === undefined) {
      facts.unknown('set_config() of a setting named at run time');
      facts.hazard(Hazard.RoleChange);
      return;
    }
    facts.literalDependent = true;
    if (isRoleSetting(setting.trim())) {
      facts.op(OperationClass.Privilege);
      facts.hazard(Hazard.RoleChange);
    }
  }

  /** A function that runs SQL given as a string: analyse constant SQL, else dynamic-sql. */
  #sqlString(fn: string, which: 'all' | 'last' | 'none' | number, args: readonly unknown[]): void {
    const facts = this.#facts;
    const dynamic = (): void => {
      facts.unknown(`${fn}() runs SQL that is not a constant`);
      facts.hazard(Hazard.DynamicSql);
    };
    if (which === 'none') {
      dynamic();
      return;
    }
    // Which arguments hold SQL, and whether they are constants, can depend on literals.
    if (args.some(hasLiteral)) facts.literalDependent = true;
    let sqlArgs: unknown[];
    if (which === 'last') {
      const candidates = args.filter((a) => !isObj(as(a, 'A_Const')?.['boolval']));
      sqlArgs = candidates.length > 0 ? [candidates[candidates.length - 1]] : [];
    } else if (which === 'all') {
      sqlArgs = args.filter((a) => {
        const c = as(a, 'A_Const');
        return c === undefined || !(isObj(c['ival']) || isObj(c['fval']) || isObj(c['boolval']));
      });
    } else {
      sqlArgs = which < args.length ? [args[which]] : [];
    }
    for (const a of sqlArgs) {
      const sql = stringConstant(a);
      if (sql === undefined) {
        dynamic();
        continue;
      }
      const inner = new Facts();
      if (!analyzeSqlInto(sql, inner, { depth: this.#depth + 1, what: `SQL given to ${fn}()` })) {
        facts.hazard(Hazard.DynamicSql);
      }
      facts.merge(inner);
    }
  }

  // --- DDL, privileges, settings ---------------------------------------------------------------

  #table(schema: string | undefined, name: string, access: ObjectAccess): ObjectEntry {
    if (access === 'read') this.#facts.op(OperationClass.Read);
    return this.#facts.object(schema, name, 'table', access);
  }

  /** A RangeVar (wrapped or inline) as a table object. */
  #namedRelation(v: unknown, access: ObjectAccess, readOp = true): ObjectEntry | undefined {
    const rv = rangeVar(v);
    if (rv === undefined) return undefined;
    const name = text(rv['relname']) ?? '';
    const schema = text(rv['schemaname']);
    return readOp ? this.#table(schema, name, access) : this.#facts.object(schema, name, 'table', access);
  }

  /** A qualified name (String list, ObjectWithArgs, TypeName...) as an object. */
  #namedObject(v: unknown, kind: ObjectKind, access: ObjectAccess, isNameList = false): ObjectEntry | undefined {
    const parts = isNameList ? nameList(Array.isArray(v) ? v : (v as Obj | undefined)?.['names']) : objectNameParts(v);
    if (parts === undefined || parts.length === 0) return undefined;
    const name = parts[parts.length - 1]!;
    const schema = parts.length >= 2 ? parts[parts.length - 2] : undefined;
    return this.#facts.object(schema, name, kind, access);
  }

  #typedObject(objtype: unknown, v: unknown, access: ObjectAccess): void {
    const parts = objectNameParts(v);
    if (parts === undefined || parts.length === 0) return;
    if (typeof objtype === 'string' && (TABLE_MEMBER_KINDS.has(objtype) || objtype === 'OBJECT_COLUMN') && parts.length >= 2) {
      const table = parts.slice(0, -1);
      const entry = this.#facts.object(table.length >= 2 ? table[table.length - 2] : undefined, table[table.length - 1]!, 'table', access);
      if (objtype === 'OBJECT_COLUMN') entry.columns.add(parts[parts.length - 1]!);
      return;
    }
    const name = parts[parts.length - 1]!;
    const schema = parts.length >= 2 ? parts[parts.length - 2] : undefined;
    this.#facts.object(schema, name, objectKind(objtype), access);
  }

  /** Relations named directly by a DDL statement (`relation`, `relations`, `view`, `sequence`...). */
  #ddlRelations(f: Obj): void {
    for (const key in f) {
      const v = f[key];
      const rv = rangeVar(v);
      if (rv !== undefined) {
        // CREATE TYPE t AS (...) names a type, not a relation.
        const kind = key === 'typevar' ? 'other' : 'table';
        this.#facts.object(text(rv['schemaname']), text(rv['relname']) ?? '', kind, 'ddl');
      } else if (key === 'base' && isObj(v)) {
        // CREATE FOREIGN TABLE keeps the CREATE TABLE part in `base`.
        this.#ddlRelations(v);
      } else if (Array.isArray(v)) {
        for (const item of v) {
          const wrapped = as(item, 'RangeVar');
          if (wrapped !== undefined) this.#facts.object(text(wrapped['schemaname']), text(wrapped['relname']) ?? '', 'table', 'ddl');
        }
      }
    }
  }

  #drop(f: Obj): void {
    const facts = this.#facts;
    facts.op(OperationClass.Ddl);
    const type = f['removeType'];
    if (typeof type === 'string') {
      if (DROP_TABLE_KINDS.has(type)) facts.hazard(Hazard.DropTable);
      else if (type === 'OBJECT_SCHEMA') facts.hazard(Hazard.DropSchema);
      else if (type === 'OBJECT_DATABASE') facts.hazard(Hazard.DropDatabase);
    }
    // CASCADE drops what depends on the object: views, tables of a schema or a server,
    // columns of a type or domain.
    if (f['behavior'] === 'DROP_CASCADE') facts.hazard(Hazard.DropTable);
    for (const o of list(f['objects'])) this.#typedObject(type, o, 'ddl');
  }

  #alterTable(f: Obj): void {
    const facts = this.#facts;
    facts.op(OperationClass.Ddl);
    const rv = rangeVar(f['relation']);
    const kind = f['objtype'] === 'OBJECT_INDEX' || f['objtype'] === 'OBJECT_TYPE' ? 'other' : 'table';
    const entry = rv === undefined ? undefined : facts.object(text(rv['schemaname']), text(rv['relname']) ?? '', kind, 'ddl');
    for (const c of list(f['cmds'])) {
      const cmd = as(c, 'AlterTableCmd');
      if (cmd === undefined) continue;
      const subtype = text(cmd['subtype']) ?? '';
      if (DROP_COMMANDS.has(subtype) || (subtype === 'AT_ColumnDefault' && cmd['def'] === undefined)) {
        facts.hazard(Hazard.AlterDrop);
      }
      const column = text(cmd['name']);
      if (column !== undefined && COLUMN_COMMANDS.has(subtype)) entry?.columns.add(column);
      const def = as(cmd['def'], 'ColumnDef');
      if (subtype === 'AT_AddColumn' && def !== undefined) {
        const name = text(def['colname']);
        if (name !== undefined) entry?.columns.add(name);
      }
      // Defaults of added columns, USING of a type change and new CHECK constraints are
      // evaluated over the existing rows.
      if (subtype === 'AT_AddColumn' || subtype === 'AT_AlterColumnType' || subtype === 'AT_AddConstraint') {
        this.expr(cmd['def'], undefined);
      }
    }
  }

  #grant(f: Obj): void {
    const facts = this.#facts;
    facts.op(OperationClass.Privilege);
    facts.hazard(Hazard.GrantRevoke);
    const columns: string[] = [];
    for (const p of list(f['privileges'])) for (const c of nameList(as(p, 'AccessPriv')?.['cols']) ?? []) columns.push(c);
    const inSchema = f['targtype'] === 'ACL_TARGET_ALL_IN_SCHEMA';
    for (const o of list(f['objects'])) {
      const rv = as(o, 'RangeVar');
      if (rv !== undefined) {
        const entry = facts.object(text(rv['schemaname']), text(rv['relname']) ?? '', 'table', 'ddl');
        for (const c of columns) entry.columns.add(c);
      } else {
        this.#typedObject(inSchema ? 'OBJECT_SCHEMA' : f['objtype'], o, 'ddl');
      }
    }
  }

  #role(type: string, f: Obj): void {
    const facts = this.#facts;
    facts.op(OperationClass.Privilege);
    facts.hazard(Hazard.RoleChange);
    if (type === 'CreateRoleStmt') {
      const name = text(f['role']);
      if (name !== undefined) facts.object(undefined, name, 'role', 'ddl');
    } else if (type === 'DropRoleStmt') {
      for (const r of list(f['roles'])) {
        const name = text(as(r, 'RoleSpec')?.['rolename']);
        if (name !== undefined) facts.object(undefined, name, 'role', 'ddl');
      }
    } else {
      const role = f['role'];
      const name = isObj(role) ? text(role['rolename']) : undefined;
      if (name !== undefined) facts.object(undefined, name, 'role', 'ddl');
    }
    // ALTER GROUP g ADD/DROP USER u, CREATE ROLE r ROLE/IN ROLE/ADMIN: membership changes.
    for (const o of list(f['options'])) {
      const d = as(o, 'DefElem');
      const opt = text(d?.['defname']);
      if (opt === 'rolemembers' || opt === 'addroleto' || opt === 'adminmembers') facts.hazard(Hazard.GrantRevoke);
    }
  }

  #rename(f: Obj): void {
    const facts = this.#facts;
    if (f['renameType'] === 'OBJECT_ROLE') {
      facts.op(OperationClass.Privilege);
      facts.hazard(Hazard.RoleChange);
      const name = text(f['subname']);
      if (name !== undefined) facts.object(undefined, name, 'role', 'ddl');
      return;
    }
    facts.op(OperationClass.Ddl);
    if (f['relation'] !== undefined) {
      const entry = this.#namedRelation(f['relation'], 'ddl', false);
      const column = text(f['subname']);
      if (column !== undefined && f['renameType'] === 'OBJECT_COLUMN') entry?.columns.add(column);
    } else if (f['renameType'] === 'OBJECT_SCHEMA' || f['renameType'] === 'OBJECT_DATABASE') {
      const name = text(f['subname']);
      if (name !== undefined) facts.object(undefined, name, objectKind(f['renameType']), 'ddl');
    } else {
      this.#typedObject(f['renameType'], f['object'], 'ddl');
    }
  }

  #variableSet(f: Obj): void {
    const facts = this.#facts;
    if (isRoleSetting(f['name'])) {
      facts.op(OperationClass.Privilege);
      facts.hazard(Hazard.RoleChange);
    } else {
      facts.op(OperationClass.SessionSetting);
    }
  }
}

/** ALTER TABLE subcommands written `DROP ...` (DROP DEFAULT is AT_ColumnDefault without a value). */
const DROP_COMMANDS = new Set(['AT_DropColumn', 'AT_DropConstraint', 'AT_DropNotNull', 'AT_DropIdentity', 'AT_DropExpression']);

/** ALTER TABLE subcommands whose `name` is a column. */
const COLUMN_COMMANDS = new Set([
  'AT_ColumnDefault', 'AT_DropNotNull', 'AT_SetNotNull', 'AT_SetExpression', 'AT_DropExpression', 'AT_SetStatistics',
  'AT_SetOptions', 'AT_ResetOptions', 'AT_SetStorage', 'AT_SetCompression', 'AT_DropColumn', 'AT_AlterColumnType',
  'AT_AlterColumnGenericOptions', 'AT_AddIdentity', 'AT_SetIdentity', 'AT_DropIdentity',
]);

/** Statement kinds that change definitions (ddl) and need no special reading. */
const DDL_STATEMENTS: ReadonlySet<string> = new Set([
  'AlterCollationStmt', 'AlterEnumStmt', 'AlterEventTrigStmt', 'AlterFdwStmt', 'AlterForeignServerStmt',
  'AlterOperatorStmt', 'AlterPolicyStmt', 'AlterSeqStmt', 'AlterStatsStmt', 'AlterTSDictionaryStmt',
  'AlterTableMoveAllStmt', 'AlterTableSpaceOptionsStmt', 'AlterTypeStmt', 'AlterUserMappingStmt', 'ClusterStmt',
  'CompositeTypeStmt', 'CreateAmStmt', 'CreateCastStmt', 'CreateConversionStmt', 'CreateDomainStmt', 'CreateEnumStmt',
  'CreateEventTrigStmt', 'CreateFdwStmt', 'CreateForeignServerStmt', 'CreateForeignTableStmt', 'CreateOpClassStmt',
  'CreateOpFamilyStmt', 'CreatePLangStmt', 'CreatePolicyStmt', 'CreatePublicationStmt', 'CreateRangeStmt',
  'CreateSeqStmt', 'CreateStatsStmt', 'CreateStmt', 'CreateSubscriptionStmt', 'CreateTableSpaceStmt',
  'CreateTransformStmt', 'CreateTrigStmt', 'CreateUserMappingStmt', 'DefineStmt', 'DropSubscriptionStmt',
  'DropTableSpaceStmt', 'DropUserMappingStmt', 'ImportForeignSchemaStmt', 'RefreshMatViewStmt', 'RuleStmt',
  'ViewStmt', 'ReplicaIdentityStmt',
]);
