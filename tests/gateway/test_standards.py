"""Central standards as checks: `banyan routes check --policy FILE` refuses route files that break
the organisation's policy, and a write route may require an Idempotency-Key."""

from __future__ import annotations

import textwrap
from pathlib import Path

import requests
from typer.testing import CliRunner

from cli.main import app
from tests.gateway.conftest import KEYS, running_gateway

runner = CliRunner(env={"COLUMNS": "250"})
POLICY = """\
standards:
  owner: true
  min_gate_samples: 200
  approval: [cloud_primary, cloud]
  approve_forced: true
  writes: {idempotency_key: true, canonical: true}
"""
LOOSE = """\
routes:
  - name: order-create
    operation: {method: POST, path: "/v1/{entity}/orders"}
    entity: {from: path, name: entity, values: [ACME-US]}
    writes: true
    legacy: {backend: {backend: memory, system: erp}}
    cloud: {backend: {backend: memory, system: cloud}}
    cutover: {gate: {min_samples: 20}}
flows:
  - name: uk-partner-orders
    source: {folder: /tmp/in, pattern: "*.edi"}
    document: edifact
    entity: {from: fixed, value: ACME-UK}
    legacy: {intake: /tmp/legacy}
    cloud: {intake: /tmp/cloud}
"""
KEPT = """\
owner: {team: order-desk}
routes:
  - name: order-create
    operation:
      method: POST
      path: "/v1/{entity}/orders"
      idempotency_key: required
      request: {$ref: "canonical:order"}
    entity: {from: path, name: entity, values: [ACME-US]}
    writes: true
    legacy: {backend: {backend: memory, system: erp}}
    cloud: {backend: {backend: memory, system: cloud}}
    cutover: {gate: {min_samples: 500, approval: {}}}
"""


def check(folder: Path, policy: Path) -> tuple[int, str]:
    result = runner.invoke(app, ["routes", "check", str(folder), "--policy", str(policy)])
    return result.exit_code, " ".join(result.output.split())


def test_a_policy_refuses_what_breaks_the_standards_and_passes_what_keeps_them(tmp_path: Path) -> None:
    policy = tmp_path / "standards.yaml"
    policy.write_text(POLICY)
    loose = tmp_path / "loose"
    loose.mkdir()
    (loose / "orders.yaml").write_text(LOOSE)
    code, said = check(loose, policy)
    assert code == 1
    for line in (
        "order-create: names no owner (standard owner)",
        "uk-partner-orders: names no owner (standard owner)",
        "route order-create: gate.min_samples 20 is below the standard's 200 (standard min_gate_samples)",
        "flow uk-partner-orders: gate.min_samples 100 is below the standard's 200",
        "route order-create: the step into cloud_primary, cloud needs no approval (standard approval): "
        "gate.approval.into: [cloud_primary, cloud]",
        "flow uk-partner-orders: a forced step needs no approval (standard approve_forced)",
        "route order-create: a forced step needs no approval (standard approve_forced)",
        "route order-create: a write that does not require an Idempotency-Key (standard writes.idempotency_key)",
        "route order-create: a write without a canonical contract (standard writes.canonical)",
        f"error: 10 problems against the standards of {policy}",
    ):
        assert line in said, said
    kept = tmp_path / "kept"
    (kept / "canonical").mkdir(parents=True)
    (kept / "canonical" / "order.json").write_text('{"type": "object"}')
    (kept / "orders.yaml").write_text(KEPT)
    code, said = check(kept, policy)
    assert code == 0, said
    (tmp_path / "broken.yaml").write_text("standards: {owner: maybe}\n")
    code, said = check(kept, tmp_path / "broken.yaml")
    assert code == 1 and "not a policy file: standards.owner: Input should be a valid boolean" in said
    code, said = check(kept, tmp_path / "missing.yaml")
    assert code == 1 and "cannot read the policy" in said


def test_a_write_that_requires_an_idempotency_key_refuses_a_call_without_one(tmp_path: Path) -> None:
    text = textwrap.dedent(
        """\
        routes:
          - name: order-create
            operation: {method: POST, path: "/v1/{entity}/orders/{orderId}", idempotency_key: required}
            entity: {from: path, name: entity, values: [ACME-DE]}
            key: {from: path, name: orderId}
            writes: true
            legacy: {backend: {backend: memory, system: erp}}
        """
    )
    with running_gateway(tmp_path, text) as gateway:
        url, key = f"{gateway.url}/v1/ACME-DE/orders/SO-1", {"X-API-Key": KEYS["webshop"]}
        bare = requests.post(url, json={"id": "SO-1"}, headers=key, timeout=5)
        assert bare.status_code == 400 and bare.json()["title"] == "Idempotency-Key required"
        made = requests.post(url, json={"id": "SO-1"}, headers={**key, "Idempotency-Key": "k-1"}, timeout=5)
        assert made.status_code < 300, made.text
        spec = requests.get(f"{gateway.url}/openapi.json", timeout=5).json()
        [header] = [
            p for p in spec["paths"]["/v1/{entity}/orders/{orderId}"]["post"]["parameters"] if p["in"] == "header"
        ]
        assert header == {"name": "Idempotency-Key", "in": "header", "required": True, "schema": header["schema"]}
