"""How the commands show things: rich tables on stdout, ``--json`` for machines, progress on stderr.

Progress (a live status or a bar) goes to stderr and only when stderr is a terminal and
``--quiet`` was not given, so pipes, logs and ``--json`` output stay clean.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

PLAIN_WIDTH = 140
"""Columns a table may use when stdout is not a terminal (rich would assume 80)."""


def stdout() -> Console:
    """A console on the current stdout (wide when it is not a terminal, so cells do not wrap)."""
    terminal = sys.stdout.isatty()
    return Console(file=sys.stdout, width=None if terminal else PLAIN_WIDTH, highlight=False)


def _progress_console(args: argparse.Namespace) -> Console | None:
    """The stderr console progress goes to, or ``None`` when progress stays quiet."""
    if getattr(args, "quiet", False) or not sys.stderr.isatty():
        return None
    return Console(file=sys.stderr)


@contextlib.contextmanager
def working(args: argparse.Namespace, message: str) -> Iterator[Callable[[str], None]]:
    """A live status line on stderr while the block runs; yields a function that updates it."""
    console = _progress_console(args)
    if console is None:
        yield lambda _text: None
        return
    with console.status(message) as status:
        yield lambda text: status.update(text)


@contextlib.contextmanager
def progress_bar(args: argparse.Namespace, description: str, total: int) -> Iterator[Callable[[], None]]:
    """A progress bar of ``total`` steps on stderr; yields the function that advances it by one."""
    console = _progress_console(args)
    if console is None:
        yield lambda: None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda: bar.advance(task)


def print_json(value: Any) -> None:
    """``value`` as indented JSON on stdout (values JSON does not know are written as text)."""
    print(json.dumps(value, indent=2, default=str))


def flattened(value: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Nested mappings as one level of (key, value) pairs, keys joined with dots (``metrics.rmse``)."""
    for key, item in value.items():
        name = f"{prefix}{key}"
        if isinstance(item, Mapping) and item:
            yield from flattened(item, f"{name}.")
        else:
            yield name, item


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.4f}".rstrip("0").rstrip(".") if value == value else "nan"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, list | tuple):
        return ", ".join(_cell(v) for v in value) or "-"
    return "-" if value is None else str(value)


def record_table(title: str, record: Mapping[str, Any]) -> Table:
    """A two-column table of a record, nested fields flattened (``field``, ``value``)."""
    table = Table(title=title, title_justify="left", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in dict(flattened(record)).items():
        table.add_row(key, _cell(value))
    return table


def rows_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    """A table with a header row; numbers are right-aligned."""
    table = Table(title=title, title_justify="left")
    for i, column in enumerate(columns):
        numeric = bool(rows) and all(isinstance(r[i], int | float) for r in rows)
        table.add_column(column, justify="right" if numeric else "left", overflow="fold")
    for row in rows:
        table.add_row(*(_cell(v) for v in row))
    return table


def show(args: argparse.Namespace, value: Any, table: Callable[[], Any]) -> None:
    """``value`` as JSON with ``--json``, else what ``table()`` renders, on stdout."""
    if getattr(args, "json", False):
        print_json(value)
    else:
        stdout().print(table())
