"""The migration console in real headless Chromium, against a live gateway and its store."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import requests

from cutover import runtime as cutover_runtime
from cutover import slos
from cutover.gates import Counters
from cutover.store import minute
from tests.gateway.test_cutover import ADMIN, Ladder, ladder  # noqa: F401 - the fixture

pytestmark = pytest.mark.integration


def open_console(ladder: Ladder, browser: Any, key: str, errors: list[str]) -> Any:  # noqa: F811
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{ladder.gateway.url}/console")
    page.fill("#key", key)
    page.fill("#actor", "Ana Lead")
    page.click("#login button[type=submit]")
    return page


def cell(page: Any, route: str, entity: str) -> Any:
    return page.locator(f'td[data-route="{route}"][data-entity="{entity}"] button.cell')


def test_the_console_shows_the_matrix_and_promotes_with_a_reason(
    ladder: Ladder,  # noqa: F811
    browser: Any,
    tmp_path: Path,
) -> None:
    ladder.admin("PUT", "/order-get/ACME-US", {"mode": "shadow", "reason": "listen"})
    rung = ladder.cutover.engine.rule("order-get", "ACME-US").rung
    ladder.cutover.store.add_evidence(
        "order-get", "ACME-US", rung, minute(), Counters(calls_legacy=50, calls_cloud=50, comparisons=50)
    )
    ladder.cutover.store.add_noise("order-get", "ACME-US", minute(), 10, {})  # its noise is learnt
    slos.add(ladder.cutover.store, {("order-get", "ACME-US", "order-read"): (80, 100)})  # a fifth failing now
    errors: list[str] = []
    page = open_console(ladder, browser, ADMIN["X-Admin-Key"], errors)
    here = cell(page, "order-get", "ACME-US")
    here.wait_for()
    assert "shadow" in here.inner_text() and "Successful" in here.inner_text()
    # routes as rows, entities as columns; the route that moves comes first
    assert page.locator("#matrix thead th").all_inner_texts() == ["Route", "ACME-DE", "ACME-US"]
    assert page.locator("#matrix tbody th").all_inner_texts()[0] == "order-get"
    other = cell(page, "order-put", "ACME-DE").inner_text()
    assert "legacy" in other and "Inconclusive" in other
    assert "Signed in as Ana Lead" in page.locator("#who").inner_text()
    assert page.locator("#login").is_hidden()  # the sign-in form is a flex box: [hidden] must still hide it
    # each entity's SLOs: a fifth of the reads failing burns a 1 % budget twenty times too fast
    slo_row = page.locator("#slos tbody tr").first.all_inner_texts()[0]
    assert "ACME-US" in slo_row and "order-read (success)" in slo_row and "20.0×" in slo_row and "fast burn" in slo_row
    page.screenshot(path=str(tmp_path / "console.png"), full_page=True)

    # a cell's page: its facts, charts of the evidence, its history, and the changes it allows
    here.click()
    page.locator("#cell").wait_for(state="visible")
    assert page.locator("#cell-title").inner_text() == "order-get / ACME-US"
    page.locator("#charts figure svg .dot").first.wait_for()  # one minute of evidence: a point per series
    assert page.locator("#charts figure").count() == 3
    labels = page.locator("#charts svg").evaluate_all("svgs => svgs.map(s => s.getAttribute('aria-label'))")
    assert "cloud: 50 in the last minute with data" in labels[0] and "mismatches: 0.0 %" in labels[2]
    assert "over the last 10 min" in labels[0]  # the window fits the data (one minute of it), not three hours
    # each minute's values, read out to keyboard focus and to the pointer
    calls = page.locator("#charts figure").first
    calls.locator("svg").focus()
    focused = calls.locator("output").inner_text()  # the newest minute with data
    assert "cloud 50" in focused
    page.keyboard.press("Home")
    assert "legacy no data · cloud no data" in calls.locator("output").inner_text()
    page.keyboard.press("End")  # the window's last minute: that one, or the minute begun since
    ended = calls.locator("output").inner_text()
    assert ended == focused or ended.endswith("legacy no data · cloud no data"), ended
    box = calls.locator("svg").bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + 60, box["y"] + box["height"] / 2)
    assert "no data" in calls.locator("output").inner_text()
    page.mouse.move(box["x"] + box["width"] - 3, box["y"] + box["height"] / 2)
    shots = Path(os.environ.get("BANYAN_SCREENSHOTS", tmp_path))  # BANYAN_SCREENSHOTS=docs refreshes docs/
    page.locator("#charts").screenshot(path=str(shots / "console-charts.png"))
    assert page.evaluate("location.hash") == "#order-get/ACME-US"
    assert "listen" in page.locator("#cell-history").inner_text()
    page.get_by_role("button", name="Promote").click()
    assert page.locator("#change-title").inner_text() == "Promote order-get / ACME-US: shadow → dual_write"
    page.fill("#reason", "CHG-201 shadow clean for a week")
    page.click("#confirm")
    page.locator('td[data-route="order-get"][data-entity="ACME-US"]', has_text="dual write").wait_for()
    # the matrix can show the new rung (its own refresh) a moment before the change's answer is written
    message = page.locator("#message", has_text="is now on")
    message.wait_for()
    assert "✓ order-get / ACME-US is now on dual_write (version 2)" in message.inner_text()
    history = page.locator("#history tbody tr").first.inner_text()
    assert "Ana Lead" in history and "promote" in history and "CHG-201" in history and "shadow → dual_write" in history
    event = ladder.cutover.store.history()[0]
    assert (event.actor, event.to_mode, event.reason) == ("Ana Lead", "dual_write", "CHG-201 shadow clean for a week")

    # a refused step says why in the dialog and changes nothing
    page.get_by_role("button", name="Promote").click()
    page.fill("#reason", "too soon")
    page.click("#confirm")
    page.locator("#change-error").filter(has_text="Inconclusive").wait_for()
    assert "--force" not in page.locator("#change-error").inner_text()  # the page has a Force box, not flags
    assert ladder.cutover.engine.rule("order-get", "ACME-US").mode.value == "dual_write"
    page.click("dialog button[value=cancel]")
    assert "no differences recorded" in page.locator("#fields").inner_text()

    # find and filter; the legacy cell offers no roll back
    page.fill("#search", "put")
    assert page.locator("#matrix tbody th").all_inner_texts() == ["order-put"]
    page.fill("#search", "")
    page.check("#moving-only")
    assert page.locator("#matrix tbody th").all_inner_texts() == ["order-get"]
    page.uncheck("#moving-only")
    cell(page, "order-put", "ACME-DE").click()
    page.locator("#cell-title", has_text="order-put / ACME-DE").wait_for()
    assert page.get_by_role("button", name="Roll back").count() == 0
    assert [e for e in errors if "status of 422" not in e] == []  # the refused step's 422 is the only one


def test_schedule_freeze_and_sign_out_in_the_console(ladder: Ladder, browser: Any) -> None:  # noqa: F811
    errors: list[str] = []
    page = open_console(ladder, browser, ADMIN["X-Admin-Key"], errors)
    cell(page, "order-get", "ACME-US").wait_for()
    page.select_option("#schedule-route", "order-get")
    page.select_option("#schedule-entity", "ACME-US")
    page.select_option("#schedule-mode", "shadow")
    page.fill("#schedule-at", "2030-01-15T02:00")
    page.fill("#schedule-reason", "CAB-9 night switch")
    page.click("#schedule-form button[type=submit]")
    page.locator("#schedules tbody tr", has_text="CAB-9 night switch").wait_for()
    [scheduled] = ladder.cutover.store.schedules()
    assert (scheduled.route, scheduled.entity, scheduled.mode, scheduled.actor) == (
        "order-get",
        "ACME-US",
        "shadow",
        "Ana Lead",
    )
    page.select_option("#freeze-entity", "ACME-DE")
    page.fill("#freeze-starts", "2030-01-28T00:00")
    page.fill("#freeze-ends", "2030-02-02T00:00")
    page.fill("#freeze-reason", "month-end close")
    page.click("#freeze-form button[type=submit]")
    page.locator("#freezes tbody tr", has_text="month-end close").wait_for()
    assert [f.entity for f in ladder.cutover.store.freezes()] == ["ACME-DE"]
    # a bad window is refused with the engine's words, nothing recorded
    page.select_option("#freeze-entity", "ACME-US")
    page.fill("#freeze-starts", "2030-02-02T00:00")
    page.fill("#freeze-ends", "2030-01-28T00:00")
    page.fill("#freeze-reason", "backwards")
    page.click("#freeze-form button[type=submit]")
    page.locator("#message").filter(has_text="end after").wait_for()
    assert len(ladder.cutover.store.freezes()) == 1

    page.click("#sign-out")
    assert page.locator("#main").is_hidden() and page.locator("#login").is_visible()
    assert page.locator("#who").is_hidden()  # no "Sign out" once signed out
    assert page.evaluate("sessionStorage.getItem('banyan.key')") is None
    assert [e for e in errors if "status of 422" not in e] == []


def test_the_console_fits_800_pixels(ladder: Ladder, browser: Any) -> None:  # noqa: F811
    page = browser.new_page(viewport={"width": 800, "height": 900})
    page.goto(f"{ladder.gateway.url}/console")
    page.fill("#key", ADMIN["X-Admin-Key"])
    page.fill("#actor", "Ana Lead")
    page.click("#login button[type=submit]")
    cell(page, "order-get", "ACME-US").wait_for()
    cell(page, "order-get", "ACME-US").click()
    page.locator("#charts figure").first.wait_for()
    assert page.evaluate("document.documentElement.scrollWidth") <= 800  # nothing pushes the page sideways


def test_a_wrong_key_is_refused(ladder: Ladder, browser: Any) -> None:  # noqa: F811
    errors: list[str] = []
    page = open_console(ladder, browser, "not-the-key", errors)
    page.locator("#message").filter(has_text="the admin key is not valid").wait_for()
    assert page.locator("#main").is_hidden()
    assert (
        requests.get(
            f"{ladder.gateway.url}/admin/cutover", headers={"X-Admin-Key": "not-the-key"}, timeout=5
        ).status_code
        == 401
    )
    assert requests.get(f"{ladder.gateway.url}/console/%2e%2e%2fcutover.py", timeout=5).status_code == 404
    assert requests.get(f"{ladder.gateway.url}/console/secret.py", timeout=5).status_code == 404


def test_a_guardrail_step_down_stays_on_the_row_until_acknowledged(ladder: Ladder, browser: Any) -> None:  # noqa: F811
    ladder.admin("PUT", "/order-get/ACME-US", {"mode": "canary", "percent": 25, "reason": "ramp", "force": True})
    # a step down recorded as the guardrail's, with its reasons
    why = "guardrail: cloud error rate 30.00% over 5.00%"
    ladder.cutover.engine.rollback("order-get", "ACME-US", why, "guardrail", "guardrail")
    errors: list[str] = []
    page = open_console(ladder, browser, ADMIN["X-Admin-Key"], errors)
    here = cell(page, "order-get", "ACME-US")
    here.wait_for()
    assert "⚠ stepped down" in here.inner_text()
    here.click()
    page.locator("#cell-step-down").wait_for(state="visible")
    assert "cloud error rate 30.00% over 5.00%" in page.locator("#cell-step-down").inner_text()
    assert page.get_by_role("button", name="Acknowledge").is_visible()

    page.get_by_role("button", name="Promote").click()
    assert "The guardrail stepped it down from canary 25 %" in page.locator("#step-down-text").inner_text()
    page.fill("#reason", "INC-77: the cloud's ATP fix is deployed")
    page.check("#force")
    page.click("#confirm")  # the acknowledgement box is required: nothing is sent
    assert page.locator("#change").is_visible()
    assert ladder.cutover.engine.rule("order-get", "ACME-US").mode.value == "dual_write"
    page.check("#acknowledge")
    page.click("#confirm")
    page.locator("#message").filter(has_text="is now on canary 1 %").wait_for()
    kinds = [event.kind for event in ladder.cutover.store.history("order-get", "ACME-US")[:2]]
    assert kinds == ["promote", "acknowledge"]
    page.locator('td[data-route="order-get"][data-entity="ACME-US"]', has_text="canary").wait_for()
    assert "⚠ stepped down" not in cell(page, "order-get", "ACME-US").inner_text()
    assert page.locator("#cell-step-down").is_hidden()
    assert [e for e in errors if "status of 422" not in e] == []


def test_held_copies_and_an_alert_show_on_the_cell_and_a_person_resumes(ladder: Ladder, browser: Any) -> None:  # noqa: F811
    ladder.admin("PUT", "/order-put/ACME-US", {"mode": "dual_write", "reason": "both", "force": True})
    engine = ladder.cutover.engine
    rung = engine.rule("order-put", "ACME-US").rung
    ladder.cutover.store.add_evidence("order-put", "ACME-US", rung, minute(), Counters(calls_cloud=40, errors_cloud=30))
    assert engine.tick()[-1] == "guardrail paused the cloud's copies of order-put/ACME-US"
    errors: list[str] = []
    page = open_console(ladder, browser, ADMIN["X-Admin-Key"], errors)
    here = cell(page, "order-put", "ACME-US")
    here.wait_for()
    assert "⏸ cloud copies held" in here.inner_text() and "⚠ guardrail alert" in here.inner_text()
    here.click()
    page.get_by_role("button", name="Resume copies").click()
    page.fill("#reason", "INC-78: the cloud's intake is mended")
    page.click("#confirm")
    page.locator("#message").filter(has_text="the cloud's copies of order-put / ACME-US go again").wait_for()
    assert engine.paused_copies() == {}
    assert engine.rule("order-put", "ACME-US").mode.value == "dual_write"
    assert errors == []


def test_a_persons_key_signs_in_as_its_holder(ladder: Ladder, browser: Any) -> None:  # noqa: F811
    from tests.gateway.conftest import KEYS

    errors: list[str] = []
    page = open_console(ladder, browser, KEYS["viv"], errors)
    page.locator("#who-name", has_text="Signed in as Viv Viewer (viewer · every entity; every route)").wait_for()
    cell(page, "order-get", "ACME-US").click()
    page.locator(
        "#cell-actions", has_text="Read only for you: Viv Viewer is a viewer; this needs an operator."
    ).wait_for()
    assert page.get_by_role("button", name="Promote").count() == 0
    tried = requests.post(
        f"{ladder.gateway.url}/admin/cutover/order-get/ACME-US/promote",
        headers={"X-Admin-Key": KEYS["viv"]},
        json={"reason": "a viewer tries", "force": True},
        timeout=5,
    )
    assert tried.status_code == 403 and tried.json()["detail"] == "Viv Viewer is a viewer; this needs an operator"
    assert ladder.cutover.store.history() == []
    assert errors == []


def test_a_scoped_operator_proposes_and_another_person_approves_in_the_console(
    tmp_path: Path,
    browser: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.gateway.conftest import KEYS, running_gateway
    from tests.gateway.test_cutover import erp, ladder_routes

    monkeypatch.setattr(cutover_runtime, "TICK_SECONDS", 1.0)
    with erp("legacy") as legacy, erp("cloud") as cloud:
        text = ladder_routes(legacy.url, cloud.url).replace(
            "gate: {min_samples: 5, min_minutes: 0}", "gate: {min_samples: 5, min_minutes: 0, approval: {}}"
        )
        store = str(tmp_path / "cutover.db")
        with running_gateway(tmp_path, text, store=store, admin_key=ADMIN["X-Admin-Key"]) as gateway:
            here = Ladder(gateway, legacy, cloud)
            engine = here.cutover.engine
            for entity in ("ACME-DE", "ACME-US"):
                here.admin("PUT", f"/order-get/{entity}", {"mode": "canary", "percent": 25, "reason": "ramp"})
                rung = engine.rule("order-get", entity).rung
                here.cutover.store.add_evidence(
                    "order-get", entity, rung, minute(), Counters(calls_legacy=50, calls_cloud=50, comparisons=50)
                )
                here.cutover.store.add_noise("order-get", entity, minute(), 10, {})  # its noise is learnt
            errors: list[str] = []
            dee = open_console(here, browser, KEYS["dee"], errors)
            dee.locator("#who-name", has_text="Signed in as Dee DE (operator · ACME-DE; every route)").wait_for()
            cell(dee, "order-get", "ACME-US").click()
            dee.locator(
                "#cell-actions", has_text="Read only for you: Dee DE acts for ACME-DE, not for ACME-US."
            ).wait_for()
            cell(dee, "order-get", "ACME-DE").click()
            dee.get_by_role("button", name="Propose").click()  # canary 25 → 50 %: above 25 % needs four eyes
            dee.fill("#reason", "CAB-12: a week at 25 % without a mismatch")
            dee.click("#confirm")
            dee.locator("#message", has_text="proposed: order-get / ACME-DE → canary 50 %").wait_for()
            mine = dee.locator("#changes tbody tr", has_text="order-get · ACME-DE")
            mine.get_by_text("you proposed it: a second person approves it").wait_for()
            assert mine.get_by_role("button", name="Approve").is_disabled()
            shots = Path(os.environ.get("BANYAN_SCREENSHOTS", tmp_path))  # BANYAN_SCREENSHOTS=docs refreshes docs/
            dee.locator("section", has=dee.locator("#changes")).screenshot(path=str(shots / "console-changes.png"))
            ana = open_console(here, browser, KEYS["ana"], errors)
            theirs = ana.locator("#changes tbody tr", has_text="order-get · ACME-DE")
            theirs.wait_for()
            ana.fill("#changes-note", "checked the mismatches: none")
            theirs.get_by_role("button", name="Approve").click()
            ana.locator("#message", has_text="is applied").wait_for()
            rule = engine.rule("order-get", "ACME-DE")
            assert (rule.mode.value, rule.percent) == ("canary", 50)
            assert [(event.kind, event.actor) for event in engine.history("order-get", "ACME-DE")][:2] == [
                ("approve", "Ana Lead"),
                ("propose", "Dee DE"),
            ]
            assert errors == []


def test_a_flows_cell_lists_its_files_and_what_each_side_made_of_them(tmp_path: Path, browser: Any) -> None:
    from types import SimpleNamespace

    import yaml

    from tests.flows.test_runner import PARTNER_A, x12_order
    from tests.gateway.conftest import running_gateway
    from tests.gateway.test_cutover import wait_until

    for folder in ("drop", "legacy", "cloud"):
        (tmp_path / folder).mkdir()
    flows = {
        "flows": [
            {
                "name": "partner-orders",
                "entity": {"from": "partner", "partners": {PARTNER_A: "ACME-DE"}},
                "source": {"folder": str(tmp_path / "drop"), "pattern": "*.x12", "settle_seconds": 0},
                "legacy": {"intake": str(tmp_path / "legacy")},
                "cloud": {"intake": str(tmp_path / "cloud")},
                "cutover": {"mode": "dual_write"},
            }
        ]
    }
    settings = {"store": str(tmp_path / "cutover.db"), "admin_key": ADMIN["X-Admin-Key"]}
    with running_gateway(tmp_path / "gateway", yaml.safe_dump(flows), **settings) as gateway:
        part = tmp_path / "drop" / "po-77.x12.part"  # written whole, then named: settle_seconds is 0
        part.write_bytes(x12_order(PARTNER_A, "PO-77", "000000777"))
        part.rename(tmp_path / "drop" / "po-77.x12")
        (tmp_path / "drop" / "empty.x12").write_bytes(b"")
        wait_until(lambda: [p.name for p in (tmp_path / "cloud").iterdir()] == ["po-77.x12"], 20)
        wait_until(lambda: list((tmp_path / "drop" / ".banyan" / "error").glob("*.reason.txt")) != [], 20)
        errors: list[str] = []
        page = open_console(SimpleNamespace(gateway=gateway), browser, ADMIN["X-Admin-Key"], errors)  # type: ignore[arg-type]
        here = cell(page, "partner-orders", "ACME-DE")
        here.wait_for()
        here.click()
        files = page.locator("#cell-files tbody")
        files.locator("tr", has_text="po-77.x12").wait_for()
        row = files.locator("tr", has_text="po-77.x12").inner_text()
        assert "delivered" in row and PARTNER_A in row
        assert "empty.x12" not in files.inner_text()  # refused before its entity was known: not this cell's
        assert errors == []
        refused = requests.get(
            f"{gateway.url}/admin/flows/files?flow=partner-orders&state=refused", headers=ADMIN, timeout=5
        ).json()
        assert [(f["name"], f["reason"]) for f in refused] == [("empty.x12", "the file is empty")]
        # a route's cell has no files part
        bad = requests.get(f"{gateway.url}/admin/flows/files?flow=nope", headers=ADMIN, timeout=5)
        assert bad.status_code == 422


def test_the_console_shows_each_reconciliations_newest_run_and_its_trend(ladder: Ladder, browser: Any) -> None:  # noqa: F811
    from reconcile.store import Runs

    runs = Runs(ladder.cutover.store)
    for drift, state in ((0.02, "done"), (0.0, "failed"), (0.005, "done"), (0.0, "done")):
        run = runs.start("us-orders", "ACME-US", None)
        counts = {
            "matched": 998,
            "differing": 0,
            "only": {"legacy": 0, "cloud": 0},
            "drift_rate": drift,
            "labels": {"legacy": "legacy", "cloud": "cloud"},
        }
        runs.finish(run, state, counts if state == "done" else {}, [], "" if state == "done" else "the cloud stopped")
    found = requests.get(f"{ladder.gateway.url}/admin/reconcile", headers=ADMIN, timeout=5).json()
    assert [(r["name"], r["entity"], r["id"]) for r in found] == [("us-orders", "ACME-US", run)]
    assert [t["state"] for t in found[0]["trend"]] == ["done", "failed", "done", "done"]  # oldest first
    errors: list[str] = []
    page = open_console(ladder, browser, ADMIN["X-Admin-Key"], errors)
    row = page.locator("#reconciliations tbody tr", has_text="us-orders")
    row.wait_for()
    text = row.inner_text()
    assert "ACME-US" in text and "0.0 %" in text and "█✗" in text  # the 2 % run tallest, then the failed one
    assert "run 2 failed" in (row.locator("td").nth(8).get_attribute("aria-label") or "")
    assert errors == []
    assert requests.get(f"{ladder.gateway.url}/admin/reconcile", timeout=5).status_code in (401, 403)


def test_the_console_inbox_counts_per_owner_and_replays_once(ladder: Ladder, browser: Any) -> None:  # noqa: F811
    from gateway.state import DECLARED, INBOX
    from inbox.collect import collect
    from tests.inbox.test_inbox import dead_message

    store = ladder.cutover.store
    message_id = dead_message(store, "SO-77", error="503 from the cloud ERP")
    watch = ladder.gateway.app.get(INBOX)
    watch.once() if watch is not None else collect(
        store, ladder.gateway.app[DECLARED].files
    )  # as the gateway's sync does
    listed = requests.get(f"{ladder.gateway.url}/admin/exceptions", headers=ADMIN, timeout=5).json()
    [item] = listed["exceptions"]
    assert item["kind"] == "outbox_dead" and "replay" in item["actions"]
    assert [(c["owner"], c["entity"], c["open"]) for c in listed["counts"]] == [(None, "ACME-US", 1)]
    errors: list[str] = []
    page = open_console(ladder, browser, ADMIN["X-Admin-Key"], errors)
    row = page.locator("#inbox tbody tr", has_text="SO-77")
    row.wait_for()
    assert "503 from the cloud ERP" in row.inner_text()
    row.get_by_role("button", name="Replay").click()
    page.locator("#message", has_text="needs a note").wait_for()  # nothing done without a reason
    page.fill("#inbox-note", "the cloud ERP is back (INC-7)")
    row.get_by_role("button", name="Replay").click()
    page.locator("#message", has_text=f"exception {item['id']}: replay").wait_for()
    page.locator("#inbox tbody", has_text="no exception").wait_for()
    stale = requests.post(
        f"{ladder.gateway.url}/admin/exceptions/{item['id']}/discard",
        headers=ADMIN,
        json={"version": item["version"], "note": "me too", "actor": "bo"},
        timeout=5,
    )
    assert stale.status_code == 409 and "Ana Lead replay" in stale.json()["detail"]
    replays = [event for event in store.history() if event.kind == "outbox_replay"]
    assert [(event.actor, f"message {message_id}" in event.reason) for event in replays] == [("Ana Lead", True)]
    assert errors == []
