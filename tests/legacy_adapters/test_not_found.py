"""One answer for "no such record", whatever the transport, and a refusal when a write names one.

A real spyne service answers an unknown order with a Client fault; the route names that fault as
not found, as an HTTP backend answers 404 and an ODBC query returns no row.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from spyne import Fault, ServiceBase, Unicode, rpc

from gateway.sides import not_found_problem
from legacy_adapters import BackendNotFound, BackendRejected, Call, SoapConfig, create
from tests.legacy_soap import legacy_soap_service


class Orders(ServiceBase):  # type: ignore[misc]
    @rpc(Unicode, _returns=Unicode)  # type: ignore[misc]
    def GetOrderStatus(ctx, order_id):  # type: ignore[no-untyped-def]
        if order_id == "bad id!":
            raise Fault(faultcode="Client", faultstring="order ids are letters, digits and dashes")
        if order_id != "SO-1":
            raise Fault(faultcode="Client", faultstring=f"no order {order_id}")
        return "open"


@pytest.fixture(scope="module")
def service() -> Iterator[str]:
    with legacy_soap_service(Orders) as url:
        yield url


def _ask(url: str, order: str, not_found: str | None) -> object:
    backend = create(SoapConfig(url=url, namespace="urn:acme:erp:orders", operation="GetOrderStatus",
                                not_found=not_found))  # fmt: skip

    async def call() -> object:
        try:
            return await backend.call(Call("order-status", {"order_id": order}, key=order))
        finally:
            await backend.close()

    return asyncio.run(call())


def test_a_fault_the_route_names_is_not_found_and_others_stay_refusals(service: str) -> None:
    with pytest.raises(BackendNotFound, match="no such record: no order SO-9"):
        _ask(service, "SO-9", "^no order ")
    with pytest.raises(BackendRejected) as refused:
        _ask(service, "bad id!", "^no order ")
    assert not isinstance(refused.value, BackendNotFound)  # a bad request is still a 422
    with pytest.raises(BackendRejected) as unnamed:
        _ask(service, "SO-9", None)  # without the rule, a Client fault is a refusal
    assert not isinstance(unnamed.value, BackendNotFound)


def test_not_found_is_404_on_a_read_and_a_refusal_on_a_write() -> None:
    call = Call("order-status", {}, key="SO-9")
    read, write = not_found_problem(False, "legacy", call), not_found_problem(True, "legacy", call)
    assert (read.status, read.title) == (404, "Not found") and "no such SO-9" in read.detail
    assert (write.status, write.title) == (422, "Backend rejected the request") and "did not take it" in write.detail
