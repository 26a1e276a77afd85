"""The annotation web app: FastAPI routes over ``AppState``, one static page, strict limits.

Safety: images are looked up by content id in the configured set only (no path from the request
ever reaches the file system); bodies are capped (413); hosts other than 127.0.0.1/localhost are
refused (DNS rebinding); every response carries a strict Content-Security-Policy and the page
inserts text with ``textContent`` only. Errors are JSON ``{"error": "..."}``.
"""

from __future__ import annotations

import json
import logging
from functools import lru_cache
from pathlib import Path
from typing import Literal

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.trustedhost import TrustedHostMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from annotation_ui.limits import BodyLimitMiddleware, SecurityHeadersMiddleware
from annotation_ui.state import AppState, UISettings
from engine.annotations import Annotation
from engine.annotations.labelstudio import LABEL_CONFIG, export_tasks
from engine.annotations.records import (
    MAX_COMMENT_CHARS,
    MAX_LEAD_TIME_S,
    MAX_NAME_CHARS,
    MAX_TEXT_CHARS,
    check_run_id,
)
from engine.annotations.review import display_jpeg, overlay_png

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
ID_PATTERN = r"^[0-9a-f]{32}$"
RUN_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"


class TextIn(BaseModel):
    """A text (or a skip, with ``skip: true`` and no text) for one image."""

    model_config = ConfigDict(extra="forbid")
    image_id: str = Field(pattern=ID_PATTERN)
    annotator: str = Field(min_length=1, max_length=MAX_NAME_CHARS)
    text: str = Field(default="", max_length=MAX_TEXT_CHARS)
    skip: bool = False
    lead_time_s: float = Field(default=0.0, ge=0.0, le=MAX_LEAD_TIME_S)


class ReviewIn(BaseModel):
    """A verdict on one pseudo-label of one labelling run."""

    model_config = ConfigDict(extra="forbid")
    image_id: str = Field(pattern=ID_PATTERN)
    run_id: str = Field(pattern=RUN_PATTERN)
    annotator: str = Field(min_length=1, max_length=MAX_NAME_CHARS)
    verdict: Literal["accept", "reject", "comment"]
    comment: str = Field(default="", max_length=MAX_COMMENT_CHARS)
    lead_time_s: float = Field(default=0.0, ge=0.0, le=MAX_LEAD_TIME_S)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _describe_validation(err: RequestValidationError) -> str:
    parts = []
    for item in err.errors():
        where = ".".join(str(p) for p in item.get("loc", ()) if p != "body")
        parts.append(f"{where or 'body'}: {item.get('msg', 'invalid')}")
    return "invalid request: " + "; ".join(parts)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, err: RequestValidationError) -> JSONResponse:
        return _error(422, _describe_validation(err))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, err: StarletteHTTPException) -> JSONResponse:
        return _error(err.status_code, str(err.detail))

    @app.exception_handler(KeyError)
    async def _missing(_: Request, err: KeyError) -> JSONResponse:
        return _error(404, str(err.args[0]) if err.args else "not found")

    @app.exception_handler(ValueError)
    async def _bad(_: Request, err: ValueError) -> JSONResponse:
        return _error(400, str(err))


