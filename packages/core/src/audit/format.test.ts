import { describe, expect, it } from 'vitest';
import { CSV_COLUMNS, formatRecordLine, toCsvHeader, toCsvRow } from './format.js';
import type { AuditRecord } from './types.js';

const chain = { prev: '0'.repeat(64), hash: 'f'.repeat(64) };
const actor = { subject: 'alice', kind: 'human', groups: ['dba', 'eng'], method: 'oidc' } as const;

const stmt: AuditRecord = {
  type: 'statement',
  seq: 7,
  ...chain,
  time: '2024-05-01T12:00:00.000Z',
  dialect: 'postgres',
  sessionId: 's-1',
  sourceAddress: '10.1.2.3',
  phase: 'complete',
  statementId: 'st-1',
  actor,
  target: 'prod',
  text: 'SELECT "a, b", \'x\'\nFROM t',
  fingerprint: 'abcd',
  operations: ['read', 'copy-out'],
  protocol: 'simple',
  decision: 'allow',
  outcome: 'ok',
  rows: 3,
  durationMs: 12,
  command: 'SELECT 3',
};

/** Minimal RFC 4180 parser for one record, to check the quoting round-trips. */
function parseCsvLine(line: string): string[] {
  const out: string[] = [];
  let i = 0;
  for (;;) {
    let field = '';
    if (line[i] === '"') {
      i++;
      for (;;) {
        const c = line[i++];
        if (c === undefined) throw new Error('unterminated quote');
        if (c === '"') {
          if (line[i] === '"') {
            field += '"';
            i++;
          } else break;
        } else field += c;
      }
    } else {
      while (i < line.length && line[i] !== ',') field += line[i++];
    }
    out.push(field);
    if (i >= line.length) return out;
    if (line[i] !== ',') throw new Error(`expected comma at ${i}`);
    i++;
  }
}

describe('CSV', () => {
  it('has the fixed header', () => {
    expect(toCsvHeader()).toBe(
      'seq,time,type,phase,outcome,dialect,session_id,source_address,subject,kind,groups,target,username,' +
        'statement_id,operations,decision,rule,text,fingerprint,duration_ms,rows,error_code,command,reason,' +
        'approval,approver,action,guardrail,digest,masked,hash',
    );
  });

  it('quotes commas, quotes and line breaks (RFC 4180)', () => {
    const row = toCsvRow(stmt);
    expect(row).toContain('"SELECT ""a, b"", \'x\'\nFROM t"');
    const fields = parseCsvLine(row);
    expect(fields).toHaveLength(CSV_COLUMNS.length);
    const byName = Object.fromEntries(CSV_COLUMNS.map((c, i) => [c, fields[i]]));
    expect(byName).toMatchObject({
      seq: '7',
      type: 'statement',
      phase: 'complete',
      outcome: 'ok',
      subject: 'alice',
      groups: 'dba;eng',
      operations: 'read;copy-out',
      text: stmt.text,
      rows: '3',
      duration_ms: '12',
      command: 'SELECT 3',
      username: '',
      reason: '',
      approval: '',
      approver: '',
      action: '',
      hash: chain.hash,
    });
  });

  it('shows who approved a reviewed statement and the digests that bind them', () => {
    const ran: AuditRecord = {
      ...stmt,
      decision: 'review',
      rule: 'drop-guard',
      guardrail: 'drop-table',
      reason: 'DROP TABLE needs a second person',
      approval: 'r-7k3p9q',
      digest: 'd'.repeat(64),
      text: 'DROP TABLE t',
      operations: ['ddl'],
    };
    const approved: AuditRecord = {
      type: 'approval',
      seq: 6,
      ...chain,
      time: '2024-05-01T11:59:00.000Z',
      dialect: 'postgres',
      sessionId: 's-1',
      action: 'approved',
      requestId: 'r-7k3p9q',
      actor,
      target: 'prod',
      approver: { subject: 'bob', kind: 'human', groups: ['dba'], method: 'oidc' },
      statementId: 'st-1',
      fingerprint: 'abcd',
      digest: 'd'.repeat(64),
      rule: 'drop-guard',
      reason: 'planned cleanup, ticket 42',
    };
    const rows = [ran, approved].map((r) => Object.fromEntries(CSV_COLUMNS.map((c, i) => [c, parseCsvLine(toCsvRow(r))[i]])));
    expect(rows[0]).toMatchObject({
      type: 'statement',
      decision: 'review',
      rule: 'drop-guard',
      guardrail: 'drop-table',
      reason: 'DROP TABLE needs a second person',
      approval: 'r-7k3p9q',
      approver: '',
      digest: 'd'.repeat(64),
    });
    expect(rows[1]).toMatchObject({
      type: 'approval',
      action: 'approved',
      approval: 'r-7k3p9q',
      subject: 'alice',
      approver: 'bob',
      statement_id: 'st-1',
      rule: 'drop-guard',
      reason: 'planned cleanup, ticket 42',
      digest: 'd'.repeat(64),
      outcome: '',
      phase: '',
    });
  });

  it('names a grant not tied to a request as grant:<id>', () => {
    const created: AuditRecord = {
      type: 'approval',
      seq: 9,
      ...chain,
      time: '2024-05-01T12:00:00.000Z',
      dialect: 'sluice',
      action: 'grant-created',
      grantId: 'g-abc123',
      actor,
      approver: { subject: 'bob', kind: 'human', groups: ['dba'], method: 'oidc' },
      operations: ['write', 'ddl'],
      expiresAt: '2024-05-01T13:00:00.000Z',
    };
    const fields = parseCsvLine(toCsvRow(created));
    const byName = Object.fromEntries(CSV_COLUMNS.map((c, i) => [c, fields[i]]));
    expect(byName).toMatchObject({ approval: 'grant:g-abc123', action: 'grant-created', approver: 'bob', operations: 'write;ddl' });
  });

  it('leaves missing values empty and quotes a reason with a CR', () => {
    const refused: AuditRecord = {
      type: 'connect',
      seq: 1,
      ...chain,
      time: '2024-05-01T12:00:00.000Z',
      dialect: 'postgres',
      sourceAddress: '10.1.2.3',
      outcome: 'refused',
      username: 'mallory',
      reason: 'bad token,\r\nexpired',
      tls: false,
    };
    const fields = parseCsvLine(toCsvRow(refused));
    const byName = Object.fromEntries(CSV_COLUMNS.map((c, i) => [c, fields[i]]));
    expect(byName).toMatchObject({ username: 'mallory', subject: '', session_id: '', reason: 'bad token,\r\nexpired' });
  });
});

