import { approvalsCommand } from './approvals.js';
import { auditCommand } from './audit.js';
import { checkCommand, startCommand } from './start.js';
import { demoCommand } from './demo.js';
import { LINEAGE_USAGE, LINEAGE_USAGE_NOTE, lineageCommand } from './lineage.js';
import { reloadCommand } from './reload.js';
import { tokenCommand } from './token.js';

export const USAGE = `Usage: sluice <command> [options]

Commands:
  start  --config FILE                 run the gateway
  check  --config FILE                 validate a config file and exit
  reload --config FILE                 validate the config, then have the running gateway load it (SIGHUP)
  demo   [--dir DIR] [--port PORT]     run the gateway in front of an embedded PostgreSQL with demo data
  audit verify --config FILE           check the audit trail's hash chain; names the first bad record
  audit tail   --config FILE [-n N] [--follow]
                                       print the last N audit records (default 20), then follow
  audit export --config FILE [--since T] [--until T] [--format jsonl|csv] [--output FILE]
                                       export records; T is an ISO time or a span back from now (30m, 24h, 7d)
  token new    [--bytes N]             print a new random token and its tokenSha256 for the config
  token hash   TOKEN                   print the tokenSha256 of a token

  approvals list [--all] [--target T]  review requests waiting for a decision (--all: decided ones too)
  approvals show ID                    every detail of a request, with the exact statement
  approvals approve ID [--reason TEXT] [--grant 30m|2h|1d]
                                       release the held statement (--grant: also allow the same for a while)
  approvals reject ID [--reason TEXT]  refuse the held statement
  approvals grant --subject S --operations write,ddl --for 2h [--target T ...]
                  [--objects public.*] [--guardrails alter-drop] [--reason TEXT]
                                       let S run these without review for a while
  approvals grants [--all]             grants in force (--all: ended ones too)
  approvals revoke GRANT_ID            end a grant now

${LINEAGE_USAGE}

Every command that reads state takes the same --config FILE as start. The approvals commands
call the admin API at --admin URL, else at the admin address of --config FILE (or of
.sluice/demo/sluice.yaml), else http://127.0.0.1:7070; they authenticate with --token SECRET
or SLUICE_TOKEN, and print JSON with --json.
${LINEAGE_USAGE_NOTE}`;

export class UsageError extends Error {}

export async function runCli(argv: string[]): Promise<number | undefined> {
  // `pnpm start -- --port 6433` hands the script a literal "--"; no command takes one.
  const [command, ...rest] = argv.filter((a) => a !== '--');
  try {
    switch (command) {
      case 'start':
        return await startCommand(rest);
      case 'check':
        return checkCommand(rest);
      case 'demo':
        return await demoCommand(rest);
      case 'audit':
        return await auditCommand(rest);
      case 'token':
        return tokenCommand(rest);
      case 'approvals':
        return await approvalsCommand(rest);
      case 'reload':
        return await reloadCommand(rest);
      case 'lineage':
        return await lineageCommand(rest);
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        process.stdout.write(`${USAGE}\n`);
        return command === undefined ? 1 : 0;
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (err) {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`sluice: ${(err as Error).message}\n\n${USAGE}\n`);
      return 2;
    }
    throw err;
  }
}

/** Commands without positional arguments refuse stray ones instead of ignoring them. */
export function noPositionals(positionals: readonly string[]): void {
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
}

export function requireConfig(values: { config?: unknown }): string {
  if (typeof values.config !== 'string' || values.config === '') {
    throw new UsageError('--config FILE is required');
  }
  return values.config;
}
