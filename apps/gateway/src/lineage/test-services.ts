/**
 * The PostgreSQL the lineage tests use (SLUICE_TEST_POSTGRES_URL, default the local server's
 * `test` database), and whether it is there. Without it the tests say loudly that they did not
 * run, and under SLUICE_REQUIRE_SERVICES=1 they fail.
 */
import pg from 'pg';

export const TEST_POSTGRES_URL = process.env.SLUICE_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** True when the test PostgreSQL accepts a connection; otherwise throws (services required) or prints why and returns false. */
export async function postgresAvailable(url = TEST_POSTGRES_URL): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch (err) {
    const line = `SERVICE MISSING: PostgreSQL is not reachable at ${url} (${(err as Error).message}); the PostgreSQL lineage store tests did NOT run`;
    if (process.env.SLUICE_REQUIRE_SERVICES === '1') throw new Error(`${line} (SLUICE_REQUIRE_SERVICES=1)`);
    process.stderr.write(`\n!!!!! ${line} !!!!!\n\n`);
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}
