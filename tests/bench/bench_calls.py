"""Per-call overhead: N ``get_system`` calls against one local Orthanc, per client.

Run by hand (not by pytest), best inside the bench venv so the compared clients are there:
    python tests/bench/run_all.py --only calls      (or: python tests/bench/bench_calls.py)

Every client makes the same N sequential calls (after a warm-up) on a reused connection:
orthanc_fn, a raw pooled urllib3 loop (the floor), orthanc-api-client (requests) and
pyorthanc (httpx). Reports the median of 5 rounds in microseconds per call; the clients'
rounds alternate so that a change of machine load hits them all alike.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import _common
import orthanc_fn as o


def _clients(server):
    """Map each client name to a function making one get_system call (None: not installed)."""
    user, password = server.conn.auth
    import urllib3
    pool = urllib3.PoolManager(maxsize=4)
    headers = urllib3.make_headers(basic_auth=f"{user}:{password}")
    url = server.url + "/system"
    calls = {
        "orthanc_fn": lambda conn=server.conn: o.get_system(conn),
        "urllib3": lambda: json.loads(pool.request("GET", url, headers=headers).data),
        "orthanc-api-client": None,
        "pyorthanc": None,
    }
    api_client = _common.optional_import("orthanc_api_client")
    if api_client is not None:
        calls["orthanc-api-client"] = api_client.OrthancApiClient(
            server.url, user=user, pwd=password).get_system
    pyorthanc = _common.optional_import("pyorthanc")
    if pyorthanc is not None:
        calls["pyorthanc"] = pyorthanc.Orthanc(server.url, username=user,
                                               password=password).get_system
    return calls


def measure(server, calls=2000, rounds=5):
    """Return {client: median microseconds per call}; the rounds of the clients alternate."""
    clients = {name: call for name, call in _clients(server).items() if call is not None}
    for call in clients.values():
        assert call()["DicomAet"] == server.aet
        for _ in range(50):
            call()
    times = {name: [] for name in clients}
    for _ in range(rounds):
        for name, call in clients.items():
            start = time.perf_counter()
            for _ in range(calls):
                call()
            times[name].append((time.perf_counter() - start) / calls * 1e6)
    return {name: statistics.median(times[name]) if name in times else None
            for name in _common.CLIENTS}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args(argv)
    with _common.server("bench-calls") as server:
        values = measure(server, args.calls)
    rows = [_common.Row(f"{args.calls:,} get_system calls", "µs/call", values)]
    _common.print_rows(rows, "Per-call overhead")
    return rows


if __name__ == "__main__":
    main()
