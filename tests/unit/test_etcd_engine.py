"""The etcd KV client under the TKV engine, on real etcd servers: URL forms, the key prefix on the
wire, optimistic transactions (conflicts retried across threads, snapshot reads, range guards),
paging, etcd's size limits, authentication, TLS, unreachable endpoints and fail-over."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import os
import ssl
import threading
import time
import urllib.request
import uuid

import pytest

import services
from pyjuicefs.errors import MetaError, TxnConflict, UserError
from pyjuicefs.meta import new_engine
from pyjuicefs.meta.etcd import EtcdClient, EtcdEngine, EtcdTxn
from pyjuicefs.meta.etcd_url import parse_etcd_url
from pyjuicefs.meta.tkv import next_key

PASSWORD = "s3cr3t-Pw"


def b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def raw_keys(srv, prefix: bytes) -> dict[bytes, bytes]:
    out = srv.call("/v3/kv/range", {"key": b64(prefix), "range_end": b64(next_key(prefix))})
    return {base64.b64decode(kv["key"]): base64.b64decode(kv.get("value", "")) for kv in out.get("kvs", [])}


@pytest.fixture
def url(new_meta_url) -> str:
    return new_meta_url("etcd")


@pytest.fixture
def client(url):
    c = EtcdClient(url)
    yield c
    c.close()


def put_all(c: EtcdClient, items: dict[bytes, bytes]) -> None:
    keys = sorted(items)
    for i in range(0, len(keys), 100):
        c.txn(lambda tx, part=keys[i:i + 100]: [tx.set(k, items[k]) for k in part])


# --- URLs -------------------------------------------------------------------------------------------


def test_url_forms(monkeypatch):
    a = parse_etcd_url("etcd://u:p%40ss@h1:2380,h2,[::1]:3000/jfs/vol?insecure-skip-verify=1")
    assert a.endpoints == [("h1", 2380), ("h2", 2379), ("::1", 3000)]
    assert (a.user, a.password, a.prefix, a.tls) == ("u", "p@ss", b"/jfs/vol\xfd", None)
    assert parse_etcd_url("etcd://h").prefix == b"\xfd"  # JuiceFS: u.Path + "\xFD"
    monkeypatch.setenv("META_PASSWORD", "from-env")
    assert parse_etcd_url("etcd://u:@h/x").password == "from-env"
    assert parse_etcd_url("etcd://u:given@h/x").password == "given"
    assert parse_etcd_url("etcd://h/x").password == ""


@pytest.mark.parametrize("bad, why", [
    ("etcd:///jfs", "no endpoint"),
    ("etcd://user:pw@/jfs", "no endpoint"),
    ("etcd://h:99999/jfs", "out of range"),
    ("etcd://h:port/jfs", "bad endpoint"),
    ("etcd://:pw@h/jfs", "needs a user"),
    ("etcd://h/jfs?cert=/nonexistent.pem", "together"),
    ("etcd://h/jfs?cacert=/nonexistent.pem", "does not exist"),
])
def test_malformed_urls_are_one_line_user_errors(bad, why):
    with pytest.raises(UserError) as e:
        new_engine(bad)
    msg = str(e.value)
    assert why in msg and "\n" not in msg and "pw@" not in msg


# --- keys on the wire -------------------------------------------------------------------------------


def test_keys_carry_the_url_path_and_0xfd(url, etcd_server, client):
    prefix = url.rsplit("/", 1)[1]
    client.txn(lambda tx: tx.set(b"setting", b"{}"))
    assert raw_keys(etcd_server, f"/{prefix}".encode()) == {f"/{prefix}".encode() + b"\xfdsetting": b"{}"}
    client.reset()
    assert raw_keys(etcd_server, f"/{prefix}".encode()) == {}


# --- transactions -----------------------------------------------------------------------------------


def test_conflicts_are_retried_across_threads(url):
    clients = [EtcdClient(url) for _ in range(4)]
    conflicts = []
    for c in clients:
        once = c._txn_once

        def counted(fn, once=once):
            try:
                return once(fn)
            except TxnConflict:
                conflicts.append(1)
                raise

        c._txn_once = counted  # type: ignore[method-assign]

    def work(c: EtcdClient) -> None:
        for _ in range(15):
            c.txn(lambda tx: tx.incr_by(b"Cx", 1), retries=200)

    threads = [threading.Thread(target=work, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert clients[0].txn(lambda tx: tx.incr_by(b"Cx", 0)) == 60
    assert conflicts, "four threads on one counter should have conflicted at least once"
    for c in clients:
        c.close()


def test_commit_fails_when_a_read_key_changed_or_vanished(client, url):
    other = EtcdClient(url)
    put_all(client, {b"a": b"1", b"b": b"2"})
    for change in (lambda tx: tx.set(b"a", b"9"), lambda tx: tx.delete(b"a"), lambda tx: tx.set(b"new", b"x")):
        tx = EtcdTxn(client)
        tx.get(b"a")
        tx.get(b"new")
        other.txn(change)
        tx.set(b"b", b"3")
        with pytest.raises(TxnConflict):
            tx.commit()
        put_all(client, {b"a": b"1"})
        other.txn(lambda tx: tx.delete(b"new"))
    other.close()


def test_scans_guard_against_keys_created_in_the_range(client, url):
    other = EtcdClient(url)
    put_all(client, {b"D1": b"", b"D3": b""})
    tx = EtcdTxn(client)
    assert [k for k, _ in tx.scan_prefix(b"D")] == [b"D1", b"D3"]
    other.txn(lambda t: t.set(b"D2", b""))
    tx.set(b"x", b"y")
    with pytest.raises(TxnConflict):
        tx.commit()
    # a key created outside the scanned range does not conflict
    tx = EtcdTxn(client)
    list(tx.scan_prefix(b"D"))
    other.txn(lambda t: t.set(b"E1", b""))
    tx.set(b"x", b"y")
    tx.commit()
    other.close()


def test_reads_see_one_snapshot(client, url):
    other = EtcdClient(url)
    put_all(client, {b"a": b"1", b"b": b"1"})
    tx = EtcdTxn(client)
    assert tx.get(b"a") == b"1"
    other.txn(lambda t: [t.set(b"b", b"2"), t.set(b"c", b"2")])
    assert tx.gets(b"b", b"c", b"a") == [b"1", None, b"1"]
    assert [k for k, _ in tx.scan(b"a", b"z")] == [b"a", b"b"]
    client.txn(lambda t: None)  # a read-only txn commits nothing
    other.close()


def test_paging_beyond_the_page_size_merges_own_writes(client):
    items = {b"K%04d" % i: b"v%d" % i for i in range(1100)}  # more than the default page of 1024
    put_all(client, items)
    got = client.txn(lambda tx: list(tx.scan_prefix(b"K")))
    assert got == sorted(items.items())
    client.page_size = 7

    def body(tx):
        tx.delete(b"K0000")
        tx.delete(b"K0003")
        tx.set(b"K0002x", b"new")
        tx.set(b"K0005", b"changed")
        return list(tx.scan_prefix(b"K", 5)), tx.exist(b"K"), list(tx.scan(b"K1095", b"K2"))

    first, exists, tail = client.txn(body)
    assert first == [(b"K0001", b"v1"), (b"K0002", b"v2"), (b"K0002x", b"new"), (b"K0004", b"v4"),
                     (b"K0005", b"changed")]
    assert exists and [k for k, _ in tail] == [b"K%04d" % i for i in range(1095, 1100)]
    assert client.txn(lambda tx: len(list(tx.scan_prefix(b"K")))) == 1099


def test_batched_gets_beyond_128_keys(client):
    items = {b"G%03d" % i: b"%d" % i for i in range(0, 300, 2)}
    put_all(client, items)
    keys = [b"G%03d" % i for i in range(300)]
    assert client.txn(lambda tx: tx.gets(*keys)) == [items.get(k) for k in keys]


def test_a_big_scan_then_a_write_commits(client):
    put_all(client, {b"S%04d" % i: b"" for i in range(300)})  # 300 scanned keys > 128 compares

    def body(tx):
        n = len(list(tx.scan_prefix(b"S")))
        tx.set(b"count", str(n).encode())

    client.txn(body)
    assert client.txn(lambda tx: tx.get(b"count")) == b"300"


def test_big_values_and_etcd_limits(client):
    big = os.urandom(1 << 20)
    client.txn(lambda tx: tx.set(b"big", big))
    assert client.txn(lambda tx: tx.get(b"big")) == big
    t0 = time.monotonic()
    with pytest.raises(MetaError, match="max-request-bytes"):
        client.txn(lambda tx: tx.set(b"huge", b"x" * (2 << 20)))
    with pytest.raises(MetaError, match="max-txn-ops"):
        client.txn(lambda tx: [tx.set(b"w%d" % i, b"") for i in range(129)])
    assert time.monotonic() - t0 < 10, "limit errors must not be retried as conflicts"
    assert client.txn(lambda tx: tx.get(b"huge")) is None


# --- reachability -----------------------------------------------------------------------------------


def test_unreachable_endpoint_fails_fast_with_a_clear_line():
    port = services.free_port()
    e = new_engine(f"etcd://root:{PASSWORD}@127.0.0.1:{port}/jfs")
    t0 = time.monotonic()
    with pytest.raises(UserError) as err:
        e.ping()
    assert time.monotonic() - t0 < 5
    msg = str(err.value)
    assert f"127.0.0.1:{port}" in msg and "Connection refused" in msg and PASSWORD not in msg
    assert "\n" not in msg
    e.close()


def test_fails_over_to_a_live_endpoint(etcd_server, url):
    dead = services.free_port()
    host_part = url.split("://", 1)[1]
    e = new_engine(f"etcd://127.0.0.1:{dead},{host_part}")
    assert isinstance(e, EtcdEngine)
    e.ping()
    e.save_setting(b"{}")
    assert e.load_setting() == b"{}"
    e.close()


# --- authentication ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def auth_etcd():
    """A throwaway etcd with authentication on: user root / PASSWORD."""
    srv = services.EtcdServer()
    srv.start()
    try:
        srv.call("/v3/auth/role/add", {"name": "root"})
        srv.call("/v3/auth/user/add", {"name": "root", "password": PASSWORD})
        srv.call("/v3/auth/user/grant", {"user": "root", "role": "root"})
        srv.call("/v3/auth/enable", {})
        yield srv
    finally:
        srv.stop()


def test_auth_with_password(auth_etcd):
    e = new_engine(f"etcd://root:{PASSWORD}@127.0.0.1:{auth_etcd.port}/auth{uuid.uuid4().hex[:6]}")
    e.ping()
    e.save_setting(b"{}")
    assert e.load_setting() == b"{}"
    # an expired or unknown token is renewed transparently
    e.etcd.http.session.headers["Authorization"] = "expired.1"
    assert e.load_setting() == b"{}"
    e.reset()
    e.close()


def test_auth_password_from_meta_password(auth_etcd, monkeypatch):
    monkeypatch.setenv("META_PASSWORD", PASSWORD)
    e = new_engine(f"etcd://root:@127.0.0.1:{auth_etcd.port}/authenv")
    e.ping()
    e.close()


@pytest.mark.parametrize("cred, why", [("root:wrong-pw@", "invalid user name or password"),
                                       ("nobody:wrong-pw@", "invalid user name or password"),
                                       ("", "requires authentication")])
def test_auth_failures_are_clear(auth_etcd, cred, why):
    e = new_engine(f"etcd://{cred}127.0.0.1:{auth_etcd.port}/jfs")
    t0 = time.monotonic()
    with pytest.raises(UserError) as err:
        e.ping()
    assert time.monotonic() - t0 < 5
    assert why in str(err.value) and "wrong-pw" not in str(err.value)
    e.close()


# --- TLS --------------------------------------------------------------------------------------------


def _tls_pair(tmp, names: list[str]) -> tuple[str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    k = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    sans = [x509.IPAddress(ipaddress.ip_address(n)) if n[0].isdigit() else x509.DNSName(n) for n in names]
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(k.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(k, hashes.SHA256()))
    c, key = tmp / "etcd.pem", tmp / "etcd-key.pem"
    c.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
    return str(c), str(key)


class TLSEtcd(services.EtcdServer):
    name = "etcd-tls"

    def __init__(self, cert: str, key: str) -> None:
        super().__init__()
        self.cert, self.key = cert, key

    def command(self) -> list[str]:
        cmd = super().command()
        return [a.replace(f"http://{services.HOST}:{self.port}", self.client_url) for a in cmd] + [
            "--cert-file", self.cert, "--key-file", self.key]

    @property
    def client_url(self) -> str:
        return f"https://{services.HOST}:{self.port}"

    def probe(self) -> bool:
        ctx = ssl.create_default_context(cafile=self.cert)
        ctx.check_hostname = False
        with urllib.request.urlopen(self.client_url + "/health", timeout=2, context=ctx) as r:
            return b"true" in r.read()


def test_tls_with_ca_and_server_name(tmp_path):
    cert, key = _tls_pair(tmp_path, ["etcd.test"])  # the certificate does not name 127.0.0.1
    srv = TLSEtcd(cert, key)
    srv.start()
    try:
        base = f"etcd://127.0.0.1:{srv.port}/tls"
        e = new_engine(f"{base}?cacert={cert}&server-name=etcd.test")
        e.ping()
        e.save_setting(b"{}")
        assert e.load_setting() == b"{}"
        e.close()
        e = new_engine(f"{base}?cacert={cert}")  # hostname 127.0.0.1 is not in the certificate
        with pytest.raises(UserError):
            e.ping()
        e.close()
        e = new_engine(f"{base}?server-name=etcd.test&insecure-skip-verify=true")
        assert e.load_setting() == b"{}"
        e.close()
    finally:
        srv.stop()
