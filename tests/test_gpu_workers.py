"""Several GPUs on one machine: one Dask worker per GPU, pinned with CUDA_VISIBLE_DEVICES.

Checked here with CPU workers: the pinning reaches each worker process (every shard reports the
CUDA_VISIBLE_DEVICES of the process that labelled it) and the shards spread across the workers.
"""

from __future__ import annotations

import re

import pytest

from flows.gpu_cluster import parse_gpus


@pytest.mark.parametrize(
    "spec, expected",
    [
        (None, []),
        ("", []),
        ("0", ["0"]),
        ("0,1, 3", ["0", "1", "3"]),
        (["2", "5"], ["2", "5"]),
        ("GPU-8f2a,MIG-1", ["GPU-8f2a", "MIG-1"]),
        ("0,0", ValueError("names a device twice")),
        ("cuda:0", ValueError("CUDA indices")),
    ],
)
def test_parse_gpus(spec, expected):
    if isinstance(expected, Exception):
        with pytest.raises(ValueError, match=str(expected)):
            parse_gpus(spec)
    else:
        assert parse_gpus(spec) == expected


def test_all_gpus_needs_a_visible_gpu(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    with pytest.raises(ValueError, match="no CUDA device"):
        parse_gpus("all")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    assert parse_gpus("all") == ["0", "1", "2"]


@pytest.mark.slow
def test_one_pinned_worker_per_gpu_and_shards_spread(prefect_harness, sample_set, tmp_path):
    from flows.build_pseudo_labels import build_pseudo_labels, task_runner

    flow = build_pseudo_labels.with_options(task_runner=task_runner(gpus=["0", "1"]))
    summary = flow(images=str(sample_set), workdir=str(tmp_path), shard_size=2, params_file=None,
                   overrides={"models": {"device": "cpu"}})
    assert summary["images"] == 12 and summary["shards"] == 6 and summary["error"] == 0
    workers = summary["shards_per_worker"]
    pins = {re.search(r"CUDA_VISIBLE_DEVICES=(\S+)\)", worker).group(1): count for worker, count in workers.items()}
    pids = {worker.split()[1] for worker in workers}
    assert set(pins) == {"0", "1"} and len(pids) == 2  # two processes, each with its own pinned device
    assert sum(pins.values()) == 6 and min(pins.values()) >= 1  # shards spread over both
