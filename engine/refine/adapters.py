"""Adapter-tuning for transfer: freeze the trained model and add ``F' = T(F) + T_a(F)``.

T is the decoder's deepest branch (the C5 block); T_a is a small bottleneck (1x1 down, ReLU, 1x1
up) whose last layer starts at zero, so the adapted model starts exactly where the frozen one was.
Only T_a's parameters train. (The paper puts T_a on the deepest features in stage 1 and on a copy
of the global-context module in stage 2; our detector has no such module, so both use the C5 branch.)
"""

from __future__ import annotations

import torch
from torch import nn


class Adapter(nn.Module):
    """T_a: ``(B, C_in, H, W)`` -> ``(B, C_out, H, W)``, zero at initialisation."""

    def __init__(self, in_channels: int, out_channels: int, hidden: int = 32):
        super().__init__()
        self.down = nn.Conv2d(in_channels, hidden, 1)
        self.act = nn.ReLU(inplace=True)
        self.up = nn.Conv2d(hidden, out_channels, 1)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.act(self.down(x)))


class AdaptedBlock(nn.Module):
    """``F' = T(F) + T_a(F)`` around a frozen block T."""

    def __init__(self, block: nn.Module, adapter: Adapter):
        super().__init__()
        self.block, self.adapter = block, adapter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x) + self.adapter(x)


def _branch_channels(branch: nn.Module) -> tuple[int, int]:
    convs = [m for m in branch.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise TypeError(f"cannot find a Conv2d in {type(branch).__name__} to size the adapter")
    return convs[0].in_channels, convs[0].out_channels


def attach_adapter(model: nn.Module, hidden: int = 32) -> list[nn.Parameter]:
    """Freeze every parameter of ``model``, wrap ``model.decoder.branches[-1]`` with an adapter.

    Returns the adapter's parameters (the only ones with ``requires_grad``). Works for the SCE and
    the two-stream detector. Call :func:`adapter_train_mode` instead of ``model.train()`` so frozen
    normalisation layers keep their statistics.
    """
    branches = getattr(getattr(model, "decoder", None), "branches", None)
    if not isinstance(branches, nn.ModuleList) or len(branches) == 0:
        raise TypeError(f"{type(model).__name__} has no decoder.branches to attach an adapter to")
    if isinstance(branches[-1], AdaptedBlock):
        raise ValueError("model already has an adapter attached")
    for param in model.parameters():
        param.requires_grad_(False)
    in_channels, out_channels = _branch_channels(branches[-1])
    adapter = Adapter(in_channels, out_channels, hidden)
    first = next(model.parameters())
    adapter.to(device=first.device, dtype=first.dtype)
    branches[-1] = AdaptedBlock(branches[-1], adapter)
    return list(adapter.parameters())


def adapter_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Parameters of every adapter in ``model``."""
    return [p for m in model.modules() if isinstance(m, Adapter) for p in m.parameters()]


def adapter_train_mode(model: nn.Module) -> nn.Module:
    """Frozen parts in eval mode (BatchNorm statistics fixed), adapters in train mode."""
    model.eval()
    for module in model.modules():
        if isinstance(module, Adapter):
            module.train()
    return model
