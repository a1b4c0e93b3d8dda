"""Volume benchmark: a 200-slice 512x512 CT series as one numpy volume, three ways.

    python tests/bench/bench_volume.py [--slices 200] [--tiers 1.10,1.13] [--repeat 5]
    python tests/bench/run_all.py --only volume

For each Orthanc tier, starts its own server (tests/rig), stores one CT series (12-bit
random pixels, RescaleIntercept -1024, InstanceNumbers shuffled), then builds the volume in
a fresh process, ``--repeat`` times each, interleaved (the median is shown):
- ``orthanc_fn_helpers.get_volume`` (8 workers over the shared pool, a preallocated array);
- the best raw loop: 8 threads of urllib3 ``GET /instances/{id}/file``, pydicom decode,
  sort by position along the slice normal, copy into one int16 array, rescale;
- pyorthanc's way: ``Instance.get_pydicom()`` for each instance of ``pyorthanc.Series``, in
  turn (from the bench venv of ``_common.ensure_bench_venv``), then the same sort and stack.
Peak memory growth is the process's VmHWM above its VmRSS before the call, divided by the
volume's array size. Goals: get_volume within 1.10x of the raw loop's time on every tier,
at least 3x faster than pyorthanc's on 1.10, peak growth at most 1.5x the array.
Run by hand, not by pytest: the figures depend on the machine and its load.
"""
import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402
import orthanc_fn  # noqa: E402
from bench_upload import compared_python, print_table, run_timed  # noqa: E402

_PRELUDE = """
import os, sys, time
import numpy as np
url, user, password, series_id = sys.argv[1:5]
def memory_mb(field):  # VmRSS: now; VmHWM: the peak so far
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field)) / 1024
def stack(datasets):  # sort along the normal, stack, rescale: what a careful script does
    normal = np.cross(*np.array(datasets[0].ImageOrientationPatient, float).reshape(2, 3))
    datasets.sort(key=lambda d: float(np.dot(np.array(d.ImagePositionPatient, float), normal)))
    slope, intercept = int(datasets[0].RescaleSlope), int(datasets[0].RescaleIntercept)
    volume = np.empty((len(datasets), datasets[0].Rows, datasets[0].Columns), np.int16)
    for k, d in enumerate(datasets):
        volume[k] = d.pixel_array
    datasets.clear()
    volume *= slope
    volume += intercept
    return volume
"""
_REPORT = """
peak = memory_mb("VmHWM")
print(seconds, peak - before, volume.nbytes / 2**20, volume.shape[0], int(volume[0, 0, 0]))
"""

CONTENDERS = {
    "orthanc_fn": ("project", _PRELUDE + """
import orthanc_fn, orthanc_fn_helpers as h
conn = orthanc_fn.Connection(url, auth=(user, password))
orthanc_fn.get_system(conn)
import pydicom, numpy
before = memory_mb("VmRSS")
start = time.perf_counter()
volume = h.get_volume(conn, series_id).array
seconds = time.perf_counter() - start
""" + _REPORT),
    "urllib3": ("project", _PRELUDE + """
import io, json
from concurrent.futures import ThreadPoolExecutor
import pydicom, urllib3
pool = urllib3.PoolManager(maxsize=8)
headers = urllib3.make_headers(basic_auth=f"{user}:{password}")
pool.request("GET", url + "/system", headers=headers)
before = memory_mb("VmRSS")
start = time.perf_counter()
ids = json.loads(pool.request("GET", f"{url}/series/{series_id}", headers=headers).data)["Instances"]
def fetch(instance_id):
    data = pool.request("GET", f"{url}/instances/{instance_id}/file", headers=headers).data
    return pydicom.dcmread(io.BytesIO(data))
with ThreadPoolExecutor(8) as threads:
    datasets = list(threads.map(fetch, ids))
volume = stack(datasets)
seconds = time.perf_counter() - start
""" + _REPORT),
    "pyorthanc": ("others", _PRELUDE + """
import pyorthanc
client = pyorthanc.Orthanc(url, username=user, password=password)
client.get_system()
import pydicom
before = memory_mb("VmRSS")
start = time.perf_counter()
series = pyorthanc.Series(series_id, client)
volume = stack([instance.get_pydicom() for instance in series.instances])
seconds = time.perf_counter() - start
""" + _REPORT),
}


