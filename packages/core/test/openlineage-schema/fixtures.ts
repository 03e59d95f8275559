/** Run lineage the OpenLineage tests build events from: reads, masked results, writes with column lineage. */
import type { FieldFlow, RunLineage } from '../../src/lineage/types.js';

const PG = 'postgres://db.internal:5432';
const JOB_NS = 'sluice://gateway';

const col = (name: string, field: string): FieldFlow['from'] => ({ namespace: PG, name: `app.public.${name}`, field });

const lineage: RunLineage = {
  run: { id: '0b8f2f57-6f9a-4a3c-9a57-1f2e3d4c5b6a', key: 'nightly-2025-01-02' },
  job: { namespace: JOB_NS, name: 'reporting' },
  actor: { subject: 'alice@example.com', kind: 'user', groups: ['analysts'], method: 'oidc' },
  sessionIds: ['s-1', 's-2'],
  target: 'app',
  dialect: 'postgres',
  traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
  inputs: [
    { namespace: PG, name: 'app.public.customers', fields: ['id', 'email', 'region'] },
    { namespace: PG, name: 'app.public.orders', fields: ['customer_id', 'amount', 'status'] },
    { namespace: PG, name: 'app.public.audit', fields: [] },
  ],
  outputs: [
    {
      namespace: JOB_NS,
      name: 'results.3f2a9c',
      fields: {
        id: [{ from: col('customers', 'id'), type: 'DIRECT', subtype: 'IDENTITY' }],
        email: [{ from: col('customers', 'email'), type: 'DIRECT', subtype: 'IDENTITY', masked: true }],
        one: [],
      },
      indirect: [{ from: col('customers', 'region'), type: 'INDIRECT', subtype: 'FILTER' }],
      query: 'SELECT id, email FROM customers WHERE region = ?',
    },
    {
      namespace: PG,
      name: 'app.public.customer_totals',
      fields: {
        customer_id: [{ from: col('orders', 'customer_id'), type: 'DIRECT', subtype: 'IDENTITY' }],
        total: [{ from: col('orders', 'amount'), type: 'DIRECT', subtype: 'AGGREGATION' }],
      },
      indirect: [
        { from: col('orders', 'customer_id'), type: 'INDIRECT', subtype: 'GROUP_BY' },
        { from: col('orders', 'status'), type: 'INDIRECT', subtype: 'FILTER' },
      ],
    },
  ],
};

const emptyLineage: RunLineage = {
  run: { id: '1c9e3a68-7a0b-4b4d-8b68-2a3f4e5d6c7b' },
  job: { namespace: JOB_NS, name: 'adhoc' },
  actor: { subject: 'svc-etl', kind: 'service', groups: [], method: 'token' },
  sessionIds: ['s-9'],
  target: 'app',
  dialect: 'postgres',
  inputs: [],
  outputs: [],
};

export const openLineageFixtures = { PG, JOB_NS, lineage, emptyLineage };
