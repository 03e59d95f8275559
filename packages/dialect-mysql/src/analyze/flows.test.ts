import type { ColumnFlow, ColumnSource, FlowSubtype, ResultLineage } from '@sluice/core';
import { describe, expect, it } from 'vitest';
import { analyzeUncached } from './analyze.js';
import { AGGREGATE_FUNCTIONS, compose, FlowSet } from './flows.js';
import { type LineageOptions, resultLineageOfSql } from './lineage.js';

const CATALOG: Readonly<Record<string, readonly string[]>> = {
  customers: ['id', 'email', 'name', 'ssn', 'region'],
  orders: ['id', 'customer_id', 'total', 'note'],
};
const withCatalog: LineageOptions = { columnsOf: (_schema, table) => CATALOG[table] };

function must(sql: string, options: LineageOptions = {}): ResultLineage {
  const l = resultLineageOfSql(sql, options);
  if (l === undefined) throw new Error(`no lineage for ${sql}`);
  return l;
}

/** `schema.table.column` or `table.column`. */
function src(ref: string): ColumnSource {
  const p = ref.split('.');
  return p.length === 3 ? { schema: p[0]!, table: p[1]!, column: p[2]! } : { table: p[0]!, column: p[1]! };
}

const DIRECT = new Set<FlowSubtype>(['IDENTITY', 'TRANSFORMATION', 'AGGREGATION']);
function flow(subtype: FlowSubtype): (ref: string) => ColumnFlow {
  return (ref) => ({ source: src(ref), type: DIRECT.has(subtype) ? 'DIRECT' : 'INDIRECT', subtype });
}
const I = flow('IDENTITY');
const T = flow('TRANSFORMATION');
const A = flow('AGGREGATION');
const C = flow('CONDITIONAL');
const W = flow('WINDOW');
const S = flow('SORT');
const F = flow('FILTER');
const J = flow('JOIN');
const G = flow('GROUP_BY');

/** Each column's flows, by name. */
function flows(l: ResultLineage): Record<string, readonly ColumnFlow[] | undefined> {
  return Object.fromEntries((l.columns ?? []).map((c) => [c.name, c.flows]));
}

describe('flow kinds of result columns', () => {
  it('tells IDENTITY from TRANSFORMATION', () => {
    const l = must('select id, c.email as e, upper(name) as n, id + 1 as p, cast(ssn as char) as s, email collate utf8mb4_bin as k from customers c');
    expect(flows(l)).toEqual({
      id: [I('customers.id')],
      e: [I('customers.email')],
      n: [T('customers.name')],
      p: [T('customers.id')],
      s: [T('customers.ssn')],
      k: [I('customers.email')],
    });
  });

  it('classes every listed aggregate as AGGREGATION, through expressions around and inside it', () => {
    const aggregates = [
      'count', 'sum', 'avg', 'min', 'max', 'group_concat', 'json_arrayagg', 'bit_and', 'bit_or', 'bit_xor', 'stddev', 'stddev_pop',
      'stddev_samp', 'var_pop', 'var_samp',
    ];
    for (const fn of aggregates) {
      const l = must(`select ${fn}(total) as x from orders`);
      expect(l.columns?.[0]?.flows, fn).toEqual([A('orders.total')]);
    }
    expect(flows(must('select json_objectagg(note, total) as j, sum(total) * 2 as d, max(upper(note)) as m, count(*) as n from orders'))).toEqual({
      j: [A('orders.note'), A('orders.total')],
      d: [A('orders.total')],
      m: [A('orders.note')],
      n: [],
    });
    expect([...AGGREGATE_FUNCTIONS]).toEqual(expect.arrayContaining([...aggregates, 'json_objectagg', 'std', 'variance']));
  });

  it('classes CASE and IF() conditions as CONDITIONAL, their results as TRANSFORMATION, and keeps conditions in the sources', () => {
    const l = must(
      'select case when vip then ssn else name end as a, case region when 1 then email end as b, if(vip, ssn, null) as c, sum(case when vip then 1 else 0 end) as d, case when email then email end as e from customers',
    );
    expect(flows(l)).toEqual({
      a: [C('customers.vip'), T('customers.ssn'), T('customers.name')],
      b: [C('customers.region'), T('customers.email')],
      c: [C('customers.vip'), T('customers.ssn')],
      d: [C('customers.vip')],
      e: [C('customers.email'), T('customers.email')],
    });
    // The sources, for masking, are what they were: conditions included.
    expect(l.columns?.[0]?.sources).toEqual([src('customers.vip'), src('customers.ssn'), src('customers.name')]);
    expect(l.columns?.[0]?.direct).toBe(false);
  });

  it("classes a window's PARTITION BY and ORDER BY as WINDOW; an aggregate over a window stays AGGREGATION", () => {
    const l = must(
      'select sum(total) over (partition by customer_id order by id) as running, row_number() over w as rn, lag(note) over w as prev from orders window w as (partition by customer_id)',
    );
    expect(flows(l)).toEqual({
      running: [A('orders.total'), W('orders.customer_id'), W('orders.id')],
      rn: [W('orders.customer_id')],
      prev: [T('orders.note'), W('orders.customer_id')],
    });
    expect(l.indirect).toEqual([W('orders.customer_id'), W('orders.id')]);
  });

  it('classes the ORDER BY inside GROUP_CONCAT as SORT', () => {
    expect(must('select group_concat(note order by total) as g from orders').columns?.[0]?.flows).toEqual([A('orders.note'), S('orders.total')]);
  });

  it('composes kinds through derived tables, CTEs, set operations and scalar subqueries', () => {
    const l = must(
      'with s as (select customer_id, sum(total) as spent from orders group by customer_id) select d.e, d.n, s.spent + 1 as more, (select max(note) from orders) as top from (select email as e, case when vip then upper(name) end as n from customers) d join s on s.customer_id = d.e',
    );
    expect(flows(l)).toEqual({
      e: [I('customers.email')],
      n: [C('customers.vip'), T('customers.name')],
      more: [A('orders.total')],
      top: [A('orders.note')],
    });
    expect(flows(must('select email from customers union select note from orders'))).toEqual({ email: [I('customers.email'), I('orders.note')] });
    expect(flows(must('select x.s from (select ssn as s from customers) x'))).toEqual({ s: [I('customers.ssn')] });
  });

  it('classes * expanded with the catalog as IDENTITY', () => {
    expect(flows(must('select * from orders', withCatalog))).toEqual({
      id: [I('orders.id')],
      customer_id: [I('orders.customer_id')],
      total: [I('orders.total')],
      note: [I('orders.note')],
    });
  });
});

