/**
 * A throwaway PostgreSQL server for tests: initdb into a temporary directory, listen on
 * 127.0.0.1 at a free port and on a Unix socket inside that directory, stop and delete
 * everything on `stop()`.
 *
 * Needs the PostgreSQL server binaries (initdb, pg_ctl, postgres) and psql. They are looked
 * up in $SLUICE_PG_BINDIR, then `pg_config --bindir`, then /usr/lib/postgresql/<version>/bin
 * (newest first), /usr/local/pgsql/bin and the PATH. PostgreSQL refuses to run as root: under
 * root the server runs as the OS user `postgres` (via runuser, or su when runuser is missing),
 * and the directory is handed to that user.
 */
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { appendFile, chmod, chown, copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export type TempPostgresAuth = 'trust' | 'md5' | 'scram-sha-256';

export interface TempPostgresUser {
  readonly name: string;
  readonly password: string;
  /**
   * How the password is stored. Default: md5 when the server's `auth` is md5, otherwise
   * scram-sha-256. With `auth: 'md5'` both kinds can log in (PostgreSQL runs SCRAM for users
   * stored as SCRAM); with `auth: 'scram-sha-256'` md5-stored users cannot.
   */
  readonly encryption?: 'md5' | 'scram-sha-256';
}

export interface TempPostgresOptions {
  /** pg_hba method for TCP connections from 127.0.0.1. Default 'trust'. */
  readonly auth?: TempPostgresAuth;
  /** Enables SSL with these files (copied into the data directory). */
  readonly ssl?: { readonly certFile: string; readonly keyFile: string };
  /** Login roles to create. */
  readonly users?: readonly TempPostgresUser[];
  /** Extra postgresql.conf lines. */
  readonly config?: readonly string[];
}

export interface TempPostgres {
  readonly host: '127.0.0.1';
  readonly port: number;
  /** The bootstrap superuser; it can log in over TCP with {@link superuserPassword}. */
  readonly superuser: 'postgres';
  readonly superuserPassword: string;
  readonly dataDir: string;
  /** Directory of the Unix socket (`.s.PGSQL.<port>`); local connections are trusted. */
  readonly socketDir: string;
  /** PostgreSQL server major version, e.g. 15. */
  readonly version: number;
  /**
   * A `postgresql://` URL for a TCP connection. Defaults: the superuser, the password of
   * that user (superuser or one of `users`), database `postgres`.
   */
  url(user?: string, password?: string, database?: string): string;
  /** Runs SQL as the superuser through psql over the Unix socket; returns psql's output. */
  psql(sql: string, database?: string): Promise<string>;
  /**
   * Restarts the server on the same port and data (`pg_ctl restart -m <mode>`): `fast` ends
   * sessions cleanly, `immediate` kills them as a crash would (recovery runs at start). Resolves
   * once the server accepts connections again.
   */
  restart(mode?: 'fast' | 'immediate'): Promise<void>;
  /** Stops the server (fast shutdown) and keeps its data and port, for {@link resume}. */
  pause(): Promise<void>;
  /** Starts a paused server again on the same port and data; resolves once it accepts connections. */
  resume(): Promise<void>;
  /** Stops the server (immediate shutdown) and removes the directory. Safe to call twice. */
  stop(): Promise<void>;
}

interface Binaries {
  readonly bindir: string;
  readonly initdb: string;
  readonly pgCtl: string;
  readonly psql: string;
}

interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a program; resolves with its exit code and output (never rejects on a non-zero exit). */
function run(file: string, args: readonly string[], input?: string, env?: NodeJS.ProcessEnv): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'], env: env ?? process.env });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(input ?? '');
  });
}

function tryExec(file: string, args: readonly string[]): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile(file, args, (err, stdout) => resolve(err ? undefined : stdout.trim()));
  });
}

function hasServerBinaries(dir: string): boolean {
  return ['initdb', 'pg_ctl', 'postgres'].every((b) => existsSync(join(dir, b)));
}

async function findBinaries(): Promise<Binaries> {
  const candidates: string[] = [];
  const fromEnv = process.env['SLUICE_PG_BINDIR'];
  if (fromEnv) candidates.push(fromEnv);
  const fromPgConfig = await tryExec('pg_config', ['--bindir']);
  if (fromPgConfig) candidates.push(fromPgConfig);
  try {
    const versions = readdirSync('/usr/lib/postgresql')
      .filter((v) => /^\d+$/.test(v))
      .sort((a, b) => Number(b) - Number(a));
    for (const v of versions) candidates.push(`/usr/lib/postgresql/${v}/bin`);
  } catch {
    // not a Debian-style layout
  }
  candidates.push('/usr/local/pgsql/bin');
  for (const p of (process.env['PATH'] ?? '').split(':')) if (p) candidates.push(p);

  const bindir = candidates.find(hasServerBinaries);
  if (bindir === undefined) {
    throw new Error(
      'PostgreSQL server binaries not found: need initdb, pg_ctl and postgres in one directory ' +
        `(looked in ${[...new Set(candidates)].join(', ')}). Install the PostgreSQL server ` +
        'package or set SLUICE_PG_BINDIR.',
    );
  }
  let psql = join(bindir, 'psql');
  if (!existsSync(psql)) {
    const onPath = (process.env['PATH'] ?? '').split(':').map((p) => join(p, 'psql')).find((p) => existsSync(p));
    if (onPath === undefined) throw new Error(`psql not found (looked in ${bindir} and the PATH)`);
    psql = onPath;
  }
  return { bindir, initdb: join(bindir, 'initdb'), pgCtl: join(bindir, 'pg_ctl'), psql };
}

