import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  applicationContext,
  attributesContext,
  claimsContext,
  commentContext,
  mergeContexts,
  parseTraceparent,
  type CallerContext,
} from './caller-context.js';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN_ID = '00f067aa0ba902b7';
const TP = `00-${TRACE_ID}-${SPAN_ID}-01`;

describe('parseTraceparent', () => {
  it('reads the trace id, span id and flags of a valid traceparent', () => {
    expect(parseTraceparent(TP)).toEqual({ traceId: TRACE_ID, spanId: SPAN_ID, flags: 1 });
    expect(parseTraceparent(` 00-${TRACE_ID}-${SPAN_ID}-00 `)).toEqual({ traceId: TRACE_ID, spanId: SPAN_ID, flags: 0 });
  });

  it('refuses bad lengths, version ff and all-zero ids', () => {
    expect(parseTraceparent(`00-${TRACE_ID}0-${SPAN_ID}-01`)).toBeUndefined();
    expect(parseTraceparent(`00-${TRACE_ID}-${SPAN_ID.slice(1)}-01`)).toBeUndefined();
    expect(parseTraceparent(`00-${TRACE_ID}-${SPAN_ID}-1`)).toBeUndefined();
    expect(parseTraceparent(`ff-${TRACE_ID}-${SPAN_ID}-01`)).toBeUndefined();
    expect(parseTraceparent(`00-${'0'.repeat(32)}-${SPAN_ID}-01`)).toBeUndefined();
    expect(parseTraceparent(`00-${TRACE_ID}-${'0'.repeat(16)}-01`)).toBeUndefined();
    expect(parseTraceparent(`00-${TRACE_ID.replace('4', 'g')}-${SPAN_ID}-01`)).toBeUndefined();
    expect(parseTraceparent('')).toBeUndefined();
  });
});

