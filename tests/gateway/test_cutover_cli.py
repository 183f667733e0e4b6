"""`banyan cutover …` on the repository's routes and a SQLite store: tables, JSON, refusals."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from cutover.gates import Counters
from cutover.store import minute, open_store
from tests.conftest import REPO

runner = CliRunner(env={"COLUMNS": "200"})


@pytest.fixture
def store(tmp_path: Path) -> str:
    """A store as a starting gateway leaves it: created and migrated, nothing in it yet."""
    location = str(tmp_path / "cutover.db")
    open_store(location).close()
    return location


def banyan(store: str, *args: str) -> tuple[int, str]:
    actor = [] if args[0] in ("status", "history", "calendar", "mismatches", "changes") else ["--actor", "ana"]
    result = runner.invoke(app, ["cutover", *args, "--store", store, "--routes", str(REPO / "routes"), *actor])
    return result.exit_code, result.output


def approve(store: str, number: int, actor: str) -> tuple[int, str]:
    """A second person's approval (the helper above acts as ana)."""
    args = ["cutover", "approve", str(number), "--reason", "checked", "--actor", actor, "--json"]
    result = runner.invoke(app, [*args, "--store", store, "--routes", str(REPO / "routes")])
    return result.exit_code, result.output


def test_status_is_a_table_of_routes_and_entities(store: str) -> None:
    code, output = banyan(store, "status", "--entity", "ACME-DE")
    assert code == 0, output
    assert "order-status" in output and "ACME-DE" in output and "legacy" in output
    assert "ACME-US" not in output
    code, output = banyan(store, "status", "--json")
    rows = {(row["route"], row["entity"]) for row in json.loads(output)}
    assert ("order-status", "ACME-DE") in rows and ("order-status", "ACME-UK") not in rows  # it serves ACME-DE only
    assert not any(route == "order-service-passthrough" for route, _ in rows)  # nothing to cut over


def test_set_promote_rollback_history_as_json(store: str) -> None:
    code, output = banyan(store, "set", "order-status", "ACME-DE", "shadow", "--reason", "listen first", "--json")
    assert code == 0, output
    assert json.loads(output) == {
        "route": "order-status",
        "entity": "ACME-DE",
        "mode": "shadow",
        "percent": 0.0,
        "version": 1,
    }
    code, output = banyan(store, "promote", "order-status", "ACME-DE", "--reason", "next", "--json")
    assert code == 1 and "Inconclusive" in json.loads(output)["error"]
    opened = open_store(store)
    opened.add_evidence(
        "order-status", "ACME-DE", "ACME-DE@1", minute(), Counters(calls_legacy=500, calls_cloud=500, comparisons=500)
    )
    opened.close()
    code, output = banyan(store, "promote", "order-status", "ACME-DE", "--reason", "gate green")
    assert code == 1 and "0 of the 30 minutes at this rung" in output  # samples are in, time is not
    code, output = banyan(store, "promote", "order-status", "ACME-DE", "--reason", "CAB-77 approved", "--force")
    assert code == 0 and "→ dual_write" in output, output
    code, output = banyan(store, "rollback", "order-status", "ACME-DE", "--reason", "totals differ", "--json")
    assert json.loads(output)["mode"] == "shadow"
    code, output = banyan(store, "history", "--json")
    events = [json.loads(line) for line in output.splitlines()]
    assert [(e["kind"], e["to_mode"], e["actor"]) for e in events] == [
        ("set", "shadow", "ana"),
        ("promote", "dual_write", "ana"),
        ("rollback", "shadow", "ana"),
    ]
    assert events[1]["evidence"]["comparisons"] == 500 and events[1]["evidence"]["forced"] is True
    assert events[1]["reason"] == "CAB-77 approved"
    code, output = banyan(store, "status", "--route", "order-status", "--entity", "ACME-DE", "--json")
    row = json.loads(output)[0]
    assert row["mode"] == "shadow" and row["version"] == 3
    assert row["evidence"]["comparisons"] == 0  # back on shadow after a rollback, the evidence starts again


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("set", "order-statuz", "ACME-DE", "shadow", "--reason", "r"), "unknown route 'order-statuz'"),
        (("set", "order-status", "ACME-FR", "shadow", "--reason", "r"), "unknown legal entity 'ACME-FR'"),
        (("set", "order-status", "ACME-UK", "shadow", "--reason", "r"), "route order-status does not serve ACME-UK"),
        (("set", "order-status", "ACME-DE", "canary", "--percent", "150", "--reason", "r"), "at most 100"),
        (("set", "order-status", "ACME-DE", "shadow"), "needs a reason"),
        (("set", "order-create", "ACME-DE", "shadow", "--reason", "r"), "use dual_write"),
        (
            ("set", "order-status", "ACME-DE", "canary", "--percent", "5", "--pin", "SO-1=mars", "--reason", "r"),
            "KEY=legacy",
        ),
        (("schedule", "order-status", "ACME-DE", "shadow", "--at", "soon", "--reason", "r"), "not 'soon'"),
        (
            ("freeze", "ACME-DE", "--starts", "2026-12-02T00:00Z", "--ends", "2026-12-01T00:00Z", "--reason", "r"),
            "end after",
        ),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(store: str, args: tuple[str, ...], says: str) -> None:
    code, output = banyan(store, *args)
    assert code != 0 and says in " ".join(output.split()), output
    opened = open_store(store)
    assert opened.rules() == [] and opened.history() == [] and opened.schedules() == [] and opened.freezes() == []
    opened.close()


