import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { ConfigError, loadConfig, type LoadedConfig, type LoadOptions } from '../config/load.js';
import { dialects } from '../dialects.js';
import { startGateway, StartupError } from '../gateway.js';
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
  process.stdout.write(`${loaded.file}: valid (${loaded.targets.length} target(s))\n`);
  return 0;
}

export async function startCommand(args: string[]): Promise<number | undefined> {
  const { values, positionals } = parseArgs({ args: args, allowPositionals: true, options: { config: { type: 'string', short: 'c' } } });
  noPositionals(positionals);
  const loaded = loadOrReport(requireConfig(values));
  if (!loaded) return 1;
  const logger = pino({ level: loaded.config.log.level, base: { service: 'sluice' } });
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
  await waitForShutdown(async () => {
    logger.info('shutting down');
    await gateway.close();
  });
  return 0;
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
