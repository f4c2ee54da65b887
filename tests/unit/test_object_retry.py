"""Retrying transient storage errors: how often, how long, what is logged, what is not retried."""

from __future__ import annotations

import io
import logging

import pytest

from pyjuicefs.errors import ObjectNotFound, StorageAuthError, StorageError, TransientStorageError
from pyjuicefs.object.mem import MemStorage
from pyjuicefs.object.retry import Backoff, RetryingStorage, call_with_retry, retried


class Flaky(MemStorage):
    """A memory store whose next `fail` calls raise `error` (after reading any stream half-way)."""

    def __init__(self, fail: int, error: Exception | None = None) -> None:
        super().__init__()
        self.fail = fail
        self.error = error or TransientStorageError("connection reset by peer")
        self.calls = 0

    def _maybe_fail(self) -> None:
        self.calls += 1
        if self.fail > 0:
            self.fail -= 1
            raise self.error

    def put(self, key, data):
        if self.fail > 0 and not isinstance(data, bytes):
            data.read(3)  # a failure in the middle of an upload
        self._maybe_fail()
        super().put(key, data)

    def get(self, key, off=0, limit=-1):
        self._maybe_fail()
        return super().get(key, off, limit)

    def list(self, prefix="", start_after="", limit=1000):
        self._maybe_fail()
        return super().list(prefix, start_after, limit)


class Sleeps(list):
    def __call__(self, d: float) -> None:
        self.append(d)


def _retrying(inner, retries=10):
    sleeps = Sleeps()
    return RetryingStorage(inner, retries, Backoff(base=0.01, cap=0.05, sleep=sleeps, rand=lambda: 1.0)), sleeps


def test_transient_errors_are_retried_until_success():
    inner = Flaky(3)
    st, sleeps = _retrying(inner)
    st.put("k", b"v")
    assert inner.calls == 4
    assert sleeps == [0.01, 0.02, 0.04]  # exponential
    assert st.get("k") == b"v"


def test_gives_up_after_retries():
    inner = Flaky(100)
    st, sleeps = _retrying(inner, retries=4)
    with pytest.raises(TransientStorageError):
        st.get("k")
    assert inner.calls == 5
    assert sleeps == [0.01, 0.02, 0.04, 0.05]  # capped


def test_zero_retries_tries_once():
    inner = Flaky(1)
    st, sleeps = _retrying(inner, retries=0)
    with pytest.raises(TransientStorageError):
        st.list()
    assert inner.calls == 1 and sleeps == []


@pytest.mark.parametrize("error", [ObjectNotFound("gone"), StorageAuthError("denied"), StorageError("bad")])
def test_final_errors_are_not_retried(error):
    inner = Flaky(5, error)
    st, sleeps = _retrying(inner)
    with pytest.raises(type(error)):
        st.get("k")
    assert inner.calls == 1 and sleeps == []


def test_missing_key_is_not_retried():
    st, sleeps = _retrying(Flaky(0))
    with pytest.raises(ObjectNotFound):
        st.get("missing")
    assert sleeps == []


def test_logging_warns_once_then_debug(caplog):
    inner = Flaky(3)
    st, _ = _retrying(inner)
    with caplog.at_level(logging.DEBUG, logger="pyjuicefs.object.retry"):
        st.put("k", b"v")
    levels = [r.levelno for r in caplog.records if r.name == "pyjuicefs.object.retry"]
    assert levels == [logging.WARNING, logging.DEBUG, logging.DEBUG]
    assert "put k" in caplog.records[0].getMessage()


def test_seekable_stream_is_rewound_for_each_try():
    inner = Flaky(2)
    st, _ = _retrying(inner)
    buf = io.BytesIO(b"skip:payload")
    buf.read(5)  # the object starts at the current position
    st.put("k", buf)
    assert inner.get("k") == b"payload"


def test_unseekable_stream_is_tried_once():
    class Pipe(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self.buf = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, b) -> int:
            return self.buf.readinto(b)

    inner = Flaky(1)
    st, sleeps = _retrying(inner)
    with pytest.raises(TransientStorageError):
        st.put("k", Pipe(b"data"))
    assert inner.calls == 1 and sleeps == []
    st.put("k", Pipe(b"data"))
    assert inner.get("k") == b"data"


def test_list_all_retries_each_page():
    inner = Flaky(0)
    for i in range(2500):
        inner.put(f"k{i:05d}", b"")
    st, sleeps = _retrying(inner)
    it = st.list_all()
    first = [next(it) for _ in range(1000)]
    inner.fail = 2  # the next page fails twice, then succeeds
    rest = list(it)
    assert [o.key for o in first + rest] == [f"k{i:05d}" for i in range(2500)]
    assert len(sleeps) == 2


def test_backoff_jitter_within_bounds():
    bo = Backoff(base=0.5, cap=4.0)
    for n in range(12):
        for _ in range(20):
            assert 0 <= bo.delay(n) <= min(4.0, 0.5 * 2 ** n)


def test_decorator_and_function_forms():
    calls = []
    sleeps = Sleeps()

    @retried("fetch", retries=3, backoff=Backoff(sleep=sleeps))
    def fetch(x: int) -> int:
        calls.append(x)
        if len(calls) < 3:
            raise TransientStorageError("timeout")
        return x * 2

    assert fetch(21) == 42 and calls == [21, 21, 21] and len(sleeps) == 2
    assert call_with_retry(lambda: 7, "seven", 0, Backoff()) == 7
