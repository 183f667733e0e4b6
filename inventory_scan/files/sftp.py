"""Walk drop folders on an SFTP server with paramiko, verifying the server's host key.

An unknown host is refused unless the caller says otherwise, a changed host key always is, and
passwords come from environment variables and never reach a message, a log or the catalog.
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self
from urllib.parse import unquote, urlsplit

import paramiko

from inventory_scan.errors import ConfigError, HostKeyError, SourceError
from inventory_scan.files.folders import FolderAccumulator, FolderResult

CONNECT_TIMEOUT = 15.0


@dataclass(frozen=True)
class SftpTarget:
    host: str
    port: int
    user: str
    path: str

    @classmethod
    def parse(cls, url: str) -> SftpTarget:
        parts = urlsplit(url)
        if parts.scheme != "sftp" or not parts.hostname:
            raise ConfigError(f"{url!r} is not an sftp://user@host[:port]/path URL")
        if parts.password:
            raise ConfigError(
                "put no password in an sftp:// URL; name an environment variable with --password-env instead"
            )
        try:
            port = parts.port or 22
        except ValueError:
            raise ConfigError(f"{url!r}: the port is not a number") from None
        user = unquote(parts.username) if parts.username else os.environ.get("USER", "root")
        return cls(parts.hostname, port, user, unquote(parts.path) or "/")

    @property
    def host_label(self) -> str:
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"

    @property
    def locator(self) -> str:
        """The URL without user or secrets, as it appears in a catalog."""
        netloc = self.host if self.port == 22 else f"{self.host}:{self.port}"
        return f"sftp://{netloc}{self.path}"


@dataclass(frozen=True)
class SftpAuth:
    known_hosts: Path = Path("~/.ssh/known_hosts")
    accept_unknown_host: bool = False
    password_env: str | None = None
    key_file: Path | None = None
    key_passphrase_env: str | None = None
    allow_agent: bool = True


def fingerprint(key: paramiko.PKey) -> str:
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


class _RefuseUnknown(paramiko.MissingHostKeyPolicy):
    def __init__(self, target: SftpTarget, known_hosts: Path) -> None:
        self._target = target
        self._known_hosts = known_hosts

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        port = f"-p {self._target.port} " if self._target.port != 22 else ""
        raise HostKeyError(
            f"unknown SFTP host {self._target.host_label}: its {key.get_name()} key {fingerprint(key)} is not in "
            f"{self._known_hosts}. Confirm that fingerprint with the server's administrator, then trust it with "
            f"`ssh-keyscan {port}{self._target.host} >> {self._known_hosts}` (or point known_hosts at a file "
            "that has it). accept_unknown_host: true in scan.yaml skips the check, at your own risk."
        )


def _env(name: str, what: str) -> str:
    value = os.environ.get(name)
    if value is None:
        raise ConfigError(f"environment variable {name} (the {what}) is not set")
    return value


class SftpSession:
    """One SSH connection and its SFTP channel, for walking and sampling one target."""

    def __init__(self, target: SftpTarget, auth: SftpAuth) -> None:
        self.target = target
        self._client = paramiko.SSHClient()
        known_hosts = auth.known_hosts.expanduser()
        if known_hosts.exists():
            self._client.load_host_keys(str(known_hosts))
        policy = paramiko.AutoAddPolicy() if auth.accept_unknown_host else _RefuseUnknown(target, known_hosts)
        self._client.set_missing_host_key_policy(policy)
        password = _env(auth.password_env, "SFTP password") if auth.password_env else None
        passphrase = _env(auth.key_passphrase_env, "key passphrase") if auth.key_passphrase_env else None
        where = f"{target.user}@{target.host_label}"
        try:
            self._client.connect(
                target.host,
                port=target.port,
                username=target.user,
                password=password,
                key_filename=str(auth.key_file.expanduser()) if auth.key_file else None,
                passphrase=passphrase,
                allow_agent=auth.allow_agent,
                look_for_keys=auth.key_file is None and password is None,
                timeout=CONNECT_TIMEOUT,
                banner_timeout=CONNECT_TIMEOUT,
                auth_timeout=CONNECT_TIMEOUT,
            )
            self.sftp = self._client.open_sftp()
        except HostKeyError:
            self._client.close()
            raise
        except paramiko.BadHostKeyException as exc:
            self._client.close()
            raise HostKeyError(
                f"the host key of {target.host_label} has CHANGED: it offered {fingerprint(exc.key)}, "
                f"but {known_hosts} expects {fingerprint(exc.expected_key)}. Someone may be intercepting the "
                "connection; if the server was really re-keyed, remove its old line from known_hosts."
            ) from None
        except paramiko.AuthenticationException:
            self._client.close()
            raise SourceError(
                f"authentication failed for {where}: check the user, the key file or the environment "
                "variable named by password_env"
            ) from None
        except (TimeoutError, OSError, paramiko.SSHException) as exc:
            self._client.close()
            raise SourceError(f"cannot connect to {where}: {exc}") from None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def read_prefix(self, path: str, limit: int) -> tuple[bytes, bool]:
        """The first `limit` bytes of a remote file, and whether the file goes on after them."""
        with self.sftp.open(path, "rb") as remote:
            data = remote.read(limit + 1)
        return data[:limit], len(data) > limit

    def walk(self, utc_offset: int, on_folder: Callable[[FolderResult], None] | None = None) -> Iterator[FolderResult]:
        """Every folder under the target path. A lost connection raises SourceError."""
        pending = [self.target.path]
        while pending:
            path = pending.pop()
            folder = FolderAccumulator(path, utc_offset)
            try:
                entries = self.sftp.listdir_attr(path)
            except PermissionError:
                folder.warn(path, "cannot list folder: permission denied")
                entries = []
            except FileNotFoundError:
                folder.warn(path, "folder vanished during the scan")
                entries = []
            except (EOFError, OSError, paramiko.SSHException) as exc:
                if self._connection_alive() and isinstance(exc, OSError):
                    folder.warn(path, f"cannot list folder: {exc}")
                    entries = []
                else:
                    raise SourceError(
                        f"connection to {self.target.host_label} lost while listing {path}: {exc or type(exc).__name__}"
                    ) from None
            for entry in entries:
                child = f"{path.rstrip('/')}/{entry.filename}"
                mode = entry.st_mode or 0
                if stat.S_ISDIR(mode):
                    pending.append(child)
                elif stat.S_ISLNK(mode):
                    folder.warn(child, "symbolic link on the server: not followed")
                elif stat.S_ISREG(mode):
                    folder.add(entry.filename, child, entry.st_size or 0, float(entry.st_mtime or 0))
                else:
                    folder.warn(child, "not a regular file: skipped")
            if on_folder:
                on_folder(folder.result)
            yield folder.result

    def _connection_alive(self) -> bool:
        transport = self._client.get_transport()
        return transport is not None and transport.is_active()
