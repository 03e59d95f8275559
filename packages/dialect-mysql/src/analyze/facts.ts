/**
 * What the analysis of one MySQL statement finds: core's StatementFacts, and what the session
 * must follow: the statement a PREPARE prepares, settings changed, user variables assigned,
 * HANDLERs opened.
 */
import { StatementFacts } from '@sluice/core';

export type { ObjectEntry, ObjectKind } from '@sluice/core';

/** A prepared statement's facts, kept apart so the PREPARE's analysis can carry them. */
export interface PreparedFacts {
  readonly name: string;
  readonly facts: Facts;
}

export class Facts extends StatementFacts {
  prepare: PreparedFacts | undefined;
  /** System variables the statement sets (see MySqlAnalysis.settings). */
  readonly settings: string[] = [];
  /** The statement stores values in user variables (see MySqlAnalysis.assignsVariables). */
  assignsVariables = false;
  /** HANDLER statements: what the session must remember (see MySqlAnalysis.handler). */
  handler: { readonly open?: string; readonly read?: string; readonly close?: string } | undefined;

  override merge(other: StatementFacts, how: { readonly asRead?: boolean; readonly dropRead?: boolean } = {}): void {
    super.merge(other, how);
    if (other instanceof Facts) {
      for (const v of other.settings) if (!this.settings.includes(v)) this.settings.push(v);
      if (other.assignsVariables) this.assignsVariables = true;
    }
  }
}
