// sodforge annotation page. Keyboard first (Label Studio keymap). All text goes in with textContent.
"use strict";

const $ = (id) => document.getElementById(id);
const GUIDE_KEY = "sodforge.guide.v1";
const NAME_KEY = "sodforge.annotator";
const S = {
  mode: "annotate", annotator: "", queue: [], index: 0, shownAt: performance.now(),
  review: { runId: null, items: [], index: 0 }, overlay: false, busy: false, progress: null,
};

async function api(method, url, body) {
  const options = { method, headers: { Accept: "application/json" } };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(url, options);
  let data = null;
  try { data = await response.json(); } catch (_) { data = null; }
  if (!response.ok) throw new Error((data && data.error) || `${response.status} ${response.statusText}`);
  return data;
}

function say(text, kind) {
  const el = $("message");
  el.textContent = text || "";
  el.className = "message" + (kind ? " " + kind : "");
}

function leadTime() { return Math.min(86400, Math.max(0, (performance.now() - S.shownAt) / 1000)); }

function setImage(imageId, overlayUrl) {
  $("empty").hidden = true;
  $("frame").hidden = false;
  $("image").src = "/api/images/" + encodeURIComponent(imageId);
  const overlay = $("overlay");
  overlay.hidden = !overlayUrl;
  if (overlayUrl) overlay.src = overlayUrl; else overlay.removeAttribute("src");
}

function showEmpty(text) {
  $("frame").hidden = true;
  const empty = $("empty");
  empty.hidden = false;
  empty.textContent = text;
}

function maskUrl(runId, imageId) {
  return "/api/masks/" + encodeURIComponent(runId) + "/" + encodeURIComponent(imageId);
}

// ---- annotate mode -------------------------------------------------------------------------
function annotateProgress() {
  const items = S.queue;
  const done = items.filter((i) => i.state === "done").length;
  const skipped = items.filter((i) => i.state === "skipped").length;
  $("progress").textContent = `${done + skipped} / ${items.length} annotated · ${done} done · ${skipped} skipped`;
}

function showItem(index) {
  if (!S.queue.length) { showEmpty("Nothing to annotate in this set."); return; }
  S.index = Math.max(0, Math.min(index, S.queue.length - 1));
  const item = S.queue[S.index];
  const wantMask = S.overlay && item.label && item.label.has_mask;
  setImage(item.image_id, wantMask ? maskUrl(item.label.run_id, item.image_id) : null);
  $("position").textContent = `Image ${S.index + 1} of ${S.queue.length}`;
  $("item-name").textContent = item.name + (item.state === "todo" ? "" : ` (${item.state})`);
  $("relabel-note").hidden = !item.relabel;
  $("pseudo-caption").textContent = item.label && item.label.caption ? item.label.caption : "–";
  const text = $("text");
  text.value = item.text || "";
  S.shownAt = performance.now();
  annotateProgress();
  if (!$("guide").open) text.focus();
}

async function loadQueue() {
  const data = await api("GET", "/api/queue?annotator=" + encodeURIComponent(S.annotator));
  S.queue = data.items;
  const firstTodo = S.queue.findIndex((i) => i.state === "todo");
  showItem(firstTodo >= 0 ? firstTodo : 0);
}

function nextTodo(from) {
  for (let k = 1; k <= S.queue.length; k++) {
    const j = (from + k) % S.queue.length;
    if (S.queue[j].state === "todo") return j;
  }
  return -1;
}

async function submit(skip) {
  if (S.busy || !S.queue.length) return;
  const item = S.queue[S.index];
  const text = $("text").value.trim();
  if (!skip && !text) { say("Type what the salient object is, or skip with Ctrl+Space.", "error"); return; }
  if (!checkName()) return;
  S.busy = true;
  try {
    await api("POST", "/api/annotations", {
      image_id: item.image_id, annotator: S.annotator, text: skip ? "" : text, skip, lead_time_s: leadTime(),
    });
    item.state = skip ? "skipped" : "done";
    item.text = skip ? null : text;
    item.relabel = false;
    say(skip ? `Skipped ${item.name}.` : `Saved "${text}" for ${item.name}.`, "ok");
    const next = nextTodo(S.index);
    if (next < 0) { annotateProgress(); showItem(S.index); say("All images in the queue are annotated. Thank you!", "ok"); }
    else showItem(next);
  } catch (err) {
    say("Not saved: " + err.message, "error");
  } finally {
    S.busy = false;
  }
}

