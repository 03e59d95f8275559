/**
 * What a caller says about the work a statement belongs to: its W3C trace context and its job
 * and run. Read from (strongest first) a sqlcommenter-style comment in the statement, the
 * session's connection attributes (MySQL) or application name (PostgreSQL), and the claims of
 * the identity's token. These are the caller's own declarations: they label lineage and
 * traces, they never change who the caller is or what it may do.
 */

export interface CallerContext {
  /** A W3C traceparent, checked for shape (`00-<32 hex>-<16 hex>-<2 hex>`). */
  readonly traceparent?: string;
  readonly tracestate?: string;
  readonly job?: string;
  readonly run?: string;
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
const ALL_ZERO_TRACE = '00000000000000000000000000000000';
const ALL_ZERO_SPAN = '0000000000000000';

/** A parsed traceparent, or undefined when it is not a valid one (version ff and all-zero ids are invalid). */
export function parseTraceparent(value: string): { traceId: string; spanId: string; flags: number } | undefined {
  const m = TRACEPARENT.exec(value.trim().toLowerCase());
  if (m === null || m[1] === 'ff' || m[2] === ALL_ZERO_TRACE || m[3] === ALL_ZERO_SPAN) return undefined;
  return { traceId: m[2]!, spanId: m[3]!, flags: Number.parseInt(m[4]!, 16) };
}

const MAX_VALUE = 200;
const KEYS = new Set(['traceparent', 'tracestate', 'job', 'run']);

function build(pairs: Iterable<readonly [string, string]>): CallerContext | undefined {
  let traceparent: string | undefined;
  let tracestate: string | undefined;
  let job: string | undefined;
  let run: string | undefined;
  for (const [rawKey, rawValue] of pairs) {
    const key = rawKey.trim().toLowerCase();
    if (!KEYS.has(key)) continue;
    const value = rawValue.trim();
    if (value.length === 0 || value.length > MAX_VALUE) continue;
    switch (key) {
      case 'traceparent':
        if (parseTraceparent(value) !== undefined) traceparent = value.toLowerCase();
        break;
      case 'tracestate':
        tracestate = value;
        break;
      case 'job':
        job = value;
        break;
      case 'run':
        run = value;
        break;
    }
  }
  if (traceparent === undefined && job === undefined && run === undefined) return undefined;
  return {
    ...(traceparent !== undefined ? { traceparent } : {}),
    ...(traceparent !== undefined && tracestate !== undefined ? { tracestate } : {}),
    ...(job !== undefined ? { job } : {}),
    ...(run !== undefined ? { run } : {}),
  };
}

function decode(value: string): string {
  if (!value.includes('%')) return value;
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

/**
 * The pairs of a sqlcommenter comment body: `key='value',key2='value2'`, keys and values
 * URL-encoded, a quote inside a value escaped as `\'`. Undefined when the body is not of that
 * form (an ordinary comment).
 */
function commenterPairs(body: string): [string, string][] | undefined {
  const pairs: [string, string][] = [];
  let i = 0;
  const n = body.length;
  while (i < n && body.charCodeAt(i) <= 32) i++;
  while (i < n) {
    const eq = body.indexOf('=', i);
    if (eq < 0) return undefined;
    const key = body.slice(i, eq).trim();
    if (!/^[A-Za-z0-9_.%-]+$/.test(key)) return undefined;
    i = eq + 1;
    if (body[i] !== "'") return undefined;
    i++;
    let value = '';
    for (;;) {
      if (i >= n) return undefined;
      const c = body[i]!;
      if (c === '\\' && body[i + 1] === "'") {
        value += "'";
        i += 2;
        continue;
      }
      if (c === "'") break;
      value += c;
      i++;
    }
    i++;
    pairs.push([decode(key), decode(value)]);
    while (i < n && body.charCodeAt(i) <= 32) i++;
    if (i >= n) break;
    if (body[i] !== ',') return undefined;
    i++;
    while (i < n && body.charCodeAt(i) <= 32) i++;
  }
  return pairs.length > 0 ? pairs : undefined;
}

/** Longest comment body read; a sqlcommenter comment is short. */
const MAX_COMMENT = 2048;

/**
 * The caller context in a statement's sqlcommenter comment: the last `/* ... *\/` comment of
 * the text (where sqlcommenter puts it, before an optional `;`), else the first one. Cheap
 * when the text has no comment (one `indexOf`).
 */
export function commentContext(text: string | undefined): CallerContext | undefined {
  if (text === undefined) return undefined;
  const first = text.indexOf('/*');
  if (first < 0) return undefined;
  const lastEnd = text.lastIndexOf('*/');
  if (lastEnd <= first) return undefined;
  const lastStart = text.lastIndexOf('/*', lastEnd - 1);
  if (lastStart >= 0 && lastEnd - lastStart - 2 <= MAX_COMMENT) {
    const pairs = commenterPairs(text.slice(lastStart + 2, lastEnd));
    const ctx = pairs ? build(pairs) : undefined;
    if (ctx !== undefined) return ctx;
  }
  if (first !== lastStart) {
    const end = text.indexOf('*/', first + 2);
    if (end > first && end - first - 2 <= MAX_COMMENT) {
      const pairs = commenterPairs(text.slice(first + 2, end));
      if (pairs) return build(pairs);
    }
  }
  return undefined;
}

/**
 * The caller context in an application name: `key=value` pairs separated by `,`, `;` or
 * spaces, values optionally quoted (`job=retrain-churn;run=42`). Undefined for a plain name.
 */
export function applicationContext(application: string | undefined): CallerContext | undefined {
  if (application === undefined || !application.includes('=')) return undefined;
  const pairs: [string, string][] = [];
  for (const part of application.split(/[,;\s]+/)) {
    const eq = part.indexOf('=');
    if (eq <= 0) continue;
    let value = part.slice(eq + 1);
    if (value.length >= 2 && (value[0] === "'" || value[0] === '"') && value.endsWith(value[0])) value = value.slice(1, -1);
    pairs.push([part.slice(0, eq), decode(value)]);
  }
  return build(pairs);
}

/** The caller context in connection attributes (MySQL): attributes `traceparent`, `tracestate`, `job`, `run`. */
export function attributesContext(attributes: Readonly<Record<string, string>> | undefined): CallerContext | undefined {
  if (attributes === undefined) return undefined;
  return build(Object.entries(attributes));
}

/** The caller context in a token's claims `job` and `run` (strings or numbers). */
export function claimsContext(claims: Readonly<Record<string, unknown>> | undefined): CallerContext | undefined {
  if (claims === undefined) return undefined;
  const pairs: [string, string][] = [];
  for (const key of ['job', 'run'] as const) {
    const v = claims[key];
    if (typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v))) pairs.push([key, String(v)]);
  }
  return build(pairs);
}

/**
 * Contexts merged, strongest first: each key comes from the first context that has it. A
 * traceparent and its tracestate always come from the same context.
 */
export function mergeContexts(...contexts: readonly (CallerContext | undefined)[]): CallerContext | undefined {
  let out: { traceparent?: string; tracestate?: string; job?: string; run?: string } | undefined;
  for (const c of contexts) {
    if (c === undefined) continue;
    out ??= {};
    if (out.traceparent === undefined && c.traceparent !== undefined) {
      out.traceparent = c.traceparent;
      if (c.tracestate !== undefined) out.tracestate = c.tracestate;
    }
    if (out.job === undefined && c.job !== undefined) out.job = c.job;
    if (out.run === undefined && c.run !== undefined) out.run = c.run;
  }
  return out;
}
