"""The annotation page in real headless Chromium (Debian's ``chromium``, driven by Playwright).

Starts ``sodforge annotate`` on a free 127.0.0.1 port, annotates two images with the keyboard,
skips one, steps back, reviews pseudo-labels (reject + comment, accept) and checks the catalog.
Needs ``/usr/bin/chromium`` (``apt-get install -y chromium``) and the ``playwright`` package.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import duckdb
import pytest
from annotation_support import RUN_ID, make_labelled_workdir

CHROMIUM = os.environ.get("SODFORGE_CHROMIUM", "/usr/bin/chromium")  # make test installs Debian's
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking"]
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_up(url: str, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sodforge annotate exited with {proc.returncode}: {proc.stdout.read()}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


@pytest.fixture
def server(sample_set, tmp_path):
    wd, rows = make_labelled_workdir(sample_set, tmp_path / "work")
    port = _free_port()
    home = tmp_path / "home"
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
           "XDG_CACHE_HOME": str(home / ".cache"), "XDG_DATA_HOME": str(home / ".local")}
    cli = Path(sys.executable).with_name("sodforge")
    proc = subprocess.Popen(
        [str(cli), "annotate", "--images", str(sample_set), "--workdir", str(wd.root), "--port", str(port),
         "--annotator", "alice", "--no-select"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )
    try:
        _wait_until_up(f"http://127.0.0.1:{port}/api/config", proc)
        yield f"http://127.0.0.1:{port}", wd, rows, env
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _text(page, selector: str) -> str:
    return page.locator(selector).inner_text()


def test_annotate_skip_review_with_the_keyboard(server):
    from playwright.sync_api import expect, sync_playwright

    url, wd, rows, env = server
    os.environ.update({k: env[k] for k in ("HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME")})
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 700})
            errors: list[str] = []
            page.on("pageerror", lambda err: errors.append(str(err)))
            page.goto(url + "/")
            guide = page.locator("#guide")
            guide.wait_for(state="visible")  # first open: the guide
            page.keyboard.press("Enter")
            guide.wait_for(state="hidden")
            expect(page.locator("#position")).to_have_text("Image 1 of 12")
            expect(page.locator("#text")).to_be_focused()

            page.keyboard.type("red <b>disk</b>")
            page.keyboard.press("Control+Enter")
            expect(page.locator("#position")).to_have_text("Image 2 of 12")
            page.keyboard.type("green square")
            page.keyboard.press("Control+Enter")
            expect(page.locator("#position")).to_have_text("Image 3 of 12")
            page.keyboard.press("Control+Space")
            expect(page.locator("#position")).to_have_text("Image 4 of 12")
            expect(page.locator("#progress")).to_have_text("3 / 12 annotated · 2 done · 1 skipped")

            page.keyboard.press("Control+ArrowLeft")
            assert "(skipped)" in _text(page, "#item-name")
            page.keyboard.press("Control+ArrowLeft")
            assert page.input_value("#text") == "green square"
            page.keyboard.press("Control+ArrowRight")
            page.keyboard.press("Control+ArrowRight")
            assert _text(page, "#position") == "Image 4 of 12"

            page.keyboard.press("Alt+2")  # review mode: worst pseudo-label first
            expect(page.locator("#review-position")).to_contain_text("Label 1 of 12")
            page.keyboard.press("r")
            expect(page.locator("#review-position")).to_contain_text("Label 2 of 12")
            page.keyboard.press("c")
            expect(page.locator("#comment")).to_be_focused()
            page.keyboard.type("mask misses the tip")
            page.keyboard.press("Enter")
            expect(page.locator("#review-verdict")).to_contain_text("mask misses the tip")
            page.keyboard.press("a")
            expect(page.locator("#review-position")).to_contain_text("Label 3 of 12")
            page.keyboard.press("Control+ArrowLeft")  # back to the accepted one, mask overlay on
            expect(page.locator("#review-verdict")).to_have_text("accept · mask misses the tip")
            expect(page.locator("#overlay")).to_be_visible()

            page.keyboard.press("Alt+1")  # the rejected image leads the text queue again
            expect(page.locator("#relabel-note")).to_be_visible()
            page.keyboard.press("Control+ArrowRight")  # first image: its markup is shown as text, never parsed
            expect(page.locator("#pseudo-caption")).to_have_text("a <b>photo</b> of object 0")
            assert page.locator("#pseudo-caption b").count() == 0
            assert page.input_value("#text") == "red <b>disk</b>"
            assert not errors, errors
        finally:
            browser.close()

    ids = [row["image_id"] for row in rows]
    with duckdb.connect(str(wd.catalog_path), read_only=True) as con:
        texts = con.execute("SELECT image_id, kind, text, annotator FROM annotations WHERE kind <> 'review' "
                            "ORDER BY created_at").fetchall()
        reviews = con.execute("SELECT review_verdict, review_comment, needs_relabel FROM label_quality "
                              f"WHERE run_id = '{RUN_ID}' AND review_verdict IS NOT NULL ORDER BY quality_score NULLS FIRST").fetchall()
        lead = con.execute("SELECT min(lead_time_s) FROM annotations WHERE kind = 'text'").fetchone()[0]
    assert texts == [(ids[0], "text", "red <b>disk</b>", "alice"), (ids[1], "text", "green square", "alice"),
                     (ids[2], "skip", None, "alice")]
    assert reviews == [("reject", None, True), ("accept", "mask misses the tip", False)]
    assert lead > 0
