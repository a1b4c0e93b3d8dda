"""System: statistics, the change log (one page, and followed to its end), deleting everything;
capabilities, plugins, metrics and the log level."""
import pytest

import orthanc_fn as o
import orthanc_fn_helpers as h


def _last_seq(conn):
    return o._get(conn, "/changes", {"last": ""})["Last"]


def _upload_instances(conn, count):
    return [o.upload(conn, h.generate_test_dicom_file(8, 8))[0] for _ in range(count)]


def test_get_statistics_counts_the_stored_resources(empty_a, upload_study):
    upload_study(empty_a, series=2, instances=2)
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


def test_get_capabilities_lists_gdcm_with_its_version_on_every_tier(server_gdcm):
    conn = server_gdcm.conn
    plugins = o.get_capabilities(conn)["plugins"]
    assert plugins["gdcm"] == o._get(conn, "/plugins/gdcm")["Version"]
    assert set(plugins) == {"dicom-web", "gdcm"}


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


@pytest.mark.v113
def test_get_metrics_of_orthanc_1_13_counts_the_jobs_run_since_it_started(
        conn_113, upload_study):
    """1.13.0 replaced orthanc_jobs_{completed,success,failed} (the jobs in the history) by
    orthanc_jobs_total_*, which appear once a job has ended."""
    before = o.get_metrics(conn_113).get("orthanc_jobs_total_success", 0.0)
    o.anonymize(conn_113, o.STUDIES, upload_study(conn_113, 1, 1).id)
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


def test_get_capabilities_reports_revisions_when_the_server_checks_them(conn_rev):
    assert o.get_capabilities(conn_rev)["has_revisions"] is True


# ---- the change log filtered on the server (Orthanc >= 1.12.5 with HasExtendedChanges)


def _study_changes(conn):
    """Upload two one-instance studies, wait until they are stable; return the log before."""
    since = _last_seq(conn)
    _upload_instances(conn, 2)
    assert h.wait_until(lambda: sum(c["ChangeType"] == "StableStudy"
                                    for c in o.iter_changes(conn, since)) == 2, timeout=30)
    return since


@pytest.mark.v113
def test_get_changes_with_change_types_returns_only_those_types_on_1_13(conn_113):
    since = _study_changes(conn_113)
    everything = list(o.iter_changes(conn_113, since))
    page = o.get_changes(conn_113, since, 100, change_types="StableStudy")
    assert [c["Seq"] for c in page.changes] == [c["Seq"] for c in everything
                                                if c["ChangeType"] == "StableStudy"]


@pytest.mark.v113
def test_get_changes_with_several_change_types_sends_them_with_a_literal_semicolon(
        conn_113, count_requests):
    since = _study_changes(conn_113)
    page = o.get_changes(conn_113, since, 100, change_types=["NewInstance", "StableStudy"])
    assert {c["ChangeType"] for c in page.changes} == {"NewInstance", "StableStudy"}
    assert len(page.changes) == 4
    assert any("type=NewInstance;StableStudy" in url for _, url, _ in count_requests)


@pytest.mark.v113
def test_get_changes_with_to_and_since_0_returns_the_first_changes_not_the_last(conn_113):
    _study_changes(conn_113)
    log = [c["Seq"] for c in o.get_changes(conn_113, 0, 5).changes]
    page = o.get_changes(conn_113, 0, 2, to=log[4])
    assert [c["Seq"] for c in page.changes] == log[:2] and page.done is False


@pytest.mark.v113
def test_get_changes_with_to_stops_at_to_and_says_done(conn_113):
    since = _study_changes(conn_113)
    page = o.get_changes(conn_113, since, 100, to=since + 3)
    assert [c["Seq"] for c in page.changes] == [since + 1, since + 2, since + 3]
    assert page.done is True


@pytest.mark.v113
def test_iter_changes_with_to_and_a_type_yields_exactly_those_changes_of_the_range(conn_113):
    since = _study_changes(conn_113)
    end = _last_seq(conn_113) - 1
    expected = [c for c in o.iter_changes(conn_113, 0) if c["Seq"] <= end
                and c["ChangeType"] in ("NewInstance", "NewStudy")]
    for start in (0, since):
        got = list(o.iter_changes(conn_113, start, page_size=1, to=end,
                                  change_types=("NewInstance", "NewStudy")))
        assert got == [c for c in expected if c["Seq"] > start]


@pytest.mark.v113
def test_get_changes_on_a_page_the_filter_left_empty_gives_the_logs_last_seq(conn_113):
    since = _study_changes(conn_113)
    page = o.get_changes(conn_113, since, 100, change_types="StablePatient", to=since + 1)
    assert page.changes == [] and page.done is True and page.last == _last_seq(conn_113)


@pytest.mark.v112
def test_get_changes_filters_by_type_on_1_12_7(conn_112):
    since = _study_changes(conn_112)
    page = o.get_changes(conn_112, since, 100, change_types="NewInstance")
    assert len(page.changes) == 2 and {c["ChangeType"] for c in page.changes} == {"NewInstance"}


def test_get_changes_with_change_types_on_1_10_raises_unsupported_without_asking(
        conn_a, count_requests):
    for options in ({"change_types": "StableStudy"}, {"to": 10}):
        with pytest.raises(o.UnsupportedByServer) as info:
            o.get_changes(conn_a, 0, 10, **options)
        assert info.value.needed == (1, 12, 5) and "1.10.1" in str(info.value)
    assert not any("/changes" in url for _, url, _ in count_requests)
