import type { Queryable } from '../database.js';
import type { Cursor } from './pagination.js';

/** What every stored resource row has: deleted ones keep their row (tombstones). */
export interface StoredRow {
  id: string;
  created_at: Date;
  updated_at: Date;
  deleted_at: Date | null;
}

export interface Page<R> {
  items: R[];
  /** Where the next page starts; undefined on the last page. */
  next: Cursor | undefined;
}

export type RemoveResult = 'deleted' | 'already_deleted' | 'missing';
export type ReplaceResult<R> = R | 'deleted' | 'missing';

/** Column values of an INSERT or UPDATE; names come from code, never from input. */
export type ColumnValues = Record<string, unknown>;

/**
 * How one soft-deleted table is read: the table is aliased `t` so that
 * `columns` and `joins` can bring in referenced rows.
 */
export interface TableSpec<R> {
  table: string;
  /** The select list, over `t` and the joins. */
  columns: string;
  /** LEFT JOINs after `FROM <table> t`. */
  joins?: string;
  /** The list order: (column, t.id), the column compared as `cast`. */
  order: { column: string; cast: string; key: (row: R) => string };
}

/** Builds a WHERE clause with numbered parameters. */
export class Conditions {
  readonly clauses: string[] = [];
  readonly params: unknown[] = [];

  param(value: unknown): string {
    this.params.push(value);
    return `$${this.params.length}`;
  }

  add(clause: string): void {
    this.clauses.push(clause);
  }

  get sql(): string {
    return this.clauses.length > 0 ? `WHERE ${this.clauses.join(' AND ')}` : '';
  }
}

/** The reads and writes every resource table shares: keyset lists, tombstoning deletes. */
export class SoftDeleteTable<R extends StoredRow> {
  constructor(
    private readonly db: Queryable,
    private readonly spec: TableSpec<R>,
  ) {}

  private get from(): string {
    return `${this.spec.table} t ${this.spec.joins ?? ''}`;
  }

  async insert(values: ColumnValues): Promise<R> {
    const names = Object.keys(values);
    const placeholders = names.map((_, i) => `$${i + 1}`);
    const result = await this.db.query<R>(
      `WITH t AS (INSERT INTO ${this.spec.table} (${names.join(', ')})
         VALUES (${placeholders.join(', ')}) RETURNING *)
       SELECT ${this.spec.columns} FROM t ${this.spec.joins ?? ''}`,
      Object.values(values),
    );
    return result.rows[0]!;
  }

  /** Replaces the columns of a live row; a deleted or unknown one is left alone. */
  async update(id: string, values: ColumnValues): Promise<ReplaceResult<R>> {
    const names = Object.keys(values);
    const assignments = names.map((name, i) => `${name} = $${i + 2}`);
    const result = await this.db.query<R>(
      `WITH t AS (UPDATE ${this.spec.table} SET ${assignments.join(', ')}, updated_at = now()
         WHERE id = $1 AND deleted_at IS NULL RETURNING *)
       SELECT ${this.spec.columns} FROM t ${this.spec.joins ?? ''}`,
      [id, ...Object.values(values)],
    );
    if (result.rows[0]) return result.rows[0];
    return (await this.find(id)) ? 'deleted' : 'missing';
  }

  /** The row, deleted or not; undefined when it never existed. */
  async find(id: string): Promise<R | undefined> {
    const result = await this.db.query<R>(
      `SELECT ${this.spec.columns} FROM ${this.from} WHERE t.id = $1`,
      [id],
    );
    return result.rows[0];
  }

  async remove(id: string): Promise<RemoveResult> {
    const result = await this.db.query(
      `UPDATE ${this.spec.table} SET deleted_at = now(), updated_at = now()
       WHERE id = $1 AND deleted_at IS NULL RETURNING id`,
      [id],
    );
    if (result.rowCount > 0) return 'deleted';
    return (await this.find(id)) ? 'already_deleted' : 'missing';
  }

  /** Live rows matching `where`, in (order column, id) order, after `cursor`. */
  async list(where: Conditions, limit: number, cursor?: Cursor): Promise<Page<R>> {
    const { column, cast, key } = this.spec.order;
    where.add('t.deleted_at IS NULL');
    if (cursor) {
      where.add(
        `(${column}, t.id) > (${where.param(cursor.key)}::${cast}, ${where.param(cursor.id)}::uuid)`,
      );
    }
    // One row more than asked tells whether another page follows.
    const result = await this.db.query<R>(
      `SELECT ${this.spec.columns} FROM ${this.from} ${where.sql}
       ORDER BY ${column}, t.id LIMIT ${where.param(limit + 1)}`,
      where.params,
    );
    const items = result.rows.slice(0, limit);
    const last = items[items.length - 1];
    const next = result.rows.length > limit && last ? { key: key(last), id: last.id } : undefined;
    return { items, next };
  }
}

/** The list order of places and organizations: by name, then id. */
export function byName<R extends { name: string }>(): TableSpec<R>['order'] {
  return { column: 't.name', cast: 'text', key: (row) => row.name };
}
