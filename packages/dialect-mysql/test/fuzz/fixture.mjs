// The fuzz pass's MariaDB fixture, shared by the fuzz suite and the corpus recorder: an account
// and a database of its own (so that what fuzzed sessions run touches nothing else, and their
// upstream connections can be counted), one table, and the identity the recordings log in as.
import mysql from 'mysql2/promise';

export const FUZZ_ACCOUNT = 'sluice_fuzz';
export const FUZZ_DATABASE = 'sluice_fuzz';
export const FUZZ_TABLE = 'sluice_fuzz_t';
/** The identity in the recorded sessions: re-record the corpus if it changes. */
export const FUZZ_USER = { subject: 'fuzz@example.com', kind: 'human', groups: ['fuzz'], token: 'sluice-fuzz-token' };
/** The well-behaved client that must keep working while the fuzzer runs. */
export const STEADY_USER = { subject: 'steady@example.com', kind: 'service', groups: ['steady'], token: 'sluice-steady-token' };
export const ADMIN = { host: '127.0.0.1', port: 3306, user: 'root', database: 'test' };

/**
 * The gateway's only target, reached as the fuzz account (the only one, so that a client that
 * names no database, as mysqladmin, still logs in).
 */
export const TARGETS = {
  app: { upstream: `mysql://${FUZZ_ACCOUNT}@127.0.0.1:3306/${FUZZ_DATABASE}` },
};

/** Creates the account, the database and the table when missing (idempotent). */
export async function prepareFuzzDatabase() {
  const admin = await mysql.createConnection(ADMIN);
  try {
    await admin.query(`CREATE DATABASE IF NOT EXISTS ${FUZZ_DATABASE}`);
    for (const host of ['127.0.0.1', 'localhost']) {
      await admin.query(`CREATE USER IF NOT EXISTS '${FUZZ_ACCOUNT}'@'${host}'`);
      await admin.query(`GRANT ALL ON ${FUZZ_DATABASE}.* TO '${FUZZ_ACCOUNT}'@'${host}'`);
    }
    await admin.query(`CREATE TABLE IF NOT EXISTS ${FUZZ_DATABASE}.${FUZZ_TABLE} (id int, label varchar(64))`);
  } finally {
    await admin.end();
  }
}

/** Upstream connections of the fuzz account (every fuzzed session's server side). */
export async function fuzzUpstreamConnections(admin) {
  const [rows] = await admin.query('SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE USER = ?', [FUZZ_ACCOUNT]);
  return Number(rows[0].n);
}
