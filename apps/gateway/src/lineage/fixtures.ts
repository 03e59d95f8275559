/**
 * Observations the lineage tests record: reads masked and in clear, statement-level INDIRECT
 * reads, a write with column flows, and the same table in a second namespace.
 */
import type { FieldFlow, FieldRef, LineageActor, LineageObservation } from '@sluice/core';

export const PRIMARY = 'postgres://db.example:5432';
export const REPLICA = 'postgres://replica.example:5432';
export const CUSTOMERS = 'app.public.customers';
export const ARCHIVE = 'app.archive.customers';

/** 2026-01-10T12:00:00Z */
export const T0 = Date.UTC(2026, 0, 10, 12, 0, 0);
export const MINUTE = 60_000;
export const HOUR = 3_600_000;

export const RUN_ALICE = '0b9f6c3e-4f65-5a53-9d3b-6a1f0f2a0001';
export const RUN_ETL = '0b9f6c3e-4f65-5a53-9d3b-6a1f0f2a0002';
export const RUN_BOB = '0b9f6c3e-4f65-5a53-9d3b-6a1f0f2a0003';
export const RUN_CAROL = '0b9f6c3e-4f65-5a53-9d3b-6a1f0f2a0004';

export function field(name: string, column: string, namespace = PRIMARY): FieldRef {
  return { namespace, name, field: column };
}

function flow(from: FieldRef, type: FieldFlow['type'], subtype: FieldFlow['subtype'], masked?: boolean): FieldFlow {
  return masked === undefined ? { from, type, subtype } : { from, type, subtype, masked };
}

const ALICE: LineageActor = { subject: 'alice@example.com', kind: 'human', groups: ['analysts'], method: 'oidc' };
const BOB: LineageActor = { subject: 'bob@example.com', kind: 'human', groups: ['dba'], method: 'token' };
const ETL: LineageActor = { subject: 'etl-bot', kind: 'service', groups: [], method: 'token' };
const CAROL: LineageActor = { subject: 'carol@example.com', kind: 'human', groups: [], method: 'oidc' };

const base = {
  target: 'app',
  dialect: 'postgres',
  inputs: [],
  result: [],
  resultIndirect: [],
  outputs: [],
} satisfies Partial<LineageObservation>;

/** alice, run RUN_ALICE: email (masked) and name (clear), filtered on country, sorted by name; 3 executions. */
export function aliceSelect(overrides: Partial<LineageObservation> = {}): LineageObservation {
  return {
    ...base,
    firstSeen: T0,
    lastSeen: T0 + 2000,
    count: 3,
    actor: ALICE,
    job: { namespace: 'sluice', name: 'adhoc' },
    run: { id: RUN_ALICE },
    sessionId: 's-alice',
    operation: 'SELECT',
    fingerprint: 'fp-alice-select',
    normalized: 'SELECT email, name FROM public.customers WHERE country = $1 ORDER BY name',
    inputs: [{ namespace: PRIMARY, name: CUSTOMERS }],
    result: [
      { name: 'email', flows: [flow(field(CUSTOMERS, 'email'), 'DIRECT', 'IDENTITY', true)], masked: true },
      { name: 'name', flows: [flow(field(CUSTOMERS, 'name'), 'DIRECT', 'IDENTITY')], masked: false },
    ],
    resultIndirect: [flow(field(CUSTOMERS, 'country'), 'INDIRECT', 'FILTER'), flow(field(CUSTOMERS, 'name'), 'INDIRECT', 'SORT')],
    traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
    ...overrides,
  };
}

/** etl-bot, run RUN_ETL (key nightly-2026-01-10): copies email and upper(name) into the archive, filtered on created_at. */
export function etlInsert(overrides: Partial<LineageObservation> = {}): LineageObservation {
  return {
    ...base,
    firstSeen: T0 + 10 * MINUTE,
    lastSeen: T0 + 10 * MINUTE,
    count: 1,
    actor: ETL,
    job: { namespace: 'sluice', name: 'nightly-archive' },
    run: { id: RUN_ETL, key: 'nightly-2026-01-10' },
    sessionId: 's-etl',
    operation: 'INSERT',
    fingerprint: 'fp-etl-insert',
    normalized: 'INSERT INTO archive.customers (email, name_upper) SELECT email, upper(name) FROM public.customers WHERE created_at < $1',
    inputs: [{ namespace: PRIMARY, name: CUSTOMERS }],
    outputs: [
      {
        namespace: PRIMARY,
        name: ARCHIVE,
        fields: [
          { to: field(ARCHIVE, 'email'), flows: [flow(field(CUSTOMERS, 'email'), 'DIRECT', 'IDENTITY')] },
          { to: field(ARCHIVE, 'name_upper'), flows: [flow(field(CUSTOMERS, 'name'), 'DIRECT', 'TRANSFORMATION')] },
        ],
        indirect: [flow(field(CUSTOMERS, 'created_at'), 'INDIRECT', 'FILTER')],
      },
    ],
    ...overrides,
  };
}

/** bob, run RUN_BOB: email in clear, 5 executions an hour after T0. */
export function bobSelect(overrides: Partial<LineageObservation> = {}): LineageObservation {
  return {
    ...base,
    firstSeen: T0 + HOUR,
    lastSeen: T0 + HOUR + 5000,
    count: 5,
    actor: BOB,
    job: { namespace: 'sluice', name: 'bob@example.com' },
    run: { id: RUN_BOB },
    sessionId: 's-bob',
    operation: 'SELECT',
    fingerprint: 'fp-bob-select',
    normalized: 'SELECT email FROM public.customers',
    inputs: [{ namespace: PRIMARY, name: CUSTOMERS }],
    result: [{ name: 'email', flows: [flow(field(CUSTOMERS, 'email'), 'DIRECT', 'IDENTITY')], masked: false }],
    ...overrides,
  };
}

/** carol, run RUN_CAROL: the same table on the replica, email counted per country (aggregation, group by). */
export function carolReplica(overrides: Partial<LineageObservation> = {}): LineageObservation {
  return {
    ...base,
    firstSeen: T0 + 2 * HOUR,
    lastSeen: T0 + 2 * HOUR,
    count: 2,
    actor: CAROL,
    job: { namespace: 'sluice', name: 'report' },
    run: { id: RUN_CAROL, key: 'weekly' },
    sessionId: 's-carol',
    target: 'replica',
    operation: 'SELECT',
    fingerprint: 'fp-carol-count',
    normalized: 'SELECT country, count(email) FROM public.customers GROUP BY country',
    inputs: [{ namespace: REPLICA, name: CUSTOMERS }],
    result: [
      { name: 'country', flows: [flow(field(CUSTOMERS, 'country', REPLICA), 'DIRECT', 'IDENTITY')], masked: false },
      { name: 'count', flows: [flow(field(CUSTOMERS, 'email', REPLICA), 'DIRECT', 'AGGREGATION')], masked: false },
    ],
    resultIndirect: [flow(field(CUSTOMERS, 'country', REPLICA), 'INDIRECT', 'GROUP_BY')],
    ...overrides,
  };
}

export const iso = (ms: number): string => new Date(ms).toISOString();
