/**
 * Presentation of audit records: CSV export (RFC 4180) and one-line summaries for a terminal.
 */
import type { ApprovalEvent, AuditRecord } from './types.js';

/** The CSV columns, in order. */
export const CSV_COLUMNS = [
  'seq',
  'time',
  'type',
  'phase',
  'outcome',
  'dialect',
  'session_id',
  'source_address',
  'subject',
  'kind',
  'groups',
  'target',
  'username',
  'statement_id',
  'operations',
  'decision',
  'rule',
  'text',
  'fingerprint',
  'duration_ms',
  'rows',
  'error_code',
  'command',
  'reason',
  'approval',
  'approver',
  'action',
  'guardrail',
  'digest',
  'masked',
  'hash',
] as const;

/** RFC 4180 line break, to put between the header and rows (toCsvHeader/toCsvRow return none). */
export const CSV_LINE_END = '\r\n';

/** Separator of list values (groups, operations) inside one CSV field. */
const LIST_SEPARATOR = ';';

/** The CSV header line, without a line break. */
export function toCsvHeader(): string {
  return CSV_COLUMNS.join(',');
}

/**
 * One CSV line for a record, without a line break, columns as {@link CSV_COLUMNS}. Fields that
 * hold a comma, a double quote, CR or LF are quoted, inner quotes doubled (RFC 4180). Missing
 * values are empty; list values (groups, operations) are joined with ";". Values are written as
 * they are: a spreadsheet may interpret a field starting with "=", "+", "-" or "@" as a formula.
 *
 * Reviewed statements and approvals: `approval` is the request id (on a statement record, the
 * request or `grant:<id>` that let it run; on an approval record, the request it is about),
 * `approver` the subject who decided, granted or revoked, `action` the approval step
 * (requested, approved, executed, refused-reuse, ...), `guardrail` the guardrail behind a
 * statement's deny or review, and `digest` the SHA-256 of the exact statement and parameters:
 * the `executed` record of a request and the statement record that ran carry the same digest as
 * its `approved` record.
 */
export function toCsvRow(r: AuditRecord): string {
  const stmt = r.type === 'statement' ? r : undefined;
  const appr = r.type === 'approval' ? r : undefined;
  const conf = r.type === 'config' ? r : undefined;
  const values: Record<(typeof CSV_COLUMNS)[number], unknown> = {
    seq: r.seq,
    time: r.time,
    type: r.type,
    phase: stmt?.phase,
    outcome: r.type === 'disconnect' || r.type === 'approval' || r.type === 'config' ? undefined : r.outcome,
    dialect: r.dialect,
    session_id: r.sessionId,
    source_address: r.sourceAddress,
    subject: conf ? undefined : r.actor?.subject,
    kind: conf ? undefined : r.actor?.kind,
    groups: conf ? undefined : r.actor?.groups.join(LIST_SEPARATOR),
    target: conf ? undefined : r.target,
    username: r.type === 'connect' ? r.username : undefined,
    statement_id: stmt?.statementId ?? appr?.statementId,
    operations: (stmt?.operations ?? appr?.operations)?.join(LIST_SEPARATOR),
    decision: stmt?.decision,
    rule: stmt?.rule ?? appr?.rule,
    text: stmt?.text ?? appr?.text,
    fingerprint: stmt?.fingerprint ?? appr?.fingerprint,
    duration_ms: r.type === 'statement' || r.type === 'disconnect' ? r.durationMs : undefined,
    rows: stmt?.rows,
    error_code: stmt?.errorCode,
    command: stmt?.command,
    reason: r.type === 'cancel' ? undefined : r.reason,
    approval: stmt?.approval ?? (appr ? approvalRef(appr) : undefined),
    approver: appr?.approver?.subject,
    action: appr?.action ?? conf?.action,
    guardrail: stmt?.guardrail,
    digest: stmt?.digest ?? appr?.digest ?? conf?.policyDigest,
    masked: stmt?.masked?.map((m) => `${m.column}=${m.by}`).join(LIST_SEPARATOR),
    hash: r.hash,
  };
  let line = '';
  for (let i = 0; i < CSV_COLUMNS.length; i++) {
    if (i > 0) line += ',';
    line += csvField(values[CSV_COLUMNS[i]!]);
  }
  return line;
}

/** The request an approval event is about, or `grant:<id>` for a grant not tied to one. */
function approvalRef(r: ApprovalEvent): string | undefined {
  if (r.requestId !== undefined) return r.requestId;
  return r.grantId !== undefined ? `grant:${r.grantId}` : undefined;
}

