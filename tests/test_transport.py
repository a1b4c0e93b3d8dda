"""Connection and transport: URLs, credentials, errors, retries, the vendored single file."""
import inspect
import os
import pickle
import shutil
import subprocess
import sys
import time
import traceback

import pytest
import urllib3

import orthanc_fn as o
import orthanc_fn_helpers as h
import orthanc_rig


def test_connection_drops_a_trailing_slash_and_keeps_a_path_prefix():
    conn = o.Connection("http://host:8042/orthanc/")
    assert conn.url == "http://host:8042/orthanc"


def test_connection_moves_credentials_from_the_url_into_auth():
    conn = o.Connection("https://alice:s%40cret@host/")
    assert conn.url == "https://host"
    assert conn.auth == ("alice", "s@cret")


def test_connection_prepends_bearer_to_a_bare_token_only():
    assert o.Connection("http://h", token="abc").token == "Bearer abc"
    assert o.Connection("http://h", token="Bearer abc").token == "Bearer abc"


def test_connection_repr_and_str_hide_the_password_and_token():
    conn = o.Connection("http://u:pw-one@h", token="tok-two")
    for text in (repr(conn), str(conn), repr([conn]), f"{conn}"):
        assert "pw-one" not in text and "tok-two" not in text
        assert "***" in text


@pytest.mark.parametrize("url", ["localhost:8042", "ftp://host", "//host:8042", "", "http://"])
def test_connection_refuses_a_url_without_http_scheme_before_any_request(url):
    with pytest.raises(o.OrthancValueError) as info:
        o.Connection(url)
    assert isinstance(info.value, ValueError)
    assert "http://" in str(info.value)


def test_connection_replace_validates_the_new_url_too():
    conn = o.Connection("http://h")
    with pytest.raises(o.OrthancValueError):
        conn._replace(url="h:8042")
    assert conn._replace(url="http://other/").url == "http://other"


def test_connection_pickles_and_compares_equal():
    conn = o.Connection("http://h", auth=("u", "p"), token="t")
    assert pickle.loads(pickle.dumps(conn)) == conn
    assert hash(conn) == hash(o.Connection("http://h", auth=("u", "p"), token="t"))


def _declared_fields(cls):
    return [p.name for p in inspect.signature(cls).parameters.values()
            if p.kind is p.KEYWORD_ONLY]


def test_every_exception_pickles_with_its_declared_fields():
    for name in o.__all__:
        cls = getattr(o, name)
        if isinstance(cls, type) and issubclass(cls, o.OrthancError):
            fields = {field: f"{field}-value" for field in _declared_fields(cls)}
            error = cls("message", **fields)
            copy = pickle.loads(pickle.dumps(error))
            assert type(copy) is cls and str(copy) == "message" and copy.args == ("message",)
            assert {field: getattr(copy, field) for field in fields} == fields


def test_every_exception_declares_its_fields_and_refuses_others():
    for name in o.__all__:
        cls = getattr(o, name)
        if isinstance(cls, type) and issubclass(cls, o.OrthancError):
            annotated = {n for k in cls.__mro__ for n in vars(k).get("__annotations__", ())}
            assert set(_declared_fields(cls)) == annotated, name
            with pytest.raises(TypeError):
                cls("message", **dict.fromkeys(_declared_fields(cls)), undeclared=1)


def _public_callables(module):
    """Every public function of ``module`` and the public methods of its public classes."""
    for name in module.__all__:
        value = getattr(module, name)
        if inspect.isfunction(value):
            yield name, value
        elif inspect.isclass(value) and value.__module__ == module.__name__:
            for attr, member in vars(value).items():
                if attr.startswith("_") and attr not in ("__init__", "__new__"):
                    continue
                member = member.fget if isinstance(member, property) else member
                member = getattr(member, "__func__", member)  # staticmethod, classmethod
                if inspect.isfunction(member) and member.__module__ == module.__name__:
                    yield f"{name}.{attr}", member  # not a NamedTuple's generated __new__


