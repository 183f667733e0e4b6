"""Canonical business entities: one answer shape whichever entity's system answers, checked where the
two sides are compared, shown in OpenAPI; and the shipped schemas, valid and used."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from jsonschema import Draft202012Validator

from gateway.openapi import openapi
from legacy_adapters import memory
from specs.canonical import Contract, load_canonical
from specs.files import RouteError, load_routes
from tests.conftest import REPO
from tests.gateway.conftest import KEYS, Gateway, running_gateway

ADMIN = {"X-Admin-Key": "admin-key-0123", "X-Actor": "ana"}
INVENTORY = json.loads((REPO / "routes" / "canonical" / "inventory.json").read_text())
ROUTES = """\
routes:
  - name: stock
    operation:
      method: GET
      path: "/v1/{entity}/inventory/{sku}"
      response: {$ref: "canonical:inventory"}
    entity: {from: path, name: entity, values: [ACME-DE, ACME-US]}
    key: {from: path, name: sku}
    legacy: {backend: {backend: memory, system: erp}}
    cloud: {backend: {backend: memory, system: cloud}}
    entities:
      ACME-US:
        extends: {tax_jurisdiction: {type: string, minLength: 2}}
    cutover: {mode: shadow}
  - name: stock-checked
    operation:
      method: GET
      path: "/v1/{entity}/checked/{sku}"
      response: {$ref: "canonical:inventory"}
      validate: true
    entity: {from: path, name: entity, values: [ACME-DE]}
    key: {from: path, name: sku}
    legacy: {backend: {backend: memory, system: erp}}
