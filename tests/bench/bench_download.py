"""Download benchmark: peak memory of a streamed study archive (and of another client).

    python tests/bench/bench_download.py [--megabytes 210]
    python tests/bench/run_all.py --only download

Starts its own Orthanc (tests/rig), stores one study of at least ``megabytes`` MB
(512x512 16-bit instances), then downloads its ZIP archive to a temporary file in a fresh
process and prints how far that process's peak RSS (VmHWM) rose above its RSS just before
the download, with the time.
``orthanc_fn.download_archive`` streams in 1 MB chunks: target < 30 MB of growth whatever the
size. orthanc-api-client's ``studies.download_archive`` (from the bench venv of
``_common.ensure_bench_venv``) is shown for comparison.
Run by hand, not by pytest: the figures depend on the machine and its load.
"""
import argparse
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402
import orthanc_fn  # noqa: E402
from bench_upload import compared_python, print_table, run_timed  # noqa: E402

_PRELUDE = """
import os, sys, time
url, user, password, study_id, path = sys.argv[1:6]
def memory_mb(field):  # VmRSS: now; VmHWM: the peak so far
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field)) / 1024
"""

CONTENDERS = {
    "orthanc_fn.download_archive": ("project", _PRELUDE + """
import orthanc_fn
conn = orthanc_fn.Connection(url, auth=(user, password))
orthanc_fn.get_system(conn)
before = memory_mb("VmRSS")
start = time.perf_counter()
orthanc_fn.download_archive(conn, orthanc_fn.STUDIES, study_id, path)
peak = memory_mb("VmHWM")
print(time.perf_counter() - start, peak - before, os.path.getsize(path), peak)
"""),
    "orthanc-api-client studies.download_archive": ("others", _PRELUDE + """
from orthanc_api_client import OrthancApiClient
api = OrthancApiClient(url, user=user, pwd=password)
api.get_system()
before = memory_mb("VmRSS")
start = time.perf_counter()
api.studies.download_archive(study_id, path)
peak = memory_mb("VmHWM")
print(time.perf_counter() - start, peak - before, os.path.getsize(path), peak)
"""),
}


def store_study(conn, megabytes):
    """Store one study of at least ``megabytes`` MB; return its Orthanc id."""
    from concurrent.futures import ThreadPoolExecutor
    import orthanc_fn_helpers as h
    from pydicom.uid import generate_uid
    instance_bytes = 512 * 512 * 2
    count = -(-megabytes * 1_000_000 // instance_bytes)
    tags = {"StudyInstanceUID": generate_uid(), "SeriesInstanceUID": generate_uid(),
            "PatientID": "BENCH-DOWNLOAD"}

    def send(number):
        data = h.generate_test_dicom_file(512, 512, dict(tags, InstanceNumber=number + 1),
                                          seed=number)
        return orthanc_fn.upload(conn, data)[0]

    with ThreadPoolExecutor(4) as pool:
        first = list(pool.map(send, range(count)))[0]
    return orthanc_fn.get_parent_id(conn, "instances", first, "studies")


def main(argv=None):
    """Run the download benchmark, print its table and return its ``_common.Row`` s."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=210, help="study size (default 210)")
    args = parser.parse_args(argv)
    pythons = {"project": sys.executable, "others": compared_python()}
    folder = tempfile.mkdtemp(prefix="orthanc_fn-bench-download-")
    figures = {}
    try:
        with _common.server("bench-download") as server:
            study_id = store_study(server.conn, args.megabytes)
            user, password = server.conn.auth
            for name, (which, code) in CONTENDERS.items():
                path = os.path.join(folder, "study.zip")
                line = run_timed(pythons[which], code, server.url, user, password, study_id,
                                 path)
                seconds, growth, size, peak = line.split()
                figures[name] = (float(seconds), float(growth), int(size), float(peak))
                os.remove(path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    size_mb = max(figure[2] for figure in figures.values()) / 1e6
    print_table(
        f"Download of a {size_mb:.0f} MB study archive, {os.cpu_count()} CPUs",
        ["client", "seconds", "MB/s", "peak RSS growth (MB)", "peak RSS (MB)"],
        [[name, f"{s:.1f}", f"{size / 1e6 / s:.0f}", f"{growth:.1f}", f"{peak:.0f}"]
         for name, (s, growth, size, peak) in figures.items()])
    ours, theirs = (figures[name] for name in CONTENDERS)
    print(f"\northanc_fn peak RSS growth = {ours[1]:.1f} MB (target < 30 MB)")
    title = f"download_archive, {size_mb:.0f} MB study"
    return [
        _common.Row(title, "peak RSS growth MB",
                    {"orthanc_fn": ours[1], "orthanc-api-client": theirs[1]}),
        _common.Row(title, "s", {"orthanc_fn": ours[0], "orthanc-api-client": theirs[0]}),
    ]


if __name__ == "__main__":
    main()