describe('commentContext', () => {
  it('reads a sqlcommenter comment at the end of the statement', () => {
    expect(commentContext(`SELECT 1 /*traceparent='${TP}',job='retrain-churn',run='42'*/`)).toEqual({
      traceparent: TP,
      job: 'retrain-churn',
      run: '42',
    });
  });

  it('reads it before a trailing semicolon', () => {
    expect(commentContext(`SELECT 1 /*job='retrain-churn',run='42'*/;`)).toEqual({ job: 'retrain-churn', run: '42' });
  });

  it('reads a comment at the start of the statement when the last one is ordinary', () => {
    expect(commentContext(`/*job='etl',run='7'*/ SELECT 1 /* just a note */`)).toEqual({ job: 'etl', run: '7' });
    expect(commentContext(`/*job='etl'*/ SELECT 1`)).toEqual({ job: 'etl' });
  });

  it('prefers the last comment when both are sqlcommenter comments', () => {
    expect(commentContext(`/*job='first'*/ SELECT 1 /*job='last'*/`)).toEqual({ job: 'last' });
  });

  it('decodes URL-encoded keys and values and unescapes quotes', () => {
    expect(commentContext(`SELECT 1 /*job='daily%20load%2Fcustomers',run='it\\'s-3'*/`)).toEqual({ job: 'daily load/customers', run: "it's-3" });
    expect(commentContext(`SELECT 1 /*j%6Fb='x'*/`)).toEqual({ job: 'x' });
    // A malformed escape is kept as sent.
    expect(commentContext(`SELECT 1 /*job='100%'*/`)).toEqual({ job: '100%' });
  });

  it('keeps the tracestate only with a traceparent', () => {
    expect(commentContext(`SELECT 1 /*traceparent='${TP}',tracestate='congo%3Dt61rcWkgMzE'*/`)).toEqual({ traceparent: TP, tracestate: 'congo=t61rcWkgMzE' });
    expect(commentContext(`SELECT 1 /*tracestate='congo=t61',job='j'*/`)).toEqual({ job: 'j' });
    expect(commentContext(`SELECT 1 /*tracestate='congo=t61'*/`)).toBeUndefined();
  });

  it('lower-cases a traceparent and matches keys without regard to case', () => {
    expect(commentContext(`SELECT 1 /*TraceParent='${TP.toUpperCase()}',JOB='x'*/`)).toEqual({ traceparent: TP, job: 'x' });
  });

  it('ignores ordinary comments and comments with other keys', () => {
    expect(commentContext('SELECT 1 /* reason: fixing ticket 12 */')).toBeUndefined();
    expect(commentContext('SELECT 1 /* a=b */')).toBeUndefined();
    expect(commentContext("SELECT 1 /*job='x' run='y'*/")).toBeUndefined();
    expect(commentContext("SELECT 1 /*job='unterminated*/")).toBeUndefined();
    expect(commentContext("SELECT 1 /*controller='index',action='show'*/")).toBeUndefined();
    expect(commentContext("SELECT 1 -- job='x'")).toBeUndefined();
    expect(commentContext("SELECT 1 /*job='x'")).toBeUndefined();
    expect(commentContext("SELECT 1 job='x'*/")).toBeUndefined();
  });

  it('drops invalid traceparents but keeps the other keys', () => {
    expect(commentContext(`SELECT 1 /*traceparent='00-${TRACE_ID}-${SPAN_ID}0-01',job='j'*/`)).toEqual({ job: 'j' });
    expect(commentContext(`SELECT 1 /*traceparent='ff-${TRACE_ID}-${SPAN_ID}-01',job='j'*/`)).toEqual({ job: 'j' });
    expect(commentContext(`SELECT 1 /*traceparent='00-${'0'.repeat(32)}-${SPAN_ID}-01',job='j'*/`)).toEqual({ job: 'j' });
    expect(commentContext(`SELECT 1 /*traceparent='00-${TRACE_ID}-${'0'.repeat(16)}-01',job='j'*/`)).toEqual({ job: 'j' });
    expect(commentContext(`SELECT 1 /*traceparent='00-${'0'.repeat(32)}-${SPAN_ID}-01'*/`)).toBeUndefined();
  });

  it('drops values longer than 200 characters and empty ones', () => {
    expect(commentContext(`SELECT 1 /*job='${'j'.repeat(201)}',run='r'*/`)).toEqual({ run: 'r' });
    expect(commentContext(`SELECT 1 /*job='${'j'.repeat(200)}',run=''*/`)).toEqual({ job: 'j'.repeat(200) });
    // The limit applies to the decoded value.
    expect(commentContext(`SELECT 1 /*job='${'%41'.repeat(100)}'*/`)).toEqual({ job: 'A'.repeat(100) });
  });

  it('returns undefined for a text without a comment or without text', () => {
    expect(commentContext(undefined)).toBeUndefined();
    expect(commentContext('')).toBeUndefined();
    expect(commentContext("SELECT 'job=x'")).toBeUndefined();
    expect(commentContext(`SELECT '${'x'.repeat(1_000_000)}'`)).toBeUndefined();
  });

  it('returns only well-formed contexts and never throws, whatever the text', () => {
    const fragment = fc.oneof(
      fc.string(),
      fc.constantFrom('/*', '*/', "'", "\\'", '=', ',', ';', '%', '%2', '%zz', ' ', 'job', 'run', 'traceparent', 'tracestate', TP, `ff-${TRACE_ID}-${SPAN_ID}-01`),
    );
    // Comments of the sqlcommenter form with arbitrary keys' values and surroundings, so that
    // many texts do carry a context and its shape is checked, not only that nothing throws.
    const commented = fc
      .tuple(fc.constantFrom('job', 'run', 'traceparent', 'tracestate'), fc.oneof(fc.string(), fc.constant(TP)), fc.string(), fc.string())
      .map(([key, value, before, after]) => `${before}/*${key}='${value}'*/${after}`);
    const text = fc.oneof(fc.string(), fc.array(fragment, { maxLength: 20 }).map((parts) => parts.join('')), commented);
    let defined = 0;
    fc.assert(
      fc.property(text, (t) => {
        const ctx = commentContext(t);
        if (ctx === undefined) return;
        defined++;
        expectValid(ctx);
      }),
      { numRuns: 2000 },
    );
    expect(defined).toBeGreaterThan(100);
  });
});

function expectValid(ctx: CallerContext): void {
  for (const [k, v] of Object.entries(ctx)) {
    expect(['traceparent', 'tracestate', 'job', 'run']).toContain(k);
    expect(typeof v).toBe('string');
    expect((v as string).length).toBeGreaterThan(0);
    expect((v as string).length).toBeLessThanOrEqual(200);
    expect((v as string).trim()).toBe(v);
  }
  expect(ctx.traceparent !== undefined || ctx.job !== undefined || ctx.run !== undefined).toBe(true);
  if (ctx.traceparent !== undefined) expect(parseTraceparent(ctx.traceparent)).toBeDefined();
  if (ctx.tracestate !== undefined) expect(ctx.traceparent).toBeDefined();
}

