"""One booking per Idempotency-Key across the fleet: several workers, several instances on one
PostgreSQL store, a retry after a timeout — counted at a real legacy HTTP server, with real
`banyan serve` processes."""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

from tests.cutover.conftest import postgres_url  # noqa: F401 - the fixture
from tests.gateway.conftest import serve_process

ORDER = {"orderNumber": "PO-77", "customer": "globex", "qty": 3}


class Legacy:
    """A legacy order service that counts every booking it is asked for."""

    def __init__(self, delay: float = 0.0, one_at_a_time: bool = False) -> None:
        self.bookings: Counter[str] = Counter()
        self.numbers = itertools.count(1)
        self.delay, self.lock = delay, threading.Lock()
        self.one_at_a_time = threading.Lock() if one_at_a_time else contextlib.nullcontext()
        legacy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with legacy.one_at_a_time:  # an ERP that books one order at a time: 1 / delay a second
                    time.sleep(legacy.delay)
                with legacy.lock:
                    legacy.bookings[json.loads(body).get("po", "?")] += 1
                    number = next(legacy.numbers)
                answer = json.dumps({"orderId": f"SO-{number}"}).encode()
                self.send_response(201)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def total(self) -> int:
        return sum(self.bookings.values())


def routes(folder: Path, legacy: Legacy, timeout: float = 5) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "orders.yaml").write_text(f"""\
routes:
  - name: order-create
    operation: {{method: POST, path: "/v1/{{entity}}/orders"}}
    entity: {{from: path, name: entity, values: [ACME-DE, ACME-US]}}
    key: {{from: json, pointer: /orderNumber}}
    writes: true
    legacy:
      backend: {{backend: http, url: "{legacy.url}/orders", method: POST, timeout: {timeout}}}
      request: {{map: {{po: /orderNumber, customer: /customer}}}}
    resilience: {{retries: 0}}
""")
    return folder


@contextmanager
def gateway(folder: Path, store: str, *extra: str) -> Iterator[str]:
    with serve_process("--routes", str(folder), "--insecure-no-auth", "--store", store, *extra) as url:
        yield url


def post(url: str, key: str, entity: str = "ACME-DE", body: dict[str, Any] = ORDER) -> requests.Response:
    # a fresh connection each time: the kernel spreads them over the workers
    return requests.post(
        f"{url}/v1/{entity}/orders", json=body, headers={"Idempotency-Key": key, "Connection": "close"}, timeout=15
    )


def test_one_booking_across_two_workers(tmp_path: Path) -> None:
    legacy = Legacy()
    with gateway(routes(tmp_path / "routes", legacy), str(tmp_path / "cutover.db"), "--workers", "2") as url:
        answers = [post(url, "retry-me") for _ in range(20)]
        assert legacy.total == 1
        assert {a.status_code for a in answers} == {201}
        assert {a.json()["orderId"] for a in answers} == {"SO-1"}
        assert sum(a.headers.get("Idempotent-Replayed") == "true" for a in answers) == 19
        # the same key on another entity's resource is another write; another body is refused
        assert post(url, "retry-me", entity="ACME-US").json()["orderId"] == "SO-2"
        other = post(url, "retry-me", body={**ORDER, "qty": 4})
        assert other.status_code == 422 and other.json()["title"] == "Idempotency-Key reused"
        assert legacy.total == 2


def test_one_booking_across_two_instances_on_postgres(postgres_url: str, tmp_path: Path) -> None:  # noqa: F811
    legacy = Legacy(delay=0.2)
    folder = routes(tmp_path / "routes", legacy)
    with gateway(folder, postgres_url) as a, gateway(folder, postgres_url) as b:
        in_turn = [post((a, b)[n % 2], "alternating") for n in range(20)]
        assert legacy.bookings["PO-77"] == 1 and {r.status_code for r in in_turn} == {201}
        # twenty at once, spread over both instances: one booking, the rest wait their turn or replay
        with ThreadPoolExecutor(20) as pool:
            together = list(
                pool.map(lambda n: post((a, b)[n % 2], "together", body={**ORDER, "orderNumber": "PO-78"}), range(20))
            )
        assert legacy.bookings["PO-78"] == 1
        statuses = Counter(r.status_code for r in together)
        assert set(statuses) <= {201, 409} and statuses[201] >= 1
        assert all(r.json()["title"] == "Request in progress" for r in together if r.status_code == 409)


def test_a_retry_after_a_timeout_is_told_the_write_is_in_doubt(tmp_path: Path) -> None:
    legacy = Legacy(delay=1.5)  # slower than the route's 1 s timeout
    with gateway(routes(tmp_path / "routes", legacy, timeout=1), str(tmp_path / "cutover.db")) as url:
        first = post(url, "slow")
        assert first.status_code == 504
        time.sleep(1)  # the legacy service finishes the booking the gateway stopped waiting for
        again = [post(url, "slow") for _ in range(3)]
        assert {r.status_code for r in again} == {409}
        doubt = again[0].json()
        assert doubt["title"] == "Write in doubt" and first.headers["X-Correlation-ID"] in doubt["detail"]
        assert legacy.total == 1  # booked once: by the first call, never by a retry