interface ServerUser {
  readonly uid: number;
  readonly gid: number;
  /** Wraps a command so it runs as the server's OS user. */
  readonly wrap: (file: string, args: readonly string[]) => [string, string[]];
}

function shellQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

async function serverUser(): Promise<ServerUser | undefined> {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return undefined;
  const uid = await tryExec('id', ['-u', 'postgres']);
  const gid = await tryExec('id', ['-g', 'postgres']);
  if (uid === undefined || gid === undefined) {
    throw new Error('running as root, but there is no OS user "postgres" to run the PostgreSQL server as');
  }
  const runuser = ['/usr/sbin/runuser', '/sbin/runuser', '/usr/bin/runuser'].find((p) => existsSync(p));
  if (runuser !== undefined) {
    return { uid: Number(uid), gid: Number(gid), wrap: (file, args) => [runuser, ['-u', 'postgres', '--', file, ...args]] };
  }
  const su = ['/usr/bin/su', '/bin/su'].find((p) => existsSync(p));
  if (su === undefined) throw new Error('running as root, but neither runuser nor su is available to switch to "postgres"');
  return {
    uid: Number(uid),
    gid: Number(gid),
    wrap: (file, args) => [su, ['postgres', '-s', '/bin/sh', '-c', [file, ...args].map(shellQuote).join(' ')]],
  };
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

function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

function quoteLiteral(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}

/** Servers still running, stopped synchronously if the process exits without stop(). */
const live = new Map<string, { dataDir: string; dir: string }>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const { dataDir, dir } of live.values()) {
      try {
        const pid = readPostmasterPid(dataDir);
        if (pid !== undefined) process.kill(pid, 'SIGQUIT');
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

/** The postmaster pid from postmaster.pid (read synchronously, for the exit hook). */
function readPostmasterPid(dataDir: string): number | undefined {
  try {
    const pid = Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

async function logTail(path: string): Promise<string> {
  try {
    const text = await readFile(path, 'utf8');
    return text.split('\n').slice(-20).join('\n');
  } catch {
    return '(no server log)';
  }
}

export async function startTempPostgres(options: TempPostgresOptions = {}): Promise<TempPostgres> {
  const auth = options.auth ?? 'trust';
  const bins = await findBinaries();
  const osUser = await serverUser();
  const as = (file: string, args: readonly string[]): [string, string[]] =>
    osUser ? osUser.wrap(file, args) : [file, [...args]];

  const versionText = (await tryExec(join(bins.bindir, 'postgres'), ['--version'])) ?? '';
  const version = Number(/(\d+)(?:\.\d+)?/.exec(versionText)?.[1] ?? 0);

  const dir = await mkdtemp(join(tmpdir(), 'sluice-pg-'));
  const dataDir = join(dir, 'data');
  const logFile = join(dir, 'postgres.log');
  const superuserPassword = randomBytes(12).toString('hex');
  let started = false;

  const cleanup = async (): Promise<void> => {
    if (started) {
      const [file, args] = as(bins.pgCtl, ['-D', dataDir, '-m', 'immediate', '-w', '-t', '30', 'stop']);
      const result = await run(file, args);
      if (result.code !== 0) {
        const pid = readPostmasterPid(dataDir);
        if (pid !== undefined) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // already gone
          }
        }
      }
      started = false;
    }
    live.delete(dir);
    await rm(dir, { recursive: true, force: true });
  };

  try {
    const pwFile = join(dir, 'superuser.pw');
    await writeFile(pwFile, superuserPassword + '\n', { mode: 0o600 });
    if (osUser) {
      await chown(dir, osUser.uid, osUser.gid);
      await chown(pwFile, osUser.uid, osUser.gid);
    }

    {
      const [file, args] = as(bins.initdb, [
        '-D', dataDir,
        '-U', 'postgres',
        '--pwfile', pwFile,
        '--auth-local', 'trust',
        '--auth-host', auth,
        '-E', 'UTF8',
        '--locale', 'C',
        '--no-sync',
      ]);
      const result = await run(file, args);
      if (result.code !== 0) throw new Error(`initdb failed (exit ${result.code}): ${result.stderr || result.stdout}`);
    }
    await rm(pwFile, { force: true });

    const conf: string[] = [
      '',
      "listen_addresses = '127.0.0.1'",
      `unix_socket_directories = ${quoteLiteral(dir)}`,
      `password_encryption = ${auth === 'md5' ? 'md5' : "'scram-sha-256'"}`,
      'fsync = off',
      'synchronous_commit = off',
      'full_page_writes = off',
      'max_connections = 50',
      'shared_buffers = 32MB',
      "log_min_messages = 'warning'",
    ];
    if (options.ssl) {
      const cert = join(dataDir, 'server.crt');
      const key = join(dataDir, 'server.key');
      await copyFile(options.ssl.certFile, cert);
      await copyFile(options.ssl.keyFile, key);
      await chmod(key, 0o600);
      if (osUser) {
        await chown(cert, osUser.uid, osUser.gid);
        await chown(key, osUser.uid, osUser.gid);
      }
      conf.push('ssl = on', "ssl_cert_file = 'server.crt'", "ssl_key_file = 'server.key'");
    }
    conf.push(...(options.config ?? []));
    await appendFile(join(dataDir, 'postgresql.conf'), conf.join('\n') + '\n');
    await writeFile(
      join(dataDir, 'pg_hba.conf'),
      ['local all all trust', `host all all 127.0.0.1/32 ${auth}`, ''].join('\n'),
    );

    // Another process can take the port between probing and binding: retry with a new one.
    let port = 0;
    for (let attempt = 1; ; attempt++) {
      port = await freePort();
      const [file, args] = as(bins.pgCtl, ['-D', dataDir, '-l', logFile, '-w', '-t', '60', '-o', `-p ${port}`, 'start']);
      if (osUser && attempt === 1) {
        await writeFile(logFile, '');
        await chown(logFile, osUser.uid, osUser.gid);
      }
      const result = await run(file, args);
      if (result.code === 0) {
        started = true;
        break;
      }
      const tail = await logTail(logFile);
      if (attempt >= 3 || !/could not bind|already in use/i.test(tail)) {
        throw new Error(`PostgreSQL did not start (pg_ctl exit ${result.code}): ${result.stderr}\n${tail}`);
      }
    }
    live.set(dir, { dataDir, dir });
    installExitHook();

    const psql = async (sql: string, database = 'postgres'): Promise<string> => {
      const result = await run(
        bins.psql,
        ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-h', dir, '-p', String(port), '-U', 'postgres', '-d', database, '-f', '-'],
        sql,
        { ...process.env, PGPASSWORD: undefined, PGSSLMODE: 'disable' },
      );
      if (result.code !== 0) throw new Error(`psql failed (exit ${result.code}): ${result.stderr}`);
      return result.stdout;
    };

    const users = options.users ?? [];
    if (users.length > 0) {
      const defaultEncryption = auth === 'md5' ? 'md5' : 'scram-sha-256';
      const sql = users
        .map((u) =>
          [
            `SET password_encryption = ${quoteLiteral(u.encryption ?? defaultEncryption)};`,
            `CREATE ROLE ${quoteIdent(u.name)} LOGIN PASSWORD ${quoteLiteral(u.password)};`,
          ].join('\n'),
        )
        .join('\n');
      await psql(`SET standard_conforming_strings = on;\n${sql}\n`);
    }

    /** Runs pg_ctl on this server's data (waiting up to 60 s); fails with its log's tail. */
    const pgCtl = async (what: string, args: readonly string[]): Promise<void> => {
      const [file, fullArgs] = as(bins.pgCtl, ['-D', dataDir, '-w', '-t', '60', ...args]);
      const result = await run(file, fullArgs);
      if (result.code !== 0) throw new Error(`PostgreSQL did not ${what} (pg_ctl exit ${result.code}): ${result.stderr}\n${await logTail(logFile)}`);
    };

    const passwords = new Map<string, string>([['postgres', superuserPassword]]);
    for (const u of users) passwords.set(u.name, u.password);

    return {
      host: '127.0.0.1',
      port,
      superuser: 'postgres',
      superuserPassword,
      dataDir,
      socketDir: dir,
      version,
      url(user = 'postgres', password?: string, database = 'postgres'): string {
        const pw = password ?? passwords.get(user);
        const credentials = encodeURIComponent(user) + (pw !== undefined ? ':' + encodeURIComponent(pw) : '');
        return `postgresql://${credentials}@127.0.0.1:${port}/${encodeURIComponent(database)}`;
      },
      psql,
      restart: (mode: 'fast' | 'immediate' = 'fast') => pgCtl('restart', ['-l', logFile, '-m', mode, '-o', `-p ${port}`, 'restart']),
      pause: () => pgCtl('stop', ['-m', 'fast', 'stop']),
      resume: () => pgCtl('start again', ['-l', logFile, '-o', `-p ${port}`, 'start']),
      stop: cleanup,
    };
  } catch (err) {
    await cleanup().catch(() => undefined);
    throw err;
  }
}
