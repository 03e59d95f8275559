/**
 * The PostgreSQL parser (libpg-query: the server's own grammar compiled to WebAssembly).
 *
 * The WASM module is loaded by a top-level `await` when this module is first imported. That
 * keeps every analysis function synchronous (the relay analyses a statement in the middle of a
 * frame and cannot wait for a promise) while guaranteeing the parser is ready: an importer of
 * the dialect cannot run before its module graph, including this await, has finished. The
 * module is compiled once per process (~20 ms) and needs no native build.
 */
import { loadModule, parsePlPgSQLSync, parseSync } from 'libpg-query';

await loadModule();

/** A parse-tree node as JSON: `{ NodeType: { ...fields } }`. */
export type PgNode = Record<string, unknown>;

/** One statement of a parse result. */
export interface RawStatement {
  readonly stmt: PgNode;
}

export type ParseOutcome =
  | { readonly ok: true; readonly stmts: readonly RawStatement[] }
  | { readonly ok: false; readonly error: string };

/** Counters for tests and benchmarks: how often the parser actually ran. */
export const parserCalls = { sql: 0, plpgsql: 0 };

/** Parses SQL text (any number of statements). Never throws. */
export function parseSql(sql: string): ParseOutcome {
  parserCalls.sql++;
  try {
    const result = parseSync(sql) as unknown as { stmts?: RawStatement[] };
    return { ok: true, stmts: result.stmts ?? [] };
  } catch (e) {
    return { ok: false, error: errorText(e) };
  }
}

/**
 * Parses a PL/pgSQL routine (`DO $$...$$` or a CREATE FUNCTION text) into the PL/pgSQL
 * compiler's tree. Never throws.
 */
export function parsePlpgsql(sql: string): { readonly ok: true; readonly tree: unknown } | { readonly ok: false; readonly error: string } {
  parserCalls.plpgsql++;
  try {
    return { ok: true, tree: parsePlPgSQLSync(sql) };
  } catch (e) {
    return { ok: false, error: errorText(e) };
  }
}

const MAX_MESSAGE = 200;

/**
 * The parser's message, made safe for the audit trail: a literal quoted in the message
 * (`syntax error at or near "'secret'"`) is replaced by `?`, as normalization does.
 */
function errorText(e: unknown): string {
  let message = e instanceof Error ? e.message : String(e);
  message = message.replace(/(at or near )"((?:[^"]|"")*)"/g, (whole, prefix: string, token: string) =>
    LITERAL_START.test(token) ? `${prefix}"?"` : whole,
  );
  const position = (e as { sqlDetails?: { cursorPosition?: number } } | undefined)?.sqlDetails?.cursorPosition;
  if (typeof position === 'number' && position >= 0 && !message.includes('at end of input')) {
    message += ` (character ${position + 1} of the statement)`;
  }
  return message.length > MAX_MESSAGE ? `${message.slice(0, MAX_MESSAGE - 1)}…` : message;
}

/** Tokens that start a literal: strings in all their forms, dollar quotes, numbers, parameters. */
const LITERAL_START = /^(?:'|[eEnNbBxX]'|[uU]&'|\$|[0-9]|\.[0-9])/;
