"""A throwaway PostgreSQL server on loopback, and Orthanc nodes sharing it (Debian's packages).

PostgreSQL refuses to run as root: as root, its commands run as the ``postgres`` user that
Debian's package creates. Nothing here installs anything.
"""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile

import orthanc_rig


def _bin(name):
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError("PostgreSQL is not installed: apt-get install postgresql "
                           "orthanc-postgresql (.ci/run does)")
    return found[-1]


def _as_postgres(command):
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--"] + command
    return subprocess.run(command, check=True, capture_output=True, text=True, timeout=120)


class Postgres:
    """One PostgreSQL cluster in a temporary folder, listening on 127.0.0.1 only."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="orthanc-pg-")
        self.port = orthanc_rig.free_port()
        self.data = os.path.join(self.dir, "data")
        self.password = "pg-" + os.urandom(6).hex()
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")

    def start(self):
        pwfile = os.path.join(self.dir, "pw")
        with open(pwfile, "w") as f:
            f.write(self.password)
        if os.geteuid() == 0:
            shutil.chown(pwfile, "postgres", "postgres")
        _as_postgres([_bin("initdb"), "-D", self.data, "-U", "postgres", "-A", "md5",
                      "--pwfile", pwfile, "-E", "UTF8"])
        _as_postgres([_bin("pg_ctl"), "-D", self.data, "-w", "-l",
                      os.path.join(self.dir, "pg.log"), "-o",
                      f"-p {self.port} -k {self.dir} -h 127.0.0.1 -c max_connections=200 "
                      "-c fsync=off -c synchronous_commit=off", "start"])
        env = dict(os.environ, PGPASSWORD=self.password)
        subprocess.run([_bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U",
                        "postgres", "orthanc"], check=True, env=env, timeout=60)
        return self

    def stop(self):
        if os.path.exists(os.path.join(self.data, "postmaster.pid")):
            _as_postgres([_bin("pg_ctl"), "-D", self.data, "-m", "immediate", "-w", "stop"])
        shutil.rmtree(self.dir, ignore_errors=True)

    def orthanc_config(self, serialization_retries=10):
        """The ``PostgreSQL`` section for an Orthanc node of a cluster on this database.

        ``serialization_retries``: how often the node itself retries a write that PostgreSQL
        could not serialize before answering 503 (the plugin's ``MaximumConnectionRetries``).
        """
        return {
            "EnableIndex": True, "EnableStorage": True, "Host": "127.0.0.1",
            "Port": self.port, "Database": "orthanc", "Username": "postgres",
            "Password": self.password, "Lock": False, "IndexConnectionsCount": 4,
            "MaximumConnectionRetries": serialization_retries, "ConnectionRetryInterval": 1,
        }


def cluster_node(name, postgres, serialization_retries=10, tier=None):
    """An Orthanc node (not started) that keeps its index and files in ``postgres``.

    ``tier`` ('1.10', '1.12', '1.13'; None: the host's) picks the Orthanc and its
    orthanc-postgresql plugin (4.0 on Debian 12, 5.0 on Debian 13 and sid); the PostgreSQL
    server is always the host's, reached over loopback from a chroot too.
    """
    return orthanc_rig.Server(name, tier=tier, config={
        "PostgreSQL": postgres.orthanc_config(serialization_retries)},
                              plugins=("libOrthancPostgreSQLIndex.so",
                                       "libOrthancPostgreSQLStorage.so"))
