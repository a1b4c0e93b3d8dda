"""Labels: on Orthanc 1.12 and 1.13 they work and filter find; on 1.10 every call needs 1.12.0."""
import pytest

import orthanc_fn as o


def test_add_label_then_get_labels_lists_it(conn_new, upload_study):
    study_id = upload_study(conn_new, 1, 1).id
    o.add_label(conn_new, o.STUDIES, study_id, "urgent")
    o.add_label(conn_new, "Study", study_id, "reviewed")
    assert sorted(o.get_labels(conn_new, o.STUDIES, study_id)) == ["reviewed", "urgent"]


def test_delete_label_removes_only_that_label(conn_new, upload_study):
    study_id = upload_study(conn_new, 1, 1).id
    o.add_label(conn_new, o.STUDIES, study_id, "a")
    o.add_label(conn_new, o.STUDIES, study_id, "b")
    o.delete_label(conn_new, o.STUDIES, study_id, "a")
    assert o.get_labels(conn_new, o.STUDIES, study_id) == ["b"]


def test_get_all_labels_lists_the_labels_of_every_resource(conn_new, upload_study):
    first, second = upload_study(conn_new, 1, 1).id, upload_study(conn_new, 1, 1).id
    o.add_label(conn_new, o.STUDIES, first, "one")
    instance_id = o.get_children_ids(conn_new, o.STUDIES, second, o.INSTANCES)[0]
    o.add_label(conn_new, o.INSTANCES, instance_id, "two")
    assert sorted(o.get_all_labels(conn_new)) == ["one", "two"]


def test_get_labels_raises_not_found_for_an_unknown_resource(conn_new):
    with pytest.raises(o.NotFound):
        o.get_labels(conn_new, o.STUDIES, "00000000-00000000-00000000-00000000-00000000")


def test_a_label_call_on_orthanc_1_12_and_newer_sends_no_get_system(conn_new, upload_study,
                                                                   count_requests):
    study_id = upload_study(conn_new, 1, 1).id
    count_requests.clear()
    o.add_label(conn_new, o.STUDIES, study_id, "seen")
    o.get_labels(conn_new, o.STUDIES, study_id)
    o.get_all_labels(conn_new)
    o.delete_label(conn_new, o.STUDIES, study_id, "seen")
    assert [(method, url.rsplit("/", 1)[-1]) for method, url, _ in count_requests] == [
        ("PUT", "seen"), ("GET", "labels"), ("GET", "labels"), ("DELETE", "seen")]


def test_add_label_refuses_a_label_that_is_not_a_path_segment(conn_new, upload_study):
    study_id = upload_study(conn_new, 1, 1).id
    with pytest.raises(o.OrthancValueError):
        o.add_label(conn_new, o.STUDIES, study_id, "../x")


@pytest.mark.parametrize("constraint, expected", [
    ("All", ["both"]), ("Any", ["both", "red"]), ("None", ["none"])])
def test_find_filters_by_labels_with_each_constraint(conn_new, constraint, expected, upload_study):
    studies = {name: upload_study(conn_new, 1, 1).id for name in ("both", "red", "none")}
    o.add_label(conn_new, o.STUDIES, studies["both"], "red")
    o.add_label(conn_new, o.STUDIES, studies["both"], "blue")
    o.add_label(conn_new, o.STUDIES, studies["red"], "red")
    found = o.find(conn_new, o.STUDIES, {}, expand=False, labels=["red", "blue"],
                   labels_constraint=constraint)
    assert sorted(found) == sorted(studies[name] for name in expected)


def test_iter_find_filters_by_a_single_label(conn_new, upload_study):
    labelled = upload_study(conn_new, 1, 1).id
    upload_study(conn_new, 1, 1).id
    o.add_label(conn_new, o.STUDIES, labelled, "only")
    assert list(o.iter_find(conn_new, o.STUDIES, {}, expand=False, labels="only")) == [labelled]


@pytest.mark.parametrize("call", [
    lambda c, s: o.get_labels(c, o.STUDIES, s),
    lambda c, s: o.add_label(c, o.STUDIES, s, "x"),
    lambda c, s: o.delete_label(c, o.STUDIES, s, "x"),
    lambda c, s: o.get_all_labels(c),
    lambda c, s: o.find(c, o.STUDIES, {}, labels=["x"]),
    lambda c, s: list(o.iter_find(c, o.STUDIES, {}, labels=["x"])),
], ids=["get_labels", "add_label", "delete_label", "get_all_labels", "find", "iter_find"])
def test_every_label_function_raises_unsupported_by_server_on_orthanc_1_10(conn_a, call,
                                                                          upload_study):
    study_id = upload_study(conn_a, 1, 1).id
    with pytest.raises(o.UnsupportedByServer) as info:
        call(conn_a, study_id)
    assert "1.12.0" in str(info.value) and info.value.needed == (1, 12, 0)
    assert info.value.actual[:2] == (1, 10)


@pytest.mark.v113
def test_find_with_no_label_and_the_none_constraint_finds_the_unlabelled_on_orthanc_1_13(
        conn_113, upload_study):
    labelled, unlabelled = upload_study(conn_113, 1, 1).id, upload_study(conn_113, 1, 1).id
    o.add_label(conn_113, o.STUDIES, labelled, "red")
    assert o.find(conn_113, o.STUDIES, {}, expand=False, labels=[],
                  labels_constraint="None") == [unlabelled]


@pytest.mark.v112
def test_find_with_no_label_and_the_none_constraint_raises_unsupported_on_orthanc_1_12_7(
        conn_112, count_requests):
    """Orthanc 1.12.7 would ignore the filter and match every study."""
    with pytest.raises(o.UnsupportedByServer) as info:
        o.find(conn_112, o.STUDIES, {}, labels=[], labels_constraint="None")
    assert info.value.needed == (1, 12, 11) and "1.12.11" in str(info.value)
    assert [method for method, _, _ in count_requests] == ["GET"]
