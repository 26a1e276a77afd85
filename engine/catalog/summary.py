"""A short summary of a catalog: per run, the status spread, quality and top categories."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from engine.catalog.views import connect_readonly


@dataclass
class RunSummary:
    run_id: str
    images: int
    statuses: dict[str, int]
    mean_quality: float | None
    categories: int
    top_categories: list[tuple[str, int]] = field(default_factory=list)
    error_examples: list[str] = field(default_factory=list)


def summarize(catalog_path: str | Path, top: int = 5) -> list[RunSummary]:
    """One :class:`RunSummary` per labelling run in the catalog, newest run last."""
    with connect_readonly(catalog_path) as con:
        runs = [r[0] for r in con.execute(
            "SELECT l.run_id FROM label_quality l LEFT JOIN runs r USING (run_id) "
            "GROUP BY l.run_id ORDER BY min(r.started_at) NULLS FIRST, l.run_id"
        ).fetchall()]
        summaries = []
        for run_id in runs:
            statuses = dict(con.execute(
                "SELECT status, count(*) FROM label_quality WHERE run_id = ? GROUP BY status ORDER BY status", [run_id]
            ).fetchall())
            mean_quality, categories = con.execute(
                "SELECT avg(quality_score) FILTER (WHERE status = 'ok'), count(DISTINCT category) "
                "FROM label_quality WHERE run_id = ?", [run_id]
            ).fetchone()
            top_categories = con.execute(
                "SELECT category, count(*) AS n FROM label_quality WHERE run_id = ? AND category IS NOT NULL "
                "GROUP BY category ORDER BY n DESC, category LIMIT ?", [run_id, top]
            ).fetchall()
            errors = [r[0] for r in con.execute(
                "SELECT error FROM label_quality WHERE run_id = ? AND status = 'error' ORDER BY path LIMIT 3", [run_id]
            ).fetchall()]
            summaries.append(RunSummary(
                run_id, sum(statuses.values()), statuses,
                float(mean_quality) if mean_quality is not None else None, int(categories),
                [(c, int(n)) for c, n in top_categories], errors,
            ))
        return summaries