// ---- review mode ---------------------------------------------------------------------------
function reviewProgress() {
  const reviewed = S.review.items.filter((i) => i.verdict).length;
  $("progress").textContent = `${reviewed} / ${S.review.items.length} reviewed · run ${S.review.runId || "–"}`;
}

function showReview(index) {
  const items = S.review.items;
  if (!items.length) { showEmpty("No pseudo-labels to review yet (run `sodforge label` first)."); reviewProgress(); return; }
  S.review.index = Math.max(0, Math.min(index, items.length - 1));
  const item = items[S.review.index];
  const overlay = S.overlay && item.status === "ok" ? maskUrl(S.review.runId, item.image_id) : null;
  setImage(item.image_id, overlay);
  $("review-position").textContent = `Label ${S.review.index + 1} of ${items.length} (worst quality first)`;
  $("review-name").textContent = item.name;
  $("review-quality").textContent = item.quality_score == null ? "–" : item.quality_score.toFixed(3);
  $("review-status").textContent = item.status + (item.error ? ` (${item.error})` : "");
  $("review-caption").textContent = item.caption || "–";
  $("review-phrase").textContent = item.phrase || "–";
  $("review-verdict").textContent = [item.verdict || "not reviewed", item.comment].filter(Boolean).join(" · ");
  S.shownAt = performance.now();
  reviewProgress();
  document.activeElement && document.activeElement.blur && document.activeElement.blur();
}

async function loadReview() {
  try {
    const data = await api("GET", "/api/review?annotator=" + encodeURIComponent(S.annotator));
    S.review = { runId: data.run_id, items: data.items, index: 0 };
    const first = S.review.items.findIndex((i) => !i.verdict);
    showReview(first >= 0 ? first : 0);
  } catch (err) {
    S.review = { runId: null, items: [], index: 0 };
    showReview(0);
    say(err.message, "error");
  }
}

async function verdict(kind) {
  const item = S.review.items[S.review.index];
  if (S.busy || !item || !checkName()) return;
  const comment = $("comment").value.trim();
  if (kind === "comment" && !comment) { say("Type a comment first.", "error"); return; }
  S.busy = true;
  try {
    await api("POST", "/api/reviews", {
      image_id: item.image_id, run_id: S.review.runId, annotator: S.annotator, verdict: kind, comment,
      lead_time_s: leadTime(),
    });
    if (kind !== "comment") item.verdict = kind;
    if (comment) item.comment = comment;
    $("comment").value = "";
    say(kind === "comment" ? `Comment saved for ${item.name}.` : `${kind === "accept" ? "Accepted" : "Rejected"} ${item.name}.`, "ok");
    if (kind === "comment") showReview(S.review.index);
    else showReview(Math.min(S.review.index + 1, S.review.items.length - 1));
  } catch (err) {
    say("Not saved: " + err.message, "error");
  } finally {
    S.busy = false;
  }
}

// ---- shared --------------------------------------------------------------------------------
function checkName() {
  if (!S.annotator) { say("Enter your annotator name first (top bar).", "error"); $("annotator").focus(); return false; }
  return true;
}

function setMode(mode) {
  S.mode = mode;
  $("tab-annotate").setAttribute("aria-selected", String(mode === "annotate"));
  $("tab-review").setAttribute("aria-selected", String(mode === "review"));
  $("annotate-panel").hidden = mode !== "annotate";
  $("review-panel").hidden = mode !== "review";
  history.replaceState(null, "", mode === "review" ? "#review" : "#annotate");
  say("");
  if (mode === "review") { S.overlay = true; $("show-mask").checked = true; loadReview(); }
  else loadQueue().catch((err) => say(err.message, "error"));
}

