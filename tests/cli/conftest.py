"""Helpers for the CLI tests: run pyjuicefs in-process or as a subprocess, and a Redis with a
password (the shared fixtures' Redis has none)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from pyjuicefs.cli.main import main


@dataclass
class Result:
    rc: int
    out: str
    err: str

    @property
    def json(self):
        return json.loads(self.out)

    def error_lines(self) -> list[str]:
        return [ln for ln in self.err.splitlines() if "<ERROR>" in ln or "<FATAL>" in ln]


@pytest.fixture
def cli(capsys, monkeypatch):
    """cli(*argv, stdin='') -> Result, running pyjuicefs.cli.main.main in this process."""

    def run(*argv: str, stdin: str = "") -> Result:
        import io

        capsys.readouterr()
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        try:
            rc = main([str(a) for a in argv])
        except SystemExit as e:  # argparse usage errors
            rc = e.code if isinstance(e.code, int) else 1
        out, err = capsys.readouterr()
        return Result(rc, out, err)

    return run


def run_subprocess(*argv: str, stdin: str = "", timeout: float = 30, env: dict | None = None) -> Result:
    """python -m pyjuicefs ... in a child process (exit code, real stderr)."""
    p = subprocess.run([sys.executable, "-m", "pyjuicefs", *map(str, argv)], input=stdin, capture_output=True,
                       text=True, timeout=timeout, env={**os.environ, **(env or {})})
    return Result(p.returncode, p.stdout, p.stderr)


def run_juicefs(juicefs_bin: str, *argv: str, stdin: str = "", timeout: float = 60) -> Result:
    """The reference binary (no pprof agent, no usage report)."""
    p = subprocess.run([juicefs_bin, "--no-agent", *map(str, argv)], input=stdin, capture_output=True, text=True,
                       timeout=timeout)
    return Result(p.returncode, p.stdout, p.stderr)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PasswordRedis:
    port: int
    password: str

    def url(self, db: int, password: str | None = None) -> str:
        pw = self.password if password is None else password
        return f"redis://:{pw}@127.0.0.1:{self.port}/{db}"


@pytest.fixture
def subproc():
    """subproc(*argv, stdin='', env=None) -> Result of `python -m pyjuicefs ...`."""
    return run_subprocess


@pytest.fixture(scope="session")
def password_redis(tmp_path_factory):
    """A Redis server that requires a password, on a free loopback port."""
    exe = shutil.which("redis-server")
    assert exe, "redis-server is not installed"
    d = tmp_path_factory.mktemp("pwredis")
    port = _free_port()
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--requirepass", "s3cret",
                             "--save", "", "--appendonly", "no", "--dir", str(d)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), 0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64):
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "password redis did not start"
            time.sleep(0.05)
        yield PasswordRedis(port, "s3cret")
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def bucket(tmp_path) -> Path:
    return tmp_path / "bucket"
