"""Find and statistics: lookup, find and its options, iter_find paging, daily stats."""
import datetime
import io
import json
import os
import time
import zipfile

import pydicom
import pytest
from pydicom.uid import generate_uid

import orthanc_fn as o
import orthanc_fn_helpers as h
import orthanc_rig
import postgres_rig


def _zip(files):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for n, data in enumerate(files):
            archive.writestr(f"{n}.dcm", data)
    return buffer.getvalue()


def _unique():
    return "U" + generate_uid()[-12:]


def _finds(requests):
    """The body of each /tools/find POST recorded by count_requests."""
    return [json.loads(k["body"]) for m, url, k in requests
            if m == "POST" and url.endswith("/tools/find")]


def _pages(requests):
    """(Since, Limit) of each /tools/find POST recorded by count_requests."""
    return [(b.get("Since"), b.get("Limit")) for b in _finds(requests)]


def _lists(requests, tag="StudyInstanceUID"):
    """How many identifiers each /tools/find after the first (the light one) listed."""
    return [len(b["Query"][tag].split("\\")) for b in _finds(requests)[1:]]


def _described(upload_study, conn, count):
    """``count`` one-instance studies sharing a new StudyDescription: (query, their ids)."""
    description = _unique()
    ids = [upload_study(conn, 1, 1, dict(StudyDescription=description)).id for _ in range(count)]
    return {"StudyDescription": description}, ids


# ---- lookup

def test_lookup_returns_the_study_id_for_its_study_instance_uid(conn_a, upload_study):
    uid = generate_uid()
    study_id = upload_study(conn_a, 1, 1, dict(StudyInstanceUID=uid)).id
    assert o.lookup(conn_a, o.STUDIES, uid) == study_id
    assert o.lookup(conn_a, "Study", uid) == study_id


def test_lookup_returns_none_for_an_unknown_dicom_id(conn_a):
    assert o.lookup(conn_a, o.STUDIES, generate_uid()) is None


def test_lookup_returns_none_when_the_id_belongs_to_another_level(conn_a, upload_study):
    uid = generate_uid()
    upload_study(conn_a, 1, 1, dict(StudyInstanceUID=uid))
    assert o.lookup(conn_a, o.SERIES, uid) is None


def test_lookup_raises_too_many_resources_found_for_a_uid_in_two_patients(conn_a, upload_study):
    uid = generate_uid()
    first = upload_study(conn_a, 1, 1, dict(StudyInstanceUID=uid, PatientID=_unique())).id
    second = upload_study(conn_a, 1, 1, dict(StudyInstanceUID=uid, PatientID=_unique())).id
    with pytest.raises(o.TooManyResourcesFound) as info:
        o.lookup(conn_a, o.STUDIES, uid)
    assert sorted(info.value.ids) == sorted([first, second]) and uid in str(info.value)


# ---- find

def test_find_returns_expanded_studies_matching_a_wildcard(conn_a, upload_study):
    name = _unique()
    study_id = upload_study(conn_a, 1, 1, dict(PatientName=name + "^ONE")).id
    upload_study(conn_a, 1, 1, dict(PatientName=_unique()))
    found = o.find(conn_a, o.STUDIES, {"PatientName": name + "*"})
    assert [s["ID"] for s in found] == [study_id]
    assert found[0]["PatientMainDicomTags"]["PatientName"] == name + "^ONE"


def test_find_returns_ids_without_expand(conn_a, upload_study):
    name = _unique()
    study_id = upload_study(conn_a, 1, 1, dict(PatientName=name)).id
    assert o.find(conn_a, o.STUDIES, {"PatientName": name}, expand=False) == [study_id]


def test_find_is_case_insensitive_when_asked(conn_a, upload_study):
    name = _unique()
    study_id = upload_study(conn_a, 1, 1, dict(PatientName=name)).id
    assert o.find(conn_a, o.STUDIES, {"PatientName": name.lower()}, expand=False) == []
    assert o.find(conn_a, o.STUDIES, {"PatientName": name.lower()}, expand=False,
                  case_sensitive=False) == [study_id]


def test_find_limit_and_since_select_a_window_of_the_matches(conn_a, upload_study):
    description = _unique()
    for _ in range(5):
        upload_study(conn_a, 1, 1, dict(StudyDescription=description))
    query = {"StudyDescription": description}
    everything = o.find(conn_a, o.STUDIES, query, expand=False)
    assert len(everything) == 5
    assert o.find(conn_a, o.STUDIES, query, expand=False, limit=2) == everything[:2]
    assert o.find(conn_a, o.STUDIES, query, expand=False, limit=2, since=2) == everything[2:4]
    assert o.find(conn_a, o.STUDIES, query, expand=False, since=3) == everything[3:]


def test_find_at_series_level_accepts_a_study_date_range(conn_a, upload_study):
    description = _unique()
    inside = upload_study(conn_a, 1, 1,
                          dict(StudyDescription=description, StudyDate="19990615")).id
    upload_study(conn_a, 1, 1, dict(StudyDescription=description, StudyDate="19990701"))
    found = o.find(conn_a, o.SERIES, {"StudyDescription": description,
                                      "StudyDate": "19990601-19990630"})
    assert [s["ParentStudy"] for s in found] == [inside]


def test_find_does_not_mutate_the_query(conn_a):
    query = {"PatientName": _unique()}
    o.find(conn_a, o.STUDIES, query, limit=1)
    assert list(query) == ["PatientName"]


@pytest.mark.parametrize("option, version", [
    ({"labels": ["x"]}, "1.12.0"),
    ({"labels": "x", "labels_constraint": "None"}, "1.12.0"),
    ({"requested_tags": ["StudyDescription"]}, "1.11.0"),
])
def test_find_refuses_options_that_orthanc_1_10_would_ignore(conn_a, option, version):
    with pytest.raises(o.UnsupportedByServer) as info:
        o.find(conn_a, o.STUDIES, {}, **option)
    assert version in str(info.value) and info.value.actual < info.value.needed


def test_find_refuses_an_unknown_labels_constraint(conn_a):
    with pytest.raises(o.OrthancValueError):
        o.find(conn_a, o.STUDIES, {}, labels=["x"], labels_constraint="Some")


