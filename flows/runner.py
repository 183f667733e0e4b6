"""Moving a flow's files: from the drop to each side's intake on the rung of their entity, and each
side's replies back to the file they answer, compared, with the serving side's passed to the partner.

Where a file goes, by the rung of its entity (and, in canary, its key):

    legacy         legacy's intake
    shadow         legacy's; the cloud's non-booking intake, where it has one
    dual_write     both intakes (legacy serves)
    canary P %     both; the cloud serves P % of the keys (partners), sticky
    cloud_primary  both (the cloud serves)
    cloud          the cloud's intake

A file is taken once it is whole (unchanged for `settle_seconds`, or its done-file is there), read
for its partner, entity and key (the first MiB: the envelope and the header), and claimed in the
store. Into each intake it is first copied under a temporary name (`.banyan-….tmp`), then the
intent is recorded, then it is linked under its own name (never over a file already there) and the
delivery recorded. A runner that dies anywhere in between leaves a lease to run out; the next one
resumes: a temporary copy still there was never named (name it; with a second link, it was), the
name in the intake or in a folder the importer moves files to was delivered, and anything else is in
doubt, for a person.
The source file goes to the archive once every side has it, or to the error folder with its reason.

Evidence goes to the same tables as a route's: a delivery is a call to its side (a failed write to
an intake is an error), and two replies to the same file are a comparison, so gates, guardrails,
the console and `cutover mismatches` work on flows unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from cutover.compare import Comparator, Difference
from cutover.decide import Mode, Rule, Side, decide
from cutover.runtime import Cutover, in_thread
from flows.batches import BatchRunner
from flows.documents import FACTS, NOISE, Document, DocumentError, ends_whole, parse, value_at
from flows.intakes import FolderIntake, Intake, LeaseLost, intake_for
from flows.journey import LEASE_SECONDS, Answer, Delivery, FileRow, Journey
from flows.mailbox import Mailbox, MailboxError, is_remote
from flows.uploads import Routes, Sent, key_for, send
from legacy_adapters.errors import Outcome
from legacy_adapters.mapping import MappingError, pointer_get
from specs.flows import Batch, Flow, FlowSide, Pick

log = logging.getLogger("banyan.flows")

POLL_SECONDS = 0.5
FORWARD_GRACE = 30.0  # a reply read this long ago and not forwarded was left by a runner that stopped
HEAD_BYTES = 1 << 20  # what is parsed of a file for its partner, entity and key: the envelope and the header
CHUNK = 1 << 20
ROUTED_BYTES = 10 << 20  # a document sent through a route is parsed whole and mapped into one call
_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")


@dataclass
class Evidence:
    """What a pass saw, counted by the gateway's loop (the runtime's buffers are not for threads)."""

    calls: list[tuple[str, str, str, Side, bool]] = field(default_factory=list)
    comparisons: list[tuple[str, str, str, list[Difference]]] = field(default_factory=list)
    replies: list[tuple[str, str, Side, float]] = field(default_factory=list)  # flow, entity, side, seconds
    slos: list[tuple[str, str, str, bool, float | None]] = field(default_factory=list)  # flow, entity, slo, good, s

    def count(self, cutover: Cutover) -> None:
        for flow, entity, rung, side, failed in self.calls:
            cutover.called(flow, entity, rung, side, failed)
        for flow, entity, rung, differences in self.comparisons:
            cutover.compared(flow, entity, rung, differences)
        for flow, entity, slo, good, _ in self.slos:
            cutover.measured(flow, entity, slo, good)

    def taken(self, flow: Flow, row: FileRow, good: bool) -> None:
        """The serving side took the file (or would not, or nobody knows): the flow's success SLOs."""
        self.slos += [(flow.name, row.entity or "*", slo.name, good, None) for slo in flow.slo if slo.kind == "success"]

    def answered(self, flow: Flow, row: FileRow, seconds: float) -> None:
        """The serving side's first answer to the file, `seconds` after it arrived: its latency SLOs."""
        self.slos += [
            (flow.name, row.entity or "*", slo.name, seconds <= (slo.threshold or 0), seconds)
            for slo in flow.slo
            if slo.kind == "latency"
        ]


def digest_of(path: Path) -> tuple[str, int]:
    """The file's SHA-256 and size, read a chunk at a time: a 200 MB file never sits in memory."""
    hasher, size = hashlib.sha256(), 0
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            hasher.update(chunk)
            size += len(chunk)
    return hasher.hexdigest(), size


