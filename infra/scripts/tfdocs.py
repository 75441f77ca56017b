"""Generate the inputs/outputs tables of each Terraform module's README.

The tables sit between ``<!-- BEGIN_TF_DOCS -->`` and ``<!-- END_TF_DOCS -->`` in
``infra/modules/<module>/README.md``, in the layout terraform-docs produces, so that a
team that has terraform-docs can switch to it without a diff in prose. This script needs
only python-hcl2, which the project's virtualenv already has.

    .venv/bin/python infra/scripts/tfdocs.py           # rewrite every module README
    .venv/bin/python infra/scripts/tfdocs.py --check   # exit 1 if any README is stale
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import hcl2

MODULES_DIR = Path(__file__).resolve().parents[1] / "modules"
BEGIN = "<!-- BEGIN_TF_DOCS -->"
END = "<!-- END_TF_DOCS -->"

_OPTIONS = hcl2.SerializationOptions(
    with_comments=False, explicit_blocks=False, strip_string_quotes=True, preserve_heredocs=False
)


def parse(path: Path) -> dict[str, Any]:
    """One ``.tf`` file as python-hcl2's dict, with string quotes stripped."""
    with path.open() as handle:
        return hcl2.load(handle, serialization_options=_OPTIONS)


def _blocks(module_dir: Path, kind: str) -> list[tuple[str, dict[str, Any]]]:
    """Every ``kind`` block (variable, output, module) of a module, as (name, body)."""
    found = []
    for path in sorted(module_dir.glob("*.tf")):
        for block in parse(path).get(kind, []):
            found.extend(block.items())
    return found


def _typed_blocks(module_dir: Path, kind: str) -> list[tuple[str, str]]:
    """Every ``resource`` or ``data`` block of a module, as (type, name)."""
    found = []
    for path in sorted(module_dir.glob("*.tf")):
        for block in parse(path).get(kind, []):
            for type_, bodies in block.items():
                found.extend((type_, name) for name in bodies)
    return found


def _expression(value: str) -> str:
    """``${list(string)}`` -> ``list(string)``: HCL as written, not interpolated."""
    if isinstance(value, str) and value.startswith("${") and value.endswith("}"):
        return value[2:-1]
    return value


def _default(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(_expression(value))
    return json.dumps(value, separators=(",", ":"))


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _code(text: str) -> str:
    return f"`{_cell(text)}`"


def render(module_dir: Path) -> str:
    """The generated block for one module, markers included."""
    lines = [BEGIN, "## Requirements", "", "| Name | Version |", "|------|---------|"]
    for path in sorted(module_dir.glob("*.tf")):
        for terraform in parse(path).get("terraform", []):
            if "required_version" in terraform:
                lines.append(f"| terraform | {_cell(terraform['required_version'])} |")
            for providers in terraform.get("required_providers", []):
                for name, spec in providers.items():
                    lines.append(f"| {name} | {_cell(spec.get('version', 'n/a'))} |")

    modules = _blocks(module_dir, "module")
    if modules:
        lines += ["", "## Modules", "", "| Name | Source |", "|------|--------|"]
        lines += [f"| {name} | {_cell(body['source'])} |" for name, body in sorted(modules)]

    lines += ["", "## Resources", "", "| Name | Type |", "|------|------|"]
    resources = [(f"{t}.{n}", "resource") for t, n in _typed_blocks(module_dir, "resource")]
    data = [(f"{t}.{n}", "data source") for t, n in _typed_blocks(module_dir, "data")]
    lines += [f"| {name} | {kind} |" for name, kind in sorted(resources) + sorted(data)]

    lines += [
        "",
        "## Inputs",
        "",
        "| Name | Description | Type | Default | Required |",
        "|------|-------------|------|---------|:--------:|",
    ]
    # terraform-docs order: required inputs first, then optional ones, each by name.
    variables = sorted(_blocks(module_dir, "variable"), key=lambda item: ("default" in item[1], item[0]))
    for name, body in variables:
        required = "default" not in body
        default = "n/a" if required else _code(_default(body["default"]))
        type_ = _code(_expression(body.get("type", "any")))
        lines.append(
            f"| {name} | {_cell(body.get('description', ''))} | {type_} | {default} | "
            f"{'yes' if required else 'no'} |"
        )

    lines += ["", "## Outputs", "", "| Name | Description |", "|------|-------------|"]
    for name, body in sorted(_blocks(module_dir, "output")):
        lines.append(f"| {name} | {_cell(body.get('description', ''))} |")
    lines.append(END)
    return "\n".join(lines)


def updated_readme(module_dir: Path) -> tuple[str, str]:
    """(current, wanted) text of a module's README."""
    readme = module_dir / "README.md"
    current = readme.read_text() if readme.exists() else ""
    if BEGIN not in current or END not in current:
        raise SystemExit(f"{readme} has no {BEGIN} ... {END} block; add the two markers where the tables go")
    head, rest = current.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return current, head + render(module_dir) + tail


def module_dirs() -> list[Path]:
    return sorted(path for path in MODULES_DIR.iterdir() if path.is_dir())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="only report stale READMEs; exit 1 if any")
    parser.add_argument("modules", nargs="*", type=Path, help="module directories (default: all)")
    args = parser.parse_args(argv)

    stale = []
    for module_dir in args.modules or module_dirs():
        current, wanted = updated_readme(module_dir)
        if current == wanted:
            continue
        stale.append(module_dir)
        if not args.check:
            (module_dir / "README.md").write_text(wanted)
            print(f"updated {module_dir / 'README.md'}")
    if args.check and stale:
        names = ", ".join(str(path / "README.md") for path in stale)
        print(f"stale generated tables in {names}; run `.venv/bin/python infra/scripts/tfdocs.py`")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
