import { parseArgs } from 'node:util';
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import {
  followAuditRecords,
  formatRecordLine,
  readAuditRecords,
  toCsvHeader,
  toCsvRow,
  redactUrlPassword,
  verifyAuditLog,
  type AuditRecord,
} from '@sluice/core';
import { followPostgresAudit, readPostgresAudit, streamPostgresAudit, verifyPostgresAudit, type StoredAuditRecord } from '../store/postgres-audit-reader.js';

async function* recordsOf(stored: AsyncIterable<StoredAuditRecord>): AsyncGenerator<AuditRecord> {
  for await (const s of stored) yield s.record;
}
import { loadOrReport } from './start.js';
import { noPositionals, requireConfig, UsageError } from './run.js';

/** Parses an ISO time or a span back from now: 30s, 15m, 24h, 7d. */
export function parseTime(value: string, now = Date.now()): Date {
  const span = /^(\d+)\s*(s|m|h|d|w)$/.exec(value.trim());
  if (span) {
    const unit = { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3, w: 604800e3 }[span[2] as 's' | 'm' | 'h' | 'd' | 'w'];
    return new Date(now - Number(span[1]) * unit);
  }
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) throw new UsageError(`cannot read "${value}" as a time: use ISO 8601 (2026-01-31T12:00:00Z) or a span like 24h or 7d`);
  return d;
}

export async function auditCommand(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  switch (sub) {
    case 'verify': {
      const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: { config: { type: 'string', short: 'c' } } });
      noPositionals(positionals);
      const loaded = loadOrReport(requireConfig(values), { allowUnsetEnv: true });
      if (!loaded) return 1;
      if (loaded.config.store !== undefined) {
        const shared = await verifyPostgresAudit(loaded.config.store);
        const where = redactUrlPassword(loaded.config.store);
        for (const c of shared.chains) {
          process.stdout.write(
            c.problem === undefined
              ? `replica ${c.replica}: ${c.records} records verified, last hash ${c.lastHash}\n`
              : `replica ${c.replica}: BROKEN: ${c.problem} (${c.records} records before it verified)\n`,
          );
        }
        process.stdout.write(
          shared.ok
            ? `audit trail intact: ${shared.records} records in ${shared.chains.length} replica chain(s) verified in ${where}\n`
            : `audit trail BROKEN in ${where}\n`,
        );
        return shared.ok ? 0 : 1;
      }
      const result = await verifyAuditLog(loaded.config.audit.dir);
      if (result.ok) {
        process.stdout.write(`audit trail intact: ${result.records} records verified in ${loaded.config.audit.dir}\nlast hash: ${result.lastHash}\n`);
        return 0;
      }
      process.stdout.write(
        `audit trail BROKEN in ${loaded.config.audit.dir}: ${result.problem.message}\n${result.records} records before it verified.\n`,
      );
      return 1;
    }
    case 'tail': {
      const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: {
        config: { type: 'string', short: 'c' },
        lines: { type: 'string', short: 'n' },
        follow: { type: 'boolean', short: 'f' },
        json: { type: 'boolean' },
      } });
      noPositionals(positionals);
      const loaded = loadOrReport(requireConfig(values), { allowUnsetEnv: true });
      if (!loaded) return 1;
      const n = values.lines ? Number(values.lines) : 20;
      if (!Number.isInteger(n) || n < 0) throw new UsageError('-n must be a non-negative integer');
      const print = (r: AuditRecord) => process.stdout.write(`${values.json ? JSON.stringify(r) : formatRecordLine(r)}\n`);
      const shared = loaded.config.store;
      if (shared !== undefined && !values.follow) {
        for (const r of await readPostgresAudit(shared, { last: n })) print(r.record);
        return 0;
      }
      if (shared !== undefined) {
        const controller = new AbortController();
        process.once('SIGINT', () => controller.abort());
        process.once('SIGTERM', () => controller.abort());
        for await (const r of followPostgresAudit(shared, { fromEnd: n, signal: controller.signal })) print(r.record);
        return 0;
      }
      if (!values.follow) {
        const last: AuditRecord[] = [];
        for await (const r of readAuditRecords(loaded.config.audit.dir)) {
          last.push(r);
          if (last.length > n) last.shift();
        }
        last.forEach(print);
        return 0;
      }
      const controller = new AbortController();
      process.once('SIGINT', () => controller.abort());
      process.once('SIGTERM', () => controller.abort());
      for await (const r of followAuditRecords(loaded.config.audit.dir, { fromEnd: n, signal: controller.signal })) print(r);
      return 0;
    }
    case 'export': {
      const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: {
        config: { type: 'string', short: 'c' },
        since: { type: 'string' },
        until: { type: 'string' },
        format: { type: 'string', default: 'jsonl' },
        output: { type: 'string', short: 'o' },
      } });
      noPositionals(positionals);
      const loaded = loadOrReport(requireConfig(values), { allowUnsetEnv: true });
      if (!loaded) return 1;
      if (values.format !== 'jsonl' && values.format !== 'csv') throw new UsageError('--format must be jsonl or csv');
      const filter = {
        ...(values.since ? { since: parseTime(values.since) } : {}),
        ...(values.until ? { until: parseTime(values.until) } : {}),
      };
      let out: NodeJS.WritableStream = process.stdout;
      if (values.output) {
        const file = createWriteStream(values.output);
        try {
          await once(file, 'open');
        } catch (err) {
          process.stderr.write(`sluice: cannot write ${values.output}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}\n`);
          return 1;
        }
        out = file;
      }
      const write = async (line: string) => {
        if (!out.write(`${line}\n`)) await once(out, 'drain');
      };
      if (values.format === 'csv') await write(toCsvHeader());
      let count = 0;
      const records =
        loaded.config.store !== undefined
          ? recordsOf(streamPostgresAudit(loaded.config.store, filter))
          : readAuditRecords(loaded.config.audit.dir, filter);
      for await (const r of records) {
        await write(values.format === 'csv' ? toCsvRow(r) : JSON.stringify(r));
        count++;
      }
      if (values.output) {
        out.end();
        await once(out, 'finish');
        process.stderr.write(`exported ${count} records to ${values.output}\n`);
      }
      return 0;
    }
    default:
      throw new UsageError(`unknown audit command "${sub ?? ''}" (expected verify, tail or export)`);
  }
}
