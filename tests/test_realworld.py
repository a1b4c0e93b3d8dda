"""Real-world DICOM: pydicom's bundled test files (big and little endian, implicit VR,
deflated, JPEG, JPEG 2000, RLE, DICOMDIRs, palettes, odd character sets, private and UN
sequences, truncated files, text files), uploaded as a hospital folder would be.

Each test compares orthanc_fn with what a raw ``POST /instances`` of the same file does on
the same (emptied) server. The files are copied into a temporary folder, never committed.
"""
import collections
import json
import os
import shutil
import zipfile

import pytest
import urllib3
from pydicom import data as pydicom_data

import orthanc_fn as o
import orthanc_fn_helpers as h

TIERS = ["empty_a", pytest.param("conn_112", marks=pytest.mark.v112)]
ALL_TIERS = TIERS + [pytest.param("conn_113", marks=pytest.mark.v113)]


def _pydicom_files():
    """Every file pydicom ships for its tests: test, charset and palette files."""
    paths = (pydicom_data.get_testdata_files() + pydicom_data.get_charset_files()
             + pydicom_data.get_palette_files())
    return sorted({path for path in paths if os.path.isfile(path)})


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A folder holding a copy of every pydicom test file, in pydicom's sub-folders."""
    root = tmp_path_factory.mktemp("corpus")
    files = _pydicom_files()
    base = os.path.commonpath(files)
    for path in files:
        copy = root / os.path.relpath(path, base)
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, copy)
    return root


def _files(folder):
    return sorted(str(path) for path in folder.rglob("*") if path.is_file())


_HTTP = urllib3.PoolManager()


def _raw(conn, method, path, body=None):
    """One plain urllib3 request, outside orthanc_fn: ``(status, parsed JSON or None)``."""
    headers = urllib3.make_headers(basic_auth=":".join(conn.auth))
    response = _HTTP.request(method, conn.url + path, body=body, headers=headers)
    try:
        return response.status, json.loads(response.data)
    except ValueError:
        return response.status, None


@pytest.fixture(scope="module")
def raw_posts(corpus):
    """``raw_posts(conn)``: what Orthanc does with each corpus file sent alone by a raw
    ``POST /instances``: ``{path: ("stored", id)}`` or ``{path: ("refused", status, Orthanc's
    JSON error)}``. Measured once per server (on the emptied server, emptied again after)."""
    measured = {}

    def outcome(conn):
        if conn.url not in measured:
            measured[conn.url] = _raw_posts(conn, _files(corpus))
        return measured[conn.url]
    return outcome


def _raw_posts(conn, files):
    outcome = {}
    for path in files:
        with open(path, "rb") as f:
            status, answer = _raw(conn, "POST", "/instances", f.read())
        if status == 200:
            outcome[path] = ("stored", answer["ID"])
        else:
            outcome[path] = ("refused", status, answer)
    o.delete_all_content(conn)
    return outcome


def _reason(said):
    return ": ".join(str(said[key]) for key in ("Message", "Details") if said.get(key))


@pytest.mark.parametrize("tier", ALL_TIERS)
def test_upload_folder_of_real_files_stores_and_refuses_exactly_as_raw_posts_do(
        tier, request, corpus, raw_posts):
    conn = request.getfixturevalue(tier)
    files = _files(corpus)
    expected = raw_posts(conn)
    assert sorted(expected) == files
    result = o.upload_folder(conn, corpus, ignore_errors=True)
    stored = [outcome[1] for outcome in expected.values() if outcome[0] == "stored"]
    refused = {path: _reason(outcome[2]) for path, outcome in expected.items()
               if outcome[0] == "refused"}
    assert sorted(result.instances_ids) == sorted(stored)
    assert dict(result.errors) == refused and len(result.errors) == len(refused)
    assert set(o.get_all_ids(conn, o.INSTANCES)) == set(stored)
    statuses = collections.Counter(outcome[1] for outcome in expected.values()
                                   if outcome[0] == "refused")
    assert statuses[404] > 0 and statuses[400] > 0  # DICOMDIRs, palettes; text files
    print(f"\n[corpus] {tier} Orthanc {o.get_system(conn)['Version']}: {len(files)} files, "
          f"{len(stored)} stored ({len(set(stored))} instances), {len(refused)} refused "
          f"(by HTTP status {dict(statuses)})")


