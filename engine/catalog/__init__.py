"""The DuckDB catalog over the Parquet shards (views only) and the run records."""

from engine.catalog.layout import Workdir
from engine.catalog.runs import RunRecord
from engine.catalog.summary import summarize
from engine.catalog.views import VIEW_NAMES, build_catalog, connect_readonly

__all__ = ["VIEW_NAMES", "RunRecord", "Workdir", "build_catalog", "connect_readonly", "summarize"]
