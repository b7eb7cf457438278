-- The photo catalog: one row per photo uploaded under photos/ (catalog-upload),
-- read by nightly-report and count-chunk.
CREATE TABLE photos (
    key         text PRIMARY KEY,
    size        bigint NOT NULL,
    sha256      text NOT NULL,
    uploaded_at timestamptz NOT NULL
);
