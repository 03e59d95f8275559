/**
 * Masking of COPY ... TO STDOUT in the text and CSV formats: each CopyData message carries
 * one row (as the server sends them); the planned columns are decoded, masked and encoded
 * again with the statement's delimiter, quote and NULL string. The binary COPY format is
 * refused before it runs when a column would need masking (see the session).
 */
import type { ColumnAction, RowMasker } from './plan.js';

export interface CopyFormat {
  readonly format: 'text' | 'csv' | 'binary';
  readonly delimiter?: string;
  readonly null?: string;
  readonly quote?: string;
  readonly escape?: string;
  readonly header?: boolean;
}

export class CopyMasker {
  readonly #byIndex: (ColumnAction | undefined)[] = [];
  readonly #csv: boolean;
  readonly #delimiter: string;
  readonly #null: string;
  readonly #quote: string;
  readonly #escape: string;
  #skipHeader: boolean;

  readonly #columns: number;

  constructor(
    readonly rows: RowMasker,
    format: CopyFormat,
    columnCount: number,
  ) {
    for (const a of rows.actions) this.#byIndex[a.index] = a;
    this.#columns = columnCount;
    this.#csv = format.format === 'csv';
    this.#delimiter = format.delimiter ?? (this.#csv ? ',' : '\t');
    this.#null = format.null ?? (this.#csv ? '' : '\\N');
    this.#quote = format.quote ?? '"';
    this.#escape = format.escape ?? this.#quote;
    this.#skipHeader = format.header === true;
  }

  /** Rewrites one CopyData frame (type byte included); the same frame when nothing changed. */
  maskData(frame: Buffer): Buffer {
    const text = frame.toString('utf8', 5);
    if (text.length === 0) return frame;
    if (this.#skipHeader) {
      // The header line names the columns: nothing to mask in it.
      this.#skipHeader = false;
      return frame;
    }
    const rows = this.#csv ? splitCsvRows(text, this.#quote, this.#escape) : text.split('\n');
    // The last element is what follows the final line break: empty for complete rows.
    if (rows.at(-1) !== '') throw new RangeError('a COPY row was split across messages; it cannot be masked');
    rows.pop();
    let changed = false;
    const out = rows.map((row) => {
      const masked = this.#csv ? this.#maskCsvRow(row) : this.#maskTextRow(row);
      if (masked !== row) changed = true;
      return masked;
    });
    if (!changed) return frame;
    const body = Buffer.from(`${out.join('\n')}\n`, 'utf8');
    const head = Buffer.allocUnsafe(5);
    head[0] = frame[0]!;
    head.writeInt32BE(body.length + 4, 1);
    return Buffer.concat([head, body]);
  }

