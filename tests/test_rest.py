"""Any route with the same transport: rest_get / rest_post / rest_put / rest_delete.

The plugin routes come from a Python plugin of this file's own (Orthanc 1.10 with Debian 12's
Python plugin 4.0): ``/fn-test/echo`` answers what it received, ``/fn-test/slow`` counts its
calls and answers after 3 s (longer than the client's timeout), ``/fn-test/teapot`` answers
400 with a JSON body, ``/fn-test/text`` a plain-text answer.
"""
import json
import os

import pytest

import orthanc_fn as o
import orthanc_fn_helpers as h
import orthanc_rig

PLUGIN = '''\
import json
import threading
import time

import orthanc

calls = {}
lock = threading.Lock()


def echo(output, uri, **request):
    body = request.get("body") or b""
    answer = {"method": request["method"], "get": request.get("get", {}),
              "body": body.decode("utf-8", "replace"),
              "content_type": request.get("headers", {}).get("content-type")}
    output.AnswerBuffer(json.dumps(answer), "application/json")


def slow(output, uri, **request):
    with lock:
        key = request["method"]
        calls[key] = calls.get(key, 0) + 1
    time.sleep(3)
    output.AnswerBuffer(json.dumps(calls), "application/json")


def count(output, uri, **request):
    output.AnswerBuffer(json.dumps(calls), "application/json")


def teapot(output, uri, **request):
    body = json.dumps({"Message": "short and stout", "Details": "tip me"})
    output.SendHttpStatus(400, body, len(body))


def text(output, uri, **request):
    output.AnswerBuffer("plain words", "text/plain")


orthanc.RegisterRestCallback("/fn-test/echo", echo)
orthanc.RegisterRestCallback("/fn-test/slow", slow)
orthanc.RegisterRestCallback("/fn-test/count", count)
orthanc.RegisterRestCallback("/fn-test/teapot", teapot)
orthanc.RegisterRestCallback("/fn-test/text", text)
'''


@pytest.fixture(scope="module")
def plugin_conn():
    """An Orthanc 1.10 running the plugin above; removed after the module."""
    server = orthanc_rig.Server("rest-plugin", plugins=("libOrthancPython.so",),
                                config={"ExecuteLuaEnabled": True})
    path = os.path.join(server.dir, "plugin.py")
    with open(path, "w") as f:
        f.write(PLUGIN)
    server.config["PythonScript"] = path  # Debian 12's Python plugin 4.0
    server.start()
    yield server.conn
    server.remove()


# ---- plugin routes

def test_rest_get_reaches_a_plugin_route_with_its_query_arguments(plugin_conn):
    answer = o.rest_get(plugin_conn, "/fn-test/echo", query={"a": "1", "b": "two"})
    assert answer["method"] == "GET"
    assert answer["get"] == {"a": "1", "b": "two"}


def test_rest_post_sends_json_body_as_json(plugin_conn):
    answer = o.rest_post(plugin_conn, "/fn-test/echo", {"Level": "Study", "n": [1, 2]})
    assert answer["method"] == "POST"
    assert json.loads(answer["body"]) == {"Level": "Study", "n": [1, 2]}
    assert answer["content_type"] == "application/json"


def test_rest_put_sends_raw_bytes_with_the_given_content_type(plugin_conn):
    answer = o.rest_put(plugin_conn, "/fn-test/echo", body=b"raw bytes",
                        headers={"Content-Type": "text/plain"})
    assert answer["method"] == "PUT"
    assert answer["body"] == "raw bytes"
    assert answer["content_type"] == "text/plain"


def test_rest_delete_reaches_a_plugin_route(plugin_conn):
    assert o.rest_delete(plugin_conn, "/fn-test/echo")["method"] == "DELETE"


def test_rest_get_returns_a_text_answer_as_str_and_bytes_with_raw(plugin_conn):
    assert o.rest_get(plugin_conn, "/fn-test/text") == "plain words"
    assert o.rest_get(plugin_conn, "/fn-test/text", raw=True) == b"plain words"


def test_a_plugin_error_raises_http_error_carrying_its_status_and_json_body(plugin_conn):
    with pytest.raises(o.HttpError) as info:
        o.rest_get(plugin_conn, "/fn-test/teapot")
    assert info.value.status == 400
    assert info.value.orthanc == {"Message": "short and stout", "Details": "tip me"}
    assert "short and stout; tip me" in str(info.value)


def test_rest_post_that_times_out_is_sent_once_and_raises_orthanc_timeout(plugin_conn):
    before = o.rest_get(plugin_conn, "/fn-test/count").get("POST", 0)
    with pytest.raises(o.OrthancTimeout):
        o.rest_post(plugin_conn, "/fn-test/slow", {}, timeout=1)
    assert h.wait_until(
        lambda: o.rest_get(plugin_conn, "/fn-test/count").get("POST", 0) == before + 1, 10)
    assert o.rest_get(plugin_conn, "/fn-test/count").get("POST", 0) == before + 1


