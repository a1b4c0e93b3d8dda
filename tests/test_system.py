"""System: statistics, the change log (one page, and followed to its end), deleting everything."""
import orthanc_fn as o
import orthanc_fn_helpers as h


def _last_seq(conn):
    return o._get(conn, "/changes", {"last": ""})["Last"]


def _upload_instances(conn, count):
    return [o.upload(conn, h.generate_test_dicom_file(8, 8))[0] for _ in range(count)]


def test_get_statistics_counts_the_stored_resources(empty_a):
    files = h.generate_test_study(series=2, instances=2)
    for data in files:
        o.upload(empty_a, data)
    stats = o.get_statistics(empty_a)
    assert (stats["CountPatients"], stats["CountStudies"], stats["CountSeries"],
            stats["CountInstances"]) == (1, 1, 2, 4)
    assert "TotalDiskSizeMB" in stats


def test_get_changes_returns_one_page_after_since(conn_a):
    since = _last_seq(conn_a)
    ids = _upload_instances(conn_a, 2)
    page = o.get_changes(conn_a, since=since, limit=1)
    assert isinstance(page, o.Changes) and len(page.changes) == 1 and page.done is False
    assert page.changes[0]["Seq"] == page.last > since
    assert page.changes[0]["ChangeType"] == "NewInstance" and page.changes[0]["ID"] == ids[0]


def test_get_changes_says_done_at_the_end_of_the_log(conn_a):
    _upload_instances(conn_a, 1)
    page = o.get_changes(conn_a, since=_last_seq(conn_a) - 1, limit=100)
    assert page.done is True and len(page.changes) == 1


def test_iter_changes_follows_the_feed_to_its_end_across_pages(conn_a):
    since = _last_seq(conn_a)
    ids = _upload_instances(conn_a, 5)
    changes = list(o.iter_changes(conn_a, since=since, page_size=2))
    seqs = [c["Seq"] for c in changes]
    assert seqs == sorted(set(seqs)) and seqs[0] > since and seqs[-1] == _last_seq(conn_a)
    new = [c["ID"] for c in changes if c["ChangeType"] == "NewInstance"]
    assert new == ids


def test_iter_changes_yields_nothing_after_the_last_change(conn_a):
    _upload_instances(conn_a, 1)
    assert list(o.iter_changes(conn_a, since=_last_seq(conn_a))) == []


def test_delete_all_content_leaves_no_resource(conn_a):
    _upload_instances(conn_a, 3)
    o.delete_all_content(conn_a)
    assert o.get_all_ids(conn_a, o.PATIENTS) == [] and o.get_all_ids(conn_a, o.INSTANCES) == []
    assert o.get_statistics(conn_a)["CountInstances"] == 0


def test_delete_all_content_of_an_empty_server_does_nothing(empty_a):
    o.delete_all_content(empty_a)
    assert o.get_statistics(empty_a)["CountInstances"] == 0
