"""The README's quick-start command (tests/quickstart.sh), run end to end."""
import json
import os
import re
import subprocess
import sys
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_quickstart_runs_the_main_job_and_leaves_no_server_running(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORTHANC_")}
    env.update(ORTHANC_FN_PYTHON=sys.executable, ORTHANC_FN_QUICKSTART_OUT=str(tmp_path),
               ORTHANC_FN_QUICKSTART_STUDIES="4")
    out = subprocess.run(["bash", os.path.join(ROOT, "tests", "quickstart.sh")], env=env,
                         capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "installing" not in out.stderr  # everything was there: nothing reinstalled
    assert re.search(r"upload \S+: 40/40 +100%", out.stderr)
    assert '"CountStudies": 4' in out.stdout  # stats
    assert len(re.findall(r"^\d{4}-\d\d-\d\d +\d+$", out.stdout, re.M)) == 8  # daily stats
    assert len(json.loads((tmp_path / "upload.json").read_text())["instances_ids"]) == 40
    with zipfile.ZipFile(tmp_path / "anonymized-study.zip") as archive:
        assert len([n for n in archive.namelist() if not n.endswith("/")]) == 10
    pid = int(re.search(r"Orthanc pid (\d+)", out.stderr).group(1))
    assert f"Orthanc (pid {pid}) stopped" in out.stderr
    assert not os.path.exists(f"/proc/{pid}")
