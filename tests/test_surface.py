"""The rest of the surface users know from orthanc-api-client: system, resources, PDF, merge."""
import datetime
import io
import struct
import zlib

import pytest

import orthanc_fn as o
import orthanc_fn_helpers as h


# ---- data made by the tests -------------------------------------------------------------

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


def upload_study(conn, series=2, instances=3, **options):
    """Upload a generated study; return its Orthanc id."""
    ids = []
    for data in h.generate_test_study(series, instances, **options):
        ids += o.upload(conn, data)
    return o.get_parent_id(conn, o.INSTANCES, ids[0], o.STUDIES)


def series_of(conn, study_id):
    return o.get_info(conn, o.STUDIES, study_id)["Series"]


@pytest.fixture(scope="module")
def conn_rev(make_server, any_tier):
    """A server of our own on each tier, whose settings tests may change; it checks revisions."""
    return make_server("surf-rev" + any_tier.replace(".", ""), tier=any_tier,
                       config={"CheckRevisions": True}).conn


# ---- System -------------------------------------------------------------------------------

def test_get_capabilities_gives_booleans_and_plugin_versions(conn_a):
    capabilities = o.get_capabilities(conn_a)
    flags = {k: v for k, v in capabilities.items() if k != "plugins"}
    assert set(flags) == {"has_labels", "has_extended_find", "has_extended_changes",
                          "has_key_value_stores", "has_queues", "has_revisions"}
    assert all(isinstance(v, bool) for v in flags.values())
    assert capabilities["plugins"]["dicom-web"] == o._get(conn_a, "/plugins/dicom-web")["Version"]
    assert "explorer.js" not in capabilities["plugins"]


def test_get_capabilities_of_orthanc_110_has_no_labels_nor_extended_find(conn_a):
    capabilities = o.get_capabilities(conn_a)
    assert capabilities["has_labels"] is False
    assert capabilities["has_extended_find"] is False
    assert capabilities["has_revisions"] is False


def test_get_capabilities_of_orthanc_112_and_newer_has_labels_and_extended_find(conn_new):
    capabilities = o.get_capabilities(conn_new)
    assert capabilities["has_labels"] is True
    assert capabilities["has_extended_find"] is True
    assert capabilities["has_extended_changes"] is True


def test_get_capabilities_tells_key_value_stores_and_queues_from_orthanc_1_13_only(conn_any):
    """1.12.7 (SQLite) does not report them, though its SDK has had them since 1.12.8."""
    capabilities = o.get_capabilities(conn_any)
    newest = o.get_version(conn_any) >= (1, 13, 0)
    assert capabilities["has_key_value_stores"] is capabilities["has_queues"] is newest


def test_get_capabilities_lists_gdcm_with_its_version_on_every_tier(conn_any):
    plugins = o.get_capabilities(conn_any)["plugins"]
    assert plugins["gdcm"] == o._get(conn_any, "/plugins/gdcm")["Version"]
    assert set(plugins) == {"dicom-web", "gdcm"}


def test_is_version_at_least_compares_the_whole_tuple(conn_a):
    assert o.get_version(conn_a) == (1, 10, 1)
    assert o.is_version_at_least(conn_a, 1, 9, 2)  # 10 > 9 decides, whatever 1 < 2 says
    assert o.is_version_at_least(conn_a, 1, 10, 1)
    assert o.is_version_at_least(conn_a, 0, 99)
    assert not o.is_version_at_least(conn_a, 1, 10, 2)
    assert not o.is_version_at_least(conn_a, 1, 11)
    assert not o.is_version_at_least(conn_a, 2, 0)


def test_versions_compare_2_0_as_newer_than_1_5_and_mainline_as_newest():
    assert o._parse_version("2.0") > o._parse_version("1.5.8")
    assert o._parse_version("1.12.10") > o._parse_version("1.12.9")
    assert o._parse_version("mainline") > o._parse_version("99.99.99")


def test_has_plugin_tells_which_plugins_are_loaded(conn_a):
    assert o.has_plugin(conn_a, "dicom-web")
    assert not o.has_plugin(conn_a, "python")


def test_get_metrics_parses_prometheus_text_into_floats(conn_a):
    upload_study(conn_a, 1, 1)
    metrics = o.get_metrics(conn_a)
    assert all(isinstance(v, float) for v in metrics.values())
    assert metrics["orthanc_count_instances"] >= 1
    assert "orthanc_jobs_failed" in metrics