describe('statement-level flow kinds', () => {
  it('classes JOIN, FILTER, GROUP_BY, SORT and keeps the predicates as they were', () => {
    const l = must(
      "select c.region, count(*) as n from customers c join orders o on o.customer_id = c.id where c.ssn like '123%' group by c.region having sum(o.total) > 10 order by c.name",
    );
    expect(l.indirect).toEqual([J('orders.customer_id'), J('customers.id'), F('customers.ssn'), G('customers.region'), F('orders.total'), S('customers.name')]);
    expect(l.predicates).toEqual([src('orders.customer_id'), src('customers.id'), src('customers.ssn'), src('customers.region'), src('orders.total'), src('customers.name')]);
  });

  it('classes EXISTS and IN subqueries as FILTER (the subquery flows into the value when it is one)', () => {
    const l = must('select id, id in (select customer_id from orders) as buyer from customers c where exists (select 1 from orders o where o.customer_id = c.id)', withCatalog);
    expect(l.indirect).toEqual([F('orders.customer_id'), F('customers.id')]);
    expect(flows(l)).toEqual({ id: [I('customers.id')], buyer: [T('orders.customer_id'), T('customers.id')] });
  });

  it('classes USING and NATURAL JOIN columns as JOIN, ORDER BY an output name or position as SORT', () => {
    expect(must('select total from customers join orders using (id)', withCatalog).indirect).toEqual([J('customers.id'), J('orders.id')]);
    expect(must('select total from customers natural join orders', withCatalog).indirect).toEqual([J('customers.id'), J('orders.id')]);
    expect(must('select total from customers natural join orders').indirect).toEqual([J('customers.*'), J('orders.*')]);
    expect(must('select email as e from customers order by e').indirect).toEqual([S('customers.email')]);
    expect(must('select email, name from customers order by 2').indirect).toEqual([S('customers.email'), S('customers.name')]);
    expect(must('select email from customers group by 1').indirect).toEqual([G('customers.email')]);
  });

  it('gives every predicate a kind, and an analysis carries them', () => {
    const l = analyzeUncached('select o.total from orders o left join customers c on c.id = o.customer_id where c.region = 1 order by o.id').lineage!;
    expect(l.indirect?.map((f) => f.source)).toEqual(l.predicates);
    expect(l.indirect).toEqual([J('customers.id'), J('orders.customer_id'), F('customers.region'), S('orders.id')]);
    expect(l.columns?.[0]?.flows).toEqual([I('orders.total')]);
  });
});

describe('flow sets', () => {
  it('compose: the stronger of two DIRECT kinds; an INDIRECT flow stays what it is', () => {
    expect(compose('IDENTITY', 'AGGREGATION')).toBe('AGGREGATION');
    expect(compose('TRANSFORMATION', 'IDENTITY')).toBe('TRANSFORMATION');
    expect(compose('TRANSFORMATION', 'AGGREGATION')).toBe('AGGREGATION');
    expect(compose('AGGREGATION', 'TRANSFORMATION')).toBe('AGGREGATION');
    expect(compose('CONDITIONAL', 'IDENTITY')).toBe('CONDITIONAL');
    expect(compose('AGGREGATION', 'WINDOW')).toBe('WINDOW');
  });

  it('give a source gathered without a kind a fallback flow, and count it as DIRECT', () => {
    const set = new FlowSet();
    set.addAs(src('t.a'), 'CONDITIONAL');
    set.add(src('t.b'));
    expect(set.flowList('TRANSFORMATION')).toEqual([C('t.a'), T('t.b')]);
    expect(set.directSources()).toEqual([src('t.b')]);
    const statement = new FlowSet(true);
    statement.mergeAs(set, 'SORT');
    expect(statement.flowList('FILTER')).toEqual([S('t.a'), S('t.b')]);
  });
});