def test_find_requested_tags_adds_them_on_orthanc_1_12_and_newer(conn_new, upload_study):
    upload_study(conn_new, 1, 1, dict(StudyDescription="desc", ReferringPhysicianName="DR^WHO"))
    found = o.find(conn_new, o.STUDIES, {}, requested_tags=["NumberOfStudyRelatedInstances"])
    assert found[0]["RequestedTags"]["NumberOfStudyRelatedInstances"] == "1"


# ---- iter_find

@pytest.mark.parametrize("count", [0, 1, 3, 4, 6, 7, 10])
def test_iter_find_returns_exactly_every_match_for_n_around_the_page_size(conn_a, count,
                                                                          upload_study):
    """On 1.10 (ids, then bulk-content batches two in flight), expanded and not."""
    description = _unique()
    expected = {upload_study(conn_a, 1, 1, dict(StudyDescription=description)).id
                for _ in range(count)}
    query = {"StudyDescription": description}
    found = list(o.iter_find(conn_a, o.STUDIES, query, page_size=3, expand=False))
    assert len(found) == count and set(found) == expected
    assert list(o.iter_find(conn_a, o.STUDIES, query, page_size=3)) == o.find(
        conn_a, o.STUDIES, query)


@pytest.mark.parametrize("count", [0, 2, 3, 4, 6, 7, 9, 10])
def test_iter_find_with_since_pages_returns_every_match_once_for_n_around_page_multiples(
        conn_new, count, upload_study):
    """Since pages, two in flight: a last page full, short or empty, each match once, in
    find's order."""
    description = _unique()
    for _ in range(count):
        upload_study(conn_new, 1, 1, dict(StudyDescription=description))
    options = dict(case_sensitive=False, requested_tags=["NumberOfStudyRelatedInstances"])
    found = list(o.iter_find(conn_new, o.STUDIES, {"StudyDescription": description},
                             page_size=3, **options))
    assert found == o.find(conn_new, o.STUDIES, {"StudyDescription": description}, **options)
    assert len({s["ID"] for s in found}) == count
    assert all(s["RequestedTags"] == {"NumberOfStudyRelatedInstances": "1"} for s in found)


def test_iter_find_on_orthanc_1_10_gets_the_ids_once_then_expands_them_a_page_at_a_time(
        conn_a, count_requests, upload_study):
    query, _ = _described(upload_study, conn_a, 4)
    count_requests.clear()
    found = list(o.iter_find(conn_a, o.STUDIES, query, page_size=3))
    posts = [url.split("/", 3)[3] for m, url, _ in count_requests if m == "POST"]
    assert posts == ["tools/find", "tools/bulk-content", "tools/bulk-content"]
    assert found == o.find(conn_a, o.STUDIES, query)


def test_iter_find_of_ids_on_orthanc_1_10_is_one_request_whatever_the_page_size(
        conn_a, count_requests, upload_study):
    query, expected = _described(upload_study, conn_a, 5)
    count_requests.clear()
    found = list(o.iter_find(conn_a, o.STUDIES, query, page_size=2, expand=False))
    assert sorted(found) == sorted(expected)
    assert [m for m, _, _ in count_requests] == ["GET", "POST"]


def test_iter_find_leaves_out_a_study_deleted_between_its_id_and_its_expansion(conn_a,
                                                                               upload_study):
    query, _ = _described(upload_study, conn_a, 4)
    ids = o.find(conn_a, o.STUDIES, query, expand=False)
    pages = o.iter_find(conn_a, o.STUDIES, query, page_size=2)
    first = next(pages)  # the ids are read, the first page expanded
    o.delete(conn_a, o.STUDIES, ids[2])
    assert [first["ID"]] + [s["ID"] for s in pages] == [ids[0], ids[1], ids[3]]


def test_iter_find_refuses_a_page_size_below_one(conn_a):
    with pytest.raises(o.OrthancValueError):
        list(o.iter_find(conn_a, o.STUDIES, {}, page_size=0))


@pytest.fixture(scope="module")
def server_5000(make_server):
    """A server holding 5,000 one-instance studies, uploaded as ZIPs of 1,000."""
    server = make_server("find5000")
    template = h.generate_test_dicom_file(1, 1, {"StudyDescription": "BULK5000"}, bits=8)
    import pydicom
    dataset = pydicom.dcmread(io.BytesIO(template))
    for batch in range(5):
        files = []
        for _ in range(1000):
            dataset.StudyInstanceUID = generate_uid()
            dataset.SeriesInstanceUID = generate_uid()
            dataset.SOPInstanceUID = dataset.file_meta.MediaStorageSOPInstanceUID = generate_uid()
            buffer = io.BytesIO()
            dataset.save_as(buffer)
            files.append(buffer.getvalue())
        assert len(o.upload(server.conn, _zip(files))) == 1000
    return server


def test_iter_find_returns_5000_studies_complete_and_without_duplicates(server_5000):
    conn = server_5000.conn
    found = list(o.iter_find(conn, o.STUDIES, {"StudyDescription": "BULK5000"},
                             page_size=1000, expand=False))
    assert len(found) == 5000 and len(set(found)) == 5000
    assert set(found) == set(o.get_all_ids(conn, o.STUDIES))


# ---- daily stats

@pytest.fixture
def dated(empty_a):
    """Studies on 2001-03-01 (2 studies, 3 series, 5 instances) and 2001-03-03 (1, 1, 1)."""
    for files in (h.generate_test_study(2, 2, {"StudyDate": "20010301"}),
                  h.generate_test_study(1, 1, {"StudyDate": "20010301"}),
                  h.generate_test_study(1, 1, {"StudyDate": "20010303"}),
                  h.generate_test_study(1, 1, {"StudyDate": "20010305"})):
        o.upload(empty_a, _zip(files))
    return empty_a


def _days(*counts):
    start = datetime.date(2001, 3, 1)
    return [(start + datetime.timedelta(days=n), c) for n, c in enumerate(counts)]


@pytest.mark.parametrize("level, counts", [
    (o.STUDIES, (2, 0, 1, 0)), (o.SERIES, (3, 0, 1, 0)), (o.INSTANCES, (5, 0, 1, 0))])
