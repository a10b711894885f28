import { z } from 'zod';
import type { Queryable } from '../database.js';
import { jsonObject, says, telephone, text, thingFields } from '../resources/fields.js';
import {
  itemDates,
  itemDatesShape,
  thingJsonLd,
  thingJsonLdShape,
  tombstoneSchema,
  type ThingRow,
} from '../resources/json-ld.js';
import { byNameListQuery } from '../resources/pagination.js';
import { tableRepository, textFilter, type ResourceRepository } from '../resources/repository.js';
import type { ResourceDefinition } from '../resources/routes.js';
import { byName, SoftDeleteTable } from '../resources/table.js';

export const PLACES_PATH = '/api/v1/places';

const ADDRESS_FIELDS = {
  streetAddress: text(500).optional(),
  addressLocality: text(200).optional(),
  addressRegion: text(200).optional(),
  postalCode: text(40).optional(),
  addressCountry: text(100).optional(),
};

const postalAddress = z
  .strictObject(
    {
      '@type': z.literal('PostalAddress', { error: 'must be "PostalAddress"' }).optional(),
      ...ADDRESS_FIELDS,
    },
    { error: `must be a PostalAddress object (${Object.keys(ADDRESS_FIELDS).join(', ')})` },
  )
  .refine(
    (a) => Object.keys(ADDRESS_FIELDS).some((k) => a[k as keyof typeof a] !== undefined),
    `must have at least one of ${Object.keys(ADDRESS_FIELDS).join(', ')}`,
  );

const coordinate = (name: string, limit: number) =>
  z
    .number(says(`must be a number from -${limit} to ${limit}`))
    .min(-limit, `must be a number from -${limit} to ${limit}`)
    .max(limit, `must be a number from -${limit} to ${limit}`)
    .meta({ description: `${name} in decimal degrees (WGS 84)` });

const geoCoordinates = z.strictObject(
  {
    '@type': z.literal('GeoCoordinates', { error: 'must be "GeoCoordinates"' }).optional(),
    latitude: coordinate('Latitude', 90),
    longitude: coordinate('Longitude', 180),
  },
  { error: 'must be a GeoCoordinates object (latitude, longitude)' },
);

/** The body of POST and PUT /api/v1/places: a schema.org Place. */
export const placeInputSchema = jsonObject({
  ...thingFields('Place'),
  telephone: telephone.optional(),
  address: postalAddress.optional(),
  geo: geoCoordinates.optional(),
});

export type PlaceInput = z.output<typeof placeInputSchema>;

export const placeListQuerySchema = byNameListQuery(
  'Text in the name, description or locality, case-insensitive',
);

export type PlaceListQuery = z.output<typeof placeListQuerySchema>;

export interface PlaceRecord extends ThingRow {
  telephone: string | null;
  street_address: string | null;
  address_locality: string | null;
  address_region: string | null;
  postal_code: string | null;
  address_country: string | null;
  latitude: number | null;
  longitude: number | null;
}

export const placeJsonLdSchema = z.object({
  ...thingJsonLdShape('Place'),
  telephone: z.string().optional(),
  address: z
    .object({
      '@type': z.literal('PostalAddress'),
      streetAddress: z.string().optional(),
      addressLocality: z.string().optional(),
      addressRegion: z.string().optional(),
      postalCode: z.string().optional(),
      addressCountry: z.string().optional(),
    })
    .optional(),
  geo: z
    .object({ '@type': z.literal('GeoCoordinates'), latitude: z.number(), longitude: z.number() })
    .optional(),
  ...itemDatesShape,
});

export type PlaceJsonLd = z.output<typeof placeJsonLdSchema>;

export function placeToJsonLd(place: PlaceRecord, iri: string): PlaceJsonLd {
  // Absent values are left out, never null.
  const address = Object.fromEntries(
    Object.entries({
      streetAddress: place.street_address,
      addressLocality: place.address_locality,
      addressRegion: place.address_region,
      postalCode: place.postal_code,
      addressCountry: place.address_country,
    }).filter((entry): entry is [string, string] => entry[1] !== null),
  );
  return {
    ...thingJsonLd('Place', iri, place),
    ...(place.telephone !== null ? { telephone: place.telephone } : {}),
    ...(Object.keys(address).length > 0
      ? { address: { '@type': 'PostalAddress' as const, ...address } }
      : {}),
    ...(place.latitude !== null && place.longitude !== null
      ? {
          geo: {
            '@type': 'GeoCoordinates' as const,
            latitude: place.latitude,
            longitude: place.longitude,
          },
        }
      : {}),
    ...itemDates(place),
  };
}

const TABLE = {
  table: 'places',
  columns: `t.id::text AS id, t.name, t.description, t.url, t.telephone, t.street_address,
    t.address_locality, t.address_region, t.postal_code, t.address_country, t.latitude,
    t.longitude, t.created_at, t.updated_at, t.deleted_at`,
  order: byName<PlaceRecord>(),
};

function placeColumns(input: PlaceInput) {
  return {
    name: input.name,
    description: input.description ?? null,
    url: input.url ?? null,
    telephone: input.telephone ?? null,
    street_address: input.address?.streetAddress ?? null,
    address_locality: input.address?.addressLocality ?? null,
    address_region: input.address?.addressRegion ?? null,
    postal_code: input.address?.postalCode ?? null,
    address_country: input.address?.addressCountry ?? null,
    latitude: input.geo?.latitude ?? null,
    longitude: input.geo?.longitude ?? null,
  };
}

export function createPlaceRepository(
  db: Queryable,
): ResourceRepository<PlaceRecord, PlaceInput, PlaceListQuery> {
  return tableRepository(new SoftDeleteTable<PlaceRecord>(db, TABLE), {
    columns: placeColumns,
    filter: textFilter(['t.name', 't.description', 't.address_locality']),
  });
}

export const placeResource: ResourceDefinition<PlaceRecord, PlaceInput, PlaceListQuery> = {
  type: 'Place',
  noun: 'place',
  path: PLACES_PATH,
  tag: 'Places',
  input: placeInputSchema,
  query: placeListQuerySchema,
  itemSchema: placeJsonLdSchema,
  tombstoneSchema: tombstoneSchema('Place'),
  toJsonLd: (row, iri) => placeToJsonLd(row, iri),
};
