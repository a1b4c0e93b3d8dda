"""Daily statistics: what ``get_daily_stats`` sends, against the other ways to count a day.

Run by hand (not by pytest):  python tests/bench/bench_daily.py [--tier 1.13] [--studies 1500]

One Orthanc of ``--tier`` filled with ``--studies`` studies of ``--series`` one-instance series,
spread over ``--days`` days; then, for the studies and the instances of the whole range, the
best of ``--rounds`` of each way (one row each, time and bytes received):

- ``get_daily_stats``: one find of the studies asking only StudyDate and the computed count
  (``RequestedTags`` with ``ResponseContent``, Orthanc >= 1.12.5), and there a count of
  them (which tells a server's ``LimitFindResults``);
- ``expanded``: what it sent before, the expanded studies (and, for instances, the expanded
  series too);
- ``count per day``: one ``/tools/count-resources`` per day (D requests).
"""
from __future__ import annotations

import argparse
import datetime
import io
import time
import zipfile

import _common  # noqa: F401  (puts the repository and the rig on sys.path)
import orthanc_fn as o
import orthanc_fn_helpers as h
import orthanc_rig


def _fill(conn, studies, series, days):
    """``studies`` studies of ``series`` series each, StudyDate cycling over ``days`` days."""
    import pydicom
    from pydicom.uid import generate_uid
    dataset = pydicom.dcmread(io.BytesIO(h.generate_test_dicom_file(1, 1, {}, bits=8)))
    start = datetime.date(2026, 11, 1)
    for first in range(0, studies, 500):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
            for n in range(first, min(studies, first + 500)):
                dataset.StudyInstanceUID, dataset.PatientID = generate_uid(), f"D{n:08d}"
                dataset.StudyDate = f"{start + datetime.timedelta(days=n % days):%Y%m%d}"
                for s in range(series):
                    dataset.SeriesInstanceUID = generate_uid()
                    dataset.SOPInstanceUID = generate_uid()
                    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
                    out = io.BytesIO()
                    dataset.save_as(out)
                    archive.writestr(f"{n}-{s}.dcm", out.getvalue())
        o.upload(conn, buffer.getvalue(), timeout=600)
    return start, start + datetime.timedelta(days=days - 1)


def _ways(conn, level, first, last):
    """Each way to count ``level`` per day over [first, last]: name -> function."""
    query = {"StudyDate": f"{first:%Y%m%d}-{last:%Y%m%d}"}
    days = [first + datetime.timedelta(days=n) for n in range((last - first).days + 1)]
    orthanc_level = "Study" if level == o.STUDIES else "Instance"

    def expanded():
        answers = [o._post(conn, "/tools/find", {"Level": "Study", "Query": query,
                                                  "Expand": True}, raw=True)]
        if level == o.INSTANCES:
            answers.append(o._post(conn, "/tools/find", {"Level": "Series", "Query": query,
                                                          "Expand": True}, raw=True))
        return sum(map(len, answers))

    def per_day():
        return sum(len(o._post(conn, "/tools/count-resources", {
            "Level": orthanc_level, "Query": {"StudyDate": f"{day:%Y%m%d}"}}, raw=True))
            for day in days)

    def daily_stats():
        o.get_daily_stats(conn, level, first, last)
        return None

    return {"get_daily_stats": daily_stats, "expanded": expanded, "count per day": per_day}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tier", default="1.13")
    parser.add_argument("--studies", type=int, default=1500)
    parser.add_argument("--series", type=int, default=2)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    server = orthanc_rig.Server("daily", tier=args.tier).start()
    try:
        first, last = _fill(server.conn, args.studies, args.series, args.days)
        total = sum(c for _, c in o.get_daily_stats(server.conn, o.INSTANCES, first, last))
        assert total == args.studies * args.series, total
        print(f"Orthanc {o.get_system(server.conn)['Version']}: {args.studies} studies of "
              f"{args.series} series over {args.days} days")
        for level in (o.STUDIES, o.INSTANCES):
            for name, way in _ways(server.conn, level, first, last).items():
                best = None
                for _ in range(args.rounds):
                    start = time.perf_counter()
                    received = way()
                    elapsed = time.perf_counter() - start
                    best = elapsed if best is None else min(best, elapsed)
                size = f", {received / 1e3:,.1f} kB received" if received is not None else ""
                print(f"  {level:9s} {name:16s} {best * 1000:8.1f} ms{size}")
    finally:
        server.remove()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
