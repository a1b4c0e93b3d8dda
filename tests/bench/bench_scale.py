"""Scale benchmark: PostgreSQL clusters of two Orthanc nodes, and a 100,000-study listing.

Run by hand (not by pytest):  python tests/bench/bench_scale.py [--studies 100000] [--upload 2000]
                              [--tiers 1.10 1.13] [--cluster-tiers 1.10 1.13] [--pg-studies 20000]
                              [--repeat 1] [--page-size 1000] [--server URL USER PASSWORD]

1. Upload throughput on a cluster of two Orthanc nodes over one PostgreSQL database, for each
   of ``--cluster-tiers`` (1.10: orthanc-postgresql 4.0; 1.13: 5.0): ``upload_folder`` to one
   node vs spread over both nodes (``nodes=``), same run.
2. For each Orthanc generation (``--tiers``, default 1.10 and 1.13): one Orthanc (SQLite)
   filled with ``--studies`` studies (one tiny instance each, sent in ZIP batches), then in a
   fresh child process each, side by side on the same server: ``iter_find`` of every study
   (expanded, pages of ``--page-size``, 1,000), one ``find`` of every study (expanded, one
   request holding them all) and ``get_all_ids`` of the studies; prints the peak RSS growth
   of that process (VmHWM over VmRSS before), the time per 1,000 results and the ratio of
   ``iter_find``'s time to the one-shot ``find``'s (the goal: at most 1.5, with under 20 MB
   of growth). The ``_cs`` pair lists them again with a case-sensitive ``PatientID``
   pattern, which Orthanc >= 1.12.5 refuses to page with ``Since`` (``iter_find`` there
   needs no ``Since``: a light request, then pages of StudyInstanceUID lists).
   ``--repeat`` runs each listing that many times and keeps the fastest.
   The 1.13 archive is filled by Orthanc 1.12.7 and then opened by 1.13.0 (the upgrade path):
   1.13.0's own ingestion slows with the archive's size (every single-resource access scans,
   30 ms at 100,000 studies; 84 studies/s at 24,000 here), hours for 100,000.
   Every fill runs with ``StableAge`` 3600: with the rig's 1, 1.12.7 slowed under the stable
   events of sustained ZIP uploads (785 studies/s held with 3600, without restarts).
3. ``--pg-studies`` (default 20,000; 0: none): the same listings on Orthanc 1.13.0 over
   PostgreSQL with orthanc-postgresql 5.0, which has no extended find there (ids and
   /tools/bulk-content).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests", "rig")]

import orthanc_fn as o  # noqa: E402
import orthanc_fn_helpers as h  # noqa: E402
import orthanc_rig  # noqa: E402

_PLACEHOLDER = "1.2.826.0.1.3680043.8.498.{}.1{:011d}"  # fixed length, no leading zero


def _template():
    uids = {k: _PLACEHOLDER.format(n, 0) for n, k in enumerate(("1", "2", "3"))}
    return h.generate_test_dicom_file(4, 4, {
        "StudyInstanceUID": uids["1"], "SeriesInstanceUID": uids["2"],
        "SOPInstanceUID": uids["3"], "PatientID": "P000000000000"}), uids


def _study_zips(count, batch=2000):
    """Yield ZIP buffers holding ``batch`` one-instance studies each (UIDs patched in bytes)."""
    template, uids = _template()
    for start in range(0, count, batch):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
            for i in range(start, min(count, start + batch)):
                data = template
                for n, key in enumerate(("1", "2", "3")):
                    data = data.replace(uids[key].encode(), _PLACEHOLDER.format(n, i + 1).encode())
                data = data.replace(b"P000000000000", f"P{i:012d}".encode())
                archive.writestr(f"{i}.dcm", data)
        yield buffer.getvalue()


def _memory_mb(field):
    """This process's memory from /proc: VmRSS now, VmHWM its peak (reset by exec, unlike
    getrusage's ru_maxrss, which keeps the parent's peak)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field)) / 1024


# Every study too, but case-sensitive with a letter: Orthanc >= 1.12.5 refuses Since for it.
_CASE_SENSITIVE_QUERY = {"PatientID": "P*"}
_KINDS = ("iter_find", "find", "iter_find_cs", "find_cs", "get_all_ids")


