"""A partner's SFTP mailbox as a flow's source: whole files fetched into a local drop, then removed.

    source: {folder: "sftp://banyan@edi.partner.example:2222/outbox", staging: /var/lib/banyan/uk-orders,
             known_hosts: ~/.ssh/known_hosts, key_file: ~/.ssh/id_ed25519}

Each pass lists the remote folder over one SSH connection whose host key is verified (an unknown
host is refused unless `accept_unknown_host`, a changed key always is: inventory_scan.files.sftp).
A remote file is taken once its size and modification time held still for `settle_seconds` (or its
done-file is there): it is downloaded under a temporary name into `staging`, fsynced, renamed into
the staging folder, and only then removed from the server (or moved to `remote_done`). From there
the flow takes it like any local file. A connection that drops mid-transfer leaves no partial file
(the temporary copy is removed) and the remote file where it was, for the next pass. A crash after
the local rename and before the remote removal fetches the file again next time: the same bytes,
so the flow delivers it once (unless the flow allows resends).
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import time
from fnmatch import fnmatch
from pathlib import Path

import paramiko

from inventory_scan.errors import ScanError
from inventory_scan.files.sftp import SftpAuth, SftpSession, SftpTarget
from specs.flows import FlowSource

log = logging.getLogger("banyan.flows")
CHUNK = 1 << 20


class MailboxError(Exception):
    """The mailbox could not be read this pass; the message says why (never a password)."""


def is_remote(source: FlowSource) -> bool:
    return source.folder.startswith("sftp://")


class Mailbox:
    """Fetches one flow's remote files into its local staging folder."""

    def __init__(self, source: FlowSource) -> None:
        self.source = source
        try:
            self.target: SftpTarget | None = SftpTarget.parse(source.folder)
            self.problem = ""
        except ScanError as exc:  # said on every pass, never a traceback at start
            self.target, self.problem = None, str(exc)
        self.auth = SftpAuth(
            known_hosts=Path(source.known_hosts),
            accept_unknown_host=source.accept_unknown_host,
            password_env=source.password_env,
            key_file=Path(source.key_file) if source.key_file else None,
        )
        self.staging = Path(source.staging or "")
        self.sizes: dict[str, tuple[tuple[int, int], float]] = {}

    def fetch(self, now: float | None = None) -> list[str]:
        """One pass: the names of the files brought into staging. MailboxError when the server
        cannot be reached or the connection drops (what was fetched before stays fetched)."""
        moment = time.monotonic() if now is None else now
        if self.target is None:
            raise MailboxError(self.problem)
        target = self.target
        self.staging.mkdir(parents=True, exist_ok=True)
        fetched: list[str] = []
        try:
            with SftpSession(target, self.auth) as session:
                entries = {entry.filename: entry for entry in session.sftp.listdir_attr(target.path)}
                for name, entry in sorted(entries.items()):
                    if not self._wanted(name, entry, entries, moment):
                        continue
                    remote = f"{target.path.rstrip('/')}/{name}"
                    self._download(session, remote, name, entry.st_size or 0)
                    self._done_with(session, remote, name)
                    fetched.append(name)
        except ScanError as exc:
            raise MailboxError(str(exc)) from None
        except (EOFError, OSError, paramiko.SSHException) as exc:
            raise MailboxError(
                f"the connection to {self.target.host_label} dropped: {exc or type(exc).__name__}"
            ) from None
        return fetched

    def _wanted(
        self, name: str, entry: paramiko.SFTPAttributes, entries: dict[str, paramiko.SFTPAttributes], moment: float
    ) -> bool:
        source = self.source
        suffix = source.done_suffix
        if any(fnmatch(name, glob) for glob in source.ignore) or (suffix and name.endswith(suffix)):
            return False
        if not fnmatch(name, source.pattern) or not stat.S_ISREG(entry.st_mode or 0):
            return False  # links and folders on the server are never followed
        if suffix:
            return f"{name}{suffix}" in entries
        signature = (entry.st_size or 0, int(entry.st_mtime or 0))
        seen = self.sizes.get(name)
        if seen is None or seen[0] != signature:
            self.sizes[name] = (signature, moment)
            return source.settle_seconds == 0
        return moment - seen[1] >= source.settle_seconds

    def _download(self, session: SftpSession, remote: str, name: str, size: int) -> None:
        temporary = self.staging / f".banyan-fetch-{os.getpid()}-{name}.part"
        try:
            with session.sftp.open(remote, "rb") as reader, temporary.open("wb") as writer:
                reader.prefetch(size)
                while chunk := reader.read(CHUNK):
                    writer.write(chunk)
                writer.flush()
                os.fsync(writer.fileno())
            if temporary.stat().st_size != size:
                raise EOFError(f"{name}: {temporary.stat().st_size} of {size} bytes arrived")
            target = self.staging / name
            if target.exists():  # one of its name still waits here: the flow has not taken it yet
                stem, dot, extension = name.rpartition(".")
                target = self.staging / (f"{stem}-{time.time_ns()}.{extension}" if dot else f"{name}-{time.time_ns()}")
            os.rename(temporary, target)
        except BaseException:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise
        self.sizes.pop(name, None)

    def _done_with(self, session: SftpSession, remote: str, name: str) -> None:
        if self.source.remote_done:
            session.sftp.rename(remote, f"{self.source.remote_done.rstrip('/')}/{name}.{time.time_ns()}")
        else:
            session.sftp.remove(remote)
        done_file = f"{remote}{self.source.done_suffix}" if self.source.done_suffix else None
        if done_file:
            with contextlib.suppress(OSError):
                session.sftp.remove(done_file)
