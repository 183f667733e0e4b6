"""`banyan exceptions …` on a real store, and `routes check` on owners."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from cli.main import app as cli
from cutover.store import open_store
from tests.inbox.test_inbox import ROUTES, dead_message, folder


def test_list_show_assign_replay_and_a_second_replay_refused(tmp_path: Path) -> None:
    folder(tmp_path)
    store = str(tmp_path / "cutover.db")
    opened = open_store(store)
    try:
        dead_message(opened, "SO-1", error="503 Service Unavailable from the cloud ERP")
        dead_message(opened, "SO-2", entity="ACME-UK")
    finally:
        opened.close()
    runner = CliRunner(env={"COLUMNS": "250"})
    common = ["--store", store, "--routes", str(tmp_path / "routes")]
    listed = runner.invoke(cli, ["exceptions", "list", *common, "--owner", "order-desk", "--json"])
    assert listed.exit_code == 0, listed.output
    [first, second] = json.loads(listed.output)["exceptions"]
    assert (first["kind"], first["key"], first["owner"]) == ("outbox_dead", "SO-1", "order-desk")
    table = runner.invoke(cli, ["exceptions", "list", *common])
    assert "outbox_dead" in table.output and "503 Service Unavailable" in table.output
    assigned = runner.invoke(cli, ["exceptions", "assign", str(first["id"]), "--to", "bo", "--actor", "ana", *common])
    assert assigned.exit_code == 0 and "assigned" in assigned.output
    replayed = runner.invoke(
        cli, ["exceptions", "replay", str(first["id"]), "--reason", "cloud is back", "--actor", "bo", *common, "--json"]
    )
    assert replayed.exit_code == 0, replayed.output
    assert json.loads(replayed.output)["state"] == "resolved"
    again = runner.invoke(cli, ["exceptions", "replay", str(first["id"]), "--reason", "me too", *common])
    assert again.exit_code == 1 and "bo replay" in again.output and "Traceback" not in again.output
    shown = runner.invoke(cli, ["exceptions", "show", str(first["id"]), *common])
    assert "assigned" in shown.output and "replay started" in shown.output and "order-desk" in shown.output
    wrong = runner.invoke(cli, ["exceptions", "acknowledge", str(second["id"]), "--reason", "x", *common])
    assert wrong.exit_code == 1 and "allows replay, discard" in wrong.output
    nothing = runner.invoke(cli, ["exceptions", "show", "999", *common])
    assert nothing.exit_code == 1 and "no exception 999" in nothing.output


def test_routes_check_warns_about_an_unowned_tier_one_route(tmp_path: Path) -> None:
    folder(tmp_path, {**ROUTES, "owner": None, "owners": {}})
    checked = CliRunner().invoke(cli, ["routes", "check", str(tmp_path / "routes")])
    assert checked.exit_code == 0, checked.output
    assert "order-create is tier 1 and has no owner" in checked.output


def test_the_owner_is_in_openapi_in_events_and_in_the_engines_alerts(tmp_path: Path) -> None:
    from events.log import cloud_event
    from gateway.openapi import openapi
    from specs.flows import ladder

    routes = folder(tmp_path)
    document = openapi(routes.routes)
    operation = document["paths"]["/v1/{entity}/orders"]["post"]
    assert operation["x-owner"] == {"team": "order-desk", "contact": "orders@acme.example"}
    assert document["paths"]["/v1/{entity}/orders/{id}"]["get"]["x-owner"] == {"team": "status-team"}
    _, body = cloud_event("order.created", "/banyan", "SO-1", {}, "ACME-US", "c-1", owner="order-desk")
    assert json.loads(body)["owner"] == "order-desk"
    infos, _ = ladder(routes.routes, routes.flows, routes.batches)
    assert {info.name: info.owner for info in infos} == {"order-create": "order-desk", "order-status": "status-team"}


def test_only_repair_takes_a_side_and_only_a_side_it_knows() -> None:
    runner = CliRunner(env={"COLUMNS": "250"})
    for action in ("replay", "discard", "resend", "delivered", "acknowledge"):
        said = runner.invoke(cli, ["exceptions", action, "1", "--to", "cloud", "--store", "unused.db"])
        assert said.exit_code == 2 and "No such option" in said.output, action
    sideways = runner.invoke(cli, ["exceptions", "repair", "1", "--to", "sideways", "--store", "unused.db"])
    assert sideways.exit_code == 2 and "cloud" in sideways.output and "legacy" in sideways.output