@pytest.mark.v113
def test_get_metrics_of_orthanc_1_13_counts_the_jobs_run_since_it_started(conn_113):
    """1.13.0 replaced orthanc_jobs_{completed,success,failed} (the jobs in the history) by
    orthanc_jobs_total_*, which appear once a job has ended."""
    before = o.get_metrics(conn_113).get("orthanc_jobs_total_success", 0.0)
    o.anonymize(conn_113, o.STUDIES, upload_study(conn_113, 1, 1))
    metrics = o.get_metrics(conn_113)
    assert metrics["orthanc_jobs_total_success"] == before + 1
    assert metrics["orthanc_jobs_total_completed"] >= metrics["orthanc_jobs_total_success"]
    assert "orthanc_jobs_success" not in metrics and "orthanc_jobs_failed" not in metrics


def test_set_log_level_changes_what_get_log_level_returns(conn_rev):
    assert o.set_log_level(conn_rev, "verbose") == "verbose"
    assert o.get_log_level(conn_rev) == "verbose"
    assert o.set_log_level(conn_rev, "default") == "default"


def test_set_log_level_refuses_an_unknown_level(conn_a):
    with pytest.raises(o.HttpError) as info:
        o.set_log_level(conn_a, "chatty")
    assert info.value.status == 400
    assert o.get_log_level(conn_a) in ("default", "verbose", "trace")


# ---- Resources ----------------------------------------------------------------------------

def test_get_resource_statistics_counts_the_study_content(conn_a):
    study_id = upload_study(conn_a, 2, 3)
    statistics = o.get_resource_statistics(conn_a, o.STUDIES, study_id)
    assert statistics["CountSeries"] == 2 and statistics["CountInstances"] == 6
    assert "DiskSizeMB" in statistics


def test_get_first_instance_id_returns_an_instance_of_the_resource(conn_a):
    study_id = upload_study(conn_a, 2, 2)
    first = o.get_first_instance_id(conn_a, o.STUDIES, study_id)
    assert o.get_parent_id(conn_a, o.INSTANCES, first, o.STUDIES) == study_id
    assert o.get_first_instance_id(conn_a, "Instance", first) == first


def test_get_modalities_of_collects_the_modality_of_every_series(conn_a, tmp_path):
    study_id = upload_study(conn_a, 2, 1, modality="MR")
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
        conn_any):
    """GDCM decodes it (the rig loads it everywhere): Orthanc has no JPEG 2000 decoder."""
    jpeg_2000 = o.upload(conn_any, _mr_small("MR_small_jp2klossless.dcm"))[0]
    uncompressed = o.upload(conn_any, _mr_small("MR_small.dcm"))[0]
    assert o.get_info(conn_any, o.INSTANCES, jpeg_2000)["FileSize"] < o.get_info(
        conn_any, o.INSTANCES, uncompressed)["FileSize"]
    preview = o.get_preview(conn_any, jpeg_2000)
    assert preview.startswith(b"\x89PNG")
    assert preview == o.get_preview(conn_any, uncompressed)


def test_get_preview_of_a_jpeg_2000_instance_without_gdcm_raises_415(make_server):
    conn = make_server("surf-nogdcm", plugins=()).conn
    instance_id = o.upload(conn, _mr_small("MR_small_jp2klossless.dcm"))[0]
    with pytest.raises(o.HttpError) as info:
        o.get_preview(conn, instance_id)
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


def test_create_dicom_with_a_parent_puts_the_instance_in_that_study(conn_a):
    study_id = upload_study(conn_a, 1, 1)
    instance_id = o.create_dicom(conn_a, {"SeriesDescription": "pdf"}, make_pdf(),
                                 parent_id=study_id)
    assert o.get_parent_id(conn_a, o.INSTANCES, instance_id, o.STUDIES) == study_id


def test_create_dicom_refuses_content_of_unknown_type_before_any_request():
    with pytest.raises(o.OrthancValueError, match="content_type"):
        o.create_dicom(o.Connection("http://127.0.0.1:9"), {}, b"GIF89a...")


