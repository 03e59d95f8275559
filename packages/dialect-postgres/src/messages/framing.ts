import type { Framing } from '@sluice/wire';

/**
 * Startup-phase packets have no type byte: Int32 length (counting itself) | payload.
 * https://www.postgresql.org/docs/current/protocol-message-formats.html (StartupMessage)
 */
export const startupFraming: Framing = { headerBytes: 4, frameLength: (b, o) => b.readInt32BE(o) };

/** Every other message: Byte1 type | Int32 length (counting itself, not the type) | payload. */
export const typedFraming: Framing = { headerBytes: 5, frameLength: (b, o) => 1 + b.readInt32BE(o + 1) };

export const ProtocolCode = {
  V3: 196608,
  SslRequest: 80877103,
  GssEncRequest: 80877104,
  CancelRequest: 80877102,
} as const;

/** Frontend message type bytes (client → server). */
export const Frontend = {
  Bind: 0x42, // B
  Close: 0x43, // C
  CopyData: 0x64, // d
  CopyDone: 0x63, // c
  CopyFail: 0x66, // f
  Describe: 0x44, // D
  Execute: 0x45, // E
  Flush: 0x48, // H
  FunctionCall: 0x46, // F
  Parse: 0x50, // P
  Password: 0x70, // p (also SASL responses)
  Query: 0x51, // Q
  Sync: 0x53, // S
  Terminate: 0x58, // X
} as const;

/** Backend message type bytes (server → client). */
export const Backend = {
  Authentication: 0x52, // R
  BackendKeyData: 0x4b, // K
  BindComplete: 0x32, // 2
  CloseComplete: 0x33, // 3
  CommandComplete: 0x43, // C
  CopyBothResponse: 0x57, // W
  CopyData: 0x64, // d
  CopyDone: 0x63, // c
  CopyInResponse: 0x47, // G
  CopyOutResponse: 0x48, // H
  DataRow: 0x44, // D
  EmptyQueryResponse: 0x49, // I
  ErrorResponse: 0x45, // E
  FunctionCallResponse: 0x56, // V
  NegotiateProtocolVersion: 0x76, // v
  NoData: 0x6e, // n
  NoticeResponse: 0x4e, // N
  NotificationResponse: 0x41, // A
  ParameterDescription: 0x74, // t
  ParameterStatus: 0x53, // S
  ParseComplete: 0x31, // 1
  PortalSuspended: 0x73, // s
  ReadyForQuery: 0x5a, // Z
  RowDescription: 0x54, // T
} as const;
