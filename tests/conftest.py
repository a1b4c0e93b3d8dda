"""Fixtures: real Orthanc servers from Debian's packages, started once per test session.

``server_a`` and ``server_b`` (Orthanc 1.10: the host's on Debian 12) are each other's DICOM
modality, Orthanc peer and DICOMweb server; A has ``OverwriteInstances: true``, B keeps the
default. ``server_112`` is Orthanc 1.12 (from a Debian 13 root under chroot on Debian 12) and
``server_113`` Orthanc 1.13 or newer (Debian sid's, from a root under chroot). Every server of
the rig that loads the GDCM plugin has it restricted to JPEG 2000 (``orthanc_rig.JPEG_2000``):
``server_113``, and ``server_gdcm`` on each tier.
Servers start lazily, the first time a test asks for them, and stop at the end of the session:
each one is started once and shared by every test that asks for it.

Tiers: a test of a feature that exists since 1.12 asks for ``conn_new`` (or ``server_new``)
and runs once on each tier that has it, 1.12 and 1.13 (ids ``[1.12]``, ``[1.13]``, marked
``v112`` / ``v113``); ``conn_any`` runs it on all three tiers. A test asking for the 1.12 or
1.13 server itself must carry the ``v112`` / ``v113`` marker (``pytest_collection_modifyitems``).
"""
import os
import subprocess
import sys
import threading
from typing import NamedTuple

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "rig"))
sys.path.insert(0, os.path.dirname(HERE))

import orthanc_fn  # noqa: E402
import orthanc_fn_helpers  # noqa: E402
import orthanc_rig  # noqa: E402

_started = []
TIERS = ("1.10", "1.12", "1.13")
_TIER_MARKS = {"1.10": (), "1.12": (pytest.mark.v112,), "1.13": (pytest.mark.v113,)}
_TIER_SERVERS = {"1.10": "server_a", "1.12": "server_112", "1.13": "server_113"}
_RIG_PLUGINS = ("libOrthancDicomWeb.so", "libOrthancGdcm.so")


def _start_all(servers):
    errors = []

    def run(server):
        try:
            server.start()
            _started.append(server)
        except Exception as exc:  # reported below, after every thread ended
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(s,)) for s in servers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return servers


def pytest_report_header(config):
    return f"host Orthanc: {orthanc_rig.host_version()}"


@pytest.fixture(scope="session")
def pair():
    """Servers A and B, wired to each other, started together."""
    a = orthanc_rig.Server("a", tier="1.10", config={"OverwriteInstances": True})
    b = orthanc_rig.Server("b", tier="1.10")
    orthanc_rig.wire(a, b)
    _start_all([a, b])
    for s in (a, b):
        print(f"\n[rig] {s.name}: Orthanc {orthanc_fn.get_system(s.conn)['Version']} at {s.url}")
    return a, b


@pytest.fixture(scope="session")
def server_a(pair):
    return pair[0]


@pytest.fixture(scope="session")
def server_b(pair):
    return pair[1]


@pytest.fixture
def conn_a(server_a):
    return server_a.conn


@pytest.fixture
def conn_b(server_b):
    return server_b.conn


@pytest.fixture
def empty_a(conn_a):
    """A, emptied before the test."""
    orthanc_fn.delete_all_content(conn_a)
    return conn_a


@pytest.fixture
def empty_b(conn_b):
    """B, emptied before the test."""
    orthanc_fn.delete_all_content(conn_b)
    return conn_b


@pytest.fixture(scope="session")
def server_112():
    """Orthanc 1.12 (Debian 13's package), alone, with the DICOMweb plugin."""
    server = orthanc_rig.Server("v112", tier="1.12")
    _start_all([server])
    print(f"\n[rig] v112: Orthanc {orthanc_fn.get_system(server.conn)['Version']} at {server.url}")
    return server


@pytest.fixture
def conn_112(server_112):
    orthanc_fn.delete_all_content(server_112.conn)
    return server_112.conn


@pytest.fixture(scope="session")
def server_113():
    """Orthanc 1.13 or newer (Debian sid's package), alone, with the DICOMweb and GDCM plugins."""
    server = orthanc_rig.Server("v113", tier="1.13", plugins=_RIG_PLUGINS)
    _start_all([server])
    print(f"\n[rig] v113: Orthanc {orthanc_fn.get_system(server.conn)['Version']} at {server.url}")
    return server


