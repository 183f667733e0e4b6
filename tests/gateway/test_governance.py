"""Federated governance on a fleet: two real gateways on one PostgreSQL store, persons kept in the
store. An entity's operator moves their own rows and is refused, with the reason, on another
entity's (admin API on either gateway, the CLI, a schedule); the step into cloud_primary needs a
second person, never the proposer, and two approvers at once apply it once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from typer.testing import CliRunner

from cli.main import app
from cutover.outbox import Outbox
from cutover.store import open_store
from inbox.collect import collect
from inbox.store import Inbox
from tests.cutover.conftest import postgres_url  # noqa: F401 - the fixture
from tests.gateway.conftest import serve_process
from tests.gateway.test_cutover import erp, wait_until
from tests.inbox.test_inbox import dead_message

runner = CliRunner(env={"COLUMNS": "250"})
SHARED = "admin-key-0123456789"
PEOPLE = {  # name → (role, entity)
    "Uma UK": ("operator", "ACME-UK"),
    "Sam US": ("operator", "ACME-US"),
    "Tess US": ("operator", "ACME-US"),
    "Cleo Central": ("admin", None),
}


def routes_text(legacy: str, cloud: str) -> str:
    return f"""\
routes:
  - name: order-put
    operation: {{method: POST, path: "/v1/{{entity}}/orders/{{orderId}}", idempotency_key: required}}
    entity: {{from: path, name: entity, values: [ACME-UK, ACME-US]}}
    key: {{from: path, name: orderId}}
    writes: true
    tags: [orders]
    legacy: {{backend: {{backend: http, url: "{legacy}/orders/{{orderId}}", timeout: 2}}}}
    cloud: {{backend: {{backend: http, url: "{cloud}/orders/{{orderId}}", timeout: 2}}}}
    cutover:
      gate: {{min_samples: 5, min_minutes: 0, approval: {{forced: false}}}}  # into cloud_primary and cloud
"""


def cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output + (result.stderr if result.stderr_bytes else "")


def headers(key: str) -> dict[str, str]:
    return {"X-Admin-Key": key}


def knows(url: str, key: str) -> bool:
    return requests.get(f"{url}/admin/whoami", headers=headers(key), timeout=2).ok


@pytest.fixture
def fleet(postgres_url: str, tmp_path: Path) -> Iterator[tuple[str, str, dict[str, str], Path]]:  # noqa: F811
    """Two gateways on one PostgreSQL store, the persons' keys made with `banyan keys create`."""
    open_store(postgres_url).close()
    keys = {}
    for name, (role, entity) in PEOPLE.items():
        scope = ["--entity", entity] if entity else []
        code, said = cli("keys", "create", name, "--role", role, *scope, "--store", postgres_url)
        assert code == 0, said
        keys[name] = said.splitlines()[0]
    with erp("legacy") as legacy, erp("cloud") as cloud:
        routes = tmp_path / "routes"
        routes.mkdir()
        (routes / "orders.yaml").write_text(routes_text(legacy.url, cloud.url))
        options = ("--routes", str(routes), "--store", postgres_url)
        with (
            serve_process(*options, env={"BANYAN_ADMIN_KEY": SHARED}) as a,
            serve_process(*options, env={"BANYAN_ADMIN_KEY": SHARED}) as b,
        ):
            for url in (a, b):  # each gateway has heard of the persons the store holds
                wait_until(lambda url=url: knows(url, keys["Uma UK"]), 10)  # type: ignore[misc]
            yield a, b, keys, routes


