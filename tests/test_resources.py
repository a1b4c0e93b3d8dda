"""Resources: ids, info, parents, children, deletion; ids never leave their URL segment;
statistics, previews, created instances, PDF reports, merge and split."""
import datetime
import io
import struct
import zlib

import pytest

import orthanc_fn as o
import orthanc_fn_helpers as h
import orthanc_rig


def test_get_all_ids_lists_every_study_of_the_server(empty_a, upload_study):
    first = upload_study(empty_a, 1, 1).id
    second = upload_study(empty_a, 1, 1).id
    assert sorted(o.get_all_ids(empty_a, o.STUDIES)) == sorted([first, second])


def test_get_info_returns_orthancs_dict_with_main_dicom_tags(conn_a, upload_study):
    study_id = upload_study(conn_a, 1, 1, {"StudyDescription": "INFO TEST"}).id
    info = o.get_info(conn_a, o.STUDIES, study_id)
    assert info["ID"] == study_id and info["Type"] == "Study"
    assert info["MainDicomTags"]["StudyDescription"] == "INFO TEST"
    assert "PatientMainDicomTags" in info


def test_get_info_accepts_orthancs_singular_level_names(conn_a, upload_study):
    study_id = upload_study(conn_a, 1, 1).id
    assert o.get_info(conn_a, "Study", study_id)["ID"] == study_id


def test_get_info_raises_not_found_for_an_unknown_id(conn_a):
    with pytest.raises(o.NotFound) as info:
        o.get_info(conn_a, o.STUDIES, "00000000-00000000-00000000-00000000-00000000")
    assert info.value.status == 404


def test_exists_tells_a_stored_resource_from_an_unknown_or_impossible_id(conn_a, upload_study):
    study_id = upload_study(conn_a, 1, 1).id
    assert o.exists(conn_a, o.STUDIES, study_id)
    assert not o.exists(conn_a, o.STUDIES, "00000000-00000000-00000000-00000000-00000000")
    assert not o.exists(conn_a, o.STUDIES, "../system")


def test_get_parent_id_returns_the_study_of_an_instance_and_the_patient_of_a_series(
        conn_a, upload_study):
    study_id, _, patient_id, series_ids, instance_ids = upload_study(conn_a, 1, 1)
    assert o.get_parent_id(conn_a, o.INSTANCES, instance_ids[0], o.STUDIES) == study_id
    assert o.get_parent_id(conn_a, o.SERIES, series_ids[0], o.PATIENTS) == patient_id
    assert o.get_info(conn_a, o.STUDIES, study_id)["ParentPatient"] == patient_id


def test_get_parent_id_refuses_a_level_that_is_not_above(conn_a):
    with pytest.raises(o.OrthancValueError):
        o.get_parent_id(conn_a, o.STUDIES, "x", o.SERIES)
    with pytest.raises(o.OrthancValueError):
        o.get_parent_id(conn_a, o.STUDIES, "x", o.STUDIES)


def test_get_children_ids_returns_every_instance_of_a_patient(conn_a, upload_study):
    study_id, _, patient_id, series_ids, instance_ids = upload_study(conn_a, 2, 3)
    assert sorted(o.get_children_ids(conn_a, o.PATIENTS, patient_id, o.INSTANCES)) == \
        sorted(instance_ids)
    assert sorted(o.get_children_ids(conn_a, o.STUDIES, study_id, o.SERIES)) == series_ids


def test_get_children_ids_returns_ids_on_orthanc_112_and_newer_too(conn_new, upload_study):
    study = upload_study(conn_new, 2, 2)
    children = o.get_children_ids(conn_new, o.STUDIES, study.id, o.INSTANCES)
    assert sorted(children) == sorted(study.instances_ids)


def test_get_children_ids_refuses_a_level_that_is_not_below(conn_a):
    with pytest.raises(o.OrthancValueError):
        o.get_children_ids(conn_a, o.SERIES, "x", o.STUDIES)


def test_get_children_ids_raises_not_found_for_an_unknown_id(conn_a):
    with pytest.raises(o.NotFound):
        o.get_children_ids(conn_a, o.PATIENTS, "0" * 8, o.INSTANCES)


