"""Tags, metadata and attachments of resources, on real servers."""
import io
import pickle

import pytest

import orthanc_fn as o
import orthanc_fn_helpers as h

UNKNOWN = "00000000-00000000-00000000-00000000-00000000"


def _instance(conn, tags=None):
    return o.upload(conn, h.generate_test_dicom_file(8, 8, tags))[0]


def _with_private_tags(data):
    """The DICOM ``data`` with two private tags Orthanc has no keyword for, and a binary one."""
    import pydicom
    ds = pydicom.dcmread(io.BytesIO(data))
    ds.add_new(0x00091010, "LO", "first private")
    ds.add_new(0x00091011, "LO", "second private")
    ds.add_new(0x00290010, "LO", "MYCREATOR")
    ds.add_new(0x00291010, "OB", b"\x01\x02\x03\x04")
    out = io.BytesIO()
    ds.save_as(out)
    return out.getvalue()


def test_get_tags_has_keyword_keys_and_answers_tag_number_lookups(conn_a):
    instance_id = _instance(conn_a, {"PatientID": "TAGS-1", "PatientSex": "F"})
    tags = o.get_tags(conn_a, instance_id)
    assert tags["PatientID"] == "TAGS-1"
    assert tags["0010,0020"] == tags["0010-0020"] == tags["00100020"] == "TAGS-1"
    assert tags["0010,0040"] == tags["0010-0040"] == "F"
    assert "0010,0020" in tags and tags.get("00100020") == "TAGS-1"
    assert "0010,0021" not in tags and tags.get("0010,0021", "none") == "none"


def test_get_tags_gives_sequences_as_lists_of_tags_with_the_same_lookups(conn_a):
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence
    items = []
    for code in ("A1", "B2"):
        item = Dataset()
        item.CodeValue, item.CodeMeaning = code, "meaning " + code
        items.append(item)
    instance_id = _instance(conn_a, {"ProcedureCodeSequence": Sequence(items)})
    tags = o.get_tags(conn_a, instance_id)
    sequence = tags["0008,1032"]
    assert sequence is tags["ProcedureCodeSequence"]
    assert tags.types["ProcedureCodeSequence"] == "Sequence"
    assert [item["CodeValue"] for item in sequence] == ["A1", "B2"]
    assert sequence[1]["0008-0104"] == "meaning B2"


def test_get_tags_keeps_private_tags_apart_and_null_values(conn_a):
    data = _with_private_tags(h.generate_test_dicom_file(8, 8))
    tags = o.get_tags(conn_a, o.upload(conn_a, data)[0])
    assert tags["0009,1010"] == "first private" and tags["0009,1011"] == "second private"
    assert tags["00291010"] is None and tags.types["0029,1010"] == "Null"
    assert "PixelData" in tags and tags["PixelData"] is None


def test_get_simplified_tags_returns_orthancs_plain_dict(conn_a):
    instance_id = _instance(conn_a, {"PatientID": "SIMPLE-1"})
    tags = o.get_simplified_tags(conn_a, instance_id)
    assert type(tags) is dict and tags["PatientID"] == "SIMPLE-1"


def test_get_tags_raises_not_found_for_an_unknown_instance(conn_a):
    with pytest.raises(o.NotFound):
        o.get_tags(conn_a, UNKNOWN)


def test_tags_pickle_with_their_types_and_lookups():
    tags = o.Tags._from_orthanc({
        "0010,0020": {"Name": "PatientID", "Type": "String", "Value": "P"},
        "0009,1010": {"Name": "Unknown Tag & Data", "Type": "Null", "Value": None}})
    copy = pickle.loads(pickle.dumps(tags))
    assert copy == tags and copy["00100020"] == "P" and copy.types == tags.types
    assert dict(copy) == {"PatientID": "P", "0009,1010": None}


@pytest.mark.parametrize("name", [1024, "1025", 65535, "Comment"])
def test_string_metadata_round_trips_with_a_number_or_a_declared_name(conn_a, name):
    instance_id = _instance(conn_a)
    o.set_string_metadata(conn_a, o.INSTANCES, instance_id, name, "héllo wörld")
    assert o.get_string_metadata(conn_a, o.INSTANCES, instance_id, name) == "héllo wörld"


