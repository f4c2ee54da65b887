"""Fixtures of the VFS tests: formatted volumes (memkv + mem store, sqlite3 + file store) and VFS
instances on them, closed after each test. No kernel: the tests call the VFS API directly."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
from vfs_helpers import Volume, format_volume

from pyjuicefs.meta.base_common import MetaConfig
from pyjuicefs.vfs import VFS, VFSConfig, open_volume


@pytest.fixture(params=["memkv", "sqlite3"])
def volume(request: pytest.FixtureRequest, new_meta_url: Callable[[str], str], tmp_path) -> Volume:
    """A fresh volume with 64 KiB blocks and no trash: memkv + mem store, or sqlite3 + file store."""
    url = new_meta_url(request.param)
    if request.param == "memkv":
        fmt = format_volume(url, "mem", f"vfs-{uuid.uuid4().hex[:10]}")
    else:
        fmt = format_volume(url, "file", str(tmp_path / "bucket") + "/")
    return Volume(url, fmt)


@pytest.fixture
def mount(volume: Volume) -> Iterator[Callable[..., VFS]]:
    """Factory: mount(**vfs_conf) -> a VFS (a client) on the volume; all closed at teardown."""
    opened: list[VFS] = []

    def make(**kw) -> VFS:
        kw.setdefault("io_retries", 1)
        v = open_volume(volume.url, vfs_conf=VFSConfig(**kw), meta_conf=MetaConfig(retries=3, heartbeat=2))
        opened.append(v)
        return v

    yield make
    for v in reversed(opened):
        v.close()


@pytest.fixture
def vfs(mount) -> VFS:
    return mount()
