/**
 * A throwaway MariaDB server for tests: mariadb-install-db into a temporary directory, listen
 * on 127.0.0.1 at a free port and on a Unix socket inside that directory, stop and delete
 * everything on `stop()`.
 *
 * Needs the MariaDB server binaries (mariadb-install-db, mariadbd) and the mariadb (or mysql)
 * command-line client. They are looked up in $SLUICE_MARIADB_BINDIR, then /usr/sbin, /usr/bin,
 * /usr/local/sbin, /usr/local/bin, /usr/local/mysql/bin and the PATH. No option file is read
 * (`--no-defaults`), so the machine's /etc/mysql configuration does not leak in.
 *
 * mariadbd refuses to run as root unless told to: under root it is started with `--user=root`
 * (the files stay owned by root, inside a directory only this process created); otherwise it
 * runs as the current user.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { chmod, copyFile, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export type TempMariaDbAuthPlugin = 'mysql_native_password' | 'ed25519';

export interface TempMariaDbUser {
  readonly name: string;
  readonly password: string;
  /** How the user authenticates. Default mysql_native_password. ed25519 loads auth_ed25519. */
  readonly plugin?: TempMariaDbAuthPlugin;
}

export interface TempMariaDbOptions {
  /** Enables TLS with these PEM files (copied into the server's directory). */
  readonly ssl?: { readonly certFile: string; readonly keyFile: string; readonly caFile?: string };
  /**
   * Accounts to create, for any host (`'name'@'%'`), with all privileges on the database
   * `test`.
   */
  readonly users?: readonly TempMariaDbUser[];
  /** `require_secure_transport=ON`: TCP connections without TLS are refused (the socket is not). */
  readonly requireSecureTransport?: boolean;
  /** Extra mariadbd options, e.g. `--plugin-load-add=auth_pam_v1`. */
  readonly serverArgs?: readonly string[];
  /** Limit on initialisation and start-up, each. Default 60 s. */
  readonly startTimeoutMs?: number;
}

export interface TempMariaDb {
  readonly host: '127.0.0.1';
  readonly port: number;
  /** `root` may log in over TCP (from any address) with this password; over the socket without one. */
  readonly rootPassword: string;
  /** The temporary directory (data directory, socket, pid file). */
  readonly dir: string;
  readonly socketPath: string;
  /** The server's version string, e.g. `10.11.6-MariaDB-0+deb12u1`. */
  readonly version: string;
  /**
   * A `mysql://` URL for a TCP connection. Defaults: root, the password of that user (root or
   * one of `users`), database `test`.
   */
  url(user?: string, password?: string, database?: string): string;
  /**
   * Runs SQL as root through the command-line client over the Unix socket; returns its output
   * (tab-separated rows, no column names). Rejects when the client fails.
   */
  query(sql: string, database?: string): Promise<string>;
  /** What the server wrote to its error log (stderr) since it (last) started. */
  serverLog(): string;
  /**
   * Stops the server (SIGTERM, as a service stop does; SIGKILL with `kill`, as a crash) and
   * starts it again on the same port and data. Resolves once it is ready for connections.
   */
  restart(options?: { readonly kill?: boolean }): Promise<void>;
  /** Stops the server and removes the directory. Safe to call twice. */
  stop(): Promise<void>;
}

interface Binaries {
  readonly installDb: string;
  readonly mariadbd: string;
  readonly client: string;
}

interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a program; resolves with its exit code and output (never rejects on a non-zero exit). */
function run(file: string, args: readonly string[], input?: string): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.on('error', () => undefined);
    child.stdin.end(input ?? '');
  });
}

function searchDirs(): string[] {
  const dirs: string[] = [];
  const fromEnv = process.env['SLUICE_MARIADB_BINDIR'];
  if (fromEnv) dirs.push(fromEnv);
  dirs.push('/usr/sbin', '/usr/bin', '/usr/local/sbin', '/usr/local/bin', '/usr/local/mysql/bin', '/usr/local/mysql/scripts');
  for (const p of (process.env['PATH'] ?? '').split(':')) if (p) dirs.push(p);
  return [...new Set(dirs)];
}

function findBinaries(): Binaries {
  const dirs = searchDirs();
  const find = (names: readonly string[]): string | undefined => {
    for (const dir of dirs) for (const name of names) if (existsSync(join(dir, name))) return join(dir, name);
    return undefined;
  };
  const mariadbd = find(['mariadbd', 'mysqld']);
  const installDb = find(['mariadb-install-db', 'mysql_install_db']);
  const client = find(['mariadb', 'mysql']);
  const missing = [
    ...(mariadbd ? [] : ['mariadbd']),
    ...(installDb ? [] : ['mariadb-install-db']),
    ...(client ? [] : ['the mariadb client']),
  ];
  if (missing.length > 0 || !mariadbd || !installDb || !client) {
    throw new Error(
      `MariaDB binaries not found: ${missing.join(', ')} (looked in ${dirs.join(', ')}). ` +
        'Install the MariaDB server and client packages or set SLUICE_MARIADB_BINDIR.',
    );
  }
  return { mariadbd, installDb, client };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('could not find a free port'))));
    });
  });
}

