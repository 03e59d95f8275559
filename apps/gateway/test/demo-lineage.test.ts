/**
 * The demo's lineage walk-through, as printed: run the query the Lineage section shows (with
 * psql, through a shell, exactly as a reader pastes it), then the `sluice lineage column`
 * command it shows; check the OpenLineage file against the shipped schema, and the statement
 * span under the caller's trace at an OTLP receiver. The commands are read from the demo's
 * output, so the walk-through stays true to what the demo prints.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOpenLineageValidator } from '../../../packages/core/test/openlineage-schema/validate.js';
import { runCli, startCli, type RunningCli } from './helpers.js';
import { otlpEnv, startOtlpReceiver, withoutOtel, type OtlpReceiver } from './otlp-receiver.js';

/** The trace and span the walk-through's query names as its caller's. */
const DEMO_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const DEMO_CALLER_SPAN = '00f067aa0ba902b7';

interface OpenLineageEvent {
  readonly eventType: string;
  readonly run: { readonly runId: string; readonly facets?: Record<string, Record<string, unknown>> };
  readonly job: { readonly namespace: string; readonly name: string };
  readonly outputs?: readonly { readonly namespace: string; readonly name: string; readonly facets?: Record<string, unknown> }[];
}

interface ColumnLineage {
  readonly fields: Record<string, { readonly inputFields: readonly { namespace: string; name: string; field: string; transformations: readonly unknown[] }[] }>;
}

/** Polls until `check` returns a value (not undefined), or fails with `what` after the deadline. */
async function until<T>(check: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function readEvents(file: string): OpenLineageEvent[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as OpenLineageEvent);
}

/** The cells of a `sluice lineage` grid line (columns are separated by two spaces or more). */
const cells = (line: string) => line.trim().split(/ {2,}/);