@pytest.mark.parametrize("tier", TIERS)
def test_upload_file_of_each_refused_real_file_raises_bad_file_format_with_its_path(
        tier, request, raw_posts):
    conn = request.getfixturevalue(tier)
    expected = raw_posts(conn)
    refused = {path: outcome for path, outcome in expected.items() if outcome[0] == "refused"}
    assert refused
    for path, (_, status, said) in refused.items():
        with pytest.raises(o.BadFileFormat) as info:
            o.upload_file(conn, path)
        assert info.value.path == path and path in str(info.value)
        assert info.value.status == status and info.value.orthanc == said


@pytest.mark.parametrize("tier", TIERS)
def test_strict_upload_folder_of_real_files_raises_bad_file_format_naming_a_refused_one(
        tier, request, corpus, raw_posts):
    conn = request.getfixturevalue(tier)
    expected = raw_posts(conn)
    with pytest.raises(o.BadFileFormat) as info:
        o.upload_folder(conn, corpus)
    assert expected[info.value.path][0] == "refused"
    stored = {outcome[1] for outcome in expected.values() if outcome[0] == "stored"}
    assert set(info.value.instances_ids) <= stored


def _check_tags(tags, raw):
    """Every tag of Orthanc's raw ``/tags`` answer is in ``tags`` with the same value."""
    for tag, element in raw.items():
        value = tags[tag]
        if element["Type"] == "Sequence":
            assert len(value) == len(element["Value"] or ())
            for item, raw_item in zip(value, element["Value"] or ()):
                _check_tags(item, raw_item)
        else:
            assert value == element.get("Value"), tag
        name = element.get("Name", "")
        if name.startswith("RETIRED_") and int(tag[:4], 16) % 2 == 0:
            assert tags[name] is value and tags[name[len("RETIRED_"):]] is value


@pytest.mark.parametrize("tier", TIERS)
def test_get_tags_get_file_and_download_archive_work_on_every_stored_real_file(
        tier, request, corpus, raw_posts, tmp_path):
    conn = request.getfixturevalue(tier)
    sent = collections.defaultdict(set)  # id -> contents of the files that gave it
    for path, outcome in raw_posts(conn).items():
        if outcome[0] == "stored":
            with open(path, "rb") as f:
                sent[outcome[1]].add(f.read())
    o.upload_folder(conn, corpus, ignore_errors=True)
    retired = 0
    for instance_id, contents in sent.items():
        _, raw = _raw(conn, "GET", f"/instances/{instance_id}/tags")
        _check_tags(o.get_tags(conn, instance_id), raw)
        retired += any(e.get("Name", "").startswith("RETIRED_") for e in raw.values())
        data = o.get_file(conn, instance_id)
        assert data in contents  # Orthanc keeps the file as sent
        archive = o.download_archive(conn, o.INSTANCES, instance_id, tmp_path / "one.zip")
        with zipfile.ZipFile(archive) as z:
            assert [z.read(name) for name in z.namelist()] == [data]
    assert retired > 0  # the corpus has retired tags (RETIRED_StudyStatusID...)


def test_a_retired_tag_of_a_real_ct_file_is_reachable_by_keyword_orthanc_name_and_number(
        empty_a):
    folder = os.path.dirname(pydicom_data.get_testdata_file("DICOMDIR"))
    with open(os.path.join(folder, "77654033", "CT2", "17106"), "rb") as f:  # a CT of a CD
        (instance_id,) = o.upload(empty_a, f.read())
    _, raw = _raw(empty_a, "GET", f"/instances/{instance_id}/tags")
    assert raw["0032,000a"]["Name"] == "RETIRED_StudyStatusID"
    tags = o.get_tags(empty_a, instance_id)
    value = raw["0032,000a"]["Value"]
    assert tags["StudyStatusID"] == tags["RETIRED_StudyStatusID"] == value
    assert tags["0032,000a"] == tags["0032,000A"] == tags["0032000a"] == value
    assert "StudyStatusID" in tags and "RETIRED_StudyStatusID" in tags


def _cd_folder(root):
    """A CD copied to disk: pydicom's DICOMDIR at the root, its patients' images below."""
    source = os.path.dirname(pydicom_data.get_testdata_file("DICOMDIR"))
    shutil.copyfile(os.path.join(source, "DICOMDIR"), root / "DICOMDIR")
    images = []
    for patient in ("77654033", "98892001", "98892003"):
        shutil.copytree(os.path.join(source, patient), root / patient)
        images += _files(root / patient)
    return str(root / "DICOMDIR"), images


