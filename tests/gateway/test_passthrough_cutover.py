"""The SOAP passthrough on the cutover ladder: two real SOAP services (spyne), zeep as the consumer."""

from __future__ import annotations

import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
import zeep

from gateway.state import CUTOVER
from tests.gateway.conftest import KEYS, Gateway, running_gateway
from tests.gateway.test_cutover import ADMIN
from tests.legacy_soap import legacy_soap_service, order_status_service

ENVELOPE = (
    '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:o="urn:acme:erp:orders"><s:Body>'
    "<o:GetOrderStatus><o:order_id>{}</o:order_id></o:GetOrderStatus></s:Body></s:Envelope>"
)


@dataclass
class Estate:
    gateway: Gateway
    service: zeep.proxy.ServiceProxy
    calls: dict[str, list[str]] = field(default_factory=dict)

    def admin(self, body: dict[str, object]) -> None:
        answer = requests.put(
            f"{self.gateway.url}/admin/cutover/order-soap/ACME-DE", json=body, headers=ADMIN, timeout=5
        )
        assert answer.status_code == 200, answer.text

    def served_by(self, order: str) -> str:
        answer = requests.post(
            f"{self.gateway.url}/soap/OrderService",
            data=ENVELOPE.format(order).encode(),
            headers={"Content-Type": "text/xml", "X-API-Key": KEYS["webshop"]},
            timeout=5,
        )
        assert answer.status_code == 200, answer.text
        return answer.headers["X-Served-By"]

    def evidence(self) -> dict[str, int]:
        time.sleep(0.3)  # the mirrored calls finish and are compared off the request path
        self.gateway.app[CUTOVER].flush()
        rows = requests.get(
            f"{self.gateway.url}/admin/cutover?route=order-soap&entity=ACME-DE", headers=ADMIN, timeout=5
        )
        evidence: dict[str, int] = rows.json()[0]["evidence"]
        return evidence


@pytest.fixture
def estate(tmp_path: Path) -> Iterator[Estate]:
    calls: dict[str, list[str]] = {"legacy": [], "cloud": []}

    def legacy(order: str) -> str:
        calls["legacy"].append(order)
        return "open"

    def cloud(order: str) -> str:  # the replacement names one state in capitals
        calls["cloud"].append(order)
        return "OPEN" if order.endswith("7") else "open"

    with (
        legacy_soap_service(order_status_service(legacy)) as legacy_url,
        legacy_soap_service(order_status_service(cloud)) as cloud_url,
    ):
        routes = textwrap.dedent(
            f"""\
            routes:
              - name: order-soap
                passthrough:
                  path: /soap/OrderService
                  entity_xpath: "concat('ACME-', substring(string(//*[local-name()='order_id']), 4, 2))"
                  key_xpath: "string(//*[local-name()='order_id'])"
                  legacy: {legacy_url}
                  cloud: {cloud_url}
                cutover:
                  gate: {{min_samples: 5, min_minutes: 0}}
            """
        )
        with running_gateway(
            tmp_path, routes, store=str(tmp_path / "cutover.db"), admin_key=ADMIN["X-Admin-Key"]
        ) as gateway:
            session = requests.Session()
            session.headers["X-API-Key"] = KEYS["webshop"]
            client = zeep.Client(f"{legacy_url}?wsdl", transport=zeep.Transport(session=session))
            service = client.create_service(next(iter(client.wsdl.bindings)), gateway.url + "/soap/OrderService")
            yield Estate(gateway, service, calls)


def test_legacy_alone_until_the_rule_says_otherwise(estate: Estate) -> None:
    assert [estate.service.GetOrderStatus(f"SO-DE-{n}") for n in range(3)] == ["open"] * 3
    time.sleep(0.3)
    assert estate.calls == {"legacy": ["SO-DE-0", "SO-DE-1", "SO-DE-2"], "cloud": []}


def test_shadow_mirrors_soap_reads_and_compares_the_envelopes(estate: Estate) -> None:
    estate.admin({"mode": "shadow", "reason": "listen to the replacement"})
    time.sleep(0.2)
    assert {estate.service.GetOrderStatus(f"SO-DE-{n}") for n in range(10, 20)} == {"open"}  # legacy answers
    evidence = estate.evidence()
    assert sorted(estate.calls["cloud"]) == sorted(f"SO-DE-{n}" for n in range(10, 20))
    assert (evidence["calls_legacy"], evidence["calls_cloud"], evidence["comparisons"], evidence["mismatches"]) == (
        10,
        10,
        10,
        1,
    )
    fields = requests.get(
        f"{estate.gateway.url}/admin/cutover/mismatches?route=order-soap&entity=ACME-DE", headers=ADMIN, timeout=5
    ).json()
    assert [(f["path"].rsplit("/", 1)[-1], f["count"]) for f in fields] == [("GetOrderStatusResult", 1)]
    assert fields[0]["samples"][0]["legacy"] == "open" and fields[0]["samples"][0]["cloud"] == "OPEN"


def test_canary_is_sticky_by_the_key_in_the_envelope(estate: Estate) -> None:
    estate.admin({"mode": "canary", "percent": 50, "reason": "half", "force": True})
    time.sleep(0.2)
    served = {f"SO-DE-{n}": estate.served_by(f"SO-DE-{n}") for n in range(40)}
    assert 8 < list(served.values()).count("cloud") < 32
    assert {order: estate.served_by(order) for order in served} == served  # each order stays on its side
    evidence = estate.evidence()
    assert evidence["comparisons"] == 80 and evidence["calls_cloud"] == 80  # the other side got every call too
