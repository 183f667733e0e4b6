"""Route skeletons from a catalog: SOAP operations, HTTP endpoints the ESB calls, inbound file drops;
and a flow in front of each inbound drop of partner documents (X12, EDIFACT, CSV).

Only what the roadmap says to wrap is scaffolded, unless `everything` is asked for.

Each skeleton is validated with the gateway's route model, so what is written passes `banyan routes
check`; what only a person can decide (mappings, schemas) is left as a TODO in the description.
"""

from __future__ import annotations

import re
from typing import Any

from inventory_scan.analysis.dispositions import apply_roadmap
from inventory_scan.catalog import Catalog, Direction, Interface, Kind
from specs.flows import Flow
from specs.routes import Route

# drop-name placeholders → the gateway's file-name parts
_NAME_PARTS = {
    "{seq}": "{correlation_id}",
    "{uuid}": "{correlation_id}",
    "{hex}": "{correlation_id}",
    "{datetime}": "{timestamp}",
    "{name}": "{key}",
}


def _slug(text: str) -> str:
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", text)
    return re.sub(r"[^a-z0-9]+", "-", spaced.lower()).strip("-")[:60] or "route"


def _soap(operation: Interface) -> dict[str, Any] | None:
    soap = [b for b in operation.attributes.get("bindings", []) if str(b.get("protocol", "")).startswith("soap")]
    addresses = [p["address"] for b in soap for p in b.get("ports", []) if p.get("address")]
    if not soap or not addresses:
        return None
    binding = soap[0]
    service, name = operation.attributes["service"], operation.attributes["operation"]
    return {
        "name": _slug(f"{service}-{name}"),
        "description": f"TODO: request/response schemas and mappings for {service}.{name} ({operation.locator})",
        "operation": {
            "method": "POST",
            "path": f"/v1/{{entity}}/{_slug(service)}/{_slug(name)}",
            "summary": f"{service}.{name}",
        },
        "entity": {"from": "path", "name": "entity"},
        "legacy": {
            "backend": {
                "backend": "soap",
                "url": addresses[0],
                "soap_version": "1.2" if binding["protocol"] == "soap1.2" else "1.1",
                "namespace": operation.attributes.get("namespace") or "urn:TODO",
                "operation": name,
                **({"soap_action": binding["soap_action"]} if binding.get("soap_action") else {}),
            }
        },
    }


def _http(endpoint: Interface) -> dict[str, Any] | None:
    if (
        endpoint.protocol not in ("http", "soap")
        or endpoint.direction is not Direction.out_of
        or "{" in endpoint.locator.split("://", 1)[-1].split("/", 1)[0]
    ):
        return None  # only services the ESB calls, at a real address
    name = _slug(endpoint.locator.split("://", 1)[-1])
    return {
        "name": name,
        "description": f"TODO: schemas and mappings; the ESB calls {endpoint.locator}",
        "operation": {"method": "POST", "path": f"/v1/{{entity}}/{name}"},
        "entity": {"from": "path", "name": "entity"},
        "legacy": {
            "backend": {"backend": "soap" if endpoint.protocol == "soap" else "http", "url": endpoint.locator}
            | ({"namespace": "urn:TODO", "operation": "TODO"} if endpoint.protocol == "soap" else {})
        },
    }


def _drop(drop: Interface) -> dict[str, Any] | None:
    if drop.direction is not Direction.into:
        return None
    folder = str(drop.attributes.get("folder", ""))
    if drop.protocol == "sftp":
        folder = drop.locator.rsplit("/", 1)[0]
    name = str(drop.attributes.get("pattern", "{correlation_id}.json"))
    for placeholder, part in _NAME_PARTS.items():
        name = name.replace(placeholder, part)
    if "{correlation_id}" not in name:
        stem, dot, extension = name.rpartition(".")
        name = f"{stem}_{{correlation_id}}.{extension}" if dot else f"{name}_{{correlation_id}}"
    slug = _slug(f"drop-{drop.attributes.get('pattern', drop.name)}")
    return {
        "name": slug,
        "description": (
            f"TODO: the file format the importer reads ({', '.join(drop.formats) or 'unknown'}), "
            "and a reply folder if it acknowledges"
        ),
        "operation": {"method": "POST", "path": f"/v1/{{entity}}/{slug}"},
        "entity": {"from": "path", "name": "entity"},
        "writes": True,
        "legacy": {"backend": {"backend": "file_drop", "folder": folder, "name": name}},
    }