describe('applicationContext', () => {
  it('reads key=value pairs separated by ; , or spaces', () => {
    expect(applicationContext('job=x;run=y')).toEqual({ job: 'x', run: 'y' });
    expect(applicationContext("job='x' run=7")).toEqual({ job: 'x', run: '7' });
    expect(applicationContext('job="nightly", run=2024-06-01')).toEqual({ job: 'nightly', run: '2024-06-01' });
    expect(applicationContext(`traceparent=${TP};job=a%2Fb`)).toEqual({ traceparent: TP, job: 'a/b' });
  });

  it('returns undefined for a plain application name', () => {
    expect(applicationContext('psql')).toBeUndefined();
    expect(applicationContext('DBeaver 24.1.0 - Main')).toBeUndefined();
    expect(applicationContext('')).toBeUndefined();
    expect(applicationContext(undefined)).toBeUndefined();
    expect(applicationContext('app=billing')).toBeUndefined();
    expect(applicationContext('=x')).toBeUndefined();
  });
});

describe('attributesContext', () => {
  it('reads traceparent, tracestate, job and run attributes', () => {
    expect(attributesContext({ _client_name: 'libmysql', traceparent: TP, tracestate: 'a=1', job: ' load ', run: '9' })).toEqual({
      traceparent: TP,
      tracestate: 'a=1',
      job: 'load',
      run: '9',
    });
  });

  it('returns undefined without them', () => {
    expect(attributesContext({ _client_name: 'libmysql', program_name: 'mysql' })).toBeUndefined();
    expect(attributesContext({ traceparent: 'nope' })).toBeUndefined();
    expect(attributesContext(undefined)).toBeUndefined();
  });
});

describe('claimsContext', () => {
  it('reads string and number claims job and run', () => {
    expect(claimsContext({ job: 'retrain-churn', run: 42, sub: 'svc' })).toEqual({ job: 'retrain-churn', run: '42' });
  });

  it('ignores other types and other claims', () => {
    expect(claimsContext({ job: ['a'], run: { id: 1 } })).toBeUndefined();
    expect(claimsContext({ job: true, run: null, traceparent: TP })).toBeUndefined();
    expect(claimsContext({ job: 'j', run: false })).toEqual({ job: 'j' });
    expect(claimsContext(undefined)).toBeUndefined();
  });
});

describe('mergeContexts', () => {
  const comment: CallerContext = { job: 'from-comment' };
  const attributes: CallerContext = { job: 'from-attributes', run: 'attr-run', traceparent: TP };
  const application: CallerContext = { job: 'from-application', run: 'app-run', traceparent: `00-${TRACE_ID}-${'1'.repeat(16)}-01`, tracestate: 'app=1' };
  const claims: CallerContext = { job: 'from-claims', run: 'claims-run' };

  it('takes each key from the strongest context that has it', () => {
    expect(mergeContexts(comment, attributes, application, claims)).toEqual({ job: 'from-comment', run: 'attr-run', traceparent: TP });
    expect(mergeContexts(undefined, undefined, application, claims)).toEqual({
      job: 'from-application',
      run: 'app-run',
      traceparent: application.traceparent,
      tracestate: 'app=1',
    });
    expect(mergeContexts(undefined, undefined, undefined, claims)).toEqual(claims);
  });

  it('never pairs a traceparent with another context tracestate', () => {
    // The attributes' traceparent wins; the application's tracestate is not carried over to it.
    const merged = mergeContexts(attributes, application);
    expect(merged).toEqual({ job: 'from-attributes', run: 'attr-run', traceparent: TP });
    expect(merged).not.toHaveProperty('tracestate');
  });

  it('returns undefined when no context is given', () => {
    expect(mergeContexts()).toBeUndefined();
    expect(mergeContexts(undefined, undefined)).toBeUndefined();
  });

  it('merges a statement comment over a session context built from attributes, application name and claims', () => {
    const session = mergeContexts(attributesContext({ run: 'r-attr' }), applicationContext('job=app-job;run=r-app'), claimsContext({ job: 'claim-job', run: 1 }));
    expect(session).toEqual({ job: 'app-job', run: 'r-attr' });
    expect(mergeContexts(commentContext(`SELECT 1 /*traceparent='${TP}',run='r-comment'*/`), session)).toEqual({ traceparent: TP, job: 'app-job', run: 'r-comment' });
  });
});
