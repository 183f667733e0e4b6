"""A surge beyond what a backend takes: its bulkhead sheds reads at once (503 + Retry-After) instead
of piling up timeouts, and an `async` route accepts every write (202) and makes it later, once.

The bulkhead on its own, then the real gateway over in-memory systems of record.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import requests

from gateway.resilience import Bulkhead, Busy
from legacy_adapters import memory
from tests.gateway.conftest import Gateway, running_gateway


# -- the bulkhead ----------------------------------------------------------------------------------
async def _hold(bulkhead: Bulkhead, release: asyncio.Event, log: list[str], name: str, patient: bool = False) -> None:
    try:
        async with bulkhead.slot(patient):
            log.append(f"{name} in")
            await release.wait()
    except Busy as exc:
        log.append(f"{name} busy {exc.retry_after}")


def test_calls_beyond_the_limit_wait_in_order_and_beyond_the_line_are_refused() -> None:
    async def scenario() -> list[str]:
        bulkhead, release, log = Bulkhead(limit=2, queue=2, wait=5), asyncio.Event(), []
        tasks = [asyncio.create_task(_hold(bulkhead, release, log, f"c{n}")) for n in range(6)]
        await asyncio.sleep(0.01)
        assert (bulkhead.in_flight, bulkhead.waiting, bulkhead.free) == (2, 2, 0)
        release.set()
        await asyncio.gather(*tasks)
        assert (bulkhead.in_flight, bulkhead.waiting) == (0, 0)
        return log

    log = asyncio.run(scenario())
    assert log[:2] == ["c0 in", "c1 in"]
    assert log[2:4] == ["c4 busy 1", "c5 busy 1"]  # refused at once, before anyone in line got in
    assert log[4:] == ["c2 in", "c3 in"]  # the line, in the order it formed


def test_a_caller_that_waits_too_long_is_refused_and_leaves_the_line() -> None:
    async def scenario() -> None:
        bulkhead, release, log = Bulkhead(limit=1, queue=1, wait=0.05), asyncio.Event(), []
        holder = asyncio.create_task(_hold(bulkhead, release, log, "holder"))
        await asyncio.sleep(0.01)
        await _hold(bulkhead, release, log, "late")
        assert log == ["holder in", "late busy 1"] and bulkhead.waiting == 0
        release.set()
        await holder
        assert bulkhead.in_flight == 0

    asyncio.run(scenario())


def test_a_caller_cancelled_as_its_turn_came_passes_the_slot_on() -> None:
    async def scenario() -> None:
        bulkhead, release, log = Bulkhead(limit=1, queue=2, wait=5), asyncio.Event(), []
        bulkhead.in_flight = 1  # someone holds the one slot
        gone = asyncio.create_task(_hold(bulkhead, release, log, "gone"))
        after = asyncio.create_task(_hold(bulkhead, release, log, "after"))
        await asyncio.sleep(0)
        release.set()
        bulkhead._release()  # the holder hands the slot to `gone`…
        gone.cancel()  # …which is cancelled before it could use it
        await asyncio.gather(gone, after, return_exceptions=True)
        assert log == ["after in"]
        assert (bulkhead.in_flight, bulkhead.waiting, len(bulkhead._line)) == (0, 0, 0)

    asyncio.run(scenario())


def test_a_patient_caller_always_waits_and_takes_no_place_of_the_line() -> None:
    async def scenario() -> list[str]:
        bulkhead, release, log = Bulkhead(limit=1, queue=1, wait=5), asyncio.Event(), []
        tasks = [asyncio.create_task(_hold(bulkhead, release, log, "first"))]
        await asyncio.sleep(0)
        tasks += [asyncio.create_task(_hold(bulkhead, release, log, f"worker{n}", patient=True)) for n in range(3)]
        tasks.append(asyncio.create_task(_hold(bulkhead, release, log, "consumer")))
        await asyncio.sleep(0.01)
        assert bulkhead.waiting == 1  # the consumer; the worker's calls do not fill the line
        release.set()
        await asyncio.gather(*tasks)
        return log

    assert asyncio.run(scenario()) == ["first in", "worker0 in", "worker1 in", "worker2 in", "consumer in"]


# -- the gateway over in-memory systems ------------------------------------------------------------
ROUTES = """\
routes:
  - name: stock
    operation: {method: GET, path: "/v1/{entity}/stock/{sku}"}
    entity: {from: path, name: entity, values: [ACME-DE]}
    key: {from: path, name: sku}
    legacy:
      backend: {backend: memory, system: erp, latency: 1.0}
      concurrency: {limit: 2, queue: 2}
  - name: order-put
    operation: {method: PUT, path: "/v1/{entity}/orders/{orderId}"}
    entity: {from: path, name: entity, values: [ACME-DE]}
    key: {from: path, name: orderId}
    writes: true
    async: true
    legacy:
      backend: {backend: memory, system: erp, latency: 0.02}
      concurrency: {limit: 1, pool: erp-orders}
    cloud: {backend: {backend: memory, system: cloud}}
    resilience: {retries: 0}
