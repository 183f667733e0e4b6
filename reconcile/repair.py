"""Repairing what a run found: each record one side lacks, or holds differently, sent to it through
the outbox of the write route that owns the entity.

    banyan reconcile repair 12 --to cloud --reason "CHG-510 backfill the orders the migration missed"

To the cloud go the records only legacy has and legacy's version of those that differ (to legacy,
the other way round). Each becomes an outbox message of kind `repair` for that side of the route, so
the gateway's deliverer makes it with the route's binding, retries, and in-doubt rules, and a key's
reads stay with the other side until it lands. Its Idempotency-Key is derived from the
reconciliation, the entity, the key and the record's content, and each is recorded once (a table
keyed the same way, in the same transaction as the message): repairing a run twice, or two people
at once, sends each record once. A changed record is a new repair. The whole repair is one audit
event with the actor, the reason and what was sent. Never automatic.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from cutover.outbox import Outbox
from cutover.store import Store, now_iso
from legacy_adapters.mapping import MappingError, pointer_get
from reconcile.store import Runs
from specs.reconciliations import Reconciliation

KINDS = {"cloud": ("only_legacy", "differs"), "legacy": ("only_cloud", "differs")}


@dataclass
class Planned:
    key: str
    payload: Any
    params: dict[str, str]
    idempotency: str
    digest: str


@dataclass
class Repaired:
    sent: list[str]  # keys whose repair was put in the outbox now
    already: list[str]  # keys repaired before with the same content
    unmappable: list[tuple[str, str]]  # key, why


def plan(
    spec: Reconciliation, store: Store, run_id: int, entity: str, to: str
) -> tuple[list[Planned], list[tuple[str, str]]]:
    """What repairing the run towards `to` would send, and the keys that cannot be mapped (and why)."""
    if spec.repair is None:
        raise ValueError(f"{spec.name} names no repair route: add repair: {{route: …}} to it")
    source = "legacy" if to == "cloud" else "cloud"
    mapping = spec.repair.map.compile() if spec.repair.map else None
    planned, unmappable = [], []
    for _, key, records in Runs(store).records(run_id, KINDS[to]):
        record = records.get(source)
        if record is None:
            continue
        try:
            payload = mapping(record) if mapping is not None else record
            params = {name: str(pointer_get(record, pointer)) for name, pointer in spec.repair.params.items()}
        except MappingError as exc:
            unmappable.append((key, str(exc)))
            continue
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:32]
        shown = hashlib.sha256(f"{spec.name}\x1f{entity}\x1f{key}".encode()).hexdigest()[:16]
        planned.append(Planned(key, payload, params, f"reconcile-{spec.name}-{shown}-{digest[:16]}", digest))
    return planned, unmappable


def repair(
    spec: Reconciliation,
    store: Store,
    run_id: int,
    entity: str,
    to: str,
    rung: str,
    actor: str,
    reason: str,
) -> Repaired:
    """Put each planned record in the outbox, once; audited as one event."""
    assert spec.repair is not None
    planned, unmappable = plan(spec, store, run_id, entity, to)
    route, outbox = spec.repair.route, Outbox(store)
    sent, already = [], []
    for item in planned:
        with store.transaction() as cursor:
            claimed = store.execute(
                cursor,
                "INSERT INTO recon_repairs (name, entity, record_key, digest, side, run_id, at, actor) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name, entity, record_key, digest, side) DO NOTHING "
                "RETURNING record_key",
                (spec.name, entity, item.key, item.digest, to, run_id, now_iso(), actor),
            ).fetchone()
            if claimed is None:
                already.append(item.key)
                continue
            call = {
                "payload": item.payload,
                "params": {"entity": entity, **item.params},
                "headers": {},
                "correlation_id": f"reconcile-{run_id}",
            }
            business_key = item.key.replace("\x1f", "/")
            message = outbox.repair_in(cursor, route, entity, business_key, to, rung, call, item.idempotency)
            store.execute(
                cursor,
                "UPDATE recon_repairs SET message_id = ? WHERE name = ? AND entity = ? AND record_key = ? "
                "AND digest = ? AND side = ?",
                (message, spec.name, entity, item.key, item.digest, to),
            )
            sent.append(item.key)
    evidence = {
        "run": run_id,
        "to": to,
        "sent": len(sent),
        "already": len(already),
        "unmappable": len(unmappable),
        "keys": [key.replace("\x1f", "/") for key in sent[:50]],
    }
    store.record(actor, route, entity, {"kind": "reconcile_repair", "reason": reason, "evidence": evidence})
    return Repaired(sent, already, unmappable)
