"""Fixtures shared by the compatibility tests."""

from __future__ import annotations

import io
import sys

import pytest

from pyjuicefs.cli.main import main


@pytest.fixture
def pyjfs(capsys, monkeypatch):
    """pyjfs(*argv) -> (rc, stdout, stderr) of pyjuicefs.cli.main.main, in this process."""

    def run(*argv: object) -> tuple[int, str, str]:
        capsys.readouterr()
        monkeypatch.setattr(sys, "stdin", io.StringIO(""))
        rc = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return rc, out, err

    return run
