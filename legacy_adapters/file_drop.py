"""File-drop backend: write the request as a file into a folder (local or SFTP), wait for the reply file.

The file is written under a temporary name and renamed when complete, so the legacy importer never
reads half a file. Names are built from a template whose parts (entity, key, correlation id) must be
plain tokens: nothing from a request can climb out of the drop folder. The reply is found by name
(`{correlation_id}.ack` …): watched with watchdog locally, polled over SFTP.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import stat
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field

from legacy_adapters import xmljson
from legacy_adapters.base import BackendConfig, Call, Registered, Reply
from legacy_adapters.errors import BackendNotFound, BackendRejected, BackendTimeout, BackendUnavailable
from legacy_adapters.mapping import MappingError, pointer_get

# fullmatch, never `$`: Python's `$` also matches before a final newline ("SH-NL\n").
SAFE_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
POLL_SECONDS = 0.2


class FileDropConfig(BackendConfig):
    backend: Literal["file_drop"] = "file_drop"
    folder: str = Field(description="a local folder or sftp://user@host[:port]/path")
    name: str = Field(default="{route}_{correlation_id}.json", description="file name template")
    format: Literal["json", "xml"] = "json"
    xml_root: str = "request"
    reply_folder: str | None = Field(default=None, description="where replies appear (default: no reply is awaited)")
    reply_name: str = Field(default="{correlation_id}.ack", description="reply file name template")
    reject: str | None = Field(
        default=None,
        description="JSON pointer into the reply: when it holds a value, the legacy system refused the "
        "request and that value says why (e.g. /error of a negative acknowledgement)",
    )
    not_found: str | None = Field(
        default=None,
        description="regex on a refusal's reason that means the record does not exist (a 404 on reads)",
    )
    delete_reply: bool = True
    known_hosts: Path = Path("~/.ssh/known_hosts")
    key_file: Path | None = None
    password_env: str | None = None


def file_name(template: str, call: Call) -> str:
    """The template filled with validated parts; anything that could leave the folder is refused."""
    parts = {
        "route": call.route,
        "entity": call.entity or "none",
        "key": call.key or "none",
        "correlation_id": call.correlation_id,
        "date": datetime.now(UTC).strftime("%Y%m%d"),
        "timestamp": datetime.now(UTC).strftime("%Y%m%d%H%M%S"),
    }
    for name, value in parts.items():
        if f"{{{name}}}" in template and not SAFE_PART.fullmatch(value):
            raise BackendRejected(
                f"the {name} {value[:40]!r} cannot be part of a file name (letters, digits, . _ - only)"
            )
    name = template.format(**parts)
    if "/" in name or "\\" in name or name in (".", "..") or name.startswith("."):
        raise BackendRejected("the file name template produced a path, not a name")
    return name


def _encode(config: FileDropConfig, payload: Any) -> bytes:
    if config.format == "json":
        return json.dumps(payload, ensure_ascii=False).encode()
    document: bytes = xmljson.etree.tostring(
        xmljson.from_json(config.xml_root, payload), xml_declaration=True, encoding="utf-8"
    )
    return document


def _decode(data: bytes) -> Any:
    text = data.lstrip()
    if text.startswith(b"<"):
        return xmljson.to_json(xmljson.parse(data))
    try:
        return json.loads(data)
    except ValueError:
        return data.decode("utf-8", "replace")


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class _LocalReplies:
    """Futures for expected reply names, resolved by a watchdog observer on the reply folder."""

    def __init__(self, folder: Path) -> None:
        from watchdog.events import FileSystemEvent, FileSystemEventHandler
        from watchdog.observers import Observer

        self.folder = folder
        self.waiting: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = {}
        self.lock = threading.Lock()
        replies = self

        class Handler(FileSystemEventHandler):
            def on_created(self, event: FileSystemEvent) -> None:
                replies.arrived(os.path.basename(os.fsdecode(event.src_path)))

            def on_moved(self, event: FileSystemEvent) -> None:
                replies.arrived(os.path.basename(os.fsdecode(event.dest_path)))

        self.observer = Observer()
        self.observer.schedule(Handler(), str(folder), recursive=False)
        self.observer.daemon = True
        self.observer.start()

    def expect(self, name: str) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self.lock:
            self.waiting[name] = (loop, future)
        if (self.folder / name).exists():  # it may have come before we started to wait
            self.arrived(name)
        return future

    def arrived(self, name: str) -> None:
        with self.lock:
            entry = self.waiting.pop(name, None)
        if entry is not None:
            loop, future = entry
            loop.call_soon_threadsafe(_settle, future)

    def forget(self, name: str) -> None:
        with self.lock:
            self.waiting.pop(name, None)

    def stop(self) -> None:
        self.observer.stop()


class FileDropBackend(Registered):
    name = "file_drop"
    Config = FileDropConfig

    def __init__(self, config: FileDropConfig) -> None:
        self.config = config
        self.retry_safe = False  # a dropped file is processed: sending it twice orders twice
        self.remote = urlsplit(config.folder) if config.folder.startswith("sftp://") else None
        self._sftp: Any = None
        self._client: Any = None
        self._sftp_lock = threading.Lock()
        self._replies: _LocalReplies | None = None

    # -- local ---------------------------------------------------------------------------------
    def _write_local(self, name: str, data: bytes) -> None:
        folder = Path(self.config.folder)
        if not folder.is_dir():
            raise BackendUnavailable("the drop folder does not exist or cannot be reached")
        temporary = folder / f".{name}.part"
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, folder / name)

    async def _reply_local(self, name: str) -> bytes:
        folder = Path(self.config.reply_folder or "")
        if self._replies is None:
            if not folder.is_dir():
                raise BackendUnavailable("the reply folder does not exist or cannot be reached")
            self._replies = _LocalReplies(folder)
        waiting = self._replies.expect(name)
        try:
            await asyncio.wait_for(waiting, self.config.timeout)
        except TimeoutError:
            self._replies.forget(name)
            raise BackendTimeout(f"no reply file within {self.config.timeout:g} s") from None
        data = (folder / name).read_bytes()
        if self.config.delete_reply:
            (folder / name).unlink(missing_ok=True)
        return data

    # -- sftp ----------------------------------------------------------------------------------
    def _session(self) -> Any:
        import paramiko

        if self._sftp is not None:
            return self._sftp
        assert self.remote is not None
        client = paramiko.SSHClient()
        known = self.config.known_hosts.expanduser()
        if known.exists():
            client.load_host_keys(str(known))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        password = os.environ.get(self.config.password_env) if self.config.password_env else None
        try:
            client.connect(
                self.remote.hostname or "",
                port=self.remote.port or 22,
                username=unquote(self.remote.username or os.environ.get("USER", "root")),
                password=password,
                key_filename=str(self.config.key_file.expanduser()) if self.config.key_file else None,
                allow_agent=False,
                look_for_keys=False,
                timeout=self.config.timeout,
            )
        except (paramiko.SSHException, OSError) as exc:
            client.close()
            raise BackendUnavailable(f"cannot open the SFTP drop: {type(exc).__name__}") from None
        self._client, self._sftp = client, client.open_sftp()
        return self._sftp

    def _remote_path(self, folder: str, name: str) -> str:
        path = unquote(urlsplit(folder).path) if folder.startswith("sftp://") else folder
        return f"{path.rstrip('/')}/{name}"

    def _write_sftp(self, name: str, data: bytes) -> None:
        with self._sftp_lock:
            sftp = self._session()
            final = self._remote_path(self.config.folder, name)
            temporary = self._remote_path(self.config.folder, f".{name}.part")
            try:
                with sftp.open(temporary, "wb") as handle:
                    handle.write(data)
                sftp.posix_rename(temporary, final)
            except OSError as exc:
                self._sftp = None
                raise BackendUnavailable(f"cannot write to the SFTP drop: {type(exc).__name__}") from None

    def _poll_sftp(self, name: str, deadline: float) -> bytes:
        path = self._remote_path(self.config.reply_folder or "", name)
        while time.monotonic() < deadline:
            with self._sftp_lock:
                sftp = self._session()
                try:
                    if stat.S_ISREG(sftp.stat(path).st_mode or 0):
                        with sftp.open(path, "rb") as handle:
                            data: bytes = handle.read()
                        if self.config.delete_reply:
                            sftp.remove(path)
                        return data
                except FileNotFoundError:
                    pass
            time.sleep(POLL_SECONDS)
        raise BackendTimeout(f"no reply file within {self.config.timeout:g} s")

    # -- the call ------------------------------------------------------------------------------
    async def call(self, request: Call) -> Reply:
        name = file_name(self.config.name, request)
        try:
            data = _encode(self.config, request.payload)
        except xmljson.NotXml as exc:
            raise BackendRejected(str(exc)) from None
        loop = asyncio.get_running_loop()
        if self.remote is None:
            await loop.run_in_executor(None, self._write_local, name, data)
        else:
            await loop.run_in_executor(None, self._write_sftp, name, data)
        if self.config.reply_folder is None:
            return Reply(202, {"accepted": name})
        reply = file_name(self.config.reply_name, request)
        if self.remote is None:
            body = await self._reply_local(reply)
        else:
            deadline = time.monotonic() + self.config.timeout
            body = await loop.run_in_executor(None, self._poll_sftp, reply, deadline)
        answer = _decode(body)
        if self.config.reject is not None:
            try:
                reason = pointer_get(answer, self.config.reject)
            except MappingError:
                reason = None
            if reason not in (None, "", False):
                if self.config.not_found and re.search(self.config.not_found, str(reason)):
                    raise BackendNotFound(str(reason)[:200])
                raise BackendRejected(f"the legacy system refused the file: {str(reason)[:200]}")
        return Reply(200, answer)

    async def close(self) -> None:
        if self._replies is not None:
            self._replies.stop()
        if self._client is not None:
            self._client.close()
