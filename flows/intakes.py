"""Where a flow's file is delivered: an ERP's intake folder, local or on an SFTP server.

    legacy: {intake: /mnt/erp/orders/in, seen_in: [/mnt/erp/orders/processed]}
    cloud:  {intake: "sftp://banyan@edi.cloud-erp.example/inbound/orders", known_hosts: ~/.ssh/known_hosts,
             key_file: ~/.ssh/id_ed25519, seen_in: [/inbound/orders/archive]}

Both are written the same way, so an importer never sees half a file: the copy is written whole under
a temporary name (`.banyan-<file>-<side>-<token>.tmp`, which importers skip as a dot file), then the
runner records its intent, then the copy is given its name, never over a file already there (a second
file of one name gets a numbered name). After a crash the runner asks the intake what it holds: the
temporary copy (named already when it has a second link, left by a runner that stopped between the
link and removing the temporary name; otherwise never named: name it), the name in the intake or in
a folder the importer moves files on to (delivered), or neither (in doubt). An SFTP server that
cannot be reached makes no answer: the file waits, it is never judged in doubt for a dropped
connection.

An SFTP intake opens one connection a pass, with the host key verified as for a mailbox, and the
copy is checked by size on the server before it is named.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar

import paramiko

from flows.journey import LEASE_SECONDS
from inventory_scan.errors import ScanError
from inventory_scan.files.sftp import SftpAuth, SftpSession, SftpTarget
from specs.flows import Login

CHUNK = 1 << 20
T = TypeVar("T")
LEASE_CHECK_SECONDS = LEASE_SECONDS / 3  # how often a long copy renews its file's lease


class IntakeError(OSError):
    """The intake could not be written or asked (a folder away, a server unreachable); the message
    says why, never with a password."""


class LeaseLost(Exception):
    """The file's lease ran out while this runner copied it: another may have taken it over."""


class Intake(Protocol):
    where: str  # the folder or sftp:// URL, as the flow names it

    def put(
        self, source: Path, staged: str, renew: Callable[[], bool] | None = None, data: bytes | None = None
    ) -> None:
        """Copy `source` (or its bytes, `data`, when read already) whole under the temporary name
        `staged`; a partial copy is removed."""

    def name(self, staged: str, name: str) -> str:
        """Give the temporary copy its name, never over a file already there; the name given."""

    def staged(self, staged: str) -> bool:
        """Is the temporary copy still there (never named)?"""

    def holds(self, name: str) -> bool:
        """Is a file of this name in the intake, or in a folder the importer moves files on to?"""

    def strays(self, prefix: str) -> list[str]:
        """Temporary copies whose names start with `prefix`."""

    def discard(self, staged: str) -> None: ...

    def close(self) -> None: ...


def _numbered(name: str, attempt: int) -> str:
    stem, dot, suffix = name.partition(".")
    return name if attempt == 0 else f"{stem}_{attempt}{dot}{suffix}"


def _renewing(renew: Callable[[], bool] | None, source: Path) -> Callable[[], None]:
    """A function to call after each chunk: it renews the lease now and then, LeaseLost when it ran out."""
    last = time.monotonic()

    def tick() -> None:
        nonlocal last
        if renew is not None and time.monotonic() - last > LEASE_CHECK_SECONDS:
            if not renew():
                raise LeaseLost(f"the lease on {source.name} ran out while it was copied")
            last = time.monotonic()

    return tick


def sync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a folder be opened for fsync
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


class FolderIntake:
    """A local folder (or a mounted share): the copy is fsynced before it is named, and the folder
    after."""

    def __init__(self, folder: str, seen_in: list[str]) -> None:
        self.where, self.folder = folder, Path(folder)
        self.seen_in = [Path(place) for place in seen_in]

    def put(
        self, source: Path, staged: str, renew: Callable[[], bool] | None = None, data: bytes | None = None
    ) -> None:
        temporary, tick = self.folder / staged, _renewing(renew, source)
        try:
            with temporary.open("xb") as writer:
                if data is not None:
                    writer.write(data)
                else:
                    with source.open("rb") as reader:
                        while chunk := reader.read(CHUNK):
                            writer.write(chunk)
                            tick()
                writer.flush()
                os.fsync(writer.fileno())
        except BaseException:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise

    def name(self, staged: str, name: str) -> str:
        temporary = self.folder / staged
        given = self._named_already(temporary, name)
        if given:  # a runner stopped between the link and removing the temporary name
            temporary.unlink()
            sync_folder(self.folder)
            return given
        for attempt in range(1000):
            target = _numbered(name, attempt)
            try:
                os.link(temporary, self.folder / target)
            except FileExistsError:
                continue
            temporary.unlink()
            sync_folder(self.folder)
            return target
        raise IntakeError(f"{self.folder}: a thousand files named like {name} wait there already")

    def _named_already(self, temporary: Path, name: str) -> str:
        """The name a temporary copy was linked under already, or "" when it has no other name.
        Moved on by the importer (on the same filesystem, so still linked), it was named as intended."""
        facts = temporary.stat()
        if facts.st_nlink < 2:
            return ""
        for attempt in range(1000):
            target = _numbered(name, attempt)
            with contextlib.suppress(OSError):
                if os.path.samestat(facts, (self.folder / target).stat()):
                    return target
        return name

    def staged(self, staged: str) -> bool:
        return (self.folder / staged).exists()

    def holds(self, name: str) -> bool:
        return any((place / name).exists() for place in (self.folder, *self.seen_in))

    def strays(self, prefix: str) -> list[str]:
        return [path.name for path in self.folder.glob(f"{prefix}*.tmp")]

    def discard(self, staged: str) -> None:
        with contextlib.suppress(OSError):
            (self.folder / staged).unlink()

    def close(self) -> None:
        pass