def test_get_daily_stats_counts_each_day_with_zeros(dated, level, counts):
    stats = o.get_daily_stats(dated, level, datetime.date(2001, 3, 1), "2001-03-04")
    assert stats == _days(*counts)
    assert stats[0].date == datetime.date(2001, 3, 1) and stats[0].count == counts[0]


def test_get_daily_stats_accepts_dicom_dates_and_a_single_day(dated):
    assert o.get_daily_stats(dated, "Study", "20010303", "20010303") == [
        (datetime.date(2001, 3, 3), 1)]


def test_get_daily_stats_defaults_to_the_last_8_days_ending_today(empty_a):
    today = datetime.date.today()
    o.upload(empty_a, h.generate_test_dicom_file(8, 8, {"StudyDate": today.strftime("%Y%m%d")}))
    stats = o.get_daily_stats(empty_a, o.STUDIES)
    assert [d for d, _ in stats] == [today - datetime.timedelta(days=n) for n in range(7, -1, -1)]
    assert [c for _, c in stats] == [0] * 7 + [1]


def test_daily_stats_over_30_days_make_exactly_one_http_request(dated, count_requests):
    stats = o.get_daily_stats(dated, o.STUDIES, "2001-02-15", "2001-03-16")
    assert len(stats) == 30 and sum(c for _, c in stats) == 4
    assert len(count_requests) == 1


@pytest.mark.parametrize("level, requests", [(o.SERIES, 1), (o.INSTANCES, 2)])
def test_daily_stats_request_count_does_not_grow_with_the_days(dated, count_requests, level,
                                                               requests):
    o.get_daily_stats(dated, level, "2001-03-01", "2001-03-02")
    assert len(count_requests) == requests
    o.get_daily_stats(dated, level, "2000-03-01", "2001-03-02")
    assert len(count_requests) == 2 * requests


def test_get_daily_stats_refuses_reversed_dates_and_the_patient_level(conn_a):
    with pytest.raises(o.OrthancValueError):
        o.get_daily_stats(conn_a, o.STUDIES, "2001-03-02", "2001-03-01")
    with pytest.raises(o.OrthancValueError):
        o.get_daily_stats(conn_a, o.PATIENTS)


def test_print_daily_stats_prints_one_line_per_day_with_iso_dates(dated, capsys):
    o.print_daily_stats(dated, o.INSTANCES, "2001-03-01", "2001-03-03")
    assert capsys.readouterr().out == "2001-03-01  5\n2001-03-02  0\n2001-03-03  1\n"


def test_iter_find_pages_completely_by_identifier_lists_on_orthanc_1_12_and_newer_too(
        conn_new, count_requests, upload_study):
    query, expected = _described(upload_study, conn_new, 7)
    count_requests.clear()
    found = list(o.iter_find(conn_new, o.STUDIES, query, page_size=3))
    assert _lists(count_requests) == [3, 3, 1]
    assert sorted(s["ID"] for s in found) == sorted(expected)
    assert found == o.find(conn_new, o.STUDIES, query)


def _assert_daily_stats_agree(conn):
    """Store a 2 x 2 study of 2001-03-01 and a 1 x 1 of 2001-03-03 on ``conn``, which holds
    nothing else of those days; its daily stats at each level must count them."""
    for files in (h.generate_test_study(2, 2, {"StudyDate": "20010301"}),
                  h.generate_test_study(1, 1, {"StudyDate": "20010303"})):
        o.upload(conn, _zip(files))
    for level, counts in ((o.STUDIES, (1, 0, 1)), (o.SERIES, (2, 0, 1)),
                          (o.INSTANCES, (4, 0, 1))):
        assert o.get_daily_stats(conn, level, "2001-03-01", "2001-03-03") == _days(*counts)


def test_daily_stats_agree_on_orthanc_1_12_and_newer(conn_new):
    _assert_daily_stats_agree(conn_new)


def test_iter_find_of_ids_on_orthanc_1_12_and_newer_is_one_request_in_the_order_asked(
        conn_new, count_requests, upload_study):
    by_id = _dated_studies(upload_study, conn_new, ["20040404", "20010101", "20030303"] * 2,
                           StudyDescription="Same")
    count_requests.clear()
    found = list(o.iter_find(conn_new, o.STUDIES, {"StudyDescription": "same"}, page_size=2,
                             expand=False, case_sensitive=False, order_by="-StudyDate"))
    assert sorted(found) == sorted(by_id)
    assert [by_id[i] for i in found] == ["20040404"] * 2 + ["20030303"] * 2 + ["20010101"] * 2
    assert _pages(count_requests) == [(None, None)]


def test_find_refuses_a_query_that_is_not_a_dict_before_any_request(conn_a, count_requests):
    with pytest.raises(o.OrthancValueError) as info:
        o.find(conn_a, o.STUDIES, "PatientID=DOE")
    assert "'PatientID=DOE'" in str(info.value) and count_requests == []


# ---- extended find (Orthanc >= 1.12.5): order_by, response_content, parents, metadata, count

def _dated_studies(upload_study, conn, dates, **tags):
    """One one-instance study per date (same other tags); return {study id: date}."""
    return {upload_study(conn, 1, 1, dict(StudyDate=date, **tags)).id: date for date in dates}


@pytest.mark.v113
def test_find_order_by_sorts_by_a_tag_ascending_and_descending_on_orthanc_1_13(conn_113,
                                                                               upload_study):
    dates = ["20030105", "20010101", "20020303", "20000101"]
    by_id = _dated_studies(upload_study, conn_113, dates)
    ascending = o.find(conn_113, o.STUDIES, {}, order_by=["StudyDate"])
    assert [s["MainDicomTags"]["StudyDate"] for s in ascending] == sorted(dates)
    descending = o.find(conn_113, o.STUDIES, {}, order_by="-0008,0020", expand=False)
    assert [by_id[i] for i in descending] == sorted(dates, reverse=True)