"""


def test_every_shipped_schema_is_a_2020_12_schema_with_an_extension_point() -> None:
    found = load_canonical(REPO / "routes")
    assert set(found) == {"customer", "item", "location", "inventory", "order", "invoice", "shipment"}
    for name, schema in found.items():
        Draft202012Validator.check_schema(schema)
        assert (
            schema["$schema"] == "https://json-schema.org/draft/2020-12/schema" and schema["$id"] == f"canonical:{name}"
        )
        assert schema["properties"]["extensions"]["type"] == "object"


@pytest.mark.parametrize(
    ("answer", "lifted"),
    [
        ({"available": "759", "warehouse": "DE-HH-01"}, {"available": 759, "warehouse": "DE-HH-01", "sku": "SKU-1"}),
        ({"sku": 4711, "available": 10.0, "onHand": " 12 "}, {"sku": "4711", "available": 10, "onHand": 12}),
        ({"sku": "SKU-2", "available": "many"}, {"sku": "SKU-2", "available": "many"}),  # not converted: reported
        ({"sku": "SKU-3", "available": True}, {"sku": "SKU-3", "available": True}),  # a flag is no number
        ("no object", "no object"),
    ],
)
def test_an_answer_is_lifted_into_the_canonical_shape(answer: Any, lifted: Any) -> None:
    contract = Contract("inventory", INVENTORY, {})
    assert contract.lift(answer, "ACME-DE", {"sku": "SKU-1", "entity": "ACME-DE"}) == lifted


def test_violations_name_the_place_and_an_entity_may_add_fields() -> None:
    contract = Contract("inventory", INVENTORY, {"ACME-US": {"tax_jurisdiction": {"type": "string", "minLength": 2}}})
    assert contract.violations({"sku": "S", "available": "many"}, "ACME-DE") == [
        ("/available", "'many' is not of type 'integer'")
    ]
    assert contract.violations({"sku": "S", "available": 1, "extensions": {"tax_jurisdiction": "X"}}, "ACME-US") == [
        ("/extensions/tax_jurisdiction", "'X' is too short")
    ]
    assert contract.violations({"sku": "S", "available": 1, "extensions": {"tax_jurisdiction": "X"}}, "ACME-DE") == []


@pytest.fixture
def stock(tmp_path: Path) -> Iterator[Gateway]:
    memory.forget()
    (tmp_path / "routes" / "canonical").mkdir(parents=True)
    (tmp_path / "routes" / "canonical" / "inventory.json").write_text(json.dumps(INVENTORY))
    erp, cloud = memory.system("erp"), memory.system("cloud")
    erp.records[("ACME-DE", "SKU-1")] = {"available": "759", "warehouse": "DE-HH-01"}  # a SOAP answer: text
    cloud.records[("ACME-DE", "SKU-1")] = {"sku": "SKU-1", "available": 759, "warehouse": "DE-HH-01"}
    erp.records[("ACME-DE", "SKU-2")] = {"available": "12"}
    cloud.records[("ACME-DE", "SKU-2")] = {"sku": "SKU-2", "available": "twelve"}  # the cloud breaks the contract
    with running_gateway(
        tmp_path, ROUTES, store=str(tmp_path / "cutover.db"), admin_key=ADMIN["X-Admin-Key"]
    ) as gateway:
        yield gateway
    memory.forget()


def get(gateway: Gateway, path: str) -> requests.Response:
    return requests.get(f"{gateway.url}{path}", headers={"X-API-Key": KEYS["webshop"]}, timeout=10)


def test_the_consumer_sees_one_contract_and_the_comparison_judges_like_with_like(stock: Gateway) -> None:
    served = get(stock, "/v1/ACME-DE/inventory/SKU-1")
    assert served.status_code == 200 and served.json() == {"available": 759, "warehouse": "DE-HH-01", "sku": "SKU-1"}
    get(stock, "/v1/ACME-DE/inventory/SKU-2")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the mirrored calls are compared off the request path
        status = {
            (r["route"], r["entity"]): r
            for r in requests.get(f"{stock.url}/admin/cutover", headers=ADMIN, timeout=10).json()
        }
        if status[("stock", "ACME-DE")]["evidence"]["comparisons"] == 2:
            break
        time.sleep(0.2)
    evidence = status[("stock", "ACME-DE")]["evidence"]
    assert evidence["comparisons"] == 2 and evidence["mismatches"] == 1  # "759" vs 759 is no difference
    fields = requests.get(f"{stock.url}/admin/cutover/mismatches?route=stock", headers=ADMIN, timeout=10).json()
    kinds = {(f["path"], f["kind"]) for f in fields}
    assert ("/available", "contract") in kinds  # the cloud's "twelve" breaks canonical:inventory
    metrics = requests.get(f"{stock.url}/metrics", timeout=10).text
    assert 'banyan_contract_violations_total{entity="ACME-DE",route="stock",side="cloud"} 1.0' in metrics


def test_a_route_that_asks_checks_every_answer(stock: Gateway) -> None:
    memory.system("erp").records[("ACME-DE", "SKU-9")] = {"available": "lots"}
    broken = get(stock, "/v1/ACME-DE/checked/SKU-9")
    assert broken.status_code == 502
    assert broken.json()["detail"] == (
        "the legacy system's answer breaks canonical:inventory: /available: 'lots' is not of type 'integer'"
    )
    assert get(stock, "/v1/ACME-DE/checked/SKU-1").json()["available"] == 759


def test_openapi_shows_canonical_schemas_as_components() -> None:
    routes = load_routes(REPO / "routes")
    document = openapi(routes, load_canonical(REPO / "routes"))
    answer = document["paths"]["/v1/{entity}/inventory/{sku}"]["get"]["responses"]["200"]
    assert answer["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/inventory"}
    component = document["components"]["schemas"]["inventory"]
    assert "$id" not in component and component["required"] == ["sku", "available"]


def test_openapi_groups_routes_by_tag_and_describes_the_soap_passthrough() -> None:
    routes = load_routes(REPO / "routes")
    document = openapi(routes, load_canonical(REPO / "routes"))
    operations = [entry for path in document["paths"].values() for entry in path.values()]
    assert all(entry["tags"] for entry in operations if entry["operationId"] != "accepted-status")
    assert {"orders", "inventory", "customers", "soap"} <= {tag["name"] for tag in document["tags"]}
    assert document["paths"]["/v1/{entity}/orders/{orderId}"]["get"]["tags"] == ["orders"]
    soap = document["paths"]["/soap/OrderService"]["post"]
    assert soap["operationId"] == "order-service-passthrough" and "text/xml" in soap["requestBody"]["content"]
    assert (
        "SOAP passthrough" in soap["description"]
        and "substring(string(//*[local-name()='customer'])" in soap["description"]
    )
    assert set(soap["responses"]) >= {"200", "500", "401", "429"}


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda text: text.replace("canonical:inventory", "canonical:stocks", 1), "no canonical schema 'stocks'"),
        (
            lambda text: text.replace('      response: {$ref: "canonical:inventory"}\n', "", 1),
            "entities.ACME-US.extends needs a canonical response",
        ),
    ],
)
def test_routes_check_refuses_a_missing_schema_and_extends_without_one(tmp_path: Path, change: Any, says: str) -> None:
    folder = tmp_path / "routes"
    (folder / "canonical").mkdir(parents=True)
    (folder / "canonical" / "inventory.json").write_text(json.dumps(INVENTORY))
    (folder / "stock.yaml").write_text(change(ROUTES))
    with pytest.raises(RouteError, match=says):
        load_routes(folder)


def test_a_broken_schema_file_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "routes"
    (folder / "canonical").mkdir(parents=True)
    (folder / "canonical" / "order.json").write_text('{"type": "objekt"}')
    (folder / "stock.yaml").write_text("routes: []\n")
    with pytest.raises(RouteError, match=r"order\.json: not a JSON Schema"):
        load_routes(folder)