def test_a_folder_copied_from_a_cd_stores_every_image_and_lists_the_dicomdir(empty_a,
                                                                           tmp_path):
    dicomdir, images = _cd_folder(tmp_path)
    result = o.upload_folder(empty_a, tmp_path, ignore_errors=True)
    assert len(result.instances_ids) == len(images) > 10
    assert len(o.get_all_ids(empty_a, o.INSTANCES)) == len(set(result.instances_ids))
    assert [path for path, _ in result.errors] == [dicomdir]
    assert "Inexistent tag" in result.errors[0][1]


def test_a_folder_copied_from_a_cd_raises_bad_file_format_naming_the_dicomdir(empty_a,
                                                                            tmp_path):
    dicomdir, images = _cd_folder(tmp_path)
    with pytest.raises(o.BadFileFormat) as info:
        o.upload_folder(empty_a, tmp_path)
    assert info.value.path == dicomdir and "DICOMDIR" in str(info.value)
    assert info.value.status == 404 and info.value.orthanc["OrthancStatus"] == 21


def test_upload_folder_details_of_a_cd_folder_lists_the_dicomdir_and_finds_the_studies(
        empty_a, tmp_path):
    dicomdir, images = _cd_folder(tmp_path)
    details = o.upload_folder_details(empty_a, tmp_path)
    assert [path for path, _ in details.errors] == [dicomdir]
    assert sorted(details.studies_ids) == sorted(o.get_all_ids(empty_a, o.STUDIES))


def _real(name):
    return pydicom_data.get_testdata_file(name)


@pytest.mark.parametrize("tier", TIERS)
def test_stow_sends_every_batch_and_names_the_real_files_the_plugin_refuses(
        tier, request, tmp_path, monkeypatch):
    conn = request.getfixturevalue(tier)
    monkeypatch.setattr(o, "_STOW_BATCH_FILES", 3)  # 10 files: four STOW-RS requests
    good = [str(tmp_path / f"good{n}.dcm") for n in range(6)]
    for path in good:
        with open(path, "wb") as f:
            f.write(h.generate_test_dicom_file(8, 8))
    dicomdir = shutil.copyfile(_real("DICOMDIR"), tmp_path / "DICOMDIR")
    palette = shutil.copyfile(pydicom_data.get_palette_files("spring.dcm")[0],
                              tmp_path / "spring.dcm")
    text = shutil.copyfile(os.path.join(os.path.dirname(_real("DICOMDIR")), "README.txt"),
                           tmp_path / "README.txt")
    real_good = shutil.copyfile(_real("CT_small.dcm"), tmp_path / "CT_small.dcm")
    dicomdir, palette, text, real_good = map(str, (dicomdir, palette, text, real_good))
    paths = good[:2] + [dicomdir] + good[2:4] + [palette, real_good, text] + good[4:]
    with pytest.raises(o.StowFailed) as info:
        o.upload_files_dicom_web(conn, iter(paths))
    assert info.value.paths == [dicomdir, palette, text]
    assert len(info.value.answer["00081199"]["Value"]) == 7
    assert len(o.get_all_ids(conn, o.INSTANCES)) == 7  # the batches after a failure were sent
    assert "3 of 10 files not stored" in str(info.value) and "DICOMDIR" in str(info.value)


def test_stow_with_ignore_errors_returns_the_merged_answer_of_every_batch(empty_a, tmp_path,
                                                                          monkeypatch):
    monkeypatch.setattr(o, "_STOW_BATCH_FILES", 2)
    paths = []
    for n in range(5):
        paths.append(str(tmp_path / f"good{n}.dcm"))
        with open(paths[-1], "wb") as f:
            f.write(h.generate_test_dicom_file(8, 8))
    paths.insert(1, str(shutil.copyfile(_real("DICOMDIR"), tmp_path / "DICOMDIR")))
    answer = o.upload_files_dicom_web(empty_a, paths, ignore_errors=True)
    assert len(answer["00081199"]["Value"]) == 5
    assert len(o.get_all_ids(empty_a, o.INSTANCES)) == 5