@pytest.mark.v113
def test_find_order_by_accepts_orthanc_s_dict_for_a_metadata_on_orthanc_1_13(conn_113,
                                                                             upload_study):
    values = {}
    for value in ("m-b", "m-c", "m-a"):
        study_id = upload_study(conn_113, 1, 1).id
        o.set_string_metadata(conn_113, o.STUDIES, study_id, "1030", value)
        values[study_id] = value
    found = o.find(conn_113, o.STUDIES, {}, expand=False, order_by=[
        {"Type": "Metadata", "Key": "1030", "Direction": "DESC"}])
    assert [values[i] for i in found] == ["m-c", "m-b", "m-a"]


@pytest.mark.v113
def test_find_response_content_returns_only_id_type_and_the_asked_parts_on_orthanc_1_13(
        conn_113, upload_study):
    study_id = upload_study(conn_113, 1, 1, dict(StudyDescription="RC")).id
    [found] = o.find(conn_113, o.STUDIES, {}, response_content=["Parent", "MainDicomTags"])
    assert set(found) == {"ID", "Type", "ParentPatient", "MainDicomTags", "PatientMainDicomTags"}
    assert found["ID"] == study_id and found["MainDicomTags"]["StudyDescription"] == "RC"
    assert found["ParentPatient"] == o.get_parent_id(conn_113, o.STUDIES, study_id, o.PATIENTS)


@pytest.mark.v113
@pytest.mark.parametrize("option, parent_level, level", [
    ("parent_patient", o.PATIENTS, o.STUDIES), ("parent_study", o.STUDIES, o.SERIES),
    ("parent_series", o.SERIES, o.INSTANCES), ("parent_patient", o.PATIENTS, o.INSTANCES)])
def test_find_restricts_to_the_descendants_of_a_parent_on_orthanc_1_13(conn_113, option,
                                                                        parent_level, level):
    patient_id = _unique()
    ids = o.upload(conn_113, _zip(h.generate_test_study(2, 2, {"PatientID": patient_id})))
    o.upload(conn_113, _zip(h.generate_test_study(1, 2, {"PatientID": patient_id})))
    o.upload(conn_113, _zip(h.generate_test_study(2, 1)))  # another patient
    parent = o.get_parent_id(conn_113, o.INSTANCES, ids[0], parent_level)
    expected = {i for i in o.find(conn_113, level, {}, expand=False)
                if o.get_parent_id(conn_113, level, i, parent_level) == parent}
    found = o.find(conn_113, level, {}, expand=False, **{option: parent})
    assert set(found) == expected and len(found) == len(expected) > 0


@pytest.mark.v113
def test_find_metadata_query_matches_the_metadata_pattern_on_orthanc_1_13(conn_113, upload_study):
    tagged = set()
    for value in ("m-one", "m-two", "other"):
        study_id = upload_study(conn_113, 1, 1).id
        o.set_string_metadata(conn_113, o.STUDIES, study_id, "1030", value)
        if value.startswith("m-"):
            tagged.add(study_id)
    upload_study(conn_113, 1, 1)  # no metadata at all
    found = o.find(conn_113, o.STUDIES, {}, expand=False, metadata_query={"1030": "m-*"})
    assert set(found) == tagged and len(found) == 2


@pytest.mark.v113
def test_count_with_no_label_and_the_none_constraint_counts_the_unlabelled_on_orthanc_1_13(
        conn_113, upload_study):
    labelled, _ = upload_study(conn_113, 1, 1).id, upload_study(conn_113, 1, 1).id
    o.add_label(conn_113, o.STUDIES, labelled, "seen")
    assert o.count(conn_113, o.STUDIES, {}, labels=[], labels_constraint="None") == 1


def test_find_refuses_labels_none_with_no_label_on_orthanc_1_10(conn_a):
    with pytest.raises(o.UnsupportedByServer) as info:
        o.find(conn_a, o.STUDIES, {}, labels=[], labels_constraint="None")
    assert "1.12.11" in str(info.value)


_EXTENDED_OPTIONS = [{"order_by": ["StudyDate"]}, {"response_content": ["MainDicomTags"]},
                     {"parent_patient": "x"}, {"parent_study": "x"}, {"parent_series": "x"},
                     {"metadata_query": {"1030": "m-*"}}]


@pytest.mark.parametrize("option", _EXTENDED_OPTIONS)
def test_find_refuses_extended_options_on_orthanc_1_10_without_sending_the_find(
        conn_a, count_requests, option):
    for call in (o.find, lambda *a, **k: list(o.iter_find(*a, **k))):
        with pytest.raises(o.UnsupportedByServer) as info:
            call(conn_a, o.STUDIES, {}, **option)
        assert "extended find needs Orthanc 1.12.5" in str(info.value)
    assert [m for m, _, _ in count_requests] == ["GET", "GET"]


def test_count_refuses_orthanc_1_10_without_sending_the_count(conn_a, count_requests):
    with pytest.raises(o.UnsupportedByServer) as info:
        o.count(conn_a, o.STUDIES, {})
    assert info.value.needed == (1, 12, 5) and [m for m, _, _ in count_requests] == ["GET"]


@pytest.fixture(scope="module")
def server_113_pg5():
    """Orthanc 1.13 on Debian sid's PostgreSQL index plugin 5.0, which has no extended find
    (its /system says ``"HasExtendedFind": false``; checked: OrderBy answers 500)."""
    postgres = postgres_rig.Postgres().start()
    server = orthanc_rig.Server("pg5", tier="1.13",
                                config={"PostgreSQL": postgres.orthanc_config()},
                                plugins=("libOrthancPostgreSQLIndex.so",
                                         "libOrthancPostgreSQLStorage.so"))
    try:
        yield server.start()
    finally:
        server.remove()
        postgres.stop()


@pytest.mark.v113
def test_find_refuses_extended_options_where_the_database_lacks_extended_find(
        server_113_pg5, count_requests):
    conn = server_113_pg5.conn
    assert o.get_version(conn) >= (1, 13, 0)
    count_requests.clear()
    for call, option in ((o.find, {"order_by": "StudyDate"}), (o.count, {}),
                         (o.find, {"metadata_query": {"1030": "*"}})):
        with pytest.raises(o.UnsupportedByServer) as info:
            call(conn, o.STUDIES, {}, **option)
        assert "HasExtendedFind" in str(info.value) and "1.13.0" in str(info.value)
    assert [m for m, _, _ in count_requests] == ["GET"] * 3


