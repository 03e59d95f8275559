/**
 * Clients that vanish (their socket destroyed, no Terminate / COM_QUIT): one in the middle of a
 * large result it reads slowly, one while its statement is held for approval. The built
 * gateway in front of throwaway servers must leave no upstream connection behind (the servers'
 * own session lists are polled until the gateway's sessions are gone) and no held request (it
 * becomes `abandoned`, in `sluice approvals list` and in the audit trail).
 */
import type { Socket } from 'node:net';
import { startTempMariaDb, startTempPostgres, type TempMariaDb, type TempPostgres } from '@sluice/testkit';
import mysql from 'mysql2';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, runCli } from '../helpers.js';
import {
  APPROVER,
  myClientOptions,
  pgClientOptions,
  readAuditDir,
  REQUESTER,
  startGatewayProcess,
  waitUntil,
  type GatewayProcess,
} from './support.js';

/** Bound on the gateway's upstream sessions and held requests going away. */
const GONE_MS = 10_000;

function socketOf(c: pg.Client): Socket {
  return (c as unknown as { connection: { stream: Socket } }).connection.stream;
}

describe('vanished PostgreSQL clients (throwaway server)', () => {
  let server: TempPostgres;
  let gw: GatewayProcess;

  /** The server's client sessions other than the one asking: the gateway's upstream sessions. */
  const upstreamSessions = async (): Promise<string[]> =>
    (await server.psql("SELECT state || ':' || left(query, 60) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"))
      .trim()
      .split('\n')
      .filter((l) => l !== '');

  beforeAll(async () => {
    server = await startTempPostgres();
    await server.psql('CREATE TABLE fault_vanish_held (id int)');
    gw = await startGatewayProcess({ postgres: server.url('postgres', undefined, 'postgres'), adminPort: await freePort() });
  }, 120_000);

  afterAll(async () => {
    await gw?.cli.stop();
    await server?.stop();
  }, 60_000);

  it('mid-result: the upstream session ends once the client is gone', async () => {
    const c = new pg.Client(pgClientOptions(gw));
    c.on('error', () => undefined);
    await c.connect();
    const socket = socketOf(c);
    let rows = 0;
    const q = c.query(new pg.Query('SELECT generate_series(1, 5000000) AS n'));
    q.on('row', () => {
      rows++;
      // Read a little, then stop reading: the gateway and the server are held by backpressure.
      if (rows === 1000) socket.pause();
    });
    q.on('error', () => undefined);
    await waitUntil(() => rows >= 1000, 30_000, 'the first rows of the large result');
    // The statement is still running upstream, blocked on writing to the gateway.
    await waitUntil(async () => (await upstreamSessions()).some((s) => s.startsWith('active:SELECT generate_series')), GONE_MS, 'the large result to be in flight upstream');
    socket.destroy();

    const tookMs = await waitUntil(async () => (await upstreamSessions()).length === 0, GONE_MS, "the gateway's upstream session to end");
    expect(rows).toBeLessThan(5_000_000);
    expect(gw.cli.child.exitCode).toBeNull();
    // The trail says the client went away.
    await waitUntil(() => readAuditDir(gw.auditDir).records.some((r) => r.type === 'disconnect' && r.reason === 'client-lost'), GONE_MS, 'the disconnect record');
    process.stdout.write(`[faults/vanished] PostgreSQL mid-result: upstream session gone ${tookMs} ms after the client vanished (${rows} rows read)\n`);
  }, 120_000);

  it('held for approval: the request is abandoned and the upstream session ends', async () => {
    const c = new pg.Client(pgClientOptions(gw, REQUESTER));
    c.on('error', () => undefined);
    await c.connect();
    const held = c.query('INSERT INTO fault_vanish_held VALUES (1)');
    held.catch(() => undefined);

    const list = (): { id: string; status: string; statement: string }[] => {
      const r = runCli(['approvals', 'list', '--all', '--json', '--config', gw.file], { SLUICE_TOKEN: APPROVER.token });
      if (r.code !== 0) throw new Error(`sluice approvals list failed (${r.code}): ${r.stderr}`);
      return JSON.parse(r.stdout) as { id: string; status: string; statement: string }[];
    };
    let requestId = '';
    await waitUntil(
      () => {
        const pending = list().find((r) => r.status === 'pending' && r.statement.includes('fault_vanish_held'));
        requestId = pending?.id ?? '';
        return pending !== undefined;
      },
      30_000,
      'the held request to be listed as pending',
    );
    expect((await upstreamSessions()).length).toBeGreaterThan(0);
    const vanishedAt = Date.now();
    socketOf(c).destroy();

    // Polled on the admin API (quicker than a CLI process per poll), then confirmed by the CLI.
    const statusOf = async (id: string): Promise<string | undefined> => {
      const res = await fetch(`${gw.adminUrl}/v1/approvals/${id}`, { headers: { authorization: `Bearer ${APPROVER.token}` } });
      return ((await res.json()) as { approval?: { status: string } }).approval?.status;
    };
    await waitUntil(async () => (await statusOf(requestId)) === 'abandoned', GONE_MS, `request ${requestId} to be abandoned`);
    const abandonedMs = Date.now() - vanishedAt;
    expect(list().find((r) => r.id === requestId)?.status).toBe('abandoned');
    const goneMs = await waitUntil(async () => (await upstreamSessions()).length === 0, GONE_MS, "the gateway's upstream session to end");
    const abandoned = readAuditDir(gw.auditDir).records.filter((r) => r.type === 'approval' && r.requestId === requestId).map((r) => r.action);
    expect(abandoned).toEqual(['requested', 'abandoned']);
    // Approving it now is refused: nothing is left to release.
    const approve = runCli(['approvals', 'approve', requestId, '--config', gw.file], { SLUICE_TOKEN: APPROVER.token });
    expect(approve.code).toBe(1);
    expect(approve.stderr).toMatch(/not pending/);
    expect((await server.psql('SELECT count(*) FROM fault_vanish_held')).trim()).toBe('0');
    process.stdout.write(
      `[faults/vanished] PostgreSQL held for approval: request abandoned within ${abandonedMs} ms, upstream session gone ${goneMs} ms after that\n`,
    );
  }, 120_000);
});

