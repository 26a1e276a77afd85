"""One Dask worker process per GPU, each pinned with ``CUDA_VISIBLE_DEVICES``: one model replica per GPU.

``gpu_cluster(["0", "1"])`` starts a scheduler and one single-threaded worker per device on
127.0.0.1. Each worker sees only its GPU (as ``cuda:0``), loads the labelling models once and keeps
them; Dask hands shards to whichever worker is free, so shards spread across the GPUs. Used by
``sodforge label --gpus 0,1`` through :func:`flows.build_pseudo_labels.task_runner`.
"""

from __future__ import annotations

from typing import Any


def parse_gpus(spec: str | list[str] | None) -> list[str]:
    """``"0,1"`` / ``["0", "1"]`` -> ``["0", "1"]``; ``"all"`` -> every CUDA device of this machine."""
    if spec is None or spec == "" or spec == []:
        return []
    if spec == "all":
        import torch

        count = torch.cuda.device_count()
        if count == 0:
            raise ValueError("--gpus all: no CUDA device is visible on this machine")
        return [str(i) for i in range(count)]
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    devices = [str(item).strip() for item in items if str(item).strip()]
    if len(set(devices)) != len(devices):
        raise ValueError(f"GPU list {spec!r} names a device twice")
    for device in devices:
        if not (device.isdigit() or device.startswith(("GPU-", "MIG-"))):
            raise ValueError(f"GPU {device!r}: use CUDA indices (0,1) or UUIDs (GPU-..., MIG-...)")
    return devices


def gpu_cluster(devices: list[str], **kwargs: Any):
    """A ``SpecCluster``: scheduler + one Nanny-managed worker per device (1 thread, pinned env)."""
    from distributed import Nanny, Scheduler, SpecCluster

    if not devices:
        raise ValueError("gpu_cluster needs at least one device")
    scheduler = {"cls": Scheduler, "options": {"host": "127.0.0.1", "dashboard_address": None}}
    workers = {
        f"gpu-{device}": {
            "cls": Nanny,
            "options": {
                "nthreads": 1, "host": "127.0.0.1", "dashboard_address": None,
                "env": {"CUDA_VISIBLE_DEVICES": device}, "resources": {"GPU": 1},
            },
        }
        for device in devices
    }
    return SpecCluster(workers=workers, scheduler=scheduler, **kwargs)