describe('the demo lineage walk-through (sluice demo, psql, sluice lineage, OpenLineage, OTLP)', () => {
  const cwd = process.cwd();
  let dir: string;
  let receiver: OtlpReceiver;
  let demo: RunningCli;
  let output: string;
  let port: number;
  let psqlLine: string;
  let lineageArgs: string[];
  let openLineageFile: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-demo-lineage-'));
    receiver = await startOtlpReceiver();
    demo = startCli(['demo', '--dir', dir, '--port', '0', '--admin-port', '0'], withoutOtel(otlpEnv(receiver)), cwd);
    output = await demo.waitFor(/Press Ctrl-C to stop/, 90_000);
    port = Number(/gateway\s+127\.0\.0\.1:(\d+) /.exec(output)![1]);
  }, 120_000);

  afterAll(async () => {
    await demo?.stop('SIGTERM');
    await receiver?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('prints a Lineage section with the query to run as retrain-bot and the lineage command to run after it', () => {
    const section = output.slice(output.indexOf('\nLineage:'));
    expect(section).toMatch(/^\nLineage: run a query as the pipeline agent, labelled with its job, run and trace, then ask\nwho read customers\.email \(OpenLineage events go to (\S+)\/openlineage\.jsonl\):\n/);
    openLineageFile = join(cwd, /OpenLineage events go to (\S+)\):/.exec(section)![1]!);
    expect(openLineageFile).toBe(join(dir, 'openlineage.jsonl'));

    const psqlMatch = /^ {2}(psql "postgres:\/\/retrain-bot:bot-demo-token@127\.0\.0\.1:(\d+)\/demo" -c "([^"]+)")$/m.exec(section);
    expect(psqlMatch, 'the psql line of the Lineage section').not.toBeNull();
    psqlLine = psqlMatch![1]!;
    expect(Number(psqlMatch![2])).toBe(port);
    const sql = psqlMatch![3]!;
    expect(sql).toMatch(/^SELECT c\.email, .* FROM customers c /);
    expect(sql).toContain(`traceparent='00-${DEMO_TRACE}-${DEMO_CALLER_SPAN}-01'`);
    expect(sql).toContain("job='retrain-churn'");
    expect(sql).toContain("run='42'");

    const lineageMatch = /^ {2}pnpm sluice (lineage column (\S+) --config (\S+))$/m.exec(section);
    expect(lineageMatch, 'the sluice lineage line of the Lineage section').not.toBeNull();
    expect(lineageMatch![2]).toBe('postgres.public.customers.email');
    expect(join(cwd, lineageMatch![3]!)).toBe(join(dir, 'sluice.yaml'));
    lineageArgs = lineageMatch![1]!.split(' ');
  });

  it('the query, pasted into a shell, runs through the gateway as retrain-bot with the emails masked', () => {
    const r = spawnSync('sh', ['-c', psqlLine], { cwd, env: { ...process.env, PSQLRC: '/dev/null' }, encoding: 'utf8', timeout: 30_000 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const rows = r.stdout.split('\n').filter((l) => /^ \S+@\S+ +\| +\d+ *$/.test(l));
    expect(rows).toHaveLength(3);
    for (const row of rows) expect(row).toMatch(/^ .\*\*\*@e\*\*\*\.(com|org|net) +\| +\d+ *$/);
    expect(r.stdout).toContain('(3 rows)');
    expect(r.stdout).not.toMatch(/@example\./);
  });

  it('sluice lineage column (the printed command) lists retrain-bot, job retrain-churn, run 42, masked yes; --json says the same', async () => {
    // Lineage reaches the store within the demo's flush interval (500 ms).
    const text = await until(
      () => {
        const r = runCli(lineageArgs, {}, cwd);
        return r.code === 0 && r.stdout.includes('retrain-bot') ? r.stdout : undefined;
      },
      15_000,
      'retrain-bot in the lineage of customers.email',
    );
    const lines = text.split('\n');
    expect(lines[0]).toBe('column postgres.public.customers.email in every namespace');
    const at = lines.indexOf('read by:');
    expect(at).toBeGreaterThan(0);
    expect(cells(lines[at + 1]!)).toEqual(['SUBJECT', 'KIND', 'JOB', 'RUN', 'HOW', 'MASKED', 'COUNT', 'FIRST SEEN', 'LAST SEEN']);
    const row = cells(lines[at + 2]!);
    expect(row.slice(0, 7)).toEqual(['retrain-bot', 'agent', 'retrain-churn', '42', 'DIRECT IDENTITY', 'yes', '1']);
    expect(row.slice(7).map((t) => Number.isNaN(Date.parse(t)))).toEqual([false, false]);
    expect(lines[at + 3]).toBe('');
    expect(text).toContain('\nflowed into: none\n');
    expect(text).toContain('\ncame from: none\n');

    const json = runCli([...lineageArgs, '--json'], {}, cwd);
    expect(json.stderr).toBe('');
    expect(json.code).toBe(0);
    const report = JSON.parse(json.stdout) as { column: unknown; reads: unknown[]; flowedInto: unknown[]; cameFrom: unknown[] };
    expect(report.column).toEqual({ name: 'postgres.public.customers', field: 'email' });
    expect(report.reads).toEqual([
      {
        subject: 'retrain-bot',
        kind: 'agent',
        job: 'retrain-churn',
        runId: expect.stringMatching(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/),
        runKey: '42',
        type: 'DIRECT',
        subtype: 'IDENTITY',
        masked: true,
        count: 1,
        firstSeen: row[7],
        lastSeen: row[8],
      },
    ]);
    expect(report.flowedInto).toEqual([]);
    expect(report.cameFrom).toEqual([]);
  });

  it("the OTLP receiver got the statement span under the caller's span, linked to its session", async () => {
    const span = await receiver.waitForSpan((s) => s.traceId === DEMO_TRACE && s.kind === 3, 10_000, 'the statement span in the demo trace');
    expect(span.parentSpanId).toBe(DEMO_CALLER_SPAN);
    expect(span.resource['service.name']).toBe('sluice');
    expect(span.attributes).toMatchObject({
      'db.system.name': 'postgresql',
      'db.operation.name': 'SELECT',
      'enduser.id': 'retrain-bot',
      'sluice.target': 'demo',
      'sluice.decision': 'allow',
      'sluice.rule': 'pipelines-read-write',
      'sluice.job': 'retrain-churn',
      'sluice.run': '42',
      'sluice.masked_columns': 1,
      'db.response.returned_rows': 3,
    });
    expect(String(span.attributes['db.query.text'])).not.toContain(DEMO_TRACE);
    const session = await receiver.waitForSpan(
      (s) => s.name === 'SESSION demo' && s.attributes['sluice.session.id'] === span.attributes['sluice.session.id'],
      10_000,
      'the session span of the psql connection',
    );
    expect(session.kind).toBe(2);
    expect(session.traceId).not.toBe(DEMO_TRACE);
    expect(span.links).toEqual([{ traceId: session.traceId, spanId: session.spanId, attributes: {} }]);
  });

  it('the OpenLineage file has a START for job retrain-churn whose result marks customers.email as masked', async () => {
    const validator = createOpenLineageValidator();
    const start = await until(
      () => readEvents(openLineageFile).find((e) => e.eventType === 'START' && e.job.name === 'retrain-churn'),
      15_000,
      `a START event for retrain-churn in ${openLineageFile}`,
    );
    for (const event of readEvents(openLineageFile)) expect(validator.validate(event)).toEqual([]);
    expect(start.job.namespace).toBe('sluice');
    expect(start.run.facets?.['sluice_identity']).toMatchObject({
      subject: 'retrain-bot',
      kind: 'agent',
      runKey: '42',
      target: 'demo',
      traceparent: `00-${DEMO_TRACE}-${DEMO_CALLER_SPAN}-01`,
    });
    expect(start.outputs).toHaveLength(1);
    const lineage = start.outputs![0]!.facets?.['columnLineage'] as ColumnLineage;
    expect(lineage.fields['email']?.inputFields).toEqual([
      {
        namespace: expect.stringMatching(/^postgres:\/\/127\.0\.0\.1:\d+$/),
        name: 'postgres.public.customers',
        field: 'email',
        transformations: [{ type: 'DIRECT', subtype: 'IDENTITY', masking: true }],
      },
    ]);
    expect(lineage.fields['amount_cents']?.inputFields.map((f) => [f.name, f.field, f.transformations])).toEqual([
      ['postgres.public.orders', 'amount_cents', [{ type: 'DIRECT', subtype: 'IDENTITY', masking: false }]],
    ]);
  });

  it('stops on SIGTERM with exit 0, ending the run with a COMPLETE (or FAIL) event that validates', async () => {
    const start = readEvents(openLineageFile).find((e) => e.eventType === 'START' && e.job.name === 'retrain-churn')!;
    expect(await demo.stop('SIGTERM')).toBe(0);
    expect(demo.output()).toContain('\nStopping...\n');
    const events = readEvents(openLineageFile);
    const validator = createOpenLineageValidator();
    for (const event of events) expect(validator.validate(event)).toEqual([]);
    const ends = events.filter((e) => e.run.runId === start.run.runId && (e.eventType === 'COMPLETE' || e.eventType === 'FAIL'));
    expect(ends).toHaveLength(1);
    expect(ends[0]!.job).toMatchObject({ namespace: 'sluice', name: 'retrain-churn' });
    // The lineage store was closed cleanly: the command still answers from it.
    const after = runCli([...lineageArgs, '--json'], {}, cwd);
    expect(after.code).toBe(0);
    expect((JSON.parse(after.stdout) as { reads: { subject: string; masked: boolean }[] }).reads).toMatchObject([{ subject: 'retrain-bot', masked: true }]);
  });
});
