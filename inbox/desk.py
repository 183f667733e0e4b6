"""What a person does with an exception: the same for every kind (assign, comment, snooze,
resolve), and the action its kind allows, done through the part of Banyan that owns the row.

    replay, discard   an outbox message or an accepted write (cutover/outbox.py)
    resend, discard   a refused partner file: back from the error folder into the drop, or dropped
    delivered, discard  a file in doubt: the side did take it, or nobody is to
    completed, discard  a process instance that failed or is in doubt: it went through after all (or
                      was finished by hand), or it is given up (processes/book.py)
    acknowledge       a guardrail's step-down (cutover/engine.py)
    repair            what a drifted run found, sent to one side (reconcile/repair.py)

An action claims the exception first (a compare-and-set to `working`), so of two people clicking
at once one acts and the other is told who; then it is done, and the exception is resolved with
what came of it, or put back as it was with why it failed. Every step is in the exception's
history, and the part that acted writes its own audit event as it always does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cutover.engine import CutoverError, Engine
from cutover.outbox import Outbox, OutboxError
from cutover.store import Store
from flows.journey import Journey
from flows.runner import resend
from inbox.store import Conflict, Inbox, InboxError, Item
from processes.book import Book
from reconcile.repair import repair
from specs.files import RouteFile
from specs.flows import ladder

ACTIONS: dict[str, tuple[str, ...]] = {
    "outbox_dead": ("replay", "discard"),
    "outbox_in_doubt": ("replay", "discard"),
    "write_dead": ("replay", "discard"),
    "write_in_doubt": ("replay", "discard"),
    "file_refused": ("resend", "discard"),
    "file_in_doubt": ("delivered", "discard"),
    "process_failed": ("completed", "discard"),
    "process_in_doubt": ("completed", "discard"),
    "step_down": ("acknowledge",),
    "drift": ("repair",),
    "intercompany_drift": ("repair",),
}


@dataclass
class Desk:
    store: Store
    folder: RouteFile  # the route files: flows, reconciliations and the ladder the actions need

    @property
    def inbox(self) -> Inbox:
        return Inbox(self.store)

    def item(self, item_id: int, version: int | None = None) -> Item:
        """The exception, as long as it is the version the person saw (when they say which)."""
        found = self.inbox.get(item_id)
        if found is None:
            raise InboxError(f"no exception {item_id}")
        if version is not None and found.version != version:
            raise Conflict(self.inbox._who(item_id))
        return found

    # -- the same for every kind ------------------------------------------------------------------
    def assign(self, item_id: int, to: str, actor: str, note: str = "", version: int | None = None) -> Item:
        item = self._unresolved(item_id, version)
        if not to.strip():
            raise InboxError("assign to whom? (a person or a team)")
        return self.inbox.change(
            item, actor, "assigned", f"to {to}" + (f": {note}" if note else ""), assignee=to.strip(), state="assigned"
        )

    def comment(self, item_id: int, note: str, actor: str) -> Item:
        if not note.strip():
            raise InboxError("a comment says something")
        item = self.item(item_id)
        return self.inbox.change(item, actor, "commented", note)

    def snooze(self, item_id: int, minutes: int, actor: str, note: str = "", version: int | None = None) -> Item:
        item = self._unresolved(item_id, version)
        if minutes <= 0:
            raise InboxError("snooze for a number of minutes above zero")
        until = (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat(timespec="milliseconds")
        return self.inbox.change(
            item,
            actor,
            "snoozed",
            f"until {until[:16]}" + (f": {note}" if note else ""),
            state="snoozed",
            snoozed_until=until,
        )

    def resolve(self, item_id: int, note: str, actor: str, version: int | None = None) -> Item:
        item = self._unresolved(item_id, version)
        if not note.strip():
            raise InboxError("resolving needs a note saying what was done: it is kept in the history")
        return self.inbox.change(item, actor, "resolved", note, state="resolved")

    def _unresolved(self, item_id: int, version: int | None) -> Item:
        item = self.item(item_id, version)
        if item.state == "resolved":
            raise Conflict(self.inbox._who(item_id))
        if item.state == "working":
            raise Conflict(self.inbox._who(item_id))
        return item

    # -- the kind's own action --------------------------------------------------------------------
    def act(
        self, item_id: int, action: str, actor: str, note: str, version: int | None = None, to: str = "cloud"
    ) -> Item:
        """Do `action` (replay, discard, resend, delivered, acknowledge, repair) on the exception's
        row; the exception is resolved with what came of it."""
        item = self._unresolved(item_id, version)
        allowed = ACTIONS.get(item.kind, ())
        if action not in allowed:
            can = f"allows {', '.join(allowed)}" if allowed else "has no action of its own (resolve it)"
            raise InboxError(f"a {item.kind} exception {can}, not {action}")
        if not note.strip():
            raise InboxError(f"{action} needs a reason: it is kept in the history and the audit")
        claimed = self.inbox.change(item, actor, f"{action} started", note, state="working")
        try:
            outcome = self._do(claimed, action, actor, note, to)
        except (OutboxError, CutoverError, OSError, ValueError, KeyError) as exc:
            self.inbox.change(claimed, actor, f"{action} failed", str(exc), state=item.state)
            raise InboxError(f"{action} failed: {exc}") from None
        return self.inbox.change(claimed, actor, action, f"{note} — {outcome}", state="resolved")

    def _do(self, item: Item, action: str, actor: str, note: str, to: str) -> str:
        place, _, number = item.source.partition(":")
        if place == "outbox":
            outbox = Outbox(self.store)
            message = (outbox.replay if action == "replay" else outbox.discard)(int(number), note, actor)
            return f"message {message.id} is {message.state}"
        if place == "file":
            return self._file(item, int(number), action, actor, note)
        if place == "process":
            state = "completed" if action == "completed" else "discarded"
            if not Book(self.store).settle_by_hand(number, state, actor, note):
                raise InboxError(f"process instance {number} is no longer failed or in doubt")
            return f"process instance {number} is {state}"
        if place == "audit" and action == "acknowledge":
            engine = Engine(self.store, *ladder(self.folder.routes, self.folder.flows, self.folder.batches))
            engine.acknowledge(item.subject, item.entity, note, actor)
            return "acknowledged: the pair may step up again"
        if place == "run" and action == "repair":
            return self._repair(item, int(number), actor, note, to)
        raise InboxError(f"{item.source}: nothing to {action}")

    def _file(self, item: Item, file_id: int, action: str, actor: str, note: str) -> str:
        journey = Journey(self.store)
        row = journey.get(file_id)
        flow = next((flow for flow in self.folder.flows if flow.name == item.subject), None)
        if row is None or flow is None:
            raise InboxError(f"file {file_id} of flow {item.subject} is not known here")
        if action == "resend":
            target = resend(flow, file_id, row.name)
            journey.finish(file_id, "resent", f"{note} ({actor})")
            outcome = f"{row.name} is back in {target.parent} as a new arrival"
        else:
            journey.finish(file_id, "delivered" if action == "delivered" else "discarded", f"{note} ({actor})")
            outcome = f"file {file_id} is {'delivered' if action == 'delivered' else 'discarded'}"
        evidence: dict[str, Any] = {"file": file_id, "name": row.name, "to": action, "exception": item.id}
        self.store.record(
            actor, row.flow, row.entity or "*", {"kind": "flow_file", "reason": note, "evidence": evidence}
        )
        return outcome

    def _repair(self, item: Item, run_id: int, actor: str, note: str, to: str) -> str:
        spec = next((spec for spec in self.folder.reconciliations if spec.name == item.subject), None)
        if spec is None or spec.repair is None:
            raise InboxError(f"{item.subject} names no repair route: add repair: {{route: …}} to it")
        engine = Engine(self.store, *ladder(self.folder.routes, self.folder.flows, self.folder.batches))
        rung = engine.rule(spec.repair.route, item.entity).rung
        done = repair(spec, self.store, run_id, item.entity, to, rung, actor, note)
        return (
            f"{len(done.sent)} sent to {to} through {spec.repair.route}'s outbox, {len(done.already)} sent "
            f"before, {len(done.unmappable)} that cannot be mapped"
        )