describe('formatRecordLine', () => {
  it('summarizes a statement on one line', () => {
    expect(formatRecordLine(stmt)).toBe(
      '2024-05-01T12:00:00.000Z #7 statement complete alice (human) -> prod: ' +
        'SELECT "a, b", \'x\' FROM t [ok, 3 rows, 12 ms]',
    );
  });

  it('shows denials and intents', () => {
    const denied: AuditRecord = {
      ...stmt,
      phase: 'intent',
      decision: 'deny',
      rule: 'no-ddl',
      outcome: undefined,
      rows: undefined,
      durationMs: undefined,
    };
    expect(formatRecordLine(denied)).toMatch(/statement intent alice \(human\) -> prod: .* \[deny by no-ddl\]$/);
  });

  it('neutralizes control characters and cuts long text', () => {
    const evil: AuditRecord = { ...stmt, text: 'SELECT 1 \u001b[31m' + 'x'.repeat(500) };
    const line = formatRecordLine(evil, { maxTextLength: 50 });
    expect(line).not.toContain('\u001b');
    expect(line).toContain('\\u001b[31m');
    expect(line).toContain('…');
    expect(line).not.toContain('\n');
  });

  it('summarizes connects, disconnects and cancels', () => {
    const base = { ...chain, time: '2024-05-01T12:00:00.000Z', dialect: 'postgres' };
    const refused = {
      outcome: 'refused',
      username: 'eve',
      sourceAddress: '1.2.3.4',
      reason: 'authentication failed',
    } as const;
    expect(formatRecordLine({ ...base, ...refused, seq: 1, type: 'connect', tls: true })).toBe(
      '2024-05-01T12:00:00.000Z #1 connect refused user eve from 1.2.3.4: authentication failed',
    );
    const accepted = { outcome: 'accepted', username: 'alice', actor, target: 'prod', tls: true } as const;
    expect(formatRecordLine({ ...base, ...accepted, seq: 2, type: 'connect' })).toBe(
      '2024-05-01T12:00:00.000Z #2 connect accepted alice (human) -> prod',
    );
    const ended = { actor, target: 'prod', durationMs: 65_000, statements: 1, reason: 'client' } as const;
    expect(formatRecordLine({ ...base, ...ended, seq: 3, type: 'disconnect' })).toBe(
      '2024-05-01T12:00:00.000Z #3 disconnect alice (human) -> prod after 1 min 5 s, 1 statement (client)',
    );
    expect(formatRecordLine({ ...base, seq: 4, type: 'cancel', outcome: 'ignored' })).toBe(
      '2024-05-01T12:00:00.000Z #4 cancel ignored',
    );
  });

  it('summarizes approval steps with the request, requester, approver and rule', () => {
    const base = { ...chain, time: '2024-05-01T12:00:00.000Z', dialect: 'postgres', type: 'approval' } as const;
    const bob = { subject: 'bob', kind: 'human', groups: ['dba'], method: 'oidc' } as const;
    const request = { requestId: 'r-7k3p9q', actor, target: 'prod', rule: 'drop-guard' } as const;
    expect(
      formatRecordLine({ ...base, ...request, seq: 1, action: 'requested', reason: 'DROP TABLE\nneeds review', text: 'DROP TABLE t' }),
    ).toBe('2024-05-01T12:00:00.000Z #1 approval requested r-7k3p9q alice (human) -> prod [drop-guard]: DROP TABLE needs review');
    expect(formatRecordLine({ ...base, ...request, seq: 2, action: 'approved', approver: bob, grantId: 'g-2b4d6f' })).toBe(
      '2024-05-01T12:00:00.000Z #2 approval approved r-7k3p9q alice (human) -> prod by bob with grant g-2b4d6f [drop-guard]',
    );
    expect(formatRecordLine({ ...base, ...request, seq: 3, action: 'executed', approver: bob, text: 'DROP TABLE t' })).toBe(
      '2024-05-01T12:00:00.000Z #3 approval executed r-7k3p9q alice (human) -> prod by bob [drop-guard]: DROP TABLE t',
    );
    const grant = {
      ...base,
      seq: 4,
      action: 'grant-created',
      grantId: 'g-2b4d6f',
      actor,
      target: 'prod',
      approver: bob,
      expiresAt: '2024-05-01T13:00:00.000Z',
      reason: 'ddl on prod',
    } as const;
    expect(formatRecordLine(grant)).toBe(
      '2024-05-01T12:00:00.000Z #4 approval grant-created g-2b4d6f for alice (human) -> prod by bob until 2024-05-01T13:00:00.000Z: ddl on prod',
    );
  });

  it('names the approval that let a reviewed statement run', () => {
    const ran: AuditRecord = { ...stmt, decision: 'review', rule: 'drop-guard', approval: 'r-7k3p9q' };
    expect(formatRecordLine(ran)).toMatch(/\[review by drop-guard, approval r-7k3p9q, ok, 3 rows, 12 ms\]$/);
  });
});

describe('config events', () => {
  const conf: AuditRecord = {
    type: 'config',
    seq: 1,
    ...chain,
    time: '2024-05-01T12:00:00.000Z',
    dialect: 'sluice',
    action: 'reloaded',
    file: '/etc/sluice/sluice.yaml',
    policyDigest: 'a'.repeat(64),
    rules: 3,
    reason: 'configuration reloaded',
  };

  it('say which policy was in force, on one line and in CSV', () => {
    expect(formatRecordLine(conf)).toBe(
      `2024-05-01T12:00:00.000Z #1 config reloaded /etc/sluice/sluice.yaml policy of 3 rules sha256:${'a'.repeat(16)}: configuration reloaded`,
    );
    const row = toCsvRow(conf).split(',');
    expect(row[CSV_COLUMNS.indexOf('type')]).toBe('config');
    expect(row[CSV_COLUMNS.indexOf('action')]).toBe('reloaded');
    expect(row[CSV_COLUMNS.indexOf('digest')]).toBe('a'.repeat(64));
    expect(row[CSV_COLUMNS.indexOf('reason')]).toBe('configuration reloaded');
  });
});
