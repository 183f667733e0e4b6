"""The references in docs/ made from the code: every `banyan` command (from the typer app) and every
field of a route file (from its JSON Schema). A test fails when docs/ is stale; this writes it anew.

    python scripts/reference.py            # rewrite docs/cli.md and docs/route-files.md
    python scripts/reference.py --check    # exit 1 if either is stale
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import typer

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

NAV = (
    "[Banyan](../README.md) · [the demo](demo.md) · [1 · find](find.md) · [2 · wrap](wrap.md) · "
    "[3 · shift](shift.md) · [speed](speed.md) · [layout](layout.md) · [CLI](cli.md) · "
    "[route files](route-files.md)"
)
MADE = "Made from the code by `python scripts/reference.py`; a test fails when it is stale."


def cli_reference() -> str:
    from cli.main import app

    root = typer.main.get_command(app)
    lines = [NAV, "", "# The `banyan` command", "", MADE, ""]

    def walk(command: Any, path: list[str]) -> None:
        if hasattr(command, "commands"):  # a group (typer carries its own click)
            for name in sorted(command.commands):
                walk(command.commands[name], [*path, name])
            return
        lines.extend([f"## `{' '.join(path)}`", "", _text(command.help or ""), ""])
        options = [p for p in command.params if not getattr(p, "hidden", False)]
        if options:
            lines.extend(["| argument or option | what it is |", "| --- | --- |"])
            for param in options:
                names = " / ".join(f"`{name}`" for name in [*param.opts, *param.secondary_opts]) or f"`{param.name}`"
                if param.param_type_name == "argument":
                    names = f"`{(param.name or '').upper()}`"
                help_text = _text(getattr(param, "help", None) or "").replace("|", "\\|")
                default = param.default if param.default not in (None, False, (), "") else None
                shown = f" (default: `{default}`)" if default is not None and not callable(default) else ""
                lines.append(f"| {names} | {help_text}{shown} |")
            lines.append("")

    walk(root, ["banyan"])
    return "\n".join(lines).rstrip() + "\n"


def _text(help_text: str) -> str:
    """A command's help as Markdown: its paragraphs, the example line kept as code."""
    paragraphs = [" ".join(part.split()) for part in help_text.strip().split("\n\n") if part.strip()]
    shown = []
    for paragraph in paragraphs:
        if paragraph.startswith("Example: "):
            shown.append(f"Example: `{paragraph.removeprefix('Example: ')}`")
        else:
            shown.append(paragraph)
    return "\n\n".join(shown)


def route_reference() -> str:
    from specs.files import json_schema

    schema = json_schema()
    definitions: dict[str, Any] = schema.get("$defs", {})
    lines = [
        NAV,
        "",
        "# Route files",
        "",
        MADE,
        "",
        "A folder of `*.yaml` files, each an object with these keys (`banyan routes check FOLDER` validates "
        "them; `banyan routes schema` prints the JSON Schema editors use). `${NAME}` and `${NAME:-default}` "
        "are filled from the environment in any string.",
        "",
    ]
    lines += _fields(schema)
    for name in sorted(definitions):
        definition = definitions[name]
        lines += [f"## {name}", ""]
        if definition.get("description"):
            lines += [" ".join(definition["description"].split()), ""]
        if "enum" in definition:
            lines += ["One of " + ", ".join(f"`{value}`" for value in definition["enum"]) + ".", ""]
            continue
        lines += _fields(definition)
    return "\n".join(lines).rstrip() + "\n"


def _fields(definition: dict[str, Any]) -> list[str]:
    properties = definition.get("properties", {})
    if not properties:
        return []
    required = set(definition.get("required", []))
    rows = ["| field | type | what it is |", "| --- | --- | --- |"]
    for field, spec in properties.items():
        what = " ".join(str(spec.get("description", "")).split()).replace("|", "\\|")
        default = spec.get("default")
        if default not in (None, [], {}, "") and not isinstance(default, dict | list):
            what += f" (default: `{default}`)"
        rows.append(f"| `{field}`{' (required)' if field in required else ''} | {_type(spec)} | {what} |")
    return [*rows, ""]


def _type(spec: dict[str, Any]) -> str:
    if "$ref" in spec:
        name = spec["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    if "anyOf" in spec:
        return " or ".join(_type(option) for option in spec["anyOf"] if option.get("type") != "null")
    if "enum" in spec:
        return " · ".join(f"`{value}`" for value in spec["enum"])
    if "const" in spec:
        return f"`{spec['const']}`"
    kind = spec.get("type", "any")
    if kind == "array":
        return f"list of {_type(spec.get('items', {}))}"
    if kind == "object" and "additionalProperties" in spec and isinstance(spec["additionalProperties"], dict):
        return f"map of {_type(spec['additionalProperties'])}"
    return str(kind)


REFERENCES = {"cli.md": cli_reference, "route-files.md": route_reference}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 1 when a reference in docs/ is stale")
    args = parser.parse_args()
    stale = []
    for name, make in REFERENCES.items():
        path, text = REPO / "docs" / name, make()
        if args.check:
            if not path.is_file() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        raise SystemExit(f"stale in docs/: {', '.join(stale)} (python scripts/reference.py rewrites them)")


if __name__ == "__main__":
    main()