def _child(kind, url, user, password, page_size="1000"):
    """Run one listing in this fresh process and print JSON figures."""
    conn = o.Connection(url, auth=(user, password))
    o.get_system(conn)
    before = _memory_mb("VmRSS")
    start = time.perf_counter()
    query = _CASE_SENSITIVE_QUERY if kind.endswith("_cs") else {}
    if kind.startswith("iter_find"):
        count = sum(1 for _ in o.iter_find(conn, o.STUDIES, query, page_size=int(page_size)))
    elif kind.startswith("find"):
        count = len(o.find(conn, o.STUDIES, query))
    else:
        count = len(o.get_all_ids(conn, o.STUDIES))
    elapsed = time.perf_counter() - start
    print(json.dumps({"count": count, "seconds": elapsed,
                      "rss_growth_mb": _memory_mb("VmHWM") - before}))


def _listing(server, kind, repeat=1, page_size=1000):
    """The figures of the fastest of ``repeat`` runs of a listing, each in a fresh process."""
    runs = []
    for _ in range(repeat):
        out = subprocess.run([sys.executable, __file__, "--child", kind, server.url,
                              *server.conn.auth, str(page_size)],
                             capture_output=True, text=True, check=True)
        runs.append(json.loads(out.stdout))
    return min(runs, key=lambda figures: figures["seconds"])


def _listings(server, kinds, repeat, page_size):
    """Orthanc's version on ``server`` and the figures of each listing of ``kinds``."""
    return o.get_system(server.conn)["Version"], {
        kind: _listing(server, kind, repeat, page_size) for kind in kinds}


def bench_cluster(count, tier=None):
    import postgres_rig
    postgres = postgres_rig.Postgres().start()
    nodes = [postgres_rig.cluster_node(n, postgres, tier=tier) for n in ("n1", "n2")]
    rows = []
    try:
        for node in nodes:
            node.start()
        with tempfile.TemporaryDirectory() as folder:
            for i, data in enumerate(h.generate_test_study(series=count // 50, instances=50,
                                                           width=64, height=64)):
                with open(os.path.join(folder, f"{i:06d}.dcm"), "wb") as f:
                    f.write(data)
            for label, extra in (("one node", None), ("two nodes", [nodes[1].conn])):
                o.delete_all_content(nodes[0].conn)
                start = time.perf_counter()
                result = o.upload_folder(nodes[0].conn, folder, workers=8, nodes=extra)
                elapsed = time.perf_counter() - start
                assert not result.errors and len(set(result.instances_ids)) == count
                rows.append((label, count / elapsed))
    finally:
        for node in nodes:
            node.remove()
        postgres.stop()
    return rows


# The generation that fills an archive listed by another (see the docstring).
_FILLED_BY = {"1.13": "1.12"}
_FILL_CONFIG = {"StableAge": 3600}


def _fill(server, studies):
    """Send ``studies`` one-instance studies to ``server``; return the seconds it took."""
    start = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:  # Orthanc ingests two ZIPs at once
        for _ in pool.map(lambda data: o.upload(server.conn, data, timeout=600),
                          _study_zips(studies)):
            pass
    assert o.get_statistics(server.conn)["CountStudies"] == studies
    return time.perf_counter() - start


def bench_listing(studies, tier, repeat=1, kinds=_KINDS, page_size=1000):
    filled_by = _FILLED_BY.get(tier, tier)
    server = orthanc_rig.Server("scale", tier=tier)
    filler = orthanc_rig.Server("scale-fill", tier=filled_by, config=_FILL_CONFIG).start()
    try:
        fill = _fill(filler, studies)
        filler.stop()
        os.rmdir(server.dir)  # the filled folder becomes the listing server's
        shutil.move(filler.dir, server.dir)
        server.start(timeout=600)
        version, listing = _listings(server, kinds, repeat, page_size)
        return version, (filled_by, fill), listing
    finally:
        server.remove()
        filler.remove()


