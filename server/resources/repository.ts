import type { Cursor, Paging } from './pagination.js';
import { containsPattern } from './pagination.js';
import {
  Conditions,
  type ColumnValues,
  type Page,
  type RemoveResult,
  type ReplaceResult,
  type SoftDeleteTable,
  type StoredRow,
} from './table.js';

/** A body that names things that do not exist (a place id nobody created). */
export class InvalidReference extends Error {
  override name = 'InvalidReference';
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

export interface ResourceRepository<R extends StoredRow, Input, Query extends Paging> {
  /** May throw InvalidReference. */
  create(input: Input): Promise<R>;
  /** May throw InvalidReference. */
  replace(id: string, input: Input): Promise<ReplaceResult<R>>;
  list(query: Query, limit: number): Promise<Page<R>>;
  /** The item, deleted or not; undefined when it never existed. */
  find(id: string): Promise<R | undefined>;
  remove(id: string): Promise<RemoveResult>;
}

export interface TableRepositoryOptions<Input, Query> {
  /** The columns a body writes; every column it does not give is cleared (PUT replaces). */
  columns: (input: Input) => ColumnValues | Promise<ColumnValues>;
  /** Adds the list's filters (beyond paging) to `where`. */
  filter: (query: Query, where: Conditions) => void;
}

/** A resource stored in one soft-deleted table. */
export function tableRepository<R extends StoredRow, Input, Query extends Paging>(
  table: SoftDeleteTable<R>,
  options: TableRepositoryOptions<Input, Query>,
): ResourceRepository<R, Input, Query> {
  return {
    create: async (input) => table.insert(await options.columns(input)),
    replace: async (id, input) => table.update(id, await options.columns(input)),
    find: (id) => table.find(id),
    remove: (id) => table.remove(id),
    list(query, limit) {
      const where = new Conditions();
      options.filter(query, where);
      const cursor: Cursor | undefined = query.cursor;
      return table.list(where, limit, cursor);
    },
  };
}

/** The `q` filter: the text in any of `columns`, case-insensitive, % and _ literal. */
export function textFilter(columns: readonly string[]) {
  return <Q extends { q?: string | undefined }>(query: Q, where: Conditions): void => {
    if (!query.q) return;
    const pattern = where.param(containsPattern(query.q));
    where.add(`(${columns.map((c) => `${c} ILIKE ${pattern}`).join(' OR ')})`);
  };
}
