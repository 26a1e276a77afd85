"""The logger tasks write to: Prefect's run logger inside a run, a plain one when called as ``task.fn``."""

from __future__ import annotations

import logging

from prefect import get_run_logger
from prefect.exceptions import MissingContextError


def task_logger() -> logging.Logger | logging.LoggerAdapter:
    """The run logger inside a flow/task run; ``sodforge.tasks`` outside one (CLI, tests, scripts)."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("sodforge.tasks")
