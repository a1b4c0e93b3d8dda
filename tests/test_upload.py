"""Upload (files, folders, STOW-RS) and streamed downloads, on real servers."""
import io
import os
import zipfile

import pytest

import orthanc_fn as o
import orthanc_fn_helpers as h
import orthanc_rig


def _dicom(**tags):
    return h.generate_test_dicom_file(8, 8, tags or None)


def _zip(files):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for number, data in enumerate(files):
            archive.writestr(f"f{number}.dcm", data)
    return buffer.getvalue()


def _write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return str(path)


BAD_FILES = {
    "text": lambda: b"this is a text file, not DICOM\n",
    "empty": lambda: b"",
    "truncated_dicom": lambda: _dicom()[:-200],
    "corrupt_zip": lambda: _zip([_dicom(), _dicom()])[:300],
}


def _folder_with_bad_files(root, good=17, bad=3):
    """``good`` DICOM files and ``bad`` refused ones, spread over nested folders."""
    for number in range(good):
        _write(os.path.join(root, f"sub{number % 3}", f"good{number:02}.dcm"), _dicom())
    makers = list(BAD_FILES.values())
    for number in range(bad):
        _write(os.path.join(root, f"sub{number % 2}", f"bad{number}.dcm"), makers[number % 4]())
    return str(root)


def test_upload_file_returns_the_instance_id(conn_a, tmp_path):
    data = _dicom()
    [instance_id] = o.upload_file(conn_a, _write(tmp_path / "one.dcm", data))
    assert o.get_file(conn_a, instance_id) == data


def test_upload_file_of_a_zip_returns_every_instance_id(conn_a, tmp_path):
    files = [_dicom() for _ in range(3)]
    ids = o.upload_file(conn_a, _write(tmp_path / "set.zip", _zip(files)))
    assert len(set(ids)) == 3 and all(o.exists(conn_a, o.INSTANCES, i) for i in ids)


def test_uploading_a_stored_instance_again_is_success_with_the_same_id(conn_b):
    data = _dicom()
    assert o.upload(conn_b, data) == o.upload(conn_b, data)


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_upload_file_raises_bad_file_format_naming_the_file(conn_a, tmp_path, kind):
    path = _write(tmp_path / f"{kind}.dcm", BAD_FILES[kind]())
    with pytest.raises(o.BadFileFormat) as info:
        o.upload_file(conn_a, path)
    assert info.value.path == path and path in str(info.value)
    assert info.value.status == 400 and info.value.orthanc["OrthancStatus"] == 15


def test_upload_file_raises_file_not_found_for_a_missing_path(conn_a, tmp_path):
    with pytest.raises(FileNotFoundError):
        o.upload_file(conn_a, str(tmp_path / "missing.dcm"))


