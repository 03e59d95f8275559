/**
 * Masking of MySQL / MariaDB results: the per-target catalog and the per-result plan that
 * rewrites rows (text and binary protocol) before they reach the client.
 */
export { planColumns, planResult, type MysqlColumnAction, type MysqlRowMasker, type ResultSourcesMy } from './plan.js';
export {
  catalogFor,
  isSystemSchema,
  loadCatalog,
  MysqlCatalog,
  MysqlCatalogSnapshot,
  SYSTEM_SCHEMAS,
  type MysqlCatalogData,
  type MysqlCatalogOptions,
  type MysqlRelation,
  type MysqlViewColumn,
  type MysqlViewDefinition,
  type RelationKind,
  type TracedSources,
} from './catalog.js';
export { CatalogConnection, CatalogQueryError } from './query.js';
export { defaultCharsetOf, hashedInt, maskValue, scanValue, shapeOf, type CharsetInfo, type TextCodec, type ValueFamily, type ValueShape } from './values.js';