class SftpIntake:
    """A folder on an SFTP server, over one connection a pass (opened when first needed)."""

    def __init__(self, url: str, login: Login, seen_in: list[str]) -> None:
        self.where = url
        try:
            self.target: SftpTarget | None = SftpTarget.parse(url)
            self.problem = ""
        except ScanError as exc:  # said when it is used, never a traceback at start
            self.target, self.problem = None, str(exc)
        self.auth = SftpAuth(
            known_hosts=Path(login.known_hosts),
            accept_unknown_host=login.accept_unknown_host,
            password_env=login.password_env,
            key_file=Path(login.key_file) if login.key_file else None,
        )
        self.folder = self.target.path.rstrip("/") if self.target else ""
        self.seen_in = [place.rstrip("/") for place in seen_in]
        self.session: SftpSession | None = None

    def _sftp(self) -> paramiko.SFTPClient:
        if self.target is None:
            raise IntakeError(self.problem)
        if self.session is None:
            try:
                self.session = SftpSession(self.target, self.auth)
            except ScanError as exc:
                raise IntakeError(str(exc)) from None
        return self.session.sftp

    def _call(self, what: str, action: Callable[[paramiko.SFTPClient], T]) -> T:
        """Run one exchange with the server; a dropped connection is an IntakeError (and the next
        call connects again)."""
        try:
            return action(self._sftp())
        except (IntakeError, LeaseLost):
            raise
        except (EOFError, OSError, paramiko.SSHException) as exc:
            self.close()
            label = self.target.host_label if self.target else self.where
            raise IntakeError(f"{label}: {what}: {exc or type(exc).__name__}") from None

    def put(
        self, source: Path, staged: str, renew: Callable[[], bool] | None = None, data: bytes | None = None
    ) -> None:
        remote, tick = f"{self.folder}/{staged}", _renewing(renew, source)
        size = source.stat().st_size

        def upload(sftp: paramiko.SFTPClient) -> None:
            try:
                with source.open("rb") as reader, sftp.open(remote, "wbx") as writer:
                    writer.set_pipelined(True)
                    while chunk := reader.read(CHUNK):
                        writer.write(chunk)
                        tick()
                arrived = sftp.stat(remote).st_size
                if arrived != size:
                    raise EOFError(f"{arrived} of {size} bytes arrived")
            except BaseException:
                with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
                    sftp.remove(remote)
                raise

        self._call(f"cannot write {staged}", upload)

    def name(self, staged: str, name: str) -> str:
        def rename(sftp: paramiko.SFTPClient) -> str:
            for attempt in range(1000):
                target = f"{self.folder}/{_numbered(name, attempt)}"
                if self._exists(sftp, target):
                    continue
                try:
                    sftp.rename(f"{self.folder}/{staged}", target)  # fails, never replaces, when it exists
                except OSError:
                    if self._exists(sftp, target):  # another file of that name came meanwhile
                        continue
                    raise
                return _numbered(name, attempt)
            raise IntakeError(f"{self.where}: a thousand files named like {name} wait there already")

        return self._call(f"cannot name {staged} {name}", rename)

    def staged(self, staged: str) -> bool:
        return self._call("cannot look", lambda sftp: self._exists(sftp, f"{self.folder}/{staged}"))

    def holds(self, name: str) -> bool:
        places = (self.folder, *self.seen_in)
        return self._call("cannot look", lambda sftp: any(self._exists(sftp, f"{place}/{name}") for place in places))

    def strays(self, prefix: str) -> list[str]:
        return self._call(
            "cannot list",
            lambda sftp: [n for n in sftp.listdir(self.folder) if n.startswith(prefix) and n.endswith(".tmp")],
        )

    def discard(self, staged: str) -> None:
        with contextlib.suppress(IntakeError):
            self._call(f"cannot remove {staged}", lambda sftp: sftp.remove(f"{self.folder}/{staged}"))

    def close(self) -> None:
        if self.session is not None:
            with contextlib.suppress(Exception):  # a connection already dropped closes as well as it can
                self.session.close()
            self.session = None

    @staticmethod
    def _exists(sftp: paramiko.SFTPClient, path: str) -> bool:
        try:
            sftp.stat(path)
        except FileNotFoundError:
            return False
        return True


def intake_for(folder: str, login: Login, seen_in: list[str] | None = None) -> Intake:
    """The intake a flow names: a local folder, or an sftp:// URL (logged in to as `login` says)."""
    if folder.startswith("sftp://"):
        return SftpIntake(folder, login, seen_in or [])
    return FolderIntake(folder, seen_in or [])
