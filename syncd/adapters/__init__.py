"""Adapters: Graph, Learnster's SCIM, and the state repositories (SQLite and in memory)."""