def test_every_public_function_and_method_has_parameter_and_return_annotations():
    missing = []
    for module in (o, h):
        for name, function in _public_callables(module):
            wanted = [p for p in inspect.signature(function).parameters if p not in ("self", "cls")]
            lacking = [p for p in wanted + ["return"] if p not in function.__annotations__]
            if lacking:
                missing.append(f"{module.__name__}.{name}: {', '.join(lacking)}")
    assert missing == []


def test_all_lists_exactly_the_public_names():
    public = {name for name, value in vars(o).items()
              if not name.startswith("_") and getattr(value, "__module__", None) == "orthanc_fn"}
    constants = {"PATIENTS", "STUDIES", "SERIES", "INSTANCES", "LEVELS", "FEATURES"}
    assert set(o.__all__) == public | constants
    assert len(o.__all__) == len(set(o.__all__))


def test_get_system_answers_with_the_server_version(conn_a):
    system = o.get_system(conn_a)
    assert system["DicomAet"] == "A"
    assert o.get_version(conn_a) == o._parse_version(system["Version"])


def test_a_path_prefix_is_kept_in_every_request(conn_a):
    with pytest.raises(o.NotFound) as info:
        o.get_system(conn_a._replace(url=conn_a.url + "/prefix/"))
    assert info.value.url == conn_a.url + "/prefix/system"


def test_a_wrong_password_raises_not_authorized_without_the_password(conn_a):
    bad = conn_a._replace(auth=(conn_a.auth[0], "wrong-secret-xyz"))
    with pytest.raises(o.NotAuthorized) as info:
        o.get_system(bad)
    text = str(info.value) + repr(info.value) + "".join(
        traceback.format_exception(info.type, info.value, info.tb))
    assert info.value.status == 401
    assert "wrong-secret-xyz" not in text and orthanc_rig.PASSWORD not in text
    assert "/system" in str(info.value)


def test_a_rejected_token_raises_not_authorized(conn_a):
    with pytest.raises(o.NotAuthorized) as info:
        o.get_system(o.Connection(conn_a.url, token="not-a-valid-token-123"))
    assert "not-a-valid-token-123" not in str(info.value) + repr(info.value)


def test_an_unknown_id_raises_not_found_naming_the_id(conn_a):
    with pytest.raises(o.NotFound) as info:
        o._get(conn_a, "/studies/" + o._segment("0" * 8 + "-unknown"))
    assert "0" * 8 + "-unknown" in str(info.value)
    assert info.value.status == 404 and info.value.method == "GET"


def test_orthancs_json_error_body_reaches_http_error_orthanc(conn_a):
    with pytest.raises(o.HttpError) as info:
        o._post(conn_a, "/tools/find", {"Level": "NoSuchLevel", "Query": {}})
    assert isinstance(info.value.orthanc, dict)
    assert info.value.orthanc["HttpStatus"] == info.value.status == 400
    assert info.value.orthanc["Message"] in str(info.value)


def test_a_server_that_is_down_raises_connection_error_within_the_connect_timeout():
    conn = o.Connection(f"http://127.0.0.1:{orthanc_rig.free_port()}")
    start = time.monotonic()
    with pytest.raises(o.OrthancConnectionError) as info:
        o.get_system(conn)
    assert time.monotonic() - start < 10
    assert isinstance(info.value, ConnectionError)
    assert "GET " + conn.url + "/system" in str(info.value)


def test_an_unknown_host_raises_connection_error():
    with pytest.raises(o.OrthancConnectionError):
        o.get_system(o.Connection("http://no-such-host.invalid:8042"))


def test_is_alive_is_true_for_a_running_server_and_false_otherwise(conn_a):
    assert o.is_alive(conn_a) is True
    assert o.is_alive(conn_a._replace(auth=("x", "y"))) is False
    assert o.is_alive(o.Connection(f"http://127.0.0.1:{orthanc_rig.free_port()}")) is False


