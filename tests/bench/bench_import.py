"""Import time: median wall time of `python -c "import X"` in fresh interpreters.

Run by hand (not by pytest):  python tests/bench/bench_import.py [--runs 31] [--python PY]

Compares orthanc_fn with urllib3 (its only dependency: the budget is 1.10x), and with
orthanc_api_client and pyorthanc when that python has them. The runs of the modules are
interleaved (one of each in turn) so a change of machine load hits them all alike. Each
module is imported once first so its bytecode is cached (PYTHONDONTWRITEBYTECODE is unset for
these runs): a fresh checkout pays the compilation once, as any installed package would.
orthanc_fn is imported from a snapshot copy of orthanc_fn.py in a temporary folder (the
vendored case), so that an edit of the checkout during the runs cannot force a recompilation.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import _common

MODULES = {"orthanc_fn": "orthanc_fn", "urllib3": "urllib3",
           "orthanc-api-client": "orthanc_api_client", "pyorthanc": "pyorthanc"}


def _run(python, code, env, cwd):
    start = time.perf_counter()
    subprocess.run([python, "-c", code], env=env, cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL)
    return (time.perf_counter() - start) * 1000


def _cumulative_ms(python, module, env, cwd):
    """The module's cumulative import time reported by `python -X importtime` (less noisy)."""
    out = subprocess.run([python, "-X", "importtime", "-c", f"import {module}"], env=env,
                         cwd=cwd, check=True, capture_output=True, text=True).stderr
    for line in out.splitlines():
        fields = line.split("|")
        if len(fields) == 3 and fields[2].strip() == module:
            return int(fields[1]) / 1000
    raise RuntimeError(f"no importtime line for {module}")


def measure(python=sys.executable, runs=31):
    """Return ({client: median ms}, {client: median importtime ms}, baseline ms of `pass`)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    with tempfile.TemporaryDirectory(prefix="orthanc_fn-bench-import-") as cwd:
        shutil.copy(os.path.join(_common.ROOT, "orthanc_fn.py"), cwd)
        return _measure(python, runs, env, cwd)


def _measure(python, runs, env, cwd):
    present = {}
    for client, module in MODULES.items():
        check = subprocess.run([python, "-c", f"import {module}"], env=env, cwd=cwd,
                               capture_output=True)
        present[client] = check.returncode == 0
    times = {client: [] for client, ok in present.items() if ok}
    cumulative = {client: [] for client in times}
    baseline = []
    for _ in range(runs):
        baseline.append(_run(python, "pass", env, cwd))
        for client in times:
            times[client].append(_run(python, f"import {MODULES[client]}", env, cwd))
            cumulative[client].append(_cumulative_ms(python, MODULES[client], env, cwd))

    def medians(samples):
        return {client: statistics.median(samples[client]) if present[client] else None
                for client in MODULES}
    return medians(times), medians(cumulative), statistics.median(baseline)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=31)
    parser.add_argument("--python", default=sys.executable)
    args = parser.parse_args(argv)
    values, cumulative, baseline = measure(args.python, args.runs)
    rows = [_common.Row("import, `python -c` wall time", "ms", values,
                        note=f"median of {args.runs}; `python -c pass` {baseline:.1f} ms"),
            _common.Row("import, `-X importtime` cumulative", "ms", cumulative,
                        note=f"median of {args.runs}")]
    _common.print_rows(rows, "Import time")
    for row in rows:
        if row.values["orthanc_fn"] and row.values["urllib3"]:
            print(f"{row.benchmark}: orthanc_fn / urllib3 = "
                  f"{row.values['orthanc_fn'] / row.values['urllib3']:.3f} (budget 1.10)")
    return rows


if __name__ == "__main__":
    main()
