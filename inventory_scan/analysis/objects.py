"""What business object an interface carries: orders, stock, shipments, invoices or master data.

The document type decides first (an X12 850 is an order whatever the file is called), then the
words in what the interface is named after: its file pattern, table, operation, name and locator.
An interface still undecided takes the object of the interfaces it is linked to, when they agree
(a folder endpoint carries what the drop in it carries).
"""

from __future__ import annotations

import re
from collections import defaultdict

from inventory_scan.catalog import Catalog, Interface

OBJECTS = ("order", "inventory", "invoice", "shipment", "customer", "item", "location", "acknowledgement")

# Document types per format family (the part before the colon in a format, e.g. "x12:850").
DOCUMENTS: dict[str, dict[str, str]] = {
    "x12": {
        **dict.fromkeys(["850", "855", "860", "865", "875", "880"], "order"),
        **dict.fromkeys(["856", "857", "214", "940", "945"], "shipment"),
        **dict.fromkeys(["810", "820", "812"], "invoice"),
        **dict.fromkeys(["846", "852", "947"], "inventory"),
        "832": "item",
        **dict.fromkeys(["997", "999", "824", "864"], "acknowledgement"),
    },
    "edifact": {
        **dict.fromkeys(["ORDERS", "ORDRSP", "ORDCHG"], "order"),
        **dict.fromkeys(["DESADV", "RECADV", "IFTSTA", "IFTMIN", "IFTMBF"], "shipment"),
        **dict.fromkeys(["INVOIC", "REMADV", "PAYMUL", "CREMUL"], "invoice"),
        **dict.fromkeys(["INVRPT", "SLSRPT"], "inventory"),
        **dict.fromkeys(["PRICAT", "PRODAT"], "item"),
        "PARTIN": "customer",
        **dict.fromkeys(["CONTRL", "APERAK"], "acknowledgement"),
    },
    "tradacoms": {
        "ORDHDR": "order",
        "DLCHDR": "shipment",
        **dict.fromkeys(["INVFIL", "CREHDR", "UTLHDR"], "invoice"),
        **dict.fromkeys(["PRIHDR", "PROHDR"], "item"),
        **dict.fromkeys(["ACKHDR", "ACKMNT"], "acknowledgement"),
        "CUSHDR": "customer",
        "SNPSTS": "inventory",
    },
    "ubl": {
        **dict.fromkeys(["Order", "OrderResponse", "OrderChange"], "order"),
        **dict.fromkeys(["DespatchAdvice", "ReceiptAdvice"], "shipment"),
        **dict.fromkeys(["Invoice", "CreditNote", "DebitNote"], "invoice"),
        "Catalogue": "item",
        "ApplicationResponse": "acknowledgement",
    },
    "cxml": {
        **dict.fromkeys(["OrderRequest", "ConfirmationRequest"], "order"),
        "ShipNoticeRequest": "shipment",
        "InvoiceDetailRequest": "invoice",
    },
}
# IDoc basic types carry a version suffix: ORDERS05, DELVRY07 …
IDOCS = {
    "ORDERS": "order",
    "ORDRSP": "order",
    "DELVRY": "shipment",
    "SHPMNT": "shipment",
    "INVOIC": "invoice",
    "WMMBID": "inventory",
    "INVCON": "inventory",
    "MATMAS": "item",
    "ARTMAS": "item",
    "DEBMAS": "customer",
}

# Words in names, tables and paths. A word is matched whole, singular or plural.
WORDS: dict[str, str] = {
    **dict.fromkeys(["order", "po", "purchase", "ordrsp", "ordhdr", "sales"], "order"),
    **dict.fromkeys(["stock", "inventory", "onhand", "atp", "availability", "invrpt", "replenishment"], "inventory"),
    **dict.fromkeys(
        ["shipment", "ship", "shipping", "despatch", "dispatch", "desadv", "asn", "delivery", "tracking", "freight"],
        "shipment",
    ),
    **dict.fromkeys(
        ["invoice", "invoic", "billing", "ledger", "payment", "remittance", "posting", "receivable", "payable"],
        "invoice",
    ),
    **dict.fromkeys(["customer", "cust", "debtor", "credit"], "customer"),
    **dict.fromkeys(["item", "product", "material", "sku", "article", "price", "pricat", "catalogue"], "item"),
    **dict.fromkeys(["location", "warehouse", "plant", "depot", "site"], "location"),
    **dict.fromkeys(["ack", "acknowledgement", "acknowledgment", "contrl", "aperak"], "acknowledgement"),
}


# Phrases where a word above means something technical: a BizTalk receive location is no warehouse.
TECHNICAL = re.compile(r"(?i)receive[\s_-]*location|send[\s_-]*port")


def _words(text: str) -> list[str]:
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", TECHNICAL.sub(" ", text))
    return [word.lower() for word in re.split(r"[^A-Za-z0-9]+", spaced) if word]


def from_words(text: str) -> str | None:
    for word in _words(text):
        for candidate in (word, word.removesuffix("s"), word.removesuffix("es")):
            if candidate in WORDS:
                return WORDS[candidate]
    return None


def from_format(value: str) -> str | None:
    family, _, document = value.partition(":")
    if family == "idoc":
        return IDOCS.get(re.sub(r"\d+$", "", document.upper()))
    if family in DOCUMENTS:
        return DOCUMENTS[family].get(document)
    if family in ("xml", "json"):
        return from_words(document.rpartition("}")[2])  # xml:{namespace}CreateOrder → order
    return None


def _rank(found: str) -> int:
    return OBJECTS.index(found)


def own_object(interface: Interface) -> tuple[str, str] | None:
    """The object and the evidence for it, from the interface's own documents and words."""
    documents = [(found, value) for value in interface.formats if (found := from_format(value))]
    if documents:
        found, value = min(documents, key=lambda pair: _rank(pair[0]))
        return found, f"its documents are {value}"
    attributes = interface.attributes
    named = [
        ("file pattern", attributes.get("pattern")),
        ("table", attributes.get("table")),
        ("operation", attributes.get("operation")),
        ("name", interface.name),
        ("tables written", " ".join(interface.writes)),
        ("tables read", " ".join(interface.reads)),
        ("locator", interface.locator),
    ]
    for what, text in named:
        if isinstance(text, str) and (found := from_words(text)):
            return found, f"its {what} {text!r} names {found}"
    return None


def business_objects(catalog: Catalog) -> dict[str, tuple[str, str]]:
    """interface id → (object, evidence) for every interface whose object can be told."""
    found = {i.id: decided for i in catalog.interfaces if (decided := own_object(i))}
    names = {i.id: i.name for i in catalog.interfaces}
    neighbours: dict[str, set[str]] = defaultdict(set)
    for edge in catalog.edges:
        if edge.source in names and edge.target in names:
            neighbours[edge.source].add(edge.target)
            neighbours[edge.target].add(edge.source)
    for interface in catalog.interfaces:
        if interface.id in found:
            continue
        near = {found[n][0]: n for n in sorted(neighbours[interface.id]) if n in found}
        if len(near) == 1:
            [(thing, neighbour)] = near.items()
            found[interface.id] = (thing, f"it is linked to {names[neighbour]}, which carries {thing}")
    return found
