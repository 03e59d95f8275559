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
}
