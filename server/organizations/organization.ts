import { z } from 'zod';
import type { Queryable } from '../database.js';
import { email, httpUrl, jsonLdFraming, longText, telephone, text } from '../resources/fields.js';
import {
  itemDates,
  itemDatesShape,
  jsonLdItemShape,
  SCHEMA_ORG,
  tombstoneSchema,
} from '../resources/json-ld.js';
import { pagingQuery, textQuery } from '../resources/pagination.js';
import { tableRepository, textFilter, type ResourceRepository } from '../resources/repository.js';
import type { ResourceDefinition } from '../resources/routes.js';
import { SoftDeleteTable, type StoredRow } from '../resources/table.js';

export const ORGANIZATIONS_PATH = '/api/v1/organizations';

/** The body of POST and PUT /api/v1/organizations: a schema.org Organization. */
export const organizationInputSchema = z.strictObject(
  {
    ...jsonLdFraming('Organization'),
    name: text(500),
    description: longText(10_000).optional(),
    url: httpUrl.optional(),
    email: email.optional(),
    telephone: telephone.optional(),
  },
  { error: 'must be a JSON object' },
);

export type OrganizationInput = z.output<typeof organizationInputSchema>;

export const organizationListQuerySchema = z.object({
  q: textQuery.meta({ description: 'Text in the name or description, case-insensitive' }),
  ...pagingQuery((key) => key.length > 0 && key.length <= 500, 4096),
});

export type OrganizationListQuery = z.output<typeof organizationListQuerySchema>;

export interface OrganizationRecord extends StoredRow {
  name: string;
  description: string | null;
  url: string | null;
  email: string | null;
  telephone: string | null;
}

export const organizationJsonLdSchema = z.object({
  ...jsonLdItemShape('Organization'),
  name: z.string(),
  description: z.string().optional(),
  url: z.string().meta({ format: 'uri' }).optional(),
  email: z.string().optional(),
  telephone: z.string().optional(),
  ...itemDatesShape,
});

export type OrganizationJsonLd = z.output<typeof organizationJsonLdSchema>;

export function organizationToJsonLd(row: OrganizationRecord, iri: string): OrganizationJsonLd {
  return {
    '@context': SCHEMA_ORG,
    '@type': 'Organization',
    '@id': iri,
    identifier: row.id,
    name: row.name,
    ...(row.description !== null ? { description: row.description } : {}),
    ...(row.url !== null ? { url: row.url } : {}),
    ...(row.email !== null ? { email: row.email } : {}),
    ...(row.telephone !== null ? { telephone: row.telephone } : {}),
    ...itemDates(row),
  };
}

const TABLE = {
  table: 'organizations',
  columns: `t.id::text AS id, t.name, t.description, t.url, t.email, t.telephone,
    t.created_at, t.updated_at, t.deleted_at`,
  order: { column: 't.name', cast: 'text', key: (row: OrganizationRecord) => row.name },
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
