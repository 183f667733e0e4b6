"""After a scan: merge it into the catalog on disk and analyse the whole."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from inventory_scan.analysis.dispositions import RoadmapSettings, apply_roadmap
from inventory_scan.analysis.patterns import apply_patterns
from inventory_scan.analysis.rollup import with_units
from inventory_scan.catalog import Catalog
from inventory_scan.links import link


def save_merged(
    catalog: Catalog,
    path: Path,
    pattern_rules: list[Any] | None = None,
    roadmap: RoadmapSettings | None = None,
) -> Catalog:
    """Merge `catalog` into the one at `path` (if any), analyse it, and write the result there.

    Analysis runs on the merged whole: links between scanners, each interface's pattern (with
    `pattern_rules` before the defaults), its effort units, and then what the roadmap makes of it
    (business object, criticality, disposition; `roadmap` holds scan.yaml's rules and overrides).
    """
    merged = Catalog.load(path).merge(catalog) if path.exists() else catalog
    merged = apply_roadmap(with_units(apply_patterns(link(merged), pattern_rules)), roadmap)
    merged.save(path)
    return merged