def test_freeze_and_schedule(store: str) -> None:
    now = datetime.now(UTC)
    starts, ends = (now - timedelta(hours=1)).isoformat(), (now + timedelta(days=3)).isoformat()
    code, output = banyan(store, "freeze", "ACME-UK", "--starts", starts, "--ends", ends, "--reason", "month-end close")
    assert code == 0, output
    code, output = banyan(store, "set", "order-create", "ACME-UK", "dual_write", "--force", "--reason", "sign-off")
    assert code == 1 and "frozen" in output and "month-end close" in output
    at = (now + timedelta(days=4)).isoformat()
    code, output = banyan(store, "schedule", "order-create", "ACME-UK", "dual_write", "--at", at, "--reason", "r")
    assert code == 1 and "propose it with its time" in output  # applied forced, so order-create asks a second person
    code, output = banyan(
        store, "propose", "order-create", "ACME-UK", "dual_write", "--at", at, "--reason", "after close", "--json"
    )
    assert code == 0 and json.loads(output)["state"] == "proposed"
    code, output = approve(store, json.loads(output)["id"], "bo")
    assert code == 0 and json.loads(output)["state"] == "scheduled"
    code, output = banyan(store, "calendar", "--json")
    listed = json.loads(output)
    assert listed["schedules"][0]["state"] == "pending" and listed["schedules"][0]["actor"] == "ana"
    assert listed["freezes"][0]["reason"] == "month-end close"
    code, output = banyan(store, "calendar")
    assert code == 0 and "after close" in output and "month-end close" in output


def test_mismatches_lists_fields_with_samples(store: str) -> None:
    opened = open_store(store)
    opened.add_differences(
        "order-status", "ACME-DE", minute(), {("/total", "value"): 3}, [("/total", "value", 10.25, 10)]
    )
    opened.close()
    code, output = banyan(store, "mismatches", "order-status", "--json")
    assert code == 0 and json.loads(output)[0]["samples"][0]["cloud"] == 10
    code, output = banyan(store, "mismatches", "order-status")
    assert "/total" in output and "10.25" in output
    code, output = banyan(store, "mismatches", "order-statuz")
    assert code == 2 and "unknown route" in output  # a bad argument


def test_mismatches_suggests_ignoring_noise(store: str) -> None:
    opened = open_store(store)
    opened.add_evidence("order-status", "ACME-DE", "ACME-DE@1", minute(), Counters(comparisons=100))
    opened.add_differences("order-status", "ACME-DE", minute(), {("/renderedAt", "value"): 100}, [])
    opened.add_noise("order-status", "ACME-DE", minute(), 50, {"/renderedAt": 50})
    opened.close()
    code, output = banyan(store, "mismatches", "order-status")
    assert code == 0 and "noise" in output and "compare: {ignore: [/renderedAt]}" in " ".join(output.split())


