/**
 * What the analysis of one PostgreSQL statement finds: core's StatementFacts, and the
 * statement a PREPARE prepares.
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
}
