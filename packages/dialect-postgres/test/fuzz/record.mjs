#!/usr/bin/env node
// Re-records the PostgreSQL fuzz corpus: real clients (node-postgres and psql) talk to a gateway
// in front of the real PostgreSQL through a recording proxy, and what each client sent is
// written to corpus/*.json. Needs the packages built (pnpm build) and PostgreSQL at
// 127.0.0.1:5432 with trust auth, psql on the PATH. Run from the repository root:
//   node packages/dialect-postgres/test/fuzz/record.mjs
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeRecording, startRecordingProxy } from '@sluice/testkit/fuzz';
import { startTestGateway } from '@sluice/testkit/harness';
import pg from 'pg';
import { postgresDialect } from '../../dist/index.js';
import { FUZZ_TABLE, FUZZ_USER, TARGETS, prepareFuzzDatabase } from './fixture.mjs';

const here = dirname(fileURLToPath(import.meta.url));

function psql(port, input) {
  return new Promise((resolve, reject) => {
    const child = spawn('psql', ['-X', '-v', 'ON_ERROR_STOP=0', `host=127.0.0.1 port=${port} dbname=app user=${FUZZ_USER.subject} sslmode=prefer`], {
      env: { ...process.env, PGPASSWORD: FUZZ_USER.token, PGAPPNAME: 'psql-fuzz-recording' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out }));
    child.stdin.end(input);
  });
}

await prepareFuzzDatabase();
const gw = await startTestGateway({ dialect: postgresDialect, targets: TARGETS, tokens: [FUZZ_USER] });
const proxy = await startRecordingProxy(gw);
const sessions = [];
try {
  // node-postgres: login, simple query, extended protocol (unnamed and named statements,
  // parameters, an error in a batch), a transaction.
  const client = new pg.Client({ host: proxy.host, port: proxy.port, database: 'app', user: FUZZ_USER.subject, password: FUZZ_USER.token, application_name: 'pg-fuzz-recording' });
  await client.connect();
  await client.query('SELECT 1 AS one');
  await client.query('SELECT $1::int + 1 AS n, $2::text AS label', [41, 'héllo']);
  await client.query({ name: 'fuzz_named', text: `SELECT id, label FROM ${FUZZ_TABLE} WHERE id > $1 ORDER BY id`, values: [0] });
  await client.query({ name: 'fuzz_named', text: `SELECT id, label FROM ${FUZZ_TABLE} WHERE id > $1 ORDER BY id`, values: [1] });
  await client.query('BEGIN');
  await client.query(`INSERT INTO ${FUZZ_TABLE} (id, label) VALUES ($1, $2)`, [7, null]);
  await client.query('ROLLBACK');
  await client.query('SELECT * FROM sluice_fuzz_no_such_table').catch(() => undefined);
  await client.query({ text: 'SELECT $1::bytea AS b', values: [Buffer.from([0, 1, 2, 255])], rowMode: 'array' });
  await client.end();
  sessions.push({ file: 'pg-extended.json', client: 'node-postgres', description: 'login, simple query, extended protocol (Parse/Bind/Describe/Execute/Sync, named and unnamed statements, text and binary parameters), a transaction, a server error, Terminate' });

  // psql: SSLRequest (refused by the gateway), login, simple queries, COPY in and out.
  const r = await psql(
    proxy.port,
    `SELECT 1 AS one;\nCOPY ${FUZZ_TABLE} (id, label) FROM STDIN;\n1\tone\n2\ttwo\n\\.\nCOPY (SELECT id, label FROM ${FUZZ_TABLE} ORDER BY id LIMIT 2) TO STDOUT;\nBEGIN;\nDELETE FROM ${FUZZ_TABLE} WHERE id = 2;\nROLLBACK;\nSELECT count(*) FROM ${FUZZ_TABLE};\n`,
  );
  if (r.code !== 0) throw new Error(`psql failed (${r.code}): ${r.out}`);
  sessions.push({ file: 'psql-copy.json', client: 'psql', description: 'SSLRequest refused, login, simple queries, COPY FROM STDIN with CopyData/CopyDone, COPY TO STDOUT, a transaction, Terminate' });

  const recorded = proxy.sessions();
  if (recorded.length !== sessions.length) throw new Error(`expected ${sessions.length} recorded connections, got ${recorded.length}`);
  sessions.forEach((s, i) => {
    writeFileSync(join(here, 'corpus', s.file), `${JSON.stringify(encodeRecording(s.client, s.description, recorded[i]), null, 2)}\n`);
    process.stdout.write(`wrote corpus/${s.file}: ${recorded[i].length} chunks, ${recorded[i].reduce((n, c) => n + c.length, 0)} bytes\n`);
  });
} finally {
  await proxy.close();
  await gw.close();
}
