"""Command line: `python -m orthanc_fn ...` driven as a subprocess against the real servers."""
import json
import os
import pty
import shutil
import subprocess
import sys
import uuid
import zipfile

import pytest

import orthanc_fn as o
import orthanc_fn_helpers as h
import orthanc_rig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMANDS = ["alive", "system", "stats", "upload", "find", "download", "daily-stats",
            "anonymize", "send"]


def _env(conn=None, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORTHANC_")}
    if conn is not None:
        env.update(ORTHANC_URL=conn.url, ORTHANC_USER=conn.auth[0],
                   ORTHANC_PASSWORD=conn.auth[1])
    env.update(extra)
    return env


def cli(*args, conn=None, env=None, stderr=subprocess.PIPE, timeout=120):
    """Run `python -m orthanc_fn ARGS` with the server and credentials in the environment."""
    return subprocess.run([sys.executable, "-m", "orthanc_fn", *args], cwd=ROOT,
                          env=env if env is not None else _env(conn), stdout=subprocess.PIPE,
                          stderr=stderr, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def _study_folder(tmp_path, series=2, instances=3, **tags):
    """Write one generated study into a folder; return (folder, PatientName)."""
    name = "CLI^" + uuid.uuid4().hex[:8].upper()
    folder = tmp_path / "dicom"
    folder.mkdir(exist_ok=True)
    for i, data in enumerate(h.generate_test_study(series, instances,
                                                   dict({"PatientName": name}, **tags))):
        (folder / f"{name[4:]}-{i}.dcm").write_bytes(data)
    return folder, name


def _uploaded_study(upload_study, conn, **tags):
    """Upload a study of 2 series x 3 instances, with a new PatientName; return (id, name)."""
    name = "CLI^" + uuid.uuid4().hex[:8].upper()
    return upload_study(conn, 2, 3, {"PatientName": name, **tags}).id, name


def _one_error_line(out):
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert "Traceback" not in out.stderr
    return lines[0]


@pytest.mark.parametrize("command", [None] + COMMANDS)
def test_help_works_for_the_program_and_every_command(command):
    out = cli(*([command] if command else []), "--help", env=_env())
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: orthanc_fn")
    assert "--url" in out.stdout


def test_a_usage_error_exits_with_status_2():
    out = cli("find", "studyx", env=_env())
    assert out.returncode == 2
    assert "invalid level 'studyx'" in out.stderr


def test_no_command_is_a_usage_error():
    out = cli(env=_env())
    assert out.returncode == 2
    assert "COMMAND" in out.stderr


def test_a_query_term_without_equals_sign_is_a_usage_error():
    out = cli("find", "studies", "PatientName", env=_env())
    assert out.returncode == 2
    assert "KEY=VALUE" in out.stderr


def test_system_prints_the_servers_system_as_one_json_document(conn_a):
    out = cli("system", conn=conn_a)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["DicomAet"] == "A"


def test_stats_prints_the_statistics_as_json(conn_a):
    out = cli("stats", conn=conn_a)
    assert out.returncode == 0, out.stderr
    assert "CountStudies" in json.loads(out.stdout)


def test_url_option_overrides_orthanc_url_before_or_after_the_command(conn_a, conn_b):
    env = _env(conn_b)
    before = cli("--url", conn_a.url, "system", env=env)
    after = cli("system", "--url", conn_a.url, env=env)
    assert json.loads(before.stdout)["DicomAet"] == json.loads(after.stdout)["DicomAet"] == "A"
    assert json.loads(cli("system", env=env).stdout)["DicomAet"] == "B"


def test_alive_exits_0_when_the_server_answers_and_1_when_it_does_not(conn_a):
    assert cli("alive", conn=conn_a).returncode == 0
    down = cli("alive", "--url", f"http://127.0.0.1:{orthanc_rig.free_port()}", conn=conn_a)
    assert down.returncode == 1
    assert json.loads(down.stdout) is False


def test_a_closed_port_fails_with_one_line_naming_the_url_and_status_1():
    url = f"http://127.0.0.1:{orthanc_rig.free_port()}"
    out = cli("system", env=_env(ORTHANC_URL=url))
    assert out.returncode == 1
    line = _one_error_line(out)
    assert line.startswith("orthanc_fn system: ") and url + "/system" in line
    assert out.stdout == ""


def test_a_url_without_scheme_fails_with_one_line_and_status_1():
    out = cli("stats", "--url", "localhost:8042", env=_env())
    assert out.returncode == 1
    assert "http://" in _one_error_line(out)


def test_a_wrong_password_fails_with_one_line_that_never_shows_a_password(conn_a):
    env = _env(conn_a, ORTHANC_PASSWORD="wrong-secret-4711")
    out = cli("stats", env=env)
    assert out.returncode == 1
    line = _one_error_line(out)
    assert "401" in line
    for text in (out.stdout, out.stderr):
        assert "wrong-secret-4711" not in text and orthanc_rig.PASSWORD not in text


def test_a_refused_token_fails_with_one_line_that_never_shows_the_token(conn_a):
    env = _env(ORTHANC_URL=conn_a.url, ORTHANC_TOKEN="token-secret-0815")
    out = cli("system", env=env)
    assert out.returncode == 1
    assert "token-secret-0815" not in out.stdout + out.stderr
    assert "401" in _one_error_line(out)


def test_debug_shows_the_traceback_of_an_error():
    url = f"http://127.0.0.1:{orthanc_rig.free_port()}"
    out = cli("--debug", "system", env=_env(ORTHANC_URL=url))
    assert out.returncode == 1
    assert "Traceback" in out.stderr and "OrthancConnectionError" in out.stderr


def test_the_file_alone_runs_as_a_script(tmp_path, conn_a):
    shutil.copy(o.__file__, tmp_path / "orthanc_fn.py")
    out = subprocess.run([sys.executable, "orthanc_fn.py", "system"], cwd=tmp_path,
                         env=_env(conn_a), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["DicomAet"] == "A"


def test_upload_stores_a_folder_and_prints_the_instance_ids(tmp_path, empty_a):
    folder, name = _study_folder(tmp_path, series=2, instances=3)
    out = cli("upload", str(folder), "-j", "2", conn=empty_a)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert len(result["instances_ids"]) == 6 and result["errors"] == []
    assert sorted(result["instances_ids"]) == sorted(o.get_all_ids(empty_a, o.INSTANCES))


def test_upload_accepts_files_and_folders_together(tmp_path, empty_a):
    folder, _ = _study_folder(tmp_path, series=1, instances=2)
    single = tmp_path / "single.dcm"
    single.write_bytes(h.generate_test_dicom_file(16, 16))
    out = cli("upload", "-q", str(single), str(folder), conn=empty_a)
    assert out.returncode == 0, out.stderr
    assert len(json.loads(out.stdout)["instances_ids"]) == 3
    assert len(o.get_all_ids(empty_a, o.INSTANCES)) == 3


def test_upload_of_a_missing_path_fails_with_one_line_naming_it(tmp_path, conn_a):
    out = cli("upload", str(tmp_path / "nowhere"), conn=conn_a)
    assert out.returncode == 1
    assert "nowhere" in _one_error_line(out)


def test_upload_prints_plain_progress_lines_when_stderr_is_not_a_terminal(tmp_path, conn_a):
    folder, _ = _study_folder(tmp_path, series=1, instances=4)
    out = cli("upload", str(folder), conn=conn_a)
    assert out.returncode == 0, out.stderr
    assert f"upload {folder}: 4/4  100%" in out.stderr
    assert "\r" not in out.stderr and "\x1b" not in out.stderr


def test_upload_draws_a_progress_bar_with_rate_when_stderr_is_a_terminal(tmp_path, conn_a):
    folder, _ = _study_folder(tmp_path, series=1, instances=4)
    master, slave = pty.openpty()
    try:
        out = cli("upload", str(folder), conn=conn_a, stderr=slave)
        os.close(slave)
        slave = None
        shown = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the terminal closed: everything was read
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(master)
        if slave is not None:
            os.close(slave)
    assert out.returncode == 0
    text = shown.decode()
    assert "\r" in text and "[####################]" in text and "4/4" in text
    assert "/s" in text


def test_quiet_prints_nothing_on_stderr(tmp_path, conn_a):
    folder, _ = _study_folder(tmp_path, series=1, instances=2)
    out = cli("upload", "--quiet", str(folder), conn=conn_a)
    assert out.returncode == 0
    assert out.stderr == ""
    assert len(json.loads(out.stdout)["instances_ids"]) == 2


def test_upload_with_ignore_errors_lists_the_refused_file_and_stores_the_others(
        tmp_path, empty_a):
    folder, _ = _study_folder(tmp_path, series=1, instances=2)
    (folder / "notes.txt").write_text("not a DICOM file")
    out = cli("upload", "--ignore-errors", str(folder), conn=empty_a)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert len(result["instances_ids"]) == 2
    assert [e["path"] for e in result["errors"]] == [str(folder / "notes.txt")]


def test_upload_without_ignore_errors_fails_with_one_line_naming_the_bad_file(tmp_path, conn_a):
    folder, _ = _study_folder(tmp_path, series=1, instances=1)
    (folder / "notes.txt").write_text("not a DICOM file")
    out = cli("upload", "-q", str(folder), conn=conn_a)
    assert out.returncode == 1
    assert "notes.txt" in _one_error_line(out)


def test_find_prints_one_json_line_per_matching_study(tmp_path, conn_a, upload_study):
    study_id, name = _uploaded_study(upload_study, conn_a)
    out = cli("find", "studies", f"PatientName={name}", conn=conn_a)
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert [s["ID"] for s in lines] == [study_id]
    assert lines[0]["PatientMainDicomTags"]["PatientName"] == name


def test_find_with_ids_and_limit_prints_at_most_limit_ids(tmp_path, conn_a, upload_study):
    _, name = _uploaded_study(upload_study, conn_a)
    out = cli("find", "instances", f"PatientName={name}", "--ids", "--limit", "4", conn=conn_a)
    assert out.returncode == 0, out.stderr
    ids = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(ids) == 4 and all(isinstance(i, str) for i in ids)


def test_download_writes_a_zip_holding_every_instance_of_the_study(tmp_path, conn_a, upload_study):
    study_id, _ = _uploaded_study(upload_study, conn_a)
    dest = tmp_path / "study.zip"
    out = cli("download", "studies", study_id, str(dest), conn=conn_a)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"path": str(dest), "size": dest.stat().st_size}
    with zipfile.ZipFile(dest) as archive:
        assert len([n for n in archive.namelist() if not n.endswith("/")]) == 6
    assert f"download: {round(dest.stat().st_size / 1e3)} kB" in out.stderr and "B/s" in out.stderr


def test_download_of_an_unknown_study_fails_with_one_line_and_writes_nothing(tmp_path, conn_a):
    dest = tmp_path / "none.zip"
    out = cli("download", "studies", "0" * 8 + "-unknown", str(dest), conn=conn_a)
    assert out.returncode == 1
    assert "404" in _one_error_line(out)
    assert not dest.exists()


def test_daily_stats_counts_the_studies_of_each_day_in_the_range(tmp_path, empty_a, upload_study):
    _uploaded_study(upload_study, empty_a, StudyDate="20260105")
    out = cli("daily-stats", "studies", "--from", "2026-01-04", "--to", "2026-01-06",
              conn=empty_a)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [{"date": "2026-01-04", "count": 0},
                                      {"date": "2026-01-05", "count": 1},
                                      {"date": "2026-01-06", "count": 0}]


def test_daily_stats_table_prints_one_line_per_day(tmp_path, empty_a, upload_study):
    _uploaded_study(upload_study, empty_a, StudyDate="20260105")
    out = cli("daily-stats", "studies", "--from", "2026-01-05", "--to", "2026-01-06",
              "--table", conn=empty_a)
    assert out.returncode == 0, out.stderr
    assert [line.split() for line in out.stdout.splitlines()][-2:] == [
        ["2026-01-05", "1"], ["2026-01-06", "0"]]


def test_anonymize_prints_the_new_id_and_applies_keep_and_replace(tmp_path, conn_a, upload_study):
    study_id, name = _uploaded_study(upload_study, conn_a, StudyDescription="CLI-KEEP")
    out = cli("anonymize", "studies", study_id, "--keep", "StudyDescription",
              "--replace", "PatientName=ANON^CLI", conn=conn_a)
    assert out.returncode == 0, out.stderr
    new_id = json.loads(out.stdout)["ID"]
    info = o.get_info(conn_a, o.STUDIES, new_id)
    assert new_id != study_id
    assert info["PatientMainDicomTags"]["PatientName"] == "ANON^CLI"
    assert info["MainDicomTags"]["StudyDescription"] == "CLI-KEEP"
    assert "anonymize: 100/100  100%" in out.stderr  # the job's progress, final line


def test_anonymize_of_an_unknown_study_fails_with_one_line(conn_a):
    out = cli("anonymize", "studies", "0" * 8 + "-unknown", conn=conn_a)
    assert out.returncode == 1
    assert "404" in _one_error_line(out)


def test_send_to_a_modality_stores_the_study_on_the_other_server(tmp_path, conn_a, empty_b,
                                                                 upload_study):
    study_id, name = _uploaded_study(upload_study, conn_a)
    out = cli("send", "--modality", "b", study_id, conn=conn_a)
    assert out.returncode == 0, out.stderr
    assert o.find(empty_b, o.STUDIES, {"PatientName": name}, expand=False)


def test_send_to_a_peer_stores_the_study_on_the_other_server(tmp_path, conn_a, empty_b,
                                                             upload_study):
    study_id, name = _uploaded_study(upload_study, conn_a)
    out = cli("send", "--peer", "b", study_id, conn=conn_a)
    assert out.returncode == 0, out.stderr
    assert o.find(empty_b, o.STUDIES, {"PatientName": name}, expand=False)


def test_send_to_a_peer_gives_up_after_its_timeout(conn_a, upload_study):
    from silent_server import SilentServer
    study_id, _ = _uploaded_study(upload_study, conn_a)
    name = "silent-" + uuid.uuid4().hex[:6]
    with SilentServer() as silent:  # a peer that accepts and never answers
        o.configure_peer(conn_a, name, silent.url)
        try:
            out = cli("send", "--peer", name, study_id, "--timeout", "1", conn=conn_a)
        finally:
            o.delete_peer(conn_a, name)
    assert out.returncode == 1
    assert "after 1.0 s" in _one_error_line(out)


def test_send_to_an_unknown_modality_fails_with_one_line(conn_a):
    out = cli("send", "--modality", "nowhere", "0" * 8, conn=conn_a)
    assert out.returncode == 1
    assert "nowhere" in _one_error_line(out)