def test_upload_folder_raises_file_not_found_for_a_missing_folder(conn_a, tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        o.upload_folder(conn_a, tmp_path / "missing")
    assert "missing" in str(info.value)


def test_upload_folder_stores_17_good_files_and_lists_3_bad_ones_with_ignore_errors(
        empty_a, tmp_path):
    root = _folder_with_bad_files(tmp_path)
    result = o.upload_folder(empty_a, root, ignore_errors=True)
    assert isinstance(result, o.UploadResult)
    assert len(result.instances_ids) == 17 and len(set(result.instances_ids)) == 17
    assert sorted(os.path.basename(path) for path, _ in result.errors) == \
        ["bad0.dcm", "bad1.dcm", "bad2.dcm"]
    assert all("Bad file format" in reason for _, reason in result.errors)
    assert len(o.get_all_ids(empty_a, o.INSTANCES)) == 17


def test_upload_folder_without_ignore_errors_raises_after_the_uploads_in_flight(
        empty_a, tmp_path):
    for number in range(30):
        _write(tmp_path / f"f{number:02}.dcm", _dicom())
    bad = _write(tmp_path / "f10.dcm", b"not dicom")
    with pytest.raises(o.BadFileFormat) as info:
        o.upload_folder(empty_a, tmp_path, workers=4)
    assert info.value.path == bad and bad in str(info.value)
    stored = o.get_all_ids(empty_a, o.INSTANCES)
    # every upload that happened is reported, and none was still running after the raise
    assert sorted(info.value.instances_ids) == sorted(stored)
    assert 10 <= len(stored) < 29


def test_upload_folder_is_recursive_and_skips_dot_files_and_dot_folders(empty_a, tmp_path):
    _write(tmp_path / "a" / "b" / "c" / "deep.dcm", _dicom())
    _write(tmp_path / "top.dcm", _dicom())
    _write(tmp_path / ".hidden.dcm", _dicom())
    _write(tmp_path / ".git" / "inside.dcm", _dicom())
    result = o.upload_folder(empty_a, tmp_path)
    assert len(result.instances_ids) == 2 and result.errors == []


def test_upload_folder_reports_progress_up_to_the_total_from_the_calling_thread(
        conn_a, tmp_path):
    import threading
    for number in range(12):
        _write(tmp_path / f"f{number}.dcm", _dicom())
    calls = []
    o.upload_folder(conn_a, tmp_path, workers=3,
                    progress=lambda done, total: calls.append(
                        (done, total, threading.current_thread())))
    assert [(done, total) for done, total, _ in calls] == [(n, 12) for n in range(1, 13)]
    assert {thread for _, _, thread in calls} == {threading.current_thread()}


def test_upload_folder_reads_each_file_only_when_it_is_sent(conn_a, tmp_path):
    paths = [_write(tmp_path / f"f{number:02}.dcm", _dicom()) for number in range(8)]

    def spoil_the_last_file(done, total):  # after the first upload, long before the last
        if done == 1:
            _write(paths[-1], b"changed after the call started")

    result = o.upload_folder(conn_a, tmp_path, workers=1, ignore_errors=True,
                             progress=spoil_the_last_file)
    assert [path for path, _ in result.errors] == [paths[-1]]


def test_upload_folder_lists_a_file_that_cannot_be_read_with_ignore_errors(conn_a, tmp_path):
    _write(tmp_path / "good.dcm", _dicom())
    os.symlink(tmp_path / "nowhere.dcm", tmp_path / "dangling.dcm")
    result = o.upload_folder(conn_a, tmp_path, ignore_errors=True)
    assert len(result.instances_ids) == 1
    assert [os.path.basename(p) for p, _ in result.errors] == ["dangling.dcm"]
    assert "No such file" in result.errors[0][1]


def test_upload_folder_spreads_files_over_the_nodes(empty_a, empty_b, tmp_path):
    for number in range(10):
        _write(tmp_path / f"f{number}.dcm", _dicom())
    result = o.upload_folder(empty_a, tmp_path, nodes=[empty_b])
    on_a, on_b = o.get_all_ids(empty_a, o.INSTANCES), o.get_all_ids(empty_b, o.INSTANCES)
    assert len(on_a) == len(on_b) == 5
    assert sorted(result.instances_ids) == sorted(on_a + on_b)


def test_upload_folder_drops_an_unreachable_node_and_resends_its_files(empty_a, tmp_path):
    for number in range(6):
        _write(tmp_path / f"f{number}.dcm", _dicom())
    dead = o.Connection(f"http://127.0.0.1:{orthanc_rig.free_port()}", auth=empty_a.auth)
    result = o.upload_folder(empty_a, tmp_path, nodes=[dead], workers=2)
    assert len(result.instances_ids) == 6 and result.errors == []
    assert len(o.get_all_ids(empty_a, o.INSTANCES)) == 6


def test_upload_folder_drops_a_node_that_dies_during_the_upload(empty_a, make_server,
                                                                tmp_path):
    node = make_server("dying")
    for number in range(40):
        _write(tmp_path / f"f{number:02}.dcm", _dicom())

    def kill_the_node(done, total):
        if done == 8:
            node.kill()

    result = o.upload_folder(empty_a, tmp_path, nodes=[node.conn], workers=4,
                             progress=kill_the_node)
    assert len(set(result.instances_ids)) == 40 and result.errors == []
    assert len(o.get_all_ids(empty_a, o.INSTANCES)) > 20


def test_upload_folder_raises_a_connection_error_when_no_node_answers(tmp_path):
    _write(tmp_path / "f.dcm", _dicom())
    dead = [o.Connection(f"http://127.0.0.1:{orthanc_rig.free_port()}") for _ in range(2)]
    with pytest.raises(o.OrthancConnectionError) as info:
        o.upload_folder(dead[0], tmp_path, nodes=dead[1:], ignore_errors=True)
    assert info.value.instances_ids == []


def test_upload_files_dicom_web_stores_the_files_in_batches(empty_a, tmp_path, monkeypatch,
                                                           count_requests):
    monkeypatch.setattr(o, "_STOW_BATCH_FILES", 3)  # 7 files: three STOW-RS requests
    paths = [_write(tmp_path / f"f{n}.dcm", _dicom()) for n in range(7)]
    count_requests.clear()
    answer = o.upload_files_dicom_web(empty_a, iter(paths))
    stow = ("POST", empty_a.url + "/dicom-web/studies")
    assert [(method, url) for method, url, _ in count_requests] == [stow] * 3
    assert len(answer["00081199"]["Value"]) == 7
    assert answer.get("00081198", {}).get("Value", []) == []  # no failed instance
    assert len(o.get_all_ids(empty_a, o.INSTANCES)) == 7


def test_upload_files_dicom_web_raises_stow_failed_naming_a_refused_file_after_the_others(
        empty_a, tmp_path):
    good = _write(tmp_path / "good.dcm", _dicom())
    bad = _write(tmp_path / "bad.dcm", b"not dicom at all")
    later = _write(tmp_path / "later.dcm", _dicom())
    with pytest.raises(o.StowFailed) as info:
        o.upload_files_dicom_web(empty_a, [good, bad, later])
    assert info.value.paths == [bad] and bad in str(info.value)
    assert len(info.value.answer["00081199"]["Value"]) == 2
    assert len(o.get_all_ids(empty_a, o.INSTANCES)) == 2


def test_upload_files_dicom_web_raises_at_once_an_error_that_is_not_a_stow_answer(conn_a,
                                                                                  tmp_path):
    path = _write(tmp_path / "good.dcm", _dicom())
    with pytest.raises(o.NotFound) as info:
        o.upload_files_dicom_web(conn_a, [path], root="/no-such-plugin")
    assert not isinstance(info.value, o.StowFailed) and info.value.status == 404


@pytest.mark.parametrize("upload", [o.upload_folder, o.upload_folder_details])
def test_files_with_a_skipped_extension_are_never_sent(upload, empty_a, tmp_path,
                                                       count_requests):
    kept = [_write(tmp_path / name, _dicom()) for name in ("a.dcm", "sub/b", "c.DCM")]
    for name in ("notes.txt", "sub/REPORT.TXT", "meta.json"):
        _write(tmp_path / name, name.encode())
    upload(empty_a, tmp_path, skip_extensions=(".txt", "json"))
    posts = [options["body"] for method, url, options in count_requests
             if method == "POST" and url.endswith("/instances")]
    assert len(posts) == len(kept)
    sent = []
    for path in kept:
        with open(path, "rb") as f:
            sent.append(f.read())
    assert sorted(posts) == sorted(sent)


def test_a_404_without_orthancs_error_body_is_raised_not_listed_as_a_refused_file(
        proxy_standin, tmp_path):
    proxy_standin.answer = (404, {}, b"")  # a wrong URL behind a proxy
    _write(tmp_path / "a.dcm", _dicom())
    with pytest.raises(o.NotFound) as info:
        o.upload_folder(proxy_standin.conn, tmp_path, ignore_errors=True)
    assert not isinstance(info.value, o.BadFileFormat)


def test_a_404_with_orthancs_inexistent_tag_is_a_refused_file(conn_a):
    from pydicom import data
    path = data.get_palette_files("hotiron.dcm")[0]  # a real palette: no patient, no study
    with pytest.raises(o.BadFileFormat) as info:
        o.upload_file(conn_a, path)
    assert info.value.path == path
    assert (info.value.status, info.value.orthanc["OrthancStatus"]) == (404, 21)


def test_upload_file_gives_up_after_its_timeout(proxy_standin, tmp_path):
    proxy_standin.delay = 5
    path = _write(tmp_path / "a.dcm", _dicom())
    with pytest.raises(o.OrthancTimeout):
        o.upload_file(proxy_standin.conn, path, timeout=0.5)


def test_get_file_returns_the_stored_bytes(conn_a):
    data = _dicom()
    assert o.get_file(conn_a, o.upload(conn_a, data)[0]) == data


def test_download_file_streams_the_dicom_file_to_the_path(conn_a, tmp_path):
    data = _dicom()
    instance_id = o.upload(conn_a, data)[0]
    seen = []
    path = o.download_file(conn_a, instance_id, tmp_path / "out.dcm",
                           progress=lambda done, total: seen.append((done, total)))
    with open(path, "rb") as f:
        assert f.read() == data
    assert seen[-1] == (len(data), len(data))


def test_download_archive_streams_a_zip_of_the_study_and_reports_bytes(conn_a, tmp_path):
    files = h.generate_test_study(2, 3, width=8, height=8)
    ids = [o.upload(conn_a, data)[0] for data in files]
    study_id = o.get_parent_id(conn_a, o.INSTANCES, ids[0], o.STUDIES)
    seen = []
    path = o.download_archive(conn_a, o.STUDIES, study_id, tmp_path / "study.zip",
                              progress=lambda done, total: seen.append(done))
    with zipfile.ZipFile(path) as archive:
        assert len(archive.namelist()) == 6
    assert seen and seen[-1] == os.path.getsize(path)
    assert not os.path.exists(str(path) + ".part")


def test_download_archive_of_an_instance_gives_a_zip_of_one_file(conn_a, tmp_path):
    instance_id = o.upload(conn_a, _dicom())[0]
    path = o.download_archive(conn_a, o.INSTANCES, instance_id, tmp_path / "one.zip")
    with zipfile.ZipFile(path) as archive:
        assert len(archive.namelist()) == 1


def test_download_archive_of_an_unknown_id_raises_not_found_and_keeps_the_old_file(
        conn_a, tmp_path):
    dest = _write(tmp_path / "old.zip", b"previous content")
    with pytest.raises(o.NotFound):
        o.download_archive(conn_a, o.STUDIES, "0" * 8, dest)
    with open(dest, "rb") as f:
        assert f.read() == b"previous content"
    assert os.listdir(tmp_path) == ["old.zip"]


def test_download_archive_removes_the_partial_file_when_the_server_dies(make_server,
                                                                       tmp_path):
    server = make_server("dies-in-download")
    study = {"StudyInstanceUID": "1.2.826.0.1.3680043.8.498.268"}
    # 30 MB that the archive's deflate cannot shrink: more than the socket buffers hold
    files = [h.generate_test_dicom_file(512, 512, study, image="random", seed=n)
             for n in range(60)]
    for data in files:
        o.upload(server.conn, data)
    study_id = o.get_all_ids(server.conn, o.STUDIES)[0]

    def kill_at_the_first_chunk(done, total):
        server.kill()

    with pytest.raises(o.OrthancError):
        o.download_archive(server.conn, o.STUDIES, study_id, tmp_path / "study.zip",
                           progress=kill_at_the_first_chunk)
    assert os.listdir(tmp_path) == []


# ---- upload with details ----

def write_study(folder, uid, series=1, instances=2):
    folder.mkdir(parents=True, exist_ok=True)
    for number, data in enumerate(h.generate_test_study(series, instances,
                                                        tags={"StudyInstanceUID": uid})):
        (folder / f"{number}.dcm").write_bytes(data)


def new_uid():
    from pydicom.uid import generate_uid
    return generate_uid()


def test_upload_folder_details_gives_the_studies_and_the_refused_files(conn_a, tmp_path):
    uids = [new_uid(), new_uid()]
    write_study(tmp_path / "one", uids[0])
    write_study(tmp_path / "two" / "deeper", uids[1], series=2)
    (tmp_path / "notes.txt").write_text("not DICOM")
    details = o.upload_folder_details(conn_a, tmp_path)
    assert sorted(details.study_uids) == sorted(uids)
    for uid, study_id in zip(details.study_uids, details.studies_ids):
        assert o.get_info(conn_a, o.STUDIES, study_id)["MainDicomTags"]["StudyInstanceUID"] == uid
    assert [path for path, _ in details.errors] == [str(tmp_path / "notes.txt")]


def test_upload_folder_details_makes_one_request_per_file_and_one_per_study(
        conn_a, tmp_path, monkeypatch):
    write_study(tmp_path / "a", new_uid(), series=2, instances=3)
    write_study(tmp_path / "b", new_uid(), series=1, instances=2)
    sent = []
    request = o._request
    monkeypatch.setattr(o, "_request", lambda conn, method, path, **kw: (
        sent.append((method, path)), request(conn, method, path, **kw))[1])
    details = o.upload_folder_details(conn_a, tmp_path)
    assert len(details.studies_ids) == 2
    assert sorted(method for method, _ in sent) == ["GET"] * 2 + ["POST"] * 8
    assert all(path.startswith("/studies/") for method, path in sent if method == "GET")


def test_upload_folder_details_sends_a_zip_whole_or_unzipped(conn_a, tmp_path):
    import zipfile
    uid = new_uid()
    write_study(tmp_path / "src", uid)
    folder = tmp_path / "up"
    folder.mkdir()
    with zipfile.ZipFile(folder / "study.zip", "w") as z:
        for file in sorted((tmp_path / "src").iterdir()):
            z.write(file, f"inner/{file.name}")
        z.writestr("inner/readme.txt", "not DICOM")
    whole = o.upload_folder_details(conn_a, folder)
    assert whole.study_uids == [uid]
    unzipped = o.upload_folder_details(conn_a, folder, unzip=True)
    assert unzipped.study_uids == [uid] and unzipped.studies_ids == whole.studies_ids
    member = str(folder / "study.zip") + "/inner/readme.txt"
    assert [path for path, _ in unzipped.errors] == [member]


def test_upload_folder_details_lists_a_broken_zip_as_an_error_when_unzipping(
        conn_a, tmp_path, count_requests):
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04 not really a zip")
    details = o.upload_folder_details(conn_a, tmp_path, unzip=True)
    assert details.study_uids == [] and details.studies_ids == []
    [(path, reason)] = details.errors
    assert path == str(tmp_path / "broken.zip") and "not a readable ZIP" in reason
    assert count_requests == []  # read here, never sent to Orthanc (which would refuse it too)
