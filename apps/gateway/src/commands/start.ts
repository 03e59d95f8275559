import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { compileMasking } from '@sluice/core';
import { type Logger, pino } from 'pino';
import { writeReloadStatus } from '../admin/reload-status.js';
import { ConfigError, loadConfig, type LoadedConfig, type LoadOptions } from '../config/load.js';
import { dialects } from '../dialects.js';
import { type RunningGateway, startGateway, StartupError } from '../gateway.js';
import { noPositionals, requireConfig } from './run.js';

/** Loads a config or prints its problems; undefined means the caller should exit 1. */
export function loadOrReport(file: string, options: LoadOptions = {}): LoadedConfig | undefined {
  try {
    return loadConfig(file, dialects, process.env, options);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`sluice: ${err.message}\n`);
      return undefined;
    }
    throw err;
  }
}

export function checkCommand(args: string[]): number {
  const { values, positionals } = parseArgs({ args: args, allowPositionals: true, options: { config: { type: 'string', short: 'c' } } });
  noPositionals(positionals);
  const loaded = loadOrReport(requireConfig(values));
  if (!loaded) return 1;
  const masking = loaded.config.masking;
  if (masking && masking.enabled !== false) {
    // The hash key's environment variable or file is read as `start` would read it.
    try {
      compileMasking(masking, { baseDir: dirname(loaded.file), logger: { warn: () => undefined } });
    } catch (err) {
      process.stderr.write(`sluice: ${(err as Error).message}\n`);
      return 1;
    }
  }
  const maskNote = masking && masking.enabled !== false ? `, ${masking.columns.length} masked column pattern(s)` : '';
  process.stdout.write(`${loaded.file}: valid (${loaded.targets.length} target(s), ${loaded.config.policy.rules.length} policy rule(s)${maskNote})\n`);
  const warning = policyWarning(loaded);
  if (warning) process.stderr.write(`sluice: warning: ${warning}\n`);
  return 0;
}

/** A config whose policy allows nothing denies every statement: worth saying at once. */
export function policyWarning(loaded: LoadedConfig): string | undefined {
  const { policy } = loaded.config;
  if (policy.default === 'review' || policy.rules.some((r) => r.effect === 'allow')) return undefined;
  return 'the policy has no rule that allows anything: every statement will be denied (deny by default); see docs/policy.md';
}

export async function startCommand(args: string[]): Promise<number | undefined> {
  const { values, positionals } = parseArgs({ args: args, allowPositionals: true, options: { config: { type: 'string', short: 'c' } } });
  noPositionals(positionals);
  const loaded = loadOrReport(requireConfig(values));
  if (!loaded) return 1;
  const logger = pino({ level: loaded.config.log.level, base: { service: 'sluice' } });
  const warning = policyWarning(loaded);
  if (warning) process.stderr.write(`sluice: warning: ${warning}\n`);
  let gateway;
  try {
    gateway = await startGateway(loaded, logger);
  } catch (err) {
    if (err instanceof StartupError) {
      process.stderr.write(`sluice: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
  for (const a of gateway.addresses) {
    logger.info({ dialect: a.dialect, host: a.host, port: a.port }, `listening for ${a.dialect} clients on ${a.host}:${a.port}`);
  }
  process.stdout.write(`sluice: listening on ${gateway.addresses.map((a) => `${a.dialect} ${a.host}:${a.port}`).join(', ')}\n`);
  if (gateway.adminUrl) process.stdout.write(`sluice: admin API on ${gateway.adminUrl}\n`);
  await serveUntilStopped(gateway, loaded, logger, async () => {
    logger.info('shutting down');
    await gateway.close();
  });
  return 0;
}

/**
 * Runs a started gateway until SIGINT/SIGTERM: writes the pid file `sluice reload` reads, and
 * reloads the config file on SIGHUP (a config that does not validate is refused and the old
 * one stays; the verdict goes to the log and to the file `sluice reload` waits for). Signals
 * that arrive while a reload waits to start are answered by that reload.
 */
export async function serveUntilStopped(gateway: RunningGateway, loaded: LoadedConfig, logger: Logger, stop: () => Promise<void>): Promise<void> {
  const pidFile = loaded.config.pidFile;
  try {
    mkdirSync(dirname(pidFile), { recursive: true });
    writeFileSync(pidFile, `${process.pid}\n`);
  } catch (err) {
    logger.warn({ err, pidFile }, 'cannot write the pid file; sluice reload will not find this gateway (send SIGHUP instead)');
  }
  let reloading: Promise<void> = Promise.resolve();
  // A reload that has not started yet reads the file as it is then, so it answers every SIGHUP
  // that arrives before it starts: a burst of signals makes one reload, not one each.
  let queued = false;
  const onHangup = (): void => {
    if (queued) return;
    queued = true;
    reloading = reloading.then(async () => {
      queued = false;
      let status: { ok: boolean; message: string };
      try {
        const next = loadConfig(loaded.file, dialects, process.env);
        status = gateway.reload(next);
      } catch (err) {
        status = {
          ok: false,
          message: `the new configuration was refused, the old one stays: ${err instanceof ConfigError ? err.message : (err as Error).message}`,
        };
        gateway.reloadRefused(loaded.file, status.message);
      }
      if (status.ok) logger.warn({ file: loaded.file }, status.message);
      else logger.error({ file: loaded.file }, status.message);
      await writeReloadStatus(pidFile, status).catch((err: unknown) => logger.warn({ err }, 'cannot write the reload status'));
    });
  };
  process.on('SIGHUP', onHangup);
  await waitForShutdown(async () => {
    process.off('SIGHUP', onHangup);
    await reloading;
    await stop();
    try {
      if (readFileSync(pidFile, 'utf8').trim() === String(process.pid)) rmSync(pidFile, { force: true });
    } catch {
      // Already gone.
    }
  });
}

/** Resolves after SIGINT or SIGTERM has run `stop`. A second signal exits at once. */
export function waitForShutdown(stop: () => Promise<void>): Promise<void> {
  return new Promise((resolve) => {
    let stopping = false;
    const onSignal = () => {
      if (stopping) process.exit(130);
      stopping = true;
      stop().then(resolve, (err: unknown) => {
        process.stderr.write(`sluice: error during shutdown: ${(err as Error).message}\n`);
        resolve();
      });
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}
