"""GroundingDINO's inverse sigmoid: IDEA's numerics or transformers', chosen per loaded model.

IDEA's code refines boxes with ``inverse_sigmoid(x, eps=1e-3)`` (``groundingdino/util/misc.py``:
clamp ``x`` to [0, 1], then ``log(max(x, eps) / max(1 - x, eps))``) in two places: the decoder's
iterative box refinement and the detection head. transformers' port calls
``torch.special.logit(x, eps=1e-5)`` at exactly those places. The two agree while every reference
box coordinate stays inside [1e-3, 1 - 1e-3]; once one saturates (full-frame or tiny objects, common
in salient-object photos) they differ, by ~0.1 in logits on weights built to push boxes there.

``apply_numerics(model, "idea")`` makes one loaded ``GroundingDinoForObjectDetection`` instance use
IDEA's function, without forking transformers: the modeling module's ``torch`` name is replaced, once
per process, by a thin proxy whose ``special.logit`` answers with IDEA's function only while a model
marked ``idea`` runs its forward in the current thread/context (a ``ContextVar``), and is
``torch.special.logit`` otherwise. Every other model instance, and any other code, is unaffected.

It is robust to the installed transformers version by checking, not hoping: the call sites are
counted in the module's source when first applied (2 in ``GroundingDinoDecoder.forward``, 1 in
``GroundingDinoForObjectDetection.forward``), and each forward must route exactly
``2 * decoder_layers`` calls through the override. Anything else raises
:class:`NumericsUnavailableError` saying what changed and how to run anyway (``numerics:
transformers``). Checked under ``torch.compile`` too (eager and aot_eager backends: the same outputs
as without compiling). Apply it to the loaded model before compiling or wrapping it.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import threading
from dataclasses import dataclass
from typing import Any

import torch

NUMERICS = ("idea", "transformers")
DEFAULT_NUMERICS = "idea"
IDEA_EPS = 1e-3
_CALL = "torch.special.logit("
_SITES = (("GroundingDinoDecoder", 2), ("GroundingDinoForObjectDetection", 1))
_MODULE = "transformers.models.grounding_dino.modeling_grounding_dino"


class NumericsUnavailableError(RuntimeError):
    """The installed transformers no longer has the inverse-sigmoid call sites this override patches."""


def idea_inverse_sigmoid(x: torch.Tensor, eps: float = IDEA_EPS) -> torch.Tensor:
    """IDEA's ``inverse_sigmoid``: ``log(max(x, eps) / max(1 - x, eps))`` after clamping ``x`` to [0, 1].

    ``x``: any float tensor (box coordinates in [0, 1]); returns the same shape, finite for every input.
    """
    x = x.clamp(min=0, max=1)
    return torch.log(x.clamp(min=eps) / (1 - x).clamp(min=eps))


@dataclass
class _Scope:
    eps: float
    calls: int = 0


_ACTIVE: contextvars.ContextVar[_Scope | None] = contextvars.ContextVar("sodforge_gdino_numerics", default=None)


class _SpecialProxy:
    """``torch.special`` with ``logit`` answered by IDEA's function inside an active scope."""

    def __getattr__(self, name: str) -> Any:
        return getattr(torch.special, name)

    @staticmethod
    def logit(input: torch.Tensor, eps: float | None = None, **kwargs: Any) -> torch.Tensor:  # noqa: A002
        scope = _ACTIVE.get()
        if scope is None:
            return torch.special.logit(input, eps=eps, **kwargs)
        scope.calls += 1
        return idea_inverse_sigmoid(input, scope.eps)


class _TorchProxy:
    """The ``torch`` module as the GroundingDINO modeling module sees it: everything but ``special``."""

    special = _SpecialProxy()

    def __getattr__(self, name: str) -> Any:
        return getattr(torch, name)


_install_lock = threading.Lock()


def _install() -> None:
    """Route the modeling module's ``torch.special.logit`` through the proxy (once; checked first)."""
    import importlib

    import transformers

    module = importlib.import_module(_MODULE)
    with _install_lock:
        if isinstance(getattr(module, "torch", None), _TorchProxy):
            return
        try:
            found = {name: inspect.getsource(getattr(module, name).forward).count(_CALL) for name, _ in _SITES
                     if hasattr(module, name)}
        except (OSError, TypeError) as err:  # no source shipped: cannot check, so do not patch
            found = {"source unavailable": f"{type(err).__name__}: {err}"}
        expected = dict(_SITES)
        if getattr(module, "torch", None) is not torch or found != expected:
            raise NumericsUnavailableError(
                f"transformers {transformers.__version__}: GroundingDINO's inverse-sigmoid call sites changed "
                f"(expected {expected} calls of {_CALL[:-1]} in forward, found {found}); IDEA numerics cannot be "
                "applied safely. Set the grounder's numerics to 'transformers' (models.grounder_numerics in "
                "params.yaml), or install a transformers version with these call sites (checked: 5.24.0)."
            )
        module.torch = _TorchProxy()


def apply_numerics(model: Any, numerics: str | None) -> Any:
    """Make ``model`` (a ``GroundingDinoForObjectDetection``) run with ``numerics``; returns ``model``.

    ``"idea"`` (also for ``None``): IDEA's ``inverse_sigmoid`` (eps 1e-3), as the released weights were
    trained and evaluated. ``"transformers"``: the model as transformers ships it (``torch.special.logit``,
    eps 1e-5). Sets ``model.sodforge_numerics``. Apply once per instance, after moving/casting it.
    """
    numerics = numerics or DEFAULT_NUMERICS
    if numerics not in NUMERICS:
        raise ValueError(f"numerics must be one of {NUMERICS}, got {numerics!r}")
    if getattr(model, "sodforge_numerics", None) is not None:
        raise ValueError(f"numerics already applied to this model ({model.sodforge_numerics!r})")
    if numerics == "idea":
        _install()
        expected_calls = 2 * int(model.config.decoder_layers)
        model.forward = _scoped(model.forward, expected_calls)
    model.sodforge_numerics = numerics
    return model


def _scoped(forward: Any, expected_calls: int) -> Any:
    @functools.wraps(forward)
    def forward_with_idea_numerics(*args: Any, **kwargs: Any) -> Any:
        scope = _Scope(IDEA_EPS)
        token = _ACTIVE.set(scope)
        try:
            output = forward(*args, **kwargs)
        finally:
            _ACTIVE.reset(token)
        if scope.calls != expected_calls:
            import transformers

            raise NumericsUnavailableError(
                f"transformers {transformers.__version__}: a GroundingDINO forward made {scope.calls} inverse-sigmoid "
                f"calls through the IDEA-numerics override, expected {expected_calls} (2 per decoder layer); its "
                "internals changed. Set the grounder's numerics to 'transformers' to run without the override."
            )
        return output

    return forward_with_idea_numerics
