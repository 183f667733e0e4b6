"""JSON documents and JSON Lines."""

from __future__ import annotations

import json

from inventory_scan.formats.base import Detected, Sample, detector


def _shape(value: object) -> dict[str, object]:
    if isinstance(value, dict):
        return {"top": "object", "keys": sorted(value)[:20]}
    if isinstance(value, list):
        first = value[0] if value else None
        keys = sorted(first)[:20] if isinstance(first, dict) else []
        return {"top": "array", "keys": keys}
    return {"top": type(value).__name__}


@detector("json", order=60)
def detect_json(sample: Sample) -> Detected | None:
    text = sample.text.strip()
    if not text.startswith(("{", "[")):
        return None
    decoder = json.JSONDecoder()
    try:
        value, end = decoder.raw_decode(text)
    except json.JSONDecodeError:
        if sample.truncated and text[:2] in ('{"', "[{", '["'):
            return Detected("json", ["json"], {"top": "object" if text[0] == "{" else "array", "complete": False})
        return None
    rest = text[end:].strip()
    if not rest:
        return Detected("json", ["json"], _shape(value))
    lines = [line for line in text.splitlines() if line.strip()]
    if sample.truncated:
        lines = lines[:-1]
    try:
        for line in lines:
            json.loads(line)
    except json.JSONDecodeError:
        return None
    return Detected("json", ["jsonl"], _shape(value) | {"records_in_sample": len(lines)})