@pytest.mark.parametrize("padding", [b"", b" "], ids=["even", "odd"])
def test_a_pdf_attached_to_a_study_downloads_byte_identical(conn_a, tmp_path, padding):
    pdf = make_pdf(padding)
    assert len(pdf) % 2 == (1 if padding else 0)
    (tmp_path / "in.pdf").write_bytes(pdf)
    study_id = upload_study(conn_a, 1, 1)
    instance_id = o.attach_pdf(conn_a, study_id, str(tmp_path / "in.pdf"), "Report",
                               when=datetime.datetime(2026, 1, 2, 3, 4, 5))
    assert o.get_pdf_instances(conn_a, study_id) == [instance_id]
    out = tmp_path / "out.pdf"
    assert o.download_pdf(conn_a, instance_id, str(out)) == str(out)
    assert out.read_bytes() == pdf
    series = o._get(conn_a, f"/instances/{instance_id}/series")["MainDicomTags"]
    assert series["SeriesDescription"] == "Report"
    assert (series["SeriesDate"], series["SeriesTime"]) == ("20260102", "030405")


def test_get_pdf_instances_is_empty_for_a_study_without_pdf(conn_a):
    assert o.get_pdf_instances(conn_a, upload_study(conn_a, 1, 2)) == []


def test_download_pdf_raises_not_found_for_an_instance_without_document(conn_a, tmp_path):
    instance_id = o.upload(conn_a, h.generate_test_dicom_file(8, 8))[0]
    with pytest.raises(o.NotFound):
        o.download_pdf(conn_a, instance_id, str(tmp_path / "x.pdf"))
    assert not (tmp_path / "x.pdf").exists()


def test_merge_study_moves_the_series_into_the_target_and_removes_the_source(conn_a):
    source = upload_study(conn_a, 2, 2)
    target = upload_study(conn_a, 1, 1)
    moved = series_of(conn_a, source)[0]
    assert o.merge_study(conn_a, target, [moved]) == target
    assert len(series_of(conn_a, target)) == 2
    assert o.get_resource_statistics(conn_a, o.STUDIES, target)["CountInstances"] == 3
    assert not o.exists(conn_a, o.SERIES, moved)
    assert len(series_of(conn_a, source)) == 1


def test_merge_study_of_every_series_removes_the_emptied_source_study(conn_a):
    source = upload_study(conn_a, 2, 1)
    target = upload_study(conn_a, 1, 1)
    o.merge_study(conn_a, target, series_of(conn_a, source))
    assert not o.exists(conn_a, o.STUDIES, source)
    assert o.get_resource_statistics(conn_a, o.STUDIES, target)["CountInstances"] == 3


def test_merge_study_with_keep_source_copies_the_series(conn_a):
    source = upload_study(conn_a, 1, 2)
    target = upload_study(conn_a, 1, 1)
    copied = series_of(conn_a, source)[0]
    o.merge_study(conn_a, target, copied, keep_source=True)
    assert o.exists(conn_a, o.SERIES, copied)
    assert o.get_resource_statistics(conn_a, o.STUDIES, target)["CountInstances"] == 3


def test_split_study_moves_series_into_a_new_study_with_replaced_tags(conn_a):
    study_id = upload_study(conn_a, 3, 1)
    moved = series_of(conn_a, study_id)[:2]
    new_id = o.split_study(conn_a, study_id, moved, replace_tags={"StudyDescription": "split"})
    assert new_id != study_id
    info = o.get_info(conn_a, o.STUDIES, new_id)
    assert info["MainDicomTags"]["StudyDescription"] == "split"
    assert len(info["Series"]) == 2
    assert not set(moved) & set(series_of(conn_a, study_id))
    assert len(series_of(conn_a, study_id)) == 1


def test_split_study_with_keep_source_leaves_the_study_whole(conn_a):
    study_id = upload_study(conn_a, 2, 1)
    o.split_study(conn_a, study_id, series_of(conn_a, study_id)[0], keep_source=True)
    assert len(series_of(conn_a, study_id)) == 2


# ---- Revisions ----------------------------------------------------------------------------

def new_instance(conn):
    return o.upload(conn, h.generate_test_dicom_file(8, 8))[0]


def test_get_capabilities_reports_revisions_when_the_server_checks_them(conn_rev):
    assert o.get_capabilities(conn_rev)["has_revisions"] is True


