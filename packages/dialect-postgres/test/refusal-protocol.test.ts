import type { Identity } from '@sluice/core';
import { requireService, startTestGateway, type TestGateway } from '@sluice/testkit';
import pg from 'pg';
import { serialize } from 'pg-protocol';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { postgresDialect } from '../src/index.js';
import { columnNames, liveTest, pendingRequest, rawClient } from './support.js';

/**
 * Refusals and held statements at the protocol level, with a raw client against the real
 * PostgreSQL: the client must get exactly the messages, in exactly the order, that a server
 * refusing the statement itself would send, and nothing refused or unreviewed may run.
 */
const UPSTREAM = 'postgres://postgres@127.0.0.1:5432/test';
const DBA = { subject: 'dba@example.com', kind: 'human', groups: ['dba'], token: 'dba-protocol-token' } as const;
const AUDITOR = { subject: 'auditor@example.com', kind: 'human', groups: ['auditors'], token: 'auditor-protocol-token' } as const;
const APPROVER: Identity = { subject: 'lead@example.com', kind: 'human', groups: ['approvers'], method: 'token' };

const POLICY = {
  rules: [
    { name: 'dba-data', identities: { groups: ['dba'] }, operations: ['read', 'write', 'copy-in', 'transaction', 'session-setting', 'unknown'], effect: 'allow' },
    { name: 'dba-ddl-reviewed', identities: { groups: ['dba'] }, operations: ['ddl'], effect: 'review' },
    { name: 'auditors-read', identities: { groups: ['auditors'] }, operations: ['read', 'transaction'], effect: 'allow' },
    { name: 'salaries-reviewed', identities: { groups: ['auditors'] }, operations: ['read'], objects: ['sluice_proto_salaries'], effect: 'review' },
  ],
};

let gw: TestGateway;
let available = false;
let direct: pg.Client;

beforeAll(async () => {
  available = await requireService('PostgreSQL', '127.0.0.1', 5432);
  if (!available) return;
  gw = await startTestGateway({
    dialect: postgresDialect,
    targets: { app: { upstream: UPSTREAM } },
    tokens: [DBA, AUDITOR],
    policy: POLICY,
    approvals: { approvers: { groups: ['approvers'] }, timeoutMs: 10_000 },
  });
  direct = new pg.Client({ connectionString: UPSTREAM });
  await direct.connect();
  await direct.query('DROP TABLE IF EXISTS sluice_proto_t, sluice_proto_salaries');
  await direct.query('CREATE TABLE sluice_proto_t (id int)');
  await direct.query('CREATE TABLE sluice_proto_salaries (id int, amount int)');
  await direct.query('INSERT INTO sluice_proto_salaries VALUES (1, 10), (2, 20), (3, 30)');
});

afterAll(async () => {
  if (direct) {
    await direct.query('DROP TABLE IF EXISTS sluice_proto_t, sluice_proto_salaries');
    await direct.end();
  }
  await gw?.close();
});

const live = liveTest(() => available);

const raw = (who: { subject: string; token: string }) => rawClient(gw, who);

const withoutNotices = (types: string) => types.replace(/N/g, '');

const pending = (statement: RegExp) => pendingRequest(gw.approvals!, statement);
const columns = (table: string) => columnNames(direct, table);