/** A MariaDB string literal (the default SQL mode: backslash escapes are on). */
function quoteLiteral(value: string): string {
  return `'${value.replaceAll('\\', '\\\\').replaceAll("'", "''")}'`;
}

/** Servers still running, killed synchronously if the process exits without stop(). */
const live = new Map<string, { child: ChildProcess; dir: string }>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const { child, dir } of live.values()) {
      try {
        child.kill('SIGKILL');
      } catch {
        // already gone
      }
      try {
        rmSync(dir, { recursive: true, force: true });
      } catch {
        // best effort
      }
    }
  });
}

function tail(text: string, lines = 25): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

/** Options that keep the server small and quick to start; given to mariadb-install-db too. */
const SMALL = [
  '--innodb-buffer-pool-size=16M',
  '--innodb-log-file-size=8M',
  '--innodb-log-buffer-size=2M',
  '--innodb-flush-log-at-trx-commit=0',
  '--innodb-doublewrite=0',
  '--key-buffer-size=1M',
  '--aria-pagecache-buffer-size=1M',
  '--performance-schema=OFF',
  '--max-connections=100',
] as const;

/** Unix socket paths are limited to 108 bytes (sun_path) on Linux. */
const MAX_SOCKET_PATH = 107;

/** How much of the server's log is kept. */
const MAX_LOG = 1 << 20;

interface Started {
  readonly child: ChildProcess;
  readonly exited: Promise<void>;
}

/**
 * Starts mariadbd and resolves once it says it is ready for connections; rejects with the log
 * when it exits first or does not get ready in time. The server's output is appended to `log`.
 */
function startServer(file: string, args: readonly string[], log: { value: string }, timeoutMs: number): Promise<Started> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    let settled = false;
    const settle = (err?: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err) reject(err);
      else resolve({ child, exited });
    };
    const onOutput = (d: string): void => {
      log.value = (log.value + d).slice(-MAX_LOG);
      if (!settled && /ready for connections/.test(log.value)) settle();
    };
    child.stdout.setEncoding('utf8').on('data', onOutput);
    child.stderr.setEncoding('utf8').on('data', onOutput);
    child.once('error', (err) => settle(new Error(`cannot run ${file}: ${err.message}`)));
    child.once('exit', (code, signal) =>
      settle(new Error(`mariadbd exited during start-up (${signal ?? `exit ${code}`}):\n${tail(log.value)}`)),
    );
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      settle(new Error(`mariadbd did not get ready within ${timeoutMs} ms:\n${tail(log.value)}`));
    }, timeoutMs);
  });
}

