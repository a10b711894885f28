import type { Queryable } from '../database.js';
import type { Cursor, EventInput } from './schemas.js';

/** A row of `events`, deleted ones included (deleted_at set). */
export interface EventRecord {
  id: string;
  name: string;
  description: string | null;
  start_date: Date;
  end_date: Date | null;
  url: string | null;
  location_name: string | null;
  location_address: string | null;
  organizer_name: string | null;
  organizer_url: string | null;
  created_at: Date;
  updated_at: Date;
  deleted_at: Date | null;
}

export interface EventFilter {
  /** Events still going on or after this instant (their end, or start when they have none). */
  from?: Date;
  /** Events starting on or before this instant. */
  to?: Date;
  /** Text contained in the name or description, case-insensitive. */
  text?: string;
}

export interface EventPage {
  items: EventRecord[];
  /** Where the next page starts; undefined on the last page. */
  next: Cursor | undefined;
}

export type RemoveResult = 'deleted' | 'already_deleted' | 'missing';

export interface EventRepository {
  create(input: EventInput): Promise<EventRecord>;
  list(filter: EventFilter, limit: number, after?: Cursor): Promise<EventPage>;
  /** The event, deleted or not; undefined when it never existed. */
  find(id: string): Promise<EventRecord | undefined>;
  remove(id: string): Promise<RemoveResult>;
}

const COLUMNS = `id::text AS id, name, description, start_date, end_date, url,
  location_name, location_address, organizer_name, organizer_url,
  created_at, updated_at, deleted_at`;

/** ILIKE pattern for "contains": the user's % and _ are literal. */
function containsPattern(text: string): string {
  return `%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

export function createEventRepository(db: Queryable): EventRepository {
  return {
    async create(input) {
      const result = await db.query<EventRecord>(
        `INSERT INTO events (name, description, start_date, end_date, url,
           location_name, location_address, organizer_name, organizer_url)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         RETURNING ${COLUMNS}`,
        [
          input.name,
          input.description ?? null,
          input.startDate.toISOString(),
          input.endDate?.toISOString() ?? null,
          input.url ?? null,
          input.location?.name ?? null,
          input.location?.address ?? null,
          input.organizer?.name ?? null,
          input.organizer?.url ?? null,
        ],
      );
      return result.rows[0]!;
    },

    async list(filter, limit, after) {
      const where = ['deleted_at IS NULL'];
      const params: unknown[] = [];
      const param = (value: unknown) => {
        params.push(value);
        return `$${params.length}`;
      };
      if (filter.from) {
        where.push(`COALESCE(end_date, start_date) >= ${param(filter.from.toISOString())}`);
      }
      if (filter.to) where.push(`start_date <= ${param(filter.to.toISOString())}`);
      if (filter.text) {
        const pattern = param(containsPattern(filter.text));
        where.push(`(name ILIKE ${pattern} OR description ILIKE ${pattern})`);
      }
      if (after) {
        where.push(
          `(start_date, id) > (${param(after.startDate.toISOString())}::timestamptz, ${param(after.id)}::uuid)`,
        );
      }
      // One row more than asked tells whether another page follows.
      const result = await db.query<EventRecord>(
        `SELECT ${COLUMNS} FROM events WHERE ${where.join(' AND ')}
         ORDER BY start_date, id LIMIT ${param(limit + 1)}`,
        params,
      );
      const items = result.rows.slice(0, limit);
      const last = items[items.length - 1];
      const next =
        result.rows.length > limit && last
          ? { startDate: last.start_date, id: last.id }
          : undefined;
      return { items, next };
    },

    async find(id) {
      const result = await db.query<EventRecord>(`SELECT ${COLUMNS} FROM events WHERE id = $1`, [
        id,
      ]);
      return result.rows[0];
    },

    async remove(id) {
      const result = await db.query(
        `UPDATE events SET deleted_at = now(), updated_at = now()
         WHERE id = $1 AND deleted_at IS NULL RETURNING id`,
        [id],
      );
      if (result.rowCount > 0) return 'deleted';
      return (await this.find(id)) ? 'already_deleted' : 'missing';
    },
  };
}
