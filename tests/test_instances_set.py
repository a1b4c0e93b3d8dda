"""InstancesSet: laws of the pure value, and the server functions that build and act on sets."""
import io
import json
import pickle
import zipfile

import pydicom
import pytest
from hypothesis import given
from hypothesis import strategies as st

import orthanc_fn as o
import orthanc_fn_helpers as h

# ---- pure laws ----

# Every instance belongs to one series, chosen from its id, so any two generated sets agree.
_ids = st.text(alphabet="0123456789abcdef-", min_size=1, max_size=6)


def _series_of(instance_id):
    return "series-" + str(len(instance_id) % 3)


@st.composite
def sets(draw, study_id="study"):
    instances = draw(st.lists(_ids, unique=True, max_size=12))
    return o.InstancesSet(study_id, [(_series_of(i), (i,)) for i in instances])


def _pairs(s):
    return {(series_id, i) for series_id, ids in s.series.items() for i in ids}


@given(sets(), st.sets(_ids))
def test_filter_partitions_the_set_by_the_predicate(s, chosen):
    kept, removed = s.filter(lambda series_id, instance_id: instance_id in chosen)
    assert _pairs(kept) | _pairs(removed) == _pairs(s)
    assert not _pairs(kept) & _pairs(removed)
    assert all(i in chosen for i in kept.instances_ids)
    assert kept.study_id == removed.study_id == s.study_id


@given(sets(), st.sets(_ids))
def test_filtering_twice_equals_filtering_once(s, chosen):
    keep = lambda series_id, instance_id: instance_id in chosen  # noqa: E731
    once = s.filter(keep)[0]
    assert once.filter(keep)[0] == once


@given(sets(), sets())
def test_union_then_difference_is_included_in_the_first_set(a, b):
    assert _pairs(a.union(b).difference(b)) <= _pairs(a)


@given(sets(), sets())
def test_a_union_contains_both_inputs_and_nothing_else(a, b):
    assert _pairs(a.union(b)) == _pairs(a) | _pairs(b)


@given(sets(), sets())
def test_id_changes_iff_the_instance_ids_change(a, b):
    assert (a.id == b.id) == (set(a.instances_ids) == set(b.instances_ids))


@given(sets())
def test_the_id_ignores_the_study_and_series_and_is_a_sha1_of_the_sorted_ids(s):
    import hashlib
    moved = o.InstancesSet("other", {"one-series": s.instances_ids})
    assert moved.id == s.id == hashlib.sha1(
        "\n".join(sorted(s.instances_ids)).encode()).hexdigest()


@given(sets())
def test_a_set_pickles_to_an_equal_set_with_the_same_hash(s):
    copy = pickle.loads(pickle.dumps(s))
    assert copy == s and hash(copy) == hash(s) and type(copy) is o.InstancesSet


@given(sets())
def test_a_set_survives_a_json_round_trip_of_its_parts(s):
    text = json.dumps({"study_id": s.study_id, "series": dict(s.series)})
    assert o.InstancesSet(**json.loads(text)) == s


@given(sets(), st.randoms())
def test_equality_and_hash_do_not_depend_on_the_order_of_construction(s, rnd):
    pairs = [(series_id, i) for series_id, ids in s.series.items() for i in ids]
    rnd.shuffle(pairs)
    other = o.InstancesSet(s.study_id, [(series_id, [i]) for series_id, i in pairs])
    assert other == s and hash(other) == hash(s)
    assert other.instances_ids == s.instances_ids


@given(sets())
def test_len_counts_instances_and_an_empty_set_is_false(s):
    assert len(s) == len(s.instances_ids) == len(set(s.instances_ids))
    assert bool(s) == (len(s) > 0)


@given(sets())
def test_without_series_removes_exactly_that_series(s):
    for series_id in s.series_ids:
        rest = s.without_series(series_id)
        assert series_id not in rest.series
        assert _pairs(rest) == {p for p in _pairs(s) if p[0] != series_id}


@given(sets(), st.sets(_ids))
def test_without_instances_removes_exactly_those_instances(s, gone):
    assert set(s.without_instances(gone).instances_ids) == set(s.instances_ids) - gone


def test_a_set_copies_its_input_and_cannot_be_changed():
    series = {"s": ["i1", "i2"]}
    s = o.InstancesSet("st", series)
    series["s"].append("i3")
    assert s.instances_ids == ("i1", "i2")
    with pytest.raises(TypeError):
        s.series["s"] = ("x",)
    with pytest.raises(AttributeError):
        s.series._items = ()
    with pytest.raises(AttributeError):
        s.study_id = "other"


def test_a_series_without_instances_is_dropped():
    assert o.InstancesSet("st", {"a": [], "b": ["1"]}).series_ids == ("b",)


