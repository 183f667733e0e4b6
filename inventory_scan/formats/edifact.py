"""UN/EDIFACT: an optional UNA service string advice, UNB interchanges, UNH messages.

Messages without an envelope (starting at UNH) are still EDIFACT. The release character escapes
separators, so a `?'` inside a value does not end a segment.
"""

from __future__ import annotations

import re
from collections import Counter

from inventory_scan.formats.base import BLANKS, Detected, Sample, detector, envelope_start

_DEFAULT_SERVICE = ":+.? '"
_ENVELOPE = re.compile(r"UNA.{6}|UN[BH].")


def _split(text: str, separator: str, release: str) -> list[str]:
    if not release.strip():
        return text.split(separator)
    return re.split(rf"(?<!{re.escape(release)}){re.escape(separator)}", text)


@detector("edifact", order=20)
def detect_edifact(sample: Sample) -> Detected | None:
    start = envelope_start(sample.text, _ENVELOPE)
    if start is None:
        return None
    offset, warnings = start
    text = sample.text[offset:]
    service = _DEFAULT_SERVICE
    if text.startswith("UNA") and len(text) >= 9:
        service, text = text[3:9], text[9:].lstrip(BLANKS)
    elif not (len(text) > 4 and text[3] == "+"):
        return None
    component, element, decimal, release, terminator = service[0], service[1], service[2], service[3], service[5]
    interchanges = 0
    syntax: set[str] = set()
    senders: set[str] = set()
    receivers: set[str] = set()
    messages: Counter[str] = Counter()
    groups: Counter[str] = Counter()
    versions: set[str] = set()
    for raw in _split(text, terminator, release):
        segment = raw.strip(BLANKS)
        if not segment:
            continue
        fields = _split(segment, element, release)
        tag = fields[0]
        if tag == "UNB" and len(fields) >= 4:
            interchanges += 1
            syntax.add(fields[1])
            # Keep the party id; its qualifier (":14", ":ZZ") is not part of who sent it.
            senders.add(_split(fields[2], component, release)[0])
            receivers.add(_split(fields[3], component, release)[0])
        elif tag == "UNG" and len(fields) >= 2:
            groups[_split(fields[1], component, release)[0]] += 1
        elif tag == "UNH" and len(fields) >= 3:
            parts = _split(fields[2], component, release)
            messages[parts[0]] += 1
            versions.add(":".join(parts[1:4]))
    if not messages and not interchanges:
        return None
    return Detected(
        family="edifact",
        formats=[f"edifact:{kind}" for kind in sorted(messages)] or ["edifact"],
        details={
            "interchanges": interchanges,
            "messages": dict(messages),
            **({"groups": dict(groups)} if groups else {}),
            "versions": sorted(versions),
            "syntax": sorted(syntax),
            "senders": sorted(senders),
            "receivers": sorted(receivers),
            "separators": {
                "component": component,
                "element": element,
                "decimal": decimal,
                "release": release,
                "segment": terminator,
            },
            "complete": not sample.truncated,
        },
        warnings=warnings,
    )
