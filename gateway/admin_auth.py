"""Who calls the admin API: the gateway's shared admin key (the actor named in X-Actor) or a
person's own key (a consumer with a role: viewer, operator, admin, and a scope of entities and
route groups: cutover/scopes.py), and a change's body. A change checks the scope of its row
(`in_scope`): out of it is a 403 that says why."""

from __future__ import annotations

import hmac
from typing import Any

from aiohttp import web

from cutover.engine import Engine
from cutover.scopes import ROLES, Person
from gateway.consumers import Consumer
from gateway.guessing import WRONG_KEY
from gateway.inputs import parse_json
from gateway.problems import Problem
from gateway.state import ADMIN_KEY, SETTINGS

PERSON = web.RequestKey("admin_person", Person)  # the person a change is made by (absent: the shared key)


def admin_actor(request: web.Request, need: str = "viewer") -> str:
    """Check the admin key; return who acts (see `identify`)."""
    return identify(request, need)[0]


def identify(request: web.Request, need: str = "viewer") -> tuple[str, Consumer | None]:
    """Who the admin key is: a person's key (a consumer with a role) names its holder, whatever
    X-Actor says; the gateway's shared --admin-key takes the actor from X-Actor (and no person)."""
    given = request.headers.get("X-Admin-Key", "")
    if not given:
        raise Problem(401, "Admin key required", "send the admin key in the X-Admin-Key header")
    if hmac.compare_digest(given.encode("utf-8", "surrogateescape"), request.app[ADMIN_KEY].encode()):
        actor = request.headers.get("X-Actor", "").strip()
        if not is_text(actor):
            raise Problem(400, "Header not acceptable", "the X-Actor header must be UTF-8 text")
        return actor, None
    consumers = request.app[SETTINGS].consumers
    person = consumers.find(given) if consumers is not None else None
    role = person.admin_role if person is not None else None
    if person is None or role is None:
        request[WRONG_KEY] = ("admin", given)  # counted, and answered more slowly as they add up (guessing.py)
        raise Problem(401, "Wrong admin key", "the admin key is not valid: check it with whoever runs the gateway")
    if ROLES.index(role) < ROLES.index(need):
        raise Problem(403, "Role not allowed", f"{person.name} is a {role}; this needs an {need}")
    request[PERSON] = person.person()
    return person.name, person


def in_scope(request: web.Request, engine: Engine, route: str, entity: str) -> None:
    """A 403 with the reason unless the person making the change may act on route × entity (the
    shared admin key reaches every row)."""
    refusal = engine.refusal(request.get(PERSON), route, entity)
    if refusal is not None:
        raise Problem(403, "Out of scope", f"{refusal}: nothing was changed")


async def change_body(request: web.Request) -> tuple[dict[str, Any], str]:
    """A change's JSON object and who makes it: the admin key is checked before the body is read
    (no key is a 401 whatever the body), and every text in it must be text (no lone surrogate)."""
    who = admin_actor(request, "operator")
    body = parse_json(await request.read())
    if not isinstance(body, dict):
        raise Problem(400, "Malformed request", "send a JSON object")
    for name, value in body.items():
        if isinstance(value, str) and not is_text(value):
            raise Problem(400, "Malformed request", f"{name} is not text: it holds a lone surrogate")
    actor = who or str(body.get("actor", "")).strip()
    if not actor:
        raise Problem(400, "Actor required", 'every change names its actor: send X-Actor or "actor"')
    return body, actor


def is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