@pytest.fixture
def conn_113(server_113):
    orthanc_fn.delete_all_content(server_113.conn)
    return server_113.conn


def _tier_params(tiers):
    return [pytest.param(tier, marks=_TIER_MARKS[tier], id=tier) for tier in tiers]


@pytest.fixture(scope="session", params=_tier_params(("1.12", "1.13")))
def new_tier(request):
    """'1.12', then '1.13': the tiers with labels, extended find and the 1.12 REST API."""
    return request.param


@pytest.fixture(scope="session")
def server_new(new_tier, request):
    """The shared server of ``new_tier`` (``server_112``, then ``server_113``)."""
    return request.getfixturevalue(_TIER_SERVERS[new_tier])


@pytest.fixture
def conn_new(server_new):
    """``conn_112``, then ``conn_113``: the server of ``new_tier``, emptied before the test."""
    orthanc_fn.delete_all_content(server_new.conn)
    return server_new.conn


@pytest.fixture(scope="session", params=_tier_params(TIERS))
def any_tier(request):
    """'1.10', '1.12', then '1.13'."""
    return request.param


@pytest.fixture
def conn_any(any_tier, request):
    """The shared server of each tier in turn (A on 1.10), not emptied."""
    return request.getfixturevalue(_TIER_SERVERS[any_tier]).conn


@pytest.fixture(scope="session")
def server_gdcm(any_tier, request, make_server):
    """A server of each tier with the DICOMweb and GDCM plugins: ``server_113`` on 1.13; on 1.10
    and 1.12 one of its own, not A, B or ``server_112``: GDCM decodes JPEG 2000 well there, but
    transcoding a JPEG 2000 file through it kills Orthanc 1.12.7 (every try) and 1.10.1 (one
    try in four), checked with pydicom's JPEG 2000 files; 1.13.0 with sid's GDCM transcodes."""
    if any_tier == "1.13":
        return request.getfixturevalue("server_113")
    return make_server("gdcm" + any_tier.replace(".", ""), tier=any_tier, plugins=_RIG_PLUGINS)


@pytest.fixture(scope="session")
def make_server():
    """Start an extra server of the host's Orthanc: ``make_server(name, config=..., ...)``."""
    def make(name, **options):
        server = orthanc_rig.Server(name, **options)
        _start_all([server])
        return server
    return make


@pytest.fixture
def count_requests(monkeypatch):
    """Every HTTP request orthanc_fn sends during the test, as ``(method, url, options)``.

    A counter, not a mock: each request still goes to the real server. Clear the list to
    count from a given point.
    """
    seen = []
    real = orthanc_fn._POOL.request

    def counting(method, url, *args, **options):
        seen.append((method, url, options))
        return real(method, url, *args, **options)

    monkeypatch.setattr(orthanc_fn._POOL, "request", counting)
    return seen


@pytest.fixture
def proxy_standin():
    """A stand-in for what cannot run here, a proxy in front of Orthanc (an SSO login page, a
    wrong route, a cut connection): a real HTTP server on loopback, not a mock of orthanc_fn.

    Set ``standin.answer = (status, headers, body)``; ``standin.sent`` cuts the body after so
    many bytes (the connection is then closed), ``standin.delay`` waits before answering.
    ``standin.conn`` is a ``Connection`` to it; ``standin.requests`` lists ``(method, path)``.
    """
    import http.server
    import time

    class Handler(http.server.BaseHTTPRequestHandler):
        def answer(self):
            standin.requests.append((self.command, self.path))
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            time.sleep(standin.delay)
            status, headers, body = standin.answer
            self.send_response(status)
            for name, value in {"Content-Length": str(len(body)), **headers}.items():
                self.send_header(name, value)
            self.send_header("Connection", "close")
            self.close_connection = True
            try:
                self.end_headers()
                self.wfile.write(body[:standin.sent])
                self.wfile.flush()
            except OSError:  # the client gave up (a timeout test)
                pass

        do_GET = do_POST = do_PUT = do_DELETE = answer

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True

    class Standin:
        answer = (200, {"Content-Type": "application/json"}, b"{}")
        sent = None
        delay = 0.0
        requests = []
        conn = orthanc_fn.Connection(f"http://127.0.0.1:{server.server_address[1]}",
                                     auth=("user", "pw"))

    standin = Standin()
    standin.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield standin
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def conn_rev(make_server, any_tier):
    """A server of its own on each tier (tests may change its settings) that checks
    revisions."""
    return make_server("rev" + any_tier.replace(".", ""), tier=any_tier,
                       config={"CheckRevisions": True}).conn