"""


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    memory.forget()
    with running_gateway(tmp_path, ROUTES, store=str(tmp_path / "cutover.db"), admin_key="admin-key-0123") as running:
        yield running
    memory.forget()


def test_reads_beyond_the_limit_and_its_line_are_shed_before_anyone_is_served(gateway: Gateway) -> None:
    async def surge() -> list[tuple[int, str, str | None]]:
        finished: list[tuple[int, str, str | None]] = []
        async with aiohttp.ClientSession(headers=gateway.headers()) as session:

            async def one(n: int) -> None:
                async with session.get(f"{gateway.url}/v1/ACME-DE/stock/SKU-{n}") as response:
                    body = await response.json()
                    finished.append((response.status, body.get("title", ""), response.headers.get("Retry-After")))

            await asyncio.gather(*(one(n) for n in range(10)))
        return finished

    finished = asyncio.run(surge())
    statuses = [status for status, _, _ in finished]
    # 2 in flight, 2 in line (read back 404: the memory ERP holds no stock); the other 6 refused, and
    # refused first: they did not wait for the 1 s the backend takes
    assert statuses == [503] * 6 + [404] * 4
    assert all(title == "Backend busy" and retry and int(retry) >= 1 for _, title, retry in finished[:6])
    metrics = requests.get(f"{gateway.url}/metrics", timeout=5).text
    assert 'banyan_backend_shed_total{route="stock",side="legacy"} 6.0' in metrics
    assert 'outcome="shed",role="serve",route="stock",side="legacy"} 6.0' in metrics
    assert 'banyan_backend_in_flight{pool="stock/legacy/*"} 0.0' in metrics


def _put(gateway: Gateway, order: str, body: dict[str, Any], consumer: str = "webshop", **headers: str) -> Any:
    return requests.put(
        f"{gateway.url}/v1/ACME-DE/orders/{order}", json=body, headers=gateway.headers(consumer, **headers), timeout=10
    )


def _settled(gateway: Gateway, location: str, seconds: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while True:
        told = requests.get(f"{gateway.url}{location}", headers=gateway.headers(), timeout=5).json()
        if told["status"] != "pending":
            return dict(told)
        assert time.monotonic() < deadline, f"still pending: {told}"
        time.sleep(0.05)


def test_an_async_route_accepts_every_write_and_makes_each_once(gateway: Gateway) -> None:
    async def surge() -> list[tuple[int, str, str]]:
        async with aiohttp.ClientSession(headers=gateway.headers()) as session:

            async def one(n: int) -> tuple[int, str, str]:
                url = f"{gateway.url}/v1/ACME-DE/orders/PO-{n}"
                async with session.put(url, json={"qty": n}, headers={"Idempotency-Key": f"k-{n}"}) as response:
                    return response.status, response.headers["Location"], response.headers["Retry-After"]

            return await asyncio.gather(*(one(n) for n in range(40)))

    accepted = asyncio.run(surge())
    assert {status for status, _, _ in accepted} == {202}
    assert len({location for _, location, _ in accepted}) == 40
    assert all(location.startswith("/accepted/") and int(retry) >= 1 for _, location, retry in accepted)
    told = [_settled(gateway, location) for _, location, _ in accepted]
    assert {t["status"] for t in told} == {"done"}
    assert told[7]["answer"]["status"] == 200 and told[7]["entity"] == "ACME-DE"
    erp = memory.system("erp")
    assert sorted(key for _, key, _ in erp.writes) == sorted(f"PO-{n}" for n in range(40))  # each once
    # a retry with the same key replays the 202 and its status URL; it is not written again
    again = _put(gateway, "PO-7", {"qty": 7}, **{"Idempotency-Key": "k-7"})
    assert again.status_code == 202 and again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Location"] == accepted[7][1]
    time.sleep(0.3)
    assert len(erp.writes) == 40


def test_a_status_url_tells_only_its_consumer_and_says_why_a_write_failed(gateway: Gateway) -> None:
    memory.system("erp").refuse = "customer on credit hold"
    accepted = _put(gateway, "PO-9", {"qty": 1})
    assert accepted.status_code == 202
    location = accepted.headers["Location"]
    told = _settled(gateway, location)
    assert told["status"] == "failed" and told["problem"]["status"] == 422
    assert "credit hold" in told["problem"]["detail"]
    other = requests.get(f"{gateway.url}{location}", headers=gateway.headers("de_only"), timeout=5)
    assert other.status_code == 404 and other.json()["title"] == "No such accepted write"
    assert requests.get(f"{gateway.url}/accepted/made-up", headers=gateway.headers(), timeout=5).status_code == 404
    assert requests.get(f"{gateway.url}{location}", timeout=5).status_code == 401
    assert memory.system("cloud").writes == []


def test_an_accepted_write_on_dual_write_reaches_the_cloud_after_legacy(tmp_path: Path) -> None:
    memory.forget()
    routes = ROUTES.replace(
        "    resilience: {retries: 0}\n", "    resilience: {retries: 0}\n    cutover: {mode: dual_write}\n"
    )
    with running_gateway(tmp_path, routes, store=str(tmp_path / "cutover.db")) as gateway:
        accepted = _put(gateway, "PO-1", {"qty": 3})
        assert accepted.status_code == 202 and accepted.headers["X-Served-By"] == "legacy"
        assert _settled(gateway, accepted.headers["Location"])["status"] == "done"
        deadline = time.monotonic() + 10
        while not memory.system("cloud").writes:
            assert time.monotonic() < deadline, "the cloud was never sent its copy"
            time.sleep(0.05)
        assert [key for _, key, _ in memory.system("cloud").writes] == ["PO-1"]
        assert [key for _, key, _ in memory.system("erp").writes] == ["PO-1"]
    memory.forget()


def test_routes_that_cannot_keep_their_promise_are_refused(tmp_path: Path) -> None:
    from gateway.app import Settings, build_app
    from specs.files import RouteError, load_routes

    folder = tmp_path / "routes"
    folder.mkdir()
    read_async = ROUTES.replace(
        "    key: {from: path, name: sku}\n", "    key: {from: path, name: sku}\n    async: true\n"
    )
    (folder / "orders.yaml").write_text(read_async)
    with pytest.raises(RouteError, match="only a managed write route can be async"):
        load_routes(folder)
    pools = ROUTES.replace("concurrency: {limit: 2, queue: 2}", "concurrency: {limit: 2, queue: 2, pool: erp-orders}")
    (folder / "orders.yaml").write_text(pools)
    with pytest.raises(RouteError, match="pool 'erp-orders' is already limited differently"):
        load_routes(folder)
    (folder / "orders.yaml").write_text(ROUTES)
    with pytest.raises(RouteError, match=r"route order-put is async: .* serve it with --store"):
        build_app(Settings(routes=folder, consumers=None))


# -- real processes, a real HTTP legacy service ----------------------------------------------------
def _surge_routes(folder: Path, legacy_url: str) -> Path:
    folder.mkdir()
    (folder / "orders.yaml").write_text(f"""\
