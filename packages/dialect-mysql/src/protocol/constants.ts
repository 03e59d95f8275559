/**
 * Numbers of the MySQL/MariaDB client/server protocol.
 * https://dev.mysql.com/doc/dev/mysql-server/latest/group__group__cs__capabilities__flags.html
 * https://mariadb.com/kb/en/connection/#capabilities
 */

// Capability flags (32 bits; bit 31 written as an unsigned number, combine with `>>> 0`).
export const CLIENT_LONG_PASSWORD = 0x1;
/** MariaDB's name for bit 0: a server that clears it is MariaDB and sends extended capabilities. */
export const CLIENT_MYSQL = 0x1;
export const CLIENT_FOUND_ROWS = 0x2;
export const CLIENT_LONG_FLAG = 0x4;
export const CLIENT_CONNECT_WITH_DB = 0x8;
export const CLIENT_NO_SCHEMA = 0x10;
export const CLIENT_COMPRESS = 0x20;
export const CLIENT_ODBC = 0x40;
export const CLIENT_LOCAL_FILES = 0x80;
export const CLIENT_IGNORE_SPACE = 0x100;
export const CLIENT_PROTOCOL_41 = 0x200;
export const CLIENT_INTERACTIVE = 0x400;
export const CLIENT_SSL = 0x800;
export const CLIENT_IGNORE_SIGPIPE = 0x1000;
export const CLIENT_TRANSACTIONS = 0x2000;
export const CLIENT_RESERVED = 0x4000;
export const CLIENT_SECURE_CONNECTION = 0x8000;
export const CLIENT_MULTI_STATEMENTS = 0x10000;
export const CLIENT_MULTI_RESULTS = 0x20000;
export const CLIENT_PS_MULTI_RESULTS = 0x40000;
export const CLIENT_PLUGIN_AUTH = 0x80000;
export const CLIENT_CONNECT_ATTRS = 0x100000;
export const CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA = 0x200000;
export const CLIENT_CAN_HANDLE_EXPIRED_PASSWORDS = 0x400000;
export const CLIENT_SESSION_TRACK = 0x800000;
export const CLIENT_DEPRECATE_EOF = 0x1000000;
export const CLIENT_OPTIONAL_RESULTSET_METADATA = 0x2000000;
export const CLIENT_ZSTD_COMPRESSION_ALGORITHM = 0x4000000;
export const CLIENT_QUERY_ATTRIBUTES = 0x8000000;
export const CLIENT_MULTI_FACTOR_AUTHENTICATION = 0x10000000;
export const CLIENT_CAPABILITY_EXTENSION = 0x20000000;
export const CLIENT_SSL_VERIFY_SERVER_CERT = 0x40000000;
export const CLIENT_REMEMBER_OPTIONS = 0x80000000;

/**
 * MariaDB's extended capabilities (the upper 32 bits of its 64-bit flags), exchanged in the
 * handshake's filler when the server clears CLIENT_MYSQL. The gateway asks for none of them.
 */
export const MariaDbCapability = {
  PROGRESS: 0x1,
  COM_MULTI: 0x2,
  STMT_BULK_OPERATIONS: 0x4,
  EXTENDED_METADATA: 0x8,
  CACHE_METADATA: 0x10,
  BULK_UNIT_RESULTS: 0x20,
} as const;

export function hasCapability(capabilities: number, flag: number): boolean {
  return (capabilities & flag) !== 0;
}

/** Flags in both sets, as an unsigned 32-bit number. */
export function intersectCapabilities(a: number, b: number): number {
  return (a & b) >>> 0;
}

/** Server status flags (OK and EOF packets, the greeting). */
export const ServerStatus = {
  IN_TRANS: 0x1,
  AUTOCOMMIT: 0x2,
  MORE_RESULTS_EXISTS: 0x8,
  NO_GOOD_INDEX_USED: 0x10,
  NO_INDEX_USED: 0x20,
  CURSOR_EXISTS: 0x40,
  LAST_ROW_SENT: 0x80,
  DB_DROPPED: 0x100,
  NO_BACKSLASH_ESCAPES: 0x200,
  METADATA_CHANGED: 0x400,
  QUERY_WAS_SLOW: 0x800,
  PS_OUT_PARAMS: 0x1000,
  IN_TRANS_READONLY: 0x2000,
  SESSION_STATE_CHANGED: 0x4000,
} as const;