def create_app(settings: UISettings) -> FastAPI:
    """The app for one image set and workdir (the set is scanned now)."""
    state = AppState(settings)
    app = FastAPI(title="sodforge annotation", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.ui = state
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(settings.allowed_hosts))
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    _install_error_handlers(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    _add_page_routes(app, state)
    _add_annotation_routes(app, state)
    _add_review_routes(app, state)
    return app


def _add_page_routes(app: FastAPI, state: AppState) -> None:
    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/api/config")
    def config() -> dict:
        return {
            "annotator": state.settings.annotator, "images": len(state.images), "latest_run": state.latest_run(),
            "limits": {"text": MAX_TEXT_CHARS, "comment": MAX_COMMENT_CHARS, "annotator": MAX_NAME_CHARS,
                       "body_bytes": state.settings.max_body_bytes},
        }

    @app.get("/api/stats")
    def stats() -> dict:
        return state.stats()

    @app.get("/api/export/label-studio")
    def export_label_studio(run_id: str | None = Query(default=None, pattern=RUN_PATTERN),
                            url_prefix: str = Query(default="/data/local-files/?d=", max_length=200)) -> Response:
        run_id = run_id or state.latest_run()
        labels = {}
        if run_id:
            labels = {r["image_id"]: state.reviews.label(run_id, r["image_id"]) for r in state.reviews.rows(run_id)
                      if r["image_id"] in state.images}
        tasks = export_tasks(state.images, state.store.rows(), labels, url_prefix)
        body = json.dumps(tasks, default=str, indent=1)
        headers = {"Content-Disposition": 'attachment; filename="sodforge-label-studio.json"'}
        return Response(body, media_type="application/json", headers=headers)

    @app.get("/api/export/label-config")
    def export_label_config() -> Response:
        return Response(LABEL_CONFIG, media_type="application/xml")


def _add_annotation_routes(app: FastAPI, state: AppState) -> None:
    @app.get("/api/queue")
    def queue(annotator: str = Query(min_length=1, max_length=MAX_NAME_CHARS)) -> dict:
        return state.queue(annotator)

    @app.post("/api/annotations", status_code=201)
    def submit_text(body: TextIn) -> dict:
        if not body.skip and not body.text.strip():
            raise HTTPException(400, "text is empty: describe the salient object, or skip (Ctrl+Space)")
        annotation = Annotation(
            image_id=body.image_id, kind="skip" if body.skip else "text", annotator=body.annotator,
            text=None if body.skip else body.text, lead_time_s=body.lead_time_s,
        )
        return state.submit(annotation)

    @app.get("/api/images/{image_id}")
    def image(image_id: str) -> Response:
        entry = state.images.get(image_id)
        return Response(_display_bytes(str(entry.path), entry.path.stat().st_mtime_ns), media_type="image/jpeg",
                        headers={"Cache-Control": "private, max-age=3600"})


@lru_cache(maxsize=64)
def _display_bytes(path: str, mtime_ns: int) -> bytes:
    return display_jpeg(path)


def _add_review_routes(app: FastAPI, state: AppState) -> None:
    @app.get("/api/runs")
    def runs() -> dict:
        from engine.annotations.review import list_runs

        return {"runs": [{**r, "started_at": str(r["started_at"]) if r["started_at"] else None}
                         for r in list_runs(state.workdir)]}

    @app.get("/api/review")
    def review(annotator: str = Query(min_length=1, max_length=MAX_NAME_CHARS),
               run_id: str | None = Query(default=None, pattern=RUN_PATTERN),
               limit: int = Query(default=500, ge=1, le=100_000)) -> dict:
        run_id = run_id or state.latest_run()
        if run_id is None:
            raise HTTPException(404, "no labelling run in this workdir yet: run `sodforge label` first")
        return state.review_queue(run_id, annotator, min(limit, state.settings.review_limit))

    @app.post("/api/reviews", status_code=201)
    def submit_review(body: ReviewIn) -> dict:
        annotation = Annotation(
            image_id=body.image_id, kind="review", annotator=body.annotator, verdict=body.verdict,
            comment=body.comment or None, run_id=body.run_id, lead_time_s=body.lead_time_s,
        )
        return state.submit(annotation)

    @app.get("/api/masks/{run_id}/{image_id}")
    def mask(run_id: str, image_id: str) -> Response:
        check_run_id(run_id)
        state.images.get(image_id)
        label = state.reviews.label(run_id, image_id)
        if label is None:
            raise HTTPException(404, f"run {run_id} has no label for image {image_id}")
        return Response(overlay_png(label), media_type="image/png")
