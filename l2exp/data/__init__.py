"""Data: read any venue's files, map them to the canonical schema, validate, store."""
