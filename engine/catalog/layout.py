"""Where a working directory keeps its shards and catalog."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Workdir:
    """``root/catalog/{images,labels,runs,annotations}/...`` Parquet files and ``root/catalog.duckdb``."""

    root: Path

    @classmethod
    def at(cls, root: str | Path) -> Workdir:
        return cls(Path(root).resolve())

    @property
    def data(self) -> Path:
        return self.root / "catalog"

    @property
    def manifest_dir(self) -> Path:
        return self.data / "images"

    @property
    def labels_root(self) -> Path:
        return self.data / "labels"

    def labels_dir(self, run_id: str) -> Path:
        """Shard folder of a label version: ``labels/run=<id>`` or, for ``refine-*`` runs, ``labels_refined/``."""
        root = self.refined_root if run_id.startswith("refine-") else self.labels_root
        return root / f"run={run_id}"

    @property
    def refined_root(self) -> Path:
        """Label versions written by refine-labels (``run=refine-<id>/``), kept apart from labelling runs."""
        return self.data / "labels_refined"

    @property
    def runs_dir(self) -> Path:
        return self.data / "runs"

    @property
    def annotations_dir(self) -> Path:
        return self.data / "annotations"

    @property
    def catalog_path(self) -> Path:
        return self.root / "catalog.duckdb"

    @property
    def reports_dir(self) -> Path:
        return self.root / "reports"