routes:
  - name: order-create
    operation: {{method: POST, path: "/v1/{{entity}}/orders"}}
    entity: {{from: path, name: entity, values: [ACME-DE]}}
    key: {{from: json, pointer: /orderNumber}}
    writes: true
    async: true
    legacy:
      backend: {{backend: http, url: "{legacy_url}/orders", method: POST, timeout: 5}}
      request: {{map: {{po: /orderNumber, customer: /customer}}}}
      concurrency: {{limit: 1}}
    resilience: {{retries: 0}}
  - name: order-create-now
    operation: {{method: POST, path: "/v2/{{entity}}/orders"}}
    entity: {{from: path, name: entity, values: [ACME-DE]}}
    key: {{from: json, pointer: /orderNumber}}
    writes: true
    legacy:
      backend: {{backend: http, url: "{legacy_url}/orders", method: POST, timeout: 5}}
      request: {{map: {{po: /orderNumber, customer: /customer}}}}
      concurrency: {{limit: 1}}
    resilience: {{retries: 0}}
""")
    return folder


def test_a_surge_of_200_writes_is_accepted_at_once_and_booked_once_at_the_legacy_pace(tmp_path: Path) -> None:
    from tests.gateway.conftest import serve_process
    from tests.gateway.test_idempotency_fleet import Legacy

    legacy = Legacy(delay=0.1, one_at_a_time=True)  # an ERP that books 10 orders a second
    folder = _surge_routes(tmp_path / "routes", legacy.url)
    with serve_process("--routes", str(folder), "--insecure-no-auth", "--store", str(tmp_path / "c.db")) as url:

        async def surge() -> list[tuple[int, str]]:
            async with aiohttp.ClientSession() as session:

                async def one(n: int) -> tuple[int, str]:
                    await asyncio.sleep(n / 100)  # 200 writes in 2 s: twenty times what the ERP takes
                    body = {"orderNumber": f"PO-{n}", "customer": "globex"}
                    async with session.post(
                        f"{url}/v1/ACME-DE/orders", json=body, headers={"Idempotency-Key": f"surge-{n}"}
                    ) as response:
                        return response.status, response.headers.get("Location", "")

                return await asyncio.gather(*(one(n) for n in range(200)))

        accepted = asyncio.run(surge())
        booked_when_all_were_accepted = legacy.total
        assert [status for status, _ in accepted] == [202] * 200
        assert booked_when_all_were_accepted < 100  # answered at once, not at the ERP's pace
        deadline = time.monotonic() + 90
        while legacy.total < 200:
            assert time.monotonic() < deadline, f"only {legacy.total} of 200 booked"
            time.sleep(0.2)
        time.sleep(0.5)
        assert legacy.total == 200 and set(legacy.bookings.values()) == {1}  # every one, once
        told = [requests.get(f"{url}{location}", timeout=5).json() for _, location in accepted]
        assert {t["status"] for t in told} == {"done"}
        assert len({t["answer"]["body"]["orderId"] for t in told}) == 200

        # without async, the overflow is refused at once instead of waiting out the backend
        async def overflow() -> list[tuple[int, str | None]]:
            finished: list[tuple[int, str | None]] = []
            async with aiohttp.ClientSession() as session:

                async def one(n: int) -> None:
                    body = {"orderNumber": f"PO-N{n}", "customer": "globex"}
                    async with session.post(f"{url}/v2/ACME-DE/orders", json=body) as response:
                        finished.append((response.status, response.headers.get("Retry-After")))

                await asyncio.gather(*(one(n) for n in range(10)))
            return finished

        legacy.delay = 1.0
        finished = asyncio.run(overflow())
        assert [status for status, _ in finished] == [503] * 9 + [201]  # refused before the one booked
        assert all(retry is not None and int(retry) >= 1 for _, retry in finished[:9])


def test_the_contract_says_an_async_route_answers_202_and_where_to_ask(gateway: Gateway) -> None:
    document = requests.get(f"{gateway.url}/openapi.json", timeout=5).json()
    answers = document["paths"]["/v1/{entity}/orders/{orderId}"]["put"]["responses"]
    assert "200" not in answers and set(answers["202"]["headers"]) == {"Location", "Retry-After"}
    assert document["paths"]["/accepted/{token}"]["get"]["operationId"] == "accepted-status"