def test_get_string_metadata_with_revision_returns_the_value_and_a_revision(conn_a):
    instance_id = new_instance(conn_a)
    o.set_string_metadata(conn_a, o.INSTANCES, instance_id, 1024, "héllo")
    value, revision = o.get_string_metadata_with_revision(conn_a, o.INSTANCES, instance_id, 1024)
    assert value == "héllo"
    assert revision and '"' not in revision


def test_get_metadata_with_revision_raises_not_found_when_missing(conn_a):
    with pytest.raises(o.NotFound):
        o.get_string_metadata_with_revision(conn_a, o.INSTANCES, new_instance(conn_a), 1025)


def test_a_stale_metadata_revision_raises_conflict_and_the_current_one_works(conn_rev):
    instance_id = new_instance(conn_rev)
    o.set_string_metadata(conn_rev, o.INSTANCES, instance_id, 1024, "one")
    _, stale = o.get_string_metadata_with_revision(conn_rev, o.INSTANCES, instance_id, 1024)
    o.set_string_metadata(conn_rev, o.INSTANCES, instance_id, 1024, "two", revision=stale)
    with pytest.raises(o.Conflict):
        o.set_string_metadata(conn_rev, o.INSTANCES, instance_id, 1024, "three",
                              revision=stale)
    value, current = o.get_string_metadata_with_revision(conn_rev, o.INSTANCES, instance_id,
                                                         1024)
    assert value == "two" and current != stale
    o.set_string_metadata(conn_rev, o.INSTANCES, instance_id, 1024, "three", revision=current)
    assert o.get_string_metadata(conn_rev, o.INSTANCES, instance_id, 1024) == "three"


def test_replacing_a_metadata_without_revision_raises_conflict_when_revisions_are_checked(
        conn_rev):
    instance_id = new_instance(conn_rev)
    o.set_string_metadata(conn_rev, o.INSTANCES, instance_id, 1024, "one")
    with pytest.raises(o.Conflict):
        o.set_string_metadata(conn_rev, o.INSTANCES, instance_id, 1024, "two")


def test_binary_metadata_revisions_guard_writes_too(conn_rev):
    instance_id = new_instance(conn_rev)
    o.set_binary_metadata(conn_rev, o.INSTANCES, instance_id, 1030, b"\x00\x01")
    data, stale = o.get_binary_metadata_with_revision(conn_rev, o.INSTANCES, instance_id, 1030)
    assert data == b"\x00\x01"
    o.set_binary_metadata(conn_rev, o.INSTANCES, instance_id, 1030, b"\x02", revision=stale)
    with pytest.raises(o.Conflict):
        o.set_binary_metadata(conn_rev, o.INSTANCES, instance_id, 1030, b"\x03", revision=stale)


def test_delete_metadata_with_a_stale_revision_raises_conflict_and_keeps_it(conn_rev):
    instance_id = new_instance(conn_rev)
    o.set_string_metadata(conn_rev, o.INSTANCES, instance_id, 1024, "one")
    _, stale = o.get_string_metadata_with_revision(conn_rev, o.INSTANCES, instance_id, 1024)
    o.set_string_metadata(conn_rev, o.INSTANCES, instance_id, 1024, "two", revision=stale)
    with pytest.raises(o.Conflict):
        o.delete_metadata(conn_rev, o.INSTANCES, instance_id, 1024, revision=stale)
    _, current = o.get_string_metadata_with_revision(conn_rev, o.INSTANCES, instance_id, 1024)
    o.delete_metadata(conn_rev, o.INSTANCES, instance_id, 1024, revision=current)
    assert not o.has_metadata(conn_rev, o.INSTANCES, instance_id, 1024)


