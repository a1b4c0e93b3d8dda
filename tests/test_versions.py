"""Version awareness: which Orthanc each tier runs, and UnsupportedByServer from _require."""
import logging

import pytest

import orthanc_fn as o


def requests_sent(caplog, call):
    """The requests orthanc_fn sends while ``call()`` runs, from its debug log."""
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="orthanc_fn"):
        call()
    return [r.getMessage() for r in caplog.records if r.name == "orthanc_fn"]


def test_parse_version_reads_releases_and_ranks_mainline_newest():
    assert o._parse_version("1.12.7") == (1, 12, 7)
    assert o._parse_version("1.10") == (1, 10, 0)
    assert o._parse_version("1.9.10") > o._parse_version("1.9.4")
    assert o._parse_version("mainline") > o._parse_version("99.0.0")


def test_the_host_tier_runs_orthanc_1_10_1(conn_a):
    version = o.get_system(conn_a)["Version"]
    print(f"\nhost tier (servers A and B): Orthanc {version}")
    assert o.get_version(conn_a) == (1, 10, 1)


@pytest.mark.v112
def test_the_1_12_tier_runs_orthanc_1_12_7(conn_112):
    version = o.get_system(conn_112)["Version"]
    print(f"\n1.12 tier (chroot): Orthanc {version}")
    assert o.get_version(conn_112) == (1, 12, 7)


@pytest.mark.v113
def test_the_1_13_tier_runs_orthanc_1_13_or_newer(conn_113):
    """Debian sid moves: the tier accepts any 1.13.x (or later) release."""
    version = o.get_system(conn_113)["Version"]
    print(f"\n1.13 tier (chroot): Orthanc {version}")
    assert o.get_version(conn_113) >= (1, 13, 0)


def test_require_raises_unsupported_by_server_naming_the_needed_and_actual_versions(conn_a):
    with pytest.raises(o.UnsupportedByServer) as info:
        o._require(conn_a, "labels")
    assert info.value.needed == (1, 12, 0) == o.FEATURES["labels"]
    assert info.value.actual == (1, 10, 1)
    message = str(info.value)
    assert "labels" in message and "1.12.0" in message and "1.10.1" in message
    assert conn_a.url in message
    assert isinstance(info.value, o.OrthancError)


def test_every_feature_of_the_table_is_newer_than_the_supported_floor_1_10(conn_a):
    assert o.FEATURES and min(o.FEATURES.values()) > o.get_version(conn_a) == (1, 10, 1)
    for feature in o.FEATURES:
        with pytest.raises(o.UnsupportedByServer):
            o._require(conn_a, feature)


def test_every_feature_of_the_table_is_read_by_the_code():
    with open(o.__file__, encoding="utf-8") as f:
        source = f.read()
    for feature in o.FEATURES:
        assert source.count(f'"{feature}"') >= 2, feature  # the table, and a reader


def test_the_feature_table_is_read_only():
    with pytest.raises(TypeError):
        o.FEATURES["labels"] = (1, 0, 0)
    assert o.FEATURES["labels"] == (1, 12, 0)


def test_require_accepts_exactly_the_features_of_the_table_as_old_as_each_tier(conn_any):
    """On every tier: the features up to its version pass, the newer ones raise."""
    actual = o.get_version(conn_any)
    for feature, needed in o.FEATURES.items():
        if needed <= actual:
            o._require(conn_any, feature)
        else:
            with pytest.raises(o.UnsupportedByServer) as info:
                o._require(conn_any, feature)
            assert (info.value.needed, info.value.actual) == (needed, actual)


@pytest.mark.v113
def test_orthanc_1_13_is_recent_enough_for_every_feature_of_the_table(conn_113):
    for feature in o.FEATURES:
        o._require(conn_113, feature)


def test_the_features_of_the_table_are_sorted_by_version():
    versions = list(o.FEATURES.values())
    assert versions == sorted(versions)


def test_require_costs_exactly_one_get_system(conn_a, caplog):
    def require_labels():
        with pytest.raises(o.UnsupportedByServer):
            o._require(conn_a, "labels")
    assert requests_sent(caplog, require_labels) == [f"GET {conn_a.url}/system"]


def test_orthanc_1_10_announces_none_of_the_1_12_features_of_the_table(conn_a):
    system = o.get_system(conn_a)
    assert "HasLabels" not in system and "Capabilities" not in system


@pytest.mark.v112
def test_orthanc_1_12_7_announces_the_1_12_features_of_the_table(conn_112):
    system = o.get_system(conn_112)
    assert o.get_version(conn_112) >= o.FEATURES["labels"] and system["HasLabels"] is True
    assert o.get_version(conn_112) >= o.FEATURES["extended_find"]
    assert system["Capabilities"] == {"HasExtendedChanges": True, "HasExtendedFind": True}


@pytest.mark.v113
def test_orthanc_1_13_announces_key_value_stores_and_queues_besides_extended_find(conn_113):
    system = o.get_system(conn_113)
    assert system["HasLabels"] is True and system["ApiVersion"] >= 31
    assert {"HasExtendedChanges", "HasExtendedFind", "HasKeyValueStores",
            "HasQueues"} <= {name for name, value in system["Capabilities"].items() if value}


@pytest.mark.v113
def test_orthanc_1_13_renames_the_default_retrieve_method_and_adds_the_overwrite_mode(conn_113):
    """New keys of /system since 1.12.11 and 1.13.0: nothing in orthanc_fn reads the old ones."""
    system = o.get_system(conn_113)
    assert "DefaultRetrieveMethod" not in system and system["DicomDefaultRetrieveMethod"]
    assert system["OverwriteInstancesMode"] == "Never" and system["OverwriteInstances"] is False


def test_a_call_without_version_dependent_options_never_asks_for_the_version(conn_a, caplog):
    sent = requests_sent(caplog, lambda: o.find(conn_a, o.STUDIES, {}, expand=False))
    assert sent == [f"POST {conn_a.url}/tools/find"]


def test_a_too_new_option_is_refused_after_one_get_system_and_before_the_request(
        conn_a, caplog):
    def find_with_labels():
        with pytest.raises(o.UnsupportedByServer):
            o.find(conn_a, o.STUDIES, {}, labels=["urgent"])
    assert requests_sent(caplog, find_with_labels) == [f"GET {conn_a.url}/system"]


def test_versions_compare_2_0_as_newer_than_1_5_and_mainline_as_newest():
    assert o._parse_version("2.0") > o._parse_version("1.5.8")
    assert o._parse_version("1.12.10") > o._parse_version("1.12.9")
    assert o._parse_version("mainline") > o._parse_version("99.99.99")
