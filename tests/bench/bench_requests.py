"""Request counts: how many HTTP requests each client needs for the same result.

Run by hand (not by pytest), best inside the bench venv so the compared clients are there:
    python tests/bench/run_all.py --only requests      (or: python tests/bench/bench_requests.py)

Every client talks to Orthanc through a loopback proxy that counts the requests, so the counts
do not depend on any client's own bookkeeping. Compared, on servers A and B (B is one of A's
DICOM modalities):
- the instances of a study of 4 series x 5 instances, by series: orthanc_fn's
  ``instances_set_from_study``; orthanc-api-client's ``InstancesSet.from_study``; with pyorthanc,
  ``Study(...).series`` then each series' ``instances``;
- daily counts of studies, and of instances, for 8 days (one study a day): ``get_daily_stats``;
  orthanc-api-client's ``studies.print_daily_stats`` / ``instances.print_daily_stats``; with
  pyorthanc, one ``find_studies`` / ``find_instances`` a day;
- a C-FIND of 10 studies on B: ``modality_query``; orthanc-api-client's
  ``modalities.query_studies``; pyorthanc's ``Modality(...).query``.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import io

import _common
import orthanc_fn as o
import orthanc_fn_helpers as h
import orthanc_rig
from counting_proxy import CountingProxy

REMOTE = {"PatientName": "REMOTE*"}  # the C-FIND query: B's 10 studies

def _fill(a, b, days):
    """A: one 4x5 study, one study a day for ``days`` days; B: 10 one-instance studies."""
    name = "BENCH^REQUESTS"
    for data in h.generate_test_study(4, 5, {"PatientName": name}):
        o.upload(a.conn, data)
    study_id = o.find(a.conn, o.STUDIES, {"PatientName": name}, expand=False)[0]
    today = datetime.date.today()
    first = today - datetime.timedelta(days=days - 1)
    for n in range(days):
        day = h.to_dicom_date(first + datetime.timedelta(days=n))
        for data in h.generate_test_study(1, 2, {"StudyDate": day, "PatientName": "BENCH^DAY"}):
            o.upload(a.conn, data)
    for n in range(10):
        o.upload(b.conn, h.generate_test_dicom_file(8, 8, {"PatientName": f"REMOTE^{n}"}))
    return study_id, first, today


def _quiet(action):
    def run():
        with contextlib.redirect_stdout(io.StringIO()):
            action()
    return run


def measure(a, b, proxy, days=8):
    """Return a list of Rows of request counts."""
    study_id, first, last = _fill(a, b, days)
    user, password = a.conn.auth
    conn = o.Connection(proxy.url, auth=(user, password))
    count = proxy.count
    fn = {
        "instances": lambda: o.instances_set_from_study(conn, study_id),
        "daily studies": lambda: o.get_daily_stats(conn, o.STUDIES, first, last),
        "daily instances": lambda: o.get_daily_stats(conn, o.INSTANCES, first, last),
        "query": lambda: o.modality_query(conn, b.name, o.STUDIES, REMOTE),
    }
    results = {task: {"orthanc_fn": count(action)} for task, action in fn.items()}
    for task in results:
        results[task].update({"orthanc-api-client": None, "pyorthanc": None})

    api_client = _common.optional_import("orthanc_api_client")
    if api_client is not None:
        from orthanc_api_client.instances_set import InstancesSet
        client = api_client.OrthancApiClient(proxy.url, user=user, pwd=password)
        theirs = {
            "instances": lambda: InstancesSet.from_study(client, study_id),
            "daily studies": _quiet(lambda: client.studies.print_daily_stats(first, last)),
            "daily instances": _quiet(lambda: client.instances.print_daily_stats(first, last)),
            "query": lambda: client.modalities.query_studies(b.name, REMOTE),
        }
        for task, action in theirs.items():
            results[task]["orthanc-api-client"] = count(action)

    pyorthanc = _common.optional_import("pyorthanc")
    if pyorthanc is not None:
        client = pyorthanc.Orthanc(proxy.url, username=user, password=password)
        each_day = [h.to_dicom_date(first + datetime.timedelta(days=n)) for n in range(days)]
        theirs = {
            "instances": lambda: {s.id_: [i.id_ for i in s.instances]
                                  for s in pyorthanc.Study(study_id, client).series},
            "daily studies": lambda: [len(pyorthanc.find_studies(client, {"StudyDate": d}))
                                      for d in each_day],
            "daily instances": lambda: [len(pyorthanc.find_instances(client, {"StudyDate": d}))
                                        for d in each_day],
            "query": lambda: pyorthanc.Modality(client, b.name).query(
                {"Level": "Study", "Query": REMOTE}),
        }
        for task, action in theirs.items():
            results[task]["pyorthanc"] = count(action)

    titles = {
        "instances": "instances of a study (4 series x 5)",
        "daily studies": f"daily stats, studies, {days} days",
        "daily instances": f"daily stats, instances, {days} days",
        "query": "C-FIND of 10 remote studies",
    }
    return [_common.Row(titles[task], "requests", values) for task, values in results.items()]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=8)
    args = parser.parse_args(argv)
    a = orthanc_rig.Server("bench-ra")
    b = orthanc_rig.Server("bench-rb")
    orthanc_rig.wire(a, b)
    try:
        a.start()
        b.start()
        with CountingProxy(a.http_port) as proxy:
            rows = measure(a, b, proxy, args.days)
    finally:
        a.remove()
        b.remove()
    _common.print_rows(rows, "Requests needed")
    return rows


if __name__ == "__main__":
    main()
