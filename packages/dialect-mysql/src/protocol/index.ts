/** The MySQL wire protocol: packet framing, message codecs, authentication and the upstream connection phase. */
export * from './packets.js';
export * from './messages.js';
export * from './auth.js';
export * from './upstream.js';