def bench_postgres_listing(studies, repeat=1, kinds=_KINDS, page_size=1000):
    import postgres_rig
    postgres = postgres_rig.Postgres().start()
    server = postgres_rig.cluster_node("scale-pg", postgres, tier="1.13")
    server.config.update(_FILL_CONFIG)
    try:
        server.start()
        fill = _fill(server, studies)
        version, listing = _listings(server, kinds, repeat, page_size)
        return version, fill, listing
    finally:
        server.remove()
        postgres.stop()


class _Existing:
    """A server given by ``--server``: what ``_listing`` needs of an ``orthanc_rig.Server``."""

    def __init__(self, url, user, password):
        self.url, self.conn = url, o.Connection(url, auth=(user, password))


def _print_listing(listing):
    for kind, figures in listing.items():
        per_thousand = figures["seconds"] / max(1, figures["count"]) * 1000
        print(f"  {kind:12s} {figures['count']} results, peak RSS growth "
              f"{figures['rss_growth_mb']:.1f} MB, {per_thousand * 1000:.1f} ms per "
              "1,000 results")
    for suffix, what in (("", "{}"), ("_cs", f"{_CASE_SENSITIVE_QUERY}, case-sensitive")):
        if "iter_find" + suffix in listing and "find" + suffix in listing:
            ratio = listing["iter_find" + suffix]["seconds"] / listing["find" + suffix]["seconds"]
            print(f"  iter_find / one-shot find of {what}: {ratio:.2f}x the time")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=100_000)
    parser.add_argument("--upload", type=int, default=2000, help="0: no cluster benchmark")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each listing (fastest)")
    parser.add_argument("--tiers", nargs="+", default=["1.10", "1.13"],
                        help="Orthanc generations to list on (see tests/rig/orthanc_rig.py)")
    parser.add_argument("--cluster-tiers", nargs="+", default=["1.10", "1.13"],
                        help="Orthanc generations of the upload cluster")
    parser.add_argument("--pg-studies", type=int, default=20_000,
                        help="studies listed on 1.13 over PostgreSQL (0: none)")
    parser.add_argument("--page-size", type=int, default=1000, help="of iter_find")
    parser.add_argument("--kinds", nargs="+", default=list(_KINDS), choices=_KINDS,
                        help="listings to run (default: all)")
    parser.add_argument("--server", nargs=3, metavar=("URL", "USER", "PASSWORD"),
                        help="list on this already filled server instead (no --tiers)")
    args = parser.parse_args(argv)
    print(f"Orthanc {orthanc_rig.host_version()}, {os.cpu_count()} cores")
    for tier in args.cluster_tiers if args.upload else []:
        rows = bench_cluster(args.upload, tier)
        print(f"\nUpload of {args.upload} instances (64x64, 8 workers), PostgreSQL cluster "
              f"of Orthanc {tier}:")
        for label, rate in rows:
            print(f"  {label:10s} {rate:8.0f} instances/s   ratio {rate / rows[0][1]:.2f}")
    for tier in [] if args.server else args.tiers:
        version, (filled_by, fill), listing = bench_listing(
            args.studies, tier, args.repeat, args.kinds, args.page_size)
        print(f"\nOrthanc {version} (SQLite): {args.studies} studies filled by Orthanc "
              f"{filled_by} in {fill:.0f} s ({args.studies / fill:.0f} studies/s)")
        _print_listing(listing)
    if args.pg_studies and not args.server:
        version, fill, listing = bench_postgres_listing(args.pg_studies, args.repeat,
                                                        args.kinds, args.page_size)
        print(f"\nOrthanc {version} over PostgreSQL (orthanc-postgresql 5.0, no extended "
              f"find): {args.pg_studies} studies filled in {fill:.0f} s "
              f"({args.pg_studies / fill:.0f} studies/s)")
        _print_listing(listing)
    if args.server:
        server = _Existing(*args.server)
        studies = o.get_statistics(server.conn)["CountStudies"]
        version, listing = _listings(server, args.kinds, args.repeat, args.page_size)
        print(f"\nOrthanc {version} at {server.url}, already filled: {studies} studies")
        _print_listing(listing)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(*sys.argv[2:])
    else:
        sys.exit(main())