export async function startTempMariaDb(options: TempMariaDbOptions = {}): Promise<TempMariaDb> {
  const bins = findBinaries();
  const timeoutMs = options.startTimeoutMs ?? 60_000;
  const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const userArgs = asRoot ? ['--user=root'] : [];

  const dir = await mkdtemp(join(tmpdir(), 'sluice-mariadb-'));
  const dataDir = join(dir, 'data');
  const socketPath = join(dir, 'mariadbd.sock');
  const rootPassword = randomBytes(12).toString('hex');
  const log = { value: '' };
  let server: Started | undefined;

  const cleanup = async (): Promise<void> => {
    const s = server;
    server = undefined;
    if (s && s.child.exitCode === null && s.child.signalCode === null) {
      s.child.kill('SIGTERM');
      const killer = setTimeout(() => s.child.kill('SIGKILL'), 10_000);
      await s.exited;
      clearTimeout(killer);
    }
    live.delete(dir);
    await rm(dir, { recursive: true, force: true });
  };

  try {
    if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH) {
      throw new Error(`the temporary directory's path is too long for a Unix socket (${socketPath}); set TMPDIR to a shorter directory`);
    }
    {
      const result = await run(bins.installDb, [
        '--no-defaults',
        `--datadir=${dataDir}`,
        // The bootstrap server's temporary tables go here, not to a /tmp shared with other servers.
        `--tmpdir=${dir}`,
        '--auth-root-authentication-method=normal',
        '--skip-test-db',
        '--skip-name-resolve',
        ...userArgs,
        ...SMALL,
      ]);
      if (result.code !== 0) {
        throw new Error(`mariadb-install-db failed (exit ${result.code}):\n${tail(result.stderr || result.stdout)}`);
      }
    }

    const args: string[] = [
      '--no-defaults',
      ...userArgs,
      `--datadir=${dataDir}`,
      `--socket=${socketPath}`,
      `--pid-file=${join(dir, 'mariadbd.pid')}`,
      `--tmpdir=${dir}`,
      '--bind-address=127.0.0.1',
      '--skip-name-resolve',
      '--character-set-server=utf8mb4',
      '--collation-server=utf8mb4_general_ci',
      ...SMALL,
    ];
    if (options.ssl) {
      const cert = join(dir, 'server-cert.pem');
      const key = join(dir, 'server-key.pem');
      await copyFile(options.ssl.certFile, cert);
      await copyFile(options.ssl.keyFile, key);
      await chmod(key, 0o600);
      args.push(`--ssl-cert=${cert}`, `--ssl-key=${key}`);
      if (options.ssl.caFile) {
        const ca = join(dir, 'ca.pem');
        await copyFile(options.ssl.caFile, ca);
        args.push(`--ssl-ca=${ca}`);
      }
    }
    if (options.requireSecureTransport) args.push('--require-secure-transport=ON');
    const users = options.users ?? [];
    if (users.some((u) => u.plugin === 'ed25519')) args.push('--plugin-load-add=auth_ed25519');
    args.push(...(options.serverArgs ?? []));

    // Another process can take the port between probing and binding: retry with a new one.
    let port = 0;
    for (let attempt = 1; ; attempt++) {
      port = await freePort();
      log.value = '';
      try {
        server = await startServer(bins.mariadbd, [...args, `--port=${port}`], log, timeoutMs);
        break;
      } catch (err) {
        if (attempt >= 3 || !/Address already in use|Bind on TCP\/IP port/i.test(log.value)) throw err;
      }
    }
    live.set(dir, { child: server.child, dir });
    installExitHook();

    const query = async (sql: string, database?: string): Promise<string> => {
      const result = await run(
        bins.client,
        ['--no-defaults', `--socket=${socketPath}`, '--user=root', '--batch', '--skip-column-names', ...(database ? [database] : [])],
        sql,
      );
      if (result.code !== 0) throw new Error(`mariadb client failed (exit ${result.code}): ${result.stderr.trim()}`);
      return result.stdout;
    };

    // root keeps its password-less account on the socket; over TCP it needs rootPassword.
    const setup: string[] = [
      "DELETE FROM mysql.global_priv WHERE User = '' OR (User = 'root' AND Host <> 'localhost');",
      "DELETE FROM mysql.proxies_priv WHERE Host <> 'localhost';",
      'FLUSH PRIVILEGES;',
      `CREATE USER 'root'@'%' IDENTIFIED BY ${quoteLiteral(rootPassword)};`,
      "GRANT ALL PRIVILEGES ON *.* TO 'root'@'%' WITH GRANT OPTION;",
      'CREATE DATABASE IF NOT EXISTS test;',
    ];
    for (const u of users) {
      const account = `${quoteLiteral(u.name)}@'%'`;
      setup.push(
        `CREATE USER ${account} IDENTIFIED VIA ${u.plugin ?? 'mysql_native_password'} USING PASSWORD(${quoteLiteral(u.password)});`,
        `GRANT ALL PRIVILEGES ON test.* TO ${account};`,
      );
    }
    await query(setup.join('\n'));
    const version = (await query('SELECT VERSION();')).trim();

    const passwords = new Map<string, string>([['root', rootPassword]]);
    for (const u of users) passwords.set(u.name, u.password);

    return {
      host: '127.0.0.1',
      port,
      rootPassword,
      dir,
      socketPath,
      version,
      url(user = 'root', password?: string, database = 'test'): string {
        const pw = password ?? passwords.get(user);
        const credentials = encodeURIComponent(user) + (pw !== undefined && pw !== '' ? ':' + encodeURIComponent(pw) : '');
        return `mysql://${credentials}@127.0.0.1:${port}/${encodeURIComponent(database)}`;
      },
      query,
      serverLog(): string {
        return log.value;
      },
      async restart(restartOptions: { readonly kill?: boolean } = {}): Promise<void> {
        const s = server;
        if (s === undefined) throw new Error('the temporary MariaDB server was stopped for good; it cannot be restarted');
        if (s.child.exitCode === null && s.child.signalCode === null) {
          s.child.kill(restartOptions.kill ? 'SIGKILL' : 'SIGTERM');
          const killer = setTimeout(() => s.child.kill('SIGKILL'), 30_000);
          await s.exited;
          clearTimeout(killer);
        }
        log.value = '';
        server = await startServer(bins.mariadbd, [...args, `--port=${port}`], log, timeoutMs);
        live.set(dir, { child: server.child, dir });
      },
      stop: cleanup,
    };
  } catch (err) {
    await cleanup().catch(() => undefined);
    throw err;
  }
}
