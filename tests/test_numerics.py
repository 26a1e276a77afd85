"""GroundingDINO numerics override (engine/models/numerics.py) on the tiny model: the function, the
per-instance scope, the checks that refuse changed transformers internals, and the parameter path."""

from __future__ import annotations

import importlib
import math
import threading

import numpy as np
import pytest
import torch
from transformers import AutoProcessor, GroundingDinoForObjectDetection

from engine.models import numerics
from engine.models.numerics import NumericsUnavailableError, apply_numerics, idea_inverse_sigmoid
from engine.params import ModelsParams, ModelSpec

MODULE = importlib.import_module("transformers.models.grounding_dino.modeling_grounding_dino")
L3 = math.log(1e3)


@pytest.mark.parametrize(
    "x, expected",
    [
        (0.5, 0.0),
        (0.25, math.log(1 / 3)),
        (0.0, -L3),  # log(1e-3 / 1)
        (1.0, L3),
        (-0.2, -L3),  # clamped to [0, 1] first
        (1.7, L3),
        (0.9999, math.log(0.9999 / 1e-3)),  # IDEA clamps 1 - x only; logit would give log(9999)
        (1e-4, math.log(1e-3 / (1 - 1e-4))),
    ],
)
def test_idea_inverse_sigmoid_table(x, expected):
    assert idea_inverse_sigmoid(torch.tensor([x], dtype=torch.float64)).item() == pytest.approx(expected, abs=1e-12)


def test_idea_and_transformers_agree_inside_the_clamp_and_differ_outside():
    inside = torch.linspace(1e-3, 1 - 1e-3, 1001)
    assert torch.allclose(idea_inverse_sigmoid(inside), torch.special.logit(inside, eps=1e-5), atol=1e-5)
    outside = torch.tensor([1e-4, 1 - 1e-4])
    assert (idea_inverse_sigmoid(outside) - torch.special.logit(outside, eps=1e-5)).abs().min() > 2.0


@pytest.fixture(scope="module")
def tiny(tiny_models_dir):
    """Loader of tiny GroundingDINO instances whose box heads saturate reference boxes, and one input."""
    directory = tiny_models_dir / "grounding_dino"

    def load(saturate: bool = True) -> GroundingDinoForObjectDetection:
        model = GroundingDinoForObjectDetection.from_pretrained(directory).eval()
        if saturate:  # proposals start beyond 1 - 1e-3 / below 1e-3 in x / y, the decoder pulls them back
            with torch.no_grad():
                for head, bias in ((model.model.encoder_output_bbox_embed, [9.0, -9.0, 0.0, 0.0]),
                                   (model.bbox_embed[0], [-6.0, 6.0, 0.0, 0.0])):  # shared by all decoder layers
                    head.layers[-1].weight.zero_()
                    head.layers[-1].bias.copy_(torch.tensor(bias))
        return model

    image = np.random.default_rng(0).integers(0, 255, (160, 200, 3), dtype=np.uint8)
    inputs = dict(AutoProcessor.from_pretrained(directory)(images=image, text="red car. dog.", return_tensors="pt"))
    return load, inputs


def _run(model, inputs) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.inference_mode():
        out = model(**inputs)
    return out.logits, out.pred_boxes


def test_idea_numerics_equal_the_model_run_with_idea_inverse_sigmoid_everywhere(tiny, monkeypatch):
    load, inputs = tiny
    ours = _run(apply_numerics(load(), "idea"), inputs)
    plain = _run(load(), inputs)
    monkeypatch.setattr(torch.special, "logit", lambda x, eps=None: idea_inverse_sigmoid(x))  # reference: global swap
    reference = _run(load(), inputs)
    monkeypatch.undo()
    assert all(torch.equal(a, b) for a, b in zip(ours, reference, strict=True))
    assert (ours[1] - plain[1]).abs().max() > 0.1  # the saturated boxes really tell the numerics apart


def test_transformers_numerics_and_other_instances_are_untouched(tiny):
    load, inputs = tiny
    idea = apply_numerics(load(), "idea")
    plain = _run(load(), inputs)
    assert apply_numerics(load(), "transformers").sodforge_numerics == "transformers"
    _run(idea, inputs)  # the override is installed and has been active once
    assert all(torch.equal(a, b) for a, b in zip(_run(load(), inputs), plain, strict=True))
    assert torch.special.logit(torch.tensor([1e-4]), eps=1e-5).item() == pytest.approx(math.log(1e-4 / (1 - 1e-4)))


