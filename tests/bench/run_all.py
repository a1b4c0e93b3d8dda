"""Run every benchmark of the project and print one table of ratios to orthanc_fn.

Run by hand, as root on a Debian machine with the test servers' packages (see .ci/run):

    python3 tests/bench/run_all.py                 # everything (a few minutes)
    python3 tests/bench/run_all.py --only calls --only import

The first run creates a separate venv (ORTHANC_FN_BENCH_VENV, default
/var/cache/orthanc_fn/bench-venv) holding orthanc-api-client, pyorthanc and this checkout, then
runs itself again inside it: the compared packages never enter the project's venv. Each
benchmark is a module of this folder with ``main(argv=None)`` returning ``_common.Row`` s; a
module that only prints (or fails) is reported and the others still run. Benchmarks start
their own throwaway Orthanc servers on loopback and stop them. Never collected by pytest.
"""
from __future__ import annotations

import argparse
import datetime
import importlib
import os
import platform
import subprocess
import sys
import traceback

import _common

# name -> (module, argv): upload/download are written by the transfer benchmarks' owner.
BENCHMARKS = {
    "upload": ("bench_upload", []),
    "download": ("bench_download", []),
    "calls": ("bench_calls", ["--calls", "2000"]),
    "import": ("bench_import", ["--runs", "31"]),
    "requests": ("bench_requests", []),
    "scale": ("bench_scale", []),
    "volume": ("bench_volume", []),
    "sync": ("bench_sync", []),
}


def _machine():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        with open("/etc/debian_version") as f:
            debian = "Debian " + f.read().strip()
    except OSError:
        debian = platform.platform()
    return f"{debian}, {cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def _versions():
    from importlib.metadata import PackageNotFoundError, version
    import orthanc_fn
    import urllib3
    versions = [f"orthanc_fn {orthanc_fn.__version__}", f"urllib3 {urllib3.__version__}",
                f"Orthanc {_common.orthanc_rig.host_version()}"]
    for package in _common.COMPARED_PACKAGES:
        try:
            versions.append(f"{package} {version(package)}")
        except PackageNotFoundError:  # its column shows n/a
            versions.append(f"{package} (not installed)")
    return ", ".join(versions)


def _run(name):
    module_name, argv = BENCHMARKS[name]
    print(f"\n=== {name} ({module_name}.py)", flush=True)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        return [], f"{name}: not available ({exc})"
    try:
        rows = module.main(argv)
    except Exception:
        traceback.print_exc()
        return [], f"{name}: failed (traceback above)"
    rows = [r for r in rows or () if isinstance(r, _common.Row)] if isinstance(rows, list) else []
    return rows, None if rows else f"{name}: figures printed above, not in the table"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=sorted(BENCHMARKS),
                        help="run only this benchmark (repeatable)")
    parser.add_argument("--no-venv", action="store_true",
                        help="run in this python (compared clients show n/a if missing)")
    args = parser.parse_args(argv)
    if not args.no_venv and not _common.in_bench_venv():
        python = _common.ensure_bench_venv()
        return subprocess.run([python, os.path.abspath(__file__), *(argv or sys.argv[1:])],
                              cwd=_common.HERE).returncode

    started = datetime.datetime.now(datetime.timezone.utc)
    rows, notes = [], []
    for name in args.only or BENCHMARKS:
        got, note = _run(name)
        rows += got
        if note:
            notes.append(note)

    print(f"\n## Benchmarks, {started:%Y-%m-%d %H:%M} UTC")
    print(f"Machine: {_machine()}")
    print(f"Versions: {_versions()}")
    print("Command: python3 tests/bench/run_all.py\n")
    print(_common.format_table(rows))
    print("\nRatio: the other client's cost divided by orthanc_fn's (or orthanc_fn's rate "
          "divided by the other's); above 1.00x, orthanc_fn does better.")
    for note in notes:
        print(f"- {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