@pytest.mark.v113
def test_iter_find_lists_by_ids_where_the_database_lacks_extended_find(
        server_113_pg5, count_requests, upload_study):
    conn = server_113_pg5.conn
    name = _unique()
    expected = {upload_study(conn, 1, 1, dict(PatientName=f"{name}^{n}")).id for n in range(3)}
    count_requests.clear()
    found = list(o.iter_find(conn, o.STUDIES, {"PatientName": name + "*"}, page_size=2))
    assert {s["ID"] for s in found} == expected and len(found) == 3
    posts = [url.split("/", 3)[3] for m, url, _ in count_requests if m == "POST"]
    assert posts == ["tools/find", "tools/bulk-content", "tools/bulk-content"]


def test_find_refuses_an_order_by_key_that_is_not_a_tag_or_a_dict(conn_a, count_requests):
    with pytest.raises(o.OrthancValueError):
        o.find(conn_a, o.STUDIES, {}, order_by=["-"])
    assert count_requests == []


@pytest.mark.v113
@pytest.mark.parametrize("query, options, expected", [
    ({}, {}, 5),
    ({"StudyDate": "20010101-20011231"}, {}, 2),
    ({"PatientName": "CNT*"}, {}, 5),                        # case-sensitive, lettered
    ({"PatientName": "cnt*"}, {"case_sensitive": False}, 5),
    ({"PatientName": "cnt*"}, {}, 0),                        # case-sensitive: no match
    ({}, {"labels": ["cnt"]}, 1),
    ({}, {"metadata_query": {"1030": "m-*"}}, 1),
])
def test_count_equals_the_length_of_find_on_orthanc_1_13(conn_113, query, options, expected,
                                                         upload_study):
    ids = [upload_study(conn_113, 1, 1, dict(PatientName=f"CNT^{n}", PatientID=_unique(),
                                             StudyDate="20010101" if n % 2 else "20020101")).id
           for n in range(5)]
    o.add_label(conn_113, o.STUDIES, ids[0], "cnt")
    o.set_string_metadata(conn_113, o.STUDIES, ids[1], "1030", "m-1")
    assert len(o.find(conn_113, o.STUDIES, query, expand=False, **options)) == expected
    assert o.count(conn_113, o.STUDIES, query, **options) == expected


@pytest.mark.v113
def test_count_sends_one_count_request_or_a_find_and_a_count_when_case_matters_on_1_13(
        conn_113, count_requests, upload_study):
    study_id = upload_study(conn_113, 1, 1, dict(PatientName="DOE^A")).id
    parent = o.get_parent_id(conn_113, o.STUDIES, study_id, o.PATIENTS)
    upload_study(conn_113, 1, 1, dict(PatientName="DOE^B"))
    count_requests.clear()
    assert o.count(conn_113, o.STUDIES, {}, parent_patient=parent) == 1
    assert o.count(conn_113, o.STUDIES, {"PatientName": "DOE*"}) == 2
    posts = [url.split("/", 3)[3] for m, url, _ in count_requests if m == "POST"]
    # the case-sensitive one: its find, and the count that says no cap of the server cut it
    assert posts == ["tools/count-resources", "tools/count-resources", "tools/find"]


# ---- iter_find on Orthanc >= 1.12.5

@pytest.mark.v113
@pytest.mark.parametrize("order_by", [["StudyDate"], ["-StudyDate"]])
def test_iter_find_pages_follow_order_by_disjoint_and_complete_with_ties_on_orthanc_1_13(
        conn_113, count_requests, order_by, upload_study):
    """The order comes from the light request (ids and identifiers, sorted); each page is
    a list of identifiers, unsorted, put back in that order."""
    dates = ["20010101", "20010202", "20010303"] * 4  # each date four times: ties
    by_id = _dated_studies(upload_study, conn_113, dates)
    count_requests.clear()
    found = [s["ID"] for s in o.iter_find(conn_113, o.STUDIES, {}, page_size=5,
                                          order_by=order_by)]
    assert sorted(found) == sorted(by_id)  # complete, each once
    assert [by_id[i] for i in found] == sorted(dates, reverse=order_by[0].startswith("-"))
    light, *pages = _finds(count_requests)
    assert light["OrderBy"] == o._order_by(order_by) and light["Expand"] is False
    assert light["ResponseContent"] == ["RequestedTags"]
    assert light["RequestedTags"] == ["StudyInstanceUID"]
    assert _lists(count_requests) == [5, 5, 2]
    assert not any("OrderBy" in page or "Since" in page for page in pages)


@pytest.mark.v113
def test_iter_find_with_response_content_pages_by_identifier_lists_on_orthanc_1_13(
        conn_113, count_requests, upload_study):
    expected = set(_dated_studies(upload_study, conn_113, ["20050505"] * 4))
    upload_study(conn_113, 1, 1, dict(StudyDate="20060606"))
    count_requests.clear()
    found = list(o.iter_find(conn_113, o.STUDIES, {"StudyDate": "20050505"}, page_size=3,
                             response_content=["MainDicomTags"]))
    assert {s["ID"] for s in found} == expected and len(found) == 4
    assert all(set(s) == {"ID", "Type", "MainDicomTags", "PatientMainDicomTags"} for s in found)
    light, *pages = _finds(count_requests)
    assert light["Query"] == {"StudyDate": "20050505"} and _lists(count_requests) == [3, 1]
    # the pages' ids are known to match: each asks for its identifiers alone
    assert [(set(page["Query"]), page["ResponseContent"]) for page in pages] == [
        ({"StudyInstanceUID"}, ["MainDicomTags"])] * 2


def _lettered_studies(conn, upload_study):
    """Four studies of a new patient name, StudyDate 20010101 to 20010104, and one of the
    same name in lower case (a case-insensitive match only); return the query of the four."""
    name = _unique()
    for n in range(4):
        upload_study(conn, 1, 1, dict(PatientName=f"{name}^{n}", StudyDate=f"2001010{n + 1}"))
    upload_study(conn, 1, 1, dict(PatientName=name.lower()))
    return {"PatientName": name + "*"}


