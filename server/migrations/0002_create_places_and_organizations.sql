-- Places and organizations of the Shared Events Library (schema.org Place and
-- Organization), soft-deleted like events so GET can answer 410 with a
-- tombstone. Additive only (RULES.md): the previous build keeps working on
-- this schema, since it never reads the new tables or columns.
CREATE TABLE places (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 500),
  description text,
  url text,
  telephone text,
  street_address text,
  address_locality text,
  address_region text,
  postal_code text,
  address_country text,
  latitude double precision CHECK (latitude BETWEEN -90 AND 90),
  longitude double precision CHECK (longitude BETWEEN -180 AND 180),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  deleted_at timestamptz,
  CONSTRAINT places_geo_complete CHECK ((latitude IS NULL) = (longitude IS NULL))
);

CREATE TABLE organizations (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 500),
  description text,
  url text,
  email text,
  telephone text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  deleted_at timestamptz
);

-- The lists' order (name, id) and their keyset pagination.
CREATE INDEX places_name_id_idx ON places (name, id) WHERE deleted_at IS NULL;
CREATE INDEX organizations_name_id_idx ON organizations (name, id) WHERE deleted_at IS NULL;

-- An event may refer to a place and an organizer by id. Nullable: events of
-- the previous build have none. The referenced rows are only ever
-- tombstoned, never removed, so the references always resolve.
ALTER TABLE events ADD COLUMN place_id uuid REFERENCES places (id);
ALTER TABLE events ADD COLUMN organizer_id uuid REFERENCES organizations (id);
CREATE INDEX events_place_id_idx ON events (place_id) WHERE place_id IS NOT NULL;
CREATE INDEX events_organizer_id_idx ON events (organizer_id) WHERE organizer_id IS NOT NULL;
