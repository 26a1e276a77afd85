"""BLIP fine-tuning on human texts with the tiny BLIP: batches, split, loss, checkpoint, resume, flow."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from engine.annotations.simulated import simulated_texts, write_texts_jsonl
from engine.captioning.checkpoint import INFO_FILE, finetuned_source
from engine.captioning.data import CaptionCollator, CaptionExample, load_texts_jsonl, split_by_image
from engine.captioning.evaluate import evaluate_captioner
from engine.captioning.train import FinetuneParams, finetune_captioner
from engine.models.registry import load_model
from engine.models.runtime import resolve_runtime
from engine.params import ModelsParams, ModelSpec

FAST = dict(epochs=3, batch_size=4, lr=3e-3, val_fraction=0.25, max_new_tokens=4)


@pytest.fixture(scope="module")
def texts(sample_set, tmp_path_factory):
    out = tmp_path_factory.mktemp("texts") / "texts.jsonl"
    return write_texts_jsonl(simulated_texts(sample_set), out, note="SIMULATED")


@pytest.fixture(scope="module")
def trained(texts, sample_set, tiny_models_dir, tmp_path_factory):
    examples = load_texts_jsonl(texts, sample_set)[:8]
    out = tmp_path_factory.mktemp("ft") / "captioner"
    result = finetune_captioner(examples, out, FinetuneParams(**FAST), str(tiny_models_dir / "blip"))
    return examples, out, result


def test_simulated_texts_follow_the_sample_meta(sample_set):
    meta = json.loads((sample_set / "meta.json").read_text())["items"]
    rows = simulated_texts(sample_set)
    assert [r["text"] for r in rows] == [f"{m['colour']} {m['shape']}" for m in meta]
    assert {r["annotator"] for r in rows} == {"simulated"}


def test_collator_puts_bos_first_and_masks_pads(tiny_models_dir):
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(str(tiny_models_dir / "blip"))
    bos = processor.tokenizer.convert_tokens_to_ids("[DEC]")
    images = [torch.zeros(40, 50, 3, dtype=torch.uint8).numpy()] * 2
    batch = CaptionCollator(processor, bos, max_tokens=8)(list(zip(images, ["red star", "a big red star"], strict=True)))
    assert batch["pixel_values"].shape == (2, 3, 64, 64)
    assert batch["input_ids"][:, 0].tolist() == [bos, bos]
    # "[DEC] red star [SEP] pad pad" vs "[DEC] a big red star [SEP]"
    assert batch["labels"][0].tolist()[-2:] == [-100, -100] and -100 not in batch["labels"][1].tolist()
    assert processor.tokenizer.decode(batch["input_ids"][0][1:4]) == "red star [SEP]"


def _ex(group, text="dog"):
    return CaptionExample(f"/x/{group}.jpg", text, group)


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5, 0.9])
def test_split_keeps_every_image_on_one_side(fraction):
    examples = [_ex(f"g{i}", t) for i in range(10) for t in ("a", "b")]
    train, val = split_by_image(examples, fraction)
    assert not {e.group for e in train} & {e.group for e in val}
    assert len({e.group for e in val}) == min(9, max(1, round(fraction * 10))) and train


@pytest.mark.parametrize(("examples", "fraction", "message"), [([_ex("g1")], 0.2, "at least 2"), ([_ex("a"), _ex("b")], 1.0, "val_fraction")])
def test_split_errors(examples, fraction, message):
    with pytest.raises(ValueError, match=message):
        split_by_image(examples, fraction)


@pytest.mark.parametrize(
    ("line", "message"),
    [("{not json", "not JSON"), ('{"image": "nope.jpg", "text": "dog"}', "not found"), ('{"image": "x.jpg"}', "needs string")],
)
def test_texts_file_errors_name_the_line(tmp_path, line, message):
    file = tmp_path / "t.jsonl"
    file.write_text('{"_note": "comment"}\n' + line + "\n")
    with pytest.raises(ValueError, match=rf"t.jsonl:2: .*{message}"):
        load_texts_jsonl(file, tmp_path)


class FixedCaptioner:
    """Test fake: returns preset captions in order."""

    def __init__(self, captions):
        self.captions = list(captions)

    def caption(self, images, prompt, max_new_tokens, num_beams):
        out, self.captions = self.captions[: len(images)], self.captions[len(images) :]
        return out


def test_evaluation_counts_exact_and_partial_phrase_matches(sample_set):
    paths = sorted((sample_set / "images").glob("*.jpg"))[:3]
    examples = [CaptionExample(str(p), t, p.stem) for p, t in zip(paths, ["red star", "blue disk", "green square"], strict=True)]
    result = evaluate_captioner(FixedCaptioner(["a photo of a red star", "a yellow disk", "a cat"]), examples)
    assert (result["exact"], result["category"], result["n"]) == (pytest.approx(1 / 3, abs=1e-3), pytest.approx(2 / 3, abs=1e-3), 3)
    assert result["token_f1"] == pytest.approx((1 + 0.5 + 0) / 3, abs=1e-3)


def test_loss_falls_and_the_checkpoint_loads_through_the_labelling_path(trained):
    _, out, result = trained
    assert len(result.train_losses) == 3 and result.train_losses[-1] < result.train_losses[0]
    assert set(result.before) >= {"exact", "category", "token_f1", "caption_f1"} and result.after["n"] == 2
    info = json.loads((out / INFO_FILE).read_text())
    assert info["complete"] and not (out / ".trainer_state.pt").exists()
    captioner = load_model(ModelSpec("blip", str(out)), resolve_runtime("cpu", "fp32"))
    captions = captioner.caption([torch.zeros(64, 64, 3, dtype=torch.uint8).numpy()], max_new_tokens=4)
    assert len(captions) == 1 and isinstance(captions[0], str)


def test_a_finished_run_is_reused_and_a_killed_run_resumes(trained, tmp_path, tiny_models_dir):
    examples, out, result = trained
    again = finetune_captioner(examples, out, FinetuneParams(**FAST), str(tiny_models_dir / "blip"))
    assert again.reused and again.train_losses == result.train_losses

    class Killed(Exception):
        pass

    def kill_after_first(epoch, *_):
        if epoch == 1:
            raise Killed

    target = tmp_path / "captioner"
    with pytest.raises(Killed):
        finetune_captioner(examples, target, FinetuneParams(**FAST), str(tiny_models_dir / "blip"), on_epoch=kill_after_first)
    resumed = finetune_captioner(examples, target, FinetuneParams(**FAST), str(tiny_models_dir / "blip"))
    assert resumed.resumed_from_epoch == 1 and len(resumed.train_losses) == 3
    assert resumed.train_losses[0] == result.train_losses[0]


def test_labelling_uses_a_finished_fine_tune_of_its_own_captioner(trained, tmp_path, tiny_models_dir):
    _, out, _ = trained
    base = str(tiny_models_dir / "blip")
    profiles = {"mine": {"captioner": base, "grounder": "tiny", "segmenter": "tiny"}}
    params = ModelsParams(profile="mine", profiles=profiles, captioner_checkpoint=str(out))
    assert params.specs()["captioner"].source == str(out)
    assert params.specs(finetuned=False)["captioner"].source == base
    assert ModelsParams(captioner_checkpoint=str(out)).specs()["captioner"].source == "tiny"  # other base
    assert ModelsParams(captioner_checkpoint=str(tmp_path / "missing")).specs()["captioner"].source == "tiny"
    unfinished = tmp_path / "unfinished"
    shutil.copytree(out, unfinished)
    info = json.loads((unfinished / INFO_FILE).read_text())
    (unfinished / INFO_FILE).write_text(json.dumps({**info, "complete": False}))
    assert finetuned_source(unfinished, base) is None and finetuned_source(out, base) == str(out)


def test_finetune_flow_writes_metrics_and_artifacts(prefect_harness, texts, sample_set, tiny_models_dir, tmp_path):
    from flows.finetune_captioner import finetune_captioner_flow

    subset = tmp_path / "texts.jsonl"
    subset.write_text("\n".join(texts.read_text().splitlines()[:7]) + "\n")  # note line + 6 texts
    metrics = tmp_path / "reports" / "captioner_metrics.json"
    result = finetune_captioner_flow(
        images=str(sample_set), texts=str(subset), out=str(tmp_path / "captioner"), metrics_file=str(metrics),
        params_file=None, overrides={**FAST, "epochs": 2, "base": str(tiny_models_dir / "blip")},
    )
    written = json.loads(metrics.read_text())
    assert written["epochs"] == 2 and set(written["after"]) >= {"exact", "token_f1", "caption_f1"}
    assert result["out_dir"] == str(tmp_path / "captioner")
