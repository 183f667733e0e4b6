"""A real legacy SOAP service for the tests: spyne, served by wsgiref on a loopback port."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from wsgiref.simple_server import WSGIRequestHandler, make_server

from spyne import Application, Fault, Integer, ServiceBase, Unicode, rpc
from spyne.protocol.soap import Soap11
from spyne.server.wsgi import WsgiApplication

_numbers = itertools.count(1000)
SEEN: list[dict[str, str]] = []  # headers of the calls received, for the tests to inspect


class OrderService(ServiceBase):  # type: ignore[misc]
    @rpc(Unicode, Integer, _returns=Unicode)  # type: ignore[misc]
    def CreateOrder(ctx, customer, quantity):  # type: ignore[no-untyped-def]
        if customer == "nobody":
            raise Fault(faultcode="Client", faultstring="unknown customer")
        if customer == "crash":
            raise Fault(faultcode="Server", faultstring="ERP database deadlock")
        return f"ORD-{next(_numbers)}-{customer}-{quantity}"

    @rpc(Unicode, _returns=Unicode)  # type: ignore[misc]
    def GetOrderStatus(ctx, order_id):  # type: ignore[no-untyped-def]
        return "open" if order_id else "unknown"


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def order_status_service(status_of: Callable[[str], str]) -> type:
    """An order service whose GetOrderStatus answers `status_of(order_id)`: a legacy ERP, or its replacement."""

    class OrderService(ServiceBase):  # type: ignore[misc]
        @rpc(Unicode, _returns=Unicode)  # type: ignore[misc]
        def GetOrderStatus(ctx, order_id):  # type: ignore[no-untyped-def]
            return status_of(order_id)

    return OrderService


@contextmanager
def legacy_soap_service(service: type = OrderService) -> Iterator[str]:
    application = Application(
        [service], tns="urn:acme:erp:orders", in_protocol=Soap11(validator="lxml"), out_protocol=Soap11()
    )
    soap = WsgiApplication(application)

    def site(environ: dict[str, object], start_response: Callable[..., object]) -> Iterable[bytes]:
        SEEN.append({k: str(v) for k, v in environ.items() if k.startswith("HTTP_")})
        return soap(environ, start_response)  # type: ignore[no-any-return]

    server = make_server("127.0.0.1", 0, site, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()


def soap_fault(status: int, body: bytes, version: str = "1.1") -> dict[str, str]:
    """The gateway's SOAP Fault in an answer: code, text, and the problem in its detail."""
    from lxml import etree

    namespace = {"1.1": "http://schemas.xmlsoap.org/soap/envelope/", "1.2": "http://www.w3.org/2003/05/soap-envelope"}
    root = etree.fromstring(body)
    assert root.tag == f"{{{namespace[version]}}}Envelope", body
    fault = root.find(f"{{{namespace[version]}}}Body/{{{namespace[version]}}}Fault")
    assert fault is not None, body
    text = "".join(fault.itertext())
    found = {local.tag.rpartition("}")[2]: local.text or "" for local in fault.iter("{urn:banyan:problem}*")}
    code = fault.findtext("faultcode") if version == "1.1" else fault.findtext(f".//{{{namespace['1.2']}}}Value")
    return {"http_status": str(status), "code": code or "", "text": text, **found}
