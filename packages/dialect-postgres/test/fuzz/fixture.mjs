// The fuzz pass's PostgreSQL fixture, shared by the fuzz suite and the corpus recorder: a role
// and a database of its own (so that what fuzzed sessions run touches nothing else, and their
// upstream connections can be counted), one table, and the identity the recordings log in as.
import pg from 'pg';

export const FUZZ_ROLE = 'sluice_fuzz';
export const FUZZ_DATABASE = 'sluice_fuzz';
export const FUZZ_TABLE = 'sluice_fuzz_t';
/** The identity in the recorded sessions: re-record the corpus if it changes. */
export const FUZZ_USER = { subject: 'fuzz@example.com', kind: 'human', groups: ['fuzz'], token: 'sluice-fuzz-token' };
/** The well-behaved client that must keep working while the fuzzer runs. */
export const STEADY_USER = { subject: 'steady@example.com', kind: 'service', groups: ['steady'], token: 'sluice-steady-token' };
export const ADMIN_URL = 'postgres://postgres@127.0.0.1:5432/postgres';

/** Gateway targets: `app` reaches the fuzz database as the fuzz role, `steady` as postgres. */
export const TARGETS = {
  app: { upstream: `postgres://${FUZZ_ROLE}@127.0.0.1:5432/${FUZZ_DATABASE}` },
  steady: { upstream: `postgres://postgres@127.0.0.1:5432/${FUZZ_DATABASE}` },
};

/** Creates the role, the database and the table when missing (idempotent, safe to run concurrently). */
export async function prepareFuzzDatabase() {
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  try {
    await admin.query(`DO $$ BEGIN CREATE ROLE ${FUZZ_ROLE} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE; EXCEPTION WHEN duplicate_object THEN NULL; END $$`);
    const exists = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [FUZZ_DATABASE]);
    if (exists.rowCount === 0) {
      try {
        await admin.query(`CREATE DATABASE ${FUZZ_DATABASE} OWNER ${FUZZ_ROLE}`);
      } catch (err) {
        if (err?.code !== '42P04') throw err;
      }
    }
  } finally {
    await admin.end();
  }
  const owner = new pg.Client({ connectionString: `postgres://${FUZZ_ROLE}@127.0.0.1:5432/${FUZZ_DATABASE}` });
  await owner.connect();
  try {
    await owner.query(`CREATE TABLE IF NOT EXISTS ${FUZZ_TABLE} (id int, label text)`);
  } finally {
    await owner.end();
  }
}

/** Upstream connections of the fuzz role (every fuzzed session's server side). */
export async function fuzzUpstreamConnections(admin) {
  const r = await admin.query('SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = $1', [FUZZ_ROLE]);
  return r.rows[0].n;
}