LOGIN_PAGE = (200, {"Content-Type": "text/html; charset=utf-8"},
              b"<!DOCTYPE html>\n<html><title>Sign in - Hospital SSO</title></html>")


def test_a_2xx_answer_that_is_not_json_raises_unexpected_answer_showing_its_first_bytes(
        proxy_standin):
    proxy_standin.answer = LOGIN_PAGE
    with pytest.raises(o.UnexpectedAnswer) as info:
        o.get_system(proxy_standin.conn)
    assert "did not answer like Orthanc" in str(info.value) and "Sign in" in str(info.value)
    assert info.value.status == 200 and info.value.content_type.startswith("text/html")
    assert info.value.data.startswith(b"<!DOCTYPE html>")


def _streamed_items(conn, body, size=1 << 20):
    """The items ``_json_items`` reads from a streamed /tools/find answer, chunks of ``size``."""
    response = o._post(conn, "/tools/find", body, stream=True)
    try:
        return list(o._json_items(response, "POST", conn.url + "/tools/find", size))
    finally:
        response.release_conn()


def test_a_streamed_json_list_is_read_whole_wherever_the_chunks_cut_it(empty_a, upload_study):
    """Chunks of one byte cut every string, number and UTF-8 letter (a name outside ASCII)."""
    for name in ("Zo\u00eb^\u00c9lodie", "Plain^Name"):
        upload_study(empty_a, 1, 1, {"PatientName": name})
    body = {"Level": "Study", "Query": {}, "Expand": True}
    expected = o._post(empty_a, "/tools/find", body)
    assert len(expected) == 2
    for size in (1, 2, 3, 7, 64, 1 << 20):
        assert _streamed_items(empty_a, body, size) == expected
    assert _streamed_items(empty_a, dict(body, Query={"PatientName": "NOBODY"})) == []


@pytest.mark.parametrize("answer", [
    LOGIN_PAGE, (200, {"Content-Type": "application/json"}, b'[{"ID": "a"}, {"ID"'),
    (200, {"Content-Type": "application/json"}, b'{"ID": "a"}')])
def test_a_streamed_answer_that_is_no_whole_json_list_raises_unexpected_answer(
        proxy_standin, answer):
    proxy_standin.answer = answer
    with pytest.raises(o.UnexpectedAnswer) as info:
        _streamed_items(proxy_standin.conn, {})
    assert "not a whole JSON list" in str(info.value) and info.value.status == 200
    assert info.value.data and answer[2].endswith(info.value.data)  # where it went wrong



def test_orthancs_own_text_answers_are_returned_as_str(conn_a):
    uid = o._get(conn_a, "/tools/generate-uid", {"level": "study"})
    assert isinstance(uid, str) and uid.startswith("1.2.")


def test_is_alive_is_false_for_a_login_page_and_for_json_that_is_not_orthancs(proxy_standin):
    proxy_standin.answer = LOGIN_PAGE
    assert o.is_alive(proxy_standin.conn) is False
    proxy_standin.answer = (200, {"Content-Type": "application/json"}, b'{"status": "ok"}')
    assert o.is_alive(proxy_standin.conn) is False
    assert proxy_standin.requests == [("GET", "/system")] * 2


def test_a_body_cut_while_streamed_raises_connection_error_and_leaves_no_file(proxy_standin,
                                                                             tmp_path):
    proxy_standin.answer = (200, {"Content-Type": "application/dicom"}, b"x" * 100_000)
    proxy_standin.sent = 1000
    with pytest.raises(o.OrthancConnectionError) as info:
        o.download_file(proxy_standin.conn, "some-id", tmp_path / "f.dcm")
    assert "/instances/some-id/file" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_a_metadata_body_cut_while_read_raises_connection_error(proxy_standin):
    proxy_standin.answer = (200, {"ETag": '"3"'}, b"x" * 100_000)
    proxy_standin.sent = 1000
    with pytest.raises(o.OrthancConnectionError) as info:
        o.get_binary_metadata_with_revision(proxy_standin.conn, o.STUDIES, "s-id", 1025)
    assert "/studies/s-id/metadata/1025" in str(info.value)


