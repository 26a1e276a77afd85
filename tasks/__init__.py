"""Prefect tasks: thin, shard-level wrappers of engine functions that pass paths, never arrays."""
