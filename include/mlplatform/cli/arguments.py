"""What every command shares: argument types, input checks, help texts and the command signature,
and the shell completion generated from the whole parser.

Exit codes are the same for every command: 0 passed (or done), 1 the data or model failed
a check (a contract breach, a rejected promotion, a monitoring breach), 2 the command could
not check anything: bad usage, a path that is missing, a folder, unreadable or not a regular
file, a spec that does not load. :class:`CannotCheck` carries that last case to
:func:`mlplatform.cli.main`, which prints its one-line message and exits 2.

``mlplatform completion bash`` prints a script completing commands, their options, the
values of options with fixed choices, use-case names after ``--use-case`` and file names
elsewhere. zsh runs the same script through ``bashcompinit``. Install it with::

    eval "$(mlplatform completion bash)"      # in ~/.bashrc
    eval "$(mlplatform completion zsh)"       # in ~/.zshrc
"""

from __future__ import annotations

import argparse
import os
import shlex
import stat
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias
from urllib.parse import urlparse

from mlplatform.core import months

if TYPE_CHECKING:
    from mlplatform.core.spec import UseCase

CommandFn: TypeAlias = Callable[[argparse.Namespace], int]
"""A command: parsed arguments in, exit code out."""
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
"""What each area's ``register`` adds its commands to."""

PASSED, FAILED_CHECK, CANNOT_CHECK = 0, 1, 2
"""The exit codes: passed, the data or model failed a check, nothing could be checked."""

LAKE_HELP = "lake root URI (default: MLPLATFORM_LAKE_URI or the embedded default)"


class CannotCheck(ValueError):
    """The command cannot run on what it was given (exit 2); the message says what and why."""


def month(value: str) -> str:
    """An argparse type: a month as ``YYYY-MM``."""
    if not months.is_month(value):
        raise argparse.ArgumentTypeError(f"month must be YYYY-MM, got {value!r}")
    return value


def instant(text: str) -> datetime:
    """A time a person gives (``--at``) as ISO 8601: a date means its midnight; without a zone, UTC."""
    try:
        found = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is not a date or time: give ISO 8601, e.g. 2024-05-01 or 2024-05-01T12:00:00Z"
        ) from None
    return found if found.tzinfo else found.replace(tzinfo=UTC)


def input_file(value: str | Path) -> Path:
    """``value`` if it is a regular file this process can read; else :class:`CannotCheck`.

    The check is ``os.stat`` only: a FIFO, a device or a socket is named, never opened (a
    FIFO would block the read forever).
    """
    path = Path(value)
    mode = _stat(path).st_mode
    if stat.S_ISDIR(mode):
        raise CannotCheck(f"{path} is a directory, not a file; pass the parquet file inside it")
    if stat.S_ISFIFO(mode):
        raise CannotCheck(f"{path} is a FIFO (named pipe), not a regular file; it was not opened")
    if not stat.S_ISREG(mode):
        raise CannotCheck(f"{path} is not a regular file (a device or socket); pass a parquet file")
    if not os.access(path, os.R_OK):
        raise CannotCheck(f"{path} is not readable (permission denied)")
    return path


def input_files(values: Iterable[str | Path]) -> list[Path]:
    """:func:`input_file` on each of ``values``."""
    return [input_file(v) for v in values]


def input_uri(value: str) -> str:
    """A path or URI to read: local paths (and ``file://``) are checked with :func:`input_file`."""
    parsed = urlparse(value)
    if parsed.scheme == "file":
        input_file(parsed.path)
    elif len(parsed.scheme) <= 1:  # no scheme, or a Windows drive letter
        input_file(value)
    return value


def input_folder(value: str | Path) -> Path:
    """``value`` if it is a folder this process can list; else :class:`CannotCheck`."""
    path = Path(value)
    if not path.exists():
        raise CannotCheck(f"{path} is not a folder: it does not exist")
    if not stat.S_ISDIR(_stat(path).st_mode):
        raise CannotCheck(f"{path} is not a folder")
    if not os.access(path, os.R_OK | os.X_OK):
        raise CannotCheck(f"{path} is not readable (permission denied)")
    return path


def _stat(path: Path) -> os.stat_result:
    try:
        return path.stat()
    except FileNotFoundError:
        raise CannotCheck(f"{path} does not exist") from None
    except NotADirectoryError:
        raise CannotCheck(f"{path} does not exist (a part of the path is a file)") from None
    except PermissionError:
        raise CannotCheck(f"{path} cannot be reached (permission denied on a folder of its path)") from None
    except OSError as exc:
        raise CannotCheck(f"{path} cannot be checked: {exc.strerror or exc}") from None


def load_use_case(name: str) -> UseCase:
    """The use case's spec; a spec that does not load is :class:`CannotCheck`, naming the field."""
    from mlplatform.core import spec

    try:
        return spec.load_spec(name)
    except spec.SpecError as exc:
        raise CannotCheck(str(exc)) from None