/** Command bytes: the first byte of every packet a client sends after the handshake. */
export const Command = {
  SLEEP: 0x00,
  QUIT: 0x01,
  INIT_DB: 0x02,
  QUERY: 0x03,
  FIELD_LIST: 0x04,
  CREATE_DB: 0x05,
  DROP_DB: 0x06,
  REFRESH: 0x07,
  SHUTDOWN: 0x08,
  STATISTICS: 0x09,
  PROCESS_INFO: 0x0a,
  CONNECT: 0x0b,
  PROCESS_KILL: 0x0c,
  DEBUG: 0x0d,
  PING: 0x0e,
  TIME: 0x0f,
  DELAYED_INSERT: 0x10,
  CHANGE_USER: 0x11,
  BINLOG_DUMP: 0x12,
  TABLE_DUMP: 0x13,
  CONNECT_OUT: 0x14,
  REGISTER_SLAVE: 0x15,
  STMT_PREPARE: 0x16,
  STMT_EXECUTE: 0x17,
  STMT_SEND_LONG_DATA: 0x18,
  STMT_CLOSE: 0x19,
  STMT_RESET: 0x1a,
  SET_OPTION: 0x1b,
  STMT_FETCH: 0x1c,
  DAEMON: 0x1d,
  BINLOG_DUMP_GTID: 0x1e,
  RESET_CONNECTION: 0x1f,
  /** MariaDB: array binding. */
  STMT_BULK_EXECUTE: 0xfa,
  /** MariaDB (removed in 10.6): several commands in one packet. */
  MULTI: 0xfe,
} as const;

/** First byte of a server response. */
export const ResponseHeader = {
  OK: 0x00,
  AUTH_MORE_DATA: 0x01,
  LOCAL_INFILE: 0xfb,
  /** EOF, an OK that ends a resultset under CLIENT_DEPRECATE_EOF, or an AuthSwitchRequest during auth. */
  EOF: 0xfe,
  ERR: 0xff,
} as const;

/** Column types (ColumnDefinition41 `type`, binary protocol parameter types). */
export const ColumnType = {
  DECIMAL: 0x00,
  TINY: 0x01,
  SHORT: 0x02,
  LONG: 0x03,
  FLOAT: 0x04,
  DOUBLE: 0x05,
  NULL: 0x06,
  TIMESTAMP: 0x07,
  LONGLONG: 0x08,
  INT24: 0x09,
  DATE: 0x0a,
  TIME: 0x0b,
  DATETIME: 0x0c,
  YEAR: 0x0d,
  NEWDATE: 0x0e,
  VARCHAR: 0x0f,
  BIT: 0x10,
  TIMESTAMP2: 0x11,
  DATETIME2: 0x12,
  TIME2: 0x13,
  JSON: 0xf5,
  NEWDECIMAL: 0xf6,
  ENUM: 0xf7,
  SET: 0xf8,
  TINY_BLOB: 0xf9,
  MEDIUM_BLOB: 0xfa,
  LONG_BLOB: 0xfb,
  BLOB: 0xfc,
  VAR_STRING: 0xfd,
  STRING: 0xfe,
  GEOMETRY: 0xff,
} as const;

/** Column flags (ColumnDefinition41 `flags`). */
export const ColumnFlag = {
  NOT_NULL: 0x1,
  PRI_KEY: 0x2,
  UNIQUE_KEY: 0x4,
  MULTIPLE_KEY: 0x8,
  BLOB: 0x10,
  UNSIGNED: 0x20,
  ZEROFILL: 0x40,
  BINARY: 0x80,
  ENUM: 0x100,
  AUTO_INCREMENT: 0x200,
  TIMESTAMP: 0x400,
  SET: 0x800,
  NO_DEFAULT_VALUE: 0x1000,
  ON_UPDATE_NOW: 0x2000,
  NUM: 0x8000,
} as const;

/** Collation ids the gateway uses. */
export const Collation = {
  UTF8_GENERAL_CI: 33,
  UTF8MB4_GENERAL_CI: 45,
  BINARY: 63,
} as const;

/** COM_STMT_EXECUTE flags (cursor types). */
export const CursorType = {
  NO_CURSOR: 0x00,
  READ_ONLY: 0x01,
  FOR_UPDATE: 0x02,
  SCROLLABLE: 0x04,
} as const;