def test_rest_get_that_times_out_is_retried_like_every_get(plugin_conn):
    before = o.rest_get(plugin_conn, "/fn-test/count").get("GET", 0)
    with pytest.raises(o.OrthancTimeout):
        o.rest_get(plugin_conn, "/fn-test/slow", timeout=1)
    # the transport's policy: two more reads after a read timeout, for idempotent methods
    assert h.wait_until(
        lambda: o.rest_get(plugin_conn, "/fn-test/count").get("GET", 0) == before + 3, 15)


# ---- core routes

def test_rest_get_of_a_core_route_answers_as_the_wrapped_function(conn_a):
    assert o.rest_get(conn_a, "/system")["Version"] == o.get_system(conn_a)["Version"]


def test_rest_get_with_raw_returns_the_bytes_of_a_file(conn_a):
    instance_id = o.upload(conn_a, h.generate_test_dicom_file(8, 8))[0]
    assert o.rest_get(conn_a, f"/instances/{instance_id}/file", raw=True) == \
        o.get_file(conn_a, instance_id)


def test_rest_put_and_rest_delete_set_and_remove_a_metadata(conn_a):
    instance_id = o.upload(conn_a, h.generate_test_dicom_file(8, 8))[0]
    path = f"/instances/{instance_id}/metadata/1030"
    o.rest_put(conn_a, path, body=b"written raw")
    assert o.get_string_metadata(conn_a, o.INSTANCES, instance_id, 1030) == "written raw"
    o.rest_delete(conn_a, path)
    assert not o.has_metadata(conn_a, o.INSTANCES, instance_id, 1030)


def test_rest_post_to_a_core_route_returns_its_json(conn_a):
    instance_id = o.upload(conn_a, h.generate_test_dicom_file(8, 8))[0]
    found = o.rest_post(conn_a, "/tools/find",
                        {"Level": "Instance", "Query": {}, "Expand": False})
    assert instance_id in found


def test_rest_get_of_an_unknown_route_raises_not_found(conn_a):
    with pytest.raises(o.NotFound) as info:
        o.rest_get(conn_a, "/no/such/route")
    assert info.value.url == conn_a.url + "/no/such/route"


def test_a_rejected_rest_post_raises_http_error_with_orthancs_message(conn_a):
    with pytest.raises(o.HttpError) as info:
        o.rest_post(conn_a, "/tools/find", body=b"{not json", headers={})
    assert info.value.status == 400
    assert isinstance(info.value.orthanc, dict)


def test_rest_get_errors_never_show_the_password(server_a):
    url = server_a.url.replace("http://", f"http://{orthanc_rig.USER}:{orthanc_rig.PASSWORD}@")
    conn = o.Connection(url)
    with pytest.raises(o.NotFound) as info:
        o.rest_get(conn, "/no/such/route")
    assert orthanc_rig.PASSWORD not in str(info.value) + repr(info.value) + info.value.url


# ---- refused paths

@pytest.mark.parametrize("path", [
    "http://127.0.0.1:9/system", "https://example.org/", "system", "", "//example.org/x",
    "/system extra", "/system\n", None, b"/system"])
def test_a_path_that_is_not_relative_to_the_connection_is_refused_before_any_request(
        conn_a, count_requests, path):
    for call in (o.rest_get, o.rest_post, o.rest_put, o.rest_delete):
        with pytest.raises(o.OrthancValueError):
            call(conn_a, path)
    assert count_requests == []


def test_query_arguments_in_both_path_and_query_are_refused(conn_a, count_requests):
    with pytest.raises(o.OrthancValueError):
        o.rest_get(conn_a, "/changes?limit=1", query={"since": 0})
    assert count_requests == []


def test_query_arguments_in_the_path_are_sent(conn_a):
    o.upload(conn_a, h.generate_test_dicom_file(8, 8))
    assert len(o.rest_get(conn_a, "/changes?limit=1&since=0")["Changes"]) == 1


# ---- Lua

def test_execute_lua_script_returns_what_the_script_printed(plugin_conn):
    assert o.execute_lua_script(plugin_conn, 'print("hello"); print(6 * 7)') == "hello\n42\n"


def test_execute_lua_script_acts_on_the_server(plugin_conn):
    instance_id = o.upload(plugin_conn, h.generate_test_dicom_file(8, 8))[0]
    script = f'RestApiPut("/instances/{instance_id}/metadata/1031", "from lua")'
    o.execute_lua_script(plugin_conn, script)
    assert o.get_string_metadata(plugin_conn, o.INSTANCES, instance_id, 1031) == "from lua"


def test_a_lua_error_raises_http_error_with_orthancs_lua_status(plugin_conn):
    with pytest.raises(o.HttpError) as info:
        o.execute_lua_script(plugin_conn, "this is not lua")
    assert info.value.status == 500
    assert info.value.orthanc["OrthancStatus"] == 2031


def test_execute_lua_script_on_a_server_without_lua_names_the_option(conn_a):
    with pytest.raises(o.NotAuthorized) as info:
        o.execute_lua_script(conn_a, "print(1)")
    assert info.value.status == 403
    assert '"ExecuteLuaEnabled": true' in str(info.value)