def test_an_error_body_cut_while_streamed_raises_connection_error(proxy_standin, tmp_path):
    proxy_standin.answer = (404, {"Content-Type": "application/json"}, b"{" + b" " * 50_000)
    proxy_standin.sent = 100
    with pytest.raises(o.OrthancConnectionError):
        o.download_file(proxy_standin.conn, "some-id", tmp_path / "f.dcm")


def test_exists_refuses_an_invalid_level_before_any_request():
    with pytest.raises(o.OrthancValueError) as info:
        o.exists(o.Connection(f"http://127.0.0.1:{orthanc_rig.free_port()}"), "studys", "x")
    assert "'studys'" in str(info.value)


def test_a_bad_c_find_query_keyword_raises_http_error_not_bad_file_format(conn_a):
    with pytest.raises(o.HttpError) as info:
        o.modality_query(conn_a, "b", o.STUDIES, {"NoSuchKeyword": "x"})
    assert not isinstance(info.value, o.BadFileFormat)
    assert info.value.status == 400 and info.value.orthanc["OrthancStatus"] == 15


def test_wait_started_keeps_trying_until_its_timeout_then_gives_up(count_requests):
    start = time.monotonic()
    assert o.wait_started(o.Connection(f"http://127.0.0.1:{orthanc_rig.free_port()}"),
                          timeout=1.0) is False
    assert time.monotonic() - start >= 1.0  # a lower bound: load cannot make it flaky
    assert len(count_requests) >= 2  # it tried again, not once and out


@pytest.mark.parametrize("bad", ["a/b", "..", ".", "x?y=1", "", "a#b", "%2e%2e"])
def test_a_malformed_id_is_refused_before_any_request(bad):
    with pytest.raises(o.OrthancValueError):
        o._segment(bad)


def test_an_invalid_level_name_raises_a_value_error():
    with pytest.raises(o.OrthancValueError) as info:
        o._level("studys")
    assert "studies" in str(info.value)
    assert o._level("Study") == o.STUDIES == o._level("studies")


def test_the_retry_policy_never_retries_a_post_after_it_was_sent():
    assert o._RETRY_POST.read == 0
    assert "POST" not in o._RETRY_IDEMPOTENT.allowed_methods
    assert set(o._RETRY_IDEMPOTENT.status_forcelist) == {502, 503}


def _bare_python(tmp_path, with_urllib3):
    """A folder holding only a copy of orthanc_fn.py (and urllib3 when asked)."""
    shutil.copy(o.__file__, tmp_path / "orthanc_fn.py")
    if with_urllib3:
        shutil.copytree(os.path.dirname(urllib3.__file__), tmp_path / "urllib3")
    return [sys.executable, "-S", "-c"]


def test_the_file_alone_with_urllib3_imports_and_answers_get_system(tmp_path, conn_a):
    command = _bare_python(tmp_path, with_urllib3=True)
    script = ("import sys; sys.path[:0] = [sys.argv[1]]; import orthanc_fn as o; "
              "assert 'pydicom' not in sys.modules and 'numpy' not in sys.modules; "
              "c = o.Connection(sys.argv[2], auth=(sys.argv[3], sys.argv[4])); "
              "print(o.get_system(c)['DicomAet'])")
    out = subprocess.run(command + [script, str(tmp_path), conn_a.url, *conn_a.auth],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "A"


def test_importing_without_urllib3_says_how_to_install_it(tmp_path):
    command = _bare_python(tmp_path, with_urllib3=False)
    script = "import sys; sys.path[:0] = [sys.argv[1]]; import orthanc_fn"
    out = subprocess.run(command + [script, str(tmp_path)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode != 0
    assert "ImportError" in out.stderr and "python3-urllib3" in out.stderr
