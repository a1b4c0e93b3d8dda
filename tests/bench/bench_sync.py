"""Sync benchmark: instances/second copied from one fresh Orthanc to another.

    python tests/bench/bench_sync.py [--studies 20] [--instances 100] [--size 32]
                                     [--rounds 3]
    python tests/bench/run_all.py --only sync

Starts two wired servers of the host's Orthanc (tests/rig: each the other's peer and DICOMweb
server, ConcurrentJobs 4), stores ``studies`` x ``instances`` generated ``size`` x ``size``
16-bit instances on the source, then for each round and each contender empties the destination and times one full
copy: ``orthanc_fn.sync`` (method auto, which is "peer" here, with the MD5 check of every
instance), the same with ``verify=False``, ``orthanc_fn.sync(method="copy")``, Orthanc's own peer store of every study as one
``peer_send`` job, and the naive loop (download each instance, upload it, one at a time).
Prints the best round of each and the ratios. Targets: sync >= 0.9x the peer store's
throughput and >= 2x the naive loop. Run by hand, not by pytest.
"""
import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402
import orthanc_fn  # noqa: E402
import orthanc_rig  # noqa: E402


def _fill(conn, studies, instances, size):
    import orthanc_fn_helpers as h
    files = [data for _ in range(studies)
             for data in h.generate_test_study(series=1, instances=instances, width=size,
                                               height=size)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda data: orthanc_fn.upload(conn, data), files))
    return orthanc_fn.get_all_ids(conn, orthanc_fn.STUDIES)


def _naive(src, dst):
    for instance_id in orthanc_fn.get_all_ids(src, orthanc_fn.INSTANCES):
        orthanc_fn.upload(dst, orthanc_fn.get_file(src, instance_id))


def main(argv=None):
    """Run the sync benchmark, print its table and return its ``_common.Row``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=20)
    parser.add_argument("--instances", type=int, default=100, help="per study (default 100)")
    parser.add_argument("--size", type=int, default=32, help="image width and height")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each (best kept)")
    args = parser.parse_args(argv)
    total = args.studies * args.instances
    src, dst = orthanc_rig.Server("bench-sync-src"), orthanc_rig.Server("bench-sync-dst")
    orthanc_rig.wire(src, dst)
    best = {}
    try:
        src.start()
        dst.start()
        studies = _fill(src.conn, args.studies, args.instances, args.size)
        contenders = {
            "orthanc_fn.sync (auto: peer, verified)": lambda: orthanc_fn.sync(src.conn, dst.conn),
            "orthanc_fn.sync(verify=False) (peer)": lambda: orthanc_fn.sync(
                src.conn, dst.conn, verify=False),
            "orthanc_fn.sync(method='copy')": lambda: orthanc_fn.sync(src.conn, dst.conn,
                                                                      method="copy"),
            "one peer_send job (Orthanc's peer store)": lambda: orthanc_fn.peer_send(
                src.conn, dst.name, studies),
            "naive loop (get_file + upload, one by one)": lambda: _naive(src.conn, dst.conn),
        }
        for _ in range(args.rounds):
            for name, run in contenders.items():
                orthanc_fn.delete_all_content(dst.conn)
                start = time.perf_counter()
                run()
                seconds = time.perf_counter() - start
                stored = orthanc_fn.get_statistics(dst.conn)["CountInstances"]
                if stored != total:
                    raise RuntimeError(f"{name} stored {stored} of {total} instances")
                best[name] = max(best.get(name, 0.0), total / seconds)
    finally:
        src.remove()
        dst.remove()
    names = list(contenders)
    ours, peer, naive = best[names[0]], best[names[3]], best[names[4]]
    print(f"\nSync of {total} instances ({args.size}x{args.size}, {args.studies} studies), best of "
          f"{args.rounds} rounds, Orthanc {orthanc_rig.host_version()}, {os.cpu_count()} CPUs")
    for name, rate in best.items():
        print(f"  {name:<46} {rate:7.0f} instances/s  (sync is {ours / rate:.2f}x)")
    print(f"sync / peer store = {ours / peer:.2f} (target >= 0.9); "
          f"sync / naive loop = {ours / naive:.2f} (target >= 2)")
    return [_common.Row(
        f"sync, {total} instances {args.size}x{args.size}", "instances/s", {"orthanc_fn": ours},
        lower_is_better=False,
        note=f"peer_send job {peer:.0f}/s, naive loop {naive:.0f}/s, unverified "
             f"{best[names[1]]:.0f}/s, copy {best[names[2]]:.0f}/s")]


if __name__ == "__main__":
    main()
