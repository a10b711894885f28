import type { ResourceDefinition } from '../resources/routes.js';
import {
  EVENT_TOMBSTONE_EXTRA,
  eventJsonLdSchema,
  eventToJsonLd,
  eventTombstoneSchema,
} from './json-ld.js';
import type { EventRecord } from './repository.js';
import {
  eventInputSchema,
  eventListQuerySchema,
  type EventInput,
  type EventListQuery,
} from './schemas.js';

export const EVENTS_PATH = '/api/v1/events';

/** /api/v1/events: schema.org Events. */
export const eventResource: ResourceDefinition<EventRecord, EventInput, EventListQuery> = {
  type: 'Event',
  noun: 'event',
  path: EVENTS_PATH,
  tag: 'Events',
  input: eventInputSchema,
  query: eventListQuerySchema,
  itemSchema: eventJsonLdSchema,
  tombstoneSchema: eventTombstoneSchema,
  toJsonLd: eventToJsonLd,
  tombstoneExtra: EVENT_TOMBSTONE_EXTRA,
  // The events list answered `items` before `data`.
  legacyItemsField: true,
};
