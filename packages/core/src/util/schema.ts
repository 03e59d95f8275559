import { z } from 'zod';

/**
 * A record whose keys are a fixed set of names (guardrails, detectors), each optional. A key
 * outside the set is reported with the list of the known ones: `unknown <noun> "x"; the
 * <plural> are a, b, c`.
 */
export function namedRecord<K extends string, V extends z.ZodType>(names: readonly K[], value: V, noun: string, plural: string) {
  return z.partialRecord(z.enum(names as [K, ...K[]]), value, {
    // zod reports the keys an enum-keyed partial record does not know as `unrecognized_keys`,
    // an issue its types for this schema leave out.
    error: (issue) => {
      const keys: unknown = (issue as { readonly keys?: unknown }).keys;
      return Array.isArray(keys) ? `unknown ${noun} ${keys.map((k) => JSON.stringify(k)).join(', ')}; the ${plural} are ${names.join(', ')}` : undefined;
    },
  });
}

/** A list that narrows a rule: empty would match nothing, so it must be left out instead. */
export function narrowing<T extends z.ZodType>(item: T, what: string) {
  return z.array(item).min(1, `an empty ${what} list matches nothing; leave it out to match every ${what.replace(/s$/, '')}`);
}