def pick(how: Pick, document: Document, name: str) -> str | None:
    """An entity or key, where the flow says it is."""
    if how.from_ == "fixed":
        return how.value
    if how.from_ == "name":
        found = re.search(how.pattern or "", name)
        return found.group("value") if found else None
    if how.from_ == "document":
        value = value_at(document, how.pointer or "/")
        return how.partners.get(value or "") if how.partners else value
    sender = (document.sender or "").strip() or None
    if how.partners:
        return how.partners.get(sender or "")
    return sender


def targets(flow: Flow, rule: Rule, key: str | None) -> tuple[Side, list[tuple[Side, str]]]:
    """The serving side, and each side's intake that gets the file on `rule`, serving side first."""
    if rule.mode is Mode.shadow:  # legacy books it; the cloud, where it can, only checks it
        found = [(Side.legacy, flow.legacy.destination)]
        if flow.cloud is not None and flow.cloud.validate_intake:
            found.append((Side.cloud, flow.cloud.validate_intake))
        return Side.legacy, found
    plan = decide(rule, key, writes=True, salt=flow.name)
    found = []
    for side in [plan.serve] + ([plan.mirror] if plan.mirror is not None else []):
        end = flow.legacy if side is Side.legacy else flow.cloud
        if end is not None:
            found.append((side, end.destination))
    return plan.serve, found


def _pointed(flow: Flow) -> frozenset[str]:
    """The segments a flow's entity or key pointer names (e.g. BEG of /ST/*/BEG/03)."""
    pointers = [how.pointer for how in (flow.entity, flow.key) if how.from_ == "document" and how.pointer]
    return frozenset(
        step for pointer in pointers for step in pointer.split("/") if re.fullmatch(r"[A-Z][A-Z0-9]{1,2}", step)
    )


def _called(flow: Flow, side: Side, destination: str) -> FlowSide | None:
    """The side, when it is called rather than written to (an upload URL, a route) at `destination`."""
    end = flow.legacy if side is Side.legacy else flow.cloud
    if end is not None and (end.upload is not None or end.route is not None) and end.destination == destination:
        return end
    return None


def _idempotent(end: FlowSide) -> bool:
    """Does the called side honour Idempotency-Key, so an unknown outcome may be sent again?"""
    return bool(end.upload.idempotent if end.upload is not None else end.route and end.route.idempotent)


def plan_of(row: FileRow) -> tuple[str, list[tuple[Side, str]]]:
    """The serving side and the intakes recorded for a file when it was read."""
    recorded = json.loads(row.serving or "{}")
    return recorded.get("serve", ""), [(Side(side), folder) for side, folder in recorded.get("to", [])]


def drop_of(flow: Flow) -> Path:
    """The local folder the flow takes files from: its drop, or the staging folder its SFTP
    mailbox is fetched into."""
    return Path(flow.source.staging if is_remote(flow.source) else flow.source.folder)  # type: ignore[arg-type]


def resend(flow: Flow, file_id: int, name: str) -> Path:
    """A refused file given another go: from the error folder back into the drop under its own
    name, touched, so the runner takes it as a new arrival (its journey row, marked resent, no
    longer makes it a duplicate). Raises OSError saying why it cannot."""
    error = Path(flow.source.error or drop_of(flow) / ".banyan" / "error")
    parked, target = error / f"{file_id}-{_safe(name)}", drop_of(flow) / _safe(name)
    if not parked.is_file():
        raise FileNotFoundError(f"{parked.name} is no longer in the error folder {error}")
    if target.exists():
        raise FileExistsError(f"a file named {target.name} waits in the drop already")
    os.rename(parked, target)
    os.utime(target)
    (error / f"{parked.name}.reason.txt").unlink(missing_ok=True)
    return target


def _safe(name: str) -> str:
    """A name that cannot confuse a script or a database: no control characters, no leading dash,
    nothing but UTF-8 (a byte that is not becomes ?)."""
    cleaned = _UNSAFE.sub("_", name.encode("utf-8", "surrogateescape").decode("utf-8", "replace"))
    cleaned = cleaned.replace("\ufffd", "?")
    return "_" + cleaned[1:] if cleaned.startswith("-") else cleaned


