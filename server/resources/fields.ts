import { z } from 'zod';

/** "is required" when absent, else the hint (zod's own text names types, not rules). */
export const says = (hint: string) => ({
  error: (issue: { input?: unknown }) => (issue.input === undefined ? 'is required' : hint),
});

/** Trimmed, non-empty text of at most `max` characters. */
export const text = (max: number) =>
  z
    .string(says('must be a string'))
    .trim()
    .min(1, 'must not be empty')
    .max(max, `must be at most ${max} characters`);

/** Free text that may be empty (descriptions). */
export const longText = (max: number) =>
  z.string(says('must be a string')).max(max, `must be at most ${max} characters`);

export const httpUrl = z
  .string(says('must be an http(s) URL'))
  .max(2048, 'must be at most 2048 characters')
  .refine((v) => /^https?:\/\/[^/\s]+/i.test(v) && URL.canParse(v), 'must be an http(s) URL')
  .meta({ format: 'uri' });

export const email = z
  .string(says('must be an email address'))
  .max(320, 'must be at most 320 characters')
  .regex(/^[^\s@]+@[^\s@]+\.[^\s@]+$/, 'must be an email address')
  .meta({ format: 'email' });

export const telephone = z
  .string(says('must be a telephone number'))
  .regex(/^\+?[0-9 ()./-]{3,40}$/, 'must be a telephone number (digits, spaces, + ( ) . / -)');

/** The JSON-LD framing a body may carry; the type, when given, must be the resource's. */
export function jsonLdFraming<T extends string>(type: T) {
  return {
    '@context': z
      .enum(['https://schema.org', 'http://schema.org', 'https://schema.org/'], {
        error: 'must be "https://schema.org"',
      })
      .optional(),
    '@type': z.literal(type, { error: `must be "${type}"` }).optional(),
  };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Ids are UUIDs the database generates. */
export function isResourceId(value: string): boolean {
  return UUID.test(value);
}

/** `:id` of the item routes: any string, so a malformed one is a 404 like an unknown one. */
export const idParams = z.object({
  id: z.string().meta({ description: 'The identifier (a UUID) the server gave the item' }),
});

/** A JSON object with exactly these fields (unknown ones are named as errors). */
export function jsonObject<S extends z.ZodRawShape>(shape: S) {
  return z.strictObject(shape, { error: 'must be a JSON object' });
}

/** What every schema.org Thing of a body has: the framing, a name, a description and a URL. */
export function thingFields<T extends string>(type: T) {
  return {
    ...jsonLdFraming(type),
    name: text(500),
    description: longText(10_000).optional(),
    url: httpUrl.optional(),
  };
}
