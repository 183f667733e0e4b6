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
    backend = create(
        SoapConfig(url=url, namespace="urn:acme:erp:orders", operation="GetOrderStatus", not_found=not_found)
    )

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


def test_a_file_exchange_reply_the_route_names_is_not_found(tmp_path: object) -> None:
    """A stock enquiry over files: the reply that says the item does not exist is a 404 on a read."""
    import json
    import threading
    from pathlib import Path

    from legacy_adapters import FileDropConfig

    folder, replies = Path(str(tmp_path)) / "in", Path(str(tmp_path)) / "ack"
    folder.mkdir()
    replies.mkdir()
    stop = threading.Event()

    def answer() -> None:  # the legacy side: reads each enquiry, writes its reply
        while not stop.wait(0.02):
            for path in folder.glob("STOCK_*.json"):
                sku = json.loads(path.read_text())["sku"]
                reply = {"error": f"no item {sku}"} if sku != "SKU-1" else {"free_stock": "12"}
                partial = replies / f".{path.stem}.part"  # written whole, then renamed, as the importer does
                partial.write_text(json.dumps(reply))
                partial.replace(replies / f"{path.stem.rsplit('_', 1)[-1]}.ack")
                path.unlink()

    threading.Thread(target=answer, daemon=True).start()
    config = FileDropConfig(
        folder=str(folder),
        name="STOCK_{key}_{correlation_id}.json",
        reply_folder=str(replies),
        reject="/error",
        not_found="^no item ",
        timeout=5,
    )

    async def ask(sku: str, correlation: str) -> object:
        backend = create(config)
        try:
            return await backend.call(Call("stock", {"sku": sku}, key=sku, correlation_id=correlation))
        finally:
            await backend.close()

    try:
        assert asyncio.run(ask("SKU-1", "c1")).body == {"free_stock": "12"}  # type: ignore[attr-defined]
        with pytest.raises(BackendNotFound, match="no item SKU-9"):
            asyncio.run(ask("SKU-9", "c2"))
    finally:
        stop.set()
