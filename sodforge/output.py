"""Printing for the command line: our own styling, but user and exception text always literally.

Rich parses ``[...]`` as markup and ``:name:`` as emoji codes in plain strings, so an error such as
``x [/red] y`` crashes the print and ``:label:`` turns into a picture. Everything that carries text we
did not write (paths, messages of exceptions, SQL results, captions) goes through :func:`literal`
(a ``rich.text.Text``, which Rich never parses) or the helpers below.
"""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console
from rich.text import Text

console = Console()
err_console = Console(stderr=True)


def literal(value: object, style: str = "") -> Text:
    """``str(value)`` as Rich text that is shown exactly as written (no markup, no emoji codes)."""
    return Text(str(value), style=style)


def say(message: object, style: str = "", err: bool = False) -> None:
    """Print ``message`` literally (on stderr with ``err``)."""
    (err_console if err else console).print(literal(message, style), soft_wrap=True)


def say_labelled(label: str, message: object, style: str, err: bool = False) -> None:
    """Print ``label`` in ``style`` followed by ``message`` literally, e.g. ``warning: <message>``."""
    (err_console if err else console).print(Text.assemble((label, style), " ", str(message)), soft_wrap=True)


def warn(message: object) -> None:
    """``warning: <message>`` on stderr."""
    say_labelled("warning:", message, "yellow", err=True)


def fail(message: object, code: int = 2) -> NoReturn:
    """``error: <message>`` on stderr, then exit with ``code`` (2: bad input or a failed check)."""
    say_labelled("error:", message, "bold red", err=True)
    raise typer.Exit(code)
