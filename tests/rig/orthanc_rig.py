"""Start and stop real Orthanc servers for the tests (Debian's packages, on loopback).

A ``Server`` runs ``/usr/sbin/Orthanc`` either from the host or, for the other Orthanc
generation, from a Debian root built by ``tests/rig/make_root.sh`` and entered with ``chroot``.
Each server has its own temporary storage, free loopback ports, basic auth, and is stopped by
pid. Nothing here installs anything.
"""
from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid

import orthanc_fn

PLUGINS = "/usr/share/orthanc/plugins"
ROOTS = os.environ.get("ORTHANC_FN_ROOTS", "/var/cache/orthanc_fn")
USER = "fn-test"
PASSWORD = "pw-" + uuid.uuid4().hex[:12]  # a secret the secrecy tests look for
_TIERS = {"1.10": "bookworm", "1.12": "trixie", "1.13": "sid"}  # tier -> Debian suite
_running = set()  # Popen of every Orthanc started here and not stopped yet
# GDCM decodes and transcodes only JPEG 2000, which DCMTK cannot; the rest stays with DCMTK.
# Debian's GDCM plugins (1.5, 1.8) have no such default, and their JPEG-LS encoder kills
# Orthanc 1.10 and 1.13 (checked). Transcoding to or from JPEG 2000 still kills Orthanc 1.12.7
# with trixie's GDCM 1.8 (and 1.10.1 with GDCM 1.5 now and then): see server_gdcm, conftest.py.
JPEG_2000 = ["1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.92",
             "1.2.840.10008.1.2.4.93"]


def _stop_all():
    """Kill every Orthanc still running: the safety net for an interrupted or careless run
    (their folders are temporary: a graceful stop, 3-4 s each, would save nothing)."""
    for process in [p for p in list(_running) if p.poll() is None]:
        process.kill()
        process.wait(10)
    _running.clear()


def _stop_all_and_die(signum, frame):
    _stop_all()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


# At exit (normal end, sys.exit, an uncaught exception, Ctrl-C through pytest) and on
# SIGTERM/SIGHUP (which would otherwise end Python without running atexit). A SIGKILL of the
# test process cannot be caught: Orthanc then outlives it.
atexit.register(_stop_all)
if threading.current_thread() is threading.main_thread():
    for _signum in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(_signum) is signal.SIG_DFL:
            signal.signal(_signum, _stop_all_and_die)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def host_version():
    """The major.minor of the host's Orthanc, e.g. '1.10', or None when it is not installed."""
    try:
        out = subprocess.run(["/usr/sbin/Orthanc", "--version"], capture_output=True, text=True,
                             timeout=30).stdout
    except OSError:
        return None
    version = out.split()[1] if len(out.split()) > 1 else ""
    return ".".join(version.split(".")[:2]) or None


def root_for(tier):
    """The filesystem root that runs Orthanc ``tier`` ('1.10', '1.12', '1.13'): None for the host.

    sid moves: the 1.13 tier is whatever Debian's development suite has (1.13.0 or newer).
    """
    if host_version() == tier:
        return None
    root = os.path.join(ROOTS, _TIERS[tier])
    if not os.path.exists(os.path.join(root, ".complete")):
        raise RuntimeError(
            f"Orthanc {tier} is not on the host and {root} is missing: run "
            f"`bash tests/rig/make_root.sh {_TIERS[tier]} {root}` (.ci/run does)")
    return root


class Server:
    """One Orthanc process with its config, storage and ports."""

    def __init__(self, name, tier=None, config=None, plugins=("libOrthancDicomWeb.so",),
                 files=None):
        self.name = name
        self.root = root_for(tier) if tier else None
        base = os.path.join(self.root, "srv") if self.root else None
        if base:
            os.makedirs(base, exist_ok=True)
        self.dir = tempfile.mkdtemp(prefix=f"orthanc-{name}-", dir=base)
        self.http_port = free_port()
        self.dicom_port = free_port()
        self.aet = name.upper()[:16]
        self.log_path = os.path.join(self.dir, "orthanc.log")
        self.process = None
        self.config = {
            "Name": name,
            "StorageDirectory": self.inside(os.path.join(self.dir, "storage")),
            "IndexDirectory": self.inside(os.path.join(self.dir, "storage")),
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": self.aet,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": True,
            "RegisteredUsers": {USER: PASSWORD},
            "DicomScuTimeout": 5,
            "HttpTimeout": 10,
            "StableAge": 1,
            "ConcurrentJobs": 4,
            "UserMetadata": {"Comment": 2000},
            "Plugins": [os.path.join(PLUGINS, p) for p in plugins],
            "DicomWeb": {"Enable": True},
            "Gdcm": {"RestrictTransferSyntaxes": JPEG_2000},
            "DicomModalities": {},
            "OrthancPeers": {},
        }
        self.config.update(config or {})
        for relative, content in (files or {}).items():
            with open(os.path.join(self.dir, relative), "w") as f:
                f.write(content)

    # paths seen from inside the server's root
    def inside(self, path):
        return path[len(self.root):] if self.root and path.startswith(self.root) else path

    @property
    def url(self):
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def conn(self):
        return orthanc_fn.Connection(self.url, auth=(USER, PASSWORD))

    def as_modality(self):
        return [self.aet, "127.0.0.1", self.dicom_port]

    def as_peer(self):
        return {"Url": self.url + "/", "Username": USER, "Password": PASSWORD}

    def start(self, timeout=60):
        path = os.path.join(self.dir, "config.json")
        with open(path, "w") as f:
            json.dump(self.config, f, indent=1)
        command = ["/usr/sbin/Orthanc", self.inside(path)]
        if self.root:
            command = ["chroot", self.root] + command
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL)
        _running.add(self.process)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Orthanc {self.name} exited at start:\n{self.log_tail()}")
            if orthanc_fn.is_alive(self.conn, timeout=1):
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"Orthanc {self.name} did not start in {timeout}s:\n{self.log_tail()}")

    def stop(self, sig=signal.SIGTERM):
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        _running.discard(self.process)
        self.process = None

    def kill(self):
        self.stop(signal.SIGKILL)

    def restart(self):
        self.stop()
        return self.start()

    def log_tail(self, lines=30):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def remove(self):
        """Kill the server and delete its folder. A graceful stop costs 3-4 s on every tier
        (the HTTP and DICOM servers wind down on timers), and nothing of a folder about to be
        deleted needs saving."""
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def wire(a, b):
    """Make ``a`` and ``b`` each other's DICOM modality and Orthanc peer (before start)."""
    for me, other, name in ((a, b, b.name), (b, a, a.name)):
        me.config["DicomModalities"][name] = other.as_modality()
        me.config["OrthancPeers"][name] = other.as_peer()
        me.config["DicomWeb"]["Servers"] = {
            name: [other.url + "/dicom-web/", USER, PASSWORD]}
