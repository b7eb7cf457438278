-- a row that a second application of this file would duplicate (and fail on)
INSERT INTO conformance_items (run, name, n) VALUES ('migrations', 'seed', 1);
