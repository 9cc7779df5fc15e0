-- approval order: approvals made in one millisecond keep the order they were made in
-- (SQLite's rowid): the inbox lists them oldest first, history newest
-- first. Existing rows are numbered as they are stored.
ALTER TABLE approvals ADD COLUMN position BIGINT GENERATED ALWAYS AS IDENTITY;