def use_case_help(what: str) -> str:
    """Help for ``--use-case``: ``what`` and the use cases there are (read from the spec files)."""
    from mlplatform.core import spec

    try:
        names = spec.use_case_names()
    except spec.SpecError:
        return what
    return f"{what}; one of: {', '.join(names)}"


def add_output_options(p: argparse.ArgumentParser, *, progress: bool = False) -> None:
    """``--json`` (machine-readable output) and, for long work, ``--quiet`` (no progress on stderr)."""
    p.add_argument("--json", action="store_true", help="print JSON for machines instead of a table")
    if progress:
        p.add_argument("-q", "--quiet", action="store_true", help="no progress display on stderr")


# -- shell completion, generated from the parser itself ---------------------------------------

SHELLS = ("bash", "zsh")


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The parser's subcommands by name (empty when it has none)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(parser: argparse.ArgumentParser) -> list[str]:
    return [flag for action in parser._actions for flag in action.option_strings]


def _value_words(parser: argparse.ArgumentParser, use_cases: list[str]) -> dict[str, list[str]]:
    """Options whose values are known: fixed choices, and use-case names for ``--use-case``."""
    words: dict[str, list[str]] = {}
    for action in parser._actions:
        if not action.option_strings or isinstance(action, argparse._SubParsersAction):
            continue
        if action.choices is not None:
            values = [str(c) for c in action.choices]
        elif action.dest == "use_case":
            values = use_cases
        else:
            continue
        for flag in action.option_strings:
            words[flag] = values
    return words


def _quoted(words: list[str]) -> str:
    return shlex.quote(" ".join(words))


def _first_words(parser: argparse.ArgumentParser) -> list[str]:
    """What may come right after the command: its subcommands, or its first positional's choices."""
    if nested := _subcommands(parser):
        return list(nested)
    for action in parser._actions:
        if not action.option_strings and action.choices is not None:
            return [str(c) for c in action.choices]
    return []


def bash_script(parser: argparse.ArgumentParser, use_cases: list[str]) -> str:
    """The bash completion function for ``parser`` (``prog`` is the command it completes)."""
    cases = []
    for name, sub in _subcommands(parser).items():
        values = _value_words(sub, use_cases)
        value_cases = "".join(f"        {flag}) values={_quoted(v)} ;;\n" for flag, v in values.items())
        cases.append(
            f"    {name})\n      options={_quoted(_options(sub))}; firsts={_quoted(_first_words(sub))}\n"
            f'      case "$prev" in\n{value_cases}        *) values="" ;;\n      esac ;;\n'
        )
    func = f"_{parser.prog.replace('-', '_')}_complete"
    top = _quoted([*_subcommands(parser), *_options(parser)])
    return (
        f"# {parser.prog} completion (generated by `{parser.prog} completion bash`)\n"
        f"{func}() {{\n"
        '  local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}" options firsts values\n'
        '  if [ "$COMP_CWORD" -eq 1 ]; then\n'
        f'    COMPREPLY=($(compgen -W {top} -- "$cur")); return\n'
        "  fi\n"
        '  case "${COMP_WORDS[1]}" in\n'
        f"{''.join(cases)}"
        '    *) options=""; firsts=""; values="" ;;\n'
        "  esac\n"
        '  if [ -n "$values" ]; then COMPREPLY=($(compgen -W "$values" -- "$cur"))\n'
        '  elif [[ "$cur" == -* ]]; then COMPREPLY=($(compgen -W "$options" -- "$cur"))\n'
        '  elif [ "$COMP_CWORD" -eq 2 ] && [ -n "$firsts" ]; then\n'
        '    COMPREPLY=($(compgen -W "$firsts" -- "$cur"))\n'
        '  else COMPREPLY=($(compgen -f -- "$cur")); fi\n'
        "}\n"
        f"complete -o filenames -F {func} {parser.prog}\n"
    )


def script(shell: str, parser: argparse.ArgumentParser, use_cases: list[str]) -> str:
    """The completion script for ``shell`` (zsh: the bash script through ``bashcompinit``)."""
    body = bash_script(parser, use_cases)
    if shell == "zsh":
        return "autoload -U +X compinit && compinit\nautoload -U +X bashcompinit && bashcompinit\n" + body
    return body


def register_completion(sub: Subparsers, root: argparse.ArgumentParser) -> None:
    """Add ``completion`` to ``sub``; the script is generated from ``root``, the whole command line."""

    def cmd_completion(args: argparse.Namespace) -> int:
        from mlplatform.core import spec

        try:
            use_cases = spec.use_case_names()
        except spec.SpecError:
            use_cases = []
        print(script(args.shell, root, use_cases), end="")
        return PASSED

    p = sub.add_parser("completion", help="print a shell completion script (bash or zsh)")
    p.description = (
        "Print the completion script for your shell. Add to ~/.bashrc: "
        'eval "$(mlplatform completion bash)"; to ~/.zshrc: eval "$(mlplatform completion zsh)".'
    )
    p.add_argument("shell", choices=SHELLS, help="the shell to complete in")
    p.set_defaults(func=cmd_completion)
