/**
 * Built-in (and common extension) functions whose effect is more than reading. Any function
 * not listed here counts as a read: the parser cannot see what a user-defined function does.
 * Names are matched in lower case, whatever schema qualifies them.
 */

export type FunctionEffect =
  /** Changes data (sequences, notifications). */
  | { readonly kind: 'write' }
  /** Administers the server: signals backends, reloads configuration, replication, WAL. */
  | { readonly kind: 'admin' }
  /** Reads or writes files on the database server. */
  | { readonly kind: 'server-file' }
  /** Large objects; lo_import/lo_export also touch server files. */
  | { readonly kind: 'large-object'; readonly serverFile: boolean }
  /** set_config(name, value, is_local). */
  | { readonly kind: 'set-config' }
  /**
   * Runs SQL given as a string. `sqlArgs` says which arguments hold SQL: `all` (every text
   * argument), `last` (the last non-boolean argument, dblink style), an index, or `none` (a
   * cursor name: nothing to analyse).
   */
  | { readonly kind: 'sql-string'; readonly sqlArgs: 'all' | 'last' | 'none' | number; readonly onlyWithArgCount?: number };

const WRITE: FunctionEffect = { kind: 'write' };
const ADMIN: FunctionEffect = { kind: 'admin' };
const FILE: FunctionEffect = { kind: 'server-file' };
const LO: FunctionEffect = { kind: 'large-object', serverFile: false };
const LO_FILE: FunctionEffect = { kind: 'large-object', serverFile: true };

const table: Array<[string, FunctionEffect]> = [
  ['nextval', WRITE],
  ['setval', WRITE],
  ['pg_notify', WRITE],

  ['pg_terminate_backend', ADMIN],
  ['pg_cancel_backend', ADMIN],
  ['pg_reload_conf', ADMIN],
  ['pg_rotate_logfile', ADMIN],
  ['pg_switch_wal', ADMIN],
  ['pg_switch_xlog', ADMIN],
  ['pg_promote', ADMIN],
  ['pg_create_restore_point', ADMIN],
  ['pg_backup_start', ADMIN],
  ['pg_backup_stop', ADMIN],
  ['pg_start_backup', ADMIN],
  ['pg_stop_backup', ADMIN],
  ['pg_wal_replay_pause', ADMIN],
  ['pg_wal_replay_resume', ADMIN],
  ['pg_xlog_replay_pause', ADMIN],
  ['pg_xlog_replay_resume', ADMIN],
  ['pg_log_backend_memory_contexts', ADMIN],
  ['pg_log_standby_snapshot', ADMIN],
  ['pg_stat_reset', ADMIN],
  ['pg_stat_reset_shared', ADMIN],
  ['pg_stat_reset_single_table_counters', ADMIN],
  ['pg_stat_reset_single_function_counters', ADMIN],
  ['pg_stat_reset_slru', ADMIN],
  ['pg_stat_reset_replication_slot', ADMIN],
  ['pg_stat_reset_subscription_stats', ADMIN],
  ['pg_stat_reset_backend_stats', ADMIN],
  ['pg_stat_statements_reset', ADMIN],
  ['pg_create_physical_replication_slot', ADMIN],
  ['pg_create_logical_replication_slot', ADMIN],
  ['pg_drop_replication_slot', ADMIN],
  ['pg_copy_physical_replication_slot', ADMIN],
  ['pg_copy_logical_replication_slot', ADMIN],
  ['pg_replication_slot_advance', ADMIN],
  ['pg_logical_slot_get_changes', ADMIN],
  ['pg_logical_slot_get_binary_changes', ADMIN],
  ['pg_sync_replication_slots', ADMIN],
  ['pg_logical_emit_message', ADMIN],
  ['pg_replication_origin_create', ADMIN],
  ['pg_replication_origin_drop', ADMIN],
  ['pg_replication_origin_advance', ADMIN],
  ['pg_replication_origin_session_setup', ADMIN],
  ['pg_replication_origin_session_reset', ADMIN],
  ['pg_replication_origin_xact_setup', ADMIN],
  ['pg_replication_origin_xact_reset', ADMIN],
  ['pg_import_system_collations', ADMIN],

  ['pg_read_file', FILE],
  ['pg_read_binary_file', FILE],
  ['pg_ls_dir', FILE],
  ['pg_stat_file', FILE],
  ['pg_file_write', FILE],
  ['pg_file_rename', FILE],
  ['pg_file_unlink', FILE],
  ['pg_file_sync', FILE],
  ['pg_logdir_ls', FILE],
  ['pg_ls_logdir', FILE],
  ['pg_ls_waldir', FILE],
  ['pg_ls_tmpdir', FILE],
  ['pg_ls_archive_statusdir', FILE],
  ['pg_ls_logicalsnapdir', FILE],
  ['pg_ls_logicalmapdir', FILE],
  ['pg_ls_replslotdir', FILE],
  ['pg_ls_summariesdir', FILE],
  ['pg_current_logfile', FILE],

  ['lo_import', LO_FILE],
  ['lo_export', LO_FILE],
  ['loread', LO],
  ['lowrite', LO],

  ['set_config', { kind: 'set-config' }],

  ['dblink', { kind: 'sql-string', sqlArgs: 'last' }],
  ['dblink_exec', { kind: 'sql-string', sqlArgs: 'last' }],
  ['dblink_open', { kind: 'sql-string', sqlArgs: 'last' }],
  ['dblink_send_query', { kind: 'sql-string', sqlArgs: 'last' }],
  ['query_to_xml', { kind: 'sql-string', sqlArgs: 0 }],
  ['query_to_xmlschema', { kind: 'sql-string', sqlArgs: 0 }],
  ['query_to_xml_and_xmlschema', { kind: 'sql-string', sqlArgs: 0 }],
  ['cursor_to_xml', { kind: 'sql-string', sqlArgs: 'none' }],
  ['cursor_to_xmlschema', { kind: 'sql-string', sqlArgs: 'none' }],
  ['ts_stat', { kind: 'sql-string', sqlArgs: 0 }],
  // ts_rewrite(query, select text) runs the select; ts_rewrite(query, target, substitute) does not.
  ['ts_rewrite', { kind: 'sql-string', sqlArgs: 1, onlyWithArgCount: 2 }],
  ['crosstab', { kind: 'sql-string', sqlArgs: 'all' }],
  ['crosstab2', { kind: 'sql-string', sqlArgs: 'all' }],
  ['crosstab3', { kind: 'sql-string', sqlArgs: 'all' }],
  ['crosstab4', { kind: 'sql-string', sqlArgs: 'all' }],
];

const EFFECTS: ReadonlyMap<string, FunctionEffect> = new Map(table);

/** The effect of a function by its (unqualified) name, or undefined for a plain read. */
export function functionEffect(name: string, argCount: number): FunctionEffect | undefined {
  const lower = name.toLowerCase();
  const known = EFFECTS.get(lower);
  if (known !== undefined) {
    if (known.kind === 'sql-string' && known.onlyWithArgCount !== undefined && argCount !== known.onlyWithArgCount) return undefined;
    return known;
  }
  if (lower.startsWith('lo_')) return LO;
  return undefined;
}