function move(delta) {
  if (S.mode === "annotate") showItem(S.index + delta);
  else showReview(S.review.index + delta);
}

function toggleOverlay() {
  S.overlay = !S.overlay;
  $("show-mask").checked = S.overlay;
  move(0);
}

function openGuide() { if (!$("guide").open) $("guide").showModal(); }
function closeGuide() {
  $("guide").close();
  localStorage.setItem(GUIDE_KEY, "seen");
  if (S.mode === "annotate") $("text").focus();
}

function onKey(e) {
  if ($("guide").open) {
    if (e.key === "Enter" || e.key === "Escape") { e.preventDefault(); closeGuide(); }
    return;
  }
  const mod = e.ctrlKey || e.metaKey;
  const active = document.activeElement;
  if (mod && e.key === "Enter") { e.preventDefault(); if (S.mode === "annotate") submit(false); return; }
  if (e.ctrlKey && (e.code === "Space" || e.key === " ")) { e.preventDefault(); if (S.mode === "annotate") submit(true); return; }
  if (mod && (e.key === "ArrowLeft" || e.key === "ArrowRight")) { e.preventDefault(); move(e.key === "ArrowLeft" ? -1 : 1); return; }
  if (mod && e.key === "/") { e.preventDefault(); openGuide(); return; }
  if (e.altKey && e.code === "KeyH") { e.preventDefault(); toggleOverlay(); return; }
  if (e.altKey && (e.code === "Digit1" || e.code === "Digit2")) { e.preventDefault(); setMode(e.code === "Digit1" ? "annotate" : "review"); return; }
  if (active === $("annotator")) { if (e.key === "Enter") { e.preventDefault(); active.blur(); } return; }
  if (S.mode !== "review") return;
  if (active === $("comment")) {
    if (e.key === "Enter") { e.preventDefault(); verdict("comment"); }
    else if (e.key === "Escape") { e.preventDefault(); active.blur(); }
    return;
  }
  if (mod || e.altKey) return;
  const key = e.key.toLowerCase();
  if (key === "a") { e.preventDefault(); verdict("accept"); }
  else if (key === "r") { e.preventDefault(); verdict("reject"); }
  else if (key === "c") { e.preventDefault(); $("comment").focus(); }
}

function setAnnotator(name) {
  S.annotator = name.trim();
  $("annotator").value = S.annotator;
  if (S.annotator) localStorage.setItem(NAME_KEY, S.annotator);
}

async function start() {
  const config = await api("GET", "/api/config");
  setAnnotator(localStorage.getItem(NAME_KEY) || config.annotator || "");
  $("annotator").addEventListener("change", () => { setAnnotator($("annotator").value); setMode(S.mode); });
  $("tab-annotate").addEventListener("click", () => setMode("annotate"));
  $("tab-review").addEventListener("click", () => setMode("review"));
  $("submit").addEventListener("click", () => submit(false));
  $("skip").addEventListener("click", () => submit(true));
  $("accept").addEventListener("click", () => verdict("accept"));
  $("reject").addEventListener("click", () => verdict("reject"));
  $("comment-button").addEventListener("click", () => $("comment").focus());
  $("show-mask").addEventListener("change", () => { S.overlay = !S.overlay; move(0); });
  $("help").addEventListener("click", openGuide);
  $("guide-close").addEventListener("click", closeGuide);
  $("guide").addEventListener("cancel", (e) => { e.preventDefault(); closeGuide(); });
  $("image").addEventListener("error", () => say("This image could not be shown.", "error"));
  window.addEventListener("keydown", onKey, true);
  if (!localStorage.getItem(GUIDE_KEY)) openGuide();
  setMode(location.hash === "#review" ? "review" : "annotate");
}

document.addEventListener("DOMContentLoaded", () => start().catch((err) => say("Could not start: " + err.message, "error")));