def test_a_stale_attachment_revision_raises_conflict_and_the_current_one_works(conn_rev):
    instance_id = new_instance(conn_rev)
    o.set_attachment(conn_rev, o.INSTANCES, instance_id, 1025, b"one")
    data, stale = o.get_attachment_with_revision(conn_rev, o.INSTANCES, instance_id, 1025)
    assert data == b"one"
    o.set_attachment(conn_rev, o.INSTANCES, instance_id, 1025, b"two", revision=stale)
    with pytest.raises(o.Conflict):
        o.set_attachment(conn_rev, o.INSTANCES, instance_id, 1025, b"three", revision=stale)
    with pytest.raises(o.Conflict):
        o.delete_attachment(conn_rev, o.INSTANCES, instance_id, 1025, revision=stale)
    data, current = o.get_attachment_with_revision(conn_rev, o.INSTANCES, instance_id, 1025)
    assert data == b"two"
    o.delete_attachment(conn_rev, o.INSTANCES, instance_id, 1025, revision=current)
    with pytest.raises(o.NotFound):
        o.get_attachment(conn_rev, o.INSTANCES, instance_id, 1025)


def test_a_server_that_does_not_check_revisions_accepts_writes_without_revision(conn_a):
    instance_id = new_instance(conn_a)
    o.set_string_metadata(conn_a, o.INSTANCES, instance_id, 1024, "one")
    o.set_string_metadata(conn_a, o.INSTANCES, instance_id, 1024, "two")
    assert o.get_string_metadata(conn_a, o.INSTANCES, instance_id, 1024) == "two"


# ---- Bulk modification ----------------------------------------------------------------------

def test_modify_bulk_modifies_every_study_and_deletes_the_originals(conn_a):
    studies = [upload_study(conn_a, 1, 2), upload_study(conn_a, 2, 1)]
    result = o.modify_bulk(conn_a, o.STUDIES, studies, replace_tags={"StudyDescription": "bulk"})
    assert isinstance(result, o.BulkResult)
    assert len(result.studies) == 2 and len(result.series) == 3 and len(result.instances) == 4
    assert len(result.patients) == 2
    for study_id in result.studies:
        info = o.get_info(conn_a, o.STUDIES, study_id)
        assert info["MainDicomTags"]["StudyDescription"] == "bulk"
    assert not any(o.exists(conn_a, o.STUDIES, s) for s in studies)


def test_anonymize_bulk_keeps_the_originals_and_gives_new_patients(conn_a):
    study_id = upload_study(conn_a, 2, 1, tags={"PatientName": "BULK^ORIGINAL"})
    series = series_of(conn_a, study_id)
    result = o.anonymize_bulk(conn_a, "Series", series)
    assert len(result.series) == 2 and len(result.instances) == 2
    assert all(o.exists(conn_a, o.SERIES, s) for s in series)
    patient = o.get_info(conn_a, o.PATIENTS, result.patients[0])["MainDicomTags"]
    assert patient.get("PatientName") != "BULK^ORIGINAL"


def test_modify_bulk_of_instances_returns_them_and_their_parents(conn_a):
    study_id = upload_study(conn_a, 1, 2)
    instances = o.get_children_ids(conn_a, o.STUDIES, study_id, o.INSTANCES)
    result = o.modify_bulk(conn_a, o.INSTANCES, instances,
                           replace_tags={"SeriesDescription": "renamed"}, delete_original=False)
    assert len(result.instances) == 2 and set(result.instances).isdisjoint(instances)
    assert all(o.exists(conn_a, o.INSTANCES, i) for i in instances)


def test_modify_bulk_as_job_returns_a_job_listing_the_new_resources(conn_a):
    study_id = upload_study(conn_a, 1, 1)
    job_id = o.modify_bulk_as_job(conn_a, o.STUDIES, [study_id],
                                  replace_tags={"StudyDescription": "job"})
    job = o.wait_job(conn_a, job_id, timeout=60)
    types = sorted(r["Type"] for r in job["Content"]["Resources"])
    assert types == ["Instance", "Patient", "Series", "Study"]


def test_anonymize_bulk_as_job_returns_a_job_id(conn_a):
    study_id = upload_study(conn_a, 1, 1)
    job = o.wait_job(conn_a, o.anonymize_bulk_as_job(conn_a, o.STUDIES, study_id), timeout=60)
    assert job["State"] == "Success" and job["Content"]["IsAnonymization"] is True


def test_a_failed_bulk_job_raises_job_failed(conn_b):
    study_id = upload_study(conn_b, 1, 2)
    instances = o.get_children_ids(conn_b, o.STUDIES, study_id, o.INSTANCES)
    # Both results get one SOPInstanceUID: B does not overwrite, so the second store fails.
    with pytest.raises(o.JobFailed) as info:
        o.modify_bulk(conn_b, o.INSTANCES, instances, force=True, delete_original=False,
                      replace_tags={"SOPInstanceUID": "1.2.826.0.1.3680043.8.498.4242"})
    assert info.value.job["State"] == "Failure"
    assert all(o.exists(conn_b, o.INSTANCES, i) for i in instances)


