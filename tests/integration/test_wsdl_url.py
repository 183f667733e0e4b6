"""A WSDL served by a real SOAP stack (spyne, the legacy side) on loopback, scanned by URL."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest

from inventory_scan import Kind
from inventory_scan.esb import EsbScan, EsbSource
from inventory_scan.esb import scan as esb_scan
from tests.conftest import missing_service

try:
    from spyne import Application, Integer, ServiceBase, Unicode, rpc
    from spyne.protocol.soap import Soap11
    from spyne.server.wsgi import WsgiApplication
except ImportError:
    missing_service("spyne (in the test extra) is needed to serve a real SOAP service")

pytestmark = pytest.mark.integration


class OrderService(ServiceBase):  # type: ignore[misc]
    @rpc(Unicode, Integer, _returns=Unicode)  # type: ignore[misc]
    def CreateOrder(ctx, customer, quantity):  # type: ignore[no-untyped-def]
        return f"{customer}:{quantity}"

    @rpc(Unicode, _returns=Unicode)  # type: ignore[misc]
    def GetOrderStatus(ctx, order_id):  # type: ignore[no-untyped-def]
        return "open"


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def legacy_soap() -> Iterator[str]:
    application = Application(
        [OrderService], tns="urn:acme:erp:orders", in_protocol=Soap11(validator="lxml"), out_protocol=Soap11()
    )
    soap = WsgiApplication(application)

    def site(environ: dict[str, object], start_response: Callable[..., object]) -> Iterable[bytes]:
        if environ["PATH_INFO"] == "/":
            return soap(environ, start_response)  # type: ignore[no-any-return]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"no such service"]

    server = make_server("127.0.0.1", 0, site, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()


def test_wsdl_by_url(legacy_soap: str) -> None:
    catalog, errors = EsbScan().run([EsbSource(f"{legacy_soap}?wsdl")])
    assert errors == []
    operations = {i.name: i for i in catalog.interfaces if i.kind is Kind.soap_operation}
    assert set(operations) == {"OrderService.CreateOrder", "OrderService.GetOrderStatus"}
    create = operations["OrderService.CreateOrder"]
    assert create.attributes["namespace"] == "urn:acme:erp:orders"
    assert create.attributes["addresses"] == [legacy_soap]
    assert [b["protocol"] for b in create.attributes["bindings"]] == ["soap1.1"]
    assert create.attributes["bindings"][0]["soap_action"] == "CreateOrder"
    assert create.locator == f"wsdl:{legacy_soap}?wsdl#OrderService.CreateOrder"


def test_a_missing_wsdl_is_a_clear_error(legacy_soap: str) -> None:
    catalog, errors = EsbScan().run([EsbSource(f"{legacy_soap}nothing/here.wsdl")])
    assert len(errors) == 1 and "HTTP 404 Not Found" in errors[0]
    assert not catalog.complete


def test_an_oversized_wsdl_is_refused(legacy_soap: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(esb_scan, "MAX_BYTES", 1000)
    _, errors = EsbScan().run([EsbSource(f"{legacy_soap}?wsdl")])
    assert len(errors) == 1 and "more than 1,000 bytes, refused" in errors[0]


def test_an_unreachable_server_is_a_clear_error() -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    _, errors = EsbScan().run([EsbSource(f"http://127.0.0.1:{port}/?wsdl")])
    assert len(errors) == 1 and "cannot fetch" in errors[0]
