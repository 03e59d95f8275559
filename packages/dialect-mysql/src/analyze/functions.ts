/**
 * MySQL and MariaDB functions whose effect is more than reading. Any function not listed here
 * counts as a read: the analysis cannot see what a stored function does. Names are matched in
 * lower case, unqualified (a built-in cannot be qualified; a stored function of the same name
 * in some database is treated alike, which only errs on the strict side).
 *
 * These are found in the tokens (a name followed by `(`), whatever the parser makes of the
 * statement, so that a statement the parser rejects still carries their hazards.
 */
import { Hazard, OperationClass } from '@sluice/core';

export interface FunctionEffect {
  readonly op: OperationClass;
  readonly hazard?: Hazard;
}

const WRITE: FunctionEffect = { op: OperationClass.Write };
const ADMIN: FunctionEffect = { op: OperationClass.Admin };

const table: Array<[string, FunctionEffect]> = [
  // Reads a file of the database server (FILE privilege).
  ['load_file', { op: OperationClass.Admin, hazard: Hazard.ServerFile }],
  // lib_mysqludf_sys: runs a shell command on the database server.
  ['sys_exec', { op: OperationClass.Admin, hazard: Hazard.CopyProgram }],
  ['sys_eval', { op: OperationClass.Admin, hazard: Hazard.CopyProgram }],
  // MariaDB sequences.
  ['nextval', WRITE],
  ['setval', WRITE],
  // Named locks held by the session, seen by every other session.
  ['get_lock', WRITE],
  ['release_lock', WRITE],
  ['release_all_locks', WRITE],
  // Replication and server administration.
  ['master_pos_wait', ADMIN],
  ['source_pos_wait', ADMIN],
  ['wait_for_executed_gtid_set', ADMIN],
  ['wait_until_sql_thread_after_gtids', ADMIN],
  ['mysql_firewall_flush_status', ADMIN],
  ['set_firewall_mode', ADMIN],
];

/** Prefixes of administrative function families (plugins' and components' UDFs). */
const ADMIN_PREFIXES: readonly string[] = [
  'group_replication_', 'asynchronous_connection_failover_', 'audit_log_', 'keyring_', 'version_tokens_', 'firewall_',
  'mysql_firewall_', 'audit_api_message_', 'service_get_',
];

const EFFECTS: ReadonlyMap<string, FunctionEffect> = new Map(table);

/** The effect of a function by its (unqualified, lower-case) name, or undefined for a plain read. */
export function functionEffect(name: string): FunctionEffect | undefined {
  const known = EFFECTS.get(name);
  if (known !== undefined) return known;
  for (const p of ADMIN_PREFIXES) if (name.startsWith(p)) return ADMIN;
  return undefined;
}
