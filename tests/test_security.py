"""Security against real Orthanc servers: TLS verification, secrets, ids that could escape.

TLS: Debian's Orthanc cannot serve HTTPS itself here. With ``SslEnabled`` both 1.10.1
(Debian 12) and 1.12.7 (Debian 13) start, then crash (SIGSEGV) on the first HTTPS connection:
their libcivetweb1 1.15 looks up ``SSL_get_peer_certificate``, which OpenSSL 3 no longer
exports, and calls the resulting NULL pointer (checked with gdb and ``nm -D libssl.so.3``).
So the TLS tests put the real server A behind a TLS-terminating reverse proxy of their own
(the deployment the Orthanc Book recommends anyway), with a self-signed certificate made by
``openssl``. What is tested is the client side: verification, the error, SSL_CERT_FILE.
"""
import base64
import http.server
import logging
import os
import select
import socket
import ssl
import subprocess
import sys
import threading
import traceback

import pytest

import orthanc_fn as o
import orthanc_fn_helpers as h
import orthanc_rig
from silent_server import SilentServer


# ---- TLS ----

class TlsProxy:
    """Accept TLS on a loopback port and relay the plain bytes to ``backend_port``."""

    def __init__(self, certificate, key, backend_port):
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(certificate, key)
        self.backend_port = backend_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stopped.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                continue
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client):
        try:
            client.settimeout(10)
            tls = self.context.wrap_socket(client, server_side=True)
        except (OSError, ssl.SSLError):  # the client refused our certificate: expected
            client.close()
            return
        backend = socket.create_connection(("127.0.0.1", self.backend_port))
        try:
            while not self.stopped.is_set():
                if not tls.pending():
                    readable, _, _ = select.select([tls, backend], [], [], 0.5)
                else:
                    readable = [tls]
                for source, target in ((tls, backend), (backend, tls)):
                    if source in readable:
                        data = source.recv(65536)
                        if not data:
                            return
                        target.sendall(data)
        except OSError:
            return
        finally:
            backend.close()
            tls.close()

    def stop(self):
        self.stopped.set()
        self.listener.close()
        self.thread.join(5)


@pytest.fixture(scope="module")
def tls(server_a, tmp_path_factory):
    """``(https_url, ca_file)``: server A behind TLS with a certificate for 127.0.0.1 only."""
    folder = tmp_path_factory.mktemp("tls")
    key, certificate = folder / "key.pem", folder / "certificate.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", str(key), "-out", str(certificate), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60)
    proxy = TlsProxy(str(certificate), str(key), server_a.http_port)
    yield f"https://127.0.0.1:{proxy.port}", str(certificate)
    proxy.stop()


@pytest.fixture
def no_trusted_ca(monkeypatch):
    """No private CA trusted, and no pooled socket left from a test that trusted one."""
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    o._POOL.clear()


def test_tls_refuses_a_self_signed_certificate_by_default_with_a_clear_error(tls, no_trusted_ca):
    url, _ = tls
    conn = o.Connection(url, auth=(orthanc_rig.USER, orthanc_rig.PASSWORD))
    with pytest.raises(o.OrthancConnectionError) as info:
        o.get_system(conn)
    message = str(info.value)
    assert message.startswith(f"GET {url}/system: TLS failed")
    assert "certificate verify failed" in message and "SSL_CERT_FILE" in message
    assert "\n" not in message


def test_tls_works_once_the_ca_is_trusted_through_ssl_cert_file(tls, monkeypatch, conn_a):
    url, ca_file = tls
    monkeypatch.setenv("SSL_CERT_FILE", ca_file)
    conn = o.Connection(url, auth=(orthanc_rig.USER, orthanc_rig.PASSWORD))
    assert o.get_system(conn)["DicomAet"] == "A"
    instance_id = o.upload(conn, h.generate_test_dicom_file(16, 16))[0]
    assert o.get_info(conn, o.INSTANCES, instance_id)["ID"] == instance_id
    assert o.get_info(conn_a, o.INSTANCES, instance_id)["ID"] == instance_id  # the same server


