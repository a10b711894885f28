import type { Queryable } from '../database.js';
import {
  InvalidReference,
  tableRepository,
  textFilter,
  type ResourceRepository,
} from '../resources/repository.js';
import type { ThingRow } from '../resources/json-ld.js';
import { SoftDeleteTable, type ColumnValues } from '../resources/table.js';
import type { EventInput, EventListQuery } from './schemas.js';

/** A row of `events` with what it refers to, deleted ones included (deleted_at set). */
export interface EventRecord extends ThingRow {
  start_date: Date;
  end_date: Date | null;
  location_name: string | null;
  location_address: string | null;
  organizer_name: string | null;
  organizer_url: string | null;
  /** A stored place the event refers to, and its name while that place is not deleted. */
  place_id: string | null;
  place_name: string | null;
  organizer_id: string | null;
  organization_name: string | null;
}

export type EventRepository = ResourceRepository<EventRecord, EventInput, EventListQuery>;

const TABLE = {
  table: 'events',
  columns: `t.id::text AS id, t.name, t.description, t.start_date, t.end_date, t.url,
    t.location_name, t.location_address, t.organizer_name, t.organizer_url,
    t.place_id::text AS place_id, CASE WHEN p.deleted_at IS NULL THEN p.name END AS place_name,
    t.organizer_id::text AS organizer_id,
    CASE WHEN o.deleted_at IS NULL THEN o.name END AS organization_name,
    t.created_at, t.updated_at, t.deleted_at`,
  joins: `LEFT JOIN places p ON p.id = t.place_id
    LEFT JOIN organizations o ON o.id = t.organizer_id`,
  order: {
    column: 't.start_date',
    cast: 'timestamptz',
    key: (row: EventRecord) => row.start_date.toISOString(),
  },
};

interface PlaceRow {
  name: string;
  address: string | null;
  deleted_at: Date | null;
}

interface OrganizationRow {
  name: string;
  url: string | null;
  deleted_at: Date | null;
}

/** A live row of `table` by id; InvalidReference when there is none. */
async function referenced<R extends { deleted_at: Date | null }>(
  db: Queryable,
  sql: string,
  id: string,
  field: string,
  noun: string,
): Promise<R> {
  const row = (await db.query<R>(sql, [id])).rows[0];
  if (!row) throw new InvalidReference(field, `no ${noun} with identifier ${id}`);
  if (row.deleted_at) throw new InvalidReference(field, `${noun} ${id} was deleted`);
  return row;
}

/**
 * The columns of an event. A referenced place or organizer is also copied
 * into the inline columns: the previous release, which shares the database
 * during a cutover, reads only those.
 */
async function eventColumns(db: Queryable, input: EventInput): Promise<ColumnValues> {
  let location = { name: input.location?.name ?? null, address: input.location?.address ?? null };
  let placeId: string | null = null;
  if (input.location?.identifier) {
    placeId = input.location.identifier;
    const place = await referenced<PlaceRow>(
      db,
      `SELECT name, concat_ws(', ', street_address, address_locality,
         NULLIF(concat_ws(' ', address_region, postal_code), ''), address_country) AS address, deleted_at
       FROM places WHERE id = $1`,
      placeId,
      'location.identifier',
      'place',
    );
    location = { name: place.name, address: place.address || null };
  }
  let organizer = { name: input.organizer?.name ?? null, url: input.organizer?.url ?? null };
  let organizerId: string | null = null;
  if (input.organizer?.identifier) {
    organizerId = input.organizer.identifier;
    const organization = await referenced<OrganizationRow>(
      db,
      'SELECT name, url, deleted_at FROM organizations WHERE id = $1',
      organizerId,
      'organizer.identifier',
      'organization',
    );
    organizer = { name: organization.name, url: organization.url };
  }
  return {
    name: input.name,
    description: input.description ?? null,
    start_date: input.startDate.toISOString(),
    end_date: input.endDate?.toISOString() ?? null,
    url: input.url ?? null,
    location_name: location.name,
    location_address: location.address,
    organizer_name: organizer.name,
    organizer_url: organizer.url,
    place_id: placeId,
    organizer_id: organizerId,
  };
}

export function createEventRepository(db: Queryable): EventRepository {
  const text = textFilter(['t.name', 't.description']);
  return tableRepository(new SoftDeleteTable<EventRecord>(db, TABLE), {
    columns: (input) => eventColumns(db, input),
    filter(query, where) {
      if (query.start_date) {
        where.add(
          `COALESCE(t.end_date, t.start_date) >= ${where.param(query.start_date.toISOString())}`,
        );
      }
      if (query.end_date) where.add(`t.start_date <= ${where.param(query.end_date.toISOString())}`);
      text(query, where);
    },
  });
}
