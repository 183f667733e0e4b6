"""UK TRADACOMS: `STX=` envelopes and `MHD=` message headers. It looks like EDIFACT but is not."""

from __future__ import annotations

import re

from inventory_scan.formats.base import Detected, Sample, detector, envelope_start

_STX = re.compile(r"STX=")


@detector("tradacoms", order=30)
def detect_tradacoms(sample: Sample) -> Detected | None:
    start = envelope_start(sample.text, _STX)
    if start is None:
        return None
    offset, warnings = start
    text = sample.text[offset:]
    messages: list[str] = []
    sender = receiver = ""
    for raw in text.replace("\r", "").replace("\n", "").split("'"):
        tag, _, body = raw.strip().partition("=")
        fields = body.split("+")
        if tag == "STX" and len(fields) >= 3:
            sender, receiver = fields[1].split(":")[0], fields[2].split(":")[0]
        elif tag == "MHD" and len(fields) >= 2:
            kind = fields[1].split(":")[0]
            if kind not in messages:
                messages.append(kind)
    return Detected(
        family="tradacoms",
        formats=[f"tradacoms:{kind}" for kind in messages] or ["tradacoms"],
        details={
            "messages": messages,
            "senders": [sender] if sender else [],
            "receivers": [receiver] if receiver else [],
        },
        warnings=warnings,
    )