# ---- Downloads ----------------------------------------------------------------------------

def test_download_instances_writes_one_identical_file_per_instance(conn_a, tmp_path):
    study_id = upload_study(conn_a, 2, 3)
    ids = o.get_children_ids(conn_a, o.STUDIES, study_id, o.INSTANCES)
    folder = tmp_path / "new" / "folder"
    saved = o.download_instances(conn_a, ids, folder)
    assert [instance_id for instance_id, _ in saved] == ids
    assert sorted(p.name for p in folder.iterdir()) == sorted(i + ".dcm" for i in ids)
    for instance_id, path in saved:
        with open(path, "rb") as f:
            assert f.read() == o.get_file(conn_a, instance_id)


def test_download_instances_raises_for_an_unknown_id_and_keeps_no_partial_file(conn_a,
                                                                              tmp_path):
    good = o.upload(conn_a, h.generate_test_dicom_file(8, 8))[0]
    with pytest.raises(o.NotFound):
        o.download_instances(conn_a, [good, "0" * 8 + "-unknown"], tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [good + ".dcm"]


@pytest.mark.parametrize("level", [o.STUDIES, o.INSTANCES])
def test_download_media_saves_a_zip_with_a_dicomdir(conn_a, tmp_path, level):
    import zipfile
    study_id = upload_study(conn_a, 1, 2)
    orthanc_id = (study_id if level == o.STUDIES
                  else o.get_first_instance_id(conn_a, o.STUDIES, study_id))
    path = o.download_media(conn_a, level, orthanc_id, tmp_path / "media.zip")
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
    assert "DICOMDIR" in names
    assert len([n for n in names if n != "DICOMDIR"]) == (2 if level == o.STUDIES else 1)


# ---- Upload with details ------------------------------------------------------------------

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


def test_upload_folder_details_lists_a_broken_zip_as_an_error_when_unzipping(conn_a, tmp_path):
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04 not really a zip")
    details = o.upload_folder_details(conn_a, tmp_path, unzip=True)
    assert details == o.UploadDetails([], [], details.errors)
    assert [path for path, _ in details.errors] == [str(tmp_path / "broken.zip")]


# ---- Orthanc 1.12 and 1.13 ----------------------------------------------------------------

def test_pdf_round_trip_and_slice_order_work_on_orthanc_112_and_newer(conn_new, tmp_path):
    study_id = upload_study(conn_new, 1, 3)
    (tmp_path / "in.pdf").write_bytes(make_pdf(b" "))
    instance_id = o.attach_pdf(conn_new, study_id, str(tmp_path / "in.pdf"), "Report")
    assert o.get_pdf_instances(conn_new, study_id) == [instance_id]
    o.download_pdf(conn_new, instance_id, str(tmp_path / "out.pdf"))
    assert (tmp_path / "out.pdf").read_bytes() == make_pdf(b" ")
    series_id = [s for s in series_of(conn_new, study_id)
                 if s != o.get_info(conn_new, o.INSTANCES, instance_id)["ParentSeries"]][0]
    ordered = o.get_ordered_instances_ids(conn_new, series_id)
    numbers = [o.get_info(conn_new, o.INSTANCES, i)["MainDicomTags"]["InstanceNumber"]
               for i in ordered]
    assert numbers == ["1", "2", "3"]


def test_merge_split_and_bulk_modify_work_on_orthanc_112_and_newer(conn_new):
    source = upload_study(conn_new, 2, 1)
    target = upload_study(conn_new, 1, 1)
    o.merge_study(conn_new, target, series_of(conn_new, source)[0])
    assert len(series_of(conn_new, target)) == 2
    new_id = o.split_study(conn_new, target, series_of(conn_new, target)[0])
    assert len(series_of(conn_new, new_id)) == 1
    result = o.modify_bulk(conn_new, o.STUDIES, [new_id], replace_tags={"StudyDescription": "x"})
    assert len(result.studies) == 1 and not o.exists(conn_new, o.STUDIES, new_id)
