export { ByteReader } from './byte-reader.js';
export { ByteWriter } from './byte-writer.js';
export {
  FrameBuffer,
  FrameTooLargeError,
  InvalidFrameLengthError,
  type Frame,
  type Framing,
} from './frame-buffer.js';
export { connectTcp } from './connect.js';