def test_ssl_cert_file_is_honoured_by_the_debian_urllib3_orthanc_plugins_use(tls):
    """Debian's python3-urllib3 1.26 pins its own CA bundle unless the pool says otherwise."""
    url, ca_file = tls
    script = ("import sys; sys.path.insert(0, sys.argv[1]); import orthanc_fn as o, urllib3; "
              "c = o.Connection(sys.argv[2], auth=(sys.argv[3], sys.argv[4])); "
              "print(urllib3.__version__, o.get_system(c)['DicomAet'])")
    command = ["/usr/bin/python3", "-c", script, os.path.dirname(o.__file__), url,
               orthanc_rig.USER, orthanc_rig.PASSWORD]
    clean = {k: v for k, v in os.environ.items()
             if k not in ("SSL_CERT_FILE", "SSL_CERT_DIR", "PYTHONPATH")}
    refused = subprocess.run(command, env=clean, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "certificate verify failed" in refused.stderr
    trusted = subprocess.run(command, env=dict(clean, SSL_CERT_FILE=ca_file),
                             capture_output=True, text=True, timeout=60)
    assert trusted.returncode == 0, trusted.stderr
    assert trusted.stdout.split()[1] == "A"


def test_tls_checks_the_host_name_even_when_the_ca_is_trusted(tls, monkeypatch):
    url, ca_file = tls
    monkeypatch.setenv("SSL_CERT_FILE", ca_file)
    conn = o.Connection(url.replace("127.0.0.1", "localhost"))  # the certificate names the IP
    with pytest.raises(o.OrthancConnectionError) as info:
        o.get_system(conn)
    assert "TLS failed" in str(info.value)


# ---- Secrets ----

TOKEN = "tok-" + orthanc_rig.PASSWORD[::-1]


def _secrets():
    """Every spelling of the secrets under test: plain, and inside a Basic header."""
    basic = base64.b64encode(f"{orthanc_rig.USER}:{orthanc_rig.PASSWORD}".encode()).decode()
    return [orthanc_rig.PASSWORD, TOKEN, basic, TOKEN[4:]]


def _assert_no_secret(text, where):
    for secret in _secrets():
        assert secret not in text, f"a secret leaked into {where}: {text!r}"


def _error_texts(error):
    return [str(error), repr(error),
            "".join(traceback.format_exception(type(error), error, error.__traceback__)),
            repr(vars(error))]


def _failing_calls(conn_a, silent_url, tls_url):
    """Calls that fail in every way the transport knows, each with the real credentials."""
    user, password = orthanc_rig.USER, orthanc_rig.PASSWORD
    closed = f"http://127.0.0.1:{orthanc_rig.free_port()}"
    return {
        "wrong password": lambda: o.get_system(conn_a._replace(auth=(user, password + "x"))),
        "rejected token": lambda: o.get_system(o.Connection(conn_a.url, token=TOKEN)),
        "not found": lambda: o.get_info(conn_a, o.STUDIES, "no-such-study"),
        "bad request": lambda: o._post(conn_a, "/tools/find", {"Level": "Nope", "Query": {}}),
        "port closed": lambda: o.get_system(o.Connection(closed, auth=(user, password))),
        "credentials in the url": lambda: o.get_system(o.Connection(
            closed.replace("//", f"//{user}:{password}@"))),
        "unknown host": lambda: o.get_system(
            o.Connection(f"http://{user}:{password}@no-such-host.invalid")),
        "timeout": lambda: o._get(o.Connection(silent_url, token=TOKEN), "/system", timeout=0.5,
                                  retries=False),
        "tls refused": lambda: o.get_system(o.Connection(tls_url, auth=(user, password))),
        "url without scheme": lambda: o.Connection(f"{user}:{password}@localhost:8042"),
        "unencoded slash": lambda: o.Connection(f"http://{user}:{password}/x@localhost"),
    }


def test_secrets_never_appear_in_errors_tracebacks_or_debug_logs(
        conn_a, tls, caplog, no_trusted_ca):
    caplog.set_level(logging.DEBUG, logger="orthanc_fn")
    caplog.set_level(logging.DEBUG, logger="urllib3")
    with SilentServer() as silent:
        calls = _failing_calls(conn_a, silent.url, tls[0])
        for name, call in calls.items():
            try:
                call()
            except o.OrthancError as error:
                for text in _error_texts(error):
                    _assert_no_secret(text, name)
            else:
                pytest.fail(f"{name}: no error raised")
    o.upload(conn_a, h.generate_test_dicom_file(8, 8))  # a successful POST logs too
    o.get_system(conn_a)
    assert any(r.name.startswith("urllib3") for r in caplog.records)
    assert any(r.name == "orthanc_fn" for r in caplog.records)
    for record in caplog.records:
        _assert_no_secret(record.getMessage(), f"the log record {record.name}")
    _assert_no_secret(caplog.text, "the captured log")


def test_a_connection_shows_no_secret_in_repr_str_or_format():
    user, password = orthanc_rig.USER, orthanc_rig.PASSWORD
    for conn in (o.Connection("http://h", auth=(user, password)),
                 o.Connection(f"http://{user}:{password}@h:8042/"),
                 o.Connection("http://h", token=TOKEN),
                 o.Connection("http://h", token="Bearer " + TOKEN)):
        for text in (repr(conn), str(conn), f"{conn}", repr([conn]), repr({"c": conn})):
            _assert_no_secret(text, "a Connection's text")


def _cli(arguments, env):
    return subprocess.run([sys.executable, "-m", "orthanc_fn", *arguments], env=env,
                          capture_output=True, text=True, timeout=60,
                          cwd=os.path.dirname(o.__file__))


@pytest.mark.parametrize("url", [
    "http://alice:Zq9/xYw@host:8042", "http://alice:1234/xYw@host", "http://alice:Zq9#xYw@host",
    "http://alice:Zq9?xYw@host", "alice:Zq9xYw@host:8042", "ftp://alice:Zq9xYw@host"])
def test_a_url_with_a_password_that_would_be_misread_is_refused_without_showing_it(url):
    with pytest.raises(o.OrthancValueError) as info:
        o.Connection(url)
    for piece in ("Zq9", "xYw", "1234"):
        assert piece not in str(info.value)
    assert "host" in str(info.value)


def test_cli_output_never_shows_the_password_or_token(conn_a):
    user, password = orthanc_rig.USER, orthanc_rig.PASSWORD
    env = dict(os.environ, ORTHANC_URL=conn_a.url, ORTHANC_USER=user, ORTHANC_PASSWORD=password)
    for arguments in (["system"], ["stats"], ["find", "studies", "PatientID=nobody"]):
        out = _cli(arguments, env)
        assert out.returncode == 0, out.stderr
        _assert_no_secret(out.stdout + out.stderr, f"the output of {arguments}")
    for arguments, bad_env in (
            (["system"], dict(env, ORTHANC_PASSWORD=password + "x")),
            (["system"], dict(env, ORTHANC_TOKEN=TOKEN)),
            (["system"], dict(env, ORTHANC_URL="http://127.0.0.1:9")),
            (["--url", f"http://{user}:{password}@127.0.0.1:9", "system"], env),
            (["--url", f"{user}:{password}@127.0.0.1:9", "system"], env)):
        out = _cli(arguments, bad_env)
        assert out.returncode != 0 and out.stderr.strip().count("\n") == 0, out.stderr
        _assert_no_secret(out.stdout + out.stderr, f"the error of {arguments}")


def test_a_redirect_is_not_followed_so_credentials_never_reach_another_host():
    """A stand-in server answering 302 to another host (no Orthanc sends one by itself)."""
    with SilentServer() as elsewhere:
        class Redirect(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(302)
                self.send_header("Location", elsewhere.url + "/system")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        server = http.server.HTTPServer(("127.0.0.1", 0), Redirect)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            conn = o.Connection(f"http://127.0.0.1:{server.server_port}",
                                auth=(orthanc_rig.USER, orthanc_rig.PASSWORD))
            with pytest.raises(o.HttpError) as info:
                o.get_system(conn)
        finally:
            server.shutdown()
            server.server_close()
        assert info.value.status == 302
        assert elsewhere.requests == []


# ---- Ids that could reach another endpoint ----

MALFORMED_IDS = ["../system", "..", ".", "a/b", "x?y=1", "a#b", "%2e%2e", "a\\b", "", "a\nb"]


@pytest.mark.parametrize("bad", MALFORMED_IDS)
def test_a_malformed_id_is_refused_and_never_reaches_the_server(bad):
    with SilentServer() as silent:
        conn = o.Connection(silent.url)
        calls = [lambda: o.get_info(conn, o.STUDIES, bad),
                 lambda: o.delete(conn, o.INSTANCES, [bad]),
                 lambda: o.get_parent_id(conn, o.INSTANCES, bad, o.STUDIES),
                 lambda: o.get_children_ids(conn, o.PATIENTS, bad, o.INSTANCES),
                 lambda: o.get_job(conn, bad),
                 lambda: o.get_file(conn, bad),
                 lambda: o.get_tags(conn, bad),
                 lambda: o.set_string_metadata(conn, o.STUDIES, bad, "Comment", "x"),
                 lambda: o.get_string_metadata(conn, o.STUDIES, bad, "Comment"),
                 lambda: o.anonymize(conn, o.STUDIES, bad),
                 lambda: o.modality_echo(conn, bad)]
        for call in calls:
            with pytest.raises(o.OrthancValueError):
                call()
        assert silent.requests == []


def test_exists_is_false_for_a_malformed_id_without_any_request():
    with SilentServer() as silent:
        assert o.exists(o.Connection(silent.url), o.STUDIES, "../system") is False
        assert silent.requests == []


def test_no_code_path_turns_certificate_verification_off():
    with open(o.__file__) as f:
        source = f.read()
    for insecure in ("CERT_NONE", "cert_reqs", "assert_hostname", "check_hostname",
                     "disable_warnings", "_create_unverified_context"):
        assert insecure not in source
