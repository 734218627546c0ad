"""A PostgreSQL server of a test's own (own data directory and port), to stop and start at will.

Tests that take the database away must never touch the shared server: this one is
made with initdb and run with pg_ctl as the ``postgres`` system user (PostgreSQL
refuses to run as root), with fsync off, and removed afterwards.
"""

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

SUPERUSER = "postgres"


def binaries() -> Path | None:
    """The directory of the newest installed PostgreSQL's initdb and pg_ctl, if any."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def unavailable_reason() -> str:
    """Why a private server cannot be run here, or "" when it can."""
    if binaries() is None:
        return "PostgreSQL's initdb is not installed"
    try:
        pwd.getpwnam(SUPERUSER)
    except KeyError:
        return "no postgres system user"
    if os.geteuid() != 0 and pwd.getpwuid(os.geteuid()).pw_name != SUPERUSER:
        return "running as neither root nor postgres"
    return ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivatePostgres:
    """initdb, start, stop, start again; ``url(name)`` is a DATABASE_URL for one of its databases."""

    def __init__(self) -> None:
        self.bin = binaries()
        self.port = free_port()
        self.base = Path(tempfile.mkdtemp(prefix="eh-private-pg-"))
        self.data = self.base / "data"
        self.log = self.base / "server.log"
        user = pwd.getpwnam(SUPERUSER)
        os.chown(self.base, user.pw_uid, user.pw_gid)

    def url(self, name: str) -> str:
        return f"postgres://{SUPERUSER}@127.0.0.1:{self.port}/{name}"

    def init(self) -> "PrivatePostgres":
        self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "-A", "trust", "--no-sync", "-E", "UTF8")
        return self.start()

    def start(self) -> "PrivatePostgres":
        options = f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")
        return self

    def stop(self) -> None:
        """Stop at once (fast shutdown: open connections are cut, as when a server goes away)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def create_database(self, name: str) -> None:
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER, name)

    def remove(self) -> None:
        """Stop if running, and delete the data directory."""
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(self.base, ignore_errors=True)

    def _run(self, program: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = [str(self.bin / program), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", SUPERUSER, "--", *command]
        done = subprocess.run(command, cwd=self.base, capture_output=True, text=True, timeout=120)
        if check and done.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"{program} failed: {done.stdout}{done.stderr}\n{log}")
        return done