def store_series(conn, slices):
    """Store one 512x512 CT series of ``slices`` slices (numbers shuffled); return its id."""
    import random
    from concurrent.futures import ThreadPoolExecutor

    import orthanc_fn_helpers as h
    from pydicom.uid import generate_uid
    tags = {"StudyInstanceUID": generate_uid(), "SeriesInstanceUID": generate_uid(),
            "PatientID": "BENCH-VOLUME"}
    numbers = list(range(1, slices + 1))
    random.Random(1).shuffle(numbers)

    def send(k):
        data = h.generate_test_dicom_file(512, 512, dict(
            tags, InstanceNumber=numbers[k], ImagePositionPatient=[0, 0, 1.25 * k]),
            bits=12, image="random", seed=k)
        return orthanc_fn.upload(conn, data)[0]

    with ThreadPoolExecutor(4) as pool:
        first = list(pool.map(send, range(slices)))[0]
    return orthanc_fn.get_parent_id(conn, "instances", first, "series")


def main(argv=None):
    """Run the volume benchmark, print its table and return its ``_common.Row`` s."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=200, help="slices (default 200)")
    parser.add_argument("--tiers", default="1.10,1.13", help="Orthanc tiers (default 1.10,1.13)")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each (default 5)")
    args = parser.parse_args(argv)
    pythons = {"project": sys.executable, "others": compared_python()}
    rows, table = [], []
    for tier in args.tiers.split(","):
        with _common.server(f"bench-volume-{tier}", tier=tier) as server:
            version = orthanc_fn.get_system(server.conn)["Version"]
            series_id = store_series(server.conn, args.slices)
            user, password = server.conn.auth
            runs = {name: [] for name in CONTENDERS}
            for _ in range(args.repeat):  # interleaved: a change of load hits every client
                for name, (which, code) in CONTENDERS.items():
                    runs[name].append(run_timed(pythons[which], code, server.url, user,
                                                password, series_id).split())
            figures = {}
            for name, lines in runs.items():
                assert all(line[3:] == lines[0][3:] for line in lines), lines
                figures[name] = (statistics.median(float(line[0]) for line in lines),
                                 statistics.median(float(line[1]) for line in lines),
                                 float(lines[0][2]), lines[0][3:])
            answers = {tuple(figure[3]) for figure in figures.values()}  # slices, first voxel
            assert len(answers) == 1 and answers.pop()[0] == str(args.slices), figures
            ours = figures["orthanc_fn"]
            for name, (seconds, growth, array_mb, _) in figures.items():
                table.append([f"Orthanc {version}", name, f"{seconds:.2f}",
                              f"{seconds / ours[0]:.2f}x", f"{growth:.0f}",
                              f"{growth / array_mb:.2f}x"])
            title = f"get_volume, {args.slices} x 512x512 CT, Orthanc {version}"
            rows.append(_common.Row(title, "s", {n: f[0] for n, f in figures.items()}))
            rows.append(_common.Row(title, "peak growth / array", {
                n: round(f[1] / f[2], 2) for n, f in figures.items()}))
    print_table(f"Volume of {args.slices} slices 512x512 (array "
                f"{args.slices * 512 * 512 * 2 / 2**20:.0f} MB int16), median of {args.repeat}, "
                f"{os.cpu_count()} CPUs",
                ["server", "client", "seconds", "vs orthanc_fn", "peak growth MB",
                 "growth / array"], table)
    return rows


if __name__ == "__main__":
    main()
