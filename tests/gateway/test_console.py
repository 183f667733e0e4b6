"""The migration console in real headless Chromium, against a live gateway and its store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests

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


def test_the_console_shows_the_grid_and_promotes_with_a_reason(
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
    errors: list[str] = []
    page = open_console(ladder, browser, ADMIN["X-Admin-Key"], errors)
    row = page.locator('tr[data-route="order-get"][data-entity="ACME-US"]')
    row.wait_for()
    assert "shadow" in row.inner_text() and "Successful" in row.inner_text() and "50 / 50" in row.inner_text()
    other = page.locator('tr[data-route="order-put"][data-entity="ACME-DE"]').inner_text()
    assert "legacy" in other and "Inconclusive" in other and "Roll back" not in other
    page.screenshot(path=str(tmp_path / "console.png"), full_page=True)

    row.get_by_role("button", name="Promote").click()
    assert page.locator("#change-title").inner_text() == "Promote order-get / ACME-US: shadow → dual_write"
    page.fill("#reason", "CHG-201 shadow clean for a week")
    page.click("#confirm")
    page.locator('tr[data-route="order-get"][data-entity="ACME-US"]', has_text="dual write").wait_for()
    assert "✓ order-get / ACME-US is now on dual_write (version 2)" in page.locator("#message").inner_text()
    history = page.locator("#history tbody tr").first.inner_text()
    assert "Ana Lead" in history and "promote" in history and "CHG-201" in history and "shadow → dual_write" in history
    event = ladder.cutover.store.history()[0]
    assert (event.actor, event.to_mode, event.reason) == ("Ana Lead", "dual_write", "CHG-201 shadow clean for a week")

    # a refused step says why in the dialog and changes nothing
    row.get_by_role("button", name="Promote").click()
    page.fill("#reason", "too soon")
    page.click("#confirm")
    page.locator("#change-error").filter(has_text="Inconclusive").wait_for()
    assert "--force" not in page.locator("#change-error").inner_text()  # the page has a Force box, not flags
    assert ladder.cutover.engine.rule("order-get", "ACME-US").mode.value == "dual_write"
    page.click("dialog button[value=cancel]")

    row.click()  # the fields that differ
    page.locator("#fields").wait_for(state="visible")
    assert "no differences recorded" in page.locator("#fields").inner_text()
    assert [e for e in errors if "status of 422" not in e] == []  # the refused step's 422 is the only one


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
    # what the guardrail does when the cloud fails: one rung down, as the guardrail, with its reasons
    why = "guardrail: cloud error rate 30.00% over 5.00%"
    ladder.cutover.engine.rollback("order-get", "ACME-US", why, "guardrail", "guardrail")
    errors: list[str] = []
    page = open_console(ladder, browser, ADMIN["X-Admin-Key"], errors)
    row = page.locator('tr[data-route="order-get"][data-entity="ACME-US"]')
    row.wait_for()
    assert "⚠ stepped down" in row.inner_text() and "cloud error rate 30.00% over 5.00%" in row.inner_text()
    assert row.get_by_role("button", name="Acknowledge").is_visible()

    row.get_by_role("button", name="Promote").click()
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
    page.locator('tr[data-route="order-get"][data-entity="ACME-US"]', has_text="canary").wait_for()
    assert "⚠ stepped down" not in page.locator('tr[data-route="order-get"][data-entity="ACME-US"]').inner_text()
    assert [e for e in errors if "status of 422" not in e] == []