def test_delete_removes_the_study_and_its_instances(conn_a, upload_study):
    study = upload_study(conn_a, 2, 2)
    o.delete(conn_a, o.STUDIES, study.id)
    assert not o.exists(conn_a, o.STUDIES, study.id)
    assert not any(o.exists(conn_a, o.INSTANCES, i) for i in study.instances_ids)


def test_delete_of_a_list_removes_every_resource_and_keeps_the_others(conn_a, upload_study):
    studies = [upload_study(conn_a, 1, 1).id for _ in range(3)]
    o.delete(conn_a, o.STUDIES, studies[:2])
    assert [o.exists(conn_a, o.STUDIES, s) for s in studies] == [False, False, True]


def test_delete_of_several_ids_is_one_bulk_delete_without_a_version_check(
        conn_a, count_requests, upload_study):
    studies = [upload_study(conn_a, 1, 1).id for _ in range(2)]
    count_requests.clear()
    o.delete(conn_a, o.STUDIES, studies)
    assert [(m, u) for m, u, _ in count_requests] == [("POST", conn_a.url + "/tools/bulk-delete")]
    assert not any(o.exists(conn_a, o.STUDIES, s) for s in studies)


def test_delete_of_an_unknown_id_raises_not_found(conn_a):
    with pytest.raises(o.NotFound):
        o.delete(conn_a, o.STUDIES, "00000000-00000000-00000000-00000000-00000000")


def test_delete_of_an_empty_list_does_nothing(conn_a, upload_study):
    study_id = upload_study(conn_a, 1, 1).id
    o.delete(conn_a, o.STUDIES, [])
    assert o.exists(conn_a, o.STUDIES, study_id)


def test_delete_with_missing_ok_ignores_an_id_that_is_already_gone(conn_a, upload_study):
    study_id = upload_study(conn_a, 1, 1).id
    o.delete(conn_a, o.STUDIES, study_id)
    o.delete(conn_a, o.STUDIES, study_id, missing_ok=True)
    assert not o.exists(conn_a, o.STUDIES, study_id)


def test_delete_with_missing_ok_still_deletes_an_id_that_exists(conn_a, upload_study):
    study_id = upload_study(conn_a, 1, 1).id
    o.delete(conn_a, o.STUDIES, study_id, missing_ok=True)
    assert not o.exists(conn_a, o.STUDIES, study_id)


BAD_IDS = ["../system", "a/b", "..", ".", "x?y=1", "x#y", "%2e%2e", "a\\b", "", "a\nb"]

CALLS = {
    "get_info": lambda c, i: o.get_info(c, o.STUDIES, i),
    "get_parent_id": lambda c, i: o.get_parent_id(c, o.SERIES, i, o.STUDIES),
    "get_children_ids": lambda c, i: o.get_children_ids(c, o.STUDIES, i, o.SERIES),
    "delete": lambda c, i: o.delete(c, o.STUDIES, i),
    "delete_list": lambda c, i: o.delete(c, o.STUDIES, ["ok-id", i]),
    "get_tags": lambda c, i: o.get_tags(c, i),
    "get_file": lambda c, i: o.get_file(c, i),
    "get_file_transcoded": lambda c, i: o.get_file(c, i, transcode="1.2.840.10008.1.2"),
    "is_protected": lambda c, i: o.is_protected(c, i),
    "set_protected": lambda c, i: o.set_protected(c, i),
    "reconstruct": lambda c, i: o.reconstruct(c, o.STUDIES, i),
    "get_shared_tags": lambda c, i: o.get_shared_tags(c, o.STUDIES, i),
    "get_all_metadata": lambda c, i: o.get_all_metadata(c, o.STUDIES, i),
    "get_string_metadata": lambda c, i: o.get_string_metadata(c, o.STUDIES, i, 1024),
    "metadata_name": lambda c, i: o.get_string_metadata(c, o.STUDIES, "ok-id", i),
    "set_attachment": lambda c, i: o.set_attachment(c, o.STUDIES, "ok-id", i, b"x"),
    "download_archive": lambda c, i: o.download_archive(c, o.STUDIES, i, "/nonexistent/x"),
}