@pytest.mark.v113
def test_iter_find_pages_a_case_sensitive_lettered_query_by_identifier_lists_on_orthanc_1_13(
        conn_113, count_requests, upload_study):
    """1.13 refuses Since for it; the light request is case-sensitive (not the lower-case
    study) and needs no Since, nor do the pages. 4 match in their case and 5 without: the
    count, then a light request of the 5, tell that no cap of the server cut the answer."""
    query = _lettered_studies(conn_113, upload_study)
    count_requests.clear()
    found = list(o.iter_find(conn_113, o.STUDIES, query, page_size=3, order_by="-StudyDate"))
    light, probe, *pages = _finds(count_requests)
    assert [(b["Expand"], b["CaseSensitive"], b.get("Since")) for b in [light, *pages]] == [
        (False, True, None), (True, True, None), (True, True, None)]
    assert [len(page["Query"]["StudyInstanceUID"].split("\\")) for page in pages] == [3, 1]
    assert (probe["Expand"], probe["CaseSensitive"], probe["Limit"]) == (False, False, 5)
    posts = [url.split("/", 3)[3] for m, url, _ in count_requests if m == "POST"]
    assert sorted(posts[:2]) == ["tools/count-resources", "tools/find"]  # sent together
    assert posts[2:] == ["tools/find"] * 3
    assert found == o.find(conn_113, o.STUDIES, query, order_by="-StudyDate")
    assert [s["MainDicomTags"]["StudyDate"] for s in found] == [
        "20010104", "20010103", "20010102", "20010101"]


@pytest.mark.v113
def test_iter_find_pages_a_case_sensitive_lettered_query_with_response_content_on_1_13(
        conn_113, upload_study):
    query = _lettered_studies(conn_113, upload_study)
    found = list(o.iter_find(conn_113, o.STUDIES, query, page_size=2, expand=False,
                             response_content=["MainDicomTags"]))
    assert sorted(s["ID"] for s in found) == sorted(o.find(conn_113, o.STUDIES, query,
                                                            expand=False))
    assert all(set(s) == {"ID", "Type", "MainDicomTags", "PatientMainDicomTags"} for s in found)
    ids = list(o.iter_find(conn_113, o.STUDIES, query, page_size=2, expand=False))
    assert sorted(ids) == sorted(s["ID"] for s in found)


@pytest.mark.v113
def test_iter_find_closed_early_leaves_no_page_request_running_on_orthanc_1_13(
        conn_113, count_requests, upload_study):
    description = _unique()
    for _ in range(7):
        upload_study(conn_113, 1, 1, dict(StudyDescription=description))
    count_requests.clear()
    pages = o.iter_find(conn_113, o.STUDIES, {"StudyDescription": description}, page_size=2,
                        case_sensitive=False)
    assert len([next(pages) for _ in range(3)]) == 3  # into the second page
    pages.close()  # waits for the page in flight
    seen = len(count_requests)
    time.sleep(0.5)
    assert len(count_requests) == seen
    assert _lists(count_requests) in ([2, 2], [2, 2, 2])  # the third in flight, if started


@pytest.mark.v113
@pytest.mark.parametrize("level", o.LEVELS)
def test_iter_find_equals_find_at_every_level_by_identifier_lists_on_orthanc_1_13(
        conn_113, count_requests, level):
    """Each level lists by its own identifier: PatientID (wildcards taken literally in a
    list, letters outside ASCII), StudyInstanceUID, SeriesInstanceUID, SOPInstanceUID."""
    name = _unique()
    for n, patient_id in enumerate(["A*1", "A?2", "Z\u00dc\u00ef3"]):
        o.upload(conn_113, _zip(h.generate_test_study(2, 2, {
            "PatientName": f"{name}^{n}", "PatientID": patient_id})))
    query = {"PatientName": name + "*"}
    count_requests.clear()
    found = list(o.iter_find(conn_113, level, query, page_size=2))
    lists = _lists(count_requests, o._LEVEL_UID[level])
    assert found == o.find(conn_113, level, query)
    assert len(found) == {o.PATIENTS: 3, o.STUDIES: 3, o.SERIES: 6, o.INSTANCES: 12}[level]
    assert sum(lists) == len(found) and max(lists) == 2


def _without_patient_id(data):
    dataset = pydicom.dcmread(io.BytesIO(data))
    del dataset.PatientID
    buffer = io.BytesIO()
    dataset.save_as(buffer)
    return buffer.getvalue()


@pytest.mark.v113
def test_iter_find_of_patients_pages_with_since_when_one_has_no_patient_id_on_orthanc_1_13(
        conn_113, count_requests):
    """No list can name an empty PatientID: the listing pages with Since instead, and a
    case-sensitive lettered query (Since refused) keeps to its ids among the pages of the
    case-insensitive one (the lower-case patient too)."""
    name = _unique()
    files = [h.generate_test_dicom_file(4, 4, {"PatientName": f"{name}^{n}",
                                               "PatientID": f"{name}-{n}"}) for n in range(3)]
    files.append(_without_patient_id(h.generate_test_dicom_file(4, 4, {
        "PatientName": f"{name}^X"})))
    files.append(h.generate_test_dicom_file(4, 4, {"PatientName": name.lower(),
                                                   "PatientID": "lower"}))
    o.upload(conn_113, _zip(files))
    query = {"PatientName": name + "*"}
    count_requests.clear()
    found = list(o.iter_find(conn_113, o.PATIENTS, query, page_size=2))
    pages = _pages(count_requests)
    expected = o.find(conn_113, o.PATIENTS, query)
    assert len(expected) == 4 and None in [p["MainDicomTags"].get("PatientID") for p in found]
    assert sorted(found, key=lambda p: p["ID"]) == sorted(expected, key=lambda p: p["ID"])
    # the identifiers (given up), all five case-insensitive ids (no cap cut them: the count
    # says 5), the ids in their case, then pages of the five case-insensitive matches
    assert pages[:6] == [(None, None), (None, 5), (None, None), (0, 2), (2, 2), (4, 2)]
    assert pages[6:] in ([], [(6, 2)])  # past the end, if it started


