"""sodforge engine: a plain library (no orchestration) for building salient-object datasets.

Subpackages are domain nouns: ``images`` (reading and identifying images), ``masks`` (binary masks
and their COCO RLE codec), ``storage`` (shards, fingerprints, atomic Parquet), ``models``
(foundation-model specs, registry and loaders), ``labeling`` (caption -> phrase -> boxes -> mask),
``catalog`` (DuckDB views over Parquet) and ``datasets`` (generated sample data).
Nothing here imports Prefect or loads a model at import time.
"""
