/**
 * Operation classes a statement can belong to. A statement the analyzer cannot understand is
 * `unknown`, which is never treated as harmless.
 */
export const OperationClass = {
  Read: 'read',
  Write: 'write',
  Ddl: 'ddl',
  Admin: 'admin',
  Privilege: 'privilege',
  CopyOut: 'copy-out',
  CopyIn: 'copy-in',
  Transaction: 'transaction',
  SessionSetting: 'session-setting',
  Unknown: 'unknown',
} as const;
export type OperationClass = (typeof OperationClass)[keyof typeof OperationClass];

/** Classes whose audit record must be durable before the statement reaches the database. */
const UNPRIVILEGED: ReadonlySet<OperationClass> = new Set<OperationClass>([
  OperationClass.Read,
  OperationClass.CopyOut,
  OperationClass.Transaction,
  OperationClass.SessionSetting,
]);

/** True when any operation writes, changes schema, administers, or is not understood. */
export function isPrivileged(operations: readonly OperationClass[]): boolean {
  if (operations.length === 0) return false;
  for (const op of operations) if (!UNPRIVILEGED.has(op)) return true;
  return false;
}

/**
 * Dangerous actions a statement performs, named as the built-in guardrails that stop them.
 * A dialect reports facts with these names; core's guardrails decide what to do with them.
 */
export const Hazard = {
  /** DROP TABLE (also views, materialized views, foreign tables, sequences). */
  DropTable: 'drop-table',
  DropSchema: 'drop-schema',
  DropDatabase: 'drop-database',
  Truncate: 'truncate',
  /** DELETE without a WHERE, or with one that is always true (`1=1`, `true`, `x = x`...). */
  DeleteWithoutWhere: 'delete-without-where',
  /** UPDATE without a WHERE, or with one that is always true. */
  UpdateWithoutWhere: 'update-without-where',
  /** ALTER ... DROP (a column, a constraint, a default ...). */
  AlterDrop: 'alter-drop',
  /** GRANT or REVOKE of privileges or role membership. */
  GrantRevoke: 'grant-revoke',
  /** CREATE/ALTER/DROP ROLE or USER, SET ROLE, SET SESSION AUTHORIZATION. */
  RoleChange: 'role-change',
  AlterSystem: 'alter-system',
  /** COPY ... TO/FROM PROGRAM: a shell command on the database server. */
  CopyProgram: 'copy-program',
  /** Reading or writing files on the database server (COPY to/from a file, pg_read_file...). */
  ServerFile: 'server-file',
  /** Large-object functions (lo_import, lo_export, lo_unlink...). */
  LargeObject: 'large-object',
  CreateExtension: 'create-extension',
  /** SQL built at run time that the analyzer cannot see (EXECUTE of a computed string...). */
  DynamicSql: 'dynamic-sql',
  /**
   * WHERE, JOIN, GROUP BY, HAVING or ORDER BY reads a column masked for the caller: the result
   * can reveal its value without returning it (`WHERE ssn LIKE '123%'`). Computed by core from
   * the statement's lineage and the masking configuration; off unless switched on.
   */
  SensitivePredicate: 'sensitive-predicate',
} as const;
export type Hazard = (typeof Hazard)[keyof typeof Hazard];

/** How a statement touches an object. */
export type ObjectAccess = 'read' | 'write' | 'ddl';

/** An object a statement reads, writes or changes the definition of. */
export interface ObjectRef {
  /** Schema as written (lower-cased unless quoted); absent when the statement did not qualify it. */
  readonly schema?: string;
  /** Object name (lower-cased unless quoted). */
  readonly name: string;
  /** 'table' covers views and other relations; DDL may name other kinds. */
  readonly kind: 'table' | 'schema' | 'database' | 'role' | 'function' | 'extension' | 'other';
  readonly access: ObjectAccess;
  /** Columns read or written, when known ('*' for all). */
  readonly columns?: readonly string[];
}

/** What a dialect's analyzer says about one request (which may hold several statements). */
export interface Analysis {
  /** The request text with literals replaced by placeholders; safe for the audit trail. */
  readonly normalized: string;
  /** Hex digest of `normalized`: the same shape gives the same fingerprint. */
  readonly fingerprint: string;
  /** Operation classes of every statement in the request, in order, without duplicates. */
  readonly operations: readonly OperationClass[];
  /** Number of statements in the request. */
  readonly statementCount: number;
  /** The leading command keyword of each statement, upper case (SELECT, INSERT, ...). */
  readonly commands: readonly string[];
  /**
   * For a request with several statements: one analysis per statement, in order, so that each
   * statement gets its own audit record. Absent for a single statement.
   */
  readonly parts?: readonly Analysis[];
  /** Objects read, written or changed by the request's statements (union over parts). */
  readonly objects?: readonly ObjectRef[];
  /** Dangerous actions the request performs (union over parts), without duplicates. */
  readonly hazards?: readonly Hazard[];
  /** Functions called, lower case, schema-qualified when written so. */
  readonly functions?: readonly string[];
  /** Why (part of) the request could not be analysed; its operations then include `unknown`. */
  readonly unanalysable?: string;
  /** For a single statement that returns rows: where its result columns come from. */
  readonly lineage?: ResultLineage;
  /**
   * For a single statement that writes rows (INSERT, UPDATE, DELETE, MERGE, CREATE TABLE AS,
   * SELECT INTO, REPLACE, COPY FROM ...): one entry per table written, with where each written
   * column's values come from. Absent when the statement writes no table rows.
   */
  readonly writes?: readonly WriteLineage[];
}

