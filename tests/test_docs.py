"""The front door and docs/ stay true: the generated references match the code, and every link
between the pages leads to a file that exists."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _reference() -> object:
    spec = importlib.util.spec_from_file_location("reference", REPO / "scripts" / "reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["cli.md", "route-files.md"])
def test_the_generated_references_are_current(name: str) -> None:
    made = _reference().REFERENCES[name]()  # type: ignore[attr-defined]
    assert (REPO / "docs" / name).read_text() == made, f"docs/{name} is stale: run python scripts/reference.py"


def test_every_link_between_the_pages_leads_somewhere() -> None:
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if target.startswith(("http://", "https://", "/")):
                continue
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(REPO)} → {target}")
    assert broken == []


def test_the_front_door_stays_short() -> None:
    assert len((REPO / "README.md").read_text().splitlines()) <= 350
