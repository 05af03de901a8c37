"""Signed report intake: verify, parse and derive (ingest), batched writes (batch). Uses workflow, access, store."""
