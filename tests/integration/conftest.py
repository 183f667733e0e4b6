"""A real OpenSSH sshd on a loopback port, with a throwaway host key and user key."""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import missing_service


@dataclass(frozen=True)
class Sshd:
    port: int
    pid: int
    user: str
    user_key: Path
    known_hosts: Path  # holds this server's host key
    host_key_pub: Path

    def url(self, path: Path | str) -> str:
        return f"sftp://{self.user}@127.0.0.1:{self.port}{path}"

    def drop_connections(self) -> None:
        """Kill every per-connection sshd child: what a network cut looks like to the client."""
        subprocess.run(["pkill", "-KILL", "-P", str(self.pid)], check=False)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "banyan-test", "-f", str(path)], check=True)


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    binary = shutil.which("sshd") or "/usr/sbin/sshd"
    if not os.path.exists(binary) or not shutil.which("ssh-keygen"):
        missing_service("OpenSSH's sshd and ssh-keygen are not installed (make test installs openssh-server)")
    home = tmp_path_factory.mktemp("sshd")
    _keygen(home / "host_key")
    _keygen(home / "user_key")
    shutil.copy(home / "user_key.pub", home / "authorized_keys")
    (home / "authorized_keys").chmod(0o600)
    port = _free_port()
    (home / "sshd_config").write_text(
        f"Port {port}\n"
        "ListenAddress 127.0.0.1\n"
        f"HostKey {home / 'host_key'}\n"
        f"PidFile {home / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {home / 'authorized_keys'}\n"
        "StrictModes no\n"
        "UsePAM no\n"
        "PubkeyAuthentication yes\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "PermitRootLogin prohibit-password\n"
        "Subsystem sftp internal-sftp\n"
        "LogLevel ERROR\n"
    )
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation needs it
    process = subprocess.Popen([binary, "-D", "-e", "-f", str(home / "sshd_config")], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                missing_service(f"sshd did not start: {process.stderr.read() if process.stderr else ''}")
            time.sleep(0.05)
    host_pub = (home / "host_key.pub").read_text().split()
    (home / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
    yield Sshd(port, process.pid, getpass.getuser(), home / "user_key", home / "known_hosts", home / "host_key.pub")
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=10)
