#!/usr/bin/env node
import { runCli } from './commands/run.js';

runCli(process.argv.slice(2)).then(
  (code) => {
    if (code !== undefined) process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`sluice: ${(err as Error)?.message ?? String(err)}\n`);
    process.exitCode = 1;
  },
);