def test_string_metadata_works_on_a_study(conn_a):
    study_id = o.get_parent_id(conn_a, o.INSTANCES, _instance(conn_a), o.STUDIES)
    o.set_string_metadata(conn_a, o.STUDIES, study_id, 2001, "on the study")
    assert o.get_string_metadata(conn_a, "Study", study_id, 2001) == "on the study"


def test_get_string_metadata_returns_the_default_only_when_the_metadata_is_missing(conn_a):
    instance_id = _instance(conn_a)
    assert o.get_string_metadata(conn_a, o.INSTANCES, instance_id, 1030) is None
    assert o.get_string_metadata(conn_a, o.INSTANCES, instance_id, 1030, "none") == "none"
    o.set_string_metadata(conn_a, o.INSTANCES, instance_id, 1030, "")
    assert o.get_string_metadata(conn_a, o.INSTANCES, instance_id, 1030, "none") == ""


@pytest.mark.parametrize("call", [
    lambda c: o.get_string_metadata(c, o.STUDIES, UNKNOWN, 1024, default="x"),
    lambda c: o.get_binary_metadata(c, o.STUDIES, UNKNOWN, 1024, default=b"x"),
    lambda c: o.has_metadata(c, o.STUDIES, UNKNOWN, 1024),
    lambda c: o.set_string_metadata(c, o.STUDIES, UNKNOWN, 1024, "x"),
    lambda c: o.delete_metadata(c, o.STUDIES, UNKNOWN, 1024),
    lambda c: o.get_string_metadata_with_revision(c, o.STUDIES, UNKNOWN, 1024, default="x"),
    lambda c: o.get_binary_metadata_with_revision(c, o.STUDIES, UNKNOWN, 1024, default=b"x"),
    lambda c: o.get_all_metadata(c, o.STUDIES, UNKNOWN),
    lambda c: o.get_shared_tags(c, o.STUDIES, UNKNOWN),
], ids=["get_string", "get_binary", "has", "set", "delete", "string_with_revision",
        "binary_with_revision", "all", "shared_tags"])
def test_metadata_of_an_unknown_resource_raises_not_found(conn_a, call):
    with pytest.raises(o.NotFound):
        call(conn_a)


@pytest.mark.parametrize("call", [
    lambda c, i: o.get_string_metadata(c, o.INSTANCES, i, "NotDeclared", default="x"),
    lambda c, i: o.set_string_metadata(c, o.INSTANCES, i, "NotDeclared", "x"),
    lambda c, i: o.has_metadata(c, o.INSTANCES, i, "NotDeclared"),
], ids=["get", "set", "has"])
def test_an_undeclared_metadata_name_raises_not_found_naming_user_metadata(conn_a, call):
    instance_id = _instance(conn_a)
    with pytest.raises(o.NotFound) as info:
        call(conn_a, instance_id)
    assert "'NotDeclared'" in str(info.value) and "UserMetadata" in str(info.value)
    error = info.value
    assert error.status == 404 and error.url.endswith(f"{instance_id}/metadata/NotDeclared")


@pytest.mark.parametrize("name", [0, 1023, 65536, -1])
def test_a_metadata_number_outside_the_user_range_is_refused(conn_a, name):
    with pytest.raises(o.OrthancValueError):
        o.set_string_metadata(conn_a, o.INSTANCES, "any-id", name, "x")


def test_binary_metadata_round_trips_bytes(conn_a):
    instance_id = _instance(conn_a)
    content = bytes(range(256)) * 2
    o.set_binary_metadata(conn_a, o.INSTANCES, instance_id, 1040, content)
    assert o.get_binary_metadata(conn_a, o.INSTANCES, instance_id, 1040) == content
    assert o.get_binary_metadata(conn_a, o.INSTANCES, instance_id, 1041, b"-") == b"-"


def test_has_metadata_tells_a_set_metadata_from_a_missing_one(conn_a):
    instance_id = _instance(conn_a)
    o.set_string_metadata(conn_a, o.INSTANCES, instance_id, "Comment", "x")
    assert o.has_metadata(conn_a, o.INSTANCES, instance_id, "Comment")
    assert not o.has_metadata(conn_a, o.INSTANCES, instance_id, 1050)