def test_an_entitys_operator_is_refused_on_another_entitys_rows_everywhere(
    fleet: tuple[str, str, dict[str, str], Path],
    postgres_url: str,  # noqa: F811
) -> None:
    a, b, keys, routes = fleet
    uma = headers(keys["Uma UK"])
    why = "Uma UK acts for ACME-UK, not for ACME-US: nothing was changed"
    refused = [
        requests.put(f"{a}/admin/cutover/order-put/ACME-US", json={"mode": "dual_write", "reason": "r"}, headers=uma),
        requests.post(f"{b}/admin/cutover/order-put/ACME-US/promote", json={"reason": "r"}, headers=uma),
        requests.post(
            f"{a}/admin/cutover/schedule",
            json={
                "route": "order-put",
                "entity": "ACME-US",
                "mode": "dual_write",
                "at": "2027-01-01T00:00Z",
                "reason": "r",
            },
            headers=uma,
        ),
        requests.post(
            f"{b}/admin/cutover/freeze",
            json={"entity": "ACME-US", "starts": "2027-01-01T00:00Z", "ends": "2027-01-02T00:00Z", "reason": "r"},
            headers=uma,
        ),
        requests.post(
            f"{a}/admin/changes",
            json={"route": "order-put", "entity": "ACME-US", "mode": "dual_write", "reason": "r"},
            headers=uma,
        ),
    ]
    # an ACME-US message the outbox gave up on, and its exception in the inbox
    opened = open_store(postgres_url)
    message = dead_message(opened, "SO-77", entity="ACME-US")
    collect(opened)
    [item] = Inbox(opened).page()
    refused += [
        requests.post(f"{b}/admin/outbox/{message}/replay", json={"reason": "r"}, headers=uma),
        requests.post(f"{a}/admin/exceptions/{item.id}/discard", json={"note": "r"}, headers=uma),
    ]
    for answer in refused:
        assert (answer.status_code, answer.json()["title"], answer.json()["detail"]) == (403, "Out of scope", why)
    assert Outbox(opened).get(message).state == "dead" and Inbox(opened).page()[0].state == "open"
    listed = requests.get(f"{b}/admin/exceptions", headers=uma, timeout=5).json()["exceptions"]
    assert [entry["why_not"] for entry in listed] == ["Uma UK acts for ACME-UK, not for ACME-US"]
    opened.close()
    # their own entity's row moves; the status says which rows are theirs to act on, and why not the others
    own = requests.put(
        f"{b}/admin/cutover/order-put/ACME-UK",
        json={"mode": "dual_write", "reason": "UK go", "force": True},
        headers=uma,
    )
    assert own.status_code == 200, own.text
    rows = {row["entity"]: row for row in requests.get(f"{a}/admin/cutover", headers=uma, timeout=5).json()}
    assert (
        rows["ACME-UK"]["why_not"] is None and rows["ACME-US"]["why_not"] == "Uma UK acts for ACME-UK, not for ACME-US"
    )
    me = requests.get(f"{a}/admin/whoami", headers=uma, timeout=5).json()
    assert me == {"actor": "Uma UK", "role": "operator", "key": "personal", "scope": "ACME-UK; every route"}
    # the CLI against the store: the key makes the change the person's, and their scope applies
    store = ("--store", postgres_url, "--routes", str(routes))
    code, said = cli(
        "cutover", "set", "order-put", "ACME-US", "dual_write", "--reason", "r", "--key", keys["Uma UK"], *store
    )
    assert code == 1 and "refused: Uma UK acts for ACME-UK, not for ACME-US: nothing was changed" in said
    code, said = cli("cutover", "rollback", "order-put", "ACME-UK", "--reason", "r", *store)
    assert code == 2 and "give your admin key (--key or BANYAN_KEY)" in said
    code, said = cli(
        "cutover", "rollback", "order-put", "ACME-UK", "--reason", "UK back", "--key", keys["Uma UK"], *store
    )
    assert code == 0, said
    history = open_store(postgres_url).history("order-put")
    assert [(event.kind, event.actor, event.entity) for event in history] == [
        ("rollback", "Uma UK", "ACME-UK"),
        ("set", "Uma UK", "ACME-UK"),
    ]


def test_cloud_primary_needs_a_second_person_and_two_approvers_at_once_apply_it_once(
    fleet: tuple[str, str, dict[str, str], Path],
    postgres_url: str,  # noqa: F811
) -> None:
    a, b, keys, routes = fleet
    sam, tess, cleo = headers(keys["Sam US"]), headers(keys["Tess US"]), headers(keys["Cleo Central"])
    moved = requests.put(
        f"{a}/admin/cutover/order-put/ACME-US", json={"mode": "dual_write", "reason": "go", "force": True}, headers=sam
    )
    assert moved.status_code == 200, moved.text
    straight = requests.put(
        f"{b}/admin/cutover/order-put/ACME-US",
        json={"mode": "cloud_primary", "reason": "now", "force": True},
        headers=sam,
    )
    assert straight.status_code == 422 and "needs a second person's approval" in straight.json()["detail"]
    proposed = requests.post(
        f"{a}/admin/changes",
        json={"route": "order-put", "entity": "ACME-US", "mode": "cloud_primary", "reason": "CAB-77", "force": True},
        headers=sam,
    )
    assert proposed.status_code == 201, proposed.text
    number = proposed.json()["id"]
    own = requests.post(f"{b}/admin/changes/{number}/approve", json={"reason": "fine by me"}, headers=sam)
    assert own.status_code == 422 and "Sam US proposed it; a second person approves it" in own.json()["detail"]
    uma = requests.post(f"{a}/admin/changes/{number}/approve", json={"reason": "ok"}, headers=headers(keys["Uma UK"]))
    assert uma.status_code == 403
    queue = requests.get(f"{b}/admin/changes?state=proposed", headers=sam, timeout=5).json()["changes"]
    assert [(c["id"], c["may_approve"], c["why_not"]) for c in queue] == [
        (number, False, "you proposed it: a second person approves it")
    ]
    start, answers = threading.Barrier(2), []

    def approve(url: str, who: dict[str, str]) -> None:
        start.wait()
        answers.append(requests.post(f"{url}/admin/changes/{number}/approve", json={"reason": "checked"}, headers=who))

    clicks = [threading.Thread(target=approve, args=pair) for pair in ((a, tess), (b, cleo))]
    for click in clicks:
        click.start()
    for click in clicks:
        click.join()
    assert sorted(answer.status_code for answer in answers) in ([200, 409], [200, 422])
    [won] = [answer.json() for answer in answers if answer.status_code == 200]
    assert won["state"] == "applied" and won["decided_by"] in ("Tess US", "Cleo Central")
    events = open_store(postgres_url).history("order-put", "ACME-US")
    assert [event.kind for event in events] == ["approve", "propose", "set"]
    assert events[0].to_mode == "cloud_primary" and events[0].evidence["proposed_by"] == "Sam US"
    for url in (a, b):  # every gateway of the fleet serves the new rung
        wait_until(
            lambda url=url: (
                requests.get(f"{url}/admin/cutover?entity=ACME-US", headers=sam, timeout=2).json()[0]["mode"]  # type: ignore[misc]
                == "cloud_primary"
            ),
            5,
        )
    code, said = cli("cutover", "changes", "--store", postgres_url, "--routes", str(routes))
    assert code == 0 and "applied" in said and "Sam US" in said
