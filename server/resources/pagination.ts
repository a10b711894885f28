import { z } from 'zod';
import { isResourceId } from './fields.js';

export const DEFAULT_PAGE_SIZE = 20;
export const MAX_PAGE_SIZE = 100;

/**
 * Position after the last item of a page: lists are ordered by (sort key,
 * id), the key as text (an ISO date for events, a name for places).
 */
export interface Cursor {
  key: string;
  id: string;
}

export function encodeCursor(cursor: Cursor): string {
  return Buffer.from(JSON.stringify([cursor.key, cursor.id])).toString('base64url');
}

export function decodeCursor(
  text: string,
  keyIsValid: (key: string) => boolean,
): Cursor | undefined {
  try {
    const value: unknown = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
    if (!Array.isArray(value) || value.length !== 2) return undefined;
    const [key, id] = value as unknown[];
    if (typeof key !== 'string' || typeof id !== 'string' || !isResourceId(id)) return undefined;
    return keyIsValid(key) ? { key, id } : undefined;
  } catch {
    return undefined;
  }
}

const NOT_A_CURSOR = 'is not a cursor returned as next_cursor';

/**
 * The paging parameters every list takes: `limit` (1 or more; above
 * MAX_PAGE_SIZE it is clamped to it) and `cursor` (a page's next_cursor).
 */
export function pagingQuery(keyIsValid: (key: string) => boolean, maxCursorLength = 512) {
  return {
    limit: z
      .string()
      .regex(
        /^\d+$/,
        `must be a whole number from 1 (above ${MAX_PAGE_SIZE} counts as ${MAX_PAGE_SIZE})`,
      )
      .transform(Number)
      .pipe(z.number().int().min(1, 'must be at least 1'))
      .transform((n) => Math.min(n, MAX_PAGE_SIZE))
      .optional()
      .meta({
        description: `Items per page: ${DEFAULT_PAGE_SIZE} when absent; above ${MAX_PAGE_SIZE} counts as ${MAX_PAGE_SIZE}`,
      }),
    cursor: z
      .string()
      .max(maxCursorLength, NOT_A_CURSOR)
      .transform((v, ctx) => {
        const cursor = decodeCursor(v, keyIsValid);
        if (!cursor) {
          ctx.addIssue({ code: 'custom', message: NOT_A_CURSOR });
          return z.NEVER;
        }
        return cursor;
      })
      .optional()
      .meta({ description: 'The next_cursor of the page before; absent for the first page' }),
  };
}

/** What every list's query has once parsed. */
export interface Paging {
  limit?: number | undefined;
  cursor?: Cursor | undefined;
}

/** ILIKE pattern for "contains": the user's % and _ are literal. */
export function containsPattern(text: string): string {
  return `%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/** The `q` filter of the lists. */
export const textQuery = z
  .string()
  .trim()
  .min(1, 'must not be empty')
  .max(200, 'must be at most 200 characters')
  .optional();

/** The query of a list ordered by name: `q` and the paging, the cursor keyed by a name. */
export function byNameListQuery(qDescription: string) {
  return z.object({
    q: textQuery.meta({ description: qDescription }),
    // A name is up to 500 characters, so its cursor is longer than a date's.
    ...pagingQuery((key) => key.length > 0 && key.length <= 500, 4096),
  });
}
