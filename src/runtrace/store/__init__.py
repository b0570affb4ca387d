"""The embedded SQLite store: schema, ingest, run aggregation, queries."""
