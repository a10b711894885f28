import { z } from 'zod';

const SIZE = /^(\d+(?:\.\d+)?)\s*(b|kb|mb)?$/i;
/** Binary units, as nginx's `client_max_body_size` and the `bytes` package read them. */
const UNIT_BYTES: Record<string, number> = { b: 1, kb: 1024, mb: 1024 * 1024 };

/** How a size is written, for error messages. */
export const SIZE_HINT = 'use 512kb, 10mb or plain bytes';

/** Reads `512b`, `64kb`, `10mb` (any case; 1kb = 1024 bytes) or plain bytes; undefined when unreadable. */
export function parseSize(text: string): number | undefined {
  const match = SIZE.exec(text.trim());
  if (!match) return undefined;
  const bytes = Math.floor(Number(match[1]) * UNIT_BYTES[(match[2] ?? 'b').toLowerCase()]!);
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}

/**
 * What is wrong with a size, as the rest of a sentence that starts with the
 * setting's name: `MAX_BODY_SIZE: "ten" is not a size (...)`.
 */
export function sizeProblem(text: string): string | undefined {
  return parseSize(text) === undefined ? `"${text}" is not a size (${SIZE_HINT})` : undefined;
}

/** A zod field that accepts a size string and yields bytes. */
export function sizeSchema(defaultValue: string) {
  return z
    .string()
    .default(defaultValue)
    .transform((text, ctx) => {
      const bytes = parseSize(text);
      if (bytes === undefined) {
        ctx.addIssue({ code: 'custom', message: sizeProblem(text)! });
        return z.NEVER;
      }
      return bytes;
    });
}
