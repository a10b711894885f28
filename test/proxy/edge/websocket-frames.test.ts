import type { EventEmitter } from 'node:events';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import * as ws from 'ws';
import { closeFrame, FrameBoundaryTracker } from '../../../proxy/edge/websocket-frames.js';

/** `ws` exports its frame encoder and decoder; @types/ws does not describe them. */
interface WsFraming {
  Sender: {
    frame(
      data: Buffer,
      options: { fin: boolean; mask: boolean; opcode: number; readOnly: boolean; rsv1: boolean },
    ): Buffer[];
  };
  Receiver: new (options: { isServer: boolean }) => EventEmitter & { write(chunk: Buffer): void };
}
const { Sender, Receiver } = ws as unknown as WsFraming;

interface FrameSpec {
  length: number;
  masked: boolean;
  opcode: number;
}

/** Frames as the `ws` library writes them (an independent encoder). */
function encode(spec: FrameSpec): Buffer {
  const parts = Sender.frame(Buffer.alloc(spec.length, 0x61), {
    fin: true,
    mask: spec.masked,
    opcode: spec.opcode,
    readOnly: false,
    rsv1: false,
  });
  return Buffer.concat(parts);
}

const frameSpec = fc.record({
  // Around the 7-bit, 16-bit and 64-bit length encodings.
  length: fc.oneof(
    fc.integer({ min: 0, max: 130 }),
    fc.constantFrom(125, 126, 127, 65_535, 65_536, 70_000),
  ),
  masked: fc.boolean(),
  opcode: fc.constantFrom(0x1, 0x2, 0x9, 0xa),
});

describe('FrameBoundaryTracker', () => {
  it('finds exactly the frame ends, however the stream is cut into chunks', () => {
    fc.assert(
      fc.property(
        fc.array(frameSpec, { minLength: 1, maxLength: 6 }),
        fc.array(fc.integer({ min: 1, max: 200_000 }), { maxLength: 12 }),
        (specs, cutSeeds) => {
          const frames = specs.map(encode);
          const stream = Buffer.concat(frames);
          const ends: number[] = [];
          let offset = 0;
          for (const frame of frames) ends.push((offset += frame.length));
          const cuts = [...new Set(cutSeeds.map((seed) => seed % stream.length))].sort(
            (a, b) => a - b,
          );
          const chunks: Buffer[] = [];
          let last = 0;
          for (const cut of [...cuts, stream.length]) {
            if (cut > last) chunks.push(stream.subarray(last, cut));
            last = cut;
          }

          // Stopping at every boundary finds each frame end once, in order.
          const found: number[] = [];
          const stopping = new FrameBoundaryTracker();
          let base = 0;
          for (const chunk of chunks) {
            let from = 0;
            while (from < chunk.length) {
              const stop = stopping.advance(chunk, true, from);
              if (stopping.atBoundary && stop > from) found.push(base + stop);
              from = stop;
            }
            base += chunk.length;
          }
          expect(found).toEqual(ends);

          // Reading whole chunks: at a boundary exactly when a chunk ends on a frame end.
          const reading = new FrameBoundaryTracker();
          base = 0;
          for (const chunk of chunks) {
            expect(reading.advance(chunk)).toBe(chunk.length);
            base += chunk.length;
            expect(reading.atBoundary).toBe(ends.includes(base));
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('is at a boundary before any byte', () => {
    expect(new FrameBoundaryTracker().atBoundary).toBe(true);
  });
});

describe('closeFrame', () => {
  it('is a close frame `ws` reads back with the same code and reason', async () => {
    const receiver = new Receiver({ isServer: false });
    const received = new Promise<{ code: number; reason: string }>((resolve) =>
      receiver.on('conclude', (code: number, reason: Buffer) =>
        resolve({ code, reason: reason.toString() }),
      ),
    );
    receiver.write(closeFrame(1012, 'service restart'));
    expect(await received).toEqual({ code: 1012, reason: 'service restart' });
  });
});
