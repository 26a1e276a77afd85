"""One human annotation (a text, a skip or a review verdict), validated at the boundary.

Every submission becomes one row of :data:`ANNOTATION_SCHEMA` (the catalog's ``annotations``
view). Texts are normalised (control characters removed, whitespace collapsed) and bounded, so a
stored text is always safe to show once it is escaped by the page.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pyarrow as pa

from engine.catalog.views import ANNOTATION_SCHEMA

KINDS = ("text", "skip", "review")
VERDICTS = ("accept", "reject", "comment")
SOURCES = ("ui", "label-studio", "simulated", "import")
MAX_TEXT_CHARS = 500
MAX_COMMENT_CHARS = 1000
MAX_NAME_CHARS = 64
MAX_LEAD_TIME_S = 24 * 3600.0
IMAGE_ID_RE = re.compile(r"^[0-9a-f]{32}$")
RUN_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_NAME_RE = re.compile(r"^[\w .@+-]+$")


def clean_text(value: str | None, what: str, max_chars: int) -> str:
    """``value`` without control characters, whitespace collapsed; ValueError if longer than ``max_chars``."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a string, got {type(value).__name__}")
    text = "".join(" " if unicodedata.category(ch)[0] == "C" else ch for ch in value)
    text = " ".join(text.split())
    if len(text) > max_chars:
        raise ValueError(f"{what} is too long ({len(text)} characters, limit {max_chars})")
    return text


def clean_annotator(name: str) -> str:
    """A validated annotator name: 1-64 letters, digits, spaces or ``. @ + - _``."""
    name = clean_text(name, "annotator name", MAX_NAME_CHARS)
    if not name or not _NAME_RE.match(name):
        raise ValueError(f"annotator name {name!r} must be 1-{MAX_NAME_CHARS} letters, digits, spaces or . @ + - _")
    return name


def check_image_id(image_id: str) -> str:
    if not isinstance(image_id, str) or not IMAGE_ID_RE.match(image_id):
        raise ValueError(f"image id {image_id!r} is not a 32-character hex content id")
    return image_id


def check_run_id(run_id: str) -> str:
    if not isinstance(run_id, str) or not RUN_ID_RE.match(run_id):
        raise ValueError(f"run id {run_id!r} must be 1-64 letters, digits, '-' or '_'")
    return run_id


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Annotation:
    """One submission. ``kind`` text needs ``text``; review needs ``verdict`` and ``run_id``.

    ``lead_time_s`` is the time the annotator spent on the image (seconds, >= 0); ``started_at``
    defaults to ``created_at - lead_time_s``.
    """

    image_id: str
    kind: str
    annotator: str
    text: str | None = None
    verdict: str | None = None
    comment: str | None = None
    run_id: str | None = None
    lead_time_s: float | None = None
    created_at: datetime = field(default_factory=utc_now)
    started_at: datetime | None = None
    source: str = "ui"
    annotation_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def __post_init__(self) -> None:
        check_image_id(self.image_id)
        set_ = object.__setattr__
        set_(self, "annotator", clean_annotator(self.annotator))
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, got {self.source!r}")
        set_(self, "text", clean_text(self.text, "text", MAX_TEXT_CHARS) or None)
        set_(self, "comment", clean_text(self.comment, "comment", MAX_COMMENT_CHARS) or None)
        if self.kind == "text" and not self.text:
            raise ValueError("a text annotation needs a non-empty text (use skip to pass on an image)")
        if self.kind != "text" and self.text:
            raise ValueError(f"a {self.kind} annotation carries no text")
        if self.kind == "review":
            if self.verdict not in VERDICTS:
                raise ValueError(f"review verdict must be one of {VERDICTS}, got {self.verdict!r}")
            check_run_id(self.run_id or "")
            if self.verdict == "comment" and not self.comment:
                raise ValueError("a comment verdict needs a non-empty comment")
        elif self.verdict is not None:
            raise ValueError(f"a {self.kind} annotation carries no verdict")
        self._check_times()

    def _check_times(self) -> None:
        lead = self.lead_time_s
        if lead is not None and not (0.0 <= float(lead) <= MAX_LEAD_TIME_S):
            raise ValueError(f"lead_time_s must be in [0, {MAX_LEAD_TIME_S:.0f}] seconds, got {lead}")
        if self.created_at.tzinfo is None:
            raise ValueError("created_at must be timezone-aware (UTC)")
        if self.started_at is None and lead is not None:
            object.__setattr__(self, "started_at", self.created_at - timedelta(seconds=float(lead)))

    def to_row(self) -> dict:
        return {name: getattr(self, name) for name in ANNOTATION_SCHEMA.names}


def annotations_to_table(annotations: list[Annotation]) -> pa.Table:
    """Arrow table with :data:`ANNOTATION_SCHEMA`, one row per annotation."""
    return pa.Table.from_pylist([a.to_row() for a in annotations], schema=ANNOTATION_SCHEMA)
