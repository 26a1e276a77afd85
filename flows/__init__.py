"""Prefect flows: one per DAG stage, composed from shard-level tasks."""
