"""Human annotations: append-only store, image set, subset selection, review, Label Studio JSON.

A plain library (no web framework, no Prefect): ``annotation_ui`` and the CLI sit on top.
"""

from engine.annotations.agreement import annotator_agreement, best_match, compare, token_f1
from engine.annotations.imageset import ImageEntry, ImageSet
from engine.annotations.queries import counts, human_texts, latest_answers, latest_reviews, relabel_queue
from engine.annotations.records import Annotation, annotations_to_table
from engine.annotations.select import SelectParams, read_rounds, select_round
from engine.annotations.store import AnnotationStore, CompactResult

__all__ = [
    "Annotation",
    "AnnotationStore",
    "CompactResult",
    "ImageEntry",
    "ImageSet",
    "SelectParams",
    "annotations_to_table",
    "annotator_agreement",
    "best_match",
    "compare",
    "counts",
    "human_texts",
    "latest_answers",
    "latest_reviews",
    "read_rounds",
    "relabel_queue",
    "select_round",
    "token_f1",
]
