"""Change requests: four eyes on the big steps.

A route's or flow's gate may name the steps up that need a second person (`gate.approval`): by
default into canary above 25 %, into cloud_primary, into cloud, and any step forced past the gate.
Such a step is proposed, with its reason and the gate's evidence then, and applied only when a
different person whose scope reaches the row approves it, on the rule's version it was proposed
on. A proposal can also be rejected, withdrawn by its proposer, or expire. One proposed with a time
(`at`) becomes a schedule when approved: the schedule carries the approval and applies it when due.

Step-downs never wait: a rollback or the guardrail moves at once. Every proposal and decision is an
audit event, and the approvers are told through the webhook, once for the fleet.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from cutover.decide import LADDER, Mode, Rule
from cutover.engine import BadRequest, CutoverError, Engine, needs_approval, parse_time, require_reason
from cutover.gates import Approval, Verdict
from cutover.store import Change, Conflict, now_iso
from cutover.webhook import post as post_webhook


class Changes:
    """Proposals and their decisions, on the engine's store and ladder."""

    def __init__(self, engine: Engine) -> None:
        self.engine, self.store = engine, engine.store

    def propose(
        self,
        route: str,
        entity: str,
        mode: str,
        reason: str,
        actor: str,
        percent: float = 0.0,
        force: bool = False,
        at: str | None = None,
    ) -> Change:
        info = self.engine.route(route)
        self.engine.check_entity(entity, info)
        require_reason(reason)
        try:
            target = Mode(mode)
        except ValueError:
            raise BadRequest(f"unknown mode {mode!r}") from None
        self.engine.sensible(info, target, percent)
        when = None
        if at:
            try:
                when = parse_time(at).isoformat()
            except ValueError:
                raise BadRequest(f"the time is ISO 8601, e.g. 2026-12-31T22:00:00+00:00, not {at!r}") from None
        stored = self.store.rule(route, entity)
        current = stored or self.engine.rule(route, entity)
        if (LADDER.index(target), percent) <= (LADDER.index(current.mode), current.percent):
            raise CutoverError(f"{route}/{entity} is on {current.mode.value}: a step up is proposed, a step down made")
        judgement = self.engine.verdict(route, entity)
        verdict = judgement.verdict if judgement is not None else None
        if verdict is not Verdict.successful and not force and not at:
            why = "; ".join(judgement.reasons) if judgement else "no evidence"
            raise CutoverError(
                f"the gate says {verdict.value if verdict else 'nothing'} ({why}): propose it forced, with the reason"
            )
        approval = info.gate.approval or Approval()
        needs = needs_approval(approval, current, target, percent, force and verdict is not Verdict.successful)
        change = Change(
            0,
            route,
            entity,
            target.value,
            percent if target is Mode.canary else 0.0,
            force,
            when,
            stored.version if stored else 0,
            reason,
            {"verdict": verdict.value if verdict else None, **(judgement.evidence if judgement else {})},
            needs or "asked for by its proposer",
            actor,
            now_iso(),
            time.time() + approval.expires_hours * 3600,
            "proposed",
            "",
            None,
            "",
        )

        def audit(cursor: object, change_id: int) -> None:
            self._audit(cursor, change, change_id, "propose", actor, reason)

        change_id = self.store.add_change(change, audit)
        found = self.store.change(change_id)
        assert found is not None
        return found

    def approve(self, change_id: int, reason: str, actor: str) -> Change:
        """Apply the proposal (or schedule it, if it names a time); refused for its proposer, after
        it expired, or when the rule moved since it was proposed."""
        require_reason(reason)
        change = self._proposed(change_id)
        if actor == change.proposed_by:
            raise CutoverError(f"change {change_id}: {actor} proposed it; a second person approves it")
        if change.at is not None:

            def scheduled(cursor: object) -> None:
                self.store.schedule_in(
                    cursor,
                    change.route,
                    change.entity,
                    change.mode,
                    change.percent,
                    str(change.at),
                    change.reason,
                    change.proposed_by,
                    change.id,
                )
                self._audit(cursor, change, change.id, "approve", actor, f"{reason} (scheduled for {change.at})")

            self.store.decide(change_id, "scheduled", actor, reason, scheduled)
        else:
            self.apply(change, actor, reason)
        decided = self.store.change(change_id)
        assert decided is not None
        return decided

    def apply(self, change: Change, actor: str, reason: str) -> Rule:
        """The approved step, on the rule's version it was proposed on, and the request marked
        applied in the same transaction as the rule: once, whoever else approves at the same
        moment. A rule that moved since leaves the request refused."""

        def applied(cursor: object) -> None:
            self.store.decide_in(cursor, change.id, "applied", actor, reason)

        stored = self.store.rule(change.route, change.entity)
        if (stored.version if stored else 0) != change.rule_version:
            moved = f"version {stored.version}, {stored.mode.value}" if stored else "gone"
            self._settle(change, "refused", actor, f"the rule moved since it was proposed ({moved})")
            raise CutoverError(
                f"{change.route}/{change.entity} moved since change {change.id} was proposed ({moved}): "
                "propose it again"
            )
        return self.engine.set(
            change.route,
            change.entity,
            change.mode,
            f"{change.reason} (approved by {actor}: {reason})",
            actor,
            percent=change.percent,
            force=change.force,
            kind="approve",
            expected_version=change.rule_version,
            change=change,
            then=applied,
        )

    def reject(self, change_id: int, reason: str, actor: str) -> Change:
        require_reason(reason)
        change = self._proposed(change_id)
        return self._settle(change, "rejected", actor, reason)

    def withdraw(self, change_id: int, reason: str, actor: str) -> Change:
        require_reason(reason)
        change = self._proposed(change_id)
        if actor != change.proposed_by:
            raise CutoverError(f"change {change_id}: only {change.proposed_by}, who proposed it, withdraws it")
        return self._settle(change, "withdrawn", actor, reason)

    def expire(self, now: float | None = None) -> list[str]:
        """Proposals nobody decided on in time: expired, each once for the fleet."""
        moment, done = time.time() if now is None else now, []
        for change in self.store.changes("proposed"):
            if change.expires <= moment:
                try:
                    self._settle(change, "expired", "banyan", "nobody decided on it in time")
                    done.append(f"change {change.id} expired")
                except Conflict:
                    pass  # decided or expired by another process meanwhile
        return done

    def tell(self, webhook: str | None) -> list[str]:
        """Post each new proposal to the webhook, once for the fleet: the approvers' call to act."""
        if not webhook:
            return []
        done = []
        for change in self.store.untold_changes():
            if not self.store.mark_told(change.id, time.time()):
                continue
            info = self.engine.routes.get(change.route)
            payload = {
                "event": "change_proposed",
                "change": change.as_dict(),
                "owner": (info.owner or None) if info is not None else None,
                "approve": f"/admin/changes/{change.id}/approve",
            }
            post_webhook(webhook, payload, "change request")
            done.append(f"change {change.id} told")
        return done

    def _proposed(self, change_id: int) -> Change:
        change = self.store.change(change_id)
        if change is None:
            raise BadRequest(f"no change request {change_id}")
        if change.state != "proposed":
            said = f" by {change.decided_by}" if change.decided_by else ""
            raise CutoverError(f"change {change_id} is {change.state}{said}: nothing to decide")
        if change.expires <= time.time():
            self._settle(change, "expired", "banyan", "nobody decided on it in time")
            raise CutoverError(f"change {change_id} expired at {_stamp(change.expires)}: propose it again")
        return change

    def _settle(self, change: Change, state: str, actor: str, note: str) -> Change:
        def audit(cursor: object) -> None:
            self._audit(cursor, change, change.id, _ACTIONS[state], actor, note)

        self.store.decide(change.id, state, actor, note, audit)
        decided = self.store.change(change.id)
        assert decided is not None
        return decided

    def _audit(self, cursor: object, change: Change, change_id: int, kind: str, actor: str, reason: str) -> None:
        event = {
            "kind": kind,
            "from_mode": None,
            "to_mode": change.mode,
            "to_percent": change.percent,
            "reason": reason or change.reason,
            "evidence": {"change": change_id, "proposed_by": change.proposed_by, "needs": change.needs},
        }
        self.store.append_audit(cursor, now_iso(), actor, change.route, change.entity, event)


_ACTIONS = {"rejected": "reject", "withdrawn": "withdraw", "expired": "expire", "refused": "refuse_change"}


def _stamp(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds")
