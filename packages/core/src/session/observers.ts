/**
 * Observers of governed sessions: lineage and tracing follow sessions and statements through
 * these hooks. With no observer installed the governor does no work for them.
 */
import type { CallerContext } from './caller-context.js';
import type { GovernedSession, StatementHandle, StatementOutcome } from './governor.js';

/** How a wait for an approver ended. */
export type ApprovalWaitOutcome = 'approved' | 'rejected' | 'expired' | 'abandoned' | 'cancelled' | 'error';

export interface StatementObserver {
  /** The statement is held for an approver; the returned function is called when the wait ends. */
  held?(requestId: string | undefined): (outcome: ApprovalWaitOutcome) => void;
  /** The statement's outcome (called once). */
  complete(outcome: StatementOutcome): void;
}

export interface SessionObserver {
  /**
   * A statement was decided. `context` is the caller context in force for it (its comment,
   * else the session's). Returns the statement's observer, or undefined to ignore it.
   */
  statement(handle: StatementHandle, context: CallerContext | undefined): StatementObserver | undefined;
  /** The session ended (called once). */
  end(reason: string): void;
}

export interface GovernanceObserver {
  /** A session opened. `context` is the session's caller context. */
  session(session: GovernedSession, context: CallerContext | undefined): SessionObserver | undefined;
  /** Stops the observer (flushes what it holds). */
  close?(): Promise<void>;
}
