#!/usr/bin/env node
// `pnpm sluice <args>` and `pnpm start`: build what changed (quietly; the output is shown only
// if the build fails), then run the sluice CLI with the arguments as given.
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const build = spawnSync('pnpm', ['exec', 'turbo', 'run', 'build', '--output-logs=errors-only'], { cwd: root, encoding: 'utf8' });
if (build.status !== 0) {
  process.stderr.write(`${build.stdout ?? ''}${build.stderr ?? ''}\nsluice: the build failed (see above)\n`);
  process.exit(build.status ?? 1);
}
const child = spawn(process.execPath, [fileURLToPath(new URL('../apps/gateway/dist/cli.js', import.meta.url)), ...process.argv.slice(2)], {
  stdio: 'inherit',
});
// Ctrl-C reaches the CLI through the terminal's process group: wait for it to stop cleanly.
process.on('SIGINT', () => {});
// Signals sent to this process alone are passed on.
for (const sig of ['SIGTERM', 'SIGHUP']) process.on(sig, () => child.kill(sig));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 128 : 1)));