function csvField(value: unknown): string {
  if (value === undefined || value === null) return '';
  const s = typeof value === 'string' ? value : String(value);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export interface FormatLineOptions {
  /** Longest statement text shown before it is cut with "…". Default 200. */
  readonly maxTextLength?: number;
}

/**
 * A one-line human summary of a record, e.g.
 * `2024-05-01T12:00:00.000Z #42 statement complete alice (human) -> prod: SELECT 1 [ok, 1 row, 3 ms]`.
 * Control characters and line breaks are neutralized so a record cannot break or restyle the line.
 */
export function formatRecordLine(r: AuditRecord, options?: FormatLineOptions): string {
  const who = r.actor ? `${clean(r.actor.subject)} (${r.actor.kind})` : undefined;
  const target = r.target !== undefined ? clean(r.target) : undefined;
  const head = `${clean(r.time)} #${r.seq} ${r.type}`;
  switch (r.type) {
    case 'connect': {
      const parts = [head, r.outcome, who ?? `user ${clean(r.username)}`];
      if (target !== undefined) parts.push(`-> ${target}`);
      if (r.sourceAddress) parts.push(`from ${clean(r.sourceAddress)}`);
      if (r.actor && r.username !== r.actor.subject) parts.push(`as user ${clean(r.username)}`);
      let line = parts.join(' ');
      if (r.reason) line += `: ${clean(r.reason)}`;
      return line;
    }
    case 'disconnect':
      return (
        `${head} ${who} -> ${target} after ${formatDuration(r.durationMs)}, ` +
        `${r.statements} statement${r.statements === 1 ? '' : 's'} (${clean(r.reason)})`
      );
    case 'cancel': {
      const parts = [head, r.outcome];
      if (who) parts.push(who);
      if (target !== undefined) parts.push(`-> ${target}`);
      return parts.join(' ');
    }
    case 'statement': {
      const max = options?.maxTextLength ?? 200;
      let text = clean(r.text.replace(/\s+/g, ' ').trim());
      if (text.length > max) text = `${text.slice(0, Math.max(0, max - 1))}…`;
      const facts: string[] = [];
      if (r.decision !== 'allow') facts.push(r.rule ? `${r.decision} by ${clean(r.rule)}` : r.decision);
      if (r.approval !== undefined) facts.push(`approval ${clean(r.approval)}`);
      if (r.outcome) facts.push(r.errorCode ? `${r.outcome} ${clean(r.errorCode)}` : r.outcome);
      if (r.rows !== undefined) facts.push(`${r.rows} row${r.rows === 1 ? '' : 's'}`);
      if (r.durationMs !== undefined) facts.push(formatDuration(r.durationMs));
      if (r.masked !== undefined && r.masked.length > 0) facts.push(`masked ${clean([...new Set(r.masked.map((m) => m.column))].join(', '))}`);
      const tail = facts.length > 0 ? ` [${facts.join(', ')}]` : '';
      return `${head} ${r.phase} ${who} -> ${target}: ${text}${tail}`;
    }
    case 'config': {
      const parts = [head, r.action, clean(r.file)];
      if (r.rules !== undefined) parts.push(`policy of ${r.rules} rule${r.rules === 1 ? '' : 's'}`);
      if (r.policyDigest !== undefined) parts.push(`sha256:${clean(r.policyDigest.slice(0, 16))}`);
      let line = parts.join(' ');
      if (r.reason !== undefined) line += `: ${clean(r.reason.replace(/\s+/g, ' ').trim())}`;
      return line;
    }
    case 'approval': {
      const grantAction = r.action === 'grant-created' || r.action === 'grant-revoked';
      const parts = [head, r.action];
      if (grantAction) {
        if (r.grantId !== undefined) parts.push(clean(r.grantId));
        if (r.requestId !== undefined) parts.push(`from ${clean(r.requestId)}`);
        parts.push(`for ${who}`);
      } else {
        if (r.requestId !== undefined) parts.push(clean(r.requestId));
        parts.push(`${who}`);
      }
      if (target !== undefined) parts.push(`-> ${target}`);
      if (r.approver) parts.push(`by ${clean(r.approver.subject)}`);
      if (!grantAction && r.grantId !== undefined) parts.push(`with grant ${clean(r.grantId)}`);
      if (r.action === 'grant-created' && r.expiresAt !== undefined) parts.push(`until ${clean(r.expiresAt)}`);
      if (r.rule !== undefined) parts.push(`[${clean(r.rule)}]`);
      let line = parts.join(' ');
      const words = r.reason ?? r.text;
      if (words !== undefined) {
        const max = options?.maxTextLength ?? 200;
        let said = clean(words.replace(/\s+/g, ' ').trim());
        if (said.length > max) said = `${said.slice(0, Math.max(0, max - 1))}…`;
        line += `: ${said}`;
      }
      return line;
    }
  }
}

function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const minutes = Math.floor(ms / 60_000);
  const seconds = Math.round((ms % 60_000) / 1000);
  return `${minutes} min ${seconds} s`;
}

/**
 * Replaces control characters (including ESC, which starts terminal sequences), line separators
 * and bidirectional overrides with escapes.
 */
function clean(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g, (c) => {
    if (c === '\n') return '\\n';
    if (c === '\r') return '\\r';
    if (c === '\t') return '\\t';
    return `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
  });
}
