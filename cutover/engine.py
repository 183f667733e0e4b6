"""Changing the ladder: set, promote, roll back, schedule, freeze — each checked, each audited.

A step up needs its gate's verdict to be Successful, or `force` with a reason; a step down is always
allowed. Guardrails watch the evidence windows all the time and act where the cloud reaches the
business: from canary, cloud_primary or cloud they move a pair in one step to the highest rung where
legacy serves; in shadow and dual_write they alert and keep the evidence, and hold the cloud's
copies of a write route while its cloud errors cross them (see `tick`). Freeze
windows refuse changes for an entity; scheduled changes wait for their time (and for a freeze to end).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from cutover.decide import LADDER, Mode, Rule, Side, previous_mode
from cutover.gates import Approval, Counters, Gate, Guardrail, Judgement, Reconciled, Verdict, crossed, judge
from cutover.outbox import Outbox
from cutover.scopes import Person, persons
from cutover.slos import Objective
from cutover.store import AuditEvent, Change, Scheduled, Store, minute
from cutover.webhook import post as post_webhook

log = logging.getLogger("banyan.cutover")
CANARY_STEPS = (1.0, 5.0, 25.0, 50.0, 100.0)
EVIDENCE_DAYS = 30  # minutes of evidence older than this are dropped; the audit keeps what each change saw
NOISE_WINDOW_MINUTES = 24 * 60  # what legacy and the cloud did over the last day decides what is noise
NOISE_MIN_CALLS = 10  # repeated legacy reads before a route that learns noise has its mismatches judged


class CutoverError(ValueError):
    """A change that was refused; the message says why and what to do instead. Nothing was changed."""


class BadRequest(CutoverError):
    """A change that names what does not exist or cannot be (an unknown route, entity or mode, a
    percent out of range, a time that is not one): the request's words, not the ladder's refusal."""


@dataclass(frozen=True)
class RouteInfo:
    """What the engine needs to know of a route to judge a change."""

    name: str
    writes: bool
    has_cloud: bool
    default: Mode = Mode.legacy
    gate: Gate = field(default_factory=Gate)
    guardrail: Guardrail = field(default_factory=Guardrail)
    entities: tuple[str, ...] = ()  # the legal entities the route serves; empty: any
    learns_noise: bool = False  # it asks legacy twice now and then, to learn the fields that differ on their own
    slos: tuple[Objective, ...] = ()  # its business SLOs: their fast burns are told to the webhook
    kind: str = "route"  # or "flow": files on the same ladder
    owner: str = ""  # the team that answers for it, named in every alert
    tags: tuple[str, ...] = ()  # its groups: a person's scope may name them (tag:orders)


@dataclass(frozen=True)
class Status:
    route: str
    entity: str
    rule: Rule
    window: Counters
    verdict: Judgement | None  # for the next rung; None at the top
    next: str | None = None  # where a promotion goes: "dual_write", "canary 5 %"; None at the top
    step_down: AuditEvent | None = None  # the guardrail's last step down, until a person acknowledges it
    settings_from: str = ""  # whose gate and guardrail judged it: a gateway's (recorded) or this process's
    gate: Gate | None = None
    guardrail: Guardrail | None = None
    behind: dict[str, tuple[int, float]] = field(default_factory=dict)  # side → writes owed to it, oldest made
    alert: AuditEvent | None = None  # the guardrail's crossing on this rung (shadow, dual_write), until it clears
    copies_paused: AuditEvent | None = None  # the guardrail holds the cloud's copies, until resumed
    kind: str = "route"  # or "flow"
    needs: str | None = None  # why a promotion needs a second person's approval (cutover/changes.py)

    def as_dict(self) -> dict[str, Any]:
        return {
            "route": self.route,
            "kind": self.kind,
            "needs_approval": self.needs,
            "entity": self.entity,
            "mode": self.rule.mode.value,
            "percent": self.rule.percent,
            "pins": {k: v.value for k, v in self.rule.pins.items()},
            "version": self.rule.version,
            "since": self.rule.since,
            "evidence": self.window.as_dict(),
            "behind": {
                side: {"writes": count, "oldest": datetime.fromtimestamp(oldest, UTC).isoformat()}
                for side, (count, oldest) in self.behind.items()
            },
            "verdict": self.verdict.verdict.value if self.verdict else None,
            "verdict_reasons": self.verdict.reasons if self.verdict else [],
            "next": self.next,
            "settings_from": self.settings_from,
            "gate": self.gate.model_dump() if self.gate else None,
            "guardrail": self.guardrail.model_dump() if self.guardrail else None,
            "step_down": None
            if self.step_down is None
            else {
                "at": self.step_down.at,
                "from_mode": self.step_down.from_mode,
                "from_percent": self.step_down.from_percent,
                "to_mode": self.step_down.to_mode,
                "reason": self.step_down.reason,
                "evidence": self.step_down.evidence,
            },
            "alert": None
            if self.alert is None
            else {"at": self.alert.at, "reason": self.alert.reason, "evidence": self.alert.evidence},
            "copies_paused": None
            if self.copies_paused is None
            else {
                "at": self.copies_paused.at,
                "reason": self.copies_paused.reason,
                "evidence": self.copies_paused.evidence,
            },
        }


CLOUD_SERVES = (Mode.canary, Mode.cloud_primary, Mode.cloud)  # the rungs where the cloud answers consumers
ALERTS = ("guardrail_alert", "guardrail_clear")  # audit kinds: a crossing in shadow or dual_write, and its end
COPIES = ("pause_copies", "resume_copies")  # audit kinds: the cloud's copies held by the guardrail, and let go


def guarded(info: RouteInfo) -> Mode:
    """Where a crossed guardrail takes a pair the cloud answers for: the highest rung where legacy
    serves every call (shadow for reads; dual_write for writes, so the cloud keeps every write)."""
    return Mode.dual_write if info.writes else Mode.shadow


def _rung_name(step: tuple[Mode, float] | None) -> str | None:
    if step is None:
        return None
    mode, percent = step
    return f"canary {percent:g} %" if mode is Mode.canary else mode.value


def require_reason(reason: str) -> None:
    if not reason.strip():
        raise CutoverError("every change needs a reason (--reason): it is kept in the audit log")


THIS_PROCESS = "the route files this process read"


def _differences(what: str, here: BaseModel, there: BaseModel) -> list[str]:
    """'gate min_minutes: 30 here, 0 in the gateway' for each setting that differs."""
    mine, theirs = here.model_dump(), there.model_dump()
    return [
        f"{what} {k}: {_shown(mine[k])} here, {_shown(theirs[k])} in the gateway" for k in mine if mine[k] != theirs[k]
    ]


def _shown(value: Any) -> str:
    return f"{value:g}" if isinstance(value, int | float) else str(value)


def parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def needs_approval(approval: Approval | None, current: Rule, target: Mode, percent: float, forced: bool) -> str | None:
    """Why the step from `current` to `target` needs a second person, in words; None if it does not."""
    if approval is None:
        return None
    up = (LADDER.index(target), percent) > (LADDER.index(current.mode), current.percent)
    if not up:
        return None
    if forced and approval.forced:
        return "a step forced past the gate"
    if target.value in approval.into:
        return f"the step into {target.value}"
    if target is Mode.canary and percent > approval.canary_above:
        return f"the step into canary above {approval.canary_above:g} %"
    return None


class Engine:
    def __init__(
        self, store: Store, routes: list[RouteInfo], entities: list[str] | None = None, webhook: str | None = None
    ):
        self.store = store
        self.routes = {route.name: route for route in routes}
        self.entities = entities
        self.webhook = webhook
        self.settings_from: dict[str, str] = {}  # route → who recorded the gate it is judged by

    # -- reading --------------------------------------------------------------------------------
    def rule(self, route: str, entity: str) -> Rule:
        """The rule in force: the entity's own, else the route's default ("*"), else the spec's."""
        info = self.route(route)
        return self.store.rule(route, entity) or self.store.rule(route, "*") or Rule(route, entity, info.default)

    def route(self, route: str) -> RouteInfo:
        if route not in self.routes:
            raise BadRequest(f"unknown route {route!r}: known routes are {', '.join(sorted(self.routes))}")
        return self.routes[route]

    def check_entity(self, entity: str, info: RouteInfo | None = None) -> str:
        if entity != "*" and self.entities is not None and entity not in self.entities:
            raise BadRequest(f"unknown legal entity {entity!r}: known entities are {', '.join(self.entities)}")
        if entity != "*" and info is not None and info.entities and entity not in info.entities:
            raise BadRequest(f"route {info.name} does not serve {entity}: it serves {', '.join(info.entities)}")
        return entity

    def refusal(self, person: Person | None, route: str, entity: str) -> str | None:
        """Why `person` may not change route × entity (their role, their entities, the route's
        name or tags); None if they may, or for no person (the shared key, a store without persons)."""
        if person is None:
            return None
        info = self.routes.get(route)
        return person.refusal(route, entity, info.tags if info is not None else ())

    def verdict(self, route: str, entity: str) -> Judgement | None:
        """May this route × entity move up a rung? None when it is on the cloud already."""
        info = self.route(route)
        rule = self.rule(route, entity)
        counters, note = self._judged_window(info, rule, entity, info.gate.window_minutes)
        return self._judge(info, rule, counters, note, entity)

    def _window_for(self, rule: Rule, entity: str, minutes: int) -> Counters:
        return self.store.evidence(rule.route, entity, rule.rung, minute() - minutes + 1)

    def learning(self, route: str) -> bool:
        """Is the route still learning which fields legacy changes on its own? Until legacy has been
        asked twice NOISE_MIN_CALLS times, a difference may be noise: mismatches are not judged (and
        the gateways do not count them), while errors are, at once."""
        info = self.route(route)
        if not info.learns_noise:
            return False
        since = minute() - NOISE_WINDOW_MINUTES + 1
        return sum(calls for _, calls in self.store.noise_calls(info.name, since)) < NOISE_MIN_CALLS

    def _judged_window(self, info: RouteInfo, rule: Rule, entity: str, minutes: int) -> tuple[Counters, str]:
        """The evidence a verdict may use, and a note when its mismatches cannot be judged yet."""
        counters = self._window_for(rule, entity, minutes)
        if not self.learning(info.name):
            return counters, ""
        counters.unjudged, counters.mismatches = counters.comparisons, 0
        return (
            counters,
            f"mismatches wait: learning which fields legacy changes on its own ({NOISE_MIN_CALLS} repeated reads)",
        )

    def _judge(
        self,
        info: RouteInfo,
        rule: Rule,
        counters: Counters,
        note: str = "",
        entity: str = "*",
        owed: dict[tuple[str, str, str], tuple[int, float]] | None = None,
    ) -> Judgement | None:
        if rule.mode is Mode.cloud:
            return None
        if rule.mode is Mode.legacy:
            # nothing reaches the cloud yet: the first rung up (shadow) only needs a cloud side
            if not info.has_cloud:
                return Judgement(Verdict.failed, ["the route has no cloud side to shadow"], counters.as_dict())
            if info.writes:
                # dual_write sends real writes to the cloud, and legacy gathers no evidence for it
                reasons = ["no evidence at legacy for writes to the cloud: sign off with --force"]
                return Judgement(Verdict.inconclusive, reasons, counters.as_dict())
            return Judgement(Verdict.successful, ["shadow risks nothing: the cloud only listens"], counters.as_dict())
        since = rule.since
        minutes = (datetime.now(UTC) - parse_time(since)).total_seconds() / 60 if since else float("inf")
        judgement = judge(counters, info.gate, minutes)
        if note and judgement.verdict is not Verdict.failed:
            judgement = Judgement(Verdict.inconclusive, [*judgement.reasons, note], judgement.evidence)
        step = self.next_rung(rule)
        if step is not None and step[0] in CLOUD_SERVES:  # the cloud would serve keys it may be behind on
            owed = Outbox(self.store).backlog() if owed is None else owed
            count, oldest = owed.get((rule.route, entity, Side.cloud.value), (0, 0.0))
            if count:
                age = max(datetime.now(UTC).timestamp() - oldest, 0.0)
                reason = (
                    f"the cloud is still owed {count} write{'s' if count > 1 else ''} (the oldest {age:.0f} s "
                    "old): until they land, the keys they hold stay with legacy"
                )
                verdict = Verdict.failed if judgement.verdict is Verdict.failed else Verdict.inconclusive
                judgement = Judgement(verdict, [*judgement.reasons, reason], judgement.evidence)
        if step is not None and step[0] in (Mode.cloud_primary, Mode.cloud) and info.gate.reconciled is not None:
            judgement = self._reconciled(info.gate.reconciled, entity, judgement)
        return judgement

    def _reconciled(self, wanted: Reconciled, entity: str, judgement: Judgement) -> Judgement:
        """The gate's reconciliation: its newest run for the entity, clean and recent enough."""
        found = self.store.reconciled(wanted.reconciliation, entity)
        name = wanted.reconciliation
        evidence = judgement.evidence | {
            "reconciliation": None
            if found is None
            else {"run": found[0], "state": found[1], "finished": found[2], "drift_rate": found[3]}
        }
        if found is None:
            reason, verdict = f"no run of reconciliation {name} for {entity} yet (banyan reconcile run)", None
        else:
            run, state, finished, drift = found
            hours = (datetime.now(UTC) - parse_time(finished)).total_seconds() / 3600 if finished else float("inf")
            if state != "done":
                reason, verdict = f"reconciliation {name}'s last run ({run}) failed: run it again", None
            elif hours > wanted.max_age_hours:
                reason, verdict = (
                    (
                        f"reconciliation {name}'s last run ({run}) is {hours:.0f} h old, over the "
                        f"{wanted.max_age_hours:g} h allowed"
                    ),
                    None,
                )
            elif drift > wanted.max_drift_rate:
                reason, verdict = (
                    (f"reconciliation {name} (run {run}) drifted {drift:.3%}, over {wanted.max_drift_rate:.3%}"),
                    Verdict.failed,
                )
            else:
                reason, verdict = (
                    f"reconciliation {name} (run {run}) drifted {drift:.3%}: within the gate",
                    Verdict.successful,
                )
        if verdict is Verdict.successful:
            return Judgement(judgement.verdict, [*judgement.reasons, reason], evidence)
        worst = Verdict.failed if Verdict.failed in (verdict, judgement.verdict) else Verdict.inconclusive
        return Judgement(worst, [*judgement.reasons, reason], evidence)

    def use_recorded_settings(self) -> list[str]:
        """Judge with the gates and guardrails the gateways run (recorded when they load their
        routes) rather than with what this process read; says where they differ from this process's."""
        differences = []
        for name, (gate, guardrail, source) in self.store.settings().items():
            info = self.routes.get(name)
            if info is None:
                continue
            changed = _differences("gate", info.gate, gate) + _differences("guardrail", info.guardrail, guardrail)
            if changed:
                differences.append(f"{name}: {'; '.join(changed)} ({source})")
            self.routes[name] = replace(info, gate=gate, guardrail=guardrail)
            self.settings_from[name] = source
        return differences

    def step_downs(self) -> dict[tuple[str, str], AuditEvent]:
        """Guardrail step downs nobody has acknowledged yet, per route × entity."""
        latest = self.store.latest(("guardrail", "acknowledge"))
        return {pair: event for pair, event in latest.items() if event.kind == "guardrail"}

    def status(self, route: str | None = None, entity: str | None = None, attention: bool = False) -> list[Status]:
        """A row per route × entity; with `attention`, each carries its unacknowledged step down, the
        guardrail's open alert and the cloud's paused copies."""
        self.check_names(route, entity)
        downs = self.step_downs() if attention else {}
        alerts = (
            {pair: event for pair, event in self.store.latest(ALERTS).items() if event.kind == "guardrail_alert"}
            if attention
            else {}
        )
        paused = self.paused_copies() if attention else {}
        # a row per stored rule, and per entity each route with a cloud side serves (its default
        # rule "*" when it names none): a legacy-only route has nothing to cut over
        stored = {(r.route, r.entity): r for r in self.store.rules()}
        pairs = set(stored)
        for name, info in self.routes.items():
            entities = info.entities or tuple(self.entities or ())
            if info.has_cloud:
                pairs |= {(name, e) for e in entities} if entities else {(name, "*")}
        owed = Outbox(self.store).backlog()
        rows = []
        for route_name, entity_name in sorted(pairs):
            if route_name not in self.routes or (route and route_name != route) or (entity and entity_name != entity):
                continue
            info = self.routes[route_name]
            rule = stored.get((route_name, entity_name)) or stored.get((route_name, "*"))
            rule = rule or Rule(route_name, entity_name, info.default)
            window, note = self._judged_window(info, rule, entity_name, info.gate.window_minutes)
            judged = self._judge(info, rule, window, note, entity_name, owed)
            behind = {
                side: owed[(route_name, entity_name, side)]
                for side in ("legacy", "cloud")
                if (route_name, entity_name, side) in owed
            }
            pair = (route_name, entity_name)
            alert = alerts.get(pair)
            step = self.next_rung(rule)
            forced = judged is not None and judged.verdict is not Verdict.successful
            needs = needs_approval(info.gate.approval, rule, *step, forced=forced) if step else None
            rows.append(
                Status(
                    route_name,
                    entity_name,
                    rule,
                    window,
                    judged,
                    _rung_name(step),
                    downs.get(pair),
                    self.settings_from.get(route_name, THIS_PROCESS),
                    info.gate,
                    info.guardrail,
                    behind,
                    alert if alert is not None and alert.evidence.get("rung") == rule.rung else None,
                    paused.get(pair),
                    info.kind,
                    needs,
                )
            )
        return rows

    def history(self, route: str | None = None, entity: str | None = None, limit: int = 1000) -> list[AuditEvent]:
        self.check_names(route, entity)
        return self.store.history(route, entity, limit)

    def check_names(self, route: str | None, entity: str | None) -> None:
        """A read names routes and entities as a change must: a typo is refused, not an empty table."""
        info = self.route(route) if route is not None else None
        if entity is not None:
            self.check_entity(entity, info)

    # -- changing -------------------------------------------------------------------------------
    def frozen(self, entity: str, at: datetime | None = None) -> str | None:
        moment = at or datetime.now(UTC)
        for freeze in self.store.freezes():
            if freeze.entity in (entity, "*") and parse_time(freeze.starts) <= moment < parse_time(freeze.ends):
                return f"{freeze.entity} is frozen until {freeze.ends}: {freeze.reason}"
        return None

    def sensible(self, info: RouteInfo, mode: Mode, percent: float) -> None:
        if mode is not Mode.legacy and not info.has_cloud:
            raise CutoverError(f"route {info.name} has no cloud side: only legacy makes sense")
        if mode is Mode.shadow and info.writes:
            raise CutoverError(
                f"route {info.name} writes: shadow would never call the cloud (it gets reads only); use dual_write"
            )
        if mode is Mode.canary and not 0 < percent <= 100:
            raise BadRequest(f"canary needs a percent above 0 and at most 100, not {percent:g}")
        if mode is not Mode.canary and percent:
            raise CutoverError("a percent only goes with canary")

    def set(
        self,
        route: str,
        entity: str,
        mode: Mode | str,
        reason: str,
        actor: str,
        percent: float = 0.0,
        pins: dict[str, Side] | None = None,
        force: bool = False,
        kind: str = "set",
        expected_version: int | None = None,
        at: datetime | None = None,
        acknowledge: bool = False,
        change: Change | None = None,
        then: Callable[[Any], None] | None = None,
    ) -> Rule:
        """Change one route × entity; refused (with nothing changed) unless it is sensible and allowed.

        A step up after a guardrail stepped the pair down is refused until someone acknowledges the
        step down (`acknowledge`, with the reason saying why it is safe now, or `acknowledge()`).
        A step the gate's approval names is made only as an approved `change` (cutover/changes.py);
        `then` runs in the rule's transaction."""
        info = self.route(route)
        self.check_entity(entity, info)
        require_reason(reason)
        try:
            target = Mode(mode)
        except ValueError:
            raise BadRequest(f"unknown mode {mode!r}: use one of {', '.join(m.value for m in LADDER)}") from None
        self.sensible(info, target, percent)
        frozen = self.frozen(entity, at)
        if frozen and kind != "guardrail":
            raise CutoverError(frozen)
        stored = self.store.rule(route, entity)
        current = stored or self.rule(route, entity)
        version = stored.version if stored else 0
        if expected_version is not None and expected_version != version:
            raise CutoverError(f"{route}/{entity} is at version {version}, not {expected_version}: read it again")
        up = (LADDER.index(target), percent) > (LADDER.index(current.mode), current.percent)
        down = self.step_downs().get((route, entity)) if up and kind != "guardrail" else None
        if down is not None and not acknowledge:
            raise CutoverError(
                f"the guardrail stepped {route}/{entity} down at {down.at[:19]} ({down.reason}): acknowledge "
                "the step down, saying in the reason why stepping up is safe now"
            )
        judgement = self.verdict(route, entity)
        evidence: dict[str, Any] = judgement.evidence if judgement else {}
        forced = False
        if up and kind != "guardrail" and (judgement is None or judgement.verdict is not Verdict.successful):
            forced = True
            why = "; ".join(judgement.reasons) if judgement else "no evidence"
            if not force:
                raise CutoverError(
                    f"the gate says {judgement.verdict.value if judgement else 'nothing'} ({why}): "
                    "wait for evidence, or force the step with a reason"
                )
            evidence = evidence | {"forced": True, "verdict": judgement.verdict.value if judgement else None}
        needs = None if kind == "guardrail" else needs_approval(info.gate.approval, current, target, percent, forced)
        if needs and change is None:
            raise CutoverError(
                f"{needs} of {route}/{entity} needs a second person's approval: propose it "
                "(banyan cutover propose, or POST /admin/changes)"
            )
        if change is not None:
            evidence = evidence | {"change": change.id, "proposed_by": change.proposed_by}
        if down is not None:
            self._record_acknowledgement(route, entity, down, reason, actor)
        new = Rule(route, entity, target, percent if target is Mode.canary else 0.0, current.pins | (pins or {}))
        event = {
            "kind": kind,
            "from_mode": current.mode.value,
            "to_mode": target.value,
            "from_percent": current.percent,
            "to_percent": new.percent,
            "reason": reason,
            "evidence": evidence,
        }
        return self.store.put_rule(new, version, actor, event, then)

    def next_rung(self, rule: Rule) -> tuple[Mode, float] | None:
        """Where a promotion from `rule` goes (the next canary step, or the next mode); None at the top."""
        if rule.mode is Mode.canary and rule.percent < 100:
            return Mode.canary, next(p for p in CANARY_STEPS if p > rule.percent)
        if rule.mode is Mode.cloud:
            return None
        target = LADDER[LADDER.index(rule.mode) + 1]
        if target is Mode.shadow and self.route(rule.route).writes:
            target = Mode.dual_write  # write routes skip shadow: it would never reach the cloud
        return target, CANARY_STEPS[0] if target is Mode.canary else 0.0

    def promote(
        self, route: str, entity: str, reason: str, actor: str, force: bool = False, acknowledge: bool = False
    ) -> Rule:
        require_reason(reason)
        step = self.next_rung(self.rule(route, entity))
        if step is None:
            raise CutoverError(f"{route}/{entity} is already on the cloud")
        target, percent = step
        return self.set(
            route, entity, target, reason, actor, percent=percent, force=force, kind="promote", acknowledge=acknowledge
        )

    def acknowledge(self, route: str, entity: str, reason: str, actor: str) -> AuditEvent:
        """Say a person has seen the guardrail's step down of route × entity; returns that step down."""
        self.check_entity(entity, self.route(route))
        require_reason(reason)
        down = self.step_downs().get((route, entity))
        if down is None:
            raise CutoverError(f"{route}/{entity}: no guardrail step down waits to be acknowledged")
        self._record_acknowledgement(route, entity, down, reason, actor)
        return down

    def _record_acknowledgement(self, route: str, entity: str, down: AuditEvent, reason: str, actor: str) -> None:
        evidence = {"step_down": down.id, "stepped_down_at": down.at, "step_down_reason": down.reason}
        self.store.record(actor, route, entity, {"kind": "acknowledge", "reason": reason, "evidence": evidence})

    def rollback(
        self,
        route: str,
        entity: str,
        reason: str,
        actor: str,
        kind: str = "rollback",
        expected_version: int | None = None,
    ) -> Rule:
        require_reason(reason)
        current = self.rule(route, entity)
        target = previous_mode(current.mode)
        if target is None:
            raise CutoverError(f"{route}/{entity} is on legacy already: nothing to roll back")
        if target is Mode.shadow and self.route(route).writes:
            target = Mode.legacy
        percent = 100.0 if target is Mode.canary else 0.0
        if current.mode is Mode.canary:
            target, percent = Mode.dual_write, 0.0
        return self.set(
            route, entity, target, reason, actor, percent=percent, kind=kind, expected_version=expected_version
        )

    def schedule(
        self, route: str, entity: str, mode: str, at: str, reason: str, actor: str, percent: float = 0.0
    ) -> int:
        info = self.route(route)
        self.check_entity(entity, info)
        require_reason(reason)
        try:
            target = Mode(mode)
            self.sensible(info, target, percent)
        except ValueError as exc:
            raise BadRequest(f"cannot schedule: {exc}") from None
        try:
            when = parse_time(at)
        except ValueError:
            raise BadRequest(
                f"cannot schedule: the time is ISO 8601, e.g. 2026-12-31T22:00:00+00:00, not {at!r}"
            ) from None
        needs = needs_approval(info.gate.approval, self.rule(route, entity), target, percent, forced=True)
        if needs:  # a schedule applies whatever the gate says then: forced
            raise CutoverError(
                f"{needs} of {route}/{entity} needs a second person's approval: propose it with its time "
                "(banyan cutover propose … --at …); once approved it is scheduled"
            )
        return self.store.add_schedule(route, entity, mode, percent, when.isoformat(), reason, actor)

    def freeze(self, entity: str, starts: str, ends: str, reason: str, actor: str) -> None:
        self.check_entity(entity)
        require_reason(reason)
        try:
            start, end = parse_time(starts), parse_time(ends)
        except ValueError as exc:
            raise BadRequest(f"times are ISO 8601, e.g. 2026-12-29T00:00:00+00:00: {exc}") from None
        if end <= start:
            raise CutoverError("a freeze must end after it starts")
        self.store.add_freeze(entity, start.isoformat(), end.isoformat(), reason, actor)
        self.store.record(
            actor, "*", entity, {"kind": "freeze", "reason": f"{reason} ({start.isoformat()} → {end.isoformat()})"}
        )

    # -- by itself ------------------------------------------------------------------------------
    def tick(self, now: datetime | None = None) -> list[str]:
        """Apply due schedules and guardrails; returns what was done, for the log."""
        moment = now or datetime.now(UTC)
        done: list[str] = []
        due = [item for item in self.store.schedules("pending") if parse_time(item.at) <= moment]
        people = persons(self.store.consumers()) if due else {}
        for item in due:
            if item.route not in self.routes:
                continue  # for a route or flow another process serves: it applies it
            frozen = self.frozen(item.entity, moment)
            if frozen:
                self.store.mark_schedule(item.id, "pending", f"postponed: {frozen}")
                continue
            try:
                self._apply_schedule(item, people.get(item.actor), moment)
                self.store.mark_schedule(item.id, "applied", f"applied at {moment.isoformat()}")
                done.append(f"schedule {item.id} applied")
            except (CutoverError, ValueError) as exc:
                self.store.mark_schedule(item.id, "refused", str(exc))
        self.store.prune_evidence(minute(moment.timestamp()) - EVIDENCE_DAYS * 24 * 60)
        self.store.prune_idempotency(moment.timestamp())
        alerts, copies = self.store.latest(ALERTS), self.store.latest(COPIES)
        for status in self.status():
            info = self.routes[status.route]
            pair = (status.route, status.entity)
            held = copies.get(pair)
            if status.rule.mode is Mode.legacy and (held is None or held.kind != "pause_copies"):
                continue  # nothing reaches the cloud, and nothing of it is held
            # errors trip the guardrail at once; mismatches only once the noise is learnt
            counters, _ = self._judged_window(info, status.rule, status.entity, info.guardrail.window_minutes)
            reasons = crossed(counters, info.guardrail)
            if status.rule.mode in CLOUD_SERVES:
                done += self._step_down(status, info, reasons, counters)
            elif status.rule.mode is not Mode.legacy:
                done += self._alert(status, reasons, counters, alerts.get(pair))
            if info.writes:
                done += self._hold_copies(status, info, held)
        return done

    def _apply_schedule(self, item: Scheduled, person: Person | None, moment: datetime) -> None:
        """A due schedule, as its actor may make it now (their scope when it applies, not when it
        was made), with the approval it carries, on the rule's version the approval was for."""
        refusal = self.refusal(person, item.route, item.entity)
        if refusal is not None:
            raise CutoverError(f"{refusal}: the schedule is not applied")
        change = self.store.change(item.change_id) if item.change_id is not None else None
        if change is not None:
            stored = self.store.rule(item.route, item.entity)
            if (stored.version if stored else 0) != change.rule_version:
                raise CutoverError(
                    f"{item.route}/{item.entity} moved since change {change.id} was approved: propose it again"
                )
        self.set(
            item.route,
            item.entity,
            item.mode,
            item.reason,
            item.actor,
            percent=item.percent,
            force=True,
            kind="schedule",
            at=moment,
            expected_version=change.rule_version if change is not None else None,
            change=change,
        )

    # -- the guardrail --------------------------------------------------------------------------
    # It acts where the cloud reaches the business. Where the cloud answers consumers (canary,
    # cloud_primary, cloud), a crossed guardrail moves the pair in one step to the highest rung where
    # legacy serves (`guarded`). In shadow and dual_write legacy answers every call already: stepping
    # down would protect no one and stop the evidence, so a crossing is alerted (once per crossing)
    # and kept; and on a write route, cloud errors in dual_write pause the cloud's copies (the outbox
    # holds them, the rung stays) until a person resumes them or the errors leave the window.
    def _step_down(self, status: Status, info: RouteInfo, reasons: list[str], counters: Counters) -> list[str]:
        if not reasons:
            return []
        try:
            # the version this judgement was made on: if another gateway stepped down meanwhile, do not again
            own = status.rule.version if status.rule.entity == status.entity else 0
            why = "guardrail: " + "; ".join(reasons)
            rule = self.set(
                status.route, status.entity, guarded(info), why, "guardrail", kind="guardrail", expected_version=own
            )
        except Exception as exc:  # a concurrent step down by another gateway is fine
            log.info("guardrail step down of %s/%s not applied: %s", status.route, status.entity, exc)
            return []
        self._call_webhook("step_down", status.route, status.entity, status.rule, rule.mode, reasons, counters)
        return [f"guardrail stepped {status.route}/{status.entity} down to {rule.mode.value}"]

    def _alert(self, status: Status, reasons: list[str], counters: Counters, last: AuditEvent | None) -> list[str]:
        """Alert a crossing once, on the rung it was seen on; say when it clears, so the next alerts."""
        alerting = last is not None and last.kind == "guardrail_alert" and last.evidence.get("rung") == status.rule.rung
        if bool(reasons) == alerting:
            return []
        route, entity = status.route, status.entity
        evidence = counters.as_dict() | {"rung": status.rule.rung}
        if reasons:
            why = "guardrail (legacy serves every call, so the rung stays): " + "; ".join(reasons)
            event = {"kind": "guardrail_alert", "reason": why, "evidence": evidence}
        else:
            event = {
                "kind": "guardrail_clear",
                "reason": "the window is within the guardrail again",
                "evidence": evidence,
            }
        if not self.store.record_if("guardrail", route, entity, event, ALERTS, last.id if last else None):
            return []  # another gateway said it first
        if not reasons:
            return [f"guardrail cleared on {route}/{entity}"]
        self._call_webhook("alert", route, entity, status.rule, status.rule.mode, reasons, counters)
        return [f"guardrail alert on {route}/{entity} ({status.rule.mode.value} stays): {'; '.join(reasons)}"]

    def _hold_copies(self, status: Status, info: RouteInfo, last: AuditEvent | None) -> list[str]:
        """Pause the cloud's copies of a write route in dual_write while its cloud errors cross the
        guardrail; resume them once the window holds no such errors. After a person resumes them, only
        errors from the next minute on count."""
        paused = last is not None and last.kind == "pause_copies"
        if not paused and status.rule.mode is not Mode.dual_write:
            return []
        since = minute() - info.guardrail.window_minutes + 1
        if last is not None and last.kind == "resume_copies" and last.actor != "guardrail":
            since = max(since, minute(parse_time(last.at).timestamp()) + 1)
        window = self.store.evidence(status.route, status.entity, status.rule.rung, since)
        errors = crossed(Counters(calls_cloud=window.calls_cloud, errors_cloud=window.errors_cloud), info.guardrail)
        if bool(errors) == paused:
            return []
        route, entity = status.route, status.entity
        if errors:
            why = "guardrail: " + "; ".join(errors) + " — the cloud's copies wait in the outbox, the rung stays"
            event = {"kind": "pause_copies", "reason": why, "evidence": window.as_dict()}
        else:
            event = {
                "kind": "resume_copies",
                "reason": "guardrail: the cloud's errors left the window",
                "evidence": window.as_dict(),
            }
        waking = None if errors else self._waking(route, entity)
        if not self.store.record_if("guardrail", route, entity, event, COPIES, last.id if last else None, waking):
            return []
        action = "pause_copies" if errors else "resume_copies"
        self._call_webhook(action, route, entity, status.rule, status.rule.mode, errors, window)
        return [f"guardrail {'paused' if errors else 'resumed'} the cloud's copies of {route}/{entity}"]

    def _waking(self, route: str, entity: str) -> Callable[[Any], None]:
        """Makes the cloud's held copies of route × entity due now, in the transaction that resumes them."""
        outbox = Outbox(self.store)
        return lambda cursor: outbox.wake_in(cursor, route, entity, Side.cloud.value)

    def paused_copies(self) -> dict[tuple[str, str], AuditEvent]:
        """Route × entity pairs whose copies to the cloud the guardrail holds, with why."""
        return {pair: event for pair, event in self.store.latest(COPIES).items() if event.kind == "pause_copies"}

    def resume_copies(self, route: str, entity: str, reason: str, actor: str) -> AuditEvent:
        """A person lets the cloud's held copies go again; returns the pause it ends."""
        self.check_entity(entity, self.route(route))
        require_reason(reason)
        last = self.store.latest(COPIES).get((route, entity))
        if last is None or last.kind != "pause_copies":
            raise CutoverError(f"{route}/{entity}: the cloud's copies are not paused")
        event = {"kind": "resume_copies", "reason": reason, "evidence": {"pause": last.id, "paused_at": last.at}}
        if not self.store.record_if(actor, route, entity, event, COPIES, last.id, then=self._waking(route, entity)):
            raise CutoverError(f"{route}/{entity}: the copies were resumed or paused again meanwhile: read it again")
        return last

    def _call_webhook(
        self, action: str, route: str, entity: str, old: Rule, new: Mode, reasons: list[str], counters: Counters
    ) -> None:
        if not self.webhook:
            return
        payload = {
            "event": "guardrail",
            "action": action,
            "route": route,
            "entity": entity,
            "from": old.mode.value,
            "to": new.value,
            "reasons": reasons,
            "evidence": counters.as_dict(),
            "owner": self.routes[route].owner or None if route in self.routes else None,
        }
        post_webhook(self.webhook, payload, "guardrail")