def test_a_string_instead_of_a_list_of_instance_ids_is_refused():
    with pytest.raises(o.OrthancValueError) as info:
        o.InstancesSet("st", {"s": "i1"})
    assert "'i1'" in str(info.value)


def test_a_union_of_two_studies_is_refused():
    with pytest.raises(o.OrthancValueError):
        o.InstancesSet("st1", {"a": ["1"]}).union(o.InstancesSet("st2", {"b": ["2"]}))


# ---- server ----

def _tag(conn, instance_id, keyword):
    return o._get(conn, f"/instances/{instance_id}/simplified-tags").get(keyword)


def _read(data):
    return pydicom.dcmread(io.BytesIO(data))


def test_instances_set_from_study_holds_every_series_and_instance(conn_a, upload_study):
    uploaded = upload_study(conn_a, 2, 3)
    study_id, ids = uploaded.id, uploaded.instances_ids
    s = o.instances_set_from_study(conn_a, study_id)
    assert s.study_id == study_id
    assert sorted(s.instances_ids) == sorted(ids)
    assert sorted(s.series_ids) == sorted(o._get(conn_a, f"/studies/{study_id}")["Series"])


def test_instances_set_from_study_sends_exactly_one_request(conn_a, count_requests, upload_study):
    study_id = upload_study(conn_a, 3, 2).id
    count_requests.clear()
    s = o.instances_set_from_study(conn_a, study_id)
    assert len(s) == 6
    assert [(m, url) for m, url, _ in count_requests] == [
        ("GET", f"{conn_a.url}/studies/{study_id}/instances")]


def test_instances_set_from_series_and_from_instances_match_the_study_snapshot(
        conn_a, upload_study):
    uploaded = upload_study(conn_a, 1, 3)
    study_id, ids = uploaded.id, uploaded.instances_ids
    whole = o.instances_set_from_study(conn_a, study_id)
    assert o.instances_set_from_series(conn_a, whole.series_ids[0]) == whole
    assert o.instances_set_from_instances(conn_a, ids) == whole


def test_instances_set_from_instances_names_the_unknown_ids(conn_a, upload_study):
    ids = upload_study(conn_a, 1, 1).instances_ids
    with pytest.raises(o.MissingInstances) as info:
        o.instances_set_from_instances(conn_a, [ids[0], "0000-no-such-instance"])
    assert "0000-no-such-instance" in str(info.value)
    assert info.value.ids == ["0000-no-such-instance"]


def test_instances_set_from_instances_refuses_instances_of_two_studies(conn_a, upload_study):
    first = upload_study(conn_a, 1, 1).instances_ids
    second = upload_study(conn_a, 1, 1).instances_ids
    with pytest.raises(o.OrthancValueError):
        o.instances_set_from_instances(conn_a, first + second)


def test_delete_instances_set_leaves_the_instances_that_arrived_later(conn_a):
    files = h.generate_test_study(series=2, instances=2)
    early = [i for f in files[:2] for i in o.upload(conn_a, f)]
    study_id = o._get(conn_a, f"/instances/{early[0]}/study")["ID"]
    snapshot = o.instances_set_from_study(conn_a, study_id)
    late = [i for f in files[2:] for i in o.upload(conn_a, f)]
    o.delete_instances_set(conn_a, snapshot)
    assert sorted(o.instances_set_from_study(conn_a, study_id).instances_ids) == sorted(late)


_UIDS = ["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"]


def test_modify_keeping_the_uids_rewrites_in_place_with_overwrite_instances(conn_a, upload_study):
    study_id = upload_study(conn_a, 2, 2, {"InstitutionName": "BEFORE"}).id
    s = o.instances_set_from_study(conn_a, study_id)
    modified = o.modify_instances_set(conn_a, s, replace_tags={"InstitutionName": "AFTER"},
                                      keep_tags=_UIDS, keep_source=True, force=True)
    assert modified == s
    assert {_tag(conn_a, i, "InstitutionName") for i in s.instances_ids} == {"AFTER"}
    assert o.instances_set_from_study(conn_a, study_id) == s


def test_modify_keeping_the_uids_without_overwrite_instances_raises_and_keeps_originals(
        conn_b, upload_study):
    study_id = upload_study(conn_b, 2, 2, {"InstitutionName": "BEFORE"}).id
    o._put(conn_b, f"/studies/{study_id}/metadata/Comment", body=b"kept")
    s = o.instances_set_from_study(conn_b, study_id)
    with pytest.raises(o.JobFailed) as info:
        o.modify_instances_set(conn_b, s, replace_tags={"InstitutionName": "AFTER"},
                               keep_tags=_UIDS, keep_source=False, force=True)
    assert "OverwriteInstances" in str(info.value) and "untouched" in str(info.value)
    assert o.instances_set_from_study(conn_b, study_id) == s
    assert {_tag(conn_b, i, "InstitutionName") for i in s.instances_ids} == {"BEFORE"}
    assert o._get(conn_b, f"/studies/{study_id}/metadata/Comment", raw=True) == b"kept"


