import { z } from 'zod';
import type { Queryable } from '../database.js';
import { email, jsonObject, telephone, thingFields } from '../resources/fields.js';
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

export const ORGANIZATIONS_PATH = '/api/v1/organizations';

/** The body of POST and PUT /api/v1/organizations: a schema.org Organization. */
export const organizationInputSchema = jsonObject({
  ...thingFields('Organization'),
  email: email.optional(),
  telephone: telephone.optional(),
});

export type OrganizationInput = z.output<typeof organizationInputSchema>;

export const organizationListQuerySchema = byNameListQuery(
  'Text in the name or description, case-insensitive',
);

export type OrganizationListQuery = z.output<typeof organizationListQuerySchema>;

export interface OrganizationRecord extends ThingRow {
  email: string | null;
  telephone: string | null;
}

export const organizationJsonLdSchema = z.object({
  ...thingJsonLdShape('Organization'),
  email: z.string().optional(),
  telephone: z.string().optional(),
  ...itemDatesShape,
});

export type OrganizationJsonLd = z.output<typeof organizationJsonLdSchema>;

export function organizationToJsonLd(row: OrganizationRecord, iri: string): OrganizationJsonLd {
  return {
    ...thingJsonLd('Organization', iri, row),
    ...(row.email !== null ? { email: row.email } : {}),
    ...(row.telephone !== null ? { telephone: row.telephone } : {}),
    ...itemDates(row),
  };
}

const TABLE = {
  table: 'organizations',
  columns: `t.id::text AS id, t.name, t.description, t.url, t.email, t.telephone,
    t.created_at, t.updated_at, t.deleted_at`,
  order: byName<OrganizationRecord>(),
};

function organizationColumns(input: OrganizationInput) {
  return {
    name: input.name,
    description: input.description ?? null,
    url: input.url ?? null,
    email: input.email ?? null,
    telephone: input.telephone ?? null,
  };
}

export function createOrganizationRepository(
  db: Queryable,
): ResourceRepository<OrganizationRecord, OrganizationInput, OrganizationListQuery> {
  return tableRepository(new SoftDeleteTable<OrganizationRecord>(db, TABLE), {
    columns: organizationColumns,
    filter: textFilter(['t.name', 't.description']),
  });
}

export const organizationResource: ResourceDefinition<
  OrganizationRecord,
  OrganizationInput,
  OrganizationListQuery
> = {
  type: 'Organization',
  noun: 'organization',
  path: ORGANIZATIONS_PATH,
  tag: 'Organizations',
  input: organizationInputSchema,
  query: organizationListQuerySchema,
  itemSchema: organizationJsonLdSchema,
  tombstoneSchema: tombstoneSchema('Organization'),
  toJsonLd: (row, iri) => organizationToJsonLd(row, iri),
};