def test_delete_metadata_removes_it(conn_a):
    instance_id = _instance(conn_a)
    o.set_string_metadata(conn_a, o.INSTANCES, instance_id, 1060, "x")
    o.delete_metadata(conn_a, o.INSTANCES, instance_id, 1060)
    assert not o.has_metadata(conn_a, o.INSTANCES, instance_id, 1060)


def test_delete_metadata_raises_not_found_when_missing(conn_a):
    with pytest.raises(o.NotFound):
        o.delete_metadata(conn_a, o.INSTANCES, _instance(conn_a), 1061)


def test_metadata_default_and_unknown_resource_behave_the_same_on_orthanc_112_and_newer(
        conn_new):
    instance_id = _instance(conn_new)
    assert o.get_string_metadata(conn_new, o.INSTANCES, instance_id, 1024, "d") == "d"
    o.set_string_metadata(conn_new, o.INSTANCES, instance_id, "Comment", "new")
    assert o.get_string_metadata(conn_new, o.INSTANCES, instance_id, "Comment") == "new"
    with pytest.raises(o.NotFound):
        o.get_string_metadata(conn_new, o.INSTANCES, UNKNOWN, 1024, "d")


def test_attachment_round_trips_bytes_and_is_replaced_by_a_second_set(conn_a):
    instance_id = _instance(conn_a)
    o.set_attachment(conn_a, o.INSTANCES, instance_id, 1100, b"\x00first")
    o.set_attachment(conn_a, o.INSTANCES, instance_id, 1100, b"\x00second")
    assert o.get_attachment(conn_a, o.INSTANCES, instance_id, 1100) == b"\x00second"


def test_delete_attachment_removes_it(conn_a):
    instance_id = _instance(conn_a)
    o.set_attachment(conn_a, o.INSTANCES, instance_id, 1101, b"x")
    o.delete_attachment(conn_a, o.INSTANCES, instance_id, 1101)
    with pytest.raises(o.NotFound):
        o.get_attachment(conn_a, o.INSTANCES, instance_id, 1101)


def test_get_attachment_raises_not_found_when_missing(conn_a):
    with pytest.raises(o.NotFound):
        o.get_attachment(conn_a, o.INSTANCES, _instance(conn_a), 1102)


def test_an_undeclared_attachment_name_raises_not_found_naming_user_content_type(conn_a):
    with pytest.raises(o.NotFound) as info:
        o.set_attachment(conn_a, o.INSTANCES, _instance(conn_a), "report", b"x")
    assert "UserContentType" in str(info.value)


# ---- metadata with revision and a default, every metadata at once, shared tags

def test_metadata_with_revision_returns_the_default_and_no_revision_when_missing(conn_a):
    instance_id = _instance(conn_a)
    assert o.get_string_metadata_with_revision(
        conn_a, o.INSTANCES, instance_id, 1032, default="none") == ("none", None)
    assert o.get_binary_metadata_with_revision(
        conn_a, o.INSTANCES, instance_id, 1032, default=None) == (None, None)


def test_metadata_with_revision_and_a_default_returns_the_value_when_present(conn_a):
    instance_id = _instance(conn_a)
    o.set_string_metadata(conn_a, o.INSTANCES, instance_id, 1033, "here")
    value, revision = o.get_string_metadata_with_revision(
        conn_a, o.INSTANCES, instance_id, 1033, default="none")
    assert value == "here" and revision
    assert o.get_binary_metadata_with_revision(
        conn_a, o.INSTANCES, instance_id, 1033, default=b"") == (b"here", revision)


def test_metadata_with_revision_without_a_default_still_raises_not_found_when_missing(conn_a):
    with pytest.raises(o.NotFound):
        o.get_string_metadata_with_revision(conn_a, o.INSTANCES, _instance(conn_a), 1034)


def test_get_all_metadata_returns_orthancs_and_user_metadata_in_one_dict(conn_a):
    instance_id = _instance(conn_a)
    o.set_string_metadata(conn_a, o.INSTANCES, instance_id, "Comment", "declared")
    o.set_string_metadata(conn_a, o.INSTANCES, instance_id, 1045, "by number")
    metadata = o.get_all_metadata(conn_a, o.INSTANCES, instance_id)
    assert metadata["Comment"] == "declared" and metadata["1045"] == "by number"
    assert metadata["TransferSyntax"] == "1.2.840.10008.1.2.1"
    assert metadata["Origin"] == "RestApi"


