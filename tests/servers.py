"""Real servers on loopback for tests: a throw-away PostgreSQL cluster and an ``mlflow server``.

PostgreSQL comes from Debian's server package (``/usr/lib/postgresql/*/bin``; ``.ci/run``
installs it when missing). Running as root, the cluster is initialised and run as the
``postgres`` user, as PostgreSQL requires. Each server runs in its own process group and is
stopped, and its folder removed, when the fixture ends, whatever the tests did.
"""

from __future__ import annotations

import glob
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

PORTS_FROM = 10000  # servers' ports: from here to the ephemeral range (32768 by default)
STARTUP_SECONDS = 180  # mlflow server migrates an empty database first: ~30 s on 2 busy cores


def free_port() -> int:
    """A loopback port free now, for a server to bind, drawn below the kernel's ephemeral range:
    the tests' outgoing connections take their local ports from that range (as ``bind(0)`` does),
    so none can take this one between the probe and the server's bind (a random draw from a
    system source: two xdist workers seeded alike would draw alike)."""
    low = ephemeral_low()
    draw = random.SystemRandom()
    for _ in range(200):
        port = draw.randrange(PORTS_FROM, low) if low - PORTS_FROM >= 1000 else 0
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:  # taken: another draw
                continue
            return probe.getsockname()[1]
    raise OSError("no free loopback port found below the ephemeral range")


def ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (Linux's; elsewhere 0: ``bind(0)`` then)."""
    ports = Path("/proc/sys/net/ipv4/ip_local_port_range")
    return int(ports.read_text().split()[0]) if ports.is_file() else 0


def postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM, wait: float = 20) -> None:
    """Signal the process group we started; kill it if it does not end within ``wait`` s."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, sig)
        process.wait(wait)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass


class Postgres:
    """One PostgreSQL cluster in a temporary folder, listening on 127.0.0.1:``port``."""

    def __init__(self) -> None:
        self.bin = postgres_bin()
        if self.bin is None:
            pytest.fail(
                "PostgreSQL server binaries not found: apt-get install postgresql (.ci/run does)"
            )
        self.root = Path(tempfile.mkdtemp(prefix="vggface-pg-"))
        self.root.chmod(0o755)
        self.data, self.sockets = self.root / "data", self.root / "sockets"
        self.sockets.mkdir()
        self.user = "postgres" if os.geteuid() == 0 else None
        if self.user:
            entry = pwd.getpwnam(self.user)
            for path in (self.root, self.sockets):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self.port = free_port()
        self.log = self.root / "server.log"
        self.process: subprocess.Popen | None = None
        subprocess.run(
            [self.bin / "initdb", "-D", self.data, "-U", "postgres", "-A", "trust", "--no-sync"],
            check=True,
            capture_output=True,
            user=self.user,
        )
        self.start()

    def url(self, database: str, driver: str = "postgresql") -> str:  # the README's form
        return f"{driver}://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        command = [self.bin / "postgres", "-D", self.data, "-p", str(self.port)]
        command += ["-h", "127.0.0.1", "-k", self.sockets, "-F", "-c", "max_connections=200"]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=log, user=self.user, start_new_session=True
            )
        self.sql("SELECT 1", wait=STARTUP_SECONDS)

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process, signal.SIGINT)  # fast shutdown: clients are disconnected

    def sql(self, statement: str, database: str = "postgres", wait: float = 0) -> None:
        import psycopg2

        deadline = time.monotonic() + wait
        while True:
            try:
                connection = psycopg2.connect(
                    host="127.0.0.1", port=self.port, user="postgres", dbname=database
                )
                break
            except psycopg2.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        connection.autocommit = True
        try:
            connection.cursor().execute(statement)
        finally:
            connection.close()

    def create_database(self, name: str) -> str:
        self.sql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class MlflowServer:
    """``mlflow server --workers N`` on a PostgreSQL database, proxying artifacts to a
    temporary folder (one worker for tests; ``bench/scale.py`` asks for more)."""

    def __init__(self, backend_uri: str, workers: int = 1) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="vggface-mlflow-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = self.root / "server.log"
        self.backend_uri = backend_uri
        self.workers = workers
        self.start()

    def start(self) -> None:
        """Start the server (again, on the same port and stores) and wait until it answers."""
        command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1"]
        command += ["--port", str(self.port), "--workers", str(self.workers)]
        command += ["--backend-store-uri", self.backend_uri]
        command += ["--artifacts-destination", str(self.root / "artifacts")]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=log, cwd=self.root, start_new_session=True
            )
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = self.log.read_text()[-2000:]
                self.close()
                raise RuntimeError(f"mlflow server did not start: {log}")
            time.sleep(0.5)

    def stop(self) -> None:
        # Killed, as a crash would end it: its state is in its database, and on SIGTERM it
        # waits for its clients' open connections (5 s of every stop here, then killed anyway).
        stop(self.process, signal.SIGKILL)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


CHROMIUM_FLAGS = [  # a fresh, quiet browser: no sandbox (root in CI), nothing fetched from outside
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--mute-audio",
]
