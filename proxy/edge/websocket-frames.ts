/**
 * Just enough of RFC 6455 framing for the proxy to close a tunnelled
 * WebSocket cleanly: where one frame ends in the byte stream (so a close
 * frame is never injected in the middle of another frame) and the bytes of a
 * server close frame. Payloads are skipped, never copied or unmasked.
 */
export class FrameBoundaryTracker {
  private readonly header = new Uint8Array(14);
  private headerLength = 0;
  /** Header bytes this frame needs: 2 until the second byte tells the rest. */
  private headerNeeded = 2;
  private payloadLeft = 0;

  /** The bytes seen so far end exactly at the end of a frame. */
  get atBoundary(): boolean {
    return this.headerLength === 0 && this.payloadLeft === 0;
  }

  /**
   * Follows the frames in `chunk` from `start`. With `stopAtBoundary`, stops
   * at the first frame end reached inside the chunk and returns its offset;
   * otherwise reads the whole chunk and returns its length.
   */
  advance(chunk: Uint8Array, stopAtBoundary = false, start = 0): number {
    let i = start;
    const length = chunk.length;
    while (i < length) {
      if (this.payloadLeft > 0) {
        const take = Math.min(this.payloadLeft, length - i);
        this.payloadLeft -= take;
        i += take;
        if (this.payloadLeft === 0 && stopAtBoundary) return i;
        continue;
      }
      this.header[this.headerLength++] = chunk[i++]!;
      if (this.headerLength === 2) this.headerNeeded = headerSize(this.header[1]!);
      if (this.headerLength === this.headerNeeded) {
        this.payloadLeft = payloadLength(this.header);
        this.headerLength = 0;
        this.headerNeeded = 2;
        if (this.payloadLeft === 0 && stopAtBoundary) return i;
      }
    }
    return i;
  }
}

function headerSize(second: number): number {
  const length7 = second & 0x7f;
  const extended = length7 === 126 ? 2 : length7 === 127 ? 8 : 0;
  const mask = second & 0x80 ? 4 : 0;
  return 2 + extended + mask;
}

function payloadLength(header: Uint8Array): number {
  const length7 = header[1]! & 0x7f;
  if (length7 < 126) return length7;
  if (length7 === 126) return (header[2]! << 8) | header[3]!;
  const high = ((header[2]! << 24) >>> 0) + (header[3]! << 16) + (header[4]! << 8) + header[5]!;
  const low = ((header[6]! << 24) >>> 0) + (header[7]! << 16) + (header[8]! << 8) + header[9]!;
  // Beyond 2^53 bytes the frame never ends in practice; saturate instead of losing precision.
  return high >= 0x200000 ? Number.MAX_SAFE_INTEGER : high * 0x100000000 + low;
}

/** An unmasked (server to client) close frame with a status code and a short ASCII reason. */
export function closeFrame(code: number, reason: string): Buffer {
  const text = Buffer.from(reason, 'utf8').subarray(0, 123);
  const frame = Buffer.alloc(4 + text.length);
  frame[0] = 0x88; // FIN + opcode 8 (close)
  frame[1] = 2 + text.length;
  frame.writeUInt16BE(code, 2);
  text.copy(frame, 4);
  return frame;
}
