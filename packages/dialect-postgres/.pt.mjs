import { loadModule, parseSync } from 'libpg-query';
await loadModule();
const strip = (k, v) => k === 'location' || k === 'stmt_len' || k==='stmt_location' ? undefined : v;
for (const s of process.argv.slice(2)) { try { console.log(JSON.stringify(parseSync(s).stmts.map(x=>x.stmt), strip)); } catch (e) { console.log('ERR', e.message); } }
