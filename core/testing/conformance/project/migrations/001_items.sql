-- the conformance suite's table (applied once, by the provider)
CREATE TABLE conformance_items (
    run  VARCHAR(40) NOT NULL,
    name VARCHAR(40) NOT NULL,
    n    INTEGER NOT NULL,
    PRIMARY KEY (run, name)
);
