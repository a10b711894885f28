import { z } from 'zod';
import { httpUrl, isResourceId, jsonLdFraming, longText, says, text } from '../resources/fields.js';
import { pagingQuery, textQuery } from '../resources/pagination.js';

const DATE_TIME_HINT = 'must be an ISO 8601 date-time with a time zone, e.g. 2026-05-01T19:00:00Z';

/** Stored with millisecond precision: the same instant the cursor of a list can carry. */
const dateTime = z.iso
  .datetime({ offset: true, ...says(DATE_TIME_HINT) })
  .transform((v) => new Date(v));

/**
 * A place or an organizer: given inline (`name` and more), or by the
 * `identifier` of one stored in /api/v1/places or /api/v1/organizations.
 * One object with a rule rather than a union, so that each bad field is
 * named (a union could only say that no form fits).
 */
function placeOrReference<T extends string, S extends z.ZodRawShape>(
  type: T,
  collection: string,
  inline: S,
  shape: string,
) {
  return z
    .strictObject(
      {
        '@type': z.literal(type, { error: `must be "${type}"` }).optional(),
        identifier: z
          .string(says(`must be the identifier of a ${type} of ${collection}`))
          .refine(isResourceId, `must be the identifier of a ${type} of ${collection}`)
          .optional()
          .meta({
            format: 'uuid',
            description: `Refers to a stored ${type} (GET ${collection}); then nothing else but @type`,
          }),
        ...inline,
      },
      { error: `must be an object with ${shape}, or with identifier` },
    )
    .superRefine((value, ctx) => {
      const given = value as Record<string, unknown>;
      if (given.identifier !== undefined) {
        for (const key of Object.keys(inline)) {
          if (given[key] !== undefined) {
            ctx.addIssue({
              code: 'custom',
              path: [key],
              message: 'must not be given with identifier',
            });
          }
        }
      } else if (given.name === undefined) {
        ctx.addIssue({ code: 'custom', path: ['name'], message: 'is required' });
      }
    });
}

/** The body of POST and PUT /api/v1/events: a schema.org Event in its simple JSON-LD form. */
export const eventInputSchema = z
  .strictObject(
    {
      ...jsonLdFraming('Event'),
      name: text(500),
      startDate: dateTime,
      endDate: dateTime.optional(),
      description: longText(10_000).optional(),
      url: httpUrl.optional(),
      location: placeOrReference(
        'Place',
        '/api/v1/places',
        { name: text(500).optional(), address: text(1000).optional() },
        'name and optional address',
      ).optional(),
      organizer: placeOrReference(
        'Organization',
        '/api/v1/organizations',
        { name: text(500).optional(), url: httpUrl.optional() },
        'name and optional url',
      ).optional(),
    },
    { error: 'must be a JSON object' },
  )
  .superRefine((event, ctx) => {
    if (event.endDate && event.endDate < event.startDate) {
      ctx.addIssue({ code: 'custom', path: ['endDate'], message: 'must not be before startDate' });
    }
  });

export type EventInput = z.output<typeof eventInputSchema>;

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

/** A cursor's key: the ISO instant of the last event's start. */
function isInstant(key: string): boolean {
  const date = new Date(key);
  return !Number.isNaN(date.getTime()) && date.toISOString() === key;
}

/** Query of GET /api/v1/events. */
export const eventListQuerySchema = z
  .object({
    start_date: dateBound('start')
      .optional()
      .meta({ description: 'Events still going on at or after this instant (or date)' }),
    end_date: dateBound('end')
      .optional()
      .meta({ description: 'Events starting on or before this instant (a date: through its end)' }),
    q: textQuery.meta({ description: 'Text in the name or description, case-insensitive' }),
    ...pagingQuery(isInstant),
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

export type EventListQuery = z.output<typeof eventListQuerySchema>;
