#!/usr/bin/env node
// `pnpm sluice <args>` and `pnpm start`: build what changed (quietly; the output is shown only
// if the build fails), then run the sluice CLI with the arguments as given.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
// A build stamp newer than every source file means nothing changed since the last build: skip
// turbo (hashing the workspace costs seconds, on every `pnpm sluice approvals ...`).
const stamp = join(root, 'node_modules', '.cache', 'sluice-build-stamp');
if (!upToDate(stamp)) {
  const build = spawnSync('pnpm', ['exec', 'turbo', 'run', 'build', '--output-logs=errors-only'], { cwd: root, encoding: 'utf8' });
  if (build.status !== 0) {
    process.stderr.write(`${build.stdout ?? ''}${build.stderr ?? ''}\nsluice: the build failed (see above)\n`);
    process.exit(build.status ?? 1);
  }
  try {
    mkdirSync(dirname(stamp), { recursive: true });
    writeFileSync(stamp, new Date().toISOString());
  } catch {
    // Without a stamp the next run builds again; nothing else depends on it.
  }
}

/** True when the stamp is newer than every source, config and lock file of the workspace. */
function upToDate(file) {
  let built;
  try {
    built = statSync(file).mtimeMs;
  } catch {
    return false;
  }
  const newer = (path) => {
    let st;
    try {
      st = statSync(path);
    } catch {
      return false;
    }
    if (!st.isDirectory()) return st.mtimeMs > built;
    for (const name of readdirSync(path)) {
      if (name === 'node_modules' || name === 'dist' || name.startsWith('.')) continue;
      if (newer(join(path, name))) return true;
    }
    return false;
  };
  if (newer(join(root, 'pnpm-lock.yaml'))) return false;
  for (const group of ['packages', 'apps']) {
    let names = [];
    try {
      names = readdirSync(join(root, group));
    } catch {
      continue;
    }
    for (const name of names) {
      const pkg = join(root, group, name);
      for (const part of ['src', 'package.json', 'tsconfig.json', 'tsconfig.build.json']) if (newer(join(pkg, part))) return false;
      if (!existsSync(join(pkg, 'dist'))) return false;
    }
  }
  return true;
}
const child = spawn(process.execPath, [fileURLToPath(new URL('../apps/gateway/dist/cli.js', import.meta.url)), ...process.argv.slice(2)], {
  stdio: 'inherit',
});
// Ctrl-C reaches the CLI through the terminal's process group: wait for it to stop cleanly.
process.on('SIGINT', () => {});
// Signals sent to this process alone are passed on.
for (const sig of ['SIGTERM', 'SIGHUP']) process.on(sig, () => child.kill(sig));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 128 : 1)));