class UploadedStudy(NamedTuple):
    """What ``upload_study`` stored: Orthanc ids (series sorted), and the StudyInstanceUID."""
    id: str
    uid: str
    patient_id: str
    series_ids: list
    instances_ids: list


@pytest.fixture(scope="session")
def upload_study():
    """``upload_study(conn, series=1, instances=2, tags=None, **options)``: store a new study.

    The files come from ``orthanc_fn_helpers.generate_test_study`` (8 x 8 images unless
    ``width``/``height`` say otherwise; ``tags`` and ``modality`` go to it); one request per
    file, and one to read the study. Returns an ``UploadedStudy``.
    """
    def upload(conn, series=1, instances=2, tags=None, **options):
        options = {"width": 8, "height": 8, **options}
        files = orthanc_fn_helpers.generate_test_study(series, instances, tags, **options)
        ids = [i for data in files for i in orthanc_fn.upload(conn, data)]
        study = orthanc_fn._get(conn, f"/instances/{ids[0]}/study")
        return UploadedStudy(study["ID"], study["MainDicomTags"]["StudyInstanceUID"],
                             study["ParentPatient"], sorted(study["Series"]), ids)
    return upload


_TIER_FIXTURES = {"v112": {"server_112", "conn_112"}, "v113": {"server_113", "conn_113"}}


def pytest_collection_modifyitems(config, items):
    """A test using the 1.12 (1.13) server must carry the v112 (v113) marker."""
    unmarked = [f"{item.nodeid} uses {sorted(fixtures & set(item.fixturenames))[0]} "
                f"without @pytest.mark.{marker}"
                for item in items for marker, fixtures in _TIER_FIXTURES.items()
                if fixtures & set(getattr(item, "fixturenames", ()))
                and item.get_closest_marker(marker) is None]
    if unmarked:
        raise pytest.UsageError("\n".join(unmarked))


def pytest_sessionfinish(session, exitstatus):
    for server in _started:
        server.remove()
    _started.clear()


def _tier_version(tier):
    """'Orthanc 1.12.7 (chroot /var/cache/...)' for a tier, without starting a server."""
    try:
        root = orthanc_rig.root_for(tier)
    except RuntimeError:
        return "missing (its Debian root is not built: see tests/rig/make_root.sh)"
    command = (["chroot", root] if root else []) + ["/usr/sbin/Orthanc", "--version"]
    words = subprocess.run(command, capture_output=True, text=True, timeout=30).stdout.split()
    version = words[1] if len(words) > 1 else "?"
    return f"Orthanc {version} ({'chroot ' + root if root else 'host'})"


class _OrthancVersionsReport:
    """Show which Orthanc versions the run used, in the header and (even with -q) at the end."""

    def __init__(self):
        self.used = []

    def pytest_report_header(self, config):
        return [f"tier {tier}: {_tier_version(tier)}" for tier in ("1.10", "1.12", "1.13")]

    @pytest.hookimpl(tryfirst=True)  # before pytest_sessionfinish above stops the servers
    def pytest_sessionfinish(self, session):
        for server in _started:
            try:
                version = orthanc_fn.get_system(server.conn)["Version"]
            except orthanc_fn.OrthancError:
                version = "stopped"
            self.used.append(f"{server.name} {version}")

    def pytest_terminal_summary(self, terminalreporter):
        if self.used:
            terminalreporter.write_line("Orthanc servers used: " + ", ".join(self.used))


def pytest_configure(config):
    config.pluginmanager.register(_OrthancVersionsReport(), "orthanc-fn-versions")