describe('refusals at the protocol level', () => {
  live('a refused Parse is answered after the Describe answers sent before it, right before ReadyForQuery', async () => {
    const c = await raw(DBA);
    c.send(
      serialize.parse({ name: 's1', text: 'SELECT 1 AS one' }),
      serialize.describe({ type: 'S', name: 's1' }),
      serialize.parse({ name: 's2', text: 'DROP TABLE sluice_proto_t' }),
      serialize.describe({ type: 'S', name: 's2' }),
      serialize.sync(),
    );
    expect(await c.take((t) => t.endsWith('Z'))).toBe('1tTEZ');
    c.close();
  });

  live('an Execute refused after Bind and Describe(P) comes after their answers', async () => {
    const c = await raw(DBA);
    c.send(
      serialize.parse({ text: 'SELECT 1' }),
      serialize.bind({}),
      serialize.describe({ type: 'P' }),
      serialize.execute({ portal: 'no_such_portal' }),
      serialize.sync(),
    );
    expect(await c.take((t) => t.endsWith('Z'))).toBe('12TEZ');
    c.close();
  });

  live('after the server failed in a batch, a refused Query or Parse before Sync adds no error and no ReadyForQuery', async () => {
    const c = await raw(DBA);
    c.send(serialize.parse({ text: 'SELECT * FROM sluice_no_such_table' }), serialize.flush());
    expect(await c.take((t) => t.includes('E'))).toBe('E');
    c.send(serialize.query('DROP TABLE sluice_proto_t'), serialize.parse({ text: 'TRUNCATE sluice_proto_t' }), serialize.sync());
    expect(await c.take((t) => t.endsWith('Z'))).toBe('Z');
    c.send(serialize.query('SELECT 1'));
    expect(await c.take((t) => t.endsWith('Z'))).toBe('TDCZ');
    c.close();
  });

  live('a statement the server will skip after its own error is not sent for review', async () => {
    const c = await raw(DBA);
    c.send(
      serialize.parse({ text: 'SELECT * FROM sluice_no_such_table' }),
      serialize.bind({}),
      serialize.execute({}),
      serialize.parse({ text: 'ALTER TABLE sluice_proto_t ADD COLUMN skipped int' }),
      serialize.bind({}),
      serialize.execute({}),
      serialize.sync(),
    );
    expect(await c.take((t) => t.endsWith('Z'))).toBe('EZ');
    expect(gw.approvals!.list({ status: 'pending' }).filter((r) => /skipped/.test(r.statement))).toHaveLength(0);
    expect(await columns('sluice_proto_t')).not.toContain('skipped');
    c.close();
  });

  live('an extended-protocol statement held for review tells the client at once, then runs when approved', async () => {
    const c = await raw(DBA);
    c.send(
      serialize.parse({ text: 'ALTER TABLE sluice_proto_t ADD COLUMN held_ext int' }),
      serialize.bind({}),
      serialize.describe({ type: 'P' }),
      serialize.execute({}),
      serialize.sync(),
    );
    const req = await pending(/held_ext/);
    // The answers to what came before the held Execute, then the notice, while it waits.
    expect(await c.take((t) => t.includes('N'))).toBe('12nN');
    expect(c.notices().some((n) => n.includes(req.id))).toBe(true);
    await gw.approvals!.approve(req.id, APPROVER);
    expect(await c.take((t) => t.endsWith('Z'))).toBe('CZ');
    expect(await columns('sluice_proto_t')).toContain('held_ext');
    c.close();
  });

  live('fetching an approved portal in batches asks once', async () => {
    const c = await raw(AUDITOR);
    c.send(
      serialize.parse({ text: 'SELECT amount FROM sluice_proto_salaries ORDER BY id' }),
      serialize.bind({}),
      serialize.execute({ rows: 1 }),
      serialize.execute({ rows: 1 }),
      serialize.execute({ rows: 5 }),
      serialize.sync(),
    );
    const req = await pending(/sluice_proto_salaries/);
    await gw.approvals!.approve(req.id, APPROVER);
    expect(withoutNotices(await c.take((t) => t.endsWith('Z')))).toBe('12DsDsDCZ');
    expect(gw.approvals!.list({ status: 'pending' })).toHaveLength(0);
    c.close();
    const records = (await gw.auditRecords()).filter((r) => r.type === 'statement' && r.phase === 'complete' && r.approval === req.id);
    expect(records.map((r) => r.type === 'statement' && r.outcome)).toEqual(['ok', 'ok', 'ok']);
  });
});

