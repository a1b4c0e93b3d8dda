#!/usr/bin/env bash
# Quick start, as root on a fresh Debian 12 or 13 machine, from a checkout of orthanc_fn:
#
#     bash tests/quickstart.sh
#
# Installs only what is missing (Debian's orthanc, python3-venv, a .venv with orthanc_fn and its
# test-data helpers), starts a throwaway Orthanc on loopback (temporary storage, free port, its
# own random credentials), then runs the main job through the command line: generate a folder of
# test studies, upload it with progress, print stats and daily stats, find a study, anonymize it
# and download the anonymized study's archive. The server is stopped on exit, even on failure
# or Ctrl-C; the archive stays in the output folder printed at the end.
#
# Environment:
#   ORTHANC_FN_PYTHON              a python that already has orthanc_fn, pydicom and numpy
#                                  (skips the .venv)
#   ORTHANC_FN_QUICKSTART_OUT      folder for the results (default: a new /tmp/orthanc_fn-quickstart.*)
#   ORTHANC_FN_QUICKSTART_STUDIES  how many studies to generate (default 20, 10 instances each)
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

step() { printf '\n== %s\n' "$*" >&2; }

# ---- 1. What is missing: Debian packages, then a venv with the package --------------------
missing=()
[ -x /usr/sbin/Orthanc ] || missing+=(orthanc)
if [ -z "${ORTHANC_FN_PYTHON:-}" ]; then
  command -v python3 >/dev/null || missing+=(python3)
  python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
fi
if [ ${#missing[@]} -gt 0 ]; then
  step "installing ${missing[*]} (apt)"
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if [ -n "${ORTHANC_FN_PYTHON:-}" ]; then
  PY=$ORTHANC_FN_PYTHON
else
  PY=$PWD/.venv/bin/python
  if [ ! -x "$PY" ]; then
    step "creating .venv"
    python3 -m venv .venv
  fi
  if ! "$PY" -I -c 'import orthanc_fn, orthanc_fn_helpers, pydicom, numpy' 2>/dev/null; then
    step "installing orthanc_fn[helpers] into .venv (pip)"
    "$PY" -m pip install -q -e '.[helpers]'
  fi
fi
cli() { "$PY" -m orthanc_fn "$@"; }
json_field() { "$PY" -c 'import json, sys; print(json.loads(sys.stdin.readline())[sys.argv[1]])' "$1"; }

# ---- 2. A throwaway Orthanc on loopback, stopped on exit ----------------------------------
server=$(mktemp -d /tmp/orthanc_fn-quickstart-server.XXXXXX)
out=${ORTHANC_FN_QUICKSTART_OUT:-$(mktemp -d /tmp/orthanc_fn-quickstart.XXXXXX)}
mkdir -p "$out"
pid=""
stop_server() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    echo "quickstart: Orthanc (pid $pid) stopped" >&2
  fi
  rm -rf "$server"
}
trap stop_server EXIT
trap 'exit 130' INT TERM

"$PY" - "$server" <<'EOF'
import json, os, secrets, socket, sys
folder = sys.argv[1]
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
password = secrets.token_hex(12)
config = {
    "Name": "orthanc_fn quick start", "HttpPort": port, "RemoteAccessAllowed": False,
    "DicomServerEnabled": False, "AuthenticationEnabled": True,
    "RegisteredUsers": {"quickstart": password},
    "StorageDirectory": os.path.join(folder, "db"), "IndexDirectory": os.path.join(folder, "db"),
}
with open(os.path.join(folder, "config.json"), "w") as f:
    json.dump(config, f)
with open(os.path.join(folder, "env"), "w") as f:  # read by the shell below, never printed
    f.write(f"http://127.0.0.1:{port} {password}\n")
EOF
read -r url password < "$server/env"
export ORTHANC_URL=$url ORTHANC_USER=quickstart ORTHANC_PASSWORD=$password
unset ORTHANC_TOKEN

step "starting a throwaway Orthanc at $ORTHANC_URL"
/usr/sbin/Orthanc "$server/config.json" > "$server/orthanc.log" 2>&1 &
pid=$!
echo "quickstart: Orthanc pid $pid" >&2
for _ in $(seq 1 300); do
  cli -q alive > /dev/null && break
  kill -0 "$pid" 2>/dev/null || { tail -n 20 "$server/orthanc.log" >&2; exit 1; }
  sleep 0.2
done
cli system

# ---- 3. The main job, through the command line -------------------------------------------
studies=${ORTHANC_FN_QUICKSTART_STUDIES:-20}
step "generating $studies test studies (2 series x 5 instances) dated in the last 7 days"
"$PY" - "$server/dicom" "$studies" <<'EOF'
import datetime, os, sys
import orthanc_fn_helpers as h
folder, count = sys.argv[1], int(sys.argv[2])
today = datetime.date.today()
for number in range(count):
    tags = {"PatientName": f"QUICKSTART^{number:03d}", "StudyDescription": "quick start",
            "StudyDate": h.get_random_dicom_date(today - datetime.timedelta(days=7), today)}
    study = os.path.join(folder, f"study-{number:03d}")
    os.makedirs(study)
    for index, data in enumerate(h.generate_test_study(2, 5, tags)):
        with open(os.path.join(study, f"{index:03d}.dcm"), "wb") as f:
            f.write(data)
EOF

step "orthanc_fn upload -j 4 FOLDER   (instance ids in $out/upload.json)"
cli upload -j 4 "$server/dicom" > "$out/upload.json"

step "orthanc_fn stats"
cli stats

step "orthanc_fn daily-stats studies --table"
cli daily-stats studies --table

step "orthanc_fn find studies 'PatientName=QUICKSTART^000'"
cli find studies 'PatientName=QUICKSTART^000' | tee "$out/found.jsonl"
study=$(json_field ID < "$out/found.jsonl")

step "orthanc_fn anonymize studies $study --keep StudyDescription"
cli anonymize studies "$study" --keep StudyDescription | tee "$out/anonymized.json"
anonymized=$(tr -d '\n' < "$out/anonymized.json" | json_field ID)

step "orthanc_fn download studies $anonymized $out/anonymized-study.zip"
cli download studies "$anonymized" "$out/anonymized-study.zip"

step "done: results in $out"
