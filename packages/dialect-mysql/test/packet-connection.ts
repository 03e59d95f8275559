import { CLIENT_DEPRECATE_EOF } from '../src/protocol/constants.js';
import { MessageReader, PacketSequence, type PacketMessage } from '../src/protocol/packets.js';
import type { MysqlUpstreamConnection } from '../src/protocol/upstream.js';

/**
 * Commands and their answers, message by message, over a connection logged in with
 * connectUpstream: the codec's own reader and sequence checks, for tests that look at packets.
 */
export class PacketConnection {
  readonly reader = new MessageReader({ maxMessageBytes: 1 << 26 });
  readonly seq = new PacketSequence();
  readonly #pending: PacketMessage[] = [];
  #wake: (() => void) | undefined;
  #closed = false;

  constructor(readonly conn: MysqlUpstreamConnection) {
    this.reader.push(conn.leftover);
    conn.socket.on('data', (d: Buffer) => {
      this.reader.push(d);
      for (let m = this.reader.next(); m; m = this.reader.next()) this.#pending.push({ ...m, payload: Buffer.from(m.payload) });
      this.#wake?.();
    });
    conn.socket.on('close', () => {
      this.#closed = true;
      this.#wake?.();
    });
    conn.socket.on('error', () => undefined);
    conn.socket.resume();
  }

  get deprecateEof(): boolean {
    return (this.conn.capabilities & CLIENT_DEPRECATE_EOF) !== 0;
  }

  command(payload: Buffer): void {
    this.seq.reset();
    this.conn.socket.write(this.seq.encode(payload));
  }

  /** The next message, its sequence ids checked. */
  async message(): Promise<PacketMessage> {
    for (;;) {
      const m = this.#pending.shift();
      if (m) {
        this.seq.received(m);
        return m;
      }
      if (this.#closed) throw new Error('connection closed');
      await new Promise<void>((r) => (this.#wake = r));
    }
  }
}