  #maskValue(index: number, raw: string | null): string | null | undefined {
    const action = this.#byIndex[index];
    if (action === undefined || raw === null) return undefined;
    const masked = this.rows.maskValue(action, Buffer.from(raw, 'utf8'));
    if (masked === undefined) return undefined;
    return masked === null ? null : masked.toString('utf8');
  }

  #maskTextRow(row: string): string {
    const fields = splitTextFields(row, this.#delimiter);
    // A row that does not split into the planned columns cannot be masked column by column.
    if (fields.length !== this.#columns) throw new RangeError(`a COPY row of ${fields.length} fields for ${this.#columns} columns`);
    let changed = false;
    for (let i = 0; i < fields.length; i++) {
      if (this.#byIndex[i] === undefined) continue;
      const raw = fields[i] === this.#null ? null : unescapeText(fields[i]!);
      const masked = this.#maskValue(i, raw);
      if (masked === undefined) continue;
      fields[i] = masked === null ? this.#null : escapeText(masked, this.#delimiter);
      changed = true;
    }
    return changed ? fields.join(this.#delimiter) : row;
  }

  #maskCsvRow(row: string): string {
    const fields = splitCsvFields(row, this.#delimiter, this.#quote, this.#escape);
    if (fields.length !== this.#columns) throw new RangeError(`a COPY row of ${fields.length} fields for ${this.#columns} columns`);
    let changed = false;
    const out = fields.map((f, i) => {
      if (this.#byIndex[i] === undefined) return f.raw;
      const masked = this.#maskValue(i, !f.quoted && f.value === this.#null ? null : f.value);
      if (masked === undefined) return f.raw;
      changed = true;
      if (masked === null) return this.#null;
      const q = this.#quote;
      const e = this.#escape;
      let body = '';
      for (const ch of masked) body += ch === q || ch === e ? e + ch : ch;
      return q + body + q;
    });
    return changed ? out.join(this.#delimiter) : row;
  }
}

/** Splits a text-format COPY row on delimiters that are not escaped with a backslash. */
function splitTextFields(row: string, delimiter: string): string[] {
  const fields: string[] = [];
  let start = 0;
  for (let i = 0; i < row.length; i++) {
    const c = row[i];
    if (c === '\\') i++;
    else if (c === delimiter) {
      fields.push(row.slice(start, i));
      start = i + 1;
    }
  }
  fields.push(row.slice(start));
  return fields;
}

function unescapeText(s: string): string {
  if (!s.includes('\\')) return s;
  return s.replace(/\\(?:([0-7]{1,3})|x([0-9a-fA-F]{1,2})|(.))/gs, (_, oct: string | undefined, hex: string | undefined, c: string | undefined) => {
    if (oct !== undefined) return String.fromCharCode(parseInt(oct, 8));
    if (hex !== undefined) return String.fromCharCode(parseInt(hex, 16));
    switch (c) {
      case 'b':
        return '\b';
      case 'f':
        return '\f';
      case 'n':
        return '\n';
      case 'r':
        return '\r';
      case 't':
        return '\t';
      case 'v':
        return '\v';
      default:
        return c ?? '';
    }
  });
}

function escapeText(s: string, delimiter: string): string {
  let out = '';
  for (const ch of s) {
    if (ch === '\\') out += '\\\\';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (ch === delimiter) out += `\\${ch}`;
    else out += ch;
  }
  return out;
}

/** Splits CSV text into rows at line breaks outside quotes (the last element follows the last break). */
function splitCsvRows(text: string, quote: string, escape: string): string[] {
  const rows: string[] = [];
  let inQuotes = false;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inQuotes) {
      if (c === escape && escape !== quote && text[i + 1] !== undefined) i++;
      else if (c === quote) {
        if (escape === quote && text[i + 1] === quote) i++;
        else inQuotes = false;
      }
    } else if (c === quote) inQuotes = true;
    else if (c === '\n') {
      rows.push(text.slice(start, i).replace(/\r$/, ''));
      start = i + 1;
    }
  }
  rows.push(text.slice(start));
  return rows;
}

interface CsvField {
  readonly raw: string;
  readonly value: string;
  readonly quoted: boolean;
}

function splitCsvFields(row: string, delimiter: string, quote: string, escape: string): CsvField[] {
  const fields: CsvField[] = [];
  let start = 0;
  let value = '';
  let quoted = false;
  let inQuotes = false;
  for (let i = 0; i <= row.length; i++) {
    const c = row[i];
    if (inQuotes) {
      if (c === undefined) break;
      if (c === escape && (row[i + 1] === quote || row[i + 1] === escape) && !(escape === quote && row[i + 1] !== quote)) {
        value += row[i + 1];
        i++;
      } else if (c === quote) inQuotes = false;
      else value += c;
      continue;
    }
    if (c === undefined || c === delimiter) {
      fields.push({ raw: row.slice(start, i), value, quoted });
      start = i + 1;
      value = '';
      quoted = false;
      continue;
    }
    if (c === quote) {
      inQuotes = true;
      quoted = true;
    } else value += c;
  }
  return fields;
}