def test_stow_to_a_study_refuses_the_files_of_another_study_with_reason_272(empty_a,
                                                                          tmp_path):
    uid = "1.2.826.0.1.3680043.8.498.1"
    mine = [h.generate_test_dicom_file(8, 8, {"StudyInstanceUID": uid, "PatientID": "P-272"})
            for _ in range(2)]
    other = h.generate_test_dicom_file(8, 8)
    paths = []
    for number, data in enumerate(mine + [other]):
        paths.append(str(tmp_path / f"f{number}.dcm"))
        with open(paths[-1], "wb") as f:
            f.write(data)
    with pytest.raises(o.StowFailed) as info:
        o.upload_files_dicom_web(empty_a, paths, study_uid=uid)
    assert info.value.paths == [paths[2]]
    failed = info.value.answer["00081198"]["Value"]
    assert [item["00081197"]["Value"] for item in failed] == [[272]]
    studies = o.get_all_ids(empty_a, o.STUDIES)
    assert [o.get_info(empty_a, o.STUDIES, s)["MainDicomTags"]["StudyInstanceUID"]
            for s in studies] == [uid]


WORKLIST_DUMP = """\
(0008,0005) CS [ISO_IR 100]
(0010,0010) PN [DOE^JOHN]
(0010,0020) LO [P-WL-1]
(0020,000d) UI [1.2.826.0.1.3680043.8.498.77]
(0040,0100) SQ (Sequence with explicit length #=1)
  (fffe,e000) na (Item with explicit length #=2)
    (0008,0060) CS [CT]
    (0040,0001) AE [SCANNER]
  (fffe,e00d) na (ItemDelimitationItem for re-encoding)
(fffe,e0dd) na (SequenceDelimitationItem for re-encoding)
"""


def test_a_worklist_file_written_by_dcmtk_is_listed_as_refused_beside_stored_images(
        empty_a, tmp_path):
    import subprocess

    (tmp_path / "wl.dump").write_text(WORKLIST_DUMP)
    worklist = str(tmp_path / "worklists" / "item.wl")
    os.makedirs(os.path.dirname(worklist))
    subprocess.run(["dump2dcm", "-g", str(tmp_path / "wl.dump"), worklist], check=True,
                   capture_output=True, timeout=60)
    os.remove(tmp_path / "wl.dump")
    with open(tmp_path / "image.dcm", "wb") as f:
        f.write(h.generate_test_dicom_file(8, 8))
    result = o.upload_folder(empty_a, tmp_path, ignore_errors=True)
    assert len(result.instances_ids) == 1
    assert result.errors == [(worklist, "Inexistent tag")]


def _by_id(resources):
    return sorted(resources, key=lambda resource: resource["ID"])


@pytest.mark.v113
@pytest.mark.parametrize("query", [{}, {"PatientName": "*a*"}])
def test_iter_find_lists_the_real_files_as_find_does_at_every_level_on_orthanc_1_13(
        conn_113, corpus, query):
    """pydicom's files bring identifiers nobody here chose: PatientIDs in other character
    sets, empty or missing (no place in a list: that listing pages with Since), UIDs of
    every length. At every level ``iter_find``, by identifier lists or by pages, gives
    ``find``'s answer, with a case-sensitive lettered pattern too."""
    o.upload_folder(conn_113, corpus, ignore_errors=True)
    for level in o.LEVELS:
        expected = o.find(conn_113, level, query)
        assert len(expected) > 7  # more than one page
        assert _by_id(o.iter_find(conn_113, level, query, page_size=7)) == _by_id(expected)


@pytest.mark.v113
def test_iter_find_lists_real_patients_by_their_patient_ids_on_orthanc_1_13(
        conn_113, corpus, count_requests):
    """Without the one patient whose PatientID is empty, the real patients go by PatientID
    lists, and an ID Orthanc keeps with a trailing space ("id11111 ", beside "id11111")
    matches exactly: every patient comes, each once."""
    o.upload_folder(conn_113, corpus, ignore_errors=True)
    unnamed = [p["ID"] for p in o.find(conn_113, o.PATIENTS, {})
               if not p["MainDicomTags"].get("PatientID")]
    assert len(unnamed) == 1  # one Orthanc patient per PatientID, the empty one too
    o.delete(conn_113, o.PATIENTS, unnamed)
    expected = o.find(conn_113, o.PATIENTS, {})
    assert {"id11111", "id11111 "} <= {p["MainDicomTags"]["PatientID"] for p in expected}
    count_requests.clear()
    found = list(o.iter_find(conn_113, o.PATIENTS, {}, page_size=7))
    bodies = [json.loads(k["body"]) for m, url, k in count_requests
              if m == "POST" and url.endswith("/tools/find")]
    assert all("Since" not in body for body in bodies)
    assert sum(len(b["Query"]["PatientID"].split("\\")) for b in bodies[1:]) == len(expected)
    assert _by_id(found) == _by_id(expected)
