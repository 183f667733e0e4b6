"""The runtime's hint for write ownership: when a key's side must be asked of the outbox before it
serves. Asked after a change that moves keys to another side, and while a side is owed writes;
not after a change that moves none, so a rung change costs the request path nothing then."""

from __future__ import annotations

from pathlib import Path

import pytest

from cutover import runtime
from cutover.decide import Mode, Rule, Side, serving
from cutover.engine import RouteInfo
from cutover.runtime import Cutover

ROUTES = [RouteInfo("order-put", writes=True, has_cloud=True), RouteInfo("order-get", writes=False, has_cloud=True)]


@pytest.mark.parametrize(
    ("before", "after", "moves"),
    [
        (Rule("r", "E", Mode.legacy), Rule("r", "E", Mode.dual_write), False),
        (Rule("r", "E", Mode.shadow), Rule("r", "E", Mode.dual_write), False),
        (Rule("r", "E", Mode.dual_write), Rule("r", "E", Mode.canary, 5.0), True),
        (Rule("r", "E", Mode.canary, 5.0), Rule("r", "E", Mode.canary, 25.0), True),
        (Rule("r", "E", Mode.canary, 5.0), Rule("r", "E", Mode.canary, 5.0, {"PO-1": Side.cloud}), True),
        (Rule("r", "E", Mode.cloud_primary), Rule("r", "E", Mode.cloud), False),
        (Rule("r", "E", Mode.cloud_primary), Rule("r", "E", Mode.dual_write), True),
        (Rule("r", "E", Mode.dual_write, version=1), Rule("r", "E", Mode.dual_write, version=2), False),
    ],
)
def test_which_changes_move_keys(before: Rule, after: Rule, moves: bool) -> None:
    assert (serving(before) != serving(after)) is moves


def test_the_outbox_is_asked_only_while_a_side_may_be_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr(runtime.time, "monotonic", lambda: clock[0])
    cutover = Cutover(str(tmp_path / "cutover.db"), ROUTES, ["ACME-US"])
    owners = ("order-put", "order-get")
    assert cutover.may_owe(owners, "ACME-US", Side.legacy)  # just started: what happened before is unknown
    clock[0] += runtime.RECHECK_SECONDS
    assert not cutover.may_owe(owners, "ACME-US", Side.legacy)
    cutover.engine.set("order-put", "ACME-US", "dual_write", "go", "ana", force=True)
    cutover.reload()
    assert not cutover.may_owe(owners, "ACME-US", Side.legacy)  # legacy serves every key, as before
    cutover.outbox.intend("order-put", "ACME-US", "PO-1", "cloud", "ACME-US@1", {"payload": {}}, "k1")
    cutover.refresh_backlog()
    assert cutover.may_owe(owners, "ACME-US", Side.cloud) and not cutover.may_owe(owners, "ACME-US", Side.legacy)
    cutover.engine.set("order-put", "ACME-US", "cloud_primary", "go", "ana", force=True)
    cutover.reload()
    assert cutover.may_owe(owners, "ACME-US", Side.legacy)  # the change moved keys: asked for a while
    clock[0] += runtime.RECHECK_SECONDS
    cutover.refresh_backlog()
    assert not cutover.may_owe(owners, "ACME-US", Side.legacy)
    assert cutover.may_owe(owners, "ACME-US", Side.cloud)  # still owed its copy, at the last refresh
    cutover.close()
