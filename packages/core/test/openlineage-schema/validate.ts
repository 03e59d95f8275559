/**
 * Checks OpenLineage events against the schemas in this directory: the event against
 * OpenLineage.json, and every facet against the schema of its facet, found by facet name. A
 * facet with no schema here is an error, so that every facet an event carries is checked.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Ajv2020 from 'ajv/dist/2020.js';
import type { ValidateFunction } from 'ajv/dist/2020.js';

export const SCHEMA_DIR = fileURLToPath(new URL('.', import.meta.url));
const SPEC_ID = 'https://openlineage.io/spec/2-0-2/OpenLineage.json';

interface SchemaFile {
  readonly $id: string;
  readonly $defs?: Record<string, unknown>;
  readonly properties?: Record<string, { $ref?: string }>;
}

export interface OpenLineageValidator {
  /** The problems found, empty when the event is valid. */
  validate(event: unknown): string[];
  /** Facet name → `$id#/$defs/<definition>` of its schema. */
  readonly facetSchemas: ReadonlyMap<string, string>;
}

export function createOpenLineageValidator(): OpenLineageValidator {
  // The package is CommonJS: its default export is the module, whose `default` is the class.
  // Strict, but for `required` naming properties defined elsewhere: the spec's `not: { required: [...] }` does that.
  const ajv = new Ajv2020.default({ allErrors: true, strict: true, strictRequired: false });
  ajv.addKeyword('example');
  ajv.addFormat('date-time', (value: string) => /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.test(value) && !Number.isNaN(Date.parse(value)));
  ajv.addFormat('uri', (value: string) => {
    if (!/^[a-z][a-z0-9+.-]*:/i.test(value)) return false;
    try {
      new URL(value);
      return true;
    } catch {
      return false;
    }
  });
  ajv.addFormat('uuid', /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i);

  const facetSchemas = new Map<string, string>();
  const facetValidators = new Map<string, ValidateFunction>();
  const files = readdirSync(SCHEMA_DIR).filter((name) => name.endsWith('.json'));
  const schemas = files.map((name) => JSON.parse(readFileSync(join(SCHEMA_DIR, name), 'utf8')) as SchemaFile);
  for (const schema of schemas) ajv.addSchema(schema);
  for (const schema of schemas) {
    if (schema.$id === SPEC_ID) continue;
    for (const [facetName, property] of Object.entries(schema.properties ?? {})) {
      const ref = property.$ref;
      if (ref === undefined || !ref.startsWith('#/$defs/')) throw new Error(`${schema.$id}: facet ${facetName} has no local definition`);
      facetSchemas.set(facetName, schema.$id + ref);
      facetValidators.set(facetName, ajv.getSchema(schema.$id) ?? fail(`schema ${schema.$id} did not compile`));
    }
  }
  const eventValidator = ajv.getSchema(SPEC_ID) ?? fail('OpenLineage.json did not compile');

  return {
    facetSchemas,
    validate(event: unknown): string[] {
      const problems: string[] = [];
      if (!eventValidator(event)) problems.push(...describe('event', eventValidator));
      for (const [where, facets] of facetGroups(event)) {
        for (const [facetName, facet] of Object.entries(facets)) {
          const validator = facetValidators.get(facetName);
          if (validator === undefined) {
            problems.push(`${where}.${facetName}: no schema for this facet`);
            continue;
          }
          if (!validator({ [facetName]: facet })) problems.push(...describe(`${where}`, validator));
        }
      }
      return problems;
    },
  };
}

function describe(where: string, validator: ValidateFunction): string[] {
  return (validator.errors ?? []).map((error) => `${where}${error.instancePath} ${error.message ?? ''} ${JSON.stringify(error.params)}`);
}

/** Every `facets` object of an event, with where it is. */
function facetGroups(event: unknown): [string, Record<string, unknown>][] {
  const groups: [string, Record<string, unknown>][] = [];
  const add = (where: string, holder: unknown): void => {
    if (typeof holder !== 'object' || holder === null) return;
    const facets = (holder as { facets?: unknown }).facets;
    if (typeof facets === 'object' && facets !== null) groups.push([`${where}.facets`, facets as Record<string, unknown>]);
  };
  if (typeof event !== 'object' || event === null) return groups;
  const e = event as { run?: unknown; job?: unknown; inputs?: unknown; outputs?: unknown };
  add('run', e.run);
  add('job', e.job);
  for (const side of ['inputs', 'outputs'] as const) {
    const list = e[side];
    if (Array.isArray(list)) list.forEach((dataset, i) => add(`${side}[${i}]`, dataset));
  }
  return groups;
}

function fail(message: string): never {
  throw new Error(message);
}
