"""System: statistics, the change log (one page, and followed to its end), deleting everything;
capabilities, plugins, metrics and the log level."""
import pytest

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


# ---- capabilities, plugins, metrics, log level ----

def test_get_capabilities_gives_booleans_and_plugin_versions(conn_a):
    capabilities = o.get_capabilities(conn_a)
    flags = {k: v for k, v in capabilities.items() if k != "plugins"}
    assert set(flags) == {"has_labels", "has_extended_find", "has_extended_changes",
                          "has_revisions"}
    assert all(isinstance(v, bool) for v in flags.values())
    assert capabilities["plugins"]["dicom-web"] == o._get(conn_a, "/plugins/dicom-web")["Version"]
    assert "explorer.js" not in capabilities["plugins"]


def test_get_capabilities_of_orthanc_110_has_no_labels_nor_extended_find(conn_a):
    capabilities = o.get_capabilities(conn_a)
    assert capabilities["has_labels"] is False
    assert capabilities["has_extended_find"] is False
    assert capabilities["has_revisions"] is False


@pytest.mark.v112
def test_get_capabilities_of_orthanc_112_has_labels_and_extended_find(conn_112):
    capabilities = o.get_capabilities(conn_112)
    assert capabilities["has_labels"] is True
    assert capabilities["has_extended_find"] is True
    assert capabilities["has_extended_changes"] is True


def test_is_version_at_least_compares_the_whole_tuple(conn_a):
    assert o.get_version(conn_a) == (1, 10, 1)
    assert o.is_version_at_least(conn_a, 1, 9, 2)  # 10 > 9 decides, whatever 1 < 2 says
    assert o.is_version_at_least(conn_a, 1, 10, 1)
    assert o.is_version_at_least(conn_a, 0, 99)
    assert not o.is_version_at_least(conn_a, 1, 10, 2)
    assert not o.is_version_at_least(conn_a, 1, 11)
    assert not o.is_version_at_least(conn_a, 2, 0)


def test_has_plugin_tells_which_plugins_are_loaded(conn_a):
    assert o.has_plugin(conn_a, "dicom-web")
    assert not o.has_plugin(conn_a, "python")


def test_get_metrics_parses_prometheus_text_into_floats(conn_a, upload_study):
    upload_study(conn_a, 1, 1)
    metrics = o.get_metrics(conn_a)
    assert all(isinstance(v, float) for v in metrics.values())
    assert metrics["orthanc_count_instances"] >= 1
    assert "orthanc_jobs_failed" in metrics


def test_set_log_level_changes_what_get_log_level_returns(conn_rev):
    assert o.set_log_level(conn_rev, "verbose") == "verbose"
    assert o.get_log_level(conn_rev) == "verbose"
    assert o.set_log_level(conn_rev, "default") == "default"


def test_set_log_level_refuses_an_unknown_level(conn_a):
    with pytest.raises(o.HttpError) as info:
        o.set_log_level(conn_a, "chatty")
    assert info.value.status == 400
    assert o.get_log_level(conn_a) in ("default", "verbose", "trace")


def test_get_capabilities_reports_revisions_when_the_server_checks_them(conn_rev):
    assert o.get_capabilities(conn_rev)["has_revisions"] is True
