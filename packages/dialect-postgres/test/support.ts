import type { ApprovalRequest, Approvals, Identity } from '@sluice/core';
import type pg from 'pg';
import { it } from 'vitest';

/**
 * A test that runs only when its server is there (`requireService` has already said loudly
 * when it is not, and fails the run under SLUICE_REQUIRE_SERVICES=1).
 */
export function liveTest(isAvailable: () => boolean) {
  return (name: string, body: () => Promise<void>, timeout = 30_000): void => {
    it(name, async () => {
      if (!isAvailable()) return;
      await body();
    }, timeout);
  };
}

/** The identity of a harness token, as an approver acting through the approvals service. */
export function identityOf(t: { subject: string; kind: Identity['kind']; groups: readonly string[] }): Identity {
  return { subject: t.subject, kind: t.kind, groups: [...t.groups], method: 'token' };
}

/** Waits for a pending review request whose statement matches, and returns it. */
export async function pendingRequest(approvals: Approvals, statement: RegExp, timeoutMs = 5000): Promise<ApprovalRequest> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const found = approvals.list({ status: 'pending' }).find((r) => statement.test(r.statement));
    if (found) return found;
    if (Date.now() > until) throw new Error(`no pending request for ${statement}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The columns of a table, read directly from the server. */
export async function columnNames(direct: pg.Client, table: string): Promise<string[]> {
  const r = await direct.query('SELECT column_name FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position', [table]);
  return r.rows.map((x: { column_name: string }) => x.column_name);
}
