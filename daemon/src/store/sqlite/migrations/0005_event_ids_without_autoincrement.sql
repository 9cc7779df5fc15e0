-- event ids without AUTOINCREMENT
-- AUTOINCREMENT made every event insert read and rewrite the table's row in
-- sqlite_sequence, and added that page to every commit: about a tenth of
-- single-event ingest (PERFORMANCE.md). Ids are now the largest plus one.
-- They only name events; clients page and resume by each run's sequence,
-- and a run's new events still get ids above all of its earlier ones.
-- The table's pages do not change, so only its stored CREATE TABLE
-- statement is edited, as SQLite documents for changes that leave the
-- stored content alone (lang_altertable.html, section 7); the migration's
-- code then bumps the schema version and turns writable_schema off.
DELETE FROM sqlite_sequence WHERE name = 'events';
PRAGMA writable_schema = ON;
UPDATE sqlite_schema
   SET sql = replace(sql, 'INTEGER PRIMARY KEY AUTOINCREMENT', 'INTEGER PRIMARY KEY')
 WHERE type = 'table' AND name = 'events';
