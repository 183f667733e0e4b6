"""Change requests on the admin API: the approvers' queue, a proposal, and its decision.

GET  /admin/changes?state=proposed          the queue, each with whether the caller may decide it
POST /admin/changes                         {route, entity, mode, percent?, force?, at?, reason}
POST /admin/changes/{id}/approve|reject|withdraw   {reason}

A proposal and a decision check the scope of the row, like every change; an approval by the
proposer is refused, and of two approvals at once one applies and the other is a 409.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from cutover.changes import Changes
from cutover.runtime import in_thread
from cutover.scopes import Person
from cutover.store import Change, StoreError
from gateway.admin import changed
from gateway.admin_auth import PERSON, change_body, identify, in_scope
from gateway.problems import Problem
from gateway.state import CUTOVER

STATES = ("proposed", "applied", "scheduled", "rejected", "withdrawn", "expired", "refused")


def _shown(change: Change, actor: str, person: Person | None, changes: Changes) -> dict[str, Any]:
    """The request, and whether (and why not) the caller may approve it: the console's buttons."""
    why = None
    if change.state != "proposed":
        why = f"it is {change.state}"
    elif change.proposed_by == actor:
        why = "you proposed it: a second person approves it"
    else:
        why = changes.engine.refusal(person, change.route, change.entity)
    return {**change.as_dict(), "may_approve": why is None, "why_not": why}


async def admin_changes(request: web.Request) -> web.Response:
    actor, _ = identify(request)
    state = request.query.get("state") or None
    if state is not None and state not in STATES:
        raise Problem(400, "Bad query", f"state is one of {', '.join(STATES)}")
    changes = Changes(request.app[CUTOVER].engine)
    try:
        found = await in_thread(changes.store.changes, state)
    except StoreError as exc:
        raise Problem(503, "Cutover store unavailable", str(exc)) from None
    person = request.get(PERSON)
    return web.json_response({"changes": [_shown(change, actor, person, changes) for change in found]})


async def admin_propose(request: web.Request) -> web.Response:
    body, actor = await change_body(request)
    route, entity = str(body.get("route", "")), str(body.get("entity", ""))
    engine = request.app[CUTOVER].engine
    in_scope(request, engine, route, entity)
    try:
        percent = float(body.get("percent") or 0)
    except (TypeError, ValueError):
        raise Problem(400, "Malformed percent", f"percent is a number, not {body.get('percent')!r}") from None
    at = body.get("at")
    change = await changed(
        lambda: Changes(engine).propose(
            route,
            entity,
            str(body.get("mode", "")),
            str(body.get("reason", "")),
            actor,
            percent=percent,
            force=bool(body.get("force")),
            at=str(at) if at else None,
        )
    )
    return web.json_response(change.as_dict(), status=201)


async def admin_decide(request: web.Request) -> web.Response:
    body, actor = await change_body(request)
    change_id, action = int(request.match_info["id"]), request.match_info["action"]
    if change_id >= 2**63:
        raise Problem(422, "Change refused", f"no change request {change_id}")
    cutover = request.app[CUTOVER]
    changes = Changes(cutover.engine)
    found = await changed(lambda: changes.store.change(change_id))
    if found is None:
        raise Problem(422, "Change refused", f"no change request {change_id}")
    in_scope(request, cutover.engine, found.route, found.entity)
    decide = {"approve": changes.approve, "reject": changes.reject, "withdraw": changes.withdraw}[action]
    decided = await changed(lambda: decide(change_id, str(body.get("reason", "")), actor))
    await in_thread(cutover.reload)  # this gateway sees an applied change at once
    return web.json_response(decided.as_dict())


def add_change_routes(app: web.Application) -> None:
    app.router.add_get("/admin/changes", admin_changes)
    app.router.add_post("/admin/changes", admin_propose)
    app.router.add_post(r"/admin/changes/{id:\d+}/{action:approve|reject|withdraw}", admin_decide)