def test_get_shared_tags_of_a_study_keeps_what_its_instances_share(conn_a):
    files = h.generate_test_study(2, 2, {"StudyDescription": "SHARED", "PatientName": "S^T"},
                                  width=8, height=8)
    ids = [i for data in files for i in o.upload(conn_a, data)]
    study_id = o.get_parent_id(conn_a, o.INSTANCES, ids[0], o.STUDIES)
    shared = o.get_shared_tags(conn_a, o.STUDIES, study_id)
    assert isinstance(shared, o.Tags)
    assert shared["StudyDescription"] == "SHARED" and shared["0010,0010"] == "S^T"
    assert "SOPInstanceUID" not in shared and "SeriesInstanceUID" not in shared


def test_get_shared_tags_of_an_instance_is_all_its_tags(conn_a):
    instance_id = _instance(conn_a)
    assert o.get_shared_tags(conn_a, o.INSTANCES, instance_id) == o.get_tags(conn_a, instance_id)


# ---- revisions ----

def test_get_string_metadata_with_revision_returns_the_value_and_a_revision(conn_a):
    instance_id = _instance(conn_a)
    o.set_string_metadata(conn_a, o.INSTANCES, instance_id, 1024, "héllo")
    value, revision = o.get_string_metadata_with_revision(conn_a, o.INSTANCES, instance_id, 1024)
    assert value == "héllo"
    assert revision and '"' not in revision


def test_get_metadata_with_revision_raises_not_found_when_missing(conn_a):
    with pytest.raises(o.NotFound):
        o.get_string_metadata_with_revision(conn_a, o.INSTANCES, _instance(conn_a), 1025)


def test_a_stale_metadata_revision_raises_conflict_and_the_current_one_works(conn_rev):
    instance_id = _instance(conn_rev)
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
    instance_id = _instance(conn_rev)
    o.set_string_metadata(conn_rev, o.INSTANCES, instance_id, 1024, "one")
    with pytest.raises(o.Conflict):
        o.set_string_metadata(conn_rev, o.INSTANCES, instance_id, 1024, "two")


def test_binary_metadata_revisions_guard_writes_too(conn_rev):
    instance_id = _instance(conn_rev)
    o.set_binary_metadata(conn_rev, o.INSTANCES, instance_id, 1030, b"\x00\x01")
    data, stale = o.get_binary_metadata_with_revision(conn_rev, o.INSTANCES, instance_id, 1030)
    assert data == b"\x00\x01"
    o.set_binary_metadata(conn_rev, o.INSTANCES, instance_id, 1030, b"\x02", revision=stale)
    with pytest.raises(o.Conflict):
        o.set_binary_metadata(conn_rev, o.INSTANCES, instance_id, 1030, b"\x03", revision=stale)


def test_delete_metadata_with_a_stale_revision_raises_conflict_and_keeps_it(conn_rev):
    instance_id = _instance(conn_rev)
    o.set_string_metadata(conn_rev, o.INSTANCES, instance_id, 1024, "one")
    _, stale = o.get_string_metadata_with_revision(conn_rev, o.INSTANCES, instance_id, 1024)
    o.set_string_metadata(conn_rev, o.INSTANCES, instance_id, 1024, "two", revision=stale)
    with pytest.raises(o.Conflict):
        o.delete_metadata(conn_rev, o.INSTANCES, instance_id, 1024, revision=stale)
    _, current = o.get_string_metadata_with_revision(conn_rev, o.INSTANCES, instance_id, 1024)
    o.delete_metadata(conn_rev, o.INSTANCES, instance_id, 1024, revision=current)
    assert not o.has_metadata(conn_rev, o.INSTANCES, instance_id, 1024)


def test_a_stale_attachment_revision_raises_conflict_and_the_current_one_works(conn_rev):
    instance_id = _instance(conn_rev)
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
    instance_id = _instance(conn_a)
    o.set_string_metadata(conn_a, o.INSTANCES, instance_id, 1024, "one")
    o.set_string_metadata(conn_a, o.INSTANCES, instance_id, 1024, "two")
    assert o.get_string_metadata(conn_a, o.INSTANCES, instance_id, 1024) == "two"
