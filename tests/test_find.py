"""Find and statistics: lookup, find and its options, iter_find paging, daily stats."""
import datetime
import io
import zipfile

import pytest
from pydicom.uid import generate_uid

import orthanc_fn as o
import orthanc_fn_helpers as h


def _study(conn, **tags):
    """Upload a one-instance study with these tags; return its Orthanc study id."""
    instance_id = o.upload(conn, h.generate_test_dicom_file(8, 8, tags))[0]
    return o.get_parent_id(conn, o.INSTANCES, instance_id, o.STUDIES)


def _zip(files):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for n, data in enumerate(files):
            archive.writestr(f"{n}.dcm", data)
    return buffer.getvalue()


def _unique():
    return "U" + generate_uid()[-12:]


# ---- lookup

def test_lookup_returns_the_study_id_for_its_study_instance_uid(conn_a):
    uid = generate_uid()
    study_id = _study(conn_a, StudyInstanceUID=uid)
    assert o.lookup(conn_a, o.STUDIES, uid) == study_id
    assert o.lookup(conn_a, "Study", uid) == study_id


def test_lookup_returns_none_for_an_unknown_dicom_id(conn_a):
    assert o.lookup(conn_a, o.STUDIES, generate_uid()) is None


def test_lookup_returns_none_when_the_id_belongs_to_another_level(conn_a):
    uid = generate_uid()
    _study(conn_a, StudyInstanceUID=uid)
    assert o.lookup(conn_a, o.SERIES, uid) is None


def test_lookup_raises_too_many_resources_found_for_a_uid_in_two_patients(conn_a):
    uid = generate_uid()
    first = _study(conn_a, StudyInstanceUID=uid, PatientID=_unique())
    second = _study(conn_a, StudyInstanceUID=uid, PatientID=_unique())
    with pytest.raises(o.TooManyResourcesFound) as info:
        o.lookup(conn_a, o.STUDIES, uid)
    assert sorted(info.value.ids) == sorted([first, second]) and uid in str(info.value)


# ---- find

def test_find_returns_expanded_studies_matching_a_wildcard(conn_a):
    name = _unique()
    study_id = _study(conn_a, PatientName=name + "^ONE")
    _study(conn_a, PatientName=_unique())
    found = o.find(conn_a, o.STUDIES, {"PatientName": name + "*"})
    assert [s["ID"] for s in found] == [study_id]
    assert found[0]["PatientMainDicomTags"]["PatientName"] == name + "^ONE"


def test_find_returns_ids_without_expand(conn_a):
    name = _unique()
    study_id = _study(conn_a, PatientName=name)
    assert o.find(conn_a, o.STUDIES, {"PatientName": name}, expand=False) == [study_id]


def test_find_is_case_insensitive_when_asked(conn_a):
    name = _unique()
    study_id = _study(conn_a, PatientName=name)
    assert o.find(conn_a, o.STUDIES, {"PatientName": name.lower()}, expand=False) == []
    assert o.find(conn_a, o.STUDIES, {"PatientName": name.lower()}, expand=False,
                  case_sensitive=False) == [study_id]


def test_find_limit_and_since_select_a_window_of_the_matches(conn_a):
    description = _unique()
    for _ in range(5):
        _study(conn_a, StudyDescription=description)
    query = {"StudyDescription": description}
    everything = o.find(conn_a, o.STUDIES, query, expand=False)
    assert len(everything) == 5
    assert o.find(conn_a, o.STUDIES, query, expand=False, limit=2) == everything[:2]
    assert o.find(conn_a, o.STUDIES, query, expand=False, limit=2, since=2) == everything[2:4]
    assert o.find(conn_a, o.STUDIES, query, expand=False, since=3) == everything[3:]


def test_find_at_series_level_accepts_a_study_date_range(conn_a):
    description = _unique()
    inside = _study(conn_a, StudyDescription=description, StudyDate="19990615")
    _study(conn_a, StudyDescription=description, StudyDate="19990701")
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


def test_find_requested_tags_adds_them_on_orthanc_1_12_and_newer(conn_new):
    _study(conn_new, StudyDescription="desc", ReferringPhysicianName="DR^WHO")
    found = o.find(conn_new, o.STUDIES, {}, requested_tags=["NumberOfStudyRelatedInstances"])
    assert found[0]["RequestedTags"]["NumberOfStudyRelatedInstances"] == "1"


# ---- iter_find

@pytest.mark.parametrize("count", [0, 1, 3, 4])
def test_iter_find_returns_exactly_every_match_for_n_around_the_page_size(conn_a, count):
    description = _unique()
    expected = {_study(conn_a, StudyDescription=description) for _ in range(count)}
    found = list(o.iter_find(conn_a, o.STUDIES, {"StudyDescription": description},
                             page_size=3, expand=False))
    assert len(found) == count and set(found) == expected


def test_iter_find_pages_with_limit_and_since(conn_a, count_requests):
    description = _unique()
    for _ in range(4):
        _study(conn_a, StudyDescription=description)
    count_requests.clear()
    found = list(o.iter_find(conn_a, o.STUDIES, {"StudyDescription": description}, page_size=3))
    assert len(found) == 4 and len({s["ID"] for s in found}) == 4
    posts = [url.split("/", 3)[3] for m, url, _ in count_requests if m == "POST"]
    assert posts == ["tools/find"] * 2


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


def test_iter_find_pages_completely_on_orthanc_1_12_and_newer_too(conn_new):
    description = _unique()
    expected = {_study(conn_new, StudyDescription=description) for _ in range(7)}
    found = list(o.iter_find(conn_new, o.STUDIES, {"StudyDescription": description},
                             page_size=3, expand=False))
    assert len(found) == 7 and set(found) == expected


def test_daily_stats_agree_on_orthanc_1_12_and_newer(conn_new):
    for files in (h.generate_test_study(2, 2, {"StudyDate": "20010301"}),
                  h.generate_test_study(1, 1, {"StudyDate": "20010303"})):
        o.upload(conn_new, _zip(files))
    for level, counts in ((o.STUDIES, (1, 0, 1)), (o.SERIES, (2, 0, 1)),
                          (o.INSTANCES, (4, 0, 1))):
        assert o.get_daily_stats(conn_new, level, "2001-03-01", "2001-03-03") == _days(*counts)


def test_iter_find_pages_a_case_insensitive_query_on_orthanc_1_12_and_newer(
        conn_new, count_requests):
    description = _unique()
    expected = {_study(conn_new, StudyDescription=description) for _ in range(4)}
    count_requests.clear()
    found = list(o.iter_find(conn_new, o.STUDIES, {"StudyDescription": description},
                             page_size=3, expand=False, case_sensitive=False))
    assert set(found) == expected and len(found) == 4
    posts = [url.split("/", 3)[3] for m, url, _ in count_requests if m == "POST"]
    assert posts == ["tools/find"] * 2


def test_find_refuses_a_query_that_is_not_a_dict_before_any_request(conn_a, count_requests):
    with pytest.raises(o.OrthancValueError) as info:
        o.find(conn_a, o.STUDIES, "PatientID=DOE")
    assert "'PatientID=DOE'" in str(info.value) and count_requests == []
