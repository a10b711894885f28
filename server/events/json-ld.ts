import { z } from 'zod';
import {
  itemDates,
  itemDatesShape,
  itemIri,
  thingJsonLdShape,
  thingJsonLd,
  tombstoneSchema,
} from '../resources/json-ld.js';
import { ORGANIZATIONS_PATH } from '../organizations/organization.js';
import { PLACES_PATH } from '../places/place.js';
import type { EventRecord } from './repository.js';

/** An event as answered (the OpenAPI document's schema and the type of eventToJsonLd). */
export const eventJsonLdSchema = z.object({
  ...thingJsonLdShape('Event'),
  startDate: z.string().meta({ format: 'date-time' }),
  endDate: z.string().meta({ format: 'date-time' }).optional(),
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

/** A stored place or organization an event refers to. */
function storedReference<T extends string>(type: T, iri: string, id: string, name: string | null) {
  // The name is left out once the item is deleted: its @id answers the tombstone.
  return { '@type': type, '@id': iri, identifier: id, ...(name !== null ? { name } : {}) };
}

function location(event: EventRecord, baseUrl: string): EventJsonLd['location'] {
  if (event.place_id !== null) {
    const iri = itemIri(baseUrl, PLACES_PATH, event.place_id);
    return storedReference('Place', iri, event.place_id, event.place_name);
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
    const iri = itemIri(baseUrl, ORGANIZATIONS_PATH, event.organizer_id);
    return storedReference('Organization', iri, event.organizer_id, event.organization_name);
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
    ...thingJsonLd('Event', iri, event),
    startDate: event.start_date.toISOString(),
    ...(event.end_date ? { endDate: event.end_date.toISOString() } : {}),
    ...(place ? { location: place } : {}),
    ...(organization ? { organizer: organization } : {}),
    ...itemDates(event),
  };
}
