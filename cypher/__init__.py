"""Data package: schema DDL per backend (schema/) and named queries (queries/)."""
