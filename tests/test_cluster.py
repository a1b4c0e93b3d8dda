"""Several Orthanc nodes over one PostgreSQL database: uploads spread over nodes lose nothing.

The cluster is real: Debian's PostgreSQL server on loopback and two Orthanc nodes with
Debian's orthanc-postgresql index and storage plugins, both on the same database; each test
runs on a cluster of Orthanc 1.10 (plugin 4.0) and of Orthanc 1.13 (plugin 5.0, from the sid
root). The nodes do
not retry writes that PostgreSQL could not serialize (``MaximumConnectionRetries: 0``), so those
conflicts reach the client as 503 answers. Each node is reached through a counting loopback
proxy of the test's own, which tells how many 503 answers the cluster gave; orthanc_fn's
transport retried each of them, or an instance would be missing.
"""
import threading

import pytest

import orthanc_fn as o
import orthanc_fn_helpers as h
import counting_proxy
import postgres_rig

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module", params=[pytest.param("1.10", id="1.10"),
                                        pytest.param("1.13", id="1.13", marks=pytest.mark.v113)])
def cluster(request):
    postgres = postgres_rig.Postgres().start()
    nodes = [postgres_rig.cluster_node(name, postgres, serialization_retries=0,
                                       tier=request.param)
             for name in ("n1", "n2")]
    try:
        for node in nodes:
            node.start()
        yield nodes
    finally:
        for node in nodes:
            node.remove()
        postgres.stop()


@pytest.fixture
def empty_cluster(cluster):
    o.delete_all_content(cluster[0].conn)
    return cluster


def _write_study_files(folder, count, per_study=500):
    """Write ``count`` instances as files, in large studies (writes to one study conflict)."""
    for study in range(0, count, per_study):
        files = h.generate_test_study(series=5, instances=min(per_study, count - study) // 5,
                                      width=8, height=8)
        for index, data in enumerate(files):
            path = folder / f"s{study:05d}" / f"{index:03d}.dcm"
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(data)


def _proxied(node, proxy):
    return o.Connection(f"http://127.0.0.1:{proxy.port}", auth=node.conn.auth)


def test_eight_workers_over_two_nodes_store_every_instance_exactly_once(empty_cluster, tmp_path):
    n1, n2 = empty_cluster
    _write_study_files(tmp_path, 2000)
    with counting_proxy.CountingProxy(n1.http_port) as p1, \
            counting_proxy.CountingProxy(n2.http_port) as p2:
        result = o.upload_folder(_proxied(n1, p1), tmp_path, workers=8,
                                 nodes=[_proxied(n2, p2)])
    assert result.errors == []
    assert len(set(result.instances_ids)) == 2000
    both = p1.statuses + p2.statuses
    print(f"\n[cluster] answers through the proxies: {dict(both)}; "
          f"n1 {sum(p1.statuses.values())}, n2 {sum(p2.statuses.values())}; "
          f"503 answers retried: {both[503]}")
    assert p1.statuses[200] > 0 and p2.statuses[200] > 0  # both nodes did work
    assert len(o.get_all_ids(n1.conn, o.INSTANCES)) == 2000
    assert len(o.get_all_ids(n2.conn, o.INSTANCES)) == 2000


def test_a_node_killed_mid_upload_leaves_the_rest_to_the_other_node(empty_cluster, tmp_path):
    n1, n2 = empty_cluster
    _write_study_files(tmp_path, 600)
    killed = threading.Event()

    def progress(done, total):
        if done >= 150 and not killed.is_set():
            killed.set()
            threading.Thread(target=n2.kill).start()

    try:
        result = o.upload_folder(n1.conn, tmp_path, workers=8, nodes=[n2.conn],
                                 progress=progress)
    finally:
        n2.start()
    assert killed.is_set()
    assert result.errors == []
    assert len(set(result.instances_ids)) == 600
    assert len(o.get_all_ids(n1.conn, o.INSTANCES)) == 600


def test_a_node_on_postgresql_has_labels_from_1_12_but_no_extended_find_nor_changes(cluster):
    """Debian's orthanc-postgresql 4.0 and 5.0 predate the plugin's ExtendedFind (7.0): even
    Orthanc 1.13 over 5.0 says so in /system "Capabilities" (and answers 500 to "OrderBy",
    400 to /changes?type=), which is why get_capabilities reads them there."""
    conn = cluster[0].conn
    capabilities = o.get_capabilities(conn)
    print(f"\n[cluster] Orthanc {o.get_system(conn)['Version']}, "
          f"plugins {capabilities['plugins']}")
    assert capabilities["has_labels"] is (o.get_version(conn) >= o.FEATURES["labels"])
    assert not any(capabilities[key] for key in ("has_extended_find", "has_extended_changes",
                                                 "has_key_value_stores", "has_queues"))
    assert {"postgresql-index", "postgresql-storage"} <= set(capabilities["plugins"])
