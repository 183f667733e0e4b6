"""What the demo's EDI desks read and write: a partner's purchase order (X12 850 or EDIFACT ORDERS)
and the answers an ERP sends back for it, an acknowledgement (997 or CONTRL) and an order response
(855 or ORDRSP) that confirms or backorders each line.

Legacy desks echo the partner's interchange number and date in their answers, as old translators
do; the cloud numbers and dates its own. Both name the order by its number, so Banyan can match
each answer to the file it is about and compare the two sides' answers of the same kind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass
class Order:
    syntax: str  # x12 or edifact
    sender: str
    receiver: str
    control: str  # the interchange control number
    group: str  # X12: the group control number (GS06); EDIFACT: the message reference
    number: str  # the PO number (BEG03 / BGM 1004)
    date: str  # the interchange's date and time as sent (YYMMDD, HHMM)
    time: str
    lines: list[dict[str, Any]] = field(default_factory=list)  # sku, qty


def read_order(text: str) -> Order:
    """ValueError when the file is neither an X12 850 nor an EDIFACT ORDERS."""
    text = text.lstrip("\ufeff")
    if text.startswith("ISA"):
        return _x12(text)
    if text.startswith(("UNA", "UNB")):
        return _edifact(text)
    raise ValueError("not an X12 or EDIFACT interchange")


def _x12(text: str) -> Order:
    if len(text) < 106:
        raise ValueError("the ISA segment is cut short")
    element, terminator = text[3], text[105]
    segments = [s.strip().split(element) for s in text.split(terminator) if s.strip()]
    isa = segments[0]
    gs = next((s for s in segments if s[0] == "GS"), None)
    beg = next((s for s in segments if s[0] == "BEG"), None)
    if gs is None or beg is None or len(isa) < 14 or len(beg) < 4:
        raise ValueError("no GS or BEG segment: not a purchase order")
    lines = [{"sku": s[7], "qty": int(s[2])} for s in segments if s[0] == "PO1" and len(s) > 7]
    return Order("x12", isa[6].strip(), isa[8].strip(), isa[13], gs[6], beg[3], isa[9], isa[10], lines)


def _edifact(text: str) -> Order:
    if text.startswith("UNA"):
        text = text[9:]
    segments = [s.strip().split("+") for s in text.split("'") if s.strip()]
    unb = next((s for s in segments if s[0] == "UNB"), None)
    unh = next((s for s in segments if s[0] == "UNH"), None)
    bgm = next((s for s in segments if s[0] == "BGM"), None)
    if unb is None or unh is None or bgm is None or len(unb) < 6 or len(bgm) < 3 or "ORDERS" not in unh[2]:
        raise ValueError("no UNB, UNH or BGM segment: not an ORDERS message")
    lines, sku = [], None
    for segment in segments:
        if segment[0] == "LIN" and len(segment) > 3:
            sku = segment[3].split(":")[0]
        elif segment[0] == "QTY" and sku is not None:
            lines.append({"sku": sku, "qty": int(segment[1].split(":")[1])})
            sku = None
    date, clock = unb[4].split(":")
    return Order("edifact", unb[2].split(":")[0], unb[3].split(":")[0], unb[5], unh[1], bgm[2], date, clock, lines)


def _stamp(order: Order, when: datetime | None) -> tuple[str, str]:
    return (when.strftime("%y%m%d"), when.strftime("%H%M")) if when else (order.date, order.time)


def acknowledgement(order: Order, control: str | None = None, when: datetime | None = None) -> bytes:
    """The 997 or CONTRL that says the interchange was received and accepted."""
    number, (date, clock) = control or order.control, _stamp(order, when)
    if order.syntax == "x12":
        segments = [
            f"ISA*00*          *00*          *ZZ*{order.receiver:<15}*ZZ*{order.sender:<15}*{date}*{clock}*U*00401*"
            f"{int(number):09d}*0*P*>",
            f"GS*FA*{order.receiver}*{order.sender}*20{date}*{clock}*{int(number)}*X*004010",
            "ST*997*0001",
            f"AK1*PO*{order.group}",
            "AK9*A*1*1*1",
            "SE*4*0001",
            f"GE*1*{int(number)}",
            f"IEA*1*{int(number):09d}",
        ]
        return ("~".join(segments) + "~").encode()
    segments = [
        f"UNB+UNOC:3+{order.receiver}:14+{order.sender}:14+{date}:{clock}+{number}",
        "UNH+1+CONTRL:D:3:UN",
        f"UCI+{order.control}+{order.sender}:14+{order.receiver}:14+7",
        "UNT+3+1",
        f"UNZ+1+{number}",
    ]
    return ("'".join(segments) + "'").encode()


def order_response(
    order: Order, confirmed: list[int], control: str | None = None, when: datetime | None = None
) -> bytes:
    """The 855 or ORDRSP: each line confirmed with the quantity given (backordered where it is less
    than ordered)."""
    number, (date, clock) = control or order.control, _stamp(order, when)
    if order.syntax == "x12":
        body = [f"BAK*00*AC*{order.number}*20{date}"]
        for line, quantity in zip(order.lines, confirmed, strict=True):
            status = "IA" if quantity == line["qty"] else "IB"
            body += [f"PO1**{line['qty']}*EA***VP*{line['sku']}", f"ACK*{status}*{quantity}*EA"]
        segments = [
            f"ISA*00*          *00*          *ZZ*{order.receiver:<15}*ZZ*{order.sender:<15}*{date}*{clock}*U*00401*"
            f"{int(number):09d}*0*P*>",
            f"GS*PR*{order.receiver}*{order.sender}*20{date}*{clock}*{int(number)}*X*004010",
            "ST*855*0001",
            *body,
            f"SE*{len(body) + 2}*0001",
            f"GE*1*{int(number)}",
            f"IEA*1*{int(number):09d}",
        ]
        return ("~".join(segments) + "~").encode()
    body = [f"BGM+231+{order.number}+29", f"DTM+137:20{date}:102", f"RFF+ON:{order.number}"]
    for n, (line, quantity) in enumerate(zip(order.lines, confirmed, strict=True), start=1):
        action = "5" if quantity == line["qty"] else "3"  # 5: accepted; 3: changed
        body += [f"LIN+{n}+{action}+{line['sku']}:SA", f"QTY+113:{quantity}"]
    segments = [
        f"UNB+UNOC:3+{order.receiver}:14+{order.sender}:14+{date}:{clock}+{number}",
        "UNH+1+ORDRSP:D:96A:UN",
        *body,
        f"UNT+{len(body) + 2}+1",
        f"UNZ+1+{number}",
    ]
    return ("'".join(segments) + "'").encode()


def edifact_orders(number: int, sender: str, receiver: str, lines: list[tuple[str, int]], when: datetime) -> str:
    """A retailer's EDIFACT ORDERS, as its translator writes it."""
    body = [f"BGM+220+PO{number}+9", f"DTM+137:{when:%Y%m%d}:102", f"NAD+BY+{sender}::9"]
    for n, (sku, quantity) in enumerate(lines, start=1):
        body += [f"LIN+{n}++{sku}:SA", f"QTY+21:{quantity}"]
    segments = [
        "UNA:+.? ",
        f"UNB+UNOC:3+{sender}:14+{receiver}:14+{when:%y%m%d:%H%M}+{number}",
        "UNH+1+ORDERS:D:96A:UN",
        *body,
        f"UNT+{len(body) + 2}+1",
        f"UNZ+1+{number}",
    ]
    return "'\n".join(segments) + "'\n"
