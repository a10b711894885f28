import { z } from 'zod';
import type { StoredRow } from './table.js';

export const SCHEMA_ORG = 'https://schema.org' as const;

export const JSON_LD_CONTENT_TYPE = 'application/ld+json; charset=utf-8';

/** The IRI of an item: `<base><collection path>/<id>`. */
export function itemIri(baseUrl: string, collectionPath: string, id: string): string {
  return `${baseUrl}${collectionPath}/${id}`;
}

/** The dates every item carries. */
export function itemDates(row: StoredRow): { dateCreated: string; dateModified: string } {
  return { dateCreated: row.created_at.toISOString(), dateModified: row.updated_at.toISOString() };
}

/**
 * What a deleted item's IRI still answers (with 410): enough for a
 * federated copy to learn that it is gone, and since when.
 */
export function tombstone<T extends string>(
  type: T,
  iri: string,
  row: StoredRow & { deleted_at: Date },
  extra: Record<string, unknown> = {},
) {
  return {
    '@context': SCHEMA_ORG,
    '@type': type,
    '@id': iri,
    identifier: row.id,
    ...extra,
    'sel:tombstone': true as const,
    'sel:deletedAt': row.deleted_at.toISOString(),
  };
}

/** Documentation schemas (OpenAPI) of the JSON-LD framing of every item. */
export function jsonLdItemShape<T extends string>(type: T) {
  return {
    '@context': z.literal(SCHEMA_ORG),
    '@type': z.literal(type),
    '@id': z.string().meta({ format: 'uri', description: 'The IRI of this item' }),
    identifier: z.string().meta({ format: 'uuid' }),
  };
}

export const itemDatesShape = {
  dateCreated: z.string().meta({ format: 'date-time' }),
  dateModified: z.string().meta({ format: 'date-time' }),
};

export function tombstoneSchema<T extends string>(type: T, extra: z.ZodRawShape = {}) {
  return z
    .object({
      ...jsonLdItemShape(type),
      ...extra,
      'sel:tombstone': z.literal(true),
      'sel:deletedAt': z.string().meta({ format: 'date-time' }),
    })
    .meta({ description: `A deleted ${type}: its IRI answers 410 with this tombstone` });
}

/** Documentation schemas of the Thing properties every item answers. */
export function thingJsonLdShape<T extends string>(type: T) {
  return {
    ...jsonLdItemShape(type),
    name: z.string(),
    description: z.string().optional(),
    url: z.string().meta({ format: 'uri' }).optional(),
  };
}

/** The stored columns every item has beyond StoredRow. */
export interface ThingRow extends StoredRow {
  name: string;
  description: string | null;
  url: string | null;
}

/** The framing and Thing properties of an item as JSON-LD; absent values are left out, never null. */
export function thingJsonLd<T extends string>(type: T, iri: string, row: ThingRow) {
  return {
    '@context': SCHEMA_ORG,
    '@type': type,
    '@id': iri,
    identifier: row.id,
    name: row.name,
    ...(row.description !== null ? { description: row.description } : {}),
    ...(row.url !== null ? { url: row.url } : {}),
  };
}