@pytest.mark.parametrize("call", sorted(CALLS))
@pytest.mark.parametrize("bad_id", BAD_IDS)
def test_an_id_that_could_reach_another_endpoint_is_refused_before_any_request(call, bad_id):
    # a server that is not there: any request would raise OrthancConnectionError instead
    conn = o.Connection(f"http://127.0.0.1:{orthanc_rig.free_port()}")
    with pytest.raises(o.OrthancValueError):
        CALLS[call](conn, bad_id)


# ---- protection from recycling, reconstruction

@pytest.fixture(scope="module")
def small_server(make_server):
    """A server that keeps at most one patient and has no storage cache."""
    return make_server("onepatient", config={"MaximumPatientCount": 1,
                                            "MaximumStorageCacheSize": 0})


def _patient(conn, name):
    data = h.generate_test_dicom_file(8, 8, {"PatientID": name, "PatientName": name})
    return o.get_parent_id(conn, o.INSTANCES, o.upload(conn, data)[0], o.PATIENTS)


def test_set_protected_then_is_protected_reads_it_back(conn_a, upload_study):
    patient_id = upload_study(conn_a, 1, 1).patient_id
    assert o.is_protected(conn_a, patient_id) is False
    o.set_protected(conn_a, patient_id)
    assert o.is_protected(conn_a, patient_id) is True
    o.set_protected(conn_a, patient_id, False)
    assert o.is_protected(conn_a, patient_id) is False


def test_a_protected_patient_is_not_recycled_when_the_server_is_full(small_server):
    conn = small_server.conn
    o.delete_all_content(conn)
    kept = _patient(conn, "PROTECTED-1")
    o.set_protected(conn, kept)
    with pytest.raises(o.HttpError):  # Orthanc 1.10: "The file storage is full"
        _patient(conn, "NEWCOMER-2")
    assert o.get_all_ids(conn, o.PATIENTS) == [kept]


def test_an_unprotected_patient_is_recycled_when_the_server_is_full(small_server):
    conn = small_server.conn
    o.delete_all_content(conn)
    first = _patient(conn, "RECYCLED-1")
    second = _patient(conn, "NEWCOMER-2")
    assert o.get_all_ids(conn, o.PATIENTS) == [second] and first != second


@pytest.mark.parametrize("call", [o.is_protected, o.set_protected])
def test_protection_of_an_unknown_patient_raises_not_found(conn_a, call):
    with pytest.raises(o.NotFound) as info:
        call(conn_a, "00000000-00000000-00000000-00000000-00000000")
    assert info.value.status == 400  # what Orthanc 1.10 answered: "Parameter out of range"
    assert "no patient 00000000-00000000-00000000-00000000-00000000" in str(info.value)


@pytest.mark.v113
def test_protection_of_an_unknown_patient_raises_not_found_on_1_13(conn_113):
    with pytest.raises(o.NotFound):
        o.is_protected(conn_113, "00000000-00000000-00000000-00000000-00000000")


def test_reconstruct_rebuilds_the_index_from_the_stored_file(small_server):
    """The stored file is replaced on disk behind Orthanc's back: only the index is stale."""
    import io
    import os
    import pydicom
    conn = small_server.conn
    o.delete_all_content(conn)
    data = h.generate_test_dicom_file(8, 8, {"StudyDescription": "BEFORE"})
    instance_id = o.upload(conn, data)[0]
    study_id = o.get_parent_id(conn, o.INSTANCES, instance_id, o.STUDIES)
    ds = pydicom.dcmread(io.BytesIO(data))
    ds.StudyDescription = "AFTER"
    uuid = o._get(conn, f"/instances/{instance_id}/attachments/dicom/info")["Uuid"]
    ds.save_as(os.path.join(small_server.dir, "storage", uuid[:2], uuid[2:4], uuid))
    assert o.get_info(conn, o.STUDIES, study_id)["MainDicomTags"]["StudyDescription"] == "BEFORE"
    o.reconstruct(conn, o.STUDIES, study_id)
    assert o.get_info(conn, o.STUDIES, study_id)["MainDicomTags"]["StudyDescription"] == "AFTER"


# ---- statistics, previews, created instances, PDF, merge and split ----