describe('prepared statement names are one namespace (SQL PREPARE and protocol Parse)', () => {
  live('a name re-prepared through the protocol is executed as what it now is', async () => {
    const c = await raw(DBA);
    c.send(serialize.query('PREPARE x AS SELECT 1'));
    await c.take((t) => t.endsWith('Z'));
    c.send(
      serialize.close({ type: 'S', name: 'x' }),
      serialize.parse({ name: 'x', text: 'ALTER TABLE sluice_proto_t ADD COLUMN sneaky int' }),
      serialize.sync(),
    );
    expect(await c.take((t) => t.endsWith('Z'))).toBe('31Z');
    c.send(serialize.query('EXECUTE x'));
    const req = await pending(/EXECUTE x/);
    expect(req.rule).toBe('dba-ddl-reviewed');
    expect(req.statement).toContain('sneaky');
    await gw.approvals!.reject(req.id, APPROVER, { reason: 'caught' });
    expect(withoutNotices(await c.take((t) => t.endsWith('Z')))).toBe('EZ');
    expect(await columns('sluice_proto_t')).not.toContain('sneaky');
    c.close();
  });

  live('a DEALLOCATE run through the extended protocol forgets the name', async () => {
    const c = await raw(DBA);
    c.send(serialize.query('PREPARE y AS SELECT 1'));
    await c.take((t) => t.endsWith('Z'));
    c.send(serialize.parse({ text: 'DEALLOCATE y' }), serialize.bind({}), serialize.execute({}), serialize.sync());
    expect(await c.take((t) => t.endsWith('Z'))).toBe('12CZ');
    c.send(serialize.parse({ name: 'y', text: 'ALTER TABLE sluice_proto_t ADD COLUMN sneaky2 int' }), serialize.sync());
    expect(await c.take((t) => t.endsWith('Z'))).toBe('1Z');
    c.send(serialize.query('EXECUTE y'));
    const req = await pending(/EXECUTE y/);
    await gw.approvals!.reject(req.id, APPROVER);
    await c.take((t) => t.endsWith('Z'));
    expect(await columns('sluice_proto_t')).not.toContain('sneaky2');
    c.close();
  });

  live('an EXECUTE pipelined behind a PREPARE of the same name is not trusted until it completes', async () => {
    const c = await raw(DBA);
    c.send(serialize.query('PREPARE z AS SELECT 1'));
    await c.take((t) => t.endsWith('Z'));
    // Both in one write: the second string's EXECUTE arrives while the first is in flight.
    c.send(serialize.query('DEALLOCATE z; PREPARE z AS SELECT 2'), serialize.query('EXECUTE z'));
    const types = await c.take((t) => (t.match(/Z/g) ?? []).length === 2);
    expect(types.startsWith('CCZ')).toBe(true);
    c.close();
    const records = (await gw.auditRecords()).filter((r) => r.type === 'statement' && r.text === 'execute z');
    // Decided as unknown (what z would be was not known yet), which this policy allows.
    expect(records.at(-1)).toMatchObject({ operations: ['unknown'] });
  });
});

describe('what a stored EXECUTE runs is decided when it runs', () => {
  live('a statement EXECUTE-ing a name that is later prepared again is decided as the new statement', async () => {
    const c = await raw(AUDITOR);
    c.send(serialize.parse({ name: 's', text: 'SELECT 1' }), serialize.sync());
    expect(await c.take((t) => t.endsWith('Z'))).toBe('1Z');
    c.send(serialize.parse({ name: 'e', text: 'EXECUTE s' }), serialize.sync());
    expect(await c.take((t) => t.endsWith('Z'))).toBe('1Z');
    c.send(serialize.close({ type: 'S', name: 's' }), serialize.parse({ name: 's', text: 'SELECT amount FROM sluice_proto_salaries' }), serialize.sync());
    expect(await c.take((t) => t.endsWith('Z'))).toBe('31Z');
    c.send(serialize.bind({ statement: 'e' }), serialize.execute({}), serialize.sync());
    const req = await pending(/EXECUTE s/);
    expect(req.rule).toBe('salaries-reviewed');
    expect(req.statement).toContain('sluice_proto_salaries');
    await gw.approvals!.reject(req.id, APPROVER);
    expect(withoutNotices(await c.take((t) => t.endsWith('Z')))).toBe('2EZ');
    c.close();
  });

  live('a Query sent while the server skips to Sync is ignored, even one that would need review', async () => {
    const c = await raw(DBA);
    c.send(serialize.parse({ text: 'SELECT * FROM sluice_no_such_table' }), serialize.bind({}), serialize.execute({}), serialize.flush());
    expect(await c.take((t) => t.includes('E'))).toBe('E');
    c.send(serialize.query('ALTER TABLE sluice_proto_t ADD COLUMN ignored int'), serialize.sync());
    expect(await c.take((t) => t.endsWith('Z'))).toBe('Z');
    expect(gw.approvals!.list({ status: 'pending' }).filter((r) => /ignored/.test(r.statement))).toHaveLength(0);
    c.close();
  });
});