def test_a_store_that_cannot_be_opened_says_what_to_do(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-folder" / "cutover.db")
    for args in (["cutover", "status"], ["outbox", "status"]):
        result = runner.invoke(
            app, [*args, "--store", missing, *(["--routes", str(REPO / "routes")] if args[0] == "cutover" else [])]
        )
        assert result.exit_code == 2
        assert f"no cutover store at {missing}: check --store / BANYAN_STORE" in " ".join(result.output.split())
        assert not Path(missing).exists()
    result = runner.invoke(
        app,
        [
            "cutover",
            "set",
            "order-status",
            "ACME-DE",
            "shadow",
            "--reason",
            "r",
            "--actor",
            "ana",
            "--store",
            missing,
            "--routes",
            str(REPO / "routes"),
        ],
    )
    assert result.exit_code == 2
    assert "check that its folder exists and is writable" in " ".join(result.output.split())


def test_a_step_down_is_shown_until_acknowledged(store: str) -> None:
    code, output = banyan(
        store, "set", "order-status", "ACME-DE", "canary", "--percent", "25", "--reason", "ramp", "--force"
    )
    assert code == 0, output
    opened = open_store(store)
    rung = "ACME-DE@1"  # the rule's first version is its rung
    opened.add_evidence("order-status", "ACME-DE", rung, minute(), Counters(calls_cloud=100, errors_cloud=40))
    opened.close()
    # what a gateway's tick does when the guardrail trips
    from cutover.engine import Engine
    from specs.files import load_routes
    from specs.routes import known_entities, route_infos

    routes = load_routes(REPO / "routes")
    engine = Engine(open_store(store), route_infos(routes), known_entities(routes))
    assert engine.tick() == ["guardrail stepped order-status/ACME-DE down to shadow"]
    code, output = banyan(store, "status", "--route", "order-status")
    assert "⚠ the guardrail stepped it down at" in output and "cloud error rate 40.00%" in output
    code, output = banyan(store, "promote", "order-status", "ACME-DE", "--reason", "again", "--force")
    assert code == 1 and "acknowledge the step down" in output
    code, output = banyan(store, "acknowledge", "order-status", "ACME-DE", "--reason", "INC-9: cloud fixed")
    assert code == 0 and "acknowledged the step down of order-status/ACME-DE" in output, output
    code, output = banyan(store, "status", "--route", "order-status")
    assert "⚠" not in output
    code, output = banyan(store, "acknowledge", "order-status", "ACME-DE", "--reason", "twice", "--json")
    assert code == 1 and "no guardrail step down waits" in json.loads(output)["error"]


def test_the_guardrail_alert_and_held_copies_are_shown_and_a_person_resumes(store: str) -> None:
    code, output = banyan(store, "set", "order-create", "ACME-DE", "dual_write", "--reason", "both", "--force")
    assert code == 1 and "a step forced past the gate of order-create/ACME-DE needs a second person's" in output
    code, output = banyan(store, "propose", "order-create", "ACME-DE", "dual_write", "--reason", "both", "--force")
    assert code == 0 and "it needs a second person's approval: a step forced past the gate" in output
    [proposed] = json.loads(banyan(store, "changes", "--json")[1])
    code, output = approve(store, proposed["id"], "ana")
    assert code == 1 and "ana proposed it" in json.loads(output)["error"]
    code, output = approve(store, proposed["id"], "bo")
    assert code == 0 and json.loads(output)["state"] == "applied", output
    opened = open_store(store)
    opened.add_evidence("order-create", "ACME-DE", "ACME-DE@1", minute(), Counters(calls_cloud=100, errors_cloud=40))
    opened.close()
    from cutover.engine import Engine
    from specs.files import load_routes
    from specs.routes import known_entities, route_infos

    routes = load_routes(REPO / "routes")
    engine = Engine(open_store(store), route_infos(routes), known_entities(routes))
    assert engine.tick()[-1] == "guardrail paused the cloud's copies of order-create/ACME-DE"
    code, output = banyan(store, "status", "--route", "order-create", "--entity", "ACME-DE")
    flat = " ".join(output.split())
    assert "dual_write" in flat and "⚠ guardrail alert since" in flat and "⏸ the cloud's copies are held" in flat
    code, output = banyan(store, "resume", "order-create", "ACME-DE", "--reason", "INC-9: intake mended")
    assert code == 0 and "the cloud's copies of order-create/ACME-DE go again" in output, output
    code, output = banyan(store, "resume", "order-create", "ACME-DE", "--reason", "twice", "--json")
    assert code == 1 and "not paused" in json.loads(output)["error"]


def test_the_cli_judges_with_the_gate_the_gateway_runs(store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # The gateway ran with ACME_GATE_MINUTES=0 (as the demo does); this shell has no such variable.
    from cutover.runtime import Cutover
    from specs.files import load_routes
    from specs.routes import known_entities, route_infos

    monkeypatch.setenv("ACME_GATE_MINUTES", "0")
    routes = load_routes(REPO / "routes")
    gateway = Cutover(store, route_infos(routes), known_entities(routes))
    gateway.close()
    monkeypatch.delenv("ACME_GATE_MINUTES")
    code, output = banyan(store, "set", "order-status", "ACME-DE", "shadow", "--reason", "listen first")
    assert code == 0, output
    assert "gate min_minutes: 30 here, 0 in the gateway" in output  # said once, as a note
    opened = open_store(store)
    opened.add_evidence(
        "order-status", "ACME-DE", "ACME-DE@1", minute(), Counters(calls_legacy=500, calls_cloud=500, comparisons=500)
    )
    opened.add_noise("order-status", "ACME-DE", minute(), 10, {})  # its noise is learnt
    opened.close()
    code, output = banyan(store, "status", "--route", "order-status", "--json")
    [row] = json.loads(output[output.index("[") :])  # after the note, which goes to stderr
    assert row["verdict"] == "Successful", row["verdict_reasons"]  # 30 minutes would have said Inconclusive
    assert row["settings_from"].startswith("the gateway on ")
    code, output = banyan(store, "promote", "order-status", "ACME-DE", "--reason", "gate green")
    assert code == 0 and "→ dual_write" in output, output


def test_the_gateways_own_gates_are_said_once_and_only_when_a_rung_changes(store: str) -> None:
    from cutover.gates import Gate, Guardrail

    opened = open_store(store)
    opened.put_settings(
        {
            "order-status": (Gate(min_samples=7, min_minutes=0), Guardrail()),
            "order-create": (Gate(min_samples=9), Guardrail()),
        },
        "the gateway on vm",
    )
    opened.close()
    code, output = banyan(store, "status", "--entity", "ACME-DE")
    assert code == 0 and "note:" not in output  # a read says nothing of it
    code, output = banyan(store, "set", "order-status", "ACME-DE", "shadow", "--reason", "listen first")
    assert code == 0 and output.count("note:") == 1 and "(and 1 more)" in output