@pytest.mark.v113
def test_iter_find_lists_each_study_of_a_uid_shared_by_two_patients_once_on_orthanc_1_13(
        conn_113, upload_study):
    """A list of StudyInstanceUIDs finds both studies of one: each page keeps its own."""
    uid, patient_id = generate_uid(), _unique()
    first = upload_study(conn_113, 1, 1, dict(StudyInstanceUID=uid, PatientID=_unique(),
                                              StudyDescription="TWIN")).id
    second = upload_study(conn_113, 1, 1, dict(StudyInstanceUID=uid, PatientID=patient_id,
                                               StudyDescription="TWIN")).id
    assert [s["ID"] for s in o.iter_find(conn_113, o.STUDIES, {"PatientID": patient_id})] == [
        second]
    both = [s["ID"] for s in o.iter_find(conn_113, o.STUDIES, {"StudyDescription": "TWIN"},
                                         page_size=1)]
    assert sorted(both) == sorted([first, second])


@pytest.mark.v113
def test_iter_find_leaves_out_a_study_deleted_between_the_light_request_and_its_page_on_1_13(
        conn_113, upload_study):
    by_id = _dated_studies(upload_study, conn_113, [f"200{n}0101" for n in range(1, 6)])
    ordered = sorted(by_id, key=by_id.get)
    pages = o.iter_find(conn_113, o.STUDIES, {}, page_size=1, order_by="StudyDate")
    first = next(pages)  # the light request and the first page: nothing else yet
    o.delete(conn_113, o.STUDIES, ordered[3])
    assert [first["ID"]] + [s["ID"] for s in pages] == ordered[:3] + ordered[4:]


# ---- daily stats on Orthanc >= 1.12.5

@pytest.mark.v113
@pytest.mark.parametrize("level, counts", [
    (o.STUDIES, (2, 0, 1)), (o.SERIES, (3, 0, 1)), (o.INSTANCES, (5, 0, 1))])
def test_daily_stats_take_one_light_request_and_a_count_at_every_level_on_orthanc_1_13(
        conn_113, count_requests, level, counts):
    """The count tells that no LimitFindResults of the server cut the light answer."""
    for files in (h.generate_test_study(2, 2, {"StudyDate": "20010301"}),
                  h.generate_test_study(1, 1, {"StudyDate": "20010301"}),
                  h.generate_test_study(1, 1, {"StudyDate": "20010303"})):
        o.upload(conn_113, _zip(files))
    count_requests.clear()
    assert o.get_daily_stats(conn_113, level, "2001-03-01", "2001-03-03") == _days(*counts)
    assert [url.split("/", 3)[3] for _, url, _ in count_requests] == [
        "tools/find", "tools/count-resources"]
    assert json.loads(count_requests[0][2]["body"])["ResponseContent"] == ["RequestedTags"]


@pytest.mark.v113
def test_daily_stats_agree_where_the_database_lacks_extended_find(server_113_pg5):
    o.delete_all_content(server_113_pg5.conn)
    _assert_daily_stats_agree(server_113_pg5.conn)


# ---- a server whose LimitFindResults cuts every answer

CAP, INSTANCES_CAP = 5, 7


@pytest.fixture(scope="module", params=[pytest.param("1.12", marks=pytest.mark.v112),
                                        pytest.param("1.13", marks=pytest.mark.v113)])
def capped(request, make_server):
    """A server whose LimitFindResults (5) and LimitFindInstances (7) cut each /tools/find
    answer, holding 12 one-instance studies: PatientID P00 to P11, PatientName N1, N3...
    for the odd ones and n0, n2... (lower case) for the even ones, StudyDate 20010101 on."""
    server = make_server("capped" + request.param.replace(".", ""), tier=request.param,
                         config={"LimitFindResults": CAP, "LimitFindInstances": INSTANCES_CAP})
    o.upload(server.conn, _zip([h.generate_test_dicom_file(4, 4, {
        "PatientID": f"P{n:02d}", "PatientName": f"N{n}" if n % 2 else f"n{n}",
        "StudyDate": f"200101{n + 1:02d}"}) for n in range(12)]))
    return server


def test_a_capped_server_cuts_find_at_its_limit(capped):
    """What iter_find must get past: the server's own cut (the same with Limit or Since)."""
    assert len(o.find(capped.conn, o.STUDIES, {})) == CAP
    assert len(o.find(capped.conn, o.INSTANCES, {})) == INSTANCES_CAP
    assert len(o.find(capped.conn, o.STUDIES, {}, limit=100, since=2)) == CAP


@pytest.mark.parametrize("options", [{}, {"expand": False}, {"response_content": ["MainDicomTags"]},
                                     {"requested_tags": ["StudyDate"]}])
def test_iter_find_lists_every_match_past_the_servers_limit_within_it(capped, count_requests,
                                                                    options):
    count_requests.clear()
    found = list(o.iter_find(capped.conn, o.STUDIES, {}, page_size=1000, **options))
    ids = [s if isinstance(s, str) else s["ID"] for s in found]
    assert sorted(ids) == sorted(o.get_all_ids(capped.conn, o.STUDIES)) and len(ids) == 12
    pages = [(since, limit) for since, limit in _pages(count_requests) if since is not None]
    assert pages[:3] == [(0, CAP), (5, CAP), (10, CAP)]  # Since pages within the limit


def test_iter_find_past_the_limit_keeps_order_by_and_a_case_insensitive_pattern(capped):
    found = list(o.iter_find(capped.conn, o.STUDIES, {"PatientName": "n*"}, page_size=4,
                             case_sensitive=False, order_by="-StudyDate"))
    assert [s["MainDicomTags"]["StudyDate"] for s in found] == [
        f"200101{n:02d}" for n in range(12, 0, -1)]


def test_iter_find_lists_every_instance_past_limit_find_instances(capped):
    found = list(o.iter_find(capped.conn, o.INSTANCES, {}, expand=False))
    assert sorted(found) == sorted(o.get_all_ids(capped.conn, o.INSTANCES))
    assert len(found) == 12


def test_iter_find_under_the_limit_needs_no_since_page(capped, count_requests):
    count_requests.clear()
    found = list(o.iter_find(capped.conn, o.STUDIES, {"PatientID": "P1*"}, page_size=3))
    assert sorted(s["MainDicomTags"]["StudyDate"] for s in found) == ["20010111", "20010112"]
    posts = [url.split("/", 3)[3] for m, url, _ in count_requests if m == "POST"]
    # the light request and the count, sent together, then one list of the 2 identifiers
    assert sorted(posts[:2]) == ["tools/count-resources", "tools/find"]
    assert posts[2:] == ["tools/find"] and _lists(count_requests, "StudyInstanceUID") == [2]
    assert all(since is None for since, _ in _pages(count_requests))