describe('COPY pipelined with what follows it', () => {
  const copyData = (text: string) => {
    const body = Buffer.from(text, 'utf8');
    const b = Buffer.alloc(5 + body.length);
    b[0] = 0x64;
    b.writeInt32BE(4 + body.length, 1);
    body.copy(b, 5);
    return b;
  };
  const COPY_DONE = Buffer.from([0x63, 0, 0, 0, 4]);

  live('a copy ended before the server said it began: later Syncs, refusals and outcomes stay in step', async () => {
    const c = await raw(DBA);
    c.send(
      serialize.parse({ text: 'COPY sluice_proto_t (id) FROM STDIN' }),
      serialize.bind({}),
      serialize.execute({}),
      serialize.sync(),
      copyData('4242\n'),
      COPY_DONE,
      serialize.sync(),
      serialize.parse({ text: 'DROP TABLE sluice_proto_t' }),
      serialize.sync(),
      serialize.parse({ text: 'SELECT * FROM sluice_no_such_table' }),
      serialize.sync(),
      serialize.parse({ text: 'INSERT INTO sluice_proto_t (id) VALUES (4343)' }),
      serialize.bind({}),
      serialize.execute({}),
      serialize.sync(),
    );
    expect(await c.take((t) => (t.match(/Z/g) ?? []).length === 4)).toBe('12GCZEZEZ12CZ');
    c.close();
    expect((await direct.query('SELECT id FROM sluice_proto_t WHERE id IN (4242, 4343) ORDER BY id')).rows.map((r: { id: number }) => r.id)).toEqual([4242, 4343]);
    const records = (await gw.auditRecords()).filter((r) => r.type === 'statement' && r.phase === 'complete' && r.actor.subject === DBA.subject);
    const last = records.slice(-3).map((r) => r.type === 'statement' && [r.text.split(' ')[0], r.decision, r.outcome]);
    // (The SELECT failed at Parse: no Execute, so no statement record.)
    expect(last).toEqual(
      expect.arrayContaining([
        ['copy', 'allow', 'ok'],
        ['drop', 'deny', 'not-executed'],
        ['insert', 'allow', 'ok'],
      ]),
    );
    await direct.query('DELETE FROM sluice_proto_t WHERE id IN (4242, 4343)');
  });
});

describe('FunctionCall', () => {
  live('is recorded as run when the server answers it', async () => {
    const c = await raw(DBA);
    // FunctionCall of pg_backend_pid() (OID 2026), no arguments, text result.
    const body = Buffer.alloc(4 + 2 + 2 + 2);
    body.writeUInt32BE(2026, 0);
    body.writeInt16BE(0, 4);
    body.writeInt16BE(0, 6);
    body.writeInt16BE(0, 8);
    const frame = Buffer.alloc(5 + body.length);
    frame[0] = 0x46;
    frame.writeInt32BE(4 + body.length, 1);
    body.copy(frame, 5);
    c.send(frame);
    expect(await c.take((t) => t.endsWith('Z'))).toBe('VZ');
    c.close();
    const records = (await gw.auditRecords()).filter((r) => r.type === 'statement' && r.protocol === 'function-call' && r.phase === 'complete');
    expect(records.at(-1)).toMatchObject({ outcome: 'ok', text: '-- function call by OID' });
  });
});
