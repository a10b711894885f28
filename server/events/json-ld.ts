import { z } from 'zod';
import {
  itemDates,
  itemDatesShape,
  itemIri,
  jsonLdItemShape,
  SCHEMA_ORG,
  tombstoneSchema,
} from '../resources/json-ld.js';
import { ORGANIZATIONS_PATH } from '../organizations/organization.js';
import { PLACES_PATH } from '../places/place.js';
import type { EventRecord } from './repository.js';

/** An event as answered (the OpenAPI document's schema and the type of eventToJsonLd). */
export const eventJsonLdSchema = z.object({
  ...jsonLdItemShape('Event'),
  name: z.string(),
  startDate: z.string().meta({ format: 'date-time' }),
  endDate: z.string().meta({ format: 'date-time' }).optional(),
  description: z.string().optional(),
  url: z.string().meta({ format: 'uri' }).optional(),
  location: z
    .object({
      '@type': z.literal('Place'),
      '@id': z.string().meta({ format: 'uri' }).optional(),
      identifier: z.string().meta({ format: 'uuid' }).optional(),
      name: z.string().optional(),
      address: z.string().optional(),
    })
    .optional()
    .meta({ description: 'Inline, or a stored place (@id, identifier and its name)' }),
  organizer: z
    .object({
      '@type': z.literal('Organization'),
      '@id': z.string().meta({ format: 'uri' }).optional(),
      identifier: z.string().meta({ format: 'uuid' }).optional(),
      name: z.string().optional(),
      url: z.string().meta({ format: 'uri' }).optional(),
    })
    .optional()
    .meta({ description: 'Inline, or a stored organization (@id, identifier and its name)' }),
  ...itemDatesShape,
});

export type EventJsonLd = z.output<typeof eventJsonLdSchema>;

export const EVENT_TOMBSTONE_EXTRA = { eventStatus: 'https://schema.org/EventCancelled' };

export const eventTombstoneSchema = tombstoneSchema('Event', {
  eventStatus: z.literal(EVENT_TOMBSTONE_EXTRA.eventStatus),
});

function location(event: EventRecord, baseUrl: string): EventJsonLd['location'] {
  if (event.place_id !== null) {
    return {
      '@type': 'Place',
      '@id': itemIri(baseUrl, PLACES_PATH, event.place_id),
      identifier: event.place_id,
      // Left out once the place is deleted: its @id answers the tombstone.
      ...(event.place_name !== null ? { name: event.place_name } : {}),
    };
  }
  if (event.location_name === null) return undefined;
  return {
    '@type': 'Place',
    name: event.location_name,
    ...(event.location_address !== null ? { address: event.location_address } : {}),
  };
}

function organizer(event: EventRecord, baseUrl: string): EventJsonLd['organizer'] {
  if (event.organizer_id !== null) {
    return {
      '@type': 'Organization',
      '@id': itemIri(baseUrl, ORGANIZATIONS_PATH, event.organizer_id),
      identifier: event.organizer_id,
      ...(event.organization_name !== null ? { name: event.organization_name } : {}),
    };
  }
  if (event.organizer_name === null) return undefined;
  return {
    '@type': 'Organization',
    name: event.organizer_name,
    ...(event.organizer_url !== null ? { url: event.organizer_url } : {}),
  };
}

/** A stored event as schema.org JSON-LD; absent values are left out, never null. */
export function eventToJsonLd(event: EventRecord, iri: string, baseUrl: string): EventJsonLd {
  const place = location(event, baseUrl);
  const organization = organizer(event, baseUrl);
  return {
    '@context': SCHEMA_ORG,
    '@type': 'Event',
    '@id': iri,
    identifier: event.id,
    name: event.name,
    startDate: event.start_date.toISOString(),
    ...(event.end_date ? { endDate: event.end_date.toISOString() } : {}),
    ...(event.description !== null ? { description: event.description } : {}),
    ...(event.url !== null ? { url: event.url } : {}),
    ...(place ? { location: place } : {}),
    ...(organization ? { organizer: organization } : {}),
    ...itemDates(event),
  };
}
