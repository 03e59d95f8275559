import { it } from 'vitest';
import { parseSql } from './parse.js';
import { resultLineage } from './lineage.js';
const cols: Record<string, string[]> = { customers: ['id', 'email', 'name'], orders: ['id', 'customer_id', 'total'] };
it('scratch', () => {
  const sqls = (process.env.SQLS ?? '').split('\n;;\n').filter(Boolean);
  for (const sql of sqls) {
    const p = parseSql(sql);
    if (!p.ok) { console.log(sql, p.error); continue; }
    for (const withCols of [false, true]) {
      const l = resultLineage(p.stmts[p.stmts.length - 1]!.stmt, withCols ? { columnsOf: (_s, t) => cols[t] } : {});
      const fmt = (s: { schema?: string; table: string; column: string }[]) => s.map((x) => `${x.schema ? x.schema + '.' : ''}${x.table}.${x.column}`).join(',');
      console.log(`${withCols ? '[cols]' : '[----]'} ${sql}\n` + (l === undefined ? '  undefined' :
        (l.columns?.map((c) => `  ${c.name}${c.direct ? '!' : ''}: ${fmt(c.sources as never)} fns=${c.functions.join(',')}`).join('\n') ?? '  columns: undefined') +
        `\n  all: ${fmt(l.all as never)}\n  pred: ${fmt(l.predicates as never)}\n  fns: ${l.functions.join(',')}`));
    }
  }
});