def test_scope_is_per_thread_even_while_an_idea_forward_runs(tiny):
    """A transformers-numerics model run by another thread in the middle of an IDEA forward is unaffected."""
    load, inputs = tiny
    idea, other = apply_numerics(load(), "idea"), apply_numerics(load(), "transformers")
    alone = _run(other, inputs)
    during: list = []

    def run_other_in_a_thread(module, args):
        thread = threading.Thread(target=lambda: during.append(_run(other, inputs)))
        thread.start()
        thread.join()

    hook = idea.model.decoder.register_forward_pre_hook(run_other_in_a_thread)
    try:
        _run(idea, inputs)
    finally:
        hook.remove()
    assert len(during) == 1 and all(torch.equal(a, b) for a, b in zip(during[0], alone, strict=True))


def test_changed_call_sites_are_refused_with_a_clear_error(tiny, monkeypatch):
    load, _ = tiny
    monkeypatch.setattr(MODULE, "torch", torch)  # as if never installed
    monkeypatch.setattr(numerics, "_SITES", (("GroundingDinoDecoder", 3), ("GroundingDinoForObjectDetection", 1)))
    with pytest.raises(NumericsUnavailableError, match=r"call sites changed.*numerics to 'transformers'"):
        apply_numerics(load(saturate=False), "idea")


def test_a_forward_that_bypasses_the_override_is_refused(tiny):
    load, inputs = tiny
    model = load(saturate=False)
    layers = model.config.decoder_layers
    model.config.decoder_layers = layers + 1  # the override now expects two calls more than the model makes
    apply_numerics(model, "idea")
    model.config.decoder_layers = layers
    with pytest.raises(NumericsUnavailableError, match=rf"made {2 * layers} inverse-sigmoid calls.*expected {2 * layers + 2}"):
        _run(model, inputs)


@pytest.mark.parametrize("value, message", [("fast", "must be one of"), ("idea", "already applied")])
def test_bad_or_repeated_numerics_are_refused(tiny, value, message):
    load, _ = tiny
    model = apply_numerics(load(saturate=False), "idea") if message == "already applied" else load(saturate=False)
    with pytest.raises(ValueError, match=message):
        apply_numerics(model, value)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(family="sam", source="tiny", numerics="idea"), "grounding_dino only"),
        (dict(family="grounding_dino", source="tiny", numerics="eps"), "must be 'idea' or 'transformers'"),
    ],
)
def test_model_spec_checks_numerics(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ModelSpec(**kwargs)


@pytest.mark.parametrize("value", ["idea", "transformers"])
def test_params_give_the_grounder_its_numerics(value):
    specs = ModelsParams(grounder_numerics=value).specs("tiny")
    assert specs["grounder"].numerics == value and specs["segmenter"].numerics is None
    with pytest.raises(ValueError, match="grounder_numerics"):
        ModelsParams(grounder_numerics="fast")


def test_registry_loads_and_identifies_the_chosen_numerics():
    from engine.models.registry import clear_model_cache, load_model, resolve_source
    from engine.models.runtime import resolve_runtime

    default, chosen = ModelSpec("grounding_dino", "tiny"), ModelSpec("grounding_dino", "tiny", numerics="transformers")
    assert resolve_source(default).identity.endswith(";numerics=idea")
    assert resolve_source(chosen).identity == resolve_source(default).identity.replace("=idea", "=transformers")
    assert resolve_source(ModelSpec("sam", "tiny")).numerics is None
    clear_model_cache()
    runtime = resolve_runtime("cpu", "fp32")
    assert load_model(default, runtime).model.sodforge_numerics == "idea"
    assert load_model(chosen, runtime).model.sodforge_numerics == "transformers"
    clear_model_cache()


def test_numerics_change_the_labelling_run_and_its_fingerprints():
    from engine.labeling.pipeline import labelling_run_id
    from engine.models.registry import model_identities
    from engine.params import LabelParams

    runs = {value: labelling_run_id(model_identities(ModelsParams(grounder_numerics=value).specs("tiny")), LabelParams())
            for value in ("idea", "transformers")}
    assert runs["idea"] != runs["transformers"]