class FlowRunner:
    """Runs the flows of one routes folder inside a gateway process; several runners on one store
    share the work (each file is claimed once)."""

    def __init__(
        self,
        flows: list[Flow],
        cutover: Cutover,
        observe: Callable[[Evidence], None] | None = None,
        batches: list[Batch] | None = None,
        routes: Routes | None = None,
    ) -> None:
        self.flows = flows
        self.cutover = cutover
        self.batches = BatchRunner(batches or [], cutover)
        self.observe = observe  # told what each pass saw (the gateway's /metrics)
        self.journey = Journey(cutover.store)
        self.routes = routes  # the gateway's routes, for sides that are routes and for reading outcomes back
        self.asked: dict[tuple[int, str], float] = {}  # (file, side) → when its booked record was last asked for
        self.intakes: dict[tuple[str, str], Intake] = {}  # (flow, folder) → where a side's copies go
        self.use(flows)
        self.sizes: dict[tuple[str, str], tuple[tuple[int, int], float]] = {}  # (flow, name) → signature, since
        self.read_replies: set[tuple[str, str, str, int, int]] = set()  # replies this runner has looked at
        self.complained: set[str] = set()

    def use(self, flows: list[Flow], batches: list[Batch] | None = None) -> None:
        """The flows (and scheduled batches) after the route files changed."""
        self.flows = flows
        if batches is not None:
            self.batches.batches = batches
        self.mailboxes = {flow.name: Mailbox(flow.source) for flow in flows if is_remote(flow.source)}
        for intake in self.intakes.values():
            intake.close()
        self.intakes = {}
        self.defaults = {info.name: info.default for info in self.cutover.engine.routes.values()}
        self.mappings = {
            (flow.name, side): end.route.map.compile()
            for flow in flows
            for side, end in (("legacy", flow.legacy), ("cloud", flow.cloud))
            if end is not None and end.route is not None
        }
        self.wanted = {flow.name: FACTS | _pointed(flow) for flow in flows}  # segments read to route a file
        self.comparators = {
            flow.name: Comparator(flow.compare.model_copy(update={"ignore": [*NOISE, *flow.compare.ignore]}))
            for flow in flows
        }

    async def run(self) -> None:
        """Pass over every flow, then wait a moment; a failing pass costs a log line, never the gateway."""
        while True:
            for flow in self.flows:
                try:
                    evidence = await in_thread(self.pass_once, flow)
                    evidence.count(self.cutover)
                    if self.observe is not None:
                        self.observe(evidence)
                except Exception as exc:  # the store or a folder is away: try again next pass
                    log.error("flow %s: pass failed: %s", flow.name, exc)
            for batch in self.batches.batches:
                try:
                    for rung, side, failed in await in_thread(self.batches.pass_once, batch):
                        self.cutover.called(batch.name, batch.entity, rung, side, failed)
                except Exception as exc:  # an export unreadable, the store away: said, and tried again
                    self._complain(f"{batch.name}:{exc}", f"batch {batch.name}: run failed: {exc}")
            await asyncio.sleep(POLL_SECONDS)

    def pass_once(self, flow: Flow, now: float | None = None) -> Evidence:
        try:
            return self._pass(flow, now)
        finally:  # an SFTP intake's connection lasts one pass
            for (name, _), intake in self.intakes.items():
                if name == flow.name:
                    intake.close()

    def intake(self, flow: Flow, side: Side, folder: str) -> Intake:
        """Where a side's copies of a flow's files go: its intake, or (shadow) its checking intake."""
        found = self.intakes.get((flow.name, folder))
        if found is None:
            end = flow.legacy if side is Side.legacy else flow.cloud
            found = intake_for(folder, end, end.seen_in) if end is not None else FolderIntake(folder, [])
            self.intakes[(flow.name, folder)] = found
        return found

    def _pass(self, flow: Flow, now: float | None = None) -> Evidence:
        evidence = Evidence()
        mailbox = self.mailboxes.get(flow.name)
        if mailbox is not None:
            try:
                mailbox.fetch()
            except MailboxError as exc:  # the partner's server is away: what is here goes on, and it is tried again
                self._complain(f"{flow.name}:mailbox:{exc}", f"flow {flow.name}: mailbox not fetched: {exc}")
        for row in self.journey.unfinished(flow.name, time.time() if now is None else now):
            if self.journey.take_over(row.id, time.time() + LEASE_SECONDS):
                try:
                    self.resume(flow, row, evidence)
                except OSError as exc:  # an intake cannot be asked: the file waits for its lease, then again
                    self._complain(f"{flow.name}:resume:{exc}", f"flow {flow.name}: file {row.id} not resumed: {exc}")
        for path, size, modified in self.settled(flow, now):
            self.take(flow, path, size, modified, evidence)
        for side in (Side.legacy, Side.cloud):
            end = flow.legacy if side is Side.legacy else flow.cloud
            if end is not None and end.replies:
                self.replies(flow, side, end, evidence)
        if flow.outcome is not None and self.routes is not None:
            self.read_back(flow, evidence)
        if flow.outbound:
            self.forward_owed(flow)
        return evidence

    def forward_owed(self, flow: Flow) -> None:
        """Pass on the serving side's replies a runner read and stopped before forwarding (after
        FORWARD_GRACE, so never one another runner is forwarding now). One already in the outbound
        folder with the same bytes was forwarded: it is recorded, not sent again."""
        before = datetime.fromtimestamp(time.time() - FORWARD_GRACE, UTC).isoformat(timespec="milliseconds")
        for side, name, digest in self.journey.owed_forwards(flow.name, before):
            end = flow.legacy if side == Side.legacy.value else flow.cloud
            source = Path(end.replies or "") / name if end is not None else None
            there = Path(flow.outbound or "") / name
            if there.is_file() and digest_of(there)[0] == digest:
                self.journey.forwarded(flow.name, side, name, digest, name)
            elif source is not None and source.is_file() and digest_of(source)[0] == digest:
                self._forward(flow, Side(side), source, digest)
            else:  # the side's reply is gone from its folder: said once, and not asked about again
                self.journey.forwarded(flow.name, side, name, digest, "")
                log.error(
                    "flow %s: %s's reply %s was never passed to the partner and is gone from %s",
                    flow.name,
                    side,
                    name,
                    source.parent if source else "its folder",
                )

    def read_back(self, flow: Flow, evidence: Evidence) -> None:
        """Ask each side, through the flow's read route, for the record it booked from each file
        delivered lately; two records of one file are compared. A record not there yet is asked for
        again every `every_seconds`; one still missing after `within_minutes` is recorded as not
        booked, so the comparison shows it."""
        outcome, routes = flow.outcome, self.routes
        assert outcome is not None and routes is not None
        now, window = time.time(), outcome.within_minutes * 60 + 60
        self.asked = {asked: at for asked, at in self.asked.items() if now - at < window}
        checking = flow.cloud.validate_intake if flow.cloud is not None else None
        for row, side, folder in self.journey.unread_records(flow.name, now - window):
            if folder == checking or now - self.asked.get((row.id, side), 0.0) < outcome.every_seconds:
                continue  # a checking intake books nothing; or asked a moment ago
            self.asked[(row.id, side)] = now
            value = (row.numbers.split(",")[0] if outcome.value == "number" else row.business_key) or ""
            sent = routes.call(outcome.route, side, row.entity or "", None, {outcome.param: value}, None, False)
            if sent.outcome is Outcome.made:
                record = sent.answer or {}
            elif sent.outcome is Outcome.not_found and now - row.created > outcome.within_minutes * 60:
                record = {"booked": False}
            else:  # not booked yet, or the side cannot be asked now: later
                continue
            self.journey.replied(Answer(row.id, side, "record", f"{outcome.route} {value}", record, None, now))
            self.asked.pop((row.id, side), None)
            self._compare(flow, row, "record", evidence)

    # -- the drop -------------------------------------------------------------------------------
    def settled(self, flow: Flow, now: float | None = None) -> Iterator[tuple[Path, int, int]]:
        """The drop's files that are whole: (path, size, modification time in ns)."""
        moment = time.monotonic() if now is None else now
        folder = drop_of(flow)
        try:
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except OSError as exc:
            self._complain(f"{flow.name}:{folder}", f"flow {flow.name}: cannot read its drop {folder}: {exc}")
            return
        suffix = flow.source.done_suffix
        for entry in entries:
            name = entry.name
            if any(fnmatch(name, glob) for glob in flow.source.ignore) or (suffix and name.endswith(suffix)):
                continue
            if not fnmatch(name, flow.source.pattern):
                continue
            path = folder / name
            if entry.is_symlink():
                self.refuse(flow, path, "a symbolic link: links are never followed out of the drop")
                continue
            if not entry.is_file(follow_symlinks=False):
                continue
            if name != _safe(name):
                self.refuse(
                    flow, path, "its name holds control characters or bytes that are not UTF-8, or starts with a dash"
                )
                continue
            try:
                facts = entry.stat(follow_symlinks=False)
            except OSError:
                continue  # gone meanwhile
            signature = (facts.st_size, facts.st_mtime_ns)
            if suffix:
                if not (folder / f"{name}{suffix}").exists():
                    continue
            elif flow.source.settle_seconds > 0 and not is_remote(flow.source):  # fetched files are whole
                seen = self.sizes.get((flow.name, name))
                if seen is None or seen[0] != signature:
                    self.sizes[(flow.name, name)] = (signature, moment)
                    continue
                if moment - seen[1] < flow.source.settle_seconds:
                    continue
            self.sizes.pop((flow.name, name), None)
            yield path, facts.st_size, facts.st_mtime_ns

    def take(self, flow: Flow, path: Path, size: int, modified: int, evidence: Evidence) -> None:
        """Read a whole file, then claim it with what became of it in one write: to deliver, a
        duplicate, or refused. Of two runners, the one whose claim lands first has it."""
        arrival = f"{path.name}/{size}/{modified}"  # a name holds no slash
        data: bytes | None = None  # a small file is read once: digested, parsed and copied from memory
        try:
            if size <= HEAD_BYTES:
                data = path.read_bytes()
                digest, read = hashlib.sha256(data).hexdigest(), len(data)
            else:
                digest, read = digest_of(path)
        except OSError:
            return  # taken away meanwhile (by another runner that finished it)
        if read != size or self.journey.claimed(flow.name, arrival) is not None:
            return  # still growing; or another runner has it (resumed once its lease runs out)
        facts, where = self.read(flow, path, size, digest, data)
        lease = time.time() + LEASE_SECONDS
        claimed = self.journey.claim(flow.name, arrival, path.name, digest, size, lease, facts, not flow.resends)
        if claimed is None:
            return
        file_id, state = claimed  # a duplicate, if another runner took the same bytes meanwhile
        if state == "refused":
            self._set_aside(flow, path, file_id, facts["reason"])
        elif state == "duplicate":
            self._archive(flow, path, file_id)
        else:
            row = self.journey.get(file_id)
            if row is not None:
                self.deliver(flow, row, path, where, evidence, fresh=True, data=data)

    def read(
        self, flow: Flow, path: Path, size: int, digest: str, data: bytes | None = None
    ) -> tuple[dict[str, Any], list[tuple[Side, str]]]:
        """What a file is and where it goes: its journey's first facts, and each side's intake.
        `data`: the whole file, when it was small enough to be read at once."""
        if size == 0:
            return {"state": "refused", "reason": "the file is empty"}, []
        earlier = self.journey.earlier(flow.name, digest, 0)
        if earlier is not None and not flow.resends:
            return {"state": "duplicate", "reason": f"the same bytes as file {earlier.id} ({earlier.name})"}, []
        try:
            large = data is None
            if data is None:
                with path.open("rb") as handle:
                    head = handle.read(HEAD_BYTES)
                    large = size > len(head)
                    if large:  # its envelope and header are read from the head; the trailer must be at its end
                        handle.seek(max(size - 4096, 0))
                        tail = handle.read()
            else:
                head = data
            document = parse(head, flow.document, partial=large, only=self.wanted[flow.name])
            if large and not ends_whole(document.kind, tail):
                raise DocumentError("its last bytes hold no trailer: the file is cut short")
        except DocumentError as exc:
            return {"state": "refused", "reason": f"not a document the flow reads: {exc}"}, []
        except OSError as exc:
            return {"state": "refused", "reason": f"cannot be read: {exc}"}, []
        entity = pick(flow.entity, document, path.name)
        entities = self.cutover.engine.entities
        if (
            entity is None
            or (flow.entities and entity not in flow.entities)
            or (entities is not None and entity not in entities)
        ):
            sender = document.sender or "?"
            return {"state": "refused", "reason": f"no legal entity for it (partner {sender!r}, entity {entity!r})"}, []
        key = pick(flow.key, document, path.name)
        rule = self.cutover.rule(flow.name, entity, self.defaults.get(flow.name, Mode.legacy))
        serving, where = targets(flow, rule, key)
        plan = json.dumps({"serve": serving.value, "to": [[side.value, folder] for side, folder in where]})
        facts = {
            "state": "delivering",
            "reason": "",
            "entity": entity,
            "business_key": key,
            "document": document.kind,
            "control": document.control,
            "groups": ",".join(document.groups),
            "rung": rule.rung,
            "serving": plan,
            "numbers": ",".join(dict.fromkeys(document.numbers)),
        }
        return facts, where

    # -- each side ------------------------------------------------------------------------------
    def deliver(
        self,
        flow: Flow,
        row: FileRow,
        path: Path,
        where: list[tuple[Side, str]],
        evidence: Evidence,
        fresh: bool = False,
        data: bytes | None = None,
    ) -> None:
        """Copy the file for every side still to get it (each under a temporary name of this
        attempt's own), record the intents together, give each copy its name, archive the source,
        and record the deliveries and the file's end together. `fresh`: just claimed, no side has it."""
        done = set() if fresh else {delivery.side for delivery in self.journey.deliveries(row.id)}
        entity, rung = row.entity or "*", row.rung or ""
        staged: list[tuple[Side, Intake, str]] = []
        calls: list[tuple[Side, FlowSide]] = []
        renew = lambda: self.journey.renew(row.id, time.time() + LEASE_SECONDS)  # noqa: E731
        for side, folder in where:
            if side.value in done:
                continue
            called = _called(flow, side, folder)
            if called is not None:
                calls.append((side, called))
                continue
            intake = self.intake(flow, side, folder)
            temporary = f".banyan-{row.id}-{side.value}-{secrets.token_hex(4)}.tmp"
            try:
                intake.put(path, temporary, renew, data)
            except LeaseLost as exc:  # another runner resumes it
                log.warning("flow %s: file %s: %s", flow.name, row.id, exc)
                self._unstage(staged)
                return
            except OSError as exc:
                evidence.calls.append((flow.name, entity, rung, side, True))
                self._complain(
                    f"{flow.name}:{side.value}:{exc}",
                    f"flow {flow.name}: not delivered to {side.value}, tried again: {exc}",
                )
                self._unstage(staged)
                self.journey.finish(row.id, "delivering", f"{side.value}: {exc}")  # released: the next pass resumes it
                return
            staged.append((side, intake, temporary))
        self.journey.intend(
            row.id,
            [(side.value, intake.where, row.name, temporary) for side, intake, temporary in staged]
            + [(side.value, end.destination, key_for(flow.name, row.digest, side.value), "") for side, end in calls],
        )
        try:
            given = [(side.value, intake.name(temporary, row.name)) for side, intake, temporary in staged]
        except OSError as exc:  # the intents are recorded: resuming finds each copy, named or not
            self._complain(f"{flow.name}:name:{exc}", f"flow {flow.name}: file {row.id} not named, resumed: {exc}")
            self.journey.finish(row.id, "delivering", str(exc))
            return
        evidence.calls += [(flow.name, entity, rung, side, False) for side, _, _ in staged]
        if calls:
            self._call(flow, row, path, calls, given, evidence)
            return
        self._archive(flow, path, row.id)
        self.journey.delivered(row.id, given, finished=True)
        evidence.taken(flow, row, True)

    def _call(
        self,
        flow: Flow,
        row: FileRow,
        path: Path,
        calls: list[tuple[Side, FlowSide]],
        given: list[tuple[str, str]],
        evidence: Evidence,
    ) -> None:
        """Send the file to each side that is called (an upload, a route; its intent already
        recorded), and settle the file by what each answered: see flows/uploads.py."""
        entity, rung = row.entity or "*", row.rung or ""
        serving = plan_of(row)[0]
        waiting, doubtful, refused = [], [], []
        for side, end in calls:
            key = key_for(flow.name, row.digest, side.value)
            sent = self._send(flow, row, path, side, end, key)
            evidence.calls.append((flow.name, entity, rung, side, sent.outcome is not Outcome.made))
            if sent.outcome is Outcome.made:
                given.append((side.value, key))
                if side.value == serving:
                    evidence.answered(flow, row, max(time.time() - row.created, 0.0))
                kind = "upload" if end.upload is not None else "route"
                self.journey.replied(
                    Answer(row.id, side.value, kind, sent.reason, sent.answer or {}, None, time.time())
                )
                self._compare(flow, row, kind, evidence)
            elif sent.outcome in (Outcome.not_made, Outcome.not_authorised):  # nothing booked: sent again later
                self.journey.forget(row.id, side.value)
                waiting.append(f"{side.value}: {sent.reason}")
            elif sent.outcome is Outcome.unknown and _idempotent(end):  # the same key again, next time
                waiting.append(f"{side.value}: {sent.reason}; sent again with the same Idempotency-Key")
            elif sent.outcome is Outcome.unknown:
                self.journey.delivered(row.id, [(side.value, key)], state="in_doubt")
                doubtful.append(f"whether {side.value} booked it is unknown ({sent.reason})")
            else:  # refused, not found: the side will not take this file
                self.journey.delivered(row.id, [(side.value, key)], state="refused")
                refused.append((side.value, f"{side.value} refused it: {sent.reason}"))
        if waiting:
            reason = "; ".join(waiting)
            self._complain(f"{flow.name}:upload:{reason}", f"flow {flow.name}: file {row.id} waits: {reason}")
            self.journey.delivered(row.id, given)
            self.journey.finish(row.id, "delivering", reason)  # released: the next pass resumes it
        elif doubtful:
            self.journey.delivered(row.id, given)
            self.journey.finish(row.id, "in_doubt", "; ".join(doubtful))
            self._park(flow, row, "; ".join(doubtful))
            evidence.taken(flow, row, False)
        elif any(side == serving for side, _ in refused):  # the side that books it for the partner would not
            self.journey.delivered(row.id, given)
            reason = "; ".join(why for _, why in refused)
            self.journey.finish(row.id, "refused", reason)
            self._set_aside(flow, path, row.id, reason)
            evidence.taken(flow, row, False)
        else:  # made on the serving side; a refusal by the other is evidence against it
            self._archive(flow, path, row.id)
            self.journey.delivered(row.id, given, finished=True)
            evidence.taken(flow, row, True)

    def _send(self, flow: Flow, row: FileRow, path: Path, side: Side, end: FlowSide, key: str) -> Sent:
        if end.upload is not None:
            return send(end.upload, path, key, row.document)
        assert end.route is not None
        if self.routes is None:
            return Sent(Outcome.not_made, None, None, f"route {end.route.name} is called only inside a gateway")
        if row.size > ROUTED_BYTES:
            return Sent(
                Outcome.refused,
                None,
                None,
                f"larger than {ROUTED_BYTES >> 20} MiB: too large to map into one call of route {end.route.name}",
            )
        try:
            document = parse(path.read_bytes(), flow.document)
            payload = self.mappings[(flow.name, side.value)](document.data)
            params = {name: str(pointer_get(document.data, pointer)) for name, pointer in end.route.params.items()}
        except (DocumentError, MappingError) as exc:
            return Sent(Outcome.refused, None, None, f"cannot be mapped for route {end.route.name}: {exc}")
        return self.routes.call(end.route.name, side.value, row.entity or "", payload, params, key, True)

    @staticmethod
    def _unstage(staged: list[tuple[Side, Intake, str]]) -> None:
        for _, intake, temporary in staged:
            intake.discard(temporary)

    def resume(self, flow: Flow, row: FileRow, evidence: Evidence) -> None:
        """A file a runner left unfinished: settle each side's intent, then finish what is left."""
        deliveries = self.journey.deliveries(row.id)
        self._sweep(flow, row, deliveries)
        doubtful = []
        for delivery in deliveries:
            if delivery.state != "intent":
                continue
            called = _called(flow, Side(delivery.side), delivery.folder)
            if called is not None and _idempotent(called):  # sent again below, with the same Idempotency-Key
                self.journey.forget(row.id, delivery.side)
                continue
            if called is not None:  # the runner stopped while it waited for the answer
                self.journey.delivered(row.id, [(delivery.side, delivery.target)], state="in_doubt")
                doubtful.append(delivery.side)
                continue
            intake = self.intake(flow, Side(delivery.side), delivery.folder)
            if intake.staged(delivery.staged):  # copied whole, never named: the side never saw it
                self.journey.delivered(row.id, [(delivery.side, intake.name(delivery.staged, row.name))])
            elif intake.holds(delivery.target):
                self.journey.delivered(row.id, [(delivery.side, delivery.target)])
            else:  # renamed, then taken by the importer without a trace we know of, or never made
                self.journey.delivered(row.id, [(delivery.side, delivery.target)], state="in_doubt")
                doubtful.append(delivery.side)
        if doubtful:
            reason = f"whether {' and '.join(doubtful)} took it is unknown: the runner stopped while delivering it"
            self.journey.finish(row.id, "in_doubt", reason)
            self._park(flow, row, reason)
            evidence.taken(flow, row, False)
            return
        source = drop_of(flow) / row.name
        if not source.exists():  # archived before the runner stopped: every side had it
            self.journey.finish(row.id, "delivered")
            evidence.taken(flow, row, True)
            return
        self.deliver(flow, row, source, plan_of(row)[1], evidence)

    def _sweep(self, flow: Flow, row: FileRow, deliveries: list[Delivery]) -> None:
        """Remove the partial copies of a runner that stopped mid-copy: its temporary names that no
        recorded intent holds."""
        kept = {delivery.staged for delivery in deliveries}
        for side, folder in plan_of(row)[1] if row.serving else []:
            intake = self.intake(flow, side, folder)
            for stray in intake.strays(f".banyan-{row.id}-"):
                if stray not in kept:
                    intake.discard(stray)

    # -- replies --------------------------------------------------------------------------------
    def replies(self, flow: Flow, side: Side, end: FlowSide, evidence: Evidence) -> None:
        folder = Path(end.replies or "")
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            self._complain(f"{flow.name}:{folder}", f"flow {flow.name}: cannot read {side.value}'s replies: {exc}")
            return
        for entry in entries:
            if entry.name.startswith(".") or not entry.is_file(follow_symlinks=False):
                continue
            facts = entry.stat(follow_symlinks=False)
            marker = (flow.name, side.value, entry.name, facts.st_size, facts.st_mtime_ns)
            if marker in self.read_replies or time.time() - facts.st_mtime < min(flow.source.settle_seconds, 1.0):
                continue
            self.read_replies.add(marker)
            path = folder / entry.name
            try:
                data = path.read_bytes()
            except OSError:
                continue
            digest = hashlib.sha256(data).hexdigest()
            if self.journey.was_seen(flow.name, side.value, entry.name, digest):
                continue
            try:
                document = parse(data)
            except DocumentError:
                self.journey.seen(flow.name, side.value, entry.name, digest, None)
                continue
            row = self.journey.answered(flow.name, document.answers, document.numbers)
            if not self.journey.seen(flow.name, side.value, entry.name, digest, row.id if row else None):
                continue  # another runner read it first
            if row is None:
                continue
            kind = "+".join(dict.fromkeys(document.types)) or document.kind
            if (
                flow.slo
                and side.value == plan_of(row)[0]
                and not any(answer.side == side.value for answer in self.journey.answers(row.id))
            ):  # the serving side's first answer to the file
                evidence.answered(flow, row, max(time.time() - row.created, 0.0))
            self.journey.replied(
                Answer(row.id, side.value, kind, entry.name, document.data, document.accepted, time.time())
            )
            evidence.replies.append((flow.name, row.entity or "*", side, max(time.time() - row.created, 0.0)))
            if flow.outbound and side.value == plan_of(row)[0]:
                self._forward(flow, side, path, digest)
            self._compare(flow, row, kind, evidence)

    def _forward(self, flow: Flow, side: Side, path: Path, digest: str) -> None:
        """The serving side's reply, to the partner (a folder, or the partner's SFTP server, logged in
        to as for its mailbox): exactly one of the two."""
        outbound = intake_for(flow.outbound or "", flow.source)
        try:
            temporary = f".banyan-{digest[:16]}-{secrets.token_hex(4)}.tmp"
            outbound.put(path, temporary)
            given = outbound.name(temporary, path.name)
        except OSError as exc:
            log.error("flow %s: %s's reply %s not passed to the partner: %s", flow.name, side.value, path.name, exc)
            return
        finally:
            outbound.close()
        self.journey.forwarded(flow.name, side.value, path.name, digest, given)

    def _compare(self, flow: Flow, row: FileRow, kind: str, evidence: Evidence) -> None:
        """Both sides' answers of one kind to a file (their 997s, their 855s), compared once."""
        replies = {answer.side: answer.reply for answer in self.journey.answers(row.id, kind)}
        legacy, cloud = replies.get(Side.legacy.value), replies.get(Side.cloud.value)
        if legacy is None or cloud is None or not self.journey.mark_compared(row.id, kind):
            return
        differences = self.comparators[flow.name].compare(legacy, cloud)
        evidence.comparisons.append((flow.name, row.entity or "*", row.rung or "", differences))

    # -- the file's end -------------------------------------------------------------------------
    def refuse(self, flow: Flow, path: Path, reason: str) -> None:
        """A file never claimed (a link, an unsafe name), to the error folder with its reason."""
        self._set_aside(flow, path, None, reason)

    def _set_aside(self, flow: Flow, path: Path, file_id: int | None, reason: str) -> None:
        """To the flow's error folder, with a note saying why."""
        error = Path(flow.source.error or drop_of(flow) / ".banyan" / "error")
        stamp = file_id if file_id is not None else time.time_ns()
        moved = f"{stamp}-{_safe(path.name)}"
        try:
            error.mkdir(parents=True, exist_ok=True)
            os.rename(path, error / moved)
            (error / f"{moved}.reason.txt").write_text(reason + "\n", encoding="utf-8")
        except OSError as exc:
            self._complain(f"{flow.name}:error", f"flow {flow.name}: cannot move {path.name!r} aside: {exc}")
        log.warning("flow %s: %s refused: %s", flow.name, _safe(path.name), reason)

    def _archive(self, flow: Flow, path: Path, file_id: int) -> None:
        archive = Path(flow.source.archive or drop_of(flow) / ".banyan" / "done")
        with contextlib.suppress(FileNotFoundError):
            archive.mkdir(parents=True, exist_ok=True)
            os.rename(path, archive / f"{file_id}-{path.name}")

    def _park(self, flow: Flow, row: FileRow, reason: str) -> None:
        """An in-doubt file's source waits beside the errors, for the person who decides: from the
        drop, or from the archive if it got there before the runner stopped."""
        archive = Path(flow.source.archive or drop_of(flow) / ".banyan" / "done")
        doubt = Path(flow.source.error or drop_of(flow) / ".banyan" / "error")
        for source in (drop_of(flow) / row.name, archive / f"{row.id}-{row.name}"):
            if source.exists():
                doubt.mkdir(parents=True, exist_ok=True)
                os.rename(source, doubt / f"{row.id}-{row.name}")
                (doubt / f"{row.id}-{row.name}.reason.txt").write_text(reason + "\n", encoding="utf-8")
                return

    def _complain(self, key: str, message: str) -> None:
        if key not in self.complained:
            self.complained.add(key)
            log.error("%s", message)
