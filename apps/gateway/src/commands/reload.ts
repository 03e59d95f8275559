import { existsSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { readReloadStatus, reloadStatusFile, writeReloadStatus, type ReloadStatus } from '../admin/reload-status.js';
import { ConfigError, loadConfig, type LoadedConfig } from '../config/load.js';
import { dialects } from '../dialects.js';
import { DEMO_CONFIG } from './approvals.js';
import { noPositionals, UsageError } from './run.js';

export { readReloadStatus, reloadStatusFile, writeReloadStatus, type ReloadStatus };

/** How long `sluice reload` waits for the gateway's verdict. */
export const RELOAD_WAIT_MS = 10_000;
const POLL_MS = 100;

const UNSET_VARIABLE = /the environment variable ([A-Za-z_][A-Za-z0-9_]*) is not set/;

/**
 * `sluice reload [--config FILE]`: validates the config like `start`, then signals the running
 * gateway (SIGHUP, pid from `pidFile`) and prints the outcome it reports.
 */
export async function reloadCommand(args: string[], options: { waitMs?: number } = {}): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { config: { type: 'string', short: 'c' } } });
  noPositionals(positionals);
  let file = values.config;
  if (file === undefined || file === '') {
    if (!existsSync(DEMO_CONFIG)) throw new UsageError('--config FILE is required (the file the gateway was started with)');
    file = DEMO_CONFIG;
  }

  const loaded = validate(file);
  if (!loaded) return 1;
  const pidFile = loaded.config.pidFile;

  const pid = readPid(pidFile);
  if (typeof pid === 'string') {
    process.stderr.write(`sluice: ${pid}: is the gateway running with this config? start writes ${pidFile}\n`);
    return 1;
  }

  const sentAt = Date.now();
  try {
    process.kill(pid, 'SIGHUP');
  } catch (err) {
    process.stderr.write(`sluice: ${signalFailure(err, pid, pidFile)}\n`);
    return 1;
  }

  const statusFile = reloadStatusFile(pidFile);
  const deadline = sentAt + (options.waitMs ?? RELOAD_WAIT_MS);
  for (;;) {
    const status = await readReloadStatus(pidFile);
    if (status !== undefined && Date.parse(status.time) >= sentAt) {
      if (status.ok) {
        process.stdout.write(`${status.message}\n`);
        return 0;
      }
      process.stderr.write(`sluice: ${status.message}\n`);
      return 1;
    }
    if (!alive(pid)) {
      process.stderr.write(`sluice: the gateway (pid ${pid}) exited after the reload signal without reporting an outcome: check its log\n`);
      return 1;
    }
    if (Date.now() >= deadline) {
      process.stderr.write(
        `sluice: the gateway (pid ${pid}) did not report the outcome of the reload within ${Math.round((options.waitMs ?? RELOAD_WAIT_MS) / 1000)} s (nothing new in ${statusFile}): check its log\n`,
      );
      return 1;
    }
    await sleep(POLL_MS);
  }
}

/**
 * Loads the config as `start` does. Variables unset in this shell are not held against it when
 * that is the only problem: the gateway reloads with its own environment. Undefined (after
 * printing the problems) when the config does not validate.
 */
function validate(file: string): LoadedConfig | undefined {
  const refuse = (err: ConfigError) => {
    process.stderr.write(`sluice: ${err.message}\nsluice: nothing was signalled; the running gateway keeps its current configuration\n`);
    return undefined;
  };
  try {
    return loadConfig(file, dialects, process.env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    if (!err.problems.every((p) => UNSET_VARIABLE.test(p))) return refuse(err);
    try {
      return loadConfig(file, dialects, process.env, { allowUnsetEnv: true });
    } catch (lenient) {
      if (lenient instanceof ConfigError) return refuse(err);
      throw lenient;
    }
  }
}

/** The pid in the pid file, or why there is none. */
function readPid(pidFile: string): number | string {
  let text: string;
  try {
    text = readFileSync(pidFile, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? `there is no pid file ${pidFile}` : `cannot read the pid file ${pidFile} (${code ?? (err as Error).message})`;
  }
  const pid = Number(text.trim());
  if (!Number.isSafeInteger(pid) || pid <= 1) return `the pid file ${pidFile} holds no process id`;
  if (!alive(pid)) return `the gateway with pid ${pid} (from ${pidFile}) is not running`;
  return pid;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function signalFailure(err: unknown, pid: number, pidFile: string): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'EPERM') return `not allowed to signal the gateway (pid ${pid}): run sluice reload as the user the gateway runs as`;
  if (code === 'ESRCH') return `the gateway with pid ${pid} (from ${pidFile}) is not running: is the gateway running with this config?`;
  return `cannot signal the gateway (pid ${pid}): ${code ?? (err as Error).message}`;
}
