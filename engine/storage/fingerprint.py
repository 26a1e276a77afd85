"""Stable fingerprints of (inputs, model identity, parameters)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any


def _canonical(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"__type__": type(value).__name__, **_canonical(dataclasses.asdict(value))}
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, float):
        return repr(value)
    if value is None or isinstance(value, (str, int, bool)):
        return value
    raise TypeError(f"cannot fingerprint a value of type {type(value).__name__}: {value!r}")


def fingerprint(*parts: Any, length: int = 16) -> str:
    """Hex digest of JSON-canonicalised ``parts`` (dicts sorted, dataclasses as dicts).

    >>> fingerprint({"b": 1, "a": 2}) == fingerprint({"a": 2, "b": 1})
    True
    """
    payload = json.dumps(_canonical(list(parts)), separators=(",", ":"), sort_keys=True)
    return hashlib.blake2b(payload.encode("utf-8"), digest_size=length).hexdigest()
