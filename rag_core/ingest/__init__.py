"""Ingestion: detect a file's format, load it into text with provenance, and chunk it."""
