"""Datasets: the generated sample set with known masks."""

from engine.datasets.synthetic import generate_sample_set

__all__ = ["generate_sample_set"]