def make_pdf(padding=b""):
    """A tiny valid one-page PDF; ``padding`` (whitespace) changes its length's parity."""
    objects = [b"<</Type/Catalog/Pages 2 0 R>>", b"<</Type/Pages/Kids[3 0 R]/Count 1>>",
               b"<</Type/Page/Parent 2 0 R/MediaBox[0 0 72 72]>>"]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<</Size %d/Root 1 0 R>>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, xref)
    return bytes(out) + padding


def make_png(width, height):
    """An 8-bit grayscale PNG (a horizontal gradient), with the standard library only."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    rows = b"".join(b"\x00" + bytes((x * 255 // max(1, width - 1)) for x in range(width))
                    for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def series_of(conn, study_id):
    return o.get_info(conn, o.STUDIES, study_id)["Series"]


def test_get_resource_statistics_counts_the_study_content(conn_a, upload_study):
    study_id = upload_study(conn_a, 2, 3).id
    statistics = o.get_resource_statistics(conn_a, o.STUDIES, study_id)
    assert statistics["CountSeries"] == 2 and statistics["CountInstances"] == 6
    assert "DiskSizeMB" in statistics


def test_get_first_instance_id_returns_an_instance_of_the_resource(conn_a, upload_study):
    study_id = upload_study(conn_a, 2, 2).id
    first = o.get_first_instance_id(conn_a, o.STUDIES, study_id)
    assert o.get_parent_id(conn_a, o.INSTANCES, first, o.STUDIES) == study_id
    assert o.get_first_instance_id(conn_a, "Instance", first) == first


def test_get_modalities_of_collects_the_modality_of_every_series(conn_a, tmp_path, upload_study):
    study_id = upload_study(conn_a, 2, 1, modality="MR").id
    (tmp_path / "r.pdf").write_bytes(make_pdf())
    pdf_id = o.attach_pdf(conn_a, study_id, str(tmp_path / "r.pdf"), "report")
    patient_id = o.get_parent_id(conn_a, o.STUDIES, study_id, o.PATIENTS)
    assert o.get_modalities_of(conn_a, o.STUDIES, study_id) == {"MR", "DOC"}
    assert o.get_modalities_of(conn_a, o.PATIENTS, patient_id) == {"MR", "DOC"}
    assert o.get_modalities_of(conn_a, o.INSTANCES, pdf_id) == {"DOC"}
    assert o.get_modalities_of(conn_a, o.SERIES, series_of(conn_a, study_id)[0]) in (
        {"MR"}, {"DOC"})


def test_get_ordered_instances_ids_follows_instance_numbers_not_upload_order(conn_a):
    files = h.generate_test_study(1, 4)
    ids = {}
    for number in (3, 1, 4, 2):
        ids[number] = o.upload(conn_a, files[number - 1])[0]
    series_id = o.get_info(conn_a, o.INSTANCES, ids[1])["ParentSeries"]
    assert o.get_ordered_instances_ids(conn_a, series_id) == [ids[1], ids[2], ids[3], ids[4]]


@pytest.mark.parametrize("fmt, magic", [("png", b"\x89PNG"), ("jpeg", b"\xff\xd8")])
def test_get_preview_renders_the_instance_as_an_image(conn_a, fmt, magic):
    instance_id = o.upload(conn_a, h.generate_test_dicom_file(32, 24))[0]
    assert o.get_preview(conn_a, instance_id, format=fmt).startswith(magic)


def _mr_small(name):
    """pydicom's ``MR_small.dcm`` or its lossless JPEG 2000 twin ``MR_small_jp2klossless.dcm``
    (the same 64x64 image), with new UIDs of its own and its pixel data untouched."""
    import pydicom
    from pydicom.data import get_testdata_file
    dataset = pydicom.dcmread(get_testdata_file(name))
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        setattr(dataset, keyword, pydicom.uid.generate_uid())
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    buffer = io.BytesIO()
    dataset.save_as(buffer)
    return buffer.getvalue()


def test_get_preview_of_a_jpeg_2000_instance_is_that_of_its_uncompressed_twin_on_every_tier(
        server_gdcm):
    """GDCM decodes it: Orthanc has no JPEG 2000 decoder of its own."""
    conn = server_gdcm.conn
    jpeg_2000 = o.upload(conn, _mr_small("MR_small_jp2klossless.dcm"))[0]
    uncompressed = o.upload(conn, _mr_small("MR_small.dcm"))[0]
    assert o.get_info(conn, o.INSTANCES, jpeg_2000)["FileSize"] < o.get_info(
        conn, o.INSTANCES, uncompressed)["FileSize"]
    preview = o.get_preview(conn, jpeg_2000)
    assert preview.startswith(b"\x89PNG")
    assert preview == o.get_preview(conn, uncompressed)


def test_get_preview_of_a_jpeg_2000_instance_without_gdcm_raises_415(conn_a):
    instance_id = o.upload(conn_a, _mr_small("MR_small_jp2klossless.dcm"))[0]
    with pytest.raises(o.HttpError) as info:
        o.get_preview(conn_a, instance_id)
    assert info.value.status == 415


def test_get_preview_refuses_an_unknown_format_before_any_request():
    conn = o.Connection("http://127.0.0.1:9")
    with pytest.raises(o.OrthancValueError):
        o.get_preview(conn, "any", format="gif")


def test_create_dicom_from_a_png_makes_an_image_of_its_size(conn_a):
    tags = {"PatientID": "SURF-PNG", "PatientName": "PNG^TEST", "Modality": "OT"}
    before = dict(tags)
    instance_id = o.create_dicom(conn_a, tags, make_png(20, 10))
    assert tags == before
    simplified = o._get(conn_a, f"/instances/{instance_id}/simplified-tags")
    assert (simplified["Columns"], simplified["Rows"]) == ("20", "10")
    assert simplified["PatientID"] == "SURF-PNG"
    assert o.get_preview(conn_a, instance_id).startswith(b"\x89PNG")


def test_create_dicom_with_a_parent_puts_the_instance_in_that_study(conn_a, upload_study):
    study_id = upload_study(conn_a, 1, 1).id
    instance_id = o.create_dicom(conn_a, {"SeriesDescription": "pdf"}, make_pdf(),
                                 parent_id=study_id)
    assert o.get_parent_id(conn_a, o.INSTANCES, instance_id, o.STUDIES) == study_id


def test_create_dicom_refuses_content_of_unknown_type_before_any_request():
    with pytest.raises(o.OrthancValueError, match="content_type"):
        o.create_dicom(o.Connection("http://127.0.0.1:9"), {}, b"GIF89a...")


@pytest.mark.parametrize("padding", [b"", b" "], ids=["even", "odd"])
def test_a_pdf_attached_to_a_study_downloads_byte_identical(conn_a, tmp_path, padding,
                                                           upload_study):
    pdf = make_pdf(padding)
    assert len(pdf) % 2 == (1 if padding else 0)
    (tmp_path / "in.pdf").write_bytes(pdf)
    study_id = upload_study(conn_a, 1, 1).id
    instance_id = o.attach_pdf(conn_a, study_id, str(tmp_path / "in.pdf"), "Report",
                               when=datetime.datetime(2026, 1, 2, 3, 4, 5))
    assert o.get_pdf_instances(conn_a, study_id) == [instance_id]
    out = tmp_path / "out.pdf"
    assert o.download_pdf(conn_a, instance_id, str(out)) == str(out)
    assert out.read_bytes() == pdf
    series = o._get(conn_a, f"/instances/{instance_id}/series")["MainDicomTags"]
    assert series["SeriesDescription"] == "Report"
    assert (series["SeriesDate"], series["SeriesTime"]) == ("20260102", "030405")


def test_get_pdf_instances_is_empty_for_a_study_without_pdf(conn_a, upload_study):
    assert o.get_pdf_instances(conn_a, upload_study(conn_a, 1, 2).id) == []


def test_download_pdf_raises_not_found_for_an_instance_without_document(conn_a, tmp_path):
    instance_id = o.upload(conn_a, h.generate_test_dicom_file(8, 8))[0]
    with pytest.raises(o.NotFound):
        o.download_pdf(conn_a, instance_id, str(tmp_path / "x.pdf"))
    assert not (tmp_path / "x.pdf").exists()


def test_merge_study_moves_the_series_into_the_target_and_removes_the_source(conn_a, upload_study):
    source = upload_study(conn_a, 2, 2).id
    target = upload_study(conn_a, 1, 1).id
    moved = series_of(conn_a, source)[0]
    assert o.merge_study(conn_a, target, [moved]) == target
    assert len(series_of(conn_a, target)) == 2
    assert o.get_resource_statistics(conn_a, o.STUDIES, target)["CountInstances"] == 3
    assert not o.exists(conn_a, o.SERIES, moved)
    assert len(series_of(conn_a, source)) == 1


def test_merge_study_of_every_series_removes_the_emptied_source_study(conn_a, upload_study):
    source = upload_study(conn_a, 2, 1).id
    target = upload_study(conn_a, 1, 1).id
    o.merge_study(conn_a, target, series_of(conn_a, source))
    assert not o.exists(conn_a, o.STUDIES, source)
    assert o.get_resource_statistics(conn_a, o.STUDIES, target)["CountInstances"] == 3


def test_merge_study_with_keep_source_copies_the_series(conn_a, upload_study):
    source = upload_study(conn_a, 1, 2).id
    target = upload_study(conn_a, 1, 1).id
    copied = series_of(conn_a, source)[0]
    o.merge_study(conn_a, target, copied, keep_source=True)
    assert o.exists(conn_a, o.SERIES, copied)
    assert o.get_resource_statistics(conn_a, o.STUDIES, target)["CountInstances"] == 3


def test_split_study_moves_series_into_a_new_study_with_replaced_tags(conn_a, upload_study):
    study_id = upload_study(conn_a, 3, 1).id
    moved = series_of(conn_a, study_id)[:2]
    new_id = o.split_study(conn_a, study_id, moved, replace_tags={"StudyDescription": "split"})
    assert new_id != study_id
    info = o.get_info(conn_a, o.STUDIES, new_id)
    assert info["MainDicomTags"]["StudyDescription"] == "split"
    assert len(info["Series"]) == 2
    assert not set(moved) & set(series_of(conn_a, study_id))
    assert len(series_of(conn_a, study_id)) == 1


def test_split_study_with_keep_source_leaves_the_study_whole(conn_a, upload_study):
    study_id = upload_study(conn_a, 2, 1).id
    o.split_study(conn_a, study_id, series_of(conn_a, study_id)[0], keep_source=True)
    assert len(series_of(conn_a, study_id)) == 2


def test_a_pdf_attached_to_a_study_downloads_byte_identical_on_orthanc_112_and_newer(
        conn_new, tmp_path, upload_study):
    study_id = upload_study(conn_new, 1, 1).id
    pdf = make_pdf(b" ")
    (tmp_path / "in.pdf").write_bytes(pdf)
    instance_id = o.attach_pdf(conn_new, study_id, str(tmp_path / "in.pdf"), "Report")
    assert o.get_pdf_instances(conn_new, study_id) == [instance_id]
    o.download_pdf(conn_new, instance_id, str(tmp_path / "out.pdf"))
    assert (tmp_path / "out.pdf").read_bytes() == pdf


def test_get_ordered_instances_ids_follows_instance_numbers_on_orthanc_112_and_newer(conn_new):
    files = h.generate_test_study(1, 4, width=8, height=8)
    ids = {number: o.upload(conn_new, files[number - 1])[0] for number in (3, 1, 4, 2)}
    series_id = o.get_info(conn_new, o.INSTANCES, ids[1])["ParentSeries"]
    assert o.get_ordered_instances_ids(conn_new, series_id) == [ids[1], ids[2], ids[3], ids[4]]


def test_merge_study_then_split_study_work_on_orthanc_112_and_newer(conn_new, upload_study):
    source = upload_study(conn_new, 2, 1)
    target = upload_study(conn_new, 1, 1).id
    o.merge_study(conn_new, target, source.series_ids[0])
    assert len(series_of(conn_new, target)) == 2
    new_id = o.split_study(conn_new, target, series_of(conn_new, target)[0])
    assert len(series_of(conn_new, new_id)) == 1 and len(series_of(conn_new, target)) == 1
