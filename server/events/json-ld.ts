import type { EventRecord } from './repository.js';

export const SCHEMA_ORG = 'https://schema.org';

export function eventIri(baseUrl: string, id: string): string {
  return `${baseUrl}/api/v1/events/${id}`;
}

export interface EventJsonLd {
  '@context': typeof SCHEMA_ORG;
  '@type': 'Event';
  '@id': string;
  identifier: string;
  name: string;
  startDate: string;
  endDate?: string;
  description?: string;
  url?: string;
  location?: { '@type': 'Place'; name: string; address?: string };
  organizer?: { '@type': 'Organization'; name: string; url?: string };
  dateCreated: string;
  dateModified: string;
}

/** A stored event as schema.org JSON-LD; absent values are left out, never null. */
export function eventToJsonLd(event: EventRecord, baseUrl: string): EventJsonLd {
  return {
    '@context': SCHEMA_ORG,
    '@type': 'Event',
    '@id': eventIri(baseUrl, event.id),
    identifier: event.id,
    name: event.name,
    startDate: event.start_date.toISOString(),
    ...(event.end_date ? { endDate: event.end_date.toISOString() } : {}),
    ...(event.description !== null ? { description: event.description } : {}),
    ...(event.url !== null ? { url: event.url } : {}),
    ...(event.location_name !== null
      ? {
          location: {
            '@type': 'Place' as const,
            name: event.location_name,
            ...(event.location_address !== null ? { address: event.location_address } : {}),
          },
        }
      : {}),
    ...(event.organizer_name !== null
      ? {
          organizer: {
            '@type': 'Organization' as const,
            name: event.organizer_name,
            ...(event.organizer_url !== null ? { url: event.organizer_url } : {}),
          },
        }
      : {}),
    dateCreated: event.created_at.toISOString(),
    dateModified: event.updated_at.toISOString(),
  };
}

/**
 * What a deleted event's IRI still answers (with 410): enough for a
 * federated copy to learn that it is gone, and since when.
 */
export function eventTombstone(event: EventRecord & { deleted_at: Date }, baseUrl: string) {
  return {
    '@context': SCHEMA_ORG,
    '@type': 'Event' as const,
    '@id': eventIri(baseUrl, event.id),
    identifier: event.id,
    eventStatus: 'https://schema.org/EventCancelled',
    'sel:tombstone': true,
    'sel:deletedAt': event.deleted_at.toISOString(),
  };
}