/**
 * How values of a source column reach a result or written column, as OpenLineage's column
 * lineage classifies it. DIRECT: the values flow (IDENTITY: copied as they are;
 * TRANSFORMATION: through an expression or function; AGGREGATION: through an aggregate).
 * INDIRECT: the column decides which rows or in which order, not the values (JOIN, FILTER,
 * GROUP_BY, SORT, WINDOW: a window's PARTITION BY / ORDER BY, CONDITIONAL: a CASE condition).
 */
export type FlowType = 'DIRECT' | 'INDIRECT';
export type FlowSubtype =
  | 'IDENTITY'
  | 'TRANSFORMATION'
  | 'AGGREGATION'
  | 'JOIN'
  | 'FILTER'
  | 'GROUP_BY'
  | 'SORT'
  | 'WINDOW'
  | 'CONDITIONAL';

/** One source column's flow into a column (or, at statement level, into every column). */
export interface ColumnFlow {
  readonly source: ColumnSource;
  readonly type: FlowType;
  readonly subtype: FlowSubtype;
}

/** A table a statement writes rows to, and where the written values come from. */
export interface WriteLineage {
  /** Schema as written; absent when the statement did not qualify the table. */
  readonly schema?: string;
  readonly table: string;
  /**
   * Each written column with its flows, in the order written. A column set only from
   * literals, parameters or defaults has no flows. Absent when the written columns cannot be
   * told (an INSERT without a column list into a table whose columns the analysis does not
   * know gets positions instead: `name` is then `$1`, `$2` ..., see `positional`).
   */
  readonly columns?: readonly WrittenColumn[];
  /** True when `columns` are named by position (`$1` is the table's first column). */
  readonly positional?: boolean;
  /** Every DIRECT source of any written column (what a written column may carry when `columns` is absent). */
  readonly all: readonly ColumnSource[];
  /**
   * Statement-level INDIRECT flows: columns that decide which rows are written (an UPDATE or
   * DELETE's WHERE, the join conditions of UPDATE ... FROM or MERGE ... ON, the filters,
   * grouping and ordering of an INSERT's or CREATE TABLE AS's query).
   */
  readonly indirect: readonly ColumnFlow[];
}

/** A written column and the flows into it. */
export interface WrittenColumn {
  readonly name: string;
  readonly flows: readonly ColumnFlow[];
}

/**
 * A column of a table or view named by a statement. `column` is `*` for a whole-row reference
 * (every column of the relation flows). `schema` is absent when the statement did not qualify
 * the relation; names are lower-cased unless quoted.
 */
export interface ColumnSource {
  readonly schema?: string;
  readonly table: string;
  readonly column: string;
}

/** Where one result column's values come from. */
export interface ResultColumn {
  /** Output name as the server reports it (alias, column or function name, `?column?`). */
  readonly name: string;
  /** Columns whose values flow into this one, directly or transformed (CASE conditions included). */
  readonly sources: readonly ColumnSource[];
  /** True when the value is a plain reference to one column (no transformation). */
  readonly direct: boolean;
  /** Functions the value passes through or comes from, lower case, schema-qualified when written so. */
  readonly functions: readonly string[];
  /**
   * How each source flows into this column, for lineage (a source may flow more than one way).
   * Absent when the analyzer does not classify: every source then counts as DIRECT, IDENTITY
   * when `direct` and TRANSFORMATION otherwise.
   */
  readonly flows?: readonly ColumnFlow[];
}

/**
 * Column lineage of the rows a statement returns to the client (a query, RETURNING, a cursor's
 * query, COPY ... TO STDOUT).
 */
export interface ResultLineage {
  /**
   * One entry per result column, in order; absent when positions cannot be told (a `*` over a
   * relation whose columns the analysis does not know).
   */
  readonly columns?: readonly ResultColumn[];
  /** Every source of any result column (what a result column may carry when positions are unknown). */
  readonly all: readonly ColumnSource[];
  /**
   * Columns read by WHERE, JOIN ... ON, GROUP BY, HAVING, ORDER BY, window clauses and
   * EXISTS/IN subqueries: they can reveal values without returning them.
   */
  readonly predicates: readonly ColumnSource[];
  /** Every function called by the statement (a user-defined one may read more than it shows). */
  readonly functions: readonly string[];
  /**
   * The `predicates` classified for lineage: INDIRECT flows into every result column (JOIN,
   * FILTER, GROUP_BY, SORT, WINDOW). Absent when the analyzer does not classify them; each
   * predicate then counts as an INDIRECT FILTER.
   */
  readonly indirect?: readonly ColumnFlow[];
}
