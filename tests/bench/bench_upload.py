"""Upload benchmark: instances/second of orthanc_fn and other clients on one fresh Orthanc.

    python tests/bench/bench_upload.py [--count 1000] [--rounds 3]
    python tests/bench/run_all.py --only upload

Generates ``count`` instances of 128x128 16-bit pixels in a temporary folder (10 sub-folders),
starts its own Orthanc (tests/rig), then for each round and each contender empties the server
and times one upload of the whole folder, in a fresh process: ``orthanc_fn.upload_folder``,
orthanc-api-client's ``upload_folder``, ``pyorthanc.upload(..., recursive=True)``, and a raw
urllib3 loop with 1 and with 8 threads. Prints the best round of each and the ratios.
The compared clients run from the bench venv of ``_common.ensure_bench_venv`` (made on first
use, never the project's venv).
Targets: orthanc_fn >= 2.5x orthanc-api-client and >= 0.95x the best raw figure.
Run by hand, not by pytest: the figures depend on the machine and its load.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402
import orthanc_fn  # noqa: E402

_PRELUDE = """
import os, sys, time
url, user, password, folder = sys.argv[1:5]
def files():
    return sorted(os.path.join(d, f) for d, _, names in os.walk(folder) for f in names)
"""

CONTENDERS = {
    "orthanc_fn.upload_folder": ("project", _PRELUDE + """
import orthanc_fn
conn = orthanc_fn.Connection(url, auth=(user, password))
orthanc_fn.get_system(conn)
start = time.perf_counter()
result = orthanc_fn.upload_folder(conn, folder)
print(len(result.instances_ids), time.perf_counter() - start)
"""),
    "orthanc-api-client upload_folder": ("others", _PRELUDE + """
from orthanc_api_client import OrthancApiClient
api = OrthancApiClient(url, user=user, pwd=password)
api.get_system()
start = time.perf_counter()
ids = api.upload_folder(folder)
print(len(ids), time.perf_counter() - start)
"""),
    "pyorthanc.upload(recursive=True)": ("others", _PRELUDE + """
import pyorthanc
client = pyorthanc.Orthanc(url, username=user, password=password)
client.get_system()
start = time.perf_counter()
instances = pyorthanc.upload(client, folder, recursive=True)
print(len(instances), time.perf_counter() - start)
"""),
}

_RAW = _PRELUDE + """
import urllib3
from concurrent.futures import ThreadPoolExecutor
threads = int(sys.argv[5])
pool = urllib3.PoolManager(maxsize=threads, block=True)
headers = urllib3.make_headers(basic_auth=user + ":" + password)
headers["Content-Type"] = "application/octet-stream"
pool.request("GET", url + "/system", headers=headers)
def send(path):
    with open(path, "rb") as f:
        data = f.read()
    response = pool.request("POST", url + "/instances", body=data, headers=headers)
    assert response.status == 200, response.status
    return 1
start = time.perf_counter()
if threads == 1:
    count = sum(map(send, files()))
else:
    with ThreadPoolExecutor(threads) as executor:
        count = sum(executor.map(send, files()))
print(count, time.perf_counter() - start)
"""
for _threads in (1, 8):
    CONTENDERS[f"raw urllib3, {_threads} thread{'s' if _threads > 1 else ''}"] = (
        "project", _RAW, _threads)


def compared_python():
    """A python with orthanc-api-client and pyorthanc: this one inside the bench venv."""
    return sys.executable if _common.in_bench_venv() else _common.ensure_bench_venv()


def run_timed(python, code, *args):
    """Run ``code`` in a fresh ``python`` with ``args`` as sys.argv[1:]; return its last line.

    The code times only the measured call (not start-up) and prints the figures.
    """
    done = subprocess.run([python, "-c", code, *map(str, args)], capture_output=True,
                          text=True, env=dict(os.environ, PYTHONPATH=_common.ROOT))
    if done.returncode != 0:
        raise RuntimeError(f"benchmark step failed:\n{done.stderr[-3000:]}")
    return done.stdout.strip().splitlines()[-1]


def print_table(title, header, rows):
    """Print ``rows`` (lists of cells) under ``header`` as an aligned text table."""
    cells = [list(map(str, header))] + [list(map(str, row)) for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    print(f"\n{title}")
    for number, row in enumerate(cells):
        print("  ".join(cell.ljust(width) if i == 0 else cell.rjust(width)
                        for i, (cell, width) in enumerate(zip(row, widths))))
        if number == 0:
            print("  ".join("-" * width for width in widths))


def make_folder(folder, count):
    """Write ``count`` 128x128 16-bit instances (one study) into 10 sub-folders."""
    import orthanc_fn_helpers as h
    from pydicom.uid import generate_uid
    study = {"StudyInstanceUID": generate_uid(), "PatientID": "BENCH-UPLOAD"}
    series = generate_uid()
    for number in range(count):
        sub = os.path.join(folder, f"part{number % 10}")
        os.makedirs(sub, exist_ok=True)
        data = h.generate_test_dicom_file(128, 128, dict(
            study, SeriesInstanceUID=series, InstanceNumber=number + 1), seed=number)
        with open(os.path.join(sub, f"i{number:05}.dcm"), "wb") as f:
            f.write(data)


def main(argv=None):
    """Run the upload benchmark, print its table and return its ``_common.Row``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000, help="instances (default 1000)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each (best kept)")
    args = parser.parse_args(argv)
    pythons = {"project": sys.executable, "others": compared_python()}
    folder = tempfile.mkdtemp(prefix="orthanc_fn-bench-upload-")
    best = {}
    try:
        make_folder(folder, args.count)
        with _common.server("bench-upload") as server:
            user, password = server.conn.auth
            for _ in range(args.rounds):  # rounds alternate: load changes hit every client
                for name, (which, code, *extra) in CONTENDERS.items():
                    orthanc_fn.delete_all_content(server.conn)
                    line = run_timed(pythons[which], code, server.url, user, password,
                                     folder, *extra)
                    count, seconds = line.split()
                    if int(count) != args.count:
                        raise RuntimeError(f"{name} stored {count} of {args.count} instances")
                    best[name] = max(best.get(name, 0.0), args.count / float(seconds))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    ours = best["orthanc_fn.upload_folder"]
    print_table(
        f"Upload of {args.count} instances (128x128, 16-bit), best of {args.rounds} rounds, "
        f"{os.cpu_count()} CPUs",
        ["client", "instances/s", "orthanc_fn is x times"],
        [[name, f"{rate:.0f}", f"{ours / rate:.2f}"] for name, rate in best.items()])
    raw = max((rate, name) for name, rate in best.items() if name.startswith("raw"))
    versus_api = ours / best["orthanc-api-client upload_folder"]
    print(f"\northanc_fn / orthanc-api-client = {versus_api:.2f} (target >= 2.5)")
    print(f"orthanc_fn / best raw urllib3   = {ours / raw[0]:.2f} (target >= 0.95)")
    return [_common.Row(
        f"upload_folder, {args.count} instances", "instances/s",
        {"orthanc_fn": ours, "urllib3": raw[0],
         "orthanc-api-client": best["orthanc-api-client upload_folder"],
         "pyorthanc": best["pyorthanc.upload(recursive=True)"]},
        lower_is_better=False, note="urllib3: best raw loop, " + raw[1].split(", ")[1])]


if __name__ == "__main__":
    main()
