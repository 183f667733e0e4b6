"""SIGKILL a gateway while 200 process instances run: on SQLite it starts again on its store, on
PostgreSQL a second gateway of the fleet, sent nothing, takes the instances over. Every instance
completes (a booking under way at the kill is in doubt until the step's check reads the order
back), and the ERP, counting what it was asked, never books an order or posts an invoice twice."""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from aiohttp import web

from cutover.store import open_store
from processes.book import ENDED, Book
from tests.cutover.conftest import postgres_url  # noqa: F401 - the fixture
from tests.gateway.conftest import app_in_thread, free_port
from tests.gateway.test_cutover import wait_until
from tests.gateway.test_outbox_crash import start
from tests.processes.test_process_routes import Erp, erp_app, order, routes

INSTANCES = 200


def _slow(erp: Erp) -> web.Application:
    """The ERP, booking one order at a time, 20 ms each: instances are mid-step when the gateway dies,
    and the bookings it was sent go on after."""
    app = erp_app(erp)
    one_at_a_time = asyncio.Lock()

    @web.middleware
    async def slow(request: web.Request, handler: web.Handler) -> web.StreamResponse:
        if request.method != "POST":
            return await handler(request)
        async with one_at_a_time:
            await asyncio.sleep(0.02)
            return await handler(request)

    app.middlewares.append(slow)
    return app


def test_sigkill_under_200_running_instances_books_nothing_twice(tmp_path: Path, postgres_url: str) -> None:  # noqa: F811
    stores = {"sqlite": str(tmp_path / "sqlite.db"), "postgres": postgres_url}
    erps = {name: Erp() for name in stores}
    with app_in_thread(_slow(erps["sqlite"])) as sqlite_erp, app_in_thread(_slow(erps["postgres"])) as postgres_erp:
        erps["sqlite"].url, erps["postgres"].url = sqlite_erp, postgres_erp
        folders, ports, gateways = {}, {name: free_port() for name in stores}, {}
        for name in stores:
            folders[name] = tmp_path / name / "routes"
            folders[name].mkdir(parents=True)
            (folders[name] / "routes.yaml").write_text(
                routes(erps[name].url).replace("    steps:\n", "    respond: accepted\n    steps:\n", 1)
            )
        try:
            for name, store in stores.items():
                gateways[name] = start(folders[name], store, ports[name], "--in-doubt-after", "5")  # type: ignore[arg-type]
            # a second gateway of the PostgreSQL fleet, sent nothing: it takes over what the first leaves
            other = start(folders["postgres"], postgres_url, free_port(), "--in-doubt-after", "5")  # type: ignore[arg-type]
            gateways["postgres-other"] = other

            def send(name: str, n: int) -> int:
                url = f"http://127.0.0.1:{ports[name]}/v1/group-orders"
                return requests.post(url, json=order(f"GO-{n}"), timeout=30).status_code

            with ThreadPoolExecutor(16) as pool:
                jobs = [(name, n) for n in range(INSTANCES) for name in stores]
                answered = list(pool.map(lambda job: send(*job), jobs))
            assert answered == [202] * len(answered)
            wait_until(lambda: all(len(erp.bookings) >= 20 for erp in erps.values()), 60)
            for name in stores:
                os.killpg(gateways[name].pid, signal.SIGKILL)  # mid-stream: no goodbye
                gateways[name].wait(10)
            at_kill = {name: sum(erp.bookings.values()) for name, erp in erps.items()}
            # SQLite: the gateway starts again on its store; PostgreSQL: the other gateway resumes alone
            gateways["sqlite"] = start(folders["sqlite"], stores["sqlite"], ports["sqlite"], "--in-doubt-after", "5")  # type: ignore[arg-type]
            books = {name: Book(open_store(store)) for name, store in stores.items()}

            def ended() -> bool:
                return all(
                    sum(count for (_, state), count in book.counts().items() if state in ENDED) == INSTANCES
                    for book in books.values()
                )

            wait_until(ended, 150)
            for name, book in books.items():
                erp = erps[name]
                states = Counter({state: count for (_, state), count in book.counts().items()})
                doubts = [
                    (i.reason, [(c.call, c.state, c.reason) for c in book.calls(i.id)])
                    for i in book.page("group-order", "in_doubt", 3)
                ]
                assert states == Counter({"completed": INSTANCES}), (name, states, doubts)
                assert at_kill[name] < INSTANCES, (name, at_kill)  # the kill came while instances ran
                # every order booked, and none twice, whoever resumed it and however often
                assert erp.bookings == Counter({f"GO-{n}": 1 for n in range(INSTANCES)}), (name, erp.bookings)
                assert len(erp.invoices) == INSTANCES and set(erp.invoices.values()) == {1}, name
                resumed = [i for i in book.page("group-order", "completed", INSTANCES) if i.attempts > 0]
                assert resumed, name  # some were taken over after the restart
                checked = [
                    call
                    for instance in resumed
                    for call in book.calls(instance.id)
                    if call.call == "book" and "found" in call.reason
                ]
                assert checked, name  # bookings in doubt at the kill, told by reading the order back
                book.store.close()
        finally:
            for gateway in gateways.values():
                if gateway.poll() is None:
                    os.killpg(gateway.pid, signal.SIGTERM)
                    gateway.wait(20)
