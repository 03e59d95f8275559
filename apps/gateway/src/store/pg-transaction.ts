/**
 * What the PostgreSQL stores (audit, approvals, lockouts, lineage) share: their default schema,
 * the check of a schema name, and one transaction on a client of a pool.
 */
import type pg from 'pg';

/** The schema the stores keep their tables in unless told otherwise. */
export const DEFAULT_STORE_SCHEMA = 'sluice';

/** A schema name as written unquoted: lower-case letters, digits and underscores. */
export const STORE_SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/**
 * Committed when `work` resolves, rolled back when it throws, the client always released.
 */export async function inTransaction<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>, begin = 'BEGIN'): Promise<T> {
  const client = await pool.connect();
  // A connection whose transaction could not be rolled back goes, instead of back to the pool.
  let broken: Error | undefined;
  try {
    await client.query(begin);
    const out = await work(client);
    await client.query('COMMIT');
    return out;
  } catch (err) {
    await client.query('ROLLBACK').catch((e: unknown) => {
      broken = e instanceof Error ? e : new Error(String(e));
    });
    throw err;
  } finally {
    client.release(broken);
  }
}
