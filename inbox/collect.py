"""Where the exceptions come from: each collector reads one kind of trouble from the table that
already holds it, and the inbox is synced with what it finds.

- outbox_dead, outbox_in_doubt: copies and repairs the outbox gave up on, or whose outcome nobody
  can know (by route, entity, key and side): replay or discard;
- write_dead, write_in_doubt: writes accepted with 202 that failed or are in doubt: the same;
- file_refused: partner files set aside in the flow's error folder (by flow and file name): resend
  or discard; file_in_doubt: files a side may or may not have taken: delivered or discard;
- batch_failed: scheduled batch runs that failed or were missed (by batch);
- step_down: guardrail step-downs nobody acknowledged (by route and entity): acknowledge;
- slo_burn: objectives burning their error budget (by route, entity and objective);
- contract_broken: the cloud's answers broke the route's canonical contract in the last hour (by
  route and entity; the paths and counts from the comparisons' differences);
- drift, intercompany_drift, reconcile_failed: a reconciliation's newest run drifted or failed (by
  reconciliation and entity): repair;
- process_failed, process_in_doubt: process instances a step failed or timed out in (taken back or
  not), or whose step's outcome is unknown (by instance): completed or discard, once a person has
  looked.

Every kind can also be assigned, commented on, snoozed and resolved.

The tables stay the truth: an exception whose row stops failing (a replayed message delivered, a
step-down acknowledged, a clean run) is resolved by the next sync. A sync is a few queries of rows
that are failing now, so every gateway may run one; the inbox's compare-and-set keeps them from
doubling anything.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

from cutover.store import Store
from inbox.store import Failure, Inbox, Synced
from specs.files import RouteFile

OUTBOX_KINDS = ("outbox_dead", "outbox_in_doubt", "write_dead", "write_in_doubt")
FILE_KINDS = ("file_refused", "file_in_doubt")
RUN_KINDS = ("drift", "intercompany_drift", "reconcile_failed")
PROCESS_KINDS = ("process_failed", "process_in_doubt")
CONTRACT_MINUTES = 60  # a cloud whose answers broke the contract within this long is an exception


def collect(store: Store, folder: RouteFile | None = None) -> Synced:
    """Sync the inbox with every kind of trouble; owners and tiers from the route files."""
    inbox = Inbox(store)
    total = Synced()
    for kinds, find in (
        (OUTBOX_KINDS, lambda: _outbox(store)),
        (FILE_KINDS, lambda: _files(store)),
        (("batch_failed",), lambda: _batches(store, folder)),
        (("step_down",), lambda: _step_downs(store)),
        (("slo_burn",), lambda: _burns(store)),
        (("contract_broken",), lambda: _contracts(store)),
        (RUN_KINDS, lambda: _runs(store, folder)),
        (PROCESS_KINDS, lambda: _processes(store)),
    ):
        done = inbox.sync(kinds, find)
        total.opened += done.opened
        total.reopened += done.reopened
        total.repeated += done.repeated
        total.resolved += done.resolved
    if folder is not None:
        inbox.own(lambda subject, entity: _owner(folder, subject, entity))
    return total


def _owner(folder: RouteFile, subject: str, entity: str) -> tuple[str, int | None]:
    owner = folder.owner_of(subject, entity)
    item = folder.owned().get(subject)
    return (owner.team if owner is not None else ""), (item.tier if item is not None else None)


def _rows(store: Store, text: str, params: tuple[Any, ...] = ()) -> list[Any]:
    with store.reading() as cursor:
        return list(store.execute(cursor, text, params).fetchall())


def _moment(stamp: str | None) -> float:
    try:
        return datetime.fromisoformat(str(stamp)).timestamp()
    except ValueError:
        return 0.0


def _outbox(store: Store) -> list[Failure]:
    found = []
    for message_id, route, entity, key, side, state, kind, error, updated in _rows(
        store,
        "SELECT id, route, entity, business_key, side, state, kind, last_error, updated_at FROM cutover_outbox "
        "WHERE state IN ('dead', 'in_doubt') ORDER BY id",
    ):
        what = "write" if kind == "accepted" else "outbox"
        said = error or ("gave up after its attempts" if state == "dead" else "its outcome cannot be known")
        found.append(
            Failure(
                f"{what}_{state}",
                f"{route}|{entity}|{key if key is not None else f'#{message_id}'}|{side}",
                route,
                entity,
                key,
                f"outbox:{message_id}",
                said,
                _moment(updated),
                {"message": message_id, "side": side, "message_kind": kind},
            )
        )
    return found


def _files(store: Store) -> list[Failure]:
    found = []
    for file_id, flow, name, entity, key, state, reason, updated in _rows(
        store,
        "SELECT id, flow, name, entity, business_key, state, reason, updated_at FROM flow_files "
        "WHERE state IN ('refused', 'in_doubt') ORDER BY id",
    ):
        found.append(
            Failure(
                f"file_{state}",
                f"{flow}|{name}",
                flow,
                entity or "*",
                key or name,
                f"file:{file_id}",
                reason or state,
                _moment(updated),
                {"file": file_id, "name": name},
            )
        )
    return found


def _processes(store: Store) -> list[Failure]:
    found = []
    for instance_id, process, entity, state, reason, correlation, updated in _rows(
        store,
        "SELECT id, process, entity, state, reason, correlation_id, updated_at FROM process_instances "
        "WHERE state IN ('failed', 'compensated', 'in_doubt') ORDER BY created",
    ):
        found.append(
            Failure(
                "process_in_doubt" if state == "in_doubt" else "process_failed",
                instance_id,
                process,
                entity or "*",
                instance_id,
                f"process:{instance_id}",
                reason or state,
                _moment(updated),
                {"instance": instance_id, "correlation_id": correlation},
            )
        )
    return found


def _batches(store: Store, folder: RouteFile | None) -> list[Failure]:
    entities = {batch.name: batch.entity for batch in folder.batches} if folder else {}
    found = []
    for batch, due, state, reason, updated in _rows(
        store,
        "SELECT batch, due, state, reason, updated_at FROM batch_runs WHERE state IN ('failed', 'missed') ORDER BY due",
    ):
        found.append(
            Failure(
                "batch_failed",
                batch,
                batch,
                entities.get(batch, "*"),
                None,
                f"batch:{batch}:{due}",
                f"the run due {due} {state}: {reason}" if reason else f"the run due {due} {state}",
                _moment(updated),
                {"batch": batch, "due": due, "state": state},
            )
        )
    return found


def _step_downs(store: Store) -> list[Failure]:
    found = []
    for (route, entity), event in sorted(store.latest(("guardrail", "acknowledge")).items()):
        if event.kind != "guardrail":
            continue
        found.append(
            Failure(
                "step_down",
                f"{route}|{entity}",
                route,
                entity,
                None,
                f"audit:{event.id}",
                f"the guardrail stepped {route} down from {event.from_mode} to {event.to_mode}: {event.reason}",
                _moment(event.at),
                {"audit": event.id, "from": event.from_mode, "to": event.to_mode},
            )
        )
    return found


def _burns(store: Store) -> list[Failure]:
    found = []
    for route, entity, slo, since in _rows(
        store, "SELECT route, entity, slo, since FROM cutover_slo_alerts ORDER BY route, entity, slo"
    ):
        found.append(
            Failure(
                "slo_burn",
                f"{route}|{entity}|{slo}",
                route,
                entity,
                None,
                f"slo:{route}/{entity}/{slo}",
                f"the objective {slo} is burning its error budget since {since[:19]}",
                _moment(since),
                {"slo": slo, "since": since},
            )
        )
    return found


def _contracts(store: Store, now: float | None = None) -> list[Failure]:
    """Routes whose cloud answered outside the canonical contract lately (the comparisons count each
    such answer as a difference of kind contract, per path and minute)."""
    since = int((time.time() if now is None else now) // 60) - CONTRACT_MINUTES
    broken: dict[tuple[str, str], list[tuple[str, int, int]]] = {}
    for route, entity, path, count, last in _rows(
        store,
        "SELECT route, entity, path, SUM(count), MAX(minute) FROM cutover_differences WHERE kind = 'contract' "
        "AND minute >= ? GROUP BY route, entity, path ORDER BY route, entity, path",
        (since,),
    ):
        broken.setdefault((route, entity), []).append((path, int(count), int(last)))
    found = []
    for (route, entity), paths in broken.items():
        last = max(minute for _, _, minute in paths)
        shown = ", ".join(f"{path} ({count}×)" for path, count, _ in paths[:5])
        found.append(
            Failure(
                "contract_broken",
                f"{route}|{entity}",
                route,
                entity,
                None,
                f"contract:{route}/{entity}/{last}",
                f"the cloud's answers break the route's canonical contract at {shown} in the last hour",
                last * 60.0,
                {"paths": [path for path, _, _ in paths]},
            )
        )
    return found


def _runs(store: Store, folder: RouteFile | None) -> list[Failure]:
    """The newest finished run of each reconciliation and entity, where it drifted or failed."""
    intercompany = {spec.name for spec in folder.reconciliations if spec.intercompany} if folder else set()
    found = []
    for run_id, name, entity, state, counts, reason, finished in _rows(
        store,
        "SELECT id, name, entity, state, counts, reason, finished FROM recon_runs r WHERE id = "
        "(SELECT MAX(id) FROM recon_runs n WHERE n.name = r.name AND n.entity = r.entity AND n.state <> 'running') "
        "ORDER BY name, entity",
    ):
        tally = json.loads(counts or "{}")
        only = tally.get("only", {})
        drifted = int(tally.get("differing", 0)) + int(only.get("legacy", 0)) + int(only.get("cloud", 0))
        if state == "failed":
            kind, said = "reconcile_failed", f"run {run_id} failed: {reason}"
        elif drifted:
            kind = "intercompany_drift" if name in intercompany else "drift"
            said = (
                f"run {run_id}: {tally.get('differing', 0)} records differ, {only.get('legacy', 0)} only in "
                f"legacy, {only.get('cloud', 0)} only in the cloud "
                f"(drift {tally.get('drift_rate', 0):.3%})"
            )
        else:
            continue
        found.append(
            Failure(
                kind,
                f"{name}|{entity}",
                name,
                entity,
                None,
                f"run:{run_id}",
                said,
                _moment(finished),
                {"run": run_id, "drifted": drifted},
            )
        )
    return found
