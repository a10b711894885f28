-- Events of the Shared Events Library (schema.org Event). Deleted events keep
-- their row with deleted_at set, so GET can answer 410 with a tombstone.
CREATE TABLE events (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 500),
  description text,
  start_date timestamptz NOT NULL,
  end_date timestamptz,
  url text,
  location_name text,
  location_address text,
  organizer_name text,
  organizer_url text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  deleted_at timestamptz,
  CONSTRAINT events_end_not_before_start CHECK (end_date IS NULL OR end_date >= start_date)
);

-- The list's order (start_date, id) and its keyset pagination.
CREATE INDEX events_start_date_id_idx ON events (start_date, id) WHERE deleted_at IS NULL;
