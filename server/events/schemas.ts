import { z } from 'zod';

/** "is required" when absent, else the hint (zod's own text names types, not rules). */
const says = (hint: string) => ({
  error: (issue: { input?: unknown }) => (issue.input === undefined ? 'is required' : hint),
});

const text = (max: number) =>
  z
    .string(says('must be a string'))
    .trim()
    .min(1, 'must not be empty')
    .max(max, `must be at most ${max} characters`);

const httpUrl = z
  .string(says('must be an http(s) URL'))
  .max(2048, 'must be at most 2048 characters')
  .refine((v) => /^https?:\/\/[^/\s]+/i.test(v) && URL.canParse(v), 'must be an http(s) URL');

const DATE_TIME_HINT = 'must be an ISO 8601 date-time with a time zone, e.g. 2026-05-01T19:00:00Z';

/** Stored with millisecond precision: the same instant the cursor of a list can carry. */
const dateTime = z.iso
  .datetime({ offset: true, ...says(DATE_TIME_HINT) })
  .transform((v) => new Date(v));

/** The body of POST /api/v1/events: a schema.org Event in its simple JSON-LD form. */
export const eventInputSchema = z
  .strictObject(
    {
      '@context': z
        .enum(['https://schema.org', 'http://schema.org', 'https://schema.org/'])
        .optional(),
      '@type': z.literal('Event', { error: 'must be "Event"' }).optional(),
      name: text(500),
      startDate: dateTime,
      endDate: dateTime.optional(),
      description: z
        .string(says('must be a string'))
        .max(10_000, 'must be at most 10000 characters')
        .optional(),
      url: httpUrl.optional(),
      location: z
        .strictObject(
          { name: text(500), address: text(1000).optional() },
          { error: 'must be an object with name and optional address' },
        )
        .optional(),
      organizer: z
        .strictObject(
          { name: text(500), url: httpUrl.optional() },
          { error: 'must be an object with name and optional url' },
        )
        .optional(),
    },
    { error: 'must be a JSON object' },
  )
  .superRefine((event, ctx) => {
    if (event.endDate && event.endDate < event.startDate) {
      ctx.addIssue({ code: 'custom', path: ['endDate'], message: 'must not be before startDate' });
    }
  });

export type EventInput = z.output<typeof eventInputSchema>;

/** Position after the last item of a page: the list is ordered by (start_date, id). */
export interface Cursor {
  startDate: Date;
  id: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isEventId(value: string): boolean {
  return UUID.test(value);
}

export function encodeCursor(cursor: Cursor): string {
  return Buffer.from(JSON.stringify([cursor.startDate.toISOString(), cursor.id])).toString(
    'base64url',
  );
}

export function decodeCursor(text: string): Cursor | undefined {
  try {
    const value: unknown = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
    if (!Array.isArray(value) || value.length !== 2) return undefined;
    const [start, id] = value as unknown[];
    if (typeof start !== 'string' || typeof id !== 'string' || !isEventId(id)) return undefined;
    const startDate = new Date(start);
    if (Number.isNaN(startDate.getTime()) || startDate.toISOString() !== start) return undefined;
    return { startDate, id };
  } catch {
    return undefined;
  }
}

const DATE_ONLY = /^\d{4}-\d{2}-\d{2}$/;
const DAY_MS = 86_400_000;

/**
 * A filter bound: a date-time with time zone, or a date (UTC day). A date as
 * `end_date` means through the end of that day.
 */
function dateBound(edge: 'start' | 'end') {
  return z
    .string()
    .refine(
      (v) => DATE_ONLY.test(v) || z.iso.datetime({ offset: true }).safeParse(v).success,
      'must be a date (2026-05-01) or an ISO 8601 date-time with a time zone',
    )
    .transform((v, ctx) => {
      const date = new Date(DATE_ONLY.test(v) ? `${v}T00:00:00.000Z` : v);
      if (Number.isNaN(date.getTime())) {
        ctx.addIssue({ code: 'custom', message: 'is not a real date' });
        return z.NEVER;
      }
      return edge === 'end' && DATE_ONLY.test(v) ? new Date(date.getTime() + DAY_MS - 1) : date;
    });
}

/** Query of GET /api/v1/events. */
export const listQuerySchema = z
  .object({
    start_date: dateBound('start').optional(),
    end_date: dateBound('end').optional(),
    q: z
      .string()
      .trim()
      .min(1, 'must not be empty')
      .max(200, 'must be at most 200 characters')
      .optional(),
    limit: z
      .string()
      .regex(/^\d+$/, 'must be a whole number from 1 to 100')
      .transform(Number)
      .pipe(z.number().int().min(1, 'must be at least 1').max(100, 'must be at most 100'))
      .optional(),
    cursor: z
      .string()
      .max(512, 'is not a cursor returned as next_cursor')
      .transform((v, ctx) => {
        const cursor = decodeCursor(v);
        if (!cursor) {
          ctx.addIssue({ code: 'custom', message: 'is not a cursor returned as next_cursor' });
          return z.NEVER;
        }
        return cursor;
      })
      .optional(),
  })
  .superRefine((query, ctx) => {
    if (query.start_date && query.end_date && query.end_date < query.start_date) {
      ctx.addIssue({
        code: 'custom',
        path: ['end_date'],
        message: 'must not be before start_date',
      });
    }
  });

export type ListQuery = z.output<typeof listQuerySchema>;

export const DEFAULT_PAGE_SIZE = 20;