def _flow(drop: Interface) -> dict[str, Any] | None:
    """A flow in front of a local drop an importer reads partner documents from: the partners send
    to a new inbox, the flow passes their files on to the drop (legacy) and, once a cloud side is
    added, to the cloud; their senders map to the drop's entity."""
    families = {str(detail.get("family")) for detail in drop.attributes.get("format_details", [])}
    families |= {fmt.split(":", 1)[0] for fmt in drop.formats}
    kinds = [kind for kind in ("x12", "edifact", "csv") if kind in families]
    folder = str(drop.attributes.get("folder", ""))
    if drop.direction is not Direction.into or not kinds or not folder or drop.protocol == "sftp":
        return None
    senders = sorted({str(s) for d in drop.attributes.get("format_details", []) for s in d.get("senders", [])})
    entity = drop.entity or "TODO-ENTITY"
    pattern = re.sub(r"\{[^}]*\}", "*", str(drop.attributes.get("pattern", "*")))
    inbox = f"{folder.rstrip('/')}.banyan-inbox"
    return {
        "name": _slug(f"flow-{drop.attributes.get('pattern', drop.name)}"),
        "description": f"TODO: point the senders at {inbox} instead of {folder}; add the cloud's intake (cloud:) "
        "and each sender's entity; the importer's processed and error folders as legacy.seen_in",
        "source": {"folder": inbox, "pattern": pattern},
        "document": kinds[0] if len(kinds) == 1 else "auto",
        "entity": {"from": "partner", "partners": dict.fromkeys(senders, entity)}
        if senders
        else {"from": "fixed", "value": entity},
        "key": {"from": "partner"} if senders else {"from": "name", "pattern": "^(?P<value>.+)$"},
        "legacy": {"intake": folder},
    }


def scaffold(catalog: Catalog, everything: bool = False) -> dict[str, list[dict[str, Any]]]:
    """Skeletons grouped by kind; each validates as a route, and names and paths are unique.

    Interfaces whose disposition is not `wrap` are left out unless `everything` is true.
    """
    if not everything:
        if any(interface.disposition is None for interface in catalog.interfaces):
            catalog = apply_roadmap(catalog)  # scanned before dispositions: the default rules decide
        wrapped = [i for i in catalog.interfaces if i.disposition is not None and i.disposition.name == "wrap"]
        catalog = catalog.model_copy(update={"interfaces": wrapped})
    makers = {
        "soap": (Kind.soap_operation, _soap),
        "http": (Kind.esb_endpoint, _http),
        "file_drops": (Kind.file_drop, _drop),
        "flows": (Kind.file_drop, _flow),
    }
    out: dict[str, list[dict[str, Any]]] = {}
    used: set[str] = set()
    for group, (kind, make) in makers.items():
        out[group] = []
        for interface in sorted(catalog.interfaces, key=lambda i: i.locator):
            if interface.kind is not kind:
                continue
            skeleton = make(interface)
            if skeleton is None:
                continue
            base, n = skeleton["name"], 2
            while skeleton["name"] in used:
                skeleton["name"] = f"{base}-{n}"
                if "operation" in skeleton:
                    skeleton["operation"]["path"] = re.sub(
                        r"/[^/]+$", f"/{skeleton['name']}", skeleton["operation"]["path"]
                    )
                n += 1
            used.add(skeleton["name"])
            skeleton["wraps"] = [interface.id]
            (Flow if group == "flows" else Route).model_validate(skeleton)
            out[group].append(skeleton)
    return out
