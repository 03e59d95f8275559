#!/usr/bin/env node
// Re-records the MySQL fuzz corpus: real clients (mysql2, the mysql command-line client and
// mysqladmin) talk to a gateway in front of the real MariaDB through a recording proxy, and what
// each client sent is written to corpus/*.json. Needs the packages built (pnpm build), MariaDB at
// 127.0.0.1:3306 (root, empty password), mysql and mysqladmin on the PATH. Run from the
// repository root:
//   node packages/dialect-mysql/test/fuzz/record.mjs
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeRecording, startRecordingProxy } from '@sluice/testkit/fuzz';
import { startTestGateway } from '@sluice/testkit/harness';
import mysql from 'mysql2/promise';
import { mysqlDialect } from '../../dist/index.js';
import { FUZZ_DATABASE, FUZZ_TABLE, FUZZ_USER, TARGETS, prepareFuzzDatabase } from './fixture.mjs';

const here = dirname(fileURLToPath(import.meta.url));

function run(command, args, input = '') {
  return new Promise((resolve, reject) => {
    const child = spawn(command, ['--no-defaults', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${command} failed (${code}): ${out}`))));
    child.stdin.end(input);
  });
}

await prepareFuzzDatabase();
const gw = await startTestGateway({ dialect: mysqlDialect, targets: TARGETS, tokens: [FUZZ_USER] });
const proxy = await startRecordingProxy(gw);
const sessions = [];
try {
  // mysql2: handshake response and the token after the switch to mysql_clear_password,
  // COM_QUERY, COM_STMT_PREPARE/EXECUTE/CLOSE, COM_PING, an error.
  const password = FUZZ_USER.token;
  const c = await mysql.createConnection({
    host: proxy.host,
    port: proxy.port,
    database: 'app',
    user: FUZZ_USER.subject,
    password,
    authPlugins: { mysql_clear_password: () => () => Buffer.from(`${password}\0`) },
  });
  await c.query('SELECT 1 AS one');
  await c.execute(`SELECT id, label FROM ${FUZZ_TABLE} WHERE id > ? AND label <> ? ORDER BY id`, [0, 'x']);
  await c.execute(`INSERT INTO ${FUZZ_TABLE} (id, label) VALUES (?, ?)`, [9, null]);
  await c.query('SELECT * FROM sluice_fuzz_no_such_table').catch(() => undefined);
  await c.ping();
  await c.unprepare(`SELECT id, label FROM ${FUZZ_TABLE} WHERE id > ? AND label <> ? ORDER BY id`);
  await c.end();
  sessions.push({ file: 'mysql2-prepared.json', client: 'mysql2', description: 'handshake response, clear-password token, COM_QUERY, COM_STMT_PREPARE/EXECUTE with parameters, a server error, COM_PING, COM_STMT_CLOSE' });

  // The mysql command-line client: its handshake (connection attributes), COM_QUERY, COM_INIT_DB (use).
  const address = ['-h', '127.0.0.1', '-P', String(proxy.port), '-u', FUZZ_USER.subject, `-p${FUZZ_USER.token}`];
  await run('mysql', [...address, 'app'], `SELECT 1;\nuse ${FUZZ_DATABASE}\nSELECT COUNT(*) FROM ${FUZZ_TABLE};\nSELECT @@version_comment LIMIT 1;\n`);
  sessions.push({ file: 'mysql-cli.json', client: 'mysql', description: 'the mysql client: handshake with connection attributes, clear-password token, COM_QUERY, COM_INIT_DB, COM_QUIT' });

  // mysqladmin: COM_PING and COM_STATISTICS.
  await run('mysqladmin', [...address, 'ping', 'status']);
  sessions.push({ file: 'mysqladmin-ping.json', client: 'mysqladmin', description: 'mysqladmin: handshake, clear-password token, COM_PING, COM_STATISTICS, COM_QUIT' });

  const recorded = proxy.sessions();
  if (recorded.length !== sessions.length) throw new Error(`expected ${sessions.length} recorded connections, got ${recorded.length}`);
  sessions.forEach((s, i) => {
    writeFileSync(join(here, 'corpus', s.file), `${JSON.stringify(encodeRecording(s.client, s.description, recorded[i]), null, 2)}\n`);
    process.stdout.write(`wrote corpus/${s.file}: ${recorded[i].length} chunks, ${recorded[i].reduce((n, k) => n + k.length, 0)} bytes\n`);
  });
} finally {
  await proxy.close();
  await gw.close();
}
