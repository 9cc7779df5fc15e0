-- nonces keyed by their signed timestamp
-- A replay repeats the signed timestamp as well as the nonce, so the pair
-- refuses it as surely as the nonce alone. Keyed by time, new nonces land on
-- the last pages of the B-tree instead of random ones (one random page per
-- request was a quarter of single-event ingest), and expiry is a range
-- delete. Nonces recorded before this migration stay in nonces_legacy and
-- are still checked until they expire.
ALTER TABLE nonces RENAME TO nonces_legacy;
CREATE TABLE nonces (
    timestamp INTEGER NOT NULL,
    nonce TEXT NOT NULL,
    PRIMARY KEY (timestamp, nonce)
) WITHOUT ROWID;