def test_modify_with_new_uids_keeps_the_source_by_default(conn_b, upload_study):
    study_id = upload_study(conn_b, 2, 2, {"InstitutionName": "BEFORE"}).id
    s = o.instances_set_from_study(conn_b, study_id)
    modified = o.modify_instances_set(conn_b, s, replace_tags={"InstitutionName": "AFTER"})
    assert len(modified) == len(s) and not set(modified.instances_ids) & set(s.instances_ids)
    assert {_tag(conn_b, i, "InstitutionName") for i in modified.instances_ids} == {"AFTER"}
    assert set(o.instances_set_from_study(conn_b, study_id).instances_ids) == set(
        s.instances_ids) | set(modified.instances_ids)


def test_modify_without_keep_source_deletes_the_originals_once_the_copies_exist(
        conn_b, upload_study):
    study_id = upload_study(conn_b, 2, 2).id
    s = o.instances_set_from_study(conn_b, study_id)
    modified = o.modify_instances_set(conn_b, s, replace_tags={"InstitutionName": "NEW"},
                                      keep_source=False)
    assert o.instances_set_from_study(conn_b, modified.study_id) == modified
    assert not any(o.exists(conn_b, o.INSTANCES, i) for i in s.instances_ids)


def test_modify_of_a_study_uid_refused_by_orthanc_110_raises_why_and_keeps_the_originals(
        make_server, upload_study):
    conn = make_server("b110", tier="1.10").conn
    study_id = upload_study(conn, 2, 2).id
    s = o.instances_set_from_study(conn, study_id)
    with pytest.raises(o.JobFailed) as info:
        o.modify_instances_set(conn, s, replace_tags={"StudyInstanceUID": "1.2.3.4"},
                               force=True, keep_source=False)
    assert "StudyInstanceUID" in str(info.value)
    assert o.instances_set_from_study(conn, study_id) == s


def test_modify_of_the_study_uid_on_orthanc_112_and_newer_returns_the_set_of_the_new_study(
        conn_new, upload_study):
    study_id = upload_study(conn_new, 2, 2).id
    s = o.instances_set_from_study(conn_new, study_id)
    modified = o.modify_instances_set(conn_new, s, replace_tags={"StudyInstanceUID": "1.2.3.4"},
                                      force=True, keep_source=False)
    assert modified.study_id != study_id and len(modified) == len(s)
    assert o.instances_set_from_study(conn_new, modified.study_id) == modified
    assert not o.exists(conn_new, o.STUDIES, study_id)


def test_download_instances_set_writes_one_zip_with_every_instance(conn_a, tmp_path, upload_study):
    uploaded = upload_study(conn_a, 2, 2)
    study_id, ids = uploaded.id, uploaded.instances_ids
    s = o.instances_set_from_study(conn_a, study_id).without_instances(ids[0])
    path = o.download_instances_set(conn_a, s, tmp_path / "set.zip")
    with zipfile.ZipFile(path) as archive:
        names = [n for n in archive.namelist() if not n.endswith("/")]
        uids = {_read(archive.read(n)).SOPInstanceUID for n in names}
    assert len(names) == 3
    assert uids == {_tag(conn_a, i, "SOPInstanceUID") for i in s.instances_ids}


def test_modify_keeping_the_uids_without_overwrite_instances_raises_on_orthanc_112_and_newer(
        conn_new, upload_study):
    study_id = upload_study(conn_new, 2, 2, {"InstitutionName": "BEFORE"}).id
    s = o.instances_set_from_study(conn_new, study_id)
    with pytest.raises(o.JobFailed) as info:
        o.modify_instances_set(conn_new, s, replace_tags={"InstitutionName": "AFTER"},
                               keep_tags=_UIDS, keep_source=False, force=True)
    assert "OverwriteInstances" in str(info.value)
    assert o.instances_set_from_study(conn_new, study_id) == s
    assert {_tag(conn_new, i, "InstitutionName") for i in s.instances_ids} == {"BEFORE"}


def test_modify_keeping_the_uids_rewrites_in_place_on_orthanc_112_and_newer_with_overwrite(
        make_server, upload_study, new_tier):
    conn = make_server("ow" + new_tier.replace(".", ""), tier=new_tier,
                       config={"OverwriteInstances": True}).conn
    study_id = upload_study(conn, 2, 2, {"InstitutionName": "BEFORE"}).id
    s = o.instances_set_from_study(conn, study_id)
    modified = o.modify_instances_set(conn, s, replace_tags={"InstitutionName": "AFTER"},
                                      keep_tags=_UIDS, keep_source=False, force=True)
    assert modified == s == o.instances_set_from_study(conn, study_id)
    assert {_tag(conn, i, "InstitutionName") for i in s.instances_ids} == {"AFTER"}