def _names(conn, level=o.STUDIES):
    """Orthanc id -> PatientName of every resource of ``level`` (one request each)."""
    return {i: o.get_info(conn, level, i)[
        "PatientMainDicomTags" if level == o.STUDIES else "MainDicomTags"]["PatientName"]
            for i in o.get_all_ids(conn, level)}


@pytest.mark.parametrize("options", [{}, {"expand": False}, {"order_by": "-StudyDate"}])
def test_iter_find_of_a_case_sensitive_pattern_past_the_limit_lists_its_matches(
        capped, count_requests, options):
    """6 studies match N* in their case, 12 without: the server cuts the 12 at 5, then keeps
    the case (fewer than 6 come back), and refuses Since for it. The 12 come in Since pages
    within the limit, and each list of their UIDs is asked with N*."""
    expected = sorted(i for i, name in _names(capped.conn).items() if name.startswith("N"))
    assert len(expected) == 6 and len(o.find(capped.conn, o.STUDIES, {"PatientName": "N*"})) < 6
    count_requests.clear()
    found = list(o.iter_find(capped.conn, o.STUDIES, {"PatientName": "N*"}, **options))
    ids = [s if isinstance(s, str) else s["ID"] for s in found]
    assert sorted(ids) == expected
    if "order_by" in options:
        dates = [s["MainDicomTags"]["StudyDate"] for s in found]
        assert dates == sorted(dates, reverse=True)
    lists = [b for b in _finds(count_requests) if "StudyInstanceUID" in b["Query"]]
    assert lists and all(b["Query"]["PatientName"] == "N*" and b["CaseSensitive"]
                         for b in lists)
    assert all(len(b["Query"]["StudyInstanceUID"].split("\\")) <= CAP for b in lists)
    assert o.count(capped.conn, o.STUDIES, {"PatientName": "N*"}) == 6


def test_a_case_sensitive_patient_id_pattern_past_the_limit_raises_before_any_match(capped):
    """At the patient level the lists would be of PatientIDs, the pattern's own tag: none
    can keep its case, so iter_find and count say so instead of answering 5 of 12."""
    listing = o.iter_find(capped.conn, o.PATIENTS, {"PatientID": "P*"})
    with pytest.raises(o.OrthancError) as info:
        next(listing)
    assert "LimitFindResults" in str(info.value) and "case_sensitive=False" in str(info.value)
    with pytest.raises(o.OrthancError):
        o.count(capped.conn, o.PATIENTS, {"PatientID": "P*"})
    assert len(list(o.iter_find(capped.conn, o.PATIENTS, {"PatientID": "P*"},
                                case_sensitive=False))) == 12


def test_a_case_sensitive_pattern_within_the_limit_is_listed_and_counted(capped):
    """N1* matches N1 and N11 in their case, and n10 too without: 3, within the limit."""
    found = list(o.iter_find(capped.conn, o.STUDIES, {"PatientName": "N1*"}))
    assert sorted(s["PatientMainDicomTags"]["PatientName"] for s in found) == ["N1", "N11"]
    assert o.count(capped.conn, o.STUDIES, {"PatientName": "N1*"}) == 2
    assert o.count(capped.conn, o.STUDIES, {"PatientName": "N*"}, case_sensitive=False) == 12


@pytest.mark.parametrize("level", [o.STUDIES, o.SERIES, o.INSTANCES])
def test_daily_stats_past_the_limit_count_every_study(capped, count_requests, level):
    """One study of one series and one instance a day, 12 days: the one find of the range
    is cut at 5, the count after it tells, and Since pages within the limit bring the rest."""
    count_requests.clear()
    stats = o.get_daily_stats(capped.conn, level, "2001-01-01", "2001-01-14")
    assert [c for _, c in stats] == [1] * 12 + [0, 0]
    pages = [(since, limit) for since, limit in _pages(count_requests) if since is not None]
    assert pages[:3] == [(0, CAP), (5, CAP), (10, CAP)]  # and the one past the end, if sent


# ---- a server that refuses /tools/count-resources (an HTTP filter of a Python plugin)

REFUSE_COUNTS = """
import orthanc


def allowed(uri, **request):
    return not uri.startswith("/tools/count-resources")


orthanc.RegisterIncomingHttpRequestFilter(allowed)
"""


@pytest.fixture(scope="module")
def uncountable():
    """Orthanc 1.13 whose Python plugin refuses /tools/count-resources (403) and nothing
    else, holding 3 one-instance studies of 20010101 to 20010103."""
    server = orthanc_rig.Server("uncountable", tier="1.13", plugins=("libOrthancPython.so",),
                                files={"filter.py": REFUSE_COUNTS})
    server.config["Python"] = {"Path": server.inside(os.path.join(server.dir, "filter.py"))}
    try:
        server.start()
        o.upload(server.conn, _zip([h.generate_test_dicom_file(4, 4, {
            "StudyDate": f"2001010{n}"}) for n in (1, 2, 3)]))
        yield server
    finally:
        server.remove()


@pytest.mark.v113
def test_iter_find_and_daily_stats_go_on_where_the_server_refuses_counts(uncountable):
    """The count only tells a cut answer; refused, the listing goes on as on an older
    Orthanc. count itself raises what the server said."""
    ids = sorted(o.get_all_ids(uncountable.conn, o.STUDIES))
    assert sorted(s["ID"] for s in o.iter_find(uncountable.conn, o.STUDIES, {})) == ids
    assert sorted(o.iter_find(uncountable.conn, o.STUDIES, {}, expand=False)) == ids
    assert [c for _, c in o.get_daily_stats(uncountable.conn, o.STUDIES, "2001-01-01",
                                            "2001-01-04")] == [1, 1, 1, 0]
    with pytest.raises(o.NotAuthorized) as info:
        o.count(uncountable.conn, o.STUDIES, {})
    assert info.value.status == 403