describe('vanished MySQL client (throwaway MariaDB)', () => {
  let server: TempMariaDb;
  let gw: GatewayProcess;

  /** Sessions over TCP (the gateway's; the test's own query runs over the Unix socket). */
  const upstreamSessions = async (): Promise<string[]> =>
    (await server.query("SELECT CONCAT(command, ':', COALESCE(LEFT(info, 60), '')) FROM information_schema.processlist WHERE host LIKE '127.0.0.1%'"))
      .trim()
      .split('\n')
      .filter((l) => l !== '');

  beforeAll(async () => {
    server = await startTempMariaDb();
    gw = await startGatewayProcess({ mysql: server.url('root') });
  }, 120_000);

  afterAll(async () => {
    await gw?.cli.stop();
    await server?.stop();
  }, 60_000);

  it('mid-result: the upstream session ends once the client is gone', async () => {
    const c = mysql.createConnection(myClientOptions(gw));
    c.on('error', () => undefined);
    await new Promise<void>((resolve, reject) => c.connect((err) => (err ? reject(err) : resolve())));
    const socket = (c as unknown as { stream: Socket }).stream;
    let rows = 0;
    const q = c.query('SELECT seq FROM seq_1_to_5000000');
    q.on('result', () => {
      rows++;
      if (rows === 1000) socket.pause();
    });
    q.on('error', () => undefined);
    await waitUntil(() => rows >= 1000, 30_000, 'the first rows of the large result');
    await waitUntil(async () => (await upstreamSessions()).some((s) => s.includes('seq_1_to_5000000')), GONE_MS, 'the large result to be in flight upstream');
    socket.destroy();

    const tookMs = await waitUntil(async () => (await upstreamSessions()).length === 0, GONE_MS, "the gateway's upstream session to end");
    expect(rows).toBeLessThan(5_000_000);
    expect(gw.cli.child.exitCode).toBeNull();
    await waitUntil(() => readAuditDir(gw.auditDir).records.some((r) => r.type === 'disconnect' && r.reason === 'client-lost'), GONE_MS, 'the disconnect record');
    process.stdout.write(`[faults/vanished] MySQL mid-result: upstream session gone ${tookMs} ms after the client vanished (${rows} rows read)\n`);
  }, 120_000);
});
