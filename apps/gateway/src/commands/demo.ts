import { parseArgs } from 'node:util';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { pino } from 'pino';
import { loadConfig } from '../config/load.js';
import { startEmbeddedPostgres } from '../demo/embedded-postgres.js';
import { dialects } from '../dialects.js';
import { startGateway, StartupError } from '../gateway.js';
import { noPositionals, UsageError } from './run.js';
import { serveUntilStopped } from './start.js';

/** Demo identities. Well known on purpose: the demo listens on loopback only. */
export const DEMO_IDENTITIES = [
  { subject: 'alice@example.com', kind: 'human', groups: ['analysts'], token: 'alice-demo-token' },
  { subject: 'retrain-bot', kind: 'agent', groups: ['pipelines'], token: 'bot-demo-token' },
  { subject: 'carol@example.com', kind: 'human', groups: ['compliance', 'approvers'], token: 'carol-demo-token' },
  { subject: 'dave@example.com', kind: 'human', groups: ['dba'], token: 'dave-demo-token' },
] as const;

/** The demo's policy: analysts read, the pipeline writes, DBA schema changes wait for an approver. */
const DEMO_POLICY = `policy:
  default: deny
  rules:
    - name: analysts-read
      identities: { groups: [analysts] }
      operations: [read, copy-out, transaction, session-setting]
      effect: allow
    - name: pipelines-read-write
      identities: { groups: [pipelines] }
      operations: [read, write, copy-out, copy-in, transaction, session-setting]
      effect: allow
    - name: compliance-read
      identities: { groups: [compliance] }
      operations: [read, copy-out, transaction, session-setting]
      effect: allow
    - name: dba-data
      identities: { groups: [dba] }
      operations: [read, write, copy-out, copy-in, transaction, session-setting]
      effect: allow
    - name: dba-schema-changes-need-approval
      identities: { groups: [dba] }
      operations: [ddl, admin, privilege]
      effect: review
  guardrails:
    alter-drop: review
approvals:
  dir: ./approvals
  timeoutSeconds: 300
  approvers: { groups: [approvers] }
masking:
  hashKey: demo-only-masking-key-change-me
  columns:
    - { column: customers.email, strategy: partial }
    - { column: customers.phone, strategy: partial }
    - { column: customers.card_number, strategy: partial }
    - { column: customers.full_name, strategy: hash }
    - { column: api_keys.key, strategy: redact }
  exempt: { groups: [compliance] }
`;

export function demoConfigYaml(options: { port: number; upstreamUrl: string; adminPort: number }): string {
  return `# Written by \`sluice demo\` at every start; edit a copy to experiment.
listen:
  postgres: 127.0.0.1:${options.port}
targets:
  - name: demo
    dialect: postgres
    upstream: ${options.upstreamUrl}
identities:
  tokens:
${DEMO_IDENTITIES.map(
  (i) => `    - subject: ${i.subject}
      kind: ${i.kind}
      groups: [${i.groups.join(', ')}]
      token: ${i.token}`,
).join('\n')}
audit:
  dir: ./audit
lineage:
  store: ./lineage.db
  flushIntervalMs: 500
  openlineage:
    file: ./openlineage.jsonl
${DEMO_POLICY}admin: 127.0.0.1:${options.adminPort}
pidFile: ./sluice.pid
log:
  level: warn
`;
}

export async function demoCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: args, allowPositionals: true, options: {
    dir: { type: 'string', default: '.sluice/demo' },
    port: { type: 'string', default: '6432' },
    'admin-port': { type: 'string', default: '7070' },
  } });
  noPositionals(positionals);
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError('--port must be a port number');
  const adminPort = Number(values['admin-port']);
  if (!Number.isInteger(adminPort) || adminPort < 0 || adminPort > 65535) throw new UsageError('--admin-port must be a port number');
  const dir = resolve(values.dir!);
  mkdirSync(dir, { recursive: true });
  process.stdout.write('Starting the embedded PostgreSQL (PGlite)...\n');
  const pg = await startEmbeddedPostgres({ dataDir: join(dir, 'pgdata') });
  const configFile = join(dir, 'sluice.yaml');
  writeFileSync(configFile, demoConfigYaml({ port, upstreamUrl: pg.url, adminPort }));
  const loaded = loadConfig(configFile, dialects);
  const logger = pino({ level: loaded.config.log.level, base: { service: 'sluice' } });
  let gateway;
  try {
    gateway = await startGateway(loaded, logger);
  } catch (err) {
    await pg.close();
    if (err instanceof StartupError) {
      process.stderr.write(`sluice: ${err.message}\n`);
      if (/EADDRINUSE/.test(err.message)) {
        process.stderr.write(
          /\(admin\)/.test(err.message)
            ? `sluice: port ${adminPort} is taken; try: pnpm start --admin-port 7071\n`
            : `sluice: port ${port} is taken; try: pnpm start --port 6433\n`,
        );
      }
      return 1;
    }
    throw err;
  }
  const address = gateway.addresses[0]!;
  const rel = relative(process.cwd(), dir) || '.';
  const cfg = relative(process.cwd(), configFile);
  const url = (i: (typeof DEMO_IDENTITIES)[number]) =>
    `postgres://${encodeURIComponent(i.subject)}:${i.token}@${address.host}:${address.port}/demo`;
  process.stdout.write(`
Sluice demo is running.
  gateway    ${address.host}:${address.port} (PostgreSQL wire protocol), target "demo"
  upstream   embedded PostgreSQL (PGlite), data in ${rel}/pgdata${pg.seeded ? ' (demo data just created)' : ''}
  config     ${cfg}
  admin API  ${gateway.adminUrl ?? 'off'} (approvals)
  audit      ${rel}/audit

Demo identities: the token is the password; the user name must be the subject.
${DEMO_IDENTITIES.map((i) => `  ${i.subject.padEnd(20)} ${i.kind.padEnd(6)} [${i.groups.join(', ')}]`.padEnd(56) + ` token: ${i.token}`).join('\n')}

Policy: analysts read; the pipeline reads and writes; a DBA's schema change waits for an
approver (group approvers: carol). Guardrails block DROP, TRUNCATE, unbounded DELETE/UPDATE...
Masking: customers' names, emails, phones and cards and the API keys are masked for everyone
but the compliance group (carol), whatever alias, function or view they come through.

Connect with psql as an analyst, or as the DBA:
  psql "${url(DEMO_IDENTITIES[0])}"
  psql "${url(DEMO_IDENTITIES[3])}"

Approve a held statement, in another terminal:
  pnpm sluice approvals list --token carol-demo-token
  pnpm sluice approvals approve <id> --token carol-demo-token

Audit trail:
  pnpm sluice audit tail --config ${cfg}
  pnpm sluice audit verify --config ${cfg}

Lineage: run a query as the pipeline agent, labelled with its job, run and trace, then ask
who read customers.email (OpenLineage events go to ${rel}/openlineage.jsonl):
  psql "${url(DEMO_IDENTITIES[1])}" -c "SELECT c.email, o.amount_cents FROM customers c JOIN orders o ON o.customer_id = c.id LIMIT 3 /* traceparent='00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',job='retrain-churn',run='42' */"
  pnpm sluice lineage column ${pg.database}.public.customers.email --config ${cfg}
Traces: start the demo with OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 (any OTLP/HTTP
collector) to see each session and statement, under the caller's trace when it sent one.

Press Ctrl-C to stop.
`);
  await serveUntilStopped(gateway, loaded, logger, async () => {
    process.stdout.write('\nStopping...\n');
    await gateway.close();
    await pg.close();
  });
  return 0;
}
