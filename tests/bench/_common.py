"""Shared pieces of the benchmarks: paths, the comparison venv, servers, a counting proxy, rows.

A benchmark module's ``main(argv=None)`` returns a list of ``Row`` (and prints them when run
alone); ``run_all.py`` gathers the rows of every module into one table of ratios.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from typing import NamedTuple, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
for _path in (ROOT, os.path.join(ROOT, "tests", "rig")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import orthanc_rig  # noqa: E402

# Columns of the table: our library first, then what it is compared with.
CLIENTS = ("orthanc_fn", "urllib3", "orthanc-api-client", "pyorthanc")
BENCH_VENV = os.environ.get("ORTHANC_FN_BENCH_VENV", "/var/cache/orthanc_fn/bench-venv")
COMPARED_PACKAGES = ("orthanc-api-client", "pyorthanc")


class Row(NamedTuple):
    """One line of the table: ``values`` maps a client (see CLIENTS) to a number or None."""
    benchmark: str
    unit: str
    values: dict
    lower_is_better: bool = True
    note: str = ""


def ensure_bench_venv():
    """Create the comparison venv once (orthanc-api-client, pyorthanc and this project).

    It is separate from the project's venv so the compared packages never leak into the
    tests. Returns its python.
    """
    python = os.path.join(BENCH_VENV, "bin", "python")
    marker = os.path.join(BENCH_VENV, ".complete")
    if not os.path.exists(marker):
        print(f"bench: creating {BENCH_VENV} with {', '.join(COMPARED_PACKAGES)}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", BENCH_VENV], check=True)
        subprocess.run([python, "-m", "pip", "install", "-q", *COMPARED_PACKAGES,
                        "pydicom", "numpy", "urllib3"], check=True)
        subprocess.run([python, "-m", "pip", "install", "-q", "-e", ROOT], check=True)
        open(marker, "w").close()
    return python


def in_bench_venv():
    return os.path.realpath(sys.prefix) == os.path.realpath(BENCH_VENV)


@contextlib.contextmanager
def server(name, **options):
    """A throwaway Orthanc of the host (see tests/rig/orthanc_rig.py), removed on exit."""
    instance = orthanc_rig.Server(name, **options)
    try:
        yield instance.start()
    finally:
        instance.remove()


def optional_import(name):
    """Import a compared package, or None when it is not installed (outside the bench venv)."""
    try:
        return __import__(name)
    except ImportError:
        return None


def _cell(value, reference, lower_is_better, is_reference):
    if value is None:
        return "n/a"
    text = f"{value:,.1f}" if isinstance(value, float) else f"{value:,}"
    if reference and value and not is_reference:
        ratio = value / reference if lower_is_better else reference / value
        text += f" ({ratio:.2f}x)"
    return text


def format_table(rows):
    """Format rows as a Markdown table of values and ratios to orthanc_fn.

    A ratio is the other client's cost over orthanc_fn's (time, requests, memory), or
    orthanc_fn's rate over the other's (throughput): above 1.00x orthanc_fn does better.
    """
    header = ["benchmark", "unit", *CLIENTS]
    lines = [header, ["---"] * len(header)]
    for row in rows:
        reference = row.values.get("orthanc_fn")
        lines.append([row.benchmark + (f" ({row.note})" if row.note else ""), row.unit] + [
            _cell(row.values.get(client), reference, row.lower_is_better, client == CLIENTS[0])
            for client in CLIENTS])
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)


def print_rows(rows, title: Optional[str] = None):
    if title:
        print(f"\n{title}")
    print(format_table(rows))
