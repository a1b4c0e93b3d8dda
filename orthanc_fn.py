"""orthanc_fn: a small, fast, dependable client for the Orthanc DICOM server's REST API.

Plain functions over a ``Connection`` namedtuple; only the standard library and urllib3.
The file works alone: copy it next to a script or an Orthanc Python plugin.

Quick start::

    import orthanc_fn as o
    conn = o.Connection("http://localhost:8042", auth=("orthanc", "orthanc"))
    ids, errors = o.upload_folder(conn, "/data/dicom")
    studies = o.find(conn, o.STUDIES, {"PatientName": "DOE*"})
    o.download_archive(conn, o.STUDIES, studies[0]["ID"], "study.zip")

Sections, in dependency order (``grep '^# ====' orthanc_fn.py``): Constants, Errors,
Helpers used everywhere, Connection and transport, System, Jobs, Resources, Tags metadata
attachments labels, Upload, Download, Find and statistics, Modify and anonymize, Modalities
peers transfers, InstancesSet (pure), InstancesSet (server), Pipelines,
Command line.

Copyright (c) 2026 the orthanc_fn authors. MIT License: use, copy, modify and distribute
freely, keeping this notice; no warranty (the full text is in the project's LICENSE file).
"""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = [
    # Constants
    "PATIENTS", "STUDIES", "SERIES", "INSTANCES", "LEVELS", "FEATURES",
    # Errors
    "OrthancError", "OrthancValueError", "HttpError", "NotFound", "NotAuthorized", "Conflict",
    "BadFileFormat", "UnexpectedAnswer", "StowFailed", "OrthancConnectionError",
    "OrthancTimeout", "JobFailed", "TooManyResourcesFound", "AlreadyStored", "MissingInstances",
    "TransferOnPeer",
    "UnsupportedByServer",
    # Connection and transport, System
    "Connection", "rest_get", "rest_post", "rest_put", "rest_delete", "Changes", "is_alive",
    "wait_started", "get_system", "get_version", "get_statistics", "get_changes", "iter_changes", "delete_all_content",
    "get_capabilities", "is_version_at_least", "has_plugin", "get_metrics", "get_log_level",
    "set_log_level", "execute_lua_script",
    # Resources
    "get_all_ids", "get_info", "exists", "get_parent_id", "get_children_ids", "delete",
    "get_resource_statistics", "is_protected", "set_protected", "reconstruct",
    "get_first_instance_id", "get_modalities_of",
    "get_ordered_instances_ids", "get_preview", "create_dicom", "attach_pdf",
    "get_pdf_instances", "download_pdf", "merge_study", "split_study",
    # Tags, metadata, attachments, labels
    "Tags", "get_tags", "get_simplified_tags", "get_shared_tags", "get_all_metadata",
    "set_string_metadata", "get_string_metadata",
    "set_binary_metadata", "get_binary_metadata", "has_metadata", "delete_metadata",
    "get_string_metadata_with_revision", "get_binary_metadata_with_revision",
    "set_attachment", "get_attachment", "delete_attachment", "get_attachment_with_revision",
    "get_labels", "add_label", "delete_label", "get_all_labels",
    # Upload and download
    "UploadResult", "UploadDetails", "upload", "upload_file", "upload_folder",
    "upload_folder_details", "upload_files_dicom_web", "get_file", "download_file",
    "download_archive", "download_instances", "download_media",
    # Find and statistics
    "DailyCount", "lookup", "find", "iter_find", "count", "get_daily_stats", "print_daily_stats",
    # Modify and anonymize
    "anonymize", "anonymize_as_job", "modify", "modify_as_job", "BulkResult", "modify_bulk",
    "modify_bulk_as_job", "anonymize_bulk", "anonymize_bulk_as_job",
    # Jobs
    "get_job", "get_jobs", "wait_job", "cancel_job", "pause_job", "resume_job", "resubmit_job",
    "delete_job",
    # Modalities, peers, transfers
    "modality_echo", "modality_query", "modality_query_studies", "modality_retrieve",
    "modality_retrieve_study", "modality_retrieve_as_job", "modality_send",
    "modality_send_as_job", "get_modalities", "configure_modality", "delete_modality",
    "modality_find_worklist", "peer_send", "peer_send_as_job", "get_peers", "configure_peer",
    "delete_peer", "transfers_send", "transfers_send_as_job", "get_transfers_peers",
    "dicomweb_send", "dicomweb_send_as_job", "dicomweb_retrieve",
    # InstancesSet
    "InstancesSet", "instances_set_from_study", "instances_set_from_series",
    "instances_set_from_instances", "modify_instances_set", "delete_instances_set",
    "download_instances_set",
    # Pipelines
    "watch_changes", "SyncReport", "Comparison", "sync", "compare",
    # Command line
    "main",
]

import codecs
import datetime
import functools
import itertools
import json
import logging
import os
import re
import threading
import time
import types
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, Callable, Iterable, Iterator, NamedTuple, Optional, Sequence, Tuple
from urllib.parse import quote, unquote, urlencode, urlsplit, urlunsplit

try:
    import urllib3
except ImportError as exc:  # pragma: no cover - exercised by a test in a bare interpreter
    raise ImportError(
        "orthanc_fn needs urllib3: `pip install urllib3`, or inside an Orthanc Python plugin "
        "`apt-get install python3-urllib3`") from exc

_log = logging.getLogger(__name__)
_log.addHandler(logging.NullHandler())  # as urllib3: no "no handler" warning, no output


# ==== Constants ====

PATIENTS = "patients"
STUDIES = "studies"
SERIES = "series"
INSTANCES = "instances"
LEVELS = (PATIENTS, STUDIES, SERIES, INSTANCES)

_LEVEL_NAMES = {
    PATIENTS: PATIENTS, STUDIES: STUDIES, SERIES: SERIES, INSTANCES: INSTANCES,
    "Patient": PATIENTS, "Study": STUDIES, "Series": SERIES, "Instance": INSTANCES,
}
_ORTHANC_LEVEL = {PATIENTS: "Patient", STUDIES: "Study", SERIES: "Series", INSTANCES: "Instance"}
# The DICOM identifier of each level (one Orthanc patient per PatientID)
_LEVEL_UID = {PATIENTS: "PatientID", STUDIES: "StudyInstanceUID", SERIES: "SeriesInstanceUID",
              INSTANCES: "SOPInstanceUID"}

# The features newer than the supported floor (Orthanc 1.10) and the first version that has
# them, checked against Orthanc's NEWS; sorted by version, read-only. Drives
# UnsupportedByServer.
FEATURES = types.MappingProxyType({
    "requested_tags": (1, 11, 0),  # 1.11.0: "RequestedTags" in /tools/find
    "asynchronous_move": (1, 11, 1),  # 1.11.1: "Asynchronous" in /modalities/{id}/move
    "labels": (1, 12, 0),  # 1.12.0: /{level}/{id}/labels, "Labels" in /tools/find
    "delete_job": (1, 12, 2),  # 1.12.2: DELETE /jobs/{id}
    "transcode_file": (1, 12, 2),  # 1.12.2: /instances/{id}/file?transcode= (1.10 ignores it)
    "keep_labels": (1, 12, 3),  # 1.12.3: "KeepLabels" in modifications (older ones ignore it)
    # 1.12.5: /system "Capabilities" with the extended /tools/find (also needs a database
    # back-end that has it: the default SQLite one does, Debian's PostgreSQL plugin 5.0 not)
    "extended_find": (1, 12, 5),
    # 1.12.5: "type" and "to" in /changes (the same back-end condition: HasExtendedChanges)
    "extended_changes": (1, 12, 5),
    "c_get": (1, 12, 6),  # 1.12.6: /modalities/{id}/get (C-GET SCU)
    "job_user_data": (1, 12, 9),  # 1.12.9: a job's "UserData" (1.12.7 drops it silently)
    # 1.12.11: "Labels": [] with "LabelsConstraint": "None" finds the unlabelled resources
    "find_unlabelled": (1, 12, 11),
})

_READ_TIMEOUT = 60.0
_DEFAULT_TIMEOUT = urllib3.Timeout(connect=3.0, read=_READ_TIMEOUT)
_JSON = "application/json"
_JOB_TIMEOUT = 3600.0  # how long a job is waited for when no timeout is given
# Read timeouts (s) of the requests that take longer than _READ_TIMEOUT by nature:
_BULK_TIMEOUT = 600.0  # one request over many resources: bulk delete, reconstruct, a set's ZIP
_ARCHIVE_TIMEOUT = 300.0  # a ZIP download; one STOW-RS batch upload (up to _STOW_BATCH_BYTES)

# Every DICOM operation asks Orthanc for this network timeout (s) unless the call's own timeout
# is shorter. A remote that accepts the association and never answers is reported by Orthanc
# only after _DICOM_WAITS such timeouts (the DIMSE answer, then the release: checked on 1.10.1),
# so a synchronous HTTP call wrapping one reads for at least _DICOM_WAITS x its DICOM timeout
# + _DICOM_MARGIN s.
_DICOM_TIMEOUT = 10
_DICOM_WAITS = 2
_DICOM_MARGIN = 5
# What a DICOM call bounds itself to (s) when its timeout is None: a C-ECHO the DICOM waits
# plus the margin (25 s), a C-FIND 120 s, a synchronous C-MOVE/C-GET (older servers) 600 s.
_ECHO_TIMEOUT = _DICOM_WAITS * _DICOM_TIMEOUT + _DICOM_MARGIN
_QUERY_TIMEOUT = 120.0
_RETRIEVE_TIMEOUT = 600.0


# ==== Errors ====

class OrthancError(Exception):
    """Root of every error orthanc_fn raises; a subclass declares its fields as attributes.

    Each class takes the message, then its fields as keyword-only arguments. Errors pickle
    (workers send them across processes): the message travels in ``args``, the fields in the
    instance ``__dict__``, both restored without calling ``__init__``.
    """

    def __init__(self, message: str = "") -> None:
        super().__init__(message)

    def __reduce__(self):
        import copyreg
        return copyreg.__newobj__, (type(self), *self.args), {**vars(self), "args": self.args}


class OrthancValueError(OrthancError, ValueError):
    """An argument is wrong before anything is sent (URL without scheme, bad id, bad level)."""


class HttpError(OrthancError):
    """Orthanc answered with a non-2xx status.

    Fields: ``status``, ``method``, ``url`` (never with credentials), ``orthanc``, the JSON
    error body Orthanc sent (a dict with ``Message``, ``Details``, ``OrthancStatus``...) or None,
    and ``instances_ids`` (what ``upload_folder`` stored before it, when it raised).
    """
    status: int
    method: str
    url: str
    orthanc: Optional[dict]
    instances_ids: Optional[list]

    def __init__(self, message: str, *, status: int, method: str, url: str,
                 orthanc: dict[str, Any] | None = None,
                 instances_ids: list[str] | None = None) -> None:
        super().__init__(message)
        self.status, self.method, self.url, self.orthanc = status, method, url, orthanc
        self.instances_ids = instances_ids


class NotFound(HttpError):
    """404: the resource, route, modality or metadata is unknown."""


class NotAuthorized(HttpError):
    """401 or 403: wrong credentials, or a token the server refuses."""


class Conflict(HttpError):
    """409: for example a stale revision."""


class BadFileFormat(HttpError):
    """Orthanc refused a file sent for storing.

    Raised by the upload functions only, when Orthanc's JSON error says the file is the
    problem (its ``OrthancStatus``: bad file format, inexistent tag...), whatever the HTTP
    status: a DICOMDIR or a palette file is refused with 404 and "Inexistent tag".
    Fields: those of ``HttpError`` and ``path`` (the file, when there was one).
    """
    path: Optional[str]

    def __init__(self, message: str, *, status: int, method: str, url: str,
                 orthanc: dict[str, Any] | None = None, path: str | None = None,
                 instances_ids: list[str] | None = None) -> None:
        super().__init__(message, status=status, method=method, url=url, orthanc=orthanc,
                         instances_ids=instances_ids)
        self.path = path


class UnexpectedAnswer(OrthancError):
    """The server answered 2xx, but not as Orthanc does (e.g. the HTML login page of a proxy).

    Fields: ``status``, ``method``, ``url`` (never with credentials), ``content_type``,
    ``data``, the first bytes of the answer, and ``instances_ids`` (as ``HttpError``'s).
    """
    status: int
    method: str
    url: str
    content_type: str
    data: bytes
    instances_ids: Optional[list]

    def __init__(self, message: str, *, status: int, method: str, url: str, content_type: str,
                 data: bytes, instances_ids: list[str] | None = None) -> None:
        super().__init__(message)
        self.status, self.method, self.url = status, method, url
        self.content_type, self.data, self.instances_ids = content_type, data, instances_ids


class StowFailed(OrthancError):
    """The DICOMweb plugin did not store some files of a STOW-RS upload.

    Fields: ``answer``, the merged STOW-RS answer of every batch (what was stored and what
    failed), and ``paths``, the files that were not stored.
    """
    answer: dict
    paths: list

    def __init__(self, message: str, *, answer: dict[str, Any], paths: list[str]) -> None:
        super().__init__(message)
        self.answer, self.paths = answer, paths


class OrthancConnectionError(OrthancError, ConnectionError):
    """The server could not be reached (refused, unknown host, TLS failure, reset).

    Fields: ``method`` and ``url`` (never with credentials) of the request, and
    ``instances_ids`` (as ``HttpError``'s).
    """
    method: str
    url: str
    instances_ids: Optional[list]

    def __init__(self, message: str, *, method: str, url: str,
                 instances_ids: list[str] | None = None) -> None:
        super().__init__(message)
        self.method, self.url, self.instances_ids = method, url, instances_ids


class OrthancTimeout(OrthancError, TimeoutError):
    """The server or a job did not answer in time.

    Fields: ``method`` and ``url`` of a request that timed out, or ``job``, Orthanc's dict of
    a job still running (the others are None); ``instances_ids`` as ``HttpError``'s.
    """
    method: Optional[str]
    url: Optional[str]
    job: Optional[dict]
    instances_ids: Optional[list]

    def __init__(self, message: str, *, method: str | None = None, url: str | None = None,
                 job: dict[str, Any] | None = None,
                 instances_ids: list[str] | None = None) -> None:
        super().__init__(message)
        self.method, self.url, self.job, self.instances_ids = method, url, job, instances_ids


class JobFailed(OrthancError):
    """An Orthanc job ended in ``Failure``; the field ``job`` is Orthanc's job dict."""
    job: dict

    def __init__(self, message: str, *, job: dict[str, Any]) -> None:
        super().__init__(message)
        self.job = job


class TooManyResourcesFound(OrthancError):
    """A lookup that expects one resource found several; the field ``ids`` lists them."""
    ids: list

    def __init__(self, message: str, *, ids: list[str]) -> None:
        super().__init__(message)
        self.ids = ids


class AlreadyStored(OrthancError):
    """Orthanc kept the instance it already had (its 2xx answer ``AlreadyStored``) where the
    call needed the one it sent stored (``OverwriteInstances`` false); the field
    ``instance_id`` is the instance kept."""
    instance_id: str

    def __init__(self, message: str, *, instance_id: str) -> None:
        super().__init__(message)
        self.instance_id = instance_id


class MissingInstances(OrthancError):
    """Some asked instances are not on the server (a 2xx answer that lacks them); the field
    ``ids`` lists them."""
    ids: list

    def __init__(self, message: str, *, ids: list[str]) -> None:
        super().__init__(message)
        self.ids = ids


class TransferOnPeer(OrthancError):
    """A transfer started as a job on the peer (which pulls) and there is no connection to it.

    Fields: ``remote_job`` (the job id on the peer), ``job_url`` (its URL there) and ``peer``.
    """
    remote_job: str
    job_url: str
    peer: str

    def __init__(self, message: str, *, remote_job: str, job_url: str, peer: str) -> None:
        super().__init__(message)
        self.remote_job, self.job_url, self.peer = remote_job, job_url, peer


class UnsupportedByServer(OrthancError):
    """The server is too old for the asked feature; fields ``needed`` and ``actual`` are
    ``(major, minor, patch)`` versions."""
    needed: tuple
    actual: tuple

    def __init__(self, message: str, *, needed: tuple[int, ...], actual: tuple[int, ...]) -> None:
        super().__init__(message)
        self.needed, self.actual = needed, actual


def _restated(error, message, **fields):
    """The same error (class and fields) with another message, e.g. with a hint or a path.

    >>> e = _restated(NotFound("GET /x -> HTTP 404", status=404, method="GET", url="/x"),
    ...               "GET /x -> HTTP 404 (is x declared?)")
    >>> type(e).__name__, str(e), e.status
    ('NotFound', 'GET /x -> HTTP 404 (is x declared?)', 404)
    >>> _restated(BadFileFormat("refused", status=400, method="POST", url="/i"), "a.dcm: refused",
    ...           path="a.dcm").path
    'a.dcm'
    """
    declared = _fields(error)
    return type(error)(message, **{**{name: getattr(error, name) for name in declared}, **fields})


def _fields(error):
    """The names of the fields an ``OrthancError`` class declares (its annotations)."""
    return {name for cls in type(error).__mro__ for name in vars(cls).get("__annotations__", ())}


# ==== Helpers used everywhere ====

def _segment(value, what="id"):
    """Quote one path segment; refuse anything that could reach another endpoint.

    >>> _segment("1.2.840 x"), _segment(42)
    ('1.2.840%20x', '42')
    >>> _segment("../system")
    Traceback (most recent call last):
    ...
    orthanc_fn.OrthancValueError: invalid id '../system': not a single URL path segment
    """
    text = str(value)
    if not text or text in (".", "..") or any(c in text for c in "/\\?#%") \
            or any(ord(c) < 32 for c in text):
        raise OrthancValueError(f"invalid {what} {text!r}: not a single URL path segment")
    return quote(text, safe="")


def _as_list(value):
    """One id or name (a ``str``), or several: always a new list.

    >>> _as_list("a"), _as_list(("a", "b"))
    (['a'], ['a', 'b'])
    """
    return [value] if isinstance(value, str) else list(value)


def _level(level):
    """Orthanc's URL name of a level, given as ``STUDIES`` or as Orthanc's singular ``Study``.

    >>> _level("Study"), _level(SERIES)
    ('studies', 'series')
    """
    try:
        return _LEVEL_NAMES[level]
    except (KeyError, TypeError):
        raise OrthancValueError(
            f"invalid level {level!r}: use one of {', '.join(LEVELS)} "
            "(or Patient, Study, Series, Instance)") from None


def _parse_version(text):
    """``/system``'s ``Version`` as a tuple of three ints; ``mainline`` is newer than any.

    >>> _parse_version("1.12.7"), _parse_version("1.10"), _parse_version("mainline")
    ((1, 12, 7), (1, 10, 0), (999, 999, 999))
    >>> _parse_version("1.9.10") > _parse_version("1.9.4")
    True
    """
    if text == "mainline":
        return (999, 999, 999)
    numbers = [int(n) for n in re.findall(r"\d+", str(text))[:3]]
    return tuple(numbers + [0] * (3 - len(numbers)))


# ==== Connection and transport ====

class _ConnectionFields(NamedTuple):
    url: str
    auth: Optional[Tuple[str, str]] = None
    token: Optional[str] = None


class Connection(_ConnectionFields):
    """Where an Orthanc server is and how to authenticate: ``(url, auth, token)``.

    ``url`` must start with ``http://`` or ``https://``; a trailing slash is dropped, a path
    prefix is kept, and ``user:password@`` in the URL moves to ``auth``. ``token`` is an
    ``Authorization`` header value; a bare token gets ``Bearer`` prepended. ``repr`` and ``str``
    hide the password and token.

    >>> Connection("http://alice:secret@localhost:8042/orthanc/")
    Connection(url='http://localhost:8042/orthanc', auth=('alice', '***'), token=None)
    >>> Connection("localhost:8042")
    Traceback (most recent call last):
    ...
    orthanc_fn.OrthancValueError: Connection URL must start with http:// or https://, got 'localhost:8042'
    """
    __slots__ = ()

    def __new__(cls, url: str, auth: tuple[str, str] | None = None,
                token: str | None = None) -> Connection:
        url, auth = _normalize_url(url, auth)
        if auth is not None:
            if len(auth) != 2:
                raise OrthancValueError("Connection auth must be a (user, password) pair")
            auth = (str(auth[0]), str(auth[1]))
        if token is not None:
            token = str(token).strip()
            if " " not in token:
                token = "Bearer " + token
        return super().__new__(cls, url, auth, token)

    @classmethod
    def _make(cls, iterable):
        return cls(*iterable)

    def __repr__(self) -> str:
        auth = None if self.auth is None else (self.auth[0], "***")
        token = None if self.token is None else "***"
        return f"Connection(url={self.url!r}, auth={auth!r}, token={token!r})"

    __str__ = __repr__

    def __getnewargs__(self) -> tuple[Any, ...]:
        return tuple(self)


def _normalize_url(url, auth):
    text = str(url).strip()
    shown = _redact_userinfo(text)
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
        malformed = "@" in parts.path + parts.query + parts.fragment
    except ValueError:  # e.g. a password with an unencoded '/' read as the port
        parts, malformed = urlsplit(text.partition("[")[0]), True
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OrthancValueError(
            f"Connection URL must start with http:// or https://, got {shown!r}")
    if malformed:
        raise OrthancValueError(
            f"Connection URL {shown!r} is malformed: percent-encode '/', '?', '#' and '@' in "
            "the user and password, or pass auth=(user, password)")
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, netloc = netloc.rsplit("@", 1)
        if auth is None:
            user, _, password = userinfo.partition(":")
            auth = (unquote(user), unquote(password))
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", "")), auth


def _redact_url(text):
    return re.sub(r"//[^/@]*@", "//***@", text)


def _redact_userinfo(url):
    """Hide whatever precedes the last '@' of a URL a user gave (scheme kept), however broken.

    >>> _redact_userinfo("alice:s/cret@host:8042")
    '***@host:8042'
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    return scheme + sep + "***@" + rest.rsplit("@", 1)[1] if "@" in rest else url


def _new_pool():
    # ca_certs=None: certificates are checked against OpenSSL's default store, which honours
    # SSL_CERT_FILE / SSL_CERT_DIR. Debian's urllib3 1.26 would otherwise pin its own bundle
    # and ignore them, leaving no way to trust a private CA (checked on python3-urllib3).
    return urllib3.PoolManager(num_pools=32, maxsize=32, block=True, retries=False,
                               timeout=_DEFAULT_TIMEOUT, ca_certs=None)


_POOL = _new_pool()

# Connection failures before sending, and 502/503, are retried for every method (a 503 from
# Orthanc means nothing was done, e.g. a cluster's database could not serialize a write). A
# read timeout or a reset after sending is retried only for idempotent methods: never a POST
# twice. Back-off 0.1 s doubling: the 8 status retries wait up to about 13 s in all.
_RETRY_IDEMPOTENT = urllib3.Retry(
    total=10, connect=3, read=2, status=8, other=0, backoff_factor=0.1,
    status_forcelist=(502, 503), allowed_methods=("GET", "PUT", "DELETE", "HEAD"),
    raise_on_status=False, respect_retry_after_header=True)
_RETRY_POST = _RETRY_IDEMPOTENT.new(read=0, allowed_methods=("POST",))
# Waiting for a job re-reads until a deadline: a read timeout would restart the wait.
_RETRY_WITHIN_DEADLINE = _RETRY_IDEMPOTENT.new(read=0)


def _reset_pool_after_fork():  # a child process must not share the parent's sockets
    global _POOL
    _POOL = _new_pool()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_pool_after_fork)


def _headers(conn, extra=None):
    headers = {}
    if conn.token is not None:
        headers["Authorization"] = conn.token
    elif conn.auth is not None:
        headers.update(urllib3.make_headers(basic_auth=f"{conn.auth[0]}:{conn.auth[1]}"))
    if extra:
        headers.update(extra)
    return headers


def _timeout(timeout):
    if timeout is None:
        return _DEFAULT_TIMEOUT
    if isinstance(timeout, urllib3.Timeout):
        return timeout
    return urllib3.Timeout(connect=min(float(timeout), _DEFAULT_TIMEOUT.connect_timeout),
                           read=float(timeout))


def _request(conn, method, path, *, query=None, body=None, json_body=None, headers=None,
             timeout=None, stream=False, raw=False, retries=None):
    """Send one request and return its decoded answer; the only place that talks HTTP.

    Returns the parsed JSON (or ``bytes`` with ``raw=True``, or the open urllib3 response with
    ``stream=True``, which the caller must release and read through ``_body_chunks``). Every
    urllib3 exception is translated by ``_translate``, every non-2xx answer by ``_http_error``.
    A 2xx answer that is not JSON is returned as ``str`` when it is ``text/plain`` (Orthanc's
    own text answers) and raises ``UnexpectedAnswer`` otherwise (a proxy's HTML login page).
    """
    if not isinstance(conn, Connection):
        raise OrthancValueError(f"expected a Connection, got {type(conn).__name__}")
    url = conn.url + path
    if query:
        url += "?" + urlencode(query)
    extra = dict(headers or {})
    if json_body is not None:
        body = json.dumps(json_body).encode()
        extra.setdefault("Content-Type", _JSON)
    if retries is None:
        retries = _RETRY_POST if method == "POST" else _RETRY_IDEMPOTENT
    _log.debug("%s %s", method, url)
    try:
        response = _POOL.request(method, url, body=body, headers=_headers(conn, extra),
                                 timeout=_timeout(timeout), retries=retries,
                                 preload_content=not stream, redirect=False)
    except urllib3.exceptions.HTTPError as exc:
        raise _translate(exc, method, url) from exc
    if response.status >= 300:
        try:
            data = _read_all(response, method, url) if stream else response.data
        finally:
            response.release_conn()
        raise _http_error(response.status, data, method, url)
    if stream:
        return response
    if raw:
        return response.data
    if not response.data:
        return None
    try:
        return json.loads(response.data)
    except ValueError:
        if response.headers.get("Content-Type", "").startswith("text/plain"):
            return response.data.decode("utf-8", "replace")  # /tools/now, generate-uid...
        raise _unexpected(response, method, url) from None


def _body_chunks(response, method, url, size=1 << 20):
    """Yield a streamed answer's body; transport errors are translated as in ``_request``."""
    try:
        yield from response.stream(size)
    except urllib3.exceptions.HTTPError as exc:
        raise _translate(exc, method, url) from exc


def _read_all(response, method, url):
    """Read the rest of a streamed answer's body, translating transport errors."""
    return b"".join(_body_chunks(response, method, url))


def _json_items(response, method, url, size=1 << 20):
    """Yield the items of the JSON list a streamed answer holds, each once it has come whole:
    never more of the text at once than one chunk of ``size`` bytes and one item (Orthanc's
    100,000 studies with one requested tag: 21 MB of JSON). The caller releases ``response``;
    an answer that is not such a list raises ``UnexpectedAnswer``."""
    decode = json.JSONDecoder().raw_decode
    utf8 = codecs.getincrementaldecoder("utf-8")()
    gap = re.compile(r"[\s,]*")  # what comes before an item (separators are not checked)
    ended = re.compile(r"\s*[,\]]")  # what shows an item has ended
    text, at, opened = "", 0, False
    for chunk in itertools.chain(_body_chunks(response, method, url, size), [None]):
        text = text[at:] + utf8.decode(chunk or b"", final=chunk is None)
        at = gap.match(text).end()
        if not opened and at < len(text):
            if text[at] != "[":
                break
            opened, at = True, at + 1
        while opened:
            start = gap.match(text, at).end()
            if text.startswith("]", start):
                return
            try:
                item, end = decode(text, start)
            except ValueError:
                break  # the chunk's end cut it (at the very end: the list is cut)
            if chunk is not None and not ended.match(text, end):
                break  # a number may go on in the next chunk ("45" of "4500.0")
            at = end
            yield item
    raise UnexpectedAnswer(f"{method} {url} -> HTTP {response.status}: the answer is not a "
                           "whole JSON list", status=response.status, method=method, url=url,
                           content_type=response.headers.get("Content-Type", ""),
                           data=text[:200].encode())


def _unexpected(response, method, url):
    """The error for a 2xx answer that is not the JSON Orthanc sends."""
    content_type = response.headers.get("Content-Type", "")
    data = response.data[:200]
    shown = re.sub(r"\s+", " ", data.decode("utf-8", "replace")).strip()[:120]
    return UnexpectedAnswer(
        f"{method} {url} -> HTTP {response.status}: the server did not answer like Orthanc "
        f"(neither JSON nor text, Content-Type {content_type or 'none'!r}): {shown!r}; is "
        "the URL that of Orthanc, not of a proxy's login page?", status=response.status,
        method=method, url=url, content_type=content_type, data=data)


def _translate(exc, method, url):
    """Map a urllib3 exception to the orthanc_fn error it means (the one translation point)."""
    E = urllib3.exceptions
    where = f"{method} {url}"
    reason = exc.reason if isinstance(exc, E.MaxRetryError) and exc.reason is not None else exc
    if isinstance(reason, E.NewConnectionError):  # refused, unknown host (a ConnectTimeoutError)
        return OrthancConnectionError(f"{where}: cannot connect ({_one_line(reason)})",
                                      method=method, url=url)
    if isinstance(reason, (E.ReadTimeoutError, E.ConnectTimeoutError, TimeoutError)):
        kind = "connect" if isinstance(reason, E.ConnectTimeoutError) else "read"
        return OrthancTimeout(f"{where}: no answer ({kind} timeout)", method=method, url=url)
    if isinstance(reason, E.SSLError):
        return OrthancConnectionError(
            f"{where}: TLS failed ({_one_line(reason)}); to trust a private CA set "
            "SSL_CERT_FILE to its certificate", method=method, url=url)
    if isinstance(reason, E.ResponseError):  # too many 502/503 answers
        return OrthancConnectionError(f"{where}: server unavailable ({_one_line(reason)})",
                                      method=method, url=url)
    return OrthancConnectionError(f"{where}: cannot reach the server ({_one_line(reason)})",
                                  method=method, url=url)


def _one_line(exc):
    text = re.sub(r"<urllib3[^>]*>: ", "", str(exc))
    text = re.sub(r"\s+", " ", text).strip()
    return _redact_url(text)


def _http_error(status, data, method, url):
    orthanc = None
    try:
        orthanc = json.loads(data) if data else None
    except ValueError:
        pass
    said = ""
    if isinstance(orthanc, dict):
        said = ": " + "; ".join(str(orthanc[k]) for k in ("Message", "Details")
                                if orthanc.get(k))
    elif data:
        said = ": " + data[:200].decode("utf-8", "replace").strip()
    else:
        orthanc = None
    cls = HttpError
    if status == 404:
        cls = NotFound
    elif status in (401, 403):
        cls = NotAuthorized
        said += " (check the user, password or token)"
    elif status == 409:
        cls = Conflict
    try:
        phrase = " " + HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    message = f"{method} {url} -> HTTP {status}{phrase}{said}"
    return cls(message, status=status, method=method, url=url, orthanc=orthanc)


def _get(conn, path, query=None, **options):
    return _request(conn, "GET", path, query=query, **options)


def _post(conn, path, json_body=None, **options):
    return _request(conn, "POST", path, json_body=json_body, **options)


def _put(conn, path, json_body=None, **options):
    return _request(conn, "PUT", path, json_body=json_body, **options)


def _delete(conn, path, **options):
    return _request(conn, "DELETE", path, **options)


def _route(path):
    """Check a path given to a ``rest_*`` function: relative to ``conn.url``, one line.

    >>> _route("/plugins/dicom-web")
    '/plugins/dicom-web'
    >>> _route("http://elsewhere/system")
    Traceback (most recent call last):
    ...
    orthanc_fn.OrthancValueError: a REST path starts with '/' and is relative to conn.url, got 'http://elsewhere/system'
    """
    text = path if isinstance(path, str) else ""
    if not text.startswith("/") or text.startswith("//") \
            or any(ord(c) < 33 or ord(c) == 127 for c in text):
        raise OrthancValueError(
            f"a REST path starts with '/' and is relative to conn.url, got {path!r}")
    return text


def rest_get(conn: Connection, path: str, *, query: Mapping[str, Any] | None = None,
             timeout: float | None = None, raw: bool = False) -> Any:
    """GET any route of the server (a plugin's, or one orthanc_fn does not wrap).

    ``path`` starts with ``/`` and is relative to ``conn.url``; an absolute URL is refused
    before any request, so credentials never go to another host. ``query`` is a dict of URL
    arguments (or put them in ``path``, not both). Returns the decoded JSON (a str for a
    text answer, None for an empty one), or ``bytes`` with ``raw=True``. The same pool,
    timeouts (default 60 s), retries, typed errors and redaction as every other call.

    >>> rest_get(Connection("http://127.0.0.1:9"), "https://example.org/")
    Traceback (most recent call last):
    ...
    orthanc_fn.OrthancValueError: a REST path starts with '/' and is relative to conn.url, got 'https://example.org/'
    """
    path = _route(path)
    if query and "?" in path:
        raise OrthancValueError(f"put the URL arguments in path or in query=, not both: {path!r}")
    return _get(conn, path, query, timeout=timeout, raw=raw)


def rest_post(conn: Connection, path: str, json_body: Any | None = None, *,
              body: bytes | None = None, headers: Mapping[str, str] | None = None,
              timeout: float | None = None, raw: bool = False) -> Any:
    """POST to any route: ``json_body`` (sent as JSON) or ``body`` (bytes, with ``headers``).

    As ``rest_get``; a POST is never sent twice once it may have reached the server.
    """
    return _post(conn, _route(path), json_body, body=body, headers=headers, timeout=timeout,
                 raw=raw)


def rest_put(conn: Connection, path: str, json_body: Any | None = None, *,
             body: bytes | None = None, headers: Mapping[str, str] | None = None,
             timeout: float | None = None, raw: bool = False) -> Any:
    """PUT to any route; see ``rest_post``."""
    return _put(conn, _route(path), json_body, body=body, headers=headers, timeout=timeout,
                raw=raw)


def rest_delete(conn: Connection, path: str, *, timeout: float | None = None) -> Any:
    """DELETE any route and return the decoded answer (usually None); see ``rest_get``."""
    return _delete(conn, _route(path), timeout=timeout)


# ==== System ====

class Changes(NamedTuple):
    """A page of Orthanc's change log: ``changes`` (list of dicts), ``last`` (Seq), ``done``."""
    changes: list
    last: int
    done: bool


def is_alive(conn: Connection, timeout: float = 2.0) -> bool:
    """Tell whether Orthanc answers ``GET /system`` with these credentials; never raises.

    Only Orthanc's own answer counts (a JSON object with ``Version`` and ``DicomAet``): a
    proxy's login page or another server's JSON gives False.

    >>> is_alive(Connection("http://127.0.0.1:9"), timeout=0.5)
    False
    """
    try:
        system = _get(conn, "/system", timeout=timeout, retries=False)
    except OrthancError:
        return False
    return isinstance(system, dict) and "Version" in system and "DicomAet" in system


def wait_started(conn: Connection, timeout: float = 60.0) -> bool:
    """Wait until the server answers ``GET /system``; True if it did within ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        if is_alive(conn, timeout=min(2.0, max(0.1, deadline - time.monotonic()))):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def get_system(conn: Connection) -> dict[str, Any]:
    """Return Orthanc's ``/system`` dict (``Version``, ``ApiVersion``, ``DicomAet``...)."""
    return _get(conn, "/system")


def get_version(conn: Connection) -> tuple[int, ...]:
    """Return the server's version as a tuple of ints; ``mainline`` compares as newest.

    Orthanc: GET /system.
    """
    return _parse_version(get_system(conn)["Version"])


def get_statistics(conn: Connection) -> dict[str, Any]:
    """Return ``/statistics`` (``CountStudies``, ``TotalDiskSizeMB``...)."""
    return _get(conn, "/statistics")


def get_changes(conn: Connection, since: int = 0, limit: int = 100, *, to: int | None = None,
                change_types: str | Iterable[str] | None = None) -> Changes:
    """Return one page of the change log after ``since`` as ``Changes(changes, last, done)``.

    ``change_types`` (one type such as ``"StableStudy"``, or several) and ``to`` (the last
    ``Seq`` wanted) filter on the server; they need Orthanc >= 1.12.5 reporting
    ``HasExtendedChanges`` in its Capabilities, and an older server raises
    ``UnsupportedByServer`` before anything is sent (it would ignore them). The page holds the
    first ``limit`` changes of (since, to] whatever ``since`` is (Orthanc itself answers the
    ``limit`` changes *ending* at ``to`` when ``since`` is 0: that case is asked without ``to``
    and cut here). On a page the filter left empty, ``last`` is the log's last ``Seq``.
    Orthanc: GET /changes (``type=A;B`` with a literal ``;``).
    """
    if to is not None or change_types is not None:
        _require(conn, "extended_changes")
    return _changes_page(conn, since, limit, to, change_types)


def _changes_page(conn, since, limit, to, change_types):
    """``get_changes`` without the version check (for callers that made it once)."""
    since, limit = int(since), int(limit)
    params = {"since": since, "limit": limit}
    if to is not None and since > 0:
        params["to"] = int(to)
    path = "/changes?" + urlencode(params)
    if change_types is not None:
        path += "&type=" + ";".join(_segment(kind, "change type")
                                    for kind in _as_list(change_types))
    answer = _get(conn, path)
    changes, last, done = answer["Changes"], answer["Last"], answer["Done"]
    if to is not None and since == 0:
        kept = [change for change in changes if change["Seq"] <= int(to)]
        if len(kept) < len(changes):
            changes, last, done = kept, int(to), True
    return Changes(changes, last, done)


def iter_changes(conn: Connection, since: int = 0, page_size: int = 1000, *, to: int | None = None,
                 change_types: str | Iterable[str] | None = None) -> Iterator[dict[str, Any]]:
    """Yield every change after ``since`` (Orthanc's dicts), paging until ``Done``.

    ``to`` and ``change_types`` filter on the server, as in ``get_changes`` (the server's
    version is checked once, before the first page).
    """
    if to is not None or change_types is not None:
        _require(conn, "extended_changes")
    while True:
        page = _changes_page(conn, since, page_size, to, change_types)
        yield from page.changes
        if page.done or not page.changes:
            return
        since = page.last


def delete_all_content(conn: Connection) -> None:
    """Delete every patient of the server (and so every study, series and instance)."""
    ids = _get(conn, "/patients")
    if ids:
        _post(conn, "/tools/bulk-delete", {"Resources": ids}, timeout=_BULK_TIMEOUT)


def get_capabilities(conn: Connection) -> dict[str, Any]:
    """Return what the server can do, as booleans, plus its plugins and their versions.

    Keys: ``has_labels``, ``has_extended_find``, ``has_extended_changes``,
    ``has_key_value_stores``, ``has_queues`` (from Orthanc's own ``Capabilities`` where it
    reports them, 1.12.5+ and 1.12.8+, as they depend on the database backend),
    ``has_revisions`` (``CheckRevisions`` is on: writes need ``revision=``), and ``plugins``,
    a dict plugin id -> version string. Orthanc: GET /system, GET /plugins, /plugins/{id}.
    """
    system = get_system(conn)
    reported = system.get("Capabilities", {})
    version = _parse_version(system["Version"])
    return {
        "has_labels": bool(system.get("HasLabels", version >= FEATURES["labels"])),
        "has_extended_find": bool(reported.get("HasExtendedFind", False)),
        "has_extended_changes": bool(reported.get("HasExtendedChanges", False)),
        "has_key_value_stores": bool(reported.get("HasKeyValueStores", False)),
        "has_queues": bool(reported.get("HasQueues", False)),
        "has_revisions": bool(system.get("CheckRevisions", False)),
        "plugins": {name: _get(conn, f"/plugins/{_segment(name, 'plugin')}").get("Version")
                    for name in _get(conn, "/plugins") if name != "explorer.js"},
    }


def is_version_at_least(conn: Connection, major: int, minor: int, patch: int = 0) -> bool:
    """Tell whether the server runs Orthanc ``major.minor.patch`` or newer.

    Versions compare as whole tuples (2.0 is newer than 1.5); ``mainline`` is newest.
    Orthanc: GET /system.
    """
    return get_version(conn) >= (int(major), int(minor), int(patch))


def has_plugin(conn: Connection, name: str) -> bool:
    """Tell whether a plugin with this id (``dicom-web``, ``python``...) is loaded.

    Orthanc: GET /plugins.
    """
    return name in _get(conn, "/plugins")


def get_metrics(conn: Connection) -> dict[str, float]:
    """Return the server's Prometheus metrics as a dict metric -> float.

    Orthanc: GET /tools/metrics-prometheus (needs ``MetricsEnabled``, on by default).
    See ``_parse_prometheus`` for the keys.
    """
    return _parse_prometheus(_get(conn, "/tools/metrics-prometheus", raw=True).decode())


def _parse_prometheus(text):
    """Parse Prometheus text: comments skipped, labels kept in the key, timestamps dropped.

    >>> _parse_prometheus('# HELP x\\northanc_count_studies 3 1700000000\\nm{a="1 2"} 0.5')
    {'orthanc_count_studies': 3.0, 'm{a="1 2"}': 0.5}
    """
    metrics = {}
    for line in text.splitlines():
        match = re.match(r"\s*([A-Za-z_:][\w:]*(?:\{[^}]*\})?)\s+(\S+)", line)
        if match and not line.lstrip().startswith("#"):
            metrics[match.group(1)] = float(match.group(2))
    return metrics


def get_log_level(conn: Connection) -> str:
    """Return the server's log level: ``default``, ``verbose`` or ``trace``.

    Orthanc: GET /tools/log-level (1.6.0).
    """
    return _get(conn, "/tools/log-level", raw=True).decode().strip()


def set_log_level(conn: Connection, level: str) -> str:
    """Set the server's log level (``default``, ``verbose``, ``trace``); return it.

    Orthanc: PUT /tools/log-level (1.6.0); another level raises ``HttpError`` (400).
    """
    _put(conn, "/tools/log-level", body=str(level).encode(),
         headers={"Content-Type": "text/plain"})
    return get_log_level(conn)


def execute_lua_script(conn: Connection, script: str, *, timeout: float | None = None) -> str:
    """Run a Lua script on the server and return what it printed (a str).

    Orthanc: POST /tools/execute-script, allowed only with ``"ExecuteLuaEnabled": true`` in
    the server's configuration (off by default): otherwise Orthanc answers 403 and the
    ``NotAuthorized`` raised says so. A Lua error raises ``HttpError`` (500) with Orthanc's
    message in ``orthanc['Details']``. ``timeout``: seconds to wait for the answer (default
    60, as every REST call).
    """
    try:
        answer = _post(conn, "/tools/execute-script", body=str(script).encode("utf-8"),
                       headers={"Content-Type": "text/plain"}, timeout=timeout, raw=True)
    except NotAuthorized as exc:
        if exc.status != 403:
            raise
        raise _restated(exc, f"{exc}; Orthanc runs Lua from the REST API only with "
                             "\"ExecuteLuaEnabled\": true in its configuration") from exc
    return answer.decode("utf-8", "replace")


# Features a database back-end may lack even on a recent Orthanc: /system "Capabilities" says.
_CAPABILITIES = {"extended_find": "HasExtendedFind", "extended_changes": "HasExtendedChanges"}


def _unsupported(conn, feature):
    """Return the ``UnsupportedByServer`` error the server deserves for ``feature``, or None.

    One ``GET /system``, no memo (a server can be upgraded behind the same URL). The error
    names the feature, the version it needs (``needed``) and the one the server runs
    (``actual``); for extended find and changes it also needs the server's Capabilities flag.
    """
    needed = FEATURES[feature]
    system = get_system(conn)
    actual = _parse_version(system["Version"])
    what = f"{feature.replace('_', ' ')} needs Orthanc {'.'.join(map(str, needed))} or newer"
    if actual < needed:
        return UnsupportedByServer(f"{what}; {conn.url} runs {'.'.join(map(str, actual))}",
                                   needed=needed, actual=actual)
    capability = _CAPABILITIES.get(feature)
    if capability and not system.get("Capabilities", {}).get(capability, False):
        return UnsupportedByServer(
            f"{what} with a database back-end that has {capability}; {conn.url} "
            f"({system['Version']}) does not report it", needed=needed, actual=actual)
    return None


def _require(conn, feature):
    """Raise ``_unsupported(conn, feature)`` when the server lacks ``feature``.

    Call it only in a function that was asked for a version-dependent option (``labels=``,
    ``requested_tags=``...), before the request that uses it: plain calls never pay for it.
    """
    error = _unsupported(conn, feature)
    if error is not None:
        raise error


def _or_unsupported(conn, feature, call, *args, statuses=(404,), **options):
    """Return ``call(conn, *args, **options)``; when it fails with an HTTP status in
    ``statuses``, raise ``_unsupported(conn, feature)`` if the server lacks ``feature``, else the
    call's own error.

    For a route an older server lacks: plain calls pay nothing, a failure one ``GET /system``.
    Orthanc 1.10.1 answers a missing route with the same 404 (``OrthancStatus`` 17, "Unknown
    resource") as 1.12 and 1.13 give for an unknown resource on an existing route, so the
    answer alone cannot tell them apart: the version decides.
    """
    try:
        return call(conn, *args, **options)
    except HttpError as exc:
        if exc.status not in statuses:
            raise
        error = _unsupported(conn, feature)
        if error is None:
            raise
        raise error from exc


# ==== Jobs ====

def _start_job(conn, path, body=None, *, priority=None, user_data=None, timeout=None):
    """POST ``body`` to ``path`` as an asynchronous Orthanc job and return the job id.

    ``body`` is copied (never mutated) and gets ``"Asynchronous": true``, and ``Priority``
    and ``UserData`` when given (see ``_job_options``). Used by every ``*_as_job`` function;
    pair it with ``wait_job`` for the waiting variant.
    """
    request = dict(body or {}, Asynchronous=True, **_job_options(conn, priority, user_data))
    return _post(conn, path, request, timeout=timeout)["ID"]


def _job_options(conn, priority=None, user_data=None):
    """The ``Priority`` and ``UserData`` keys of a job's body, for the options given.

    ``priority``: an int, higher runs first (Orthanc's default is 0). ``user_data``: any JSON
    value, shown in the job's dict as ``UserData``; it needs Orthanc 1.12.9, checked here
    (``UnsupportedByServer``) since older servers drop it silently.

    >>> _job_options(None, 5), _job_options(None)
    ({'Priority': 5}, {})
    """
    options = {}
    if priority is not None:
        options["Priority"] = int(priority)
    if user_data is not None:
        _require(conn, "job_user_data")
        options["UserData"] = user_data
    return options


def _run_job(conn, path, body=None, *, timeout=None, priority=None, user_data=None):
    """Start a job like ``_start_job``, wait for it with ``timeout`` and return its final dict."""
    return wait_job(conn, _start_job(conn, path, body, priority=priority, user_data=user_data),
                    timeout=timeout)


def get_jobs(conn: Connection, *, expand: bool = False) -> list[Any]:
    """Return the ids of the jobs the server knows (running, pending and in its history).

    With ``expand``, each job's dict (as ``get_job``) instead. Orthanc keeps the last
    ``JobsHistorySize`` finished jobs (10 by default). Orthanc: GET /jobs[?expand].
    """
    return _get(conn, "/jobs?expand" if expand else "/jobs")


def get_job(conn: Connection, job_id: str) -> dict[str, Any]:
    """Return Orthanc's dict for a job (``State``, ``Progress``, ``Content``, ``ErrorCode``...).

    Orthanc: GET /jobs/{id}.
    """
    return _get(conn, f"/jobs/{_segment(job_id, 'job id')}")


def wait_job(conn: Connection, job_id: str, timeout: float | None = None,
             polling_interval: float = 0.2, *,
             progress: Callable[[int, int], object] | None = None) -> dict[str, Any]:
    """Wait until a job ends and return its final dict (``State`` is ``Success``).

    ``timeout`` in seconds (None: one hour; a paused job waits too). ``progress(percent,
    100)`` is called after each poll with the job's ``Progress``. Orthanc: GET /jobs/{id},
    polled every ``polling_interval`` s.

    Raises:
        JobFailed: the job ended in ``Failure`` (cancelled jobs too); ``.job`` is its dict and
            the message carries Orthanc's ``ErrorCode``, ``ErrorDescription``, ``ErrorDetails``.
        OrthancTimeout: still not finished after ``timeout`` s (the job keeps running on the
            server; ``.job`` is its last dict).
    """
    timeout = _JOB_TIMEOUT if timeout is None else float(timeout)
    deadline = time.monotonic() + timeout
    path = f"/jobs/{_segment(job_id, 'job id')}"
    while True:
        # a server that stops answering must not hold us past the deadline
        remaining = min(_READ_TIMEOUT, deadline - time.monotonic())
        job = _get(conn, path, timeout=max(1.0, remaining), retries=_RETRY_WITHIN_DEADLINE)
        if progress is not None:
            progress(job.get("Progress", 0), 100)
        state = job.get("State")
        if state == "Success":
            return job
        if state == "Failure":
            raise JobFailed(_job_failure_message(conn, job), job=job)
        now = time.monotonic()
        if now >= deadline:
            raise OrthancTimeout(
                f"job {job_id} ({job.get('Type')}) on {conn.url} still {state} at "
                f"{job.get('Progress')}% after {timeout} s; it keeps running on the server "
                "(cancel_job stops it)", job=job)
        time.sleep(max(0.0, min(float(polling_interval), deadline - now)))


def _job_failure_message(conn, job):
    details = "; ".join(str(job[k]) for k in ("ErrorDescription", "ErrorDetails") if job.get(k))
    return (f"job {job.get('ID')} ({job.get('Type')}) failed on {conn.url}: "
            f"ErrorCode {job.get('ErrorCode')}: {details or 'no details'}")


def cancel_job(conn: Connection, job_id: str) -> None:
    """Cancel a pending, running or paused job (it ends in ``Failure``).

    Orthanc: POST /jobs/{id}/cancel.
    """
    _post(conn, f"/jobs/{_segment(job_id, 'job id')}/cancel", {})


def pause_job(conn: Connection, job_id: str) -> None:
    """Pause a job; ``resume_job`` continues it.  Orthanc: POST /jobs/{id}/pause."""
    _post(conn, f"/jobs/{_segment(job_id, 'job id')}/pause", {})


def resume_job(conn: Connection, job_id: str) -> None:
    """Resume a paused job.  Orthanc: POST /jobs/{id}/resume."""
    _post(conn, f"/jobs/{_segment(job_id, 'job id')}/resume", {})


def resubmit_job(conn: Connection, job_id: str) -> None:
    """Run a failed or cancelled job again.  Orthanc: POST /jobs/{id}/resubmit."""
    _post(conn, f"/jobs/{_segment(job_id, 'job id')}/resubmit", {})


def delete_job(conn: Connection, job_id: str) -> None:
    """Remove a finished job from the server's history.

    Orthanc: DELETE /jobs/{id} (>= 1.12.2; older servers raise ``UnsupportedByServer``).
    An unknown job raises ``NotFound``, and so does a job not finished yet (Orthanc looks
    only in the history): the message then says its state (cancel it first).
    """
    try:  # Orthanc 1.10 answers 405 (Allow: GET): the route has no DELETE
        _or_unsupported(conn, "delete_job", _delete, f"/jobs/{_segment(job_id, 'job id')}",
                        statuses=(404, 405))
    except NotFound as exc:
        try:
            state = get_job(conn, job_id)["State"]
        except NotFound:
            raise exc from None
        raise _restated(exc, f"{exc} (job {job_id} is {state}: Orthanc deletes only finished "
                             "jobs; cancel_job it first)") from exc


# ==== Resources ====

def get_all_ids(conn: Connection, level: str) -> list[str]:
    """Return the ids of every resource at ``level``.

    Orthanc: GET /{level}.
    """
    return _get(conn, "/" + _level(level))


def get_info(conn: Connection, level: str, orthanc_id: str) -> dict[str, Any]:
    """Return Orthanc's dict for one resource (``MainDicomTags``, ``ParentStudy``...).

    Raises ``NotFound`` for an unknown id.
    """
    return _get(conn, f"/{_level(level)}/{_segment(orthanc_id)}")


def exists(conn: Connection, level: str, orthanc_id: str) -> bool:
    """Tell whether the resource exists (False also for an id Orthanc could never have).

    A level that is not one of ``LEVELS`` raises ``OrthancValueError``.
    """
    level = _level(level)
    try:
        get_info(conn, level, orthanc_id)
        return True
    except (NotFound, OrthancValueError):
        return False


def _other_level(level, other, relation):
    """Return ``other`` normalized, checking it is above (parent) or below (child) ``level``.

    >>> _other_level("Instance", "studies", "parent")
    'studies'
    >>> _other_level(STUDIES, PATIENTS, "child")
    Traceback (most recent call last):
    ...
    orthanc_fn.OrthancValueError: patients is not a child level of studies
    """
    level, other = _level(level), _level(other)
    below = LEVELS.index(other) > LEVELS.index(level)
    if level == other or below != (relation == "child"):
        raise OrthancValueError(f"{other} is not a {relation} level of {level}")
    return other


def get_parent_id(conn: Connection, level: str, orthanc_id: str, parent_level: str) -> str:
    """Return the id of the ancestor at ``parent_level`` (e.g. the study of an instance).

    Orthanc: GET /{level}/{id}/{patient|study|series}, one request.
    """
    parent = _ORTHANC_LEVEL[_other_level(level, parent_level, "parent")].lower()
    return _get(conn, f"/{_level(level)}/{_segment(orthanc_id)}/{parent}")["ID"]


def get_children_ids(conn: Connection, level: str, orthanc_id: str, child_level: str) -> list[str]:
    """Return the ids of every descendant at ``child_level``, e.g. all instances of a patient.

    Orthanc: GET /{level}/{id}/{child_level}, one request (ids only on Orthanc >= 1.12,
    which honours ``expand=false``; older servers send each child's dict).
    """
    child = _other_level(level, child_level, "child")
    answer = _get(conn, f"/{_level(level)}/{_segment(orthanc_id)}/{child}", {"expand": "false"})
    return [item if isinstance(item, str) else item["ID"] for item in answer]


def delete(conn: Connection, level: str, orthanc_ids: str | Iterable[str], *,
           missing_ok: bool = False) -> None:
    """Delete one resource (an id) or several (a list of ids).

    One id: DELETE /{level}/{id}, ``NotFound`` when unknown unless ``missing_ok`` (as
    ``pathlib.Path.unlink``: an id already gone is then no error). Several ids: one
    POST /tools/bulk-delete, where Orthanc skips the ids it does not know and does not check
    their level.
    """
    level = _level(level)
    ids = _as_list(orthanc_ids)
    paths = [f"/{level}/{_segment(orthanc_id)}" for orthanc_id in ids]
    if len(ids) > 1:
        _post(conn, "/tools/bulk-delete", {"Resources": ids}, timeout=_BULK_TIMEOUT)
        return
    for path in paths:
        try:
            _delete(conn, path)
        except NotFound:
            if not missing_ok:
                raise


def get_resource_statistics(conn: Connection, level: str, orthanc_id: str) -> dict[str, Any]:
    """Return Orthanc's statistics of one resource (``CountInstances``, ``DiskSizeMB``...).

    Orthanc: GET /{level}/{id}/statistics (patients, studies, series; instances on 1.12).
    """
    return _get(conn, f"/{_level(level)}/{_segment(orthanc_id)}/statistics")


def _protection(conn, method, patient_id, **options):
    """Read or write ``/patients/{id}/protected``; an unknown patient raises ``NotFound``
    (Orthanc 1.10 answers 400 "Parameter out of range" for it, kept as ``status``; newer
    ones 404)."""
    path = f"/patients/{_segment(patient_id)}/protected"
    try:
        return _request(conn, method, path, **options)
    except HttpError as exc:
        if exc.status != 400 or exists(conn, PATIENTS, patient_id):
            raise
        raise NotFound(f"{exc} (no patient {patient_id} on {conn.url})", status=exc.status,
                       method=exc.method, url=exc.url, orthanc=exc.orthanc) from exc


def is_protected(conn: Connection, patient_id: str) -> bool:
    """Tell whether a patient is protected from recycling (``MaximumStorageSize`` and
    ``MaximumPatientCount`` never delete it).  Orthanc: GET /patients/{id}/protected."""
    return _protection(conn, "GET", patient_id, raw=True).strip() == b"1"


def set_protected(conn: Connection, patient_id: str, protected: bool = True) -> None:
    """Protect a patient from recycling, or (``protected=False``) remove the protection.

    Orthanc: PUT /patients/{id}/protected with ``1`` or ``0``.
    """
    _protection(conn, "PUT", patient_id, body=b"1" if protected else b"0",
                headers={"Content-Type": "text/plain"})


def reconstruct(conn: Connection, level: str, orthanc_id: str) -> None:
    """Re-read the stored files of a resource to rebuild its main tags and metadata in the
    index (after a change of ``MainDicomTags`` in the configuration, for instance).

    Orthanc: POST /{level}/{id}/reconstruct (synchronous; a large patient takes a while).
    """
    _post(conn, f"/{_level(level)}/{_segment(orthanc_id)}/reconstruct", {}, timeout=_BULK_TIMEOUT)


def get_first_instance_id(conn: Connection, level: str, orthanc_id: str) -> str:
    """Return the id of one instance of the resource (the first Orthanc lists).

    An instance id is returned as is. Orthanc: GET /{level}/{id}/instances.
    """
    if _level(level) == INSTANCES:
        return orthanc_id
    return get_children_ids(conn, level, orthanc_id, INSTANCES)[0]


def get_modalities_of(conn: Connection, level: str, orthanc_id: str) -> set[str]:
    """Return the set of modalities (``{'CT', 'SR'}``) of the series in or above a resource.

    Orthanc: GET /{level}/{id}/series, or /series/{id} (one request).
    """
    level = _level(level)
    path = f"/{level}/{_segment(orthanc_id)}"
    if level == SERIES:
        series = [_get(conn, path)]
    elif level == INSTANCES:
        series = [_get(conn, path + "/series")]
    else:
        series = _get(conn, path + "/series")
    return {s["MainDicomTags"]["Modality"] for s in series if s["MainDicomTags"].get("Modality")}


def get_ordered_instances_ids(conn: Connection, series_id: str) -> list[str]:
    """Return the series' instance ids in Orthanc's slice order (by position, else number).

    A multi-frame instance appears once. Orthanc: GET /series/{id}/ordered-slices.
    """
    slices = _get(conn, f"/series/{_segment(series_id)}/ordered-slices")["SlicesShort"]
    return list(dict.fromkeys(instance_id for instance_id, _first, _count in slices))


_PREVIEW_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "jpg": "image/jpeg"}


def get_preview(conn: Connection, instance_id: str, format: str = "png") -> bytes:
    """Return the instance's first frame rendered as a PNG or JPEG image (bytes).

    ``format`` is ``'png'`` or ``'jpeg'``. Orthanc: GET /instances/{id}/preview.
    """
    try:
        accept = _PREVIEW_TYPES[str(format).lower()]
    except KeyError:
        raise OrthancValueError(f"invalid preview format {format!r}: use png or jpeg") from None
    return _get(conn, f"/instances/{_segment(instance_id)}/preview", raw=True,
                headers={"Accept": accept})


_CONTENT_SIGNATURES = ((b"%PDF", "application/pdf"), (b"\x89PNG", "image/png"),
                       (b"\xff\xd8\xff", "image/jpeg"))
_PDF_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.104.1"  # Encapsulated PDF Storage


def create_dicom(conn: Connection, tags: Mapping[str, Any], content: bytes | None = None,
                 content_type: str | None = None, parent_id: str | None = None) -> str:
    """Create a DICOM instance from ``tags`` (and a PDF, PNG or JPEG); return its id.

    ``tags`` maps DICOM keywords to strings (the dict is not modified). ``content`` is bytes;
    ``content_type`` (``application/pdf``, ``image/png``, ``image/jpeg``) is guessed from the
    bytes when omitted. ``parent_id`` (a patient, study or series id) puts the instance
    there, with the parent's tags. Orthanc: POST /tools/create-dicom.
    """
    body: dict[str, Any] = {"Tags": dict(tags)}
    if content is not None:
        import base64
        content = bytes(content)
        if content_type is None:
            content_type = next((kind for magic, kind in _CONTENT_SIGNATURES
                                 if content.startswith(magic)), None)
            if content_type is None:
                raise OrthancValueError(
                    "create_dicom: content is not PDF, PNG or JPEG; pass content_type")
        body["Content"] = f"data:{content_type};base64,{base64.b64encode(content).decode()}"
    if parent_id is not None:
        body["Parent"] = str(parent_id)
    return _post(conn, "/tools/create-dicom", body)["ID"]


def attach_pdf(conn: Connection, study_id: str, pdf_path: str | os.PathLike[str],
               series_description: str, when: datetime.datetime | None = None) -> str:
    """Store a PDF file as a new series (modality DOC) of a study; return the instance id.

    ``when`` (a ``datetime``, default now) gives the series date and time.
    Orthanc: POST /tools/create-dicom with the study as parent.
    """
    when = when or datetime.datetime.now()
    with open(pdf_path, "rb") as f:
        content = f.read()
    tags = {"SeriesDescription": series_description, "Modality": "DOC",
            "SeriesDate": when.strftime("%Y%m%d"), "SeriesTime": when.strftime("%H%M%S")}
    return create_dicom(conn, tags, content, "application/pdf", parent_id=study_id)


def get_pdf_instances(conn: Connection, study_id: str) -> list[str]:
    """Return the ids of the study's Encapsulated PDF instances.

    Orthanc: GET /studies/{id}, then one POST /tools/find on SOPClassUID.
    """
    uid = get_info(conn, STUDIES, study_id)["MainDicomTags"]["StudyInstanceUID"]
    return _post(conn, "/tools/find", {
        "Level": "Instance", "Expand": False,
        "Query": {"StudyInstanceUID": uid, "SOPClassUID": _PDF_SOP_CLASS}})


def download_pdf(conn: Connection, instance_id: str, path: str | os.PathLike[str]) -> str:
    """Write the PDF an instance encapsulates to ``path``, byte for byte; return ``path``.

    DICOM pads an odd-length document with one NUL byte; it is removed (a PDF never ends
    with NUL). Orthanc: GET /instances/{id}/content/0042-0011 (``NotFound`` without one).
    """
    data = _get(conn, f"/instances/{_segment(instance_id)}/content/0042-0011", raw=True)
    if data.endswith(b"\x00"):
        data = data[:-1]
    with open(path, "wb") as f:
        f.write(data)
    return os.fspath(path)


def merge_study(conn: Connection, target_study_id: str, series_ids: str | Iterable[str],
                keep_source: bool = False, *, timeout: float | None = None,
                priority: int | None = None, user_data: Any | None = None) -> str:
    """Move (or copy) series into another study; return the target study id.

    The series get the target's patient and study tags and new UIDs. With
    ``keep_source=False`` the source series are deleted only once the job has stored every
    copy in the target. ``timeout`` bounds the wait for the job (see ``wait_job``);
    ``priority`` and ``user_data`` are the job's (see ``get_job``; user data needs Orthanc
    >= 1.12.9). Orthanc: POST /studies/{id}/merge as a job.
    """
    ids = _as_list(series_ids)
    job = _run_job(conn, f"/studies/{_segment(target_study_id)}/merge",
                   {"Resources": ids, "KeepSource": True}, timeout=timeout, priority=priority,
                   user_data=user_data)
    return _move_done(conn, job, ids, keep_source)


def split_study(conn: Connection, study_id: str, series_ids: str | Iterable[str],
                replace_tags: Mapping[str, Any] | None = None, keep_source: bool = False, *,
                timeout: float | None = None, priority: int | None = None,
                user_data: Any | None = None) -> str:
    """Move (or copy) series of a study into a new study; return the new study id.

    ``replace_tags`` sets study or patient tags of the new study. Sources go as in
    ``merge_study``, and so do the job options. Orthanc: POST /studies/{id}/split as a job.
    """
    ids = _as_list(series_ids)
    job = _run_job(conn, f"/studies/{_segment(study_id)}/split",
                   {"Series": ids, "Replace": dict(replace_tags or {}), "KeepSource": True},
                   timeout=timeout, priority=priority, user_data=user_data)
    return _move_done(conn, job, ids, keep_source)


def _move_done(conn, job, source_series_ids, keep_source):
    """After a merge or split job: delete the sources once every copy is stored."""
    content = job["Content"]
    if content.get("FailedInstancesCount"):
        raise JobFailed(f"job {job['ID']} ({job['Type']}) on {conn.url}: "
                        f"{content['FailedInstancesCount']} instances were not copied; "
                        "the source series are kept", job=job)
    if not keep_source:
        delete(conn, SERIES, source_series_ids)
    return content["TargetStudy"]


# ==== Tags, metadata, attachments, labels ====

_TAG = re.compile(r"([0-9A-Fa-f]{4})[,-]?([0-9A-Fa-f]{4})")
_RETIRED = "RETIRED_"  # Orthanc's prefix to the keyword of a retired tag


class Tags(dict):
    """DICOM tags keyed by keyword; ``'0010,0020'``, ``'0010-0020'`` and ``'00100020'`` work too.

    Values are kept as Orthanc sends them: ``str``, ``None`` (Orthanc's ``Null``, e.g. pixel
    data or binary values, and ``TooLong``), ``list`` of ``Tags`` for a sequence. ``types``
    maps each key to Orthanc's type (``String``, ``Null``, ``TooLong``, ``Sequence``...). A tag
    without a unique keyword (private or unknown tags) is keyed ``'gggg,eeee'``, never dropped.
    A retired tag, which Orthanc names ``RETIRED_StudyStatusID``, is keyed by its DICOM
    keyword ``StudyStatusID``; Orthanc's name works too.

    >>> tags = Tags._from_orthanc({"0010,0020": {"Name": "PatientID", "Type": "String",
    ...                                          "Value": "P-1"}})
    >>> tags["PatientID"], tags["0010,0020"], tags["0010-0020"], tags["00100020"]
    ('P-1', 'P-1', 'P-1', 'P-1')
    >>> "0010,0010" in tags, tags.get("PatientName", "-"), tags.types["PatientID"]
    (False, '-', 'String')
    >>> old = Tags._from_orthanc({"0032,000a": {"Name": "RETIRED_StudyStatusID",
    ...                                         "Type": "String", "Value": "READ"}})
    >>> old["StudyStatusID"], old["RETIRED_StudyStatusID"], old["0032,000A"], list(old)
    ('READ', 'READ', 'READ', ['StudyStatusID'])
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.types: dict[str, Any] = {}
        # 'gggg,eeee' (lower case) and Orthanc's RETIRED_ names -> key
        self._aliases: dict[str, str] = {}

    @classmethod
    def _from_orthanc(cls, answer):
        tags = cls()
        for tag, element in answer.items():
            name, kind = element.get("Name", ""), element.get("Type")
            keyword = name[len(_RETIRED):] if name.startswith(_RETIRED) else name
            key = tag
            if keyword.isidentifier() and int(tag[:4], 16) % 2 == 0 and keyword not in tags:
                key = keyword
                if keyword != name:
                    tags._aliases[name] = key
            value = element.get("Value")
            if kind == "Sequence":
                value = [cls._from_orthanc(item) for item in value or ()]
            dict.__setitem__(tags, key, value)
            tags.types[key] = kind
            tags._aliases[tag.lower()] = key
        return tags

    def _key(self, key):
        if isinstance(key, str) and not dict.__contains__(self, key):
            match = _TAG.fullmatch(key)
            if match:
                key = f"{match[1]},{match[2]}".lower()
            return self._aliases.get(key, key)
        return key

    def __getitem__(self, key: str) -> Any:
        return dict.__getitem__(self, self._key(key))

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, self._key(key))

    def get(self, key: str, default: Any | None = None) -> Any:
        return dict.get(self, self._key(key), default)


def get_tags(conn: Connection, instance_id: str) -> Tags:
    """Return every tag of an instance as ``Tags`` (keyword keys, tag-number lookups too).

    Orthanc: GET /instances/{id}/tags. Nothing is dropped: see ``Tags``.
    """
    return Tags._from_orthanc(_get(conn, f"/instances/{_segment(instance_id)}/tags"))


def get_simplified_tags(conn: Connection, instance_id: str) -> dict[str, Any]:
    """Return Orthanc's simplified tags of an instance: a plain dict keyword -> value.

    Orthanc: GET /instances/{id}/tags?simplify. Orthanc merges tags it has no keyword for
    into one ``'Unknown Tag & Data'`` key: use ``get_tags`` to keep private tags apart.
    """
    return _get(conn, f"/instances/{_segment(instance_id)}/tags", {"simplify": ""})


def get_shared_tags(conn: Connection, level: str, orthanc_id: str) -> Tags:
    """Return the tags that every instance of a patient, study or series has in common.

    As ``Tags`` (see ``get_tags``); for an instance, all its tags.
    Orthanc: GET /{level}/{id}/shared-tags (an instance: GET /instances/{id}/tags).
    """
    level = _level(level)
    if level == INSTANCES:
        return get_tags(conn, orthanc_id)
    return Tags._from_orthanc(_get(conn, f"/{level}/{_segment(orthanc_id)}/shared-tags"))


_USER_CONFIG = {"metadata": "UserMetadata", "attachments": "UserContentType"}
_MISSING = object()


def _user_content_path(level, orthanc_id, kind, name, suffix=""):
    if isinstance(name, int) and not isinstance(name, bool) and not 1024 <= name <= 65535:
        raise OrthancValueError(f"user {kind} numbers are 1024-65535, got {name}")
    return f"/{_level(level)}/{_segment(orthanc_id)}/{kind}/{_segment(name, kind + ' name')}" \
        + suffix


def _user_content(conn, method, level, orthanc_id, kind, name, suffix="", **options):
    """Send one request about a metadata or an attachment (``kind``) of a resource.

    ``name`` is a number 1024-65535 or a name the server declares in its configuration;
    Orthanc answers 404 for an undeclared name, and the raised ``NotFound`` says so.
    ``options`` go to ``_request`` (``body``, ``headers`` such as ``If-Match``, ``raw``...).
    """
    try:
        return _request(conn, method, _user_content_path(level, orthanc_id, kind, name, suffix),
                        **options)
    except NotFound as exc:
        if not _is_undeclared(exc):
            raise
        raise _restated(exc, f"{exc} ({kind} name {name!r} is not declared in the server's "
                        f"{_USER_CONFIG[kind]} configuration: declare it, or use a number "
                        "1024-65535)") from exc


def _is_undeclared(error):
    return (error.orthanc or {}).get("OrthancStatus") == 7  # Orthanc's InexistentItem


def _get_metadata(conn, level, orthanc_id, name):
    """Return the bytes of a metadata, or ``_MISSING`` when the resource has none.

    Orthanc answers 404 both for a missing metadata and an unknown resource: the resource is
    checked then, and ``NotFound`` raised when it is the resource that is missing.
    """
    try:
        return _user_content(conn, "GET", level, orthanc_id, "metadata", name, raw=True)
    except NotFound as exc:
        if _is_undeclared(exc) or not exists(conn, level, orthanc_id):
            raise
        return _MISSING


def set_string_metadata(conn: Connection, level: str, orthanc_id: str, name: str | int,
                        content: str, *, revision: str | None = None) -> None:
    """Set a metadata of a resource to a string.

    Orthanc: PUT /{level}/{id}/metadata/{name}. ``name``: a number 1024-65535, or a name
    declared in the server's ``UserMetadata``. ``revision``: write only if the metadata
    is still at this revision (see ``get_string_metadata_with_revision``).
    """
    set_binary_metadata(conn, level, orthanc_id, name, str(content).encode("utf-8"),
                        revision=revision)


def get_string_metadata(conn: Connection, level: str, orthanc_id: str, name: str | int,
                        default: Any | None = None) -> Any:
    """Return a metadata of a resource as a string, ``default`` when the resource has none.

    Orthanc: GET /{level}/{id}/metadata/{name}. An unknown resource raises ``NotFound``.
    """
    data = _get_metadata(conn, level, orthanc_id, name)
    return default if data is _MISSING else data.decode("utf-8")


def set_binary_metadata(conn: Connection, level: str, orthanc_id: str, name: str | int,
                        content: bytes, *, revision: str | None = None) -> None:
    """Set a metadata of a resource to bytes (see ``set_string_metadata``)."""
    _user_content(conn, "PUT", level, orthanc_id, "metadata", name, body=bytes(content),
                  headers={"Content-Type": "application/octet-stream", **_if_match(revision)})


def get_binary_metadata(conn: Connection, level: str, orthanc_id: str, name: str | int,
                        default: Any | None = None) -> Any:
    """Return a metadata of a resource as bytes (see ``get_string_metadata``)."""
    data = _get_metadata(conn, level, orthanc_id, name)
    return default if data is _MISSING else data


def has_metadata(conn: Connection, level: str, orthanc_id: str, name: str | int) -> bool:
    """Tell whether a resource has a metadata; an unknown resource raises ``NotFound``."""
    return _get_metadata(conn, level, orthanc_id, name) is not _MISSING


def delete_metadata(conn: Connection, level: str, orthanc_id: str, name: str | int, *,
                    revision: str | None = None) -> None:
    """Delete a metadata of a resource; ``NotFound`` when it has none.

    Orthanc: DELETE /{level}/{id}/metadata/{name}. ``revision``: as in
    ``set_string_metadata``.
    """
    _user_content(conn, "DELETE", level, orthanc_id, "metadata", name,
                  headers=_if_match(revision))


def set_attachment(conn: Connection, level: str, orthanc_id: str, name: str | int, content: bytes,
                   *, revision: str | None = None) -> None:
    """Attach bytes to a resource under ``name``, replacing any previous content.

    Orthanc: PUT /{level}/{id}/attachments/{name}. ``name``: a number 1024-65535, or a name
    declared in the server's ``UserContentType``. ``revision``: write only if the
    attachment is still at this revision (see ``get_attachment_with_revision``).
    """
    _user_content(conn, "PUT", level, orthanc_id, "attachments", name, body=bytes(content),
                  headers={"Content-Type": "application/octet-stream", **_if_match(revision)})


def get_attachment(conn: Connection, level: str, orthanc_id: str, name: str | int) -> bytes:
    """Return the bytes of an attachment; ``NotFound`` when missing.

    Orthanc: GET /{level}/{id}/attachments/{name}/data.
    """
    return _user_content(conn, "GET", level, orthanc_id, "attachments", name, "/data",
                         raw=True)


def delete_attachment(conn: Connection, level: str, orthanc_id: str, name: str | int, *,
                      revision: str | None = None) -> None:
    """Delete an attachment of a resource; ``NotFound`` when missing.

    Orthanc: DELETE /{level}/{id}/attachments/{name}. ``revision``: as in
    ``set_attachment``.
    """
    _user_content(conn, "DELETE", level, orthanc_id, "attachments", name,
                  headers=_if_match(revision))


def _if_match(revision):
    """The ``If-Match`` header for a revision from a ``get_*_with_revision`` function."""
    if revision is None:
        return {}
    return {"If-Match": '"' + str(revision).strip('"') + '"'}


def _get_with_revision(conn, level, orthanc_id, kind, name, suffix="", default=_MISSING):
    """GET a metadata or attachment content; return ``(bytes, revision)`` from its ETag.

    ``(default, None)`` when the resource has no such content and a ``default`` is given
    (an unknown resource still raises ``NotFound``, as in ``_get_metadata``).
    """
    try:
        response = _user_content(conn, "GET", level, orthanc_id, kind, name, suffix,
                                 stream=True)
    except NotFound as exc:
        if default is _MISSING or _is_undeclared(exc) or not exists(conn, level, orthanc_id):
            raise
        return default, None
    try:
        url = conn.url + _user_content_path(level, orthanc_id, kind, name, suffix)
        data = _read_all(response, "GET", url)
        etag = response.headers.get("ETag", "")
    finally:
        response.release_conn()
    return data, etag.strip('"')


def get_string_metadata_with_revision(conn: Connection, level: str, orthanc_id: str,
                                      name: str | int, default: Any = _MISSING) -> tuple[str, str]:
    """Return ``(value, revision)`` of a metadata; ``NotFound`` when missing.

    With ``default`` given, a missing metadata gives ``(default, None)`` instead (as in
    ``get_string_metadata``; an unknown resource still raises ``NotFound``). Pass
    ``revision`` to ``set_string_metadata`` / ``delete_metadata`` to write only if no
    one else changed it meanwhile: a stale revision raises ``Conflict``. With
    ``CheckRevisions: true`` (Orthanc 1.9.2+, see ``get_capabilities``) replacing or deleting
    an existing metadata or attachment *needs* its current revision; without it, writes
    without a revision are accepted. Orthanc: GET /{level}/{id}/metadata/{name} (ETag).
    """
    data, revision = _get_with_revision(conn, level, orthanc_id, "metadata", name,
                                        default=default)
    return (data if revision is None else data.decode("utf-8")), revision


def get_binary_metadata_with_revision(conn: Connection, level: str, orthanc_id: str,
                                      name: str | int,
                                      default: Any = _MISSING) -> tuple[bytes, str]:
    """Return ``(bytes, revision)`` of a metadata (see ``get_string_metadata_with_revision``)."""
    return _get_with_revision(conn, level, orthanc_id, "metadata", name, default=default)


def get_all_metadata(conn: Connection, level: str, orthanc_id: str) -> dict[str, str]:
    """Return every metadata of a resource as a dict name -> str value.

    Orthanc's own (``ReceptionDate``, ``TransferSyntax``, ``Origin``...) and user metadata;
    a user metadata that the configuration does not name comes back under its number
    (``"1045"``). Orthanc: GET /{level}/{id}/metadata?expand (one request).
    """
    return _get(conn, f"/{_level(level)}/{_segment(orthanc_id)}/metadata", {"expand": ""})


def get_attachment_with_revision(conn: Connection, level: str, orthanc_id: str,
                                 name: str | int) -> tuple[bytes, str]:
    """Return ``(bytes, revision)`` of an attachment; ``NotFound`` when missing.

    Orthanc: GET /{level}/{id}/attachments/{name}/data (ETag).
    """
    return _get_with_revision(conn, level, orthanc_id, "attachments", name, "/data")


def _label_path(level, orthanc_id, label=None):
    path = f"/{_level(level)}/{_segment(orthanc_id)}/labels"
    return path if label is None else f"{path}/{_segment(label, 'label')}"


def get_labels(conn: Connection, level: str, orthanc_id: str) -> list[str]:
    """Return the labels of a resource (a list of str).

    Orthanc: GET /{level}/{id}/labels (>= 1.12.0; older servers raise UnsupportedByServer).
    """
    return _or_unsupported(conn, "labels", _get, _label_path(level, orthanc_id))


def add_label(conn: Connection, level: str, orthanc_id: str, label: str) -> None:
    """Add a label to a resource (Orthanc allows letters, digits, ``_`` and ``-``).

    Orthanc: PUT /{level}/{id}/labels/{label} (>= 1.12.0).
    """
    _or_unsupported(conn, "labels", _put, _label_path(level, orthanc_id, label), body=b"")


def delete_label(conn: Connection, level: str, orthanc_id: str, label: str) -> None:
    """Remove a label from a resource.  Orthanc: DELETE /{level}/{id}/labels/{label} (>= 1.12.0)."""
    _or_unsupported(conn, "labels", _delete, _label_path(level, orthanc_id, label))


def get_all_labels(conn: Connection) -> list[str]:
    """Return every label used on the server.  Orthanc: GET /tools/labels (>= 1.12.0)."""
    return _or_unsupported(conn, "labels", _get, "/tools/labels")


# ==== Upload ====

def upload(conn: Connection, buffer: bytes, *, timeout: float | None = None) -> list[str]:
    """Store a DICOM file, or a ZIP of DICOM files, given as bytes; return the instance ids.

    An instance the server already has counts as stored. Raises ``BadFileFormat`` when
    Orthanc's error says the content is the problem (its ``OrthancStatus``: bad file format,
    inexistent tag...; HTTP 400 or 404); other errors as they come. ``timeout``: seconds to
    wait for the answer (default 60; a large ZIP may need more). Orthanc: POST /instances.
    """
    return [answer["ID"] for answer in _store(conn, buffer, timeout=timeout)]


# Orthanc's OrthancStatus codes that refuse the file itself: BadFileFormat, CorruptedFile,
# InexistentTag (a DICOMDIR, a palette, a meta header without transfer syntax: HTTP 404),
# MainDicomTagsMultiplyDefined, CannotStoreInstance (refused by a filter).
_FILE_REFUSALS = frozenset((15, 20, 21, 44, 2018))


def _is_file_error(error):
    """Tell whether ``error`` is about one file: refused by Orthanc, or unreadable here.

    A refusal is about the file when Orthanc's JSON error says so by its ``OrthancStatus``,
    whatever the HTTP status; a 404 without Orthanc's body (a wrong URL) is not.
    """
    if isinstance(error, OrthancError):  # before OSError: OrthancConnectionError is one
        said = getattr(error, "orthanc", None)
        return isinstance(said, dict) and said.get("OrthancStatus") in _FILE_REFUSALS
    return isinstance(error, OSError)


def _store(conn, buffer, *, timeout=None):
    """POST a DICOM or ZIP buffer; return Orthanc's answers, one dict per instance
    (``ID``, ``ParentStudy``, ``Status``...). A refused file raises ``BadFileFormat``."""
    try:
        answer = _post(conn, "/instances", body=bytes(buffer), timeout=timeout,
                       headers={"Content-Type": "application/octet-stream"})
    except HttpError as exc:
        if not _is_file_error(exc):
            raise
        raise BadFileFormat(str(exc), status=exc.status, method=exc.method, url=exc.url,
                            orthanc=exc.orthanc) from exc
    return answer if isinstance(answer, list) else [answer]


class UploadResult(NamedTuple):
    """What ``upload_folder`` stored: ``instances_ids``, and ``errors`` as ``(path, reason)``."""
    instances_ids: list
    errors: list


def _with_path(error, path, **context):
    """Return a copy of a ``BadFileFormat`` that names the file ``path``."""
    return _restated(error, f"{path}: {error}", path=path, **context)


def upload_file(conn: Connection, path: str | os.PathLike[str], *,
                timeout: float | None = None) -> list[str]:
    """Store a DICOM file, or a ZIP of DICOM files, read from ``path``; return the instance ids.

    Orthanc: POST /instances. ``BadFileFormat`` (with ``.path``) when Orthanc refuses the
    content; ``FileNotFoundError`` for a missing path. ``timeout`` as in ``upload``.
    """
    with open(path, "rb") as f:
        data = f.read()
    try:
        return upload(conn, data, timeout=timeout)
    except BadFileFormat as exc:
        raise _with_path(exc, os.fspath(path)) from exc


def _folder_files(path, skip_extensions=()):
    """Return the files under ``path`` (sorted, recursive, no dot-files or dot-folders, none
    ending with one of ``skip_extensions``, case-insensitive) and the ``OSError`` of each
    folder that could not be listed."""
    path = os.fspath(path)
    if not os.path.isdir(path):
        os.listdir(path)  # raises FileNotFoundError, NotADirectoryError... naming path
    skipped = tuple("." * (not e.startswith(".")) + e.lower() for e in _as_list(skip_extensions))
    files, unreadable = [], []
    for folder, subfolders, names in os.walk(path, onerror=unreadable.append):
        subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
        files.extend(os.path.join(folder, name) for name in sorted(names)
                     if not name.startswith(".") and not name.lower().endswith(skipped))
    return files, unreadable


def _reason(error):
    """Orthanc's reason for refusing a file (its Message and Details), or the local error."""
    said = error.orthanc if isinstance(error, HttpError) else None
    if isinstance(said, dict) and said.get("Message"):
        return ": ".join(str(said[k]) for k in ("Message", "Details") if said.get(k))
    return str(error)


_NODE_RECOVERY = 10.0  # seconds an upload waits for its last server to answer again


class _Nodes:
    """The servers an upload is spread over, in turn.

    A node that cannot be reached (refused, reset, no answer) is dropped and the file goes to
    another one. The last node is never dropped: the upload waits up to ``_NODE_RECOVERY``
    seconds for it to answer again (a restart) and sends the file once more. Sending a DICOM
    file twice stores it once: Orthanc identifies an instance by its UIDs.
    """

    def __init__(self, conns):
        self.alive = list(conns)
        self.turn = 0
        self.lock = threading.Lock()

    def upload(self, data):
        resent = False
        while True:
            with self.lock:
                conn = self.alive[self.turn % len(self.alive)]
                self.turn += 1
            try:
                return _store(conn, data)  # Orthanc's answers, one per instance
            except (OrthancConnectionError, OrthancTimeout) as exc:
                with self.lock:
                    last = self.alive == [conn]
                    if not last and conn in self.alive:
                        _log.warning("upload: dropping node %s (%s)", conn.url, exc)
                        self.alive.remove(conn)
                if last and (resent or not wait_started(conn, _NODE_RECOVERY)):
                    raise
                resent = resent or last


def _upload_one(nodes, path):
    with open(path, "rb") as f:
        data = f.read()
    return nodes.upload(data)


_UPLOAD_WORKERS = 8  # parallel uploads: Orthanc stores in parallel, the pool holds 32 sockets


def upload_folder(conn: Connection, path: str | os.PathLike[str], ignore_errors: bool = False,
                  workers: int | None = None,
                  progress: Callable[[int, int | None], object] | None = None,
                  nodes: Iterable[Connection] | None = None, *,
                  skip_extensions: Iterable[str] = ()) -> UploadResult:
    """Store every file under ``path`` (recursively, dot-files skipped) in parallel.

    Each file is read only when one of the ``workers`` threads (default 8) sends it, so memory
    follows ``workers``, not the folder size. ``progress(done, total)`` is called after each
    file, from the calling thread. ``nodes``: more ``Connection`` s of the same cluster; files
    go to ``conn`` and the nodes in turn, and a node that cannot be reached is dropped for the
    rest of the call, its file sent to another one. When the last server stops answering
    (a restart), each upload waits up to 10 s for it and sends its file once more.

    ``skip_extensions``: files ending so are never sent, e.g. ``(".txt", ".json")``
    (case-insensitive).

    With ``ignore_errors``, every refused or unreadable file is listed in ``errors`` with
    Orthanc's reason: a folder copied from a CD stores its images and lists its DICOMDIR.
    Without it, the first one raises ``BadFileFormat`` (or the ``OSError``) once the uploads
    in flight have finished; the error carries ``.path`` and ``.instances_ids``, the ids
    stored so far. A file is refused when Orthanc's error says so, as in ``upload``; errors
    that are not about a file (server down, wrong credentials, a 404 from a proxy)
    are always raised. Orthanc: POST /instances, one per file.
    """
    files, unreadable = _folder_files(path, skip_extensions)
    answers, errors = _upload_files(conn, files, unreadable, ignore_errors, workers, progress,
                                    nodes)
    return UploadResult([answer["ID"] for answer in answers], errors)


def _upload_files(conn, files, unreadable, ignore_errors, workers, progress, nodes):
    """Do ``upload_folder``'s work on a list of files; return Orthanc's answers (one dict per
    stored instance) and the errors, or raise as ``upload_folder`` says."""
    import queue

    answers, errors, failure, done = [], [], None, 0
    for error in unreadable:
        if not ignore_errors:
            raise error
        errors.append((error.filename, str(error)))
    targets = _Nodes([conn, *(nodes or ())])
    waiting, lock, stop = iter(files), threading.Lock(), threading.Event()
    results = queue.SimpleQueue()

    def work():  # take the next file until none is left or the call stops; None when leaving
        try:
            while not stop.is_set():
                with lock:
                    file = next(waiting, None)
                if file is None:
                    return
                try:
                    results.put((file, _upload_one(targets, file), None))
                except Exception as exc:  # handed to the calling thread
                    results.put((file, None, exc))
        finally:
            results.put(None)

    threads = [threading.Thread(target=work, name="orthanc_fn-upload", daemon=True)
               for _ in range(max(1, min(int(workers or _UPLOAD_WORKERS), len(files))))]
    for thread in threads:
        thread.start()
    try:
        running = len(threads)
        while running:
            result = results.get()
            if result is None:
                running -= 1
                continue
            file, stored, error = result
            if error is None:
                answers.extend(stored)
            elif ignore_errors and _is_file_error(error):
                errors.append((file, _reason(error)))
            elif failure is None:  # raised below, once the uploads in flight have ended
                failure = (error, file)
                stop.set()
            done += 1
            if progress is not None:
                progress(done, len(files))
    finally:
        stop.set()  # also when progress raises or the caller is interrupted
        for thread in threads:
            thread.join()
    if failure is not None:
        error, file = failure
        raised = _stored_before(error, file, [answer["ID"] for answer in answers])
        raise raised from (None if raised is error else error)
    return answers, errors


def _stored_before(error, path, ids):
    """The error to raise for a batch upload that failed at ``path`` after storing ``ids``.

    A new error, the caught one untouched: a ``BadFileFormat`` names the file, an error
    declaring ``instances_ids`` carries ``ids``; an ``OSError`` reading the file is copied
    (same class, ``filename`` = ``path``) with ``.path`` and ``.instances_ids``.
    """
    if isinstance(error, BadFileFormat):
        return _with_path(error, path, instances_ids=ids)
    if isinstance(error, OrthancError):
        if "instances_ids" not in _fields(error):
            return error
        return _restated(error, str(error), instances_ids=ids)
    if not isinstance(error, OSError):
        return error
    copy = type(error)(error.errno, error.strerror, path)
    copy.path, copy.instances_ids = path, ids
    return copy


_STOW_BATCH_FILES = 100
_STOW_BATCH_BYTES = 32 << 20
_STORED_SOPS, _FAILED_SOPS, _SOP_UID = "00081199", "00081198", "00081155"  # STOW-RS answer


def upload_files_dicom_web(conn: Connection, paths: Iterable[str | os.PathLike[str]], *,
                           root: str = "/dicom-web", study_uid: str | None = None,
                           ignore_errors: bool = False) -> dict[str, Any]:
    """Store DICOM files through the DICOMweb plugin (STOW-RS); return its answer.

    Orthanc: POST {root}/studies (or {root}/studies/{study_uid}: a file of another study is
    refused) with ``multipart/related; type="application/dicom"``, one request per batch of
    at most 100 files or 32 MB, so memory stays flat however many ``paths`` there are (any
    iterable; one ``str`` is one file). The answer is the DICOM JSON of STOW-RS; with several
    batches, their sequences (``00081199`` stored instances, ``00081198`` failures) are
    concatenated.

    Every batch is sent, whatever happened to the previous ones. When the plugin could not
    store some files (it stores the others of their batch and answers 400 or 409), the call
    raises ``StowFailed`` once all batches were sent, carrying ``.answer`` (merged) and
    ``.paths`` (the files not stored: those whose SOP instance UID is not in the stored
    sequence; a file without a DICOM meta header counts as not stored when its batch had a
    failure). With ``ignore_errors=True`` the merged answer is returned instead. Errors that
    are not a STOW-RS answer (no plugin, wrong credentials) are raised at once.
    """
    if isinstance(paths, (str, bytes, os.PathLike)):
        paths = [paths]
    route = root.rstrip("/") + "/studies"
    if study_uid is not None:
        route += "/" + _segment(study_uid, "study UID")
    answers, failed, sent = [], [], 0
    for batch in _stow_batches(paths):
        answer, refused = _stow(conn, route, batch)
        answers.append(answer)
        failed.extend(refused)
        sent += len(batch)
    merged = _merge_stow_answers(answers)
    if failed and not ignore_errors:
        shown = ", ".join(os.fspath(path) for path in failed[:3])
        raise StowFailed(
            f"POST {conn.url}{route}: {len(failed)} of {sent} files not stored ({shown}"
            f"{', ...' if len(failed) > 3 else ''}); see .paths and .answer "
            f"({_FAILED_SOPS}, FailedSOPSequence)", answer=merged, paths=failed)
    return merged


def _stow_batches(paths):
    """Yield lists of ``(path, bytes)`` within the STOW-RS batch limits, reading lazily."""
    batch, size = [], 0
    for path in paths:
        with open(path, "rb") as f:
            data = f.read()
        if batch and (len(batch) >= _STOW_BATCH_FILES or size + len(data) > _STOW_BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append((path, data))
        size += len(data)
    if batch:
        yield batch


def _stow(conn, route, batch):
    """Send one STOW-RS batch; return its answer and the paths of the files not stored."""
    boundary = os.urandom(16).hex()
    part = f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
    body = b"".join(part + data + b"\r\n" for _, data in batch) \
        + f"--{boundary}--\r\n".encode()
    content_type = f'multipart/related; type="application/dicom"; boundary={boundary}'
    try:
        return _post(conn, route, body=body, timeout=_ARCHIVE_TIMEOUT,
                     headers={"Content-Type": content_type,
                              "Accept": "application/dicom+json"}), []
    except HttpError as exc:
        answer = exc.orthanc
        if not (isinstance(answer, dict) and (_STORED_SOPS in answer or _FAILED_SOPS in answer)):
            raise
    stored = {uid for item in answer.get(_STORED_SOPS, {}).get("Value", [])
              for uid in item.get(_SOP_UID, {}).get("Value", [])}
    return answer, [path for path, data in batch if _meta_sop_instance_uid(data) not in stored]


_LONG_VRS = frozenset(vr.encode() for vr in
                      "OB OD OF OL OV OW SQ SV UC UN UR UT UV".split())  # 4-byte lengths


def _meta_sop_instance_uid(data):
    """Read MediaStorageSOPInstanceUID (0002,0003) from a DICOM file's meta header, or None.

    The meta header follows the 128-byte preamble and ``DICM``, always in explicit VR little
    endian.

    >>> meta = b"\\2\\0\\3\\0UI\\6\\0" + b"1.2.3\\0"
    >>> _meta_sop_instance_uid(bytes(128) + b"DICM" + meta), _meta_sop_instance_uid(b"text")
    ('1.2.3', None)
    """
    import struct

    if data[128:132] != b"DICM":
        return None
    offset = 132
    while offset + 8 <= len(data):
        group, element = struct.unpack_from("<HH", data, offset)
        if group != 2:
            return None
        vr = data[offset + 4:offset + 6]
        if vr in _LONG_VRS:
            (length,) = struct.unpack_from("<I", data, offset + 8)
            offset += 12
        else:
            (length,) = struct.unpack_from("<H", data, offset + 6)
            offset += 8
        if element == 3:
            return data[offset:offset + length].rstrip(b"\0 ").decode("ascii", "replace")
        offset += length
    return None


def _merge_stow_answers(answers):
    """Merge STOW-RS answers: sequences concatenated, other attributes from the first.

    >>> _merge_stow_answers([{"00081199": {"vr": "SQ", "Value": [1]}},
    ...                      {"00081199": {"vr": "SQ", "Value": [2]}}])
    {'00081199': {'vr': 'SQ', 'Value': [1, 2]}}
    """
    merged = {}
    for answer in answers:
        for tag, element in (answer or {}).items():
            if tag not in merged:
                merged[tag] = dict(element)
            elif element.get("vr") == "SQ":
                merged[tag]["Value"] = merged[tag].get("Value", []) + element.get("Value", [])
    return merged


class UploadDetails(NamedTuple):
    """What ``upload_folder_details`` stored: ``study_uids`` and ``studies_ids`` (the same
    studies, in the same order) and ``errors`` as ``(path, reason)``."""
    study_uids: list
    studies_ids: list
    errors: list


def upload_folder_details(conn: Connection, path: str | os.PathLike[str], unzip: bool = False, *,
                          workers: int | None = None,
                          progress: Callable[[int, int | None], object] | None = None,
                          skip_extensions: Iterable[str] = ()) -> UploadDetails:
    """Store every file under ``path`` and return the studies they belong to.

    Files are sent as by ``upload_folder(..., ignore_errors=True)``: refused or unreadable
    files are listed in ``errors``. With ``unzip``, each ``.zip`` file is extracted here and
    its members sent one by one (an error names ``archive.zip/member``); without it a ZIP is
    sent whole and Orthanc stores the DICOM files inside. The studies come from Orthanc's
    answers (``ParentStudy``): one more request per study for its StudyInstanceUID, none per
    instance. ``skip_extensions`` as in ``upload_folder`` (files of the folder, not ZIP members).
    Orthanc: POST /instances per file, GET /studies/{id} per study.
    """
    import tempfile

    files, unreadable = _folder_files(path, skip_extensions)
    with tempfile.TemporaryDirectory(prefix="orthanc_fn-unzip-") as scratch:
        names, unzip_errors = {}, []
        if unzip:
            files, names, unzip_errors = _unzip_files(files, scratch)
        answers, errors = _upload_files(conn, files, unreadable, True, workers, progress, None)
    errors = unzip_errors + [(names.get(file, file), reason) for file, reason in errors]
    studies = list(dict.fromkeys(answer["ParentStudy"] for answer in answers))
    uids = [get_info(conn, STUDIES, study_id)["MainDicomTags"]["StudyInstanceUID"]
            for study_id in studies]
    return UploadDetails(uids, studies, errors)


def _unzip_files(files, folder):
    """Extract every ``.zip`` of ``files`` under ``folder``; return the new file list, the
    extracted path -> ``zip/member`` names, and ``(path, reason)`` for unreadable ZIPs."""
    import zipfile

    kept, names, errors = [], {}, []
    for number, file in enumerate(files):
        if not file.lower().endswith(".zip"):
            kept.append(file)
            continue
        try:
            with zipfile.ZipFile(file) as archive:
                for member in archive.infolist():
                    if not member.is_dir():  # extract() keeps members inside the folder
                        extracted = archive.extract(member, os.path.join(folder, str(number)))
                        kept.append(extracted)
                        names[extracted] = f"{file}/{member.filename}"
        except (zipfile.BadZipFile, OSError) as exc:
            errors.append((file, f"not a readable ZIP file: {exc}"))
    return kept, names, errors


# ==== Download ====

def get_file(conn: Connection, instance_id: str, *, transcode: str | None = None) -> bytes:
    """Return the DICOM file of an instance as bytes.

    ``transcode``: a transfer syntax UID (``"1.2.840.10008.1.2.1"`` explicit little endian,
    ``"1.2.840.10008.1.2.4.70"`` lossless JPEG...): the file re-encoded by Orthanc, nothing
    stored (JPEG 2000 needs the GDCM plugin). Orthanc: GET /instances/{id}/file
    (``?transcode=`` from 1.12.2; on older servers POST /instances/{id}/modify with
    ``Transcode`` and the UIDs kept, which answers the file without storing it).
    """
    method, path, options = _file_route(conn, instance_id, transcode)
    return _request(conn, method, path, raw=True, **options)


def _file_route(conn, instance_id, transcode, has_query=None):
    """``(method, path, options)`` of the request for an instance's file, maybe re-encoded.

    ``has_query``: whether the server has ``?transcode=`` (asked when None).
    """
    path = f"/instances/{_segment(instance_id)}"
    if transcode is None:
        return "GET", path + "/file", {}
    if has_query is None:
        has_query = get_version(conn) >= FEATURES["transcode_file"]
    if has_query:
        return "GET", path + "/file", {"query": {"transcode": str(transcode)}}
    keep = ["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"]
    return "POST", path + "/modify", {
        "json_body": {"Transcode": str(transcode), "Keep": keep, "Force": True}}


def _save(conn, method, path, dest, progress=None, *, zip_file=False, **options):
    """Stream the answer of one request into the file ``dest`` and return ``dest``.

    The body goes to ``dest + '.part'``, renamed when complete and removed on any failure,
    so ``dest`` is never left half-written. ``progress(done, total)`` counts bytes; ``total``
    is None when Orthanc does not announce a length. Orthanc sends archives with neither a
    length nor chunks, until it closes the connection: with ``zip_file``, a ZIP without its
    final directory means the server stopped early, and raises ``OrthancConnectionError``.
    """
    dest = os.fspath(dest)
    partial = dest + ".part"
    url = conn.url + path
    response = _request(conn, method, path, stream=True, **options)
    try:
        length = response.headers.get("Content-Length")
        total = int(length) if length else None
        done = 0
        with open(partial, "wb") as f:
            for chunk in _body_chunks(response, method, url):
                f.write(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
        if (total is not None and done != total) or (zip_file and not _is_whole_zip(partial)):
            raise OrthancConnectionError(
                f"{method} {url}: the answer stopped after {done} bytes"
                + (f" of {total}" if total is not None else ", before the end of the ZIP"),
                method=method, url=url)
        os.replace(partial, dest)
    except BaseException:
        response.close()  # never hand a half-read connection back to the pool
        if os.path.exists(partial):
            os.remove(partial)
        raise
    finally:
        response.release_conn()
    return dest


def _is_whole_zip(path):
    """Tell whether the file is a ZIP with its central directory (written last)."""
    import zipfile
    try:
        with zipfile.ZipFile(path):
            return True
    except zipfile.BadZipFile:
        return False


def download_file(conn: Connection, instance_id: str, path: str | os.PathLike[str], *,
                  progress: Callable[[int, int | None], object] | None = None,
                  transcode: str | None = None) -> str:
    """Save the DICOM file of an instance to ``path``, streamed; return ``path``.

    ``transcode`` as in ``get_file``. Orthanc: GET /instances/{id}/file. A failed download
    leaves no partial file.
    """
    method, route, options = _file_route(conn, instance_id, transcode)
    return _save(conn, method, route, path, progress, **options)


def download_archive(conn: Connection, level: str, orthanc_id: str, path: str | os.PathLike[str],
                     progress: Callable[[int, int | None], object] | None = None, *,
                     transcode: str | None = None) -> str:
    """Save the ZIP of a resource to ``path``, streamed in constant memory; return ``path``.

    Orthanc: GET /{level}/{id}/archive (an instance: POST /tools/create-archive).
    ``progress(done_bytes, total_bytes_or_None)``. A failed download leaves no partial file.
    ``transcode``: every file of the ZIP re-encoded to this transfer syntax (see
    ``get_file``), nothing stored.
    """
    return _save_zip(conn, "archive", level, orthanc_id, path, progress, transcode)


def _save_zip(conn, kind, level, orthanc_id, path, progress, transcode):
    """Stream a resource's ``archive`` or ``media`` ZIP to ``path`` (see ``_save``)."""
    level = _level(level)
    if level == INSTANCES:
        return _save_zip_of(conn, kind, [_segment(orthanc_id)], path, progress, transcode)
    query = None if transcode is None else {"transcode": str(transcode)}
    return _save(conn, "GET", f"/{level}/{_segment(orthanc_id)}/{kind}", path, progress,
                 query=query, timeout=_ARCHIVE_TIMEOUT, zip_file=True)


def _save_zip_of(conn, kind, orthanc_ids, path, progress, transcode, timeout=_ARCHIVE_TIMEOUT):
    """Stream the ``archive`` or ``media`` ZIP of resources of any levels to ``path``.

    Orthanc: POST /tools/create-{kind} (synchronous, streamed since 1.9.4).
    """
    body = {"Resources": list(orthanc_ids), "Synchronous": True}
    if transcode is not None:
        body["Transcode"] = str(transcode)
    return _save(conn, "POST", f"/tools/create-{kind}", path, progress, timeout=timeout,
                 zip_file=True, json_body=body)


_DOWNLOAD_WORKERS = 8  # parallel downloads over the shared pool (32 sockets)


def download_instances(conn: Connection, orthanc_ids: str | Iterable[str],
                       folder: str | os.PathLike[str], *, workers: int | None = None,
                       transcode: str | None = None) -> list[tuple[str, str]]:
    """Save each instance as ``folder/{id}.dcm``, in parallel; return ``[(id, path)]``.

    ``folder`` is created if needed. ``workers`` parallel downloads (default 8), each
    streamed like ``download_file``; the first error is raised once the downloads in flight
    end, and no partial file is left. ``transcode`` as in ``get_file`` (the server's version
    is asked once). Orthanc: GET /instances/{id}/file, one per instance.
    """
    from concurrent.futures import ThreadPoolExecutor

    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    ids = _as_list(orthanc_ids)
    paths = [os.path.join(folder, _segment(orthanc_id) + ".dcm") for orthanc_id in ids]
    has_query = transcode is not None and get_version(conn) >= FEATURES["transcode_file"]

    def save(orthanc_id, path):
        method, route, options = _file_route(conn, orthanc_id, transcode, has_query)
        return _save(conn, method, route, path, **options)

    with ThreadPoolExecutor(max(1, int(workers or _DOWNLOAD_WORKERS)),
                            thread_name_prefix="orthanc_fn-download") as pool:
        saved = list(pool.map(save, ids, paths))
    return list(zip(ids, saved))


def download_media(conn: Connection, level: str, orthanc_id: str, path: str | os.PathLike[str],
                   progress: Callable[[int, int | None], object] | None = None, *,
                   transcode: str | None = None) -> str:
    """Save a resource as a ZIP with a DICOMDIR (DICOM media), streamed; return ``path``.

    Orthanc: GET /{level}/{id}/media (an instance: POST /tools/create-media). Progress,
    partial files and ``transcode`` as in ``download_archive``.
    """
    return _save_zip(conn, "media", level, orthanc_id, path, progress, transcode)


# ==== Find and statistics ====

class DailyCount(NamedTuple):
    """One day of ``get_daily_stats``: ``date`` (a ``datetime.date``) and ``count``."""
    date: datetime.date
    count: int  # type: ignore[assignment]  # the API names it so (it hides tuple.count)


_LABELS_CONSTRAINTS = ("All", "Any", "None")


def lookup(conn: Connection, level: str, dicom_id: str) -> str | None:
    """Return the Orthanc id of the resource at ``level`` with this DICOM id, or None.

    ``dicom_id`` is a PatientID, StudyInstanceUID, SeriesInstanceUID or SOPInstanceUID.
    Raises ``TooManyResourcesFound`` when several resources of ``level`` match (e.g. one
    PatientID shared by two patients whose other tags differ). Orthanc: POST /tools/lookup.
    """
    wanted = _ORTHANC_LEVEL[_level(level)]
    answer = _post(conn, "/tools/lookup", body=str(dicom_id).encode(),
                   headers={"Content-Type": "text/plain"})
    ids = [item["ID"] for item in answer if item.get("Type") == wanted]
    if len(ids) > 1:
        raise TooManyResourcesFound(
            f"{len(ids)} {_level(level)} of {conn.url} have the DICOM id {dicom_id!r}: {ids}",
            ids=ids)
    return ids[0] if ids else None


def _order_by(keys):
    """Orthanc's ``OrderBy`` list from keywords, ``gggg,eeee`` tags (``-``: descending) or
    Orthanc's own dicts (copied).

    >>> _order_by(["-StudyDate", "0008,0030"])  # doctest: +NORMALIZE_WHITESPACE
    [{'Type': 'DicomTag', 'Key': 'StudyDate', 'Direction': 'DESC'},
     {'Type': 'DicomTag', 'Key': '0008,0030', 'Direction': 'ASC'}]
    """
    order = []
    for key in [keys] if isinstance(keys, (str, Mapping)) else keys:
        if isinstance(key, Mapping):
            order.append(dict(key))
        elif isinstance(key, str) and key.lstrip("-"):
            order.append({"Type": "DicomTag", "Key": key.lstrip("-"),
                          "Direction": "DESC" if key.startswith("-") else "ASC"})
        else:
            raise OrthancValueError(f"invalid order_by key {key!r}: use a DICOM keyword, "
                                    "'gggg,eeee', '-' before either to sort descending, or "
                                    "a dict {'Type', 'Key', 'Direction'}")
    return order


def _find_body(level, query, *, expand=True, case_sensitive=True, labels=None,
               labels_constraint="All", requested_tags=None, order_by=None,
               response_content=None, parent_patient=None, parent_study=None,
               parent_series=None, metadata_query=None):
    """Build a /tools/find body and the features it needs (for ``_require``: an option an
    older server would silently ignore must be refused, not sent)."""
    if query is not None and not isinstance(query, Mapping):
        raise OrthancValueError(f"find query must be a dict of DICOM keywords to patterns, "
                                f"got {query!r}")
    if labels_constraint not in _LABELS_CONSTRAINTS:
        raise OrthancValueError(f"labels_constraint must be one of {_LABELS_CONSTRAINTS}, "
                                f"got {labels_constraint!r}")
    body = {"Level": _ORTHANC_LEVEL[_level(level)], "Query": dict(query or {}),
            "Expand": bool(expand), "CaseSensitive": bool(case_sensitive)}
    needs = []
    if labels is not None:
        body["Labels"] = _as_list(labels)
        body["LabelsConstraint"] = labels_constraint
        # No label with "None" means "unlabelled" since 1.12.11; older servers match everything.
        unlabelled = not body["Labels"] and labels_constraint == "None"
        needs.append("find_unlabelled" if unlabelled else "labels")
    if requested_tags is not None:
        body["RequestedTags"] = _as_list(requested_tags)
        needs.append("requested_tags")
    extended = {"OrderBy": (_order_by, order_by), "ResponseContent": (_as_list, response_content),
                "ParentPatient": (str, parent_patient), "ParentStudy": (str, parent_study),
                "ParentSeries": (str, parent_series), "MetadataQuery": (dict, metadata_query)}
    for key, (convert, value) in extended.items():
        if value is not None:
            body[key] = convert(value)
            needs.append("extended_find")
    return body, list(dict.fromkeys(needs))  # each feature checked once


def find(conn: Connection, level: str, query: Mapping[str, Any], *, expand: bool = True,
         limit: int | None = None, since: int | None = None, case_sensitive: bool = True,
         labels: str | Iterable[str] | None = None, labels_constraint: str = "All",
         requested_tags: str | Iterable[str] | None = None,
         order_by: str | Iterable[str] | None = None,
         response_content: str | Iterable[str] | None = None, parent_patient: str | None = None,
         parent_study: str | None = None, parent_series: str | None = None,
         metadata_query: Mapping[str, str] | None = None) -> list[Any]:
    """Find the resources of ``level`` whose tags match ``query`` (Orthanc's /tools/find).

    ``query`` maps DICOM keywords to Orthanc's patterns (``"DOE*"``, ``"20260101-20261231"``,
    ``"CT\\\\MR"``); lower levels accept the tags of their parents (``StudyDate`` for series).
    Returns Orthanc's expanded dicts, or ids with ``expand=False``. ``limit`` and ``since``
    page the answer (see ``iter_find``); ``case_sensitive`` applies to every pattern with
    letters (checked on 1.10.1, 1.12.7 and 1.13.0: StudyDescription too, not only names).
    ``labels`` (a label or a list) with ``labels_constraint`` ``'All'``, ``'Any'`` or
    ``'None'`` filters by label (Orthanc >= 1.12.0; ``labels=[]`` with ``'None'``: the
    resources without any label, Orthanc >= 1.12.11); ``requested_tags`` adds tags to each
    expanded answer in ``RequestedTags`` (Orthanc >= 1.11.0).

    Orthanc >= 1.12.5 with a database that has the extended find (``Capabilities``):
    ``order_by`` sorts (keys in order, each a DICOM keyword or ``gggg,eeee``, ``"-StudyDate"``
    descending, or Orthanc's own ``{"Type": "Metadata", "Key": ..., "Direction": ...}``);
    ``response_content`` is Orthanc's ``ResponseContent`` list (``["MainDicomTags",
    "Parent"]``: only ``ID``, ``Type`` and these come back, whatever ``expand``);
    ``parent_patient``, ``parent_study``, ``parent_series`` restrict the search to the
    descendants of one Orthanc id; ``metadata_query`` maps metadata names to patterns.
    On an older server each of these options raises ``UnsupportedByServer`` before any
    request rather than being ignored (which would match everything). A server with
    ``LimitFindResults`` (``LimitFindInstances``) set cuts the answer there, silently:
    ``iter_find`` gets past it on 1.12.5 and newer.
    Orthanc: POST /tools/find.

    See also: ``iter_find`` (every match, paged), ``count``.
    """
    body, needs = _find_body(level, query, expand=expand, case_sensitive=case_sensitive,
                             labels=labels, labels_constraint=labels_constraint,
                             requested_tags=requested_tags, order_by=order_by,
                             response_content=response_content, parent_patient=parent_patient,
                             parent_study=parent_study, parent_series=parent_series,
                             metadata_query=metadata_query)
    for feature in needs:
        _require(conn, feature)
    if limit is not None:
        body["Limit"] = int(limit)
    if since is not None:
        body["Since"] = int(since)
    return _post(conn, "/tools/find", body)


def _case_matters(body):
    """Whether a case-sensitive body (Orthanc's default) could answer otherwise
    case-insensitively: only a pattern with a cased letter can (dates, numbers and UIDs
    have none)."""
    return body.get("CaseSensitive", True) and any(
        str(value).lower() != str(value).upper() for value in body["Query"].values())


def _two_in_flight(calls):
    """Yield the answer of each zero-argument call of ``calls``, in order: the first made
    here (a listing of one page makes one request and no thread), then in threads, two
    running while the caller waits and the next one while it reads an answer. When the
    caller stops, the call in flight is awaited (or cancelled if not started), unread."""
    calls = iter(calls)
    first = next(calls, None)
    if first is None:
        return
    yield first()
    from concurrent.futures import ThreadPoolExecutor
    pool = ThreadPoolExecutor(2, thread_name_prefix="orthanc_fn-find")
    try:
        pending = [pool.submit(call) for call in itertools.islice(calls, 2)]
        while pending:
            yield pending.pop(0).result()
            pending.extend(pool.submit(call) for call in itertools.islice(calls, 1))
    finally:
        pool.shutdown(cancel_futures=True)


def _find_pages(conn, body, page_size, keep=None):
    """Yield every answer of ``body``, one /tools/find per ``page_size`` with Limit/Since,
    two pages in flight once the first came back full (each 1.13.0 page sorts every match
    first; two at once take about 15% less time there); with ``keep`` (a set of ids as
    bytes), only the answers whose id is in it. The page asked past the end goes unread."""
    pages = (functools.partial(_post, conn, "/tools/find", dict(body, Limit=page_size,
                                                                Since=since))
             for since in itertools.count(0, page_size))
    for answers in _two_in_flight(pages):
        yield from (answers if keep is None else
                    (answer for answer in answers
                     if (answer if isinstance(answer, str) else answer["ID"]).encode() in keep))
        if len(answers) < page_size:
            return


def _light(body, **keys):
    """``body`` answering ``keys`` instead of its expanded resources (its filters and order)."""
    light = {key: value for key, value in body.items()
             if key not in ("ResponseContent", "RequestedTags")}
    return dict(light, Expand=False, **keys)


def _unordered(body):
    """``body`` without its ``OrderBy``: for answers whose order does not matter (a set, a
    count, a list put back in order after), which saves the server the sort."""
    return {key: value for key, value in body.items() if key != "OrderBy"}


def _matching_ids(conn, body):
    """How many ids match ``body``, and a generator of them as bytes, in its order, all from
    one light request. The JSON list of Orthanc ids (hex digits and dashes) is read in
    place: these bytes take half the memory of a list of str (100,000 ids: 4.9 MB instead of
    10 MB, plus json's copy), and a set of them 1.6 MB less than one of str."""
    raw = _post(conn, "/tools/find", _light(body), raw=True, timeout=_BULK_TIMEOUT)
    return raw.count(b'"') // 2, (match.group(1) for match in re.finditer(rb'"([^"]*)"', raw))


def _counted(body):
    """``body`` as /tools/count-resources takes it: its filters alone (that route refuses
    ``"CaseSensitive": true`` and has no use for the order or the content)."""
    return {key: value for key, value in body.items() if key not in (
        "Expand", "CaseSensitive", "OrderBy", "ResponseContent", "RequestedTags")}


def _count_if_allowed(conn, body):
    """The /tools/count-resources count of ``body``'s filters, or None where the server
    refuses that route while it answers /tools/find (403 from an HTTP filter of a plugin,
    404 from a proxy's list of routes): a cut answer then cannot be told, as on an older
    Orthanc, and the listing goes on as it can."""
    try:
        return _post(conn, "/tools/count-resources", _counted(body))["Count"]
    except (NotAuthorized, NotFound) as exc:
        if exc.status in (403, 404):
            return None
        raise


def _find_cap(conn, body, listed, total):
    """None if one /tools/find answers every match of ``body``; else the most matches this
    server answers to one (its ``LimitFindResults``, ``LimitFindInstances`` for instances:
    1.12.7 and 1.13.0 cut each answer there, silently, ``Since`` pages included).
    ``listed``: how many a light request of ``body`` answered, or None; ``total``: how many
    /tools/count-resources counted (None: no count, no cap to tell). Only when it exceeds
    ``listed``, one light request asking case-insensitively for one more than ``listed``,
    which tells a cap from matches that came meanwhile. It asks for all of them when
    ``listed`` is None, and for a case-sensitive pattern with letters: Orthanc cuts the
    case-insensitive matches and keeps the case after (with a cap of 5, a pattern that 6
    of 12 studies match in their case answered 3 on 1.13.0)."""
    if not total or (listed is not None and listed >= total):
        return None
    asked = total if listed is None or _case_matters(body) else listed + 1
    answered = _matching_ids(conn, dict(_unordered(body), CaseSensitive=False, Limit=asked))[0]
    return answered if answered < asked else None


# The DICOM identifiers of one /tools/find of the identified listing. Longer lists cost more
# than in proportion: 1,000 studies of 100,000 on 1.13.0 take 106 ms in lists of 50, 114 ms
# in lists of 100, 157 ms in lists of 200 and about 200 ms in one list of 1,000.
_IDENTIFIERS_PER_FIND = 50


def _batched(items, tag, size):
    """Light answers (``{"ID": ..., "RequestedTags": {tag: ...}}``) in batches of at most
    ``size``: each a pair of str, their Orthanc ids joined by commas and their DICOM
    identifiers (``tag``, the level's ``_LEVEL_UID``) joined by backslashes, a list
    /tools/find matches exactly. None as soon as an identifier has no place in a list
    (empty, as a patient's without PatientID, or holding a backslash)."""
    batches, ids, values = [], [], []
    for item in items:
        value = item["RequestedTags"].get(tag)
        if not value or "\\" in value:
            return None
        ids.append(item["ID"])
        values.append(value)
        if len(ids) == size:
            batches.append((",".join(ids), "\\".join(values)))
            ids, values = [], []
    return batches + [(",".join(ids), "\\".join(values))] if ids else batches


def _identified(body, tag):
    """``body`` answering, for each match, its id and its identifier ``tag`` alone."""
    return _light(body, ResponseContent=["RequestedTags"], RequestedTags=[tag])


def _identified_batches(conn, body, tag, size):
    """The matches of ``body`` in its order, as ``_batched`` of ``size``, from one light
    request read as it comes: 100,000 studies hold about 9 MB here, not the 21 MB of its
    JSON. None as soon as an identifier has no place in a list."""
    url = conn.url + "/tools/find"
    response = _post(conn, "/tools/find", _identified(body, tag), stream=True,
                     timeout=_BULK_TIMEOUT)
    try:
        batches = _batched(_json_items(response, "POST", url), tag, size)
        if batches is None:
            response.close()  # unread: never handed back to the pool
        return batches
    except BaseException:
        response.close()
        raise
    finally:
        response.release_conn()


def _find_identified(conn, body, tag, batches, filtered=False):
    """Yield every answer of ``body`` for these batches (``_batched`` of ``tag``), in their
    order, two in flight: one /tools/find each, by its identifier list alone. The batch's
    ids are known to match, so its request drops the filters (a case-sensitive "P*" next
    to the list took 160 ms a batch on 1.13.0 at 100,000 studies, the list alone 5 ms) and
    the ``OrderBy``; another resource with the same identifier (a StudyInstanceUID under
    two patients) is left out, as is a match deleted meanwhile. ``filtered``: the batches
    are of candidates, and each request keeps the filters of ``body`` beside its list."""
    if filtered:
        shown = _unordered(body)
    else:
        shown = {key: body[key] for key in ("Level", "Expand", "ResponseContent",
                                             "RequestedTags") if key in body}
        shown.update(Query={}, CaseSensitive=True)

    def find_batch(ids, values):
        answers = _post(conn, "/tools/find", dict(shown, Query=dict(shown["Query"],
                                                                    **{tag: values})))
        by_id = {answer if isinstance(answer, str) else answer["ID"]: answer
                 for answer in answers}
        return [by_id[orthanc_id] for orthanc_id in ids.split(",") if orthanc_id in by_id]

    for answers in _two_in_flight(functools.partial(find_batch, ids, values)
                                  for ids, values in batches):
        yield from answers


def _find_cased_past_cap(conn, body, tag, page_size, cap):
    """Yield every answer of ``body``, a case-sensitive pattern with letters, on a server
    whose ``cap`` cut its matches (``_find_cap``): Orthanc refuses ``Since`` for it, and
    cuts the case-insensitive matches before keeping the case. So the case-insensitive
    matches' ids and identifiers come in ``Since`` pages within the cap, and each list of
    them is asked with the filters of ``body``: Orthanc keeps the case among at most
    ``cap`` candidates. ``OrthancError`` when no list can do it: an identifier without a
    place in a list, or ``tag`` itself a pattern with letters in the query."""
    candidates = dict(body, CaseSensitive=False)
    own = {tag: body["Query"][tag]} if tag in body["Query"] else {}
    batches = None if _case_matters(dict(body, Query=own)) else _batched(
        _find_pages(conn, _identified(candidates, tag), cap), tag,
        min(page_size, _IDENTIFIERS_PER_FIND, cap))
    if batches is None:
        raise OrthancError(
            f"{conn.url} answers at most {cap} matches to one /tools/find (its "
            "LimitFindResults or LimitFindInstances) and refuses Since pages for a "
            "case-sensitive pattern with letters, and these matches cannot be asked by "
            f"lists of {tag} either: ask with case_sensitive=False, or raise that limit")
    return _find_identified(conn, body, tag, batches, filtered=True)


def _find_extended(conn, body, tag, page_size):
    """``iter_find`` on a server with the extended find (see there), ``tag`` the level's
    DICOM identifier: ids only from one light request; else identifier lists or, when an
    identifier has no place in a list, ``Since`` pages. A server whose cap (``_find_cap``)
    cut the light request is paged with ``Since`` within it (``_find_cased_past_cap`` for
    a case-sensitive pattern with letters). The count that tells it runs beside the light
    request (at 100,000 studies on 1.13.0 it takes 117 ms, the light request of ids
    433 ms)."""
    from concurrent.futures import ThreadPoolExecutor
    ids_only = not body["Expand"] and "ResponseContent" not in body
    batches = None
    with ThreadPoolExecutor(1, thread_name_prefix="orthanc_fn-count") as pool:
        total = pool.submit(_count_if_allowed, conn, body)
        if ids_only:
            listed, ids = _matching_ids(conn, body)
        else:
            batches = _identified_batches(conn, body, tag,
                                          min(page_size, _IDENTIFIERS_PER_FIND))
            listed = None if batches is None else sum(joined.count(",") + 1
                                                      for joined, _ in batches)
        cap = None if listed == 0 else _find_cap(conn, body, listed, total.result())
    if cap is not None and _case_matters(body):
        yield from _find_cased_past_cap(conn, body, tag, page_size, cap)
    elif cap is not None:
        yield from _find_pages(conn, body, min(page_size, cap))
    elif ids_only:
        yield from (orthanc_id.decode() for orthanc_id in ids)
    elif batches is not None:
        yield from _find_identified(conn, body, tag, batches)
    else:
        # 1.12.5+ refuse Since for a case-sensitive pattern with letters (checked on 1.12.7 and
        # 1.13.0): its ids, from one light request (a set: no OrderBy to sort them by), then
        # filter the case-insensitive pages
        keep = set(_matching_ids(conn, _unordered(body))[1]) if _case_matters(body) else None
        yield from _find_pages(conn, dict(body, CaseSensitive=False), page_size, keep)


def _find_by_ids(conn, body, page_size):
    """Yield every answer of ``body``: all the ids in one light request, then expanded
    ``page_size`` at a time with /tools/bulk-content (the same dicts as /tools/find's), two
    batches in flight."""
    ids = (orthanc_id.decode() for orthanc_id in _matching_ids(conn, body)[1])
    if not body["Expand"]:
        yield from ids
        return
    batches = iter(lambda: list(itertools.islice(ids, page_size)), [])
    for expanded in _two_in_flight(functools.partial(_expand_ids, conn, batch)
                                   for batch in batches):
        yield from expanded


def _expand_ids(conn, orthanc_ids):
    """These ids expanded as /tools/find would, in this order; an id deleted meanwhile is left
    out (bulk-content skips it)."""
    expanded = {resource["ID"]: resource
                for resource in _post(conn, "/tools/bulk-content", {"Resources": orthanc_ids})}
    for resource in expanded.values():
        resource.pop("Metadata", None)  # bulk-content adds it; /tools/find does not
    return [expanded[orthanc_id] for orthanc_id in orthanc_ids if orthanc_id in expanded]


def iter_find(conn: Connection, level: str, query: Mapping[str, Any], *, page_size: int = 1000,
              **options: Any) -> Iterator[Any]:
    """Yield every match of ``find`` (same options but ``limit`` and ``since``, same dicts,
    in ``order_by`` order), never holding the whole expanded answer, here or on the server.

    - Orthanc >= 1.12.5 (extended find): ``Since`` pages cost too much there (each sorts
      every match, a ``ROW_NUMBER()`` window in Orthanc's lookup: 65 to 120 ms a page on
      1.13.0 at 100,000 studies, pages of 1,000 took 1.6x the time of one ``find``) and are
      refused for a case-sensitive pattern with letters. So one light request gives, in
      ``order_by`` order, the id and DICOM identifier (PatientID, StudyInstanceUID,
      SeriesInstanceUID or SOPInstanceUID) of each match, read as it streams and kept
      compact (about 9 MB per 100,000 studies); then each page is one /tools/find of a list
      of at most ``page_size`` (and 50) identifiers, two in flight, put back in that order:
      100,000 studies in 1.0x to 1.1x the time of one ``find`` on 1.13.0 (the README's Scale
      section). Without expansion (``expand=False``, no ``response_content``) the light
      request of ids is the whole answer. A patient without PatientID has no place in a
      list: such a listing pages with ``Since`` (a case-sensitive lettered one keeps to its
      ids, from one light request, among the case-insensitive pages).
    - Older servers, or a database without the extended find, re-run the whole lookup for
      each ``Since`` page (2 s per 1,000 studies at 100,000 on 1.10.1): there the matching
      ids come in one light request, kept as its bytes, and are expanded ``page_size`` at a
      time with ``/tools/bulk-content`` (1.1x one ``find`` at 100,000 on 1.10.1). With
      ``requested_tags`` or ``response_content``, which bulk-content cannot give, such a
      server pages with ``Since``.

    A server with ``LimitFindResults`` (``LimitFindInstances`` for instances) cuts every
    answer at that number, silently, ``find``'s too. On 1.12.5 and newer a count sent beside
    the light request tells it, and then the listing pages with ``Since`` within the limit.
    A case-sensitive pattern with letters, whose ``Since`` Orthanc refuses (and whose
    case-insensitive matches it cuts before keeping the case), then pages those within the
    limit and asks each list of their identifiers with the pattern; where no list can
    (a patient without PatientID, or a lettered PatientID pattern at the patient level) it
    raises ``OrthancError`` before any match. Older servers give no way to tell: Orthanc
    1.10.1 answers at most the limit and one more match to any /tools/find, ``Since``
    pages included, so a listing stops there; nor does a server that refuses the count
    (403 or 404) and answers the find.

    Resources added or deleted while iterating may shift ``Since`` pages; a match deleted
    between the light request and its page is left out. Orthanc: POST /tools/find,
    POST /tools/count-resources, POST /tools/bulk-content.
    """
    page_size = int(page_size)
    if page_size < 1:
        raise OrthancValueError(f"page_size must be at least 1, got {page_size}")
    body, needs = _find_body(level, query, **options)
    for feature in needs:
        _require(conn, feature)
    extended = "extended_find" in needs or _unsupported(conn, "extended_find") is None
    # bulk-content gives what Expand gives, neither RequestedTags nor a ResponseContent
    lean = "ResponseContent" not in body and not (body["Expand"] and "RequestedTags" in body)
    if extended:
        yield from _find_extended(conn, body, _LEVEL_UID[_level(level)], page_size)
    elif lean:
        yield from _find_by_ids(conn, body, page_size)
    else:
        yield from _find_pages(conn, body, page_size)


def count(conn: Connection, level: str, query: Mapping[str, Any], *, case_sensitive: bool = True,
          labels: str | Iterable[str] | None = None, labels_constraint: str = "All",
          parent_patient: str | None = None, parent_study: str | None = None,
          parent_series: str | None = None,
          metadata_query: Mapping[str, str] | None = None) -> int:
    """Count the matches of ``find`` with the same filters, in one request.

    Orthanc's /tools/count-resources refuses ``"CaseSensitive": true``: a case-sensitive
    query with a lettered pattern (``"DOE*"``, where case could matter) is counted as the
    length of ``find(..., expand=False)`` instead, beside the case-insensitive count that
    tells whether the server's ``LimitFindResults`` cut that answer (then its matches are
    counted as ``iter_find`` lists them). Needs Orthanc >= 1.12.5 with the extended find
    (``UnsupportedByServer`` otherwise, before any request).
    Orthanc: POST /tools/count-resources (1.12.5).

    See also: ``find``.
    """
    body, needs = _find_body(level, query, expand=False, case_sensitive=case_sensitive,
                             labels=labels, labels_constraint=labels_constraint,
                             parent_patient=parent_patient, parent_study=parent_study,
                             parent_series=parent_series, metadata_query=metadata_query)
    for feature in dict.fromkeys(["extended_find", *needs]):
        _require(conn, feature)
    total = _post(conn, "/tools/count-resources", _counted(body))["Count"]
    if not _case_matters(body):
        return total
    listed = len(_post(conn, "/tools/find", body))
    cap = _find_cap(conn, body, listed, total)
    if cap is None:
        return listed
    return sum(1 for _ in _find_cased_past_cap(conn, body, _LEVEL_UID[_level(level)],
                                               _IDENTIFIERS_PER_FIND, cap))


def _as_date(value):
    """Read a date, datetime, ``'YYYY-MM-DD'`` or ``'YYYYMMDD'`` (the one rule of both files).

    >>> _as_date("20260130"), _as_date("2026-01-30"), _as_date(datetime.datetime(2026, 1, 30, 9))
    (datetime.date(2026, 1, 30), datetime.date(2026, 1, 30), datetime.date(2026, 1, 30))
    >>> _as_date("30/01/2026")
    Traceback (most recent call last):
    ...
    orthanc_fn.OrthancValueError: invalid date '30/01/2026': use a datetime.date, 'YYYY-MM-DD' or 'YYYYMMDD'
    """
    if isinstance(value, datetime.datetime):
        return value.date()
    if isinstance(value, datetime.date):
        return value
    text = str(value).strip()
    try:
        if len(text) == 8 and text.isdigit():
            return datetime.date(int(text[:4]), int(text[4:6]), int(text[6:]))
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise OrthancValueError(f"invalid date {value!r}: use a datetime.date, "
                                "'YYYY-MM-DD' or 'YYYYMMDD'") from None


# get_daily_stats: the computed tag giving a study's count of each level (Orthanc 1.11+).
_STUDY_COUNT_TAGS = {SERIES: "NumberOfStudyRelatedSeries",
                     INSTANCES: "NumberOfStudyRelatedInstances"}


def get_daily_stats(conn: Connection, level: str, from_date: datetime.date | str | None = None,
                    to_date: datetime.date | str | None = None) -> list[DailyCount]:
    """Count the studies, series or instances of each day by StudyDate, zeros included.

    Days run from ``from_date`` to ``to_date`` inclusive (dates, ``'YYYY-MM-DD'`` or
    ``'YYYYMMDD'``); the default is the last 8 days ending today. Returns a list of
    ``DailyCount(date, count)``. Whatever the number of days, one find of the range's
    studies asking only their StudyDate and the computed count of the level
    (``RequestedTags``, ``ResponseContent``); Orthanc >= 1.12.5 sends just that, and there a
    count of the same studies follows, which tells whether the server's
    ``LimitFindResults`` cut the answer (then the studies come in ``Since`` pages within
    that limit). Measured by tests/bench/bench_daily.py on 1.13.0, 1,500 studies of 2
    series over 30 days: 56 ms for studies and 68 ms for instances with the count (44 and
    59 ms without it, in an earlier run), where the whole expanded studies took 97 ms and
    371 ms with their series, and a ``count`` per day 61 ms and 144 ms: per-day counting is
    not used. Orthanc 1.11 to 1.12.4 honour ``RequestedTags`` only (the expanded studies
    come with the counts: one request). Orthanc 1.10 ignores both keys and sends the
    expanded studies, which list their series; for instances it then takes a second
    request, for the expanded series (listing their instances). These older servers cannot
    tell a cut answer, and count what came.
    Orthanc: POST /tools/find with a ``StudyDate`` range, POST /tools/count-resources.
    """
    level = _level(level)
    if level == PATIENTS:
        raise OrthancValueError("daily stats count studies, series or instances, not patients")
    to_date = _as_date(to_date) if to_date is not None else datetime.date.today()
    from_date = _as_date(from_date) if from_date is not None \
        else to_date - datetime.timedelta(days=7)
    if from_date > to_date:
        raise OrthancValueError(f"from_date {from_date} is after to_date {to_date}")
    days = [from_date + datetime.timedelta(days=n) for n in range((to_date - from_date).days + 1)]
    counts = dict.fromkeys((day.strftime("%Y%m%d") for day in days), 0)
    query = {"StudyDate": f"{from_date:%Y%m%d}-{to_date:%Y%m%d}"}
    count_tag = _STUDY_COUNT_TAGS.get(level)
    body = {"Level": "Study", "Query": query, "Expand": True,
            "ResponseContent": ["RequestedTags"],
            "RequestedTags": ["StudyDate"] + ([count_tag] if count_tag else [])}
    studies = _post(conn, "/tools/find", body)
    if studies and "MainDicomTags" not in studies[0]:  # the extended find, which can count
        cap = _find_cap(conn, body, len(studies), _count_if_allowed(conn, body))
        if cap is not None:
            studies = list(_find_pages(conn, body, cap))
    computed = all("RequestedTags" in s for s in studies)  # else an Orthanc older than 1.11
    date_of = {s["ID"]: s["RequestedTags"]["StudyDate"] if computed
               else s["MainDicomTags"].get("StudyDate") for s in studies}
    if level == STUDIES:
        items = [(date_of[s["ID"]], 1) for s in studies]
    elif computed:
        items = [(date_of[s["ID"]], int(s["RequestedTags"][count_tag] or 0)) for s in studies]
    elif level == SERIES:
        items = [(date_of[s["ID"]], len(s["Series"])) for s in studies]
    else:
        series = _post(conn, "/tools/find", {"Level": "Series", "Query": query, "Expand": True})
        items = [(date_of.get(s["ParentStudy"]), len(s["Instances"])) for s in series]
    for study_date, number in items:
        if study_date in counts:
            counts[study_date] += number
    return [DailyCount(day, counts[day.strftime("%Y%m%d")]) for day in days]


def print_daily_stats(conn: Connection, level: str, from_date: datetime.date | str | None = None,
                      to_date: datetime.date | str | None = None) -> None:
    """Print ``get_daily_stats`` as a table: one line per day, ``2026-11-26  12``."""
    stats = get_daily_stats(conn, level, from_date, to_date)
    width = max(len(str(count)) for _, count in stats)
    for day, count in stats:
        print(f"{day.isoformat()}  {count:>{width}}")


# ==== Modify and anonymize ====

# Keeping or setting one of these may give the new resource the original's ids: then Orthanc's
# KeepSource=false would delete the result too (checked on 1.10.1), so we delete ourselves.
_UID_TAGS = frozenset({"STUDYINSTANCEUID", "SERIESINSTANCEUID", "SOPINSTANCEUID",
                       "0020,000D", "0020,000E", "0008,0018"})


def _modification_body(conn, replace_tags, remove_tags, keep_tags, force, *,
                       keep_private_tags=None, transcode=None, permissive=False,
                       private_creator=None, dicom_version=None, keep_labels=False,
                       priority=None, user_data=None):
    """The JSON body of a modification or anonymization (Orthanc's own keys).

    ``keep_labels`` needs Orthanc 1.12.3 (checked here: older servers ignore it silently);
    ``priority`` and ``user_data`` go to the job (see ``_start_job``).
    """
    body = {"Replace": dict(replace_tags or {}), "Remove": _as_list(remove_tags),
            "Keep": _as_list(keep_tags), "Force": bool(force)}
    if keep_private_tags is not None:
        body["KeepPrivateTags"] = bool(keep_private_tags)
    if transcode is not None:
        body["Transcode"] = str(transcode)
    if permissive:
        body["Permissive"] = True
    if private_creator is not None:
        body["PrivateCreator"] = str(private_creator)
    if dicom_version is not None:
        body["DicomVersion"] = str(dicom_version)
    if keep_labels:
        _require(conn, "keep_labels")
        body["KeepLabels"] = True
    body.update(_job_options(conn, priority, user_data))
    return body


def _touches_uids(body):
    names = list(body["Keep"]) + list(body["Replace"])
    return any(str(name).upper().replace("-", ",") in _UID_TAGS for name in names)


def _start_modification(conn, action, level, orthanc_id, body, delete_original):
    """Start the /modify or /anonymize job; instances go through /tools/bulk-{action}."""
    level = _level(level)
    if level == INSTANCES:
        return _start_bulk(conn, action, level, [orthanc_id], body, delete_original)
    body = dict(body, KeepSource=not delete_original or _touches_uids(body))
    return _start_job(conn, f"/{level}/{_segment(orthanc_id)}/{action}", body)


def _modification(conn, action, level, orthanc_id, body, delete_original, timeout, progress):
    """Run /modify or /anonymize, wait, delete the original once the new one is stored."""
    level = _level(level)
    if level == INSTANCES:
        return _modify_instance(conn, action, orthanc_id, body, delete_original, timeout)
    ourselves = delete_original and _touches_uids(body)  # see _start_modification
    originals = set(get_children_ids(conn, level, orthanc_id, INSTANCES)) if ourselves else ()
    job = wait_job(conn, _start_modification(conn, action, level, orthanc_id, body,
                                             delete_original), timeout=timeout,
                   progress=progress)
    new_id = job["Content"]["ID"]
    if ourselves:
        _delete_originals(conn, level, orthanc_id, new_id, originals)
    return new_id


def _delete_originals(conn, level, orthanc_id, new_id, originals):
    """Delete the original of a modification that kept a UID, once its copy is stored.

    A new resource: the original goes once the new one is found. The same resource (its UID
    kept): the original instances go once as many new instances are in it; instances that
    kept their SOPInstanceUID were rewritten in place and stay.
    """
    if new_id != orthanc_id:
        get_info(conn, level, new_id)  # raises NotFound, and nothing is deleted, if missing
        delete(conn, level, orthanc_id)
        return
    copies = set(get_children_ids(conn, level, new_id, INSTANCES)) - originals
    if not copies:
        return
    if len(copies) != len(originals):
        raise OrthancError(
            f"{level} {orthanc_id} on {conn.url}: {len(copies)} modified instances stored for "
            f"{len(originals)} originals; the originals are kept")
    delete(conn, INSTANCES, sorted(originals))


def _modify_instance(conn, action, orthanc_id, body, delete_original, timeout):
    """Instances: Orthanc answers the modified file; store it, then delete the original."""
    path = f"/instances/{_segment(orthanc_id)}/{action}"
    data = _post(conn, path, body, raw=True, timeout=timeout)
    answer = _post(conn, "/instances", body=data, timeout=timeout,
                   headers={"Content-Type": "application/octet-stream"})
    new_id = answer["ID"]
    if answer.get("Status") == "AlreadyStored":
        raise AlreadyStored(f"POST {conn.url}{path}: the {action} result has the UIDs of "
                            f"instance {new_id}, which {conn.url} already stores and does not "
                            "overwrite (OverwriteInstances is false); nothing was changed",
                            instance_id=new_id)
    if delete_original and new_id != orthanc_id:
        delete(conn, INSTANCES, orthanc_id)
    return new_id


def anonymize(conn: Connection, level: str, orthanc_id: str, *,
              keep_tags: str | Iterable[str] = (), replace_tags: Mapping[str, Any] | None = None,
              remove_tags: str | Iterable[str] = (), force: bool = False,
              keep_private_tags: bool = False, delete_original: bool = False,
              timeout: float | None = None, progress: Callable[[int, int], object] | None = None,
              transcode: str | None = None, priority: int | None = None, permissive: bool = False,
              private_creator: str | None = None, dicom_version: str | None = None,
              keep_labels: bool = False, user_data: Any | None = None) -> str:
    """Anonymize a patient, study, series or instance and return the new resource's id.

    ``keep_tags`` keeps these tags' values, ``replace_tags`` maps keywords to new values,
    ``remove_tags`` removes more tags; ``force`` lets UIDs and PatientID be replaced or kept;
    ``keep_private_tags`` keeps private tags. ``delete_original`` deletes the original only
    once the anonymized copy is stored (Orthanc's ``KeepSource``). Runs as a job waited for
    ``timeout`` s (None: one hour), reporting ``progress(percent, 100)`` as ``wait_job`` does;
    an instance is anonymized in one request and the answer stored.

    More of Orthanc's options: ``transcode`` (a transfer syntax UID: the new instances are
    stored re-encoded, e.g. ``"1.2.840.10008.1.2.4.70"`` lossless JPEG), ``permissive``
    (Orthanc goes on past instances it cannot modify), ``private_creator`` (the creator of
    the private tags in ``replace_tags``), ``dicom_version`` (the anonymization profile,
    ``"2008"``, ``"2017c"``, ``"2021b"``, ``"2023b"``; Orthanc's newest by default),
    ``keep_labels`` (the new resources get the labels of the originals; Orthanc >= 1.12.3),
    ``priority`` and ``user_data`` (the job's, see ``_start_job``; user data needs Orthanc
    >= 1.12.9). Orthanc: POST /{level}/{id}/anonymize.

    Raises:
        HttpError: Orthanc refused the request (its message says why); nothing changed.
        JobFailed, OrthancTimeout: see ``wait_job``; the original is kept.
        UnsupportedByServer: ``keep_labels`` or ``user_data`` on a server too old for it.
    """
    body = _modification_body(
        conn, replace_tags, remove_tags, keep_tags, force, keep_private_tags=keep_private_tags,
        transcode=transcode, permissive=permissive, private_creator=private_creator,
        dicom_version=dicom_version, keep_labels=keep_labels, priority=priority,
        user_data=user_data)
    return _modification(conn, "anonymize", level, orthanc_id, body, delete_original, timeout,
                         progress)


def anonymize_as_job(conn: Connection, level: str, orthanc_id: str, *,
                     keep_tags: str | Iterable[str] = (),
                     replace_tags: Mapping[str, Any] | None = None,
                     remove_tags: str | Iterable[str] = (), force: bool = False,
                     keep_private_tags: bool = False, delete_original: bool = False,
                     transcode: str | None = None, priority: int | None = None,
                     permissive: bool = False, private_creator: str | None = None,
                     dicom_version: str | None = None, keep_labels: bool = False,
                     user_data: Any | None = None) -> str:
    """Start ``anonymize`` as an Orthanc job and return the job id at once.

    The finished job's ``Content['ID']`` is the new resource (for an instance, which runs
    through /tools/bulk-anonymize, ``Content['Resources']`` lists the new instance and its
    parents). With ``delete_original`` and a kept or replaced UID, the original is kept (only
    ``anonymize`` can check the result first). Options as in ``anonymize``.
    """
    body = _modification_body(
        conn, replace_tags, remove_tags, keep_tags, force, keep_private_tags=keep_private_tags,
        transcode=transcode, permissive=permissive, private_creator=private_creator,
        dicom_version=dicom_version, keep_labels=keep_labels, priority=priority,
        user_data=user_data)
    return _start_modification(conn, "anonymize", level, orthanc_id, body, delete_original)


def modify(conn: Connection, level: str, orthanc_id: str, *,
           replace_tags: Mapping[str, Any] | None = None, remove_tags: str | Iterable[str] = (),
           keep_tags: str | Iterable[str] = (), force: bool = False, delete_original: bool = True,
           timeout: float | None = None, progress: Callable[[int, int], object] | None = None,
           transcode: str | None = None, priority: int | None = None, permissive: bool = False,
           private_creator: str | None = None, keep_labels: bool = False,
           user_data: Any | None = None) -> str:
    """Modify a patient, study, series or instance and return the modified resource's id.

    Options as in ``anonymize``; ``keep_tags`` here keeps UIDs (needs ``force``). Orthanc
    gives the result new UIDs unless they are kept; keeping them all rewrites the resource in
    place (the same id comes back; instances need ``OverwriteInstances`` on the server, else
    ``AlreadyStored``). The original is deleted by default, only once the result is stored.
    ``transcode`` alone (with the UIDs kept) re-encodes a resource in place.
    Orthanc: POST /{level}/{id}/modify.
    """
    body = _modification_body(
        conn, replace_tags, remove_tags, keep_tags, force, transcode=transcode,
        permissive=permissive, private_creator=private_creator, keep_labels=keep_labels,
        priority=priority, user_data=user_data)
    return _modification(conn, "modify", level, orthanc_id, body, delete_original, timeout,
                         progress)


def modify_as_job(conn: Connection, level: str, orthanc_id: str, *,
                  replace_tags: Mapping[str, Any] | None = None,
                  remove_tags: str | Iterable[str] = (), keep_tags: str | Iterable[str] = (),
                  force: bool = False, delete_original: bool = True, transcode: str | None = None,
                  priority: int | None = None, permissive: bool = False,
                  private_creator: str | None = None, keep_labels: bool = False,
                  user_data: Any | None = None) -> str:
    """Start ``modify`` as an Orthanc job and return the job id (see ``anonymize_as_job``)."""
    body = _modification_body(
        conn, replace_tags, remove_tags, keep_tags, force, transcode=transcode,
        permissive=permissive, private_creator=private_creator, keep_labels=keep_labels,
        priority=priority, user_data=user_data)
    return _start_modification(conn, "modify", level, orthanc_id, body, delete_original)


class BulkResult(NamedTuple):
    """The resources a bulk modification created, as lists of ids per level."""
    patients: list
    studies: list
    series: list
    instances: list


def _start_bulk(conn, action, level, orthanc_ids, body, delete_original):
    """Start /tools/bulk-{action} on resources of one level; return the job id."""
    body = dict(body, Resources=_as_list(orthanc_ids), Level=_ORTHANC_LEVEL[_level(level)],
                KeepSource=not delete_original or _touches_uids(body))
    return _start_job(conn, f"/tools/bulk-{action}", body)


def _run_bulk(conn, action, level, orthanc_ids, body, delete_original, timeout):
    """Run a bulk job, wait, and return its ``BulkResult``; originals go as in ``modify``."""
    job = wait_job(conn, _start_bulk(conn, action, level, orthanc_ids, body, delete_original),
                   timeout=timeout)
    found = {name: [] for name in BulkResult._fields}
    for resource in job["Content"]["Resources"]:
        found[_level(resource["Type"])].append(resource["ID"])
    result = BulkResult(**found)
    if delete_original and _touches_uids(body):
        kept = set(getattr(result, _level(level)))
        gone = [orthanc_id for orthanc_id in _as_list(orthanc_ids) if orthanc_id not in kept]
        if gone:
            delete(conn, level, gone)
    return result


def modify_bulk(conn: Connection, level: str, orthanc_ids: str | Iterable[str], *,
                replace_tags: Mapping[str, Any] | None = None,
                remove_tags: str | Iterable[str] = (), keep_tags: str | Iterable[str] = (),
                force: bool = False, delete_original: bool = True, timeout: float | None = None,
                transcode: str | None = None, priority: int | None = None,
                permissive: bool = False, private_creator: str | None = None,
                keep_labels: bool = False, user_data: Any | None = None) -> BulkResult:
    """Modify several resources of one level in one job; return the new ids per level.

    Options as in ``modify`` (originals deleted by default, once the results are stored).
    ``timeout`` bounds the wait (None: one hour); a failed job raises ``JobFailed``.
    Orthanc: POST /tools/bulk-modify (1.9.4) as a job.
    """
    body = _modification_body(
        conn, replace_tags, remove_tags, keep_tags, force, transcode=transcode,
        permissive=permissive, private_creator=private_creator, keep_labels=keep_labels,
        priority=priority, user_data=user_data)
    return _run_bulk(conn, "modify", level, orthanc_ids, body, delete_original, timeout)


def modify_bulk_as_job(conn: Connection, level: str, orthanc_ids: str | Iterable[str], *,
                       replace_tags: Mapping[str, Any] | None = None,
                       remove_tags: str | Iterable[str] = (), keep_tags: str | Iterable[str] = (),
                       force: bool = False, delete_original: bool = True,
                       transcode: str | None = None, priority: int | None = None,
                       permissive: bool = False, private_creator: str | None = None,
                       keep_labels: bool = False, user_data: Any | None = None) -> str:
    """Start ``modify_bulk`` and return the job id; its ``Content['Resources']`` lists the
    new resources (``{'Type', 'ID', 'Path'}``)."""
    body = _modification_body(
        conn, replace_tags, remove_tags, keep_tags, force, transcode=transcode,
        permissive=permissive, private_creator=private_creator, keep_labels=keep_labels,
        priority=priority, user_data=user_data)
    return _start_bulk(conn, "modify", level, orthanc_ids, body, delete_original)


def anonymize_bulk(conn: Connection, level: str, orthanc_ids: str | Iterable[str], *,
                   keep_tags: str | Iterable[str] = (),
                   replace_tags: Mapping[str, Any] | None = None,
                   remove_tags: str | Iterable[str] = (), force: bool = False,
                   keep_private_tags: bool = False, delete_original: bool = False,
                   timeout: float | None = None, transcode: str | None = None,
                   priority: int | None = None, permissive: bool = False,
                   private_creator: str | None = None, dicom_version: str | None = None,
                   keep_labels: bool = False, user_data: Any | None = None) -> BulkResult:
    """Anonymize several resources of one level in one job; return the new ids per level.

    Options as in ``anonymize`` (originals kept by default). A failed job raises
    ``JobFailed``. Orthanc: POST /tools/bulk-anonymize (1.9.4) as a job.
    """
    body = _modification_body(
        conn, replace_tags, remove_tags, keep_tags, force, keep_private_tags=keep_private_tags,
        transcode=transcode, permissive=permissive, private_creator=private_creator,
        dicom_version=dicom_version, keep_labels=keep_labels, priority=priority,
        user_data=user_data)
    return _run_bulk(conn, "anonymize", level, orthanc_ids, body, delete_original, timeout)


def anonymize_bulk_as_job(conn: Connection, level: str, orthanc_ids: str | Iterable[str], *,
                          keep_tags: str | Iterable[str] = (),
                          replace_tags: Mapping[str, Any] | None = None,
                          remove_tags: str | Iterable[str] = (), force: bool = False,
                          keep_private_tags: bool = False, delete_original: bool = False,
                          transcode: str | None = None, priority: int | None = None,
                          permissive: bool = False, private_creator: str | None = None,
                          dicom_version: str | None = None, keep_labels: bool = False,
                          user_data: Any | None = None) -> str:
    """Start ``anonymize_bulk`` and return the job id (see ``modify_bulk_as_job``)."""
    body = _modification_body(
        conn, replace_tags, remove_tags, keep_tags, force, keep_private_tags=keep_private_tags,
        transcode=transcode, permissive=permissive, private_creator=private_creator,
        dicom_version=dicom_version, keep_labels=keep_labels, priority=priority,
        user_data=user_data)
    return _start_bulk(conn, "anonymize", level, orthanc_ids, body, delete_original)


# ==== Modalities, peers, transfers ====

_NETWORK_PROTOCOL = 9  # OrthancStatus of "Error in the network protocol" (refused, aborted...)
# What a C-MOVE / C-GET identifier names at each level: the UID and, below the study, its parents
_RETRIEVE_KEYS = {PATIENTS: ("PatientID",), STUDIES: ("StudyInstanceUID",),
                  SERIES: ("StudyInstanceUID", "SeriesInstanceUID"),
                  INSTANCES: ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")}
_RETRIEVE_ROUTES = {"C-MOVE": "move", "C-GET": "get"}


def _dicom_timeouts(timeout, default):
    """Return ``(DICOM timeout for Orthanc, HTTP read timeout)`` for a whole-call ``timeout``.

    The DICOM timeout is what fits ``_DICOM_WAITS`` times in ``timeout`` with the margin (at
    most ``_DICOM_TIMEOUT``, at least 1 s); the read timeout always outlasts Orthanc's own
    waiting, so Orthanc reports a silent remote first.

    >>> _dicom_timeouts(None, 120)
    (10, 120.0)
    >>> _dicom_timeouts(15, 120)
    (5, 15.0)
    >>> _dicom_timeouts(2, 120)
    (1, 7.0)
    """
    total = float(default if timeout is None else timeout)
    dicom = max(1, min(_DICOM_TIMEOUT, int((total - _DICOM_MARGIN) // _DICOM_WAITS)))
    return dicom, max(total, float(_DICOM_WAITS * dicom + _DICOM_MARGIN))


def _modality_path(modality, action):
    return f"/modalities/{_segment(modality, 'modality name')}/{action}"


def modality_echo(conn: Connection, modality: str, *, timeout: float | None = None) -> bool:
    """Tell whether a configured DICOM modality answers a C-ECHO.

    False when the remote refuses, aborts or does not answer. ``timeout`` bounds the call
    (default 25 s: Orthanc waits 10 s for the echo, then 10 s for the release; see
    ``_dicom_timeouts``). Orthanc: POST /modalities/{name}/echo.

    Raises:
        NotFound: ``modality`` is not configured on this Orthanc.
    """
    dicom, read = _dicom_timeouts(timeout, _ECHO_TIMEOUT)
    try:
        _post(conn, _modality_path(modality, "echo"), {"Timeout": dicom}, timeout=read)
    except HttpError as exc:
        if isinstance(exc.orthanc, dict) and exc.orthanc.get("OrthancStatus") == _NETWORK_PROTOCOL:
            return False
        raise
    return True


def modality_query(conn: Connection, modality: str, level: str, query: Mapping[str, Any], *,
                   timeout: float | None = None, normalize: bool = True) -> list[dict[str, Any]]:
    """Run a C-FIND on a modality and return every answer, fetched in one request.

    Each answer is ``{'remote_modality_id', 'level', 'dicom_id', 'tags'}``: ``level`` is the
    canonical level, ``dicom_id`` the answer's UID at that level (``PatientID`` for patients)
    and ``tags`` its simplified tags. ``query`` maps tag names to DICOM matching values
    (``{"PatientName": "DOE*", "StudyDate": "20260101-"}``). ``normalize=False`` sends the
    query as given (Orthanc's ``"Normalize": false``): tags outside Orthanc's main tags of the
    level are asked and come back. ``timeout`` bounds the whole call (default 120 s; a silent
    remote raises Orthanc's ``HttpError`` after twice the DICOM timeout, see
    ``_dicom_timeouts``). Orthanc: POST /modalities/{name}/query, then
    GET /queries/{id}/answers?expand&simplify.
    """
    level = _level(level)
    dicom, read = _dicom_timeouts(timeout, _QUERY_TIMEOUT)
    body = {"Level": _ORTHANC_LEVEL[level], "Query": dict(query), "Timeout": dicom}
    if not normalize:
        body["Normalize"] = False
    query_id = _post(conn, _modality_path(modality, "query"), body, timeout=read)["ID"]
    answers = _get(conn, f"/queries/{_segment(query_id, 'query id')}/answers?expand&simplify")
    return [{"remote_modality_id": modality, "level": level,
             "dicom_id": tags.get(_LEVEL_UID[level]), "tags": tags} for tags in answers]


def modality_query_studies(conn: Connection, modality: str, query: Mapping[str, Any], *,
                           timeout: float | None = None,
                           normalize: bool = True) -> list[dict[str, Any]]:
    """Run a study-level C-FIND; see ``modality_query``."""
    return modality_query(conn, modality, STUDIES, query, timeout=timeout, normalize=normalize)


def modality_find_worklist(conn: Connection, modality: str, query: Mapping[str, Any], *,
                           timeout: float | None = None) -> list[dict[str, Any]]:
    """Query a worklist server (C-FIND MWL) and return its answers as simplified tags.

    ``query`` names the tags to match and to return, e.g. ``{"PatientName": "DOE*",
    "AccessionNumber": "", "ScheduledProcedureStepSequence": [{"Modality": "CT"}]}``.
    ``timeout`` bounds the whole call as in ``modality_query`` (default 120 s).
    Orthanc: POST /modalities/{name}/find-worklist.
    """
    dicom, read = _dicom_timeouts(timeout, _QUERY_TIMEOUT)
    return _post(conn, _modality_path(modality, "find-worklist"),
                 {"Query": dict(query), "Timeout": dicom}, timeout=read)


def _retrieve_identifiers(level, dicom_ids):
    """Orthanc's ``Resources`` of a C-MOVE / C-GET: one dict of UIDs per identifier.

    One identifier is a UID (patient and study levels), a dict of UIDs, or a tuple of UIDs
    from the study down; anything else is a sequence of identifiers. Below the study an
    identifier must name its parents (Orthanc and the remotes need them): a bare UID is refused.

    >>> _retrieve_identifiers(STUDIES, ("1.2", "1.3"))
    [{'StudyInstanceUID': '1.2'}, {'StudyInstanceUID': '1.3'}]
    >>> _retrieve_identifiers(SERIES, ("1.2", "1.2.3"))
    [{'StudyInstanceUID': '1.2', 'SeriesInstanceUID': '1.2.3'}]
    >>> _retrieve_identifiers(SERIES, "1.2.3")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    orthanc_fn.OrthancValueError: C-MOVE/C-GET identifier '1.2.3' at level series lacks ...
    """
    keys = _RETRIEVE_KEYS[level]
    single = isinstance(dicom_ids, (str, Mapping)) or (
        isinstance(dicom_ids, tuple) and len(keys) > 1
        and all(isinstance(uid, str) for uid in dicom_ids))
    resources = []
    for item in [dicom_ids] if single else list(dicom_ids):
        if isinstance(item, Mapping):
            resource = dict(item)
        elif isinstance(item, str):
            resource = {keys[-1]: item}
        elif isinstance(item, tuple) and len(item) == len(keys) > 1:
            resource = dict(zip(keys, item))
        else:
            raise OrthancValueError(
                f"C-MOVE/C-GET identifier {item!r} at level {level}: give a UID, a dict of "
                f"UIDs or a tuple ({', '.join(keys)})")
        missing = [key for key in keys if not resource.get(key)]
        if missing:
            raise OrthancValueError(
                f"C-MOVE/C-GET identifier {item!r} at level {level} lacks "
                f"{', '.join(missing)}: below the study, pass a (study_uid, series_uid"
                "[, sop_uid]) tuple or a dict of UIDs")
        resources.append(resource)
    return resources


def _retrieve_request(conn, modality, level, dicom_ids, target_aet, method, timeout):
    """Check a retrieve's arguments (and the server for C-GET).

    Returns ``(path, body, read timeout)`` for ``_dicom_timeouts(timeout, _RETRIEVE_TIMEOUT)``.
    """
    level = _level(level)
    if method not in _RETRIEVE_ROUTES:
        raise OrthancValueError(f"method must be 'C-MOVE' or 'C-GET', got {method!r}")
    if method == "C-GET" and target_aet is not None:
        raise OrthancValueError("C-GET retrieves into this Orthanc only: no target_aet")
    dicom, read = _dicom_timeouts(timeout, _RETRIEVE_TIMEOUT)
    body = {"Level": _ORTHANC_LEVEL[level], "Resources": _retrieve_identifiers(level, dicom_ids),
            "Timeout": dicom}
    if target_aet is not None:
        body["TargetAet"] = target_aet
    if method == "C-GET":
        _require(conn, "c_get")
    return _modality_path(modality, _RETRIEVE_ROUTES[method]), body, read


def modality_retrieve_as_job(conn: Connection, modality: str, level: str,
                             dicom_ids: str | Mapping[str, str] | Iterable[str | Mapping[str, str]],
                             target_aet: str | None = None, *, method: str = "C-MOVE",
                             priority: int | None = None, user_data: Any | None = None) -> str:
    """Start a retrieve from a modality as an Orthanc job; return the job id at once.

    Arguments as in ``modality_retrieve``; ``priority`` and ``user_data``: see
    ``merge_study``. The finished job's ``Content`` lists what
    arrived (Orthanc: ``Content.Details[i].ReceivedInstancesIds``, on the versions that
    report it). Orthanc: POST /modalities/{name}/move (asynchronous: 1.11.1) or
    /modalities/{name}/get (1.12.6).
    """
    path, body, _ = _retrieve_request(conn, modality, level, dicom_ids, target_aet, method,
                                      None)
    if method == "C-MOVE":
        _require(conn, "asynchronous_move")
    return _start_job(conn, path, body, priority=priority, user_data=user_data)


def modality_retrieve(conn: Connection, modality: str, level: str,
                      dicom_ids: str | Mapping[str, str] | Iterable[str | Mapping[str, str]],
                      target_aet: str | None = None, *, timeout: float | None = None,
                      method: str = "C-MOVE", priority: int | None = None,
                      user_data: Any | None = None) -> None:
    """Retrieve resources from a modality into this Orthanc (C-MOVE or C-GET); wait for it.

    ``dicom_ids``: one identifier or a list. At the patient and study levels an identifier is
    the ``PatientID`` / ``StudyInstanceUID``; below the study it carries its parents: a
    ``(study_uid, series_uid[, sop_uid])`` tuple or Orthanc's own dict
    (``{"StudyInstanceUID": ..., "SeriesInstanceUID": ...}``; one dict is one identifier). A
    bare series or instance UID raises ``OrthancValueError`` before any request (find its
    study with ``modality_query`` first). ``method="C-MOVE"`` asks the remote to send to this
    Orthanc's AET (or ``target_aet``); ``"C-GET"`` (Orthanc 1.12.6) receives on the same
    association, with no need for the remote to know this Orthanc. From Orthanc 1.11.1 the
    retrieve runs as a job waited for at most ``timeout`` s (None: one hour); a C-MOVE on
    older servers is one synchronous call whose read timeout is ``timeout`` (default 600 s).
    A failed retrieve raises ``JobFailed`` or ``HttpError`` carrying Orthanc's details
    (but Orthanc 1.12.7 ends a C-GET from a remote that never answers in success, as if
    nothing matched). ``priority`` and ``user_data``: see ``merge_study`` (on a server
    older than 1.11.1, ``priority`` goes to the synchronous call).
    Orthanc: POST /modalities/{name}/move or /modalities/{name}/get.
    """
    path, body, read = _retrieve_request(conn, modality, level, dicom_ids, target_aet, method,
                                         timeout)
    if method == "C-GET" or get_version(conn) >= FEATURES["asynchronous_move"]:
        _run_job(conn, path, body, timeout=timeout, priority=priority, user_data=user_data)
    else:
        _post(conn, path, dict(body, **_job_options(conn, priority, user_data)), timeout=read)


def modality_retrieve_study(conn: Connection, modality: str, dicom_id: str, *,
                            timeout: float | None = None, method: str = "C-MOVE",
                            priority: int | None = None, user_data: Any | None = None) -> str:
    """Retrieve one study from a modality into this Orthanc and return its local orthanc id.

    See ``modality_retrieve``. Raises ``OrthancError`` if the retrieve ended without the study
    arriving (a remote that sends asynchronously after answering, for instance).
    """
    modality_retrieve(conn, modality, STUDIES, dicom_id, timeout=timeout, method=method,
                      priority=priority, user_data=user_data)
    orthanc_id = lookup(conn, STUDIES, dicom_id)
    if orthanc_id is None:
        raise OrthancError(f"{method} of study {dicom_id} from modality {modality!r} ended, "
                           f"but {conn.url} has no such study")
    return orthanc_id


def modality_send_as_job(conn: Connection, modality: str, orthanc_ids: str | Iterable[str], *,
                         priority: int | None = None, user_data: Any | None = None) -> str:
    """Start a C-STORE of resources (any level) to a modality; return the job id.

    ``priority`` and ``user_data``: see ``merge_study``.
    Orthanc: POST /modalities/{name}/store (asynchronous).
    """
    return _start_job(conn, _modality_path(modality, "store"),
                      {"Resources": _as_list(orthanc_ids), "Timeout": _DICOM_TIMEOUT},
                      priority=priority, user_data=user_data)


def modality_send(conn: Connection, modality: str, orthanc_ids: str | Iterable[str],
                  timeout: float | None = None, *, priority: int | None = None,
                  user_data: Any | None = None) -> dict[str, Any]:
    """C-STORE resources (any level) to a modality and return the job's ``Content``.

    ``Content`` holds ``InstancesCount``, ``FailedInstancesCount``, ``RemoteAet``...
    ``timeout``: seconds to wait for the job (None: one hour; each association is bounded
    by the DICOM timeout). A refused or failed association raises ``JobFailed`` whose message
    carries Orthanc's ``ErrorDetails``. See ``modality_send_as_job``.
    """
    job_id = modality_send_as_job(conn, modality, orthanc_ids, priority=priority,
                                  user_data=user_data)
    return wait_job(conn, job_id, timeout=timeout)["Content"]


def get_modalities(conn: Connection) -> dict[str, Any]:
    """Return every configured modality with its settings, keyed by name.

    Orthanc: GET /modalities?expand.
    """
    return _get(conn, "/modalities?expand")


def configure_modality(conn: Connection, modality: str, aet: str, host: str, port: int,
                       **options: Any) -> None:
    """Add or replace a DICOM modality at run time.

    ``options`` are Orthanc's own keys (``Manufacturer``, ``AllowStore``, ``LocalAet``,
    ``Timeout``...). It lasts across a restart only with ``DicomModalitiesInDatabase``.
    Orthanc: PUT /modalities/{name}.
    """
    body = {"AET": aet, "Host": host, "Port": int(port)}
    body.update(options)
    _put(conn, f"/modalities/{_segment(modality, 'modality name')}", body)


def delete_modality(conn: Connection, modality: str) -> None:
    """Remove a modality from the configuration.  Orthanc: DELETE /modalities/{name}."""
    _delete(conn, f"/modalities/{_segment(modality, 'modality name')}")


def _peer_path(peer, action=None):
    path = f"/peers/{_segment(peer, 'peer name')}"
    return path if action is None else f"{path}/{action}"


def peer_send_as_job(conn: Connection, peer: str, orthanc_ids: str | Iterable[str], *,
                     priority: int | None = None, user_data: Any | None = None) -> str:
    """Start sending resources (any level) to an Orthanc peer over HTTP; return the job id.

    ``priority`` and ``user_data``: see ``merge_study``.
    Orthanc: POST /peers/{name}/store (asynchronous).
    """
    return _start_job(conn, _peer_path(peer, "store"), {"Resources": _as_list(orthanc_ids)},
                      priority=priority, user_data=user_data)


def peer_send(conn: Connection, peer: str, orthanc_ids: str | Iterable[str],
              timeout: float | None = None, *, priority: int | None = None,
              user_data: Any | None = None) -> dict[str, Any]:
    """Send resources to an Orthanc peer and return the job's ``Content``.

    ``timeout``: seconds to wait for the job (None: one hour). See ``peer_send_as_job``.
    """
    job_id = peer_send_as_job(conn, peer, orthanc_ids, priority=priority, user_data=user_data)
    return wait_job(conn, job_id, timeout=timeout)["Content"]


def get_peers(conn: Connection) -> dict[str, Any]:
    """Return every configured Orthanc peer with its settings (passwords hidden), by name.

    Orthanc: GET /peers?expand.
    """
    return _get(conn, "/peers?expand")


def configure_peer(conn: Connection, peer: str, url: str, username: str | None = None,
                   password: str | None = None, **options: Any) -> None:
    """Add or replace an Orthanc peer at run time.

    ``options`` are Orthanc's own keys (``HttpHeaders``, ``Timeout``, ``RemoteSelf`` for the
    Transfers plugin...). It lasts across a restart only with ``OrthancPeersInDatabase``.
    Orthanc: PUT /peers/{name}.
    """
    body: dict[str, Any] = {"Url": url}
    if username is not None:
        body.update(Username=username, Password=password)
    body.update(options)
    _put(conn, _peer_path(peer), body)


def delete_peer(conn: Connection, peer: str) -> None:
    """Remove a peer from the configuration.  Orthanc: DELETE /peers/{name}."""
    _delete(conn, _peer_path(peer))


def get_transfers_peers(conn: Connection) -> dict[str, Any]:
    """Return the Transfers plugin's view of each peer (``installed``, ``bidirectional``...).

    Orthanc: GET /transfers/peers (Transfers accelerator plugin).
    """
    return _get(conn, "/transfers/peers")


def _transfers_start(conn, peer, orthanc_ids, level, compress, priority, user_data):
    if not peer or not isinstance(peer, str):
        raise OrthancValueError(f"transfers need a peer name, got {peer!r}")
    resource_level = _ORTHANC_LEVEL[_level(level)]
    body = {"Resources": [{"Level": resource_level, "ID": orthanc_id}
                          for orthanc_id in _as_list(orthanc_ids)],
            "Compression": "gzip" if compress else "none", "Peer": peer,
            **_job_options(conn, priority, user_data)}
    try:
        return _post(conn, "/transfers/send", body)
    except NotFound as exc:
        raise _restated(exc, f"{exc} (is {peer!r} a peer of {conn.url}, with the Transfers "
                        "plugin loaded?)") from exc


def transfers_send_as_job(conn: Connection, peer: str, orthanc_ids: str | Iterable[str],
                          level: str, compress: bool = True, *, priority: int | None = None,
                          user_data: Any | None = None) -> str:
    """Start a Transfers-accelerator send to an Orthanc peer; return the job id.

    With a peer configured with ``RemoteSelf`` the peer pulls, and the id is that of a job on
    the peer (read it there with ``get_job(peer_conn, job_id)``). ``priority`` and
    ``user_data``: see ``merge_study`` (the Transfers plugin, up to its version 1.5, keeps the
    priority and drops the user data, as it reads only its own keys).
    Orthanc: POST /transfers/send (Transfers plugin).
    """
    answer = _transfers_start(conn, peer, orthanc_ids, level, compress, priority, user_data)
    return answer["ID"] if "ID" in answer else answer["RemoteJob"]


def transfers_send(conn: Connection, peer: str, orthanc_ids: str | Iterable[str], level: str,
                   compress: bool = True, timeout: float | None = None, *,
                   peer_conn: Connection | None = None, priority: int | None = None,
                   user_data: Any | None = None) -> None:
    """Send resources to a peer with the Transfers accelerator plugin and wait until done.

    ``compress`` chooses gzip or no compression; ``timeout`` bounds the wait for the job
    (None: one hour). When the peer is configured with ``RemoteSelf`` the transfer is a
    pull job living on the peer: pass ``peer_conn`` (a ``Connection`` to the peer) to wait for
    it there. ``priority`` and ``user_data``: see ``transfers_send_as_job``.
    Orthanc: POST /transfers/send, then GET /jobs/{id} (Transfers plugin).

    Raises:
        JobFailed: the transfer failed (an unknown resource, an unreachable peer...).
        TransferOnPeer: the transfer runs on the peer and ``peer_conn`` is None; its
            ``remote_job`` and ``job_url`` say where to follow it.
        NotFound: unknown peer, or the plugin is not loaded.
    """
    answer = _transfers_start(conn, peer, orthanc_ids, level, compress, priority, user_data)
    if "ID" in answer:
        wait_job(conn, answer["ID"], timeout=timeout)
        return
    remote_job = answer["RemoteJob"]
    job_url = re.sub(r"(?<!:)//+", "/", answer.get("URL", ""))
    if peer_conn is None:
        raise TransferOnPeer(
            f"the transfer to peer {peer!r} was started as job {remote_job} on the peer "
            f"({job_url}) because the peer pulls (RemoteSelf); pass peer_conn=Connection(...) "
            "for the peer to wait for it there", remote_job=remote_job, job_url=job_url,
            peer=peer)
    wait_job(peer_conn, remote_job, timeout=timeout)


def dicomweb_send_as_job(conn: Connection, server: str, orthanc_ids: str | Iterable[str], *,
                         priority: int | None = None, user_data: Any | None = None) -> str:
    """Start sending resources (any level) to a DICOMweb server with STOW-RS; return the job id.

    ``priority`` and ``user_data``: see ``merge_study`` (the DICOMweb plugin keeps the
    priority but drops the user data, even on Orthanc 1.13).
    Orthanc: POST /dicom-web/servers/{name}/stow with ``"Synchronous": false`` (DICOMweb plugin).
    """
    return _start_job(conn, f"/dicom-web/servers/{_segment(server, 'DICOMweb server')}/stow",
                      {"Resources": _as_list(orthanc_ids), "Synchronous": False},
                      priority=priority, user_data=user_data)


def dicomweb_send(conn: Connection, server: str, orthanc_ids: str | Iterable[str], *,
                  timeout: float | None = None, priority: int | None = None,
                  user_data: Any | None = None) -> dict[str, Any]:
    """Send resources to a DICOMweb server with STOW-RS and return the job's ``Content``.

    ``timeout``: seconds to wait for the job (None: one hour). See ``dicomweb_send_as_job``.
    """
    job_id = dicomweb_send_as_job(conn, server, orthanc_ids, priority=priority,
                                  user_data=user_data)
    return wait_job(conn, job_id, timeout=timeout)["Content"]


def dicomweb_retrieve(conn: Connection, server: str, study_uid: str, series_uid: str | None = None,
                      sop_uid: str | None = None, *, timeout: float | None = None,
                      priority: int | None = None, user_data: Any | None = None) -> int:
    """Retrieve a study, series or instance from a DICOMweb server with WADO-RS.

    Returns how many instances were received. ``timeout``: seconds to wait for the job
    (None: one hour). ``priority`` and ``user_data``: see ``dicomweb_send_as_job``.
    Orthanc: POST /dicom-web/servers/{name}/retrieve (DICOMweb plugin).
    """
    if sop_uid is not None and series_uid is None:
        raise OrthancValueError("dicomweb_retrieve: an instance (sop_uid) needs its series_uid")
    resource = {"Study": study_uid}
    if series_uid is not None:
        resource["Series"] = series_uid
    if sop_uid is not None:
        resource["Instance"] = sop_uid
    job = _run_job(conn, f"/dicom-web/servers/{_segment(server, 'DICOMweb server')}/retrieve",
                   {"Resources": [resource], "Synchronous": False}, timeout=timeout,
                   priority=priority, user_data=user_data)
    return int(job["Content"]["ReceivedInstancesCount"])


# ==== InstancesSet (pure) ====

class _FrozenSeries(Mapping):
    """A read-only, hashable mapping of series id -> sorted tuple of instance ids.

    Built from a mapping or from ``(series_id, instances_ids)`` pairs (repeated series merge).
    Series are sorted, instance ids sorted and unique, empty series dropped: two mappings with
    the same content are equal and hash alike. It pickles; ``dict(m)`` gives a JSON-ready dict.

    >>> m = _FrozenSeries([("b", ["2", "1"]), ("a", ["3"]), ("b", ["1"]), ("c", [])])
    >>> m, m == {"a": ("3",), "b": ("1", "2")}, hash(m) == hash(_FrozenSeries(dict(m)))
    ({'a': ('3',), 'b': ('1', '2')}, True, True)
    """
    __slots__ = ("_items", "_index")

    def __init__(self, series=()):
        merged = {}
        for series_id, instances_ids in (series.items() if isinstance(series, Mapping)
                                         else series):
            if isinstance(instances_ids, str):
                raise OrthancValueError(
                    f"series {series_id!r} must map to a sequence of instance ids, "
                    f"not the string {instances_ids!r}")
            merged.setdefault(str(series_id), set()).update(map(str, instances_ids))
        items = tuple(sorted((key, tuple(sorted(ids))) for key, ids in merged.items() if ids))
        object.__setattr__(self, "_items", items)
        object.__setattr__(self, "_index", dict(items))

    def __getitem__(self, series_id):
        return self._index[series_id]

    def __iter__(self):
        return iter(self._index)

    def __len__(self):
        return len(self._items)

    def __eq__(self, other):
        if isinstance(other, _FrozenSeries):
            return self._items == other._items
        return Mapping.__eq__(self, other)

    def __hash__(self):
        return hash(self._items)

    def __setattr__(self, name, value):
        raise AttributeError(f"{type(self).__name__} is read-only")

    def __delattr__(self, name):
        raise AttributeError(f"{type(self).__name__} is read-only")

    def __reduce__(self):
        return (type(self), (self._items,))

    def __repr__(self):
        return repr(self._index)


class _InstancesSetFields(NamedTuple):
    study_id: Optional[str]
    series: Mapping[str, tuple[str, ...]]


class InstancesSet(_InstancesSetFields):
    """An immutable snapshot of instances of one study: ``(study_id, series)``.

    ``series`` is a read-only, hashable mapping of series id -> tuple of instance ids, sorted
    (series, then instances), without empty series; build it from any mapping or
    ``(series_id, ids)`` pairs. Two sets with the same content are equal and hash alike. No
    connection inside: the members below never do I/O; server effects are the functions
    ``instances_set_from_*``, ``modify_instances_set``, ``delete_instances_set`` and
    ``download_instances_set``. ``len(s)`` counts instances (a NamedTuple still unpacks into
    its two fields) and an empty set is false. To store one as JSON, store its parts:
    ``json.dumps([s.study_id, dict(s.series)])`` and ``InstancesSet(*json.loads(text))``.

    >>> s = InstancesSet("st", {"se2": ["i3"], "se1": ["i2", "i1"]})
    >>> s
    InstancesSet(study_id='st', series={'se1': ('i1', 'i2'), 'se2': ('i3',)})
    >>> len(s), s.series_ids, s.instances_ids
    (3, ('se1', 'se2'), ('i1', 'i2', 'i3'))
    >>> s == InstancesSet("st", [("se2", ("i3",)), ("se1", ("i1", "i2"))])
    True
    >>> bool(s.without_series("se1").without_instances(["i3"]))
    False
    """
    __slots__ = ()

    def __new__(cls, study_id: str | None,
                series: Mapping[str, Iterable[str]] | Iterable[Any] = ()) -> InstancesSet:
        if not isinstance(series, _FrozenSeries):
            series = _FrozenSeries(series)
        return super().__new__(cls, None if study_id is None else str(study_id), series)

    @classmethod
    def _make(cls, iterable):
        return cls(*iterable)

    def __getnewargs__(self) -> tuple[Any, ...]:
        return (self.study_id, self.series)

    def __len__(self) -> int:
        return sum(len(ids) for ids in self.series.values())

    @property
    def instances_ids(self) -> tuple[str, ...]:
        """Every instance id, series by series, as a tuple."""
        return tuple(instance_id for ids in self.series.values() for instance_id in ids)

    @property
    def series_ids(self) -> tuple[str, ...]:
        """The ids of the series that have instances in the set, sorted, as a tuple."""
        return tuple(self.series)

    @property
    def id(self) -> str:
        """A stable digest of the sorted instance ids: same ids, same ``id``, on any machine.

        >>> InstancesSet("st", {"se": ["b", "a"]}).id == InstancesSet(None, {"x": ["a", "b"]}).id
        True
        >>> InstancesSet("st", {"se": ["a"]}).id
        '86f7e437faa5a7fce15d1ddcb9eaeaea377667b8'
        """
        import hashlib
        text = "\n".join(sorted(self.instances_ids))
        return hashlib.sha1(text.encode("utf-8")).hexdigest()

    def filter(self, predicate: Callable[[str, str], object]) -> tuple[InstancesSet, InstancesSet]:
        """Split the set in two: ``(kept, removed)``, by ``predicate(series_id, instance_id)``.

        >>> kept, removed = InstancesSet("st", {"a": ["1", "2"], "b": ["3"]}).filter(
        ...     lambda series_id, instance_id: instance_id != "2")
        >>> kept.series, removed.series
        ({'a': ('1',), 'b': ('3',)}, {'a': ('2',)})
        """
        kept: list[tuple[str, tuple[str, ...]]] = []
        removed: list[tuple[str, tuple[str, ...]]] = []
        for series_id, ids in self.series.items():
            for instance_id in ids:
                side = kept if predicate(series_id, instance_id) else removed
                side.append((series_id, (instance_id,)))
        return InstancesSet(self.study_id, kept), InstancesSet(self.study_id, removed)

    def without_series(self, series_ids: str | Iterable[str]) -> InstancesSet:
        """Return the set without one series (an id) or several (an iterable of ids).

        >>> InstancesSet("st", {"a": ["1"], "b": ["2"]}).without_series("a").series
        {'b': ('2',)}
        """
        drop = _id_set(series_ids)
        return self._replace(series={key: ids for key, ids in self.series.items()
                                     if key not in drop})

    def without_instances(self, instances_ids: str | Iterable[str]) -> InstancesSet:
        """Return the set without one instance (an id) or several (an iterable of ids).

        >>> InstancesSet("st", {"a": ["1", "2"], "b": ["3"]}).without_instances(["2", "3"]).series
        {'a': ('1',)}
        """
        drop = _id_set(instances_ids)
        return self.filter(lambda series_id, instance_id: instance_id not in drop)[0]

    def union(self, other: InstancesSet) -> InstancesSet:
        """Return the instances of both sets; both must be of the same study.

        A set whose ``study_id`` is None takes the other's.

        >>> InstancesSet("st", {"a": ["1"]}).union(InstancesSet("st", {"a": ["2"], "b": ["3"]}))
        InstancesSet(study_id='st', series={'a': ('1', '2'), 'b': ('3',)})
        """
        study_id = self.study_id if self.study_id is not None else other.study_id
        if other.study_id not in (None, study_id):
            raise OrthancValueError(
                f"cannot unite instances of study {self.study_id} with study {other.study_id}")
        return InstancesSet(study_id, list(self.series.items()) + list(other.series.items()))

    def difference(self, other: InstancesSet) -> InstancesSet:
        """Return the instances of this set that are not in ``other``.

        >>> InstancesSet("st", {"a": ["1", "2"]}).difference(InstancesSet("st", {"a": ["2"]}))
        InstancesSet(study_id='st', series={'a': ('1',)})
        """
        return self.without_instances(other.instances_ids)


def _id_set(ids):
    """One id (a string) or an iterable of ids, as a set of strings.

    >>> sorted(_id_set("a")), sorted(_id_set(["b", "a", "b"]))
    (['a'], ['a', 'b'])
    """
    return set(map(str, _as_list(ids)))


# ==== InstancesSet (server) ====

# Orthanc's ErrorCode when a modification job cannot store a modified instance: with the
# original's UIDs kept, the instance already exists and OverwriteInstances is false (1.10).
_CANNOT_STORE_INSTANCE = 2018


def instances_set_from_study(conn: Connection, study_id: str) -> InstancesSet:
    """Snapshot the instances a study has now, in one request.

    Orthanc: GET /studies/{id}/instances (each instance names its ``ParentSeries``).
    """
    return _instances_set_of(study_id, _get(conn, f"/studies/{_segment(study_id)}/instances"))


def instances_set_from_series(conn: Connection, series_id: str) -> InstancesSet:
    """Snapshot the instances a series has now, in one request.

    Orthanc: GET /series/{id}.
    """
    series = _get(conn, f"/series/{_segment(series_id)}")
    return InstancesSet(series["ParentStudy"], {series["ID"]: series["Instances"]})


def instances_set_from_instances(conn: Connection,
                                 instances_ids: str | Iterable[str]) -> InstancesSet:
    """Make a set of the given instances (one id or an iterable), in two requests.

    Orthanc: POST /tools/bulk-content (1.9.4), for the instances then their series.

    Raises:
        MissingInstances: some ids are not instances of the server (``ids`` lists them).
        OrthancValueError: no id, or instances of several studies.
    """
    return _set_of_contents(conn, _instances_contents(conn, instances_ids))


def modify_instances_set(conn: Connection, s: InstancesSet,
                         replace_tags: Mapping[str, Any] | None = None,
                         remove_tags: str | Iterable[str] = (),
                         keep_tags: str | Iterable[str] = (), keep_source: bool = True,
                         force: bool = False, *, timeout: float | None = None,
                         transcode: str | None = None, priority: int | None = None,
                         permissive: bool = False, private_creator: str | None = None,
                         keep_labels: bool = False, user_data: Any | None = None) -> InstancesSet:
    """Modify every instance of ``s`` and return the set of the modified instances.

    ``replace_tags``, ``remove_tags``, ``keep_tags`` and ``force`` are Orthanc's ``Replace``,
    ``Remove``, ``Keep`` and ``Force``. Each instance gets a new SOPInstanceUID unless it is
    kept, and stays in its study and series unless their UIDs are replaced (Orthanc 1.12
    does it and the returned set is of the new study; Orthanc 1.10 refuses: ``JobFailed``
    with its reason). The job is waited for at most ``timeout`` s (None: one hour, as in
    every function that waits for a job). Orthanc always keeps the sources; with
    ``keep_source=False`` they are deleted afterwards, only once every modified instance is
    confirmed on the server. ``transcode``, ``priority``,
    ``permissive``, ``private_creator``, ``keep_labels`` and ``user_data`` as in ``modify``.

    Keeping the UIDs (``keep_tags=["StudyInstanceUID", "SeriesInstanceUID",
    "SOPInstanceUID"]``, which needs ``force=True``) rewrites each instance in place, with
    the same Orthanc ids: Orthanc does it only with ``OverwriteInstances: true`` in its
    configuration, and the rewritten instances lose their own metadata and attachments (so
    does a series or study whose only instance is rewritten: Orthanc re-creates it).
    Without it Orthanc 1.10 fails the job and Orthanc 1.12 ends it as a success without
    storing anything; both raise ``JobFailed`` saying why, and the originals are untouched
    (nothing is ever deleted and uploaded again).

    Orthanc: POST /tools/bulk-modify (1.9.4) as a job, POST /tools/bulk-content (before the
    job too when a UID is kept or replaced) and, with ``keep_source=False``,
    POST /tools/bulk-delete.
    """
    if not s:
        return s
    body = dict(_modification_body(
        conn, replace_tags, remove_tags, keep_tags, force, transcode=transcode,
        permissive=permissive, private_creator=private_creator, keep_labels=keep_labels,
        priority=priority, user_data=user_data),
        Resources=list(s.instances_ids), Level="Instance", KeepSource=True)
    in_place = _touches_uids(body)  # then compare the stored files before and after
    files_before = {one["ID"]: one["FileUuid"]
                    for one in _bulk_content(conn, "Instance", s.instances_ids)} if in_place else {}
    try:
        job = _run_job(conn, "/tools/bulk-modify", body, timeout=timeout)
    except JobFailed as exc:
        if in_place and exc.job.get("ErrorCode") == _CANNOT_STORE_INSTANCE:
            raise JobFailed(_not_overwritten(conn, exc), job=exc.job) from exc
        raise
    content = job.get("Content") or {}
    new_ids = [one["ID"] for one in content.get("Resources", ()) if one.get("Type") == "Instance"]
    if content.get("FailedInstancesCount") or len(new_ids) != len(s):
        raise JobFailed(
            f"modify_instances_set: job {job.get('ID')} on {conn.url} modified {len(new_ids)} "
            f"of {len(s)} instances ({content.get('FailedInstancesCount')} failed); "
            "the original instances are kept", job=job)
    instances = _instances_contents(conn, new_ids)
    if any(files_before.get(one["ID"]) == one["FileUuid"] for one in instances):
        raise JobFailed(_not_overwritten(conn, "the job ended without storing them"), job=job)
    modified = _set_of_contents(conn, instances)
    if not keep_source:
        delete_instances_set(conn, s.without_instances(modified.instances_ids))
    return modified


def delete_instances_set(conn: Connection, s: InstancesSet) -> None:
    """Delete exactly the instances of ``s`` (instances that arrived later stay).

    Ids that are already gone are ignored. Orthanc: POST /tools/bulk-delete (1.9.4).
    """
    if s:
        _post(conn, "/tools/bulk-delete", {"Resources": list(s.instances_ids)},
              timeout=_BULK_TIMEOUT)


def download_instances_set(conn: Connection, s: InstancesSet, path: str | os.PathLike[str], *,
                           progress: Callable[[int, int | None], object] | None = None,
                           transcode: str | None = None, media: bool = False) -> str:
    """Save the instances of ``s`` as one ZIP archive at ``path``, streamed; return ``path``.

    With ``media``, a ZIP with a DICOMDIR (as ``download_media``). Progress, partial files
    and ``transcode`` as in ``download_archive``.
    Orthanc: POST /tools/create-archive or /tools/create-media (synchronous, streamed).
    """
    if not s:
        raise OrthancValueError("download_instances_set: the set has no instance")
    return _save_zip_of(conn, "media" if media else "archive", s.instances_ids, path,
                        progress, transcode, timeout=_BULK_TIMEOUT)


def _instances_set_of(study_id, instances):
    """The set of Orthanc's instance dicts (``ID`` and ``ParentSeries``)."""
    return InstancesSet(study_id, [(one["ParentSeries"], (one["ID"],)) for one in instances])


def _instances_contents(conn, instances_ids):
    """Orthanc's dicts of the given instances, in one request; MissingInstances names missing
    ones."""
    wanted = _id_set(instances_ids)
    if not wanted:
        raise OrthancValueError("an InstancesSet needs at least one instance id")
    instances = _bulk_content(conn, "Instance", wanted)
    missing = wanted - {instance["ID"] for instance in instances}
    if missing:
        raise MissingInstances(f"POST {conn.url}/tools/bulk-content: no instance "
                               f"{', '.join(sorted(missing))} on the server", ids=sorted(missing))
    return instances


def _set_of_contents(conn, instances):
    """The set of Orthanc's instance dicts, its study found in one request."""
    series = _bulk_content(conn, "Series", {instance["ParentSeries"] for instance in instances})
    studies = sorted({one["ParentStudy"] for one in series})
    if len(studies) != 1:
        raise OrthancValueError(
            f"an InstancesSet holds one study; these instances are in {', '.join(studies)}")
    return _instances_set_of(studies[0], instances)


def _bulk_content(conn, level, orthanc_ids):
    """Orthanc's dicts of the given resources of one level (unknown ids are left out)."""
    return _post(conn, "/tools/bulk-content", {"Resources": sorted(orthanc_ids), "Level": level})


def _not_overwritten(conn, cause):
    return (f"modify_instances_set: {conn.url} did not overwrite the instances in place "
            f"({cause}). Keeping SOPInstanceUID gives the modified instances the Orthanc ids of "
            "the originals, which Orthanc stores only with \"OverwriteInstances\": true in its "
            "configuration; the original instances are untouched")


# ==== Pipelines ====

_HANDLER_ATTEMPTS = 5  # calls of a failing change handler before the failure is reported
_HANDLER_BACKOFF = 0.5  # seconds before its first retry, doubling up to _HANDLER_BACKOFF_MAX
_HANDLER_BACKOFF_MAX = 30.0
_WATCH_PAGE = 100  # changes fetched per request by watch_changes


def watch_changes(conn: Connection, handler: Callable[[dict[str, Any]], object], *,
                  change_types: str | Iterable[str] | None = None, since: int | None = None,
                  cursor: str | os.PathLike[str] | None = None, workers: int = 1,
                  poll_interval: float = 1.0, stop: threading.Event | None = None,
                  on_error: Callable[[dict[str, Any], BaseException], object] | None = None,
                  attempts: int = _HANDLER_ATTEMPTS, page_size: int = _WATCH_PAGE) -> None:
    """Call ``handler(change)`` for every change of the log after a position, until ``stop``.

    Starts after the ``Seq`` stored in the ``cursor`` file when it exists, else after
    ``since`` (default 0: the whole log). Each change (Orthanc's dict: ``ChangeType``,
    ``ID``, ``ResourceType``, ``Seq``...) is handled at least once: the cursor file is
    rewritten atomically, and only up to the last change whose handler returned along with
    every earlier one, so a process killed at any point resumes without skipping anything
    (the changes in flight are handled again). ``change_types`` (one or several, e.g.
    ``"StableStudy"``) filters on the server where it can (Orthanc >= 1.12.5 with
    ``HasExtendedChanges``), here otherwise. Handlers run in threads of the watch's own (one
    with ``workers=1``, every change in log order); ``workers`` > 1 runs them in parallel,
    the changes of one resource still one after the other, in order. A handler that raises is
    called again after 0.5 s, 1 s, 2 s... up to ``attempts`` calls in all, then
    ``on_error(change, exception)`` is called (without it, an error is logged) and the watch
    goes on. When the server cannot be reached the watch waits and asks again. Returns None
    once ``stop`` (a ``threading.Event``) is set: the handlers running finish, no new one
    starts, and the cursor is saved. Without ``stop`` it runs until interrupted.
    Orthanc: GET /changes every ``poll_interval`` s when the log has nothing new. Example::

        watch_changes(conn, forward, change_types="StableStudy", cursor="seen.txt", stop=stop)
    """
    import queue
    from concurrent.futures import ThreadPoolExecutor

    wanted = None if change_types is None else _as_list(change_types)
    server_filter = None  # known once the server answers: can it filter by type?
    position = _read_cursor(cursor)
    if position is None:
        position = int(since or 0)
    saved = position
    halt = threading.Event()  # our own: the caller's ``stop`` is only read
    stopping = (lambda: halt.is_set() or (stop is not None and stop.is_set()))
    pool = ThreadPoolExecutor(max(1, int(workers)), thread_name_prefix="orthanc_fn-watch")
    try:
        while not stopping():
            try:
                if server_filter is None:
                    server_filter = wanted is not None and \
                        _unsupported(conn, "extended_changes") is None
                page = _changes_page(conn, position, page_size, None,
                                     wanted if server_filter else None)
            except (OrthancConnectionError, OrthancTimeout) as exc:
                _log.warning("watch_changes: %s; asking again in %s s", exc, poll_interval)
                _pause(max(float(poll_interval), 1.0), stopping)
                continue
            changes = [change for change in page.changes
                       if wanted is None or server_filter or change["ChangeType"] in wanted]
            # one worker: every change in order; more: each resource's in order
            groups: dict[str | None, list[dict[str, Any]]] = {}
            for change in changes:
                groups.setdefault(change["ID"] if int(workers) > 1 else None, []).append(change)
            finished: queue.SimpleQueue[int] = queue.SimpleQueue()  # Seq of each handled change
            submitted = [pool.submit(_handle_changes, handler, group, stopping, attempts,
                                     on_error, finished) for group in groups.values()]
            pending, handled, futures = [change["Seq"] for change in changes], set(), submitted
            while futures or not finished.empty():
                try:
                    handled.add(finished.get(timeout=0.2))
                    while not finished.empty():
                        handled.add(finished.get_nowait())
                except queue.Empty:
                    pass
                futures = [future for future in futures if not future.done()]
                reached = _handled_up_to(pending, handled, position, page.last)
                if reached > saved:
                    _write_cursor(cursor, reached)
                    saved = reached
            for future in submitted:
                future.result()  # on_error raised: the watch ends, the cursor kept so far
            if _handled_up_to(pending, handled, position, page.last) < page.last:
                break  # stopped in the middle of the page
            position = max(page.last, position)
            if position > saved:
                _write_cursor(cursor, position)
                saved = position
            if page.done:
                _pause(float(poll_interval), stopping)
    finally:
        halt.set()
        pool.shutdown(wait=True)
    return None


def _pause(seconds, stopping):
    """Sleep ``seconds`` in short steps; return early once ``stopping()`` is true."""
    deadline = time.monotonic() + seconds
    while not stopping():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        time.sleep(min(0.05, remaining))


def _handled_up_to(pending, handled, start, last):
    """The position the cursor may hold: every change up to it was handled.

    ``pending`` lists the page's changes (``Seq``, ascending), ``handled`` those done.

    >>> _handled_up_to([5, 7, 9], {5, 9}, 3, 12), _handled_up_to([5, 7], {5, 7}, 3, 12)
    (6, 12)
    """
    for seq in pending:
        if seq not in handled:
            return max(start, seq - 1)
    return last


def _handle_changes(handler, changes, stopping, attempts, on_error, finished):
    """Handle one resource's changes in order; put each handled ``Seq`` in ``finished``."""
    for change in changes:
        if stopping():
            return
        delay = _HANDLER_BACKOFF
        for attempt in range(1, max(1, int(attempts)) + 1):
            try:
                handler(change)
                break
            except Exception as exc:  # the handler's own: retried, then reported
                if attempt >= attempts:
                    if on_error is None:
                        _log.error("watch_changes: handler failed %d times on change %s "
                                   "(%s %s): %s", attempt, change.get("Seq"),
                                   change.get("ChangeType"), change.get("ID"), exc)
                    else:
                        on_error(change, exc)
                    break
                _log.warning("watch_changes: handler failed on change %s (%s); retrying "
                             "in %.1f s", change.get("Seq"), exc, delay)
                _pause(delay, stopping)
                if stopping():
                    return
                delay = min(2 * delay, _HANDLER_BACKOFF_MAX)
        finished.put(change["Seq"])


def _read_cursor(path):
    """The ``Seq`` stored in a cursor file, or None when there is no such file."""
    if path is None:
        return None
    try:
        with open(path) as f:
            text = f.read().strip()
    except FileNotFoundError:
        return None
    if not text.isdigit():
        raise OrthancValueError(f"cursor file {os.fspath(path)!r} does not hold a change "
                                f"number (Seq): {text[:40]!r}")
    return int(text)


def _write_cursor(path, seq):
    """Store ``seq`` in the cursor file atomically (a whole new file renamed over the old)."""
    if path is None:
        return
    path = os.fspath(path)
    partial = path + ".part"
    with open(partial, "w") as f:
        f.write(f"{int(seq)}\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(partial, path)


class SyncReport(NamedTuple):
    """What ``sync`` did: ``copied`` and ``present`` (Orthanc ids of the resources sent, and of
    those ``dst`` already had), ``failed`` as ``(id, reason)`` pairs, ``seconds`` taken."""
    copied: list
    present: list
    failed: list
    seconds: float


class Comparison(NamedTuple):
    """What ``compare`` found: Orthanc ids ``only_src``, ``only_dst``, and ``different`` (in
    both, with a different number of instances)."""
    only_src: list
    only_dst: list
    different: list


_SYNC_METHODS = ("peer", "dicomweb", "transfers", "copy")
_SYNC_CHUNK = 500  # resources compared and copied per round
_SYNC_BATCH = 500  # at most this many instances per Orthanc job
_CHILDREN = {PATIENTS: ("Patient", "Studies"), STUDIES: ("Study", "Series"),
             SERIES: ("Series", "Instances")}


def sync(src: Connection, dst: Connection, *, level: str = "studies",
         query: Mapping[str, Any] | None = None, since: int | None = None, method: str = "auto",
         verify: bool = True, workers: int = 4,
         progress: Callable[[int, int | None], object] | None = None,
         timeout: float | None = None) -> SyncReport:
    """Copy to ``dst`` the resources of ``src`` it lacks; return a ``SyncReport``.

    The resources are those of ``level`` on ``src`` (matching ``query``, a ``find`` query,
    when given; with ``since``, only those the change log names after that ``Seq``, such as
    a study that became stable again after new instances arrived). They are compared by
    their Orthanc ids, which are the same on every server: an instance ``dst`` has is never
    sent again, so running ``sync`` once more after it was interrupted (even killed) copies
    only the rest. ``method``: ``"peer"`` (``src`` lists ``dst`` among its Orthanc peers: a
    peer job), ``"dicomweb"`` (``src`` lists ``dst``'s DICOMweb root among its servers: a
    STOW-RS job), ``"transfers"`` (the Transfers accelerator plugin on both), ``"copy"`` (each
    file downloaded from ``src`` and uploaded to ``dst`` here), or ``"auto"``: the first of
    these that is configured. Jobs carry at most 500 instances and ``workers`` run at once
    (as do the copies); before comparing, ``sync`` waits for ``src``'s unfinished jobs a
    killed run may have left (peer jobs to ``dst``; any STOW-RS job, as Orthanc does not show
    their target), so that nothing is sent twice. With ``verify``,
    every instance of the resources is checked on ``dst`` by the MD5 of its stored file
    where both servers keep it (``StoreMD5ForAttachments``, on by default); a difference is
    a failure, never overwritten. A resource is ``copied`` once every instance is on ``dst``
    (and verified), ``failed`` otherwise. ``progress(done, total)`` counts resources, from
    the calling thread. ``timeout`` bounds each job wait (None: one hour).
    Orthanc: GET /{level} or POST /tools/find, POST /tools/bulk-content on both servers,
    GET /instances/{id}/attachments/dicom/md5, and the method's own routes. Example::

        copied, present, failed, seconds = sync(src, dst, method="peer")
    """
    from concurrent.futures import ThreadPoolExecutor

    start = time.monotonic()
    level = _level(level)
    method, target = _sync_route(src, dst, method)
    _wait_unfinished_jobs(src, dst, method, timeout)
    ids = _sync_ids(src, level, query, since)
    copied, present, failed = [], [], []
    with ThreadPoolExecutor(max(1, int(workers)), thread_name_prefix="orthanc_fn-sync") as pool:
        for first in range(0, len(ids), _SYNC_CHUNK):
            chunk = ids[first:first + _SYNC_CHUNK]
            tree = _instances_by_resource(src, level, chunk)
            wanted = sorted({i for instances in tree.values() for i in instances})
            on_dst = _existing_instances(dst, wanted)
            missing = [i for i in wanted if i not in on_dst]
            errors = _sync_chunk(src, dst, method, target, missing,
                                 [i for i in wanted if i in on_dst] if verify else [],
                                 verify, pool, int(workers), timeout)
            for resource_id in chunk:
                instances = tree.get(resource_id)
                if not instances:
                    continue  # deleted from src meanwhile
                bad = [i for i in instances if i in errors]
                if bad:
                    failed.append((resource_id, f"{len(bad)} of {len(instances)} instances: "
                                                f"{bad[0]}: {errors[bad[0]]}"))
                elif all(i in on_dst for i in instances):
                    present.append(resource_id)
                else:
                    copied.append(resource_id)
            if progress is not None:
                progress(min(first + len(chunk), len(ids)), len(ids))
    return SyncReport(copied, present, failed, time.monotonic() - start)


def compare(src: Connection, dst: Connection, *, level: str = "studies",
            query: Mapping[str, Any] | None = None) -> Comparison:
    """Tell what differs between two servers at ``level``: a ``Comparison``.

    ``only_src`` and ``only_dst`` are the Orthanc ids (the same on every server) of the
    resources (matching ``query`` when given) on one side only; ``different`` those on both
    whose instance counts differ. Lists are sorted. Orthanc: GET /{level} or
    POST /tools/find, then POST /tools/bulk-content on both servers.
    """
    level = _level(level)
    on_src = set(_sync_ids(src, level, query, None))
    on_dst = set(_sync_ids(dst, level, query, None))
    both = sorted(on_src & on_dst)
    different = []
    for first in range(0, len(both), _SYNC_CHUNK):
        chunk = both[first:first + _SYNC_CHUNK]
        counts = [{key: len(value) for key, value in
                   _instances_by_resource(conn, level, chunk).items()} for conn in (src, dst)]
        different += [i for i in chunk if counts[0].get(i) != counts[1].get(i)]
    return Comparison(sorted(on_src - on_dst), sorted(on_dst - on_src), different)


def _same_server(url, other):
    """Tell whether two server URLs name the same place (trailing slash and case aside).

    >>> _same_server("http://H:8042/", "http://h:8042"), _same_server("http://h:1", "http://h:2")
    (True, False)
    """
    def key(text):
        parts = urlsplit(str(text).strip())
        return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port, \
            parts.path.rstrip("/")
    return key(url) == key(other)


def _sync_route(src, dst, method):
    """Return ``(method, name)``: the method ``sync`` uses and the peer or server it targets.

    ``"auto"`` takes the first of ``_SYNC_METHODS`` configured on ``src`` for ``dst``; an
    explicit method that is not configured raises ``OrthancValueError`` saying what is missing.
    """
    if method != "auto" and method not in _SYNC_METHODS:
        raise OrthancValueError(f"sync method must be auto or one of "
                                f"{', '.join(_SYNC_METHODS)}, got {method!r}")
    found = {}
    if method in ("auto", "peer", "transfers"):
        found["peer"] = next((name for name, peer in get_peers(src).items()
                              if _same_server(peer.get("Url", ""), dst.url)), None)
    if method in ("auto", "dicomweb"):
        servers = _get(src, "/dicom-web/servers?expand") if has_plugin(src, "dicom-web") else {}
        found["dicomweb"] = next((name for name, server in servers.items()
                                  if _same_server(server.get("Url", ""), dst.url + "/dicom-web")),
                                 None)
    if method in ("auto", "transfers"):
        found["transfers"] = found["peer"] if found["peer"] and has_plugin(src, "transfers") \
            and has_plugin(dst, "transfers") else None
    found["copy"] = "copy"
    for candidate in _SYNC_METHODS if method == "auto" else (method,):
        if found.get(candidate):
            return candidate, found[candidate]
    needs = {"peer": f"an Orthanc peer of {src.url} at {dst.url} (configure_peer)",
             "dicomweb": f"a DICOMweb server of {src.url} at {dst.url}/dicom-web",
             "transfers": f"the Transfers plugin on both servers and {dst.url} as a peer of "
                          f"{src.url}"}
    raise OrthancValueError(f"sync method {method!r} needs {needs[method]}")


_SYNC_JOB_TYPES = {"peer": "OrthancPeerStore", "dicomweb": "DicomWebStowClient"}


def _wait_unfinished_jobs(src, dst, method, timeout):
    """Wait for ``src``'s pending or running jobs of ``method`` to ``dst`` (a killed run's).

    Peer jobs name their peer's URL; STOW-RS jobs name no target, so all are waited for.
    """
    kind = _SYNC_JOB_TYPES.get(method)
    if kind is None:
        return
    for job in _get(src, "/jobs?expand"):
        peer = (job.get("Content") or {}).get("Peer") or [dst.url]
        if job.get("Type") == kind and job.get("State") in ("Pending", "Running") \
                and _same_server(peer[0], dst.url):
            try:
                wait_job(src, job["ID"], timeout=timeout)
            except JobFailed:
                pass  # what it did not send is sent now


def _sync_ids(conn, level, query, since):
    """The sorted ids of the resources ``sync`` and ``compare`` look at."""
    if since is not None:
        kind = _ORTHANC_LEVEL[level]
        ids = {change["ID"] for change in iter_changes(conn, since)
               if change["ResourceType"] == kind and change["ChangeType"] != "Deleted"}
        if query is not None:
            ids &= set(iter_find(conn, level, query, expand=False))
        return sorted(ids)
    if query is not None:
        return sorted(iter_find(conn, level, query, expand=False))
    return sorted(get_all_ids(conn, level))


def _instances_by_resource(conn, level, ids):
    """Map each resource id to its instance ids; a resource the server lacks maps to [].

    One POST /tools/bulk-content per level below ``level`` (none for instances, which map to
    themselves).
    """
    tree = {orthanc_id: [orthanc_id] for orthanc_id in ids}
    while level != INSTANCES:
        kind, key = _CHILDREN[level]
        parents = {i for children in tree.values() for i in children}
        children = {one["ID"]: one[key] for one in _bulk_content(conn, kind, parents)}
        tree = {resource: [c for i in found for c in children.get(i, ())]
                for resource, found in tree.items()}
        level = LEVELS[LEVELS.index(level) + 1]
    return tree


def _existing_instances(conn, instances_ids):
    """The set of the given instance ids the server has (one POST /tools/bulk-content)."""
    if not instances_ids:
        return set()
    return {one["ID"] for one in _bulk_content(conn, "Instance", instances_ids)}


def _sync_chunk(src, dst, method, target, missing, present, verify, pool, workers, timeout):
    """Send ``missing``, check each arrived and, with ``verify``, compare the MD5 of those and
    of ``present`` on both servers; return ``{instance id: reason}`` of the failures.

    ``pool`` runs the batches (jobs of at most ``_SYNC_BATCH`` instances, at least
    ``workers`` of them when there are enough; 50 copies each for ``"copy"``): the checks of
    one batch overlap the sending of the others.
    """
    def send_and_check(batch):
        errors = _sync_send(src, dst, method, target, batch, timeout)
        arrived = _existing_instances(dst, batch)
        for instance_id in batch:
            if instance_id not in arrived:
                errors.setdefault(instance_id, f"not on {dst.url} after the {method} copy")
        if verify:
            errors.update(_md5_differences(src, dst, [i for i in batch if i in arrived]))
        return errors

    size = 50 if method == "copy" else \
        max(1, min(_SYNC_BATCH, -(-len(missing) // max(1, workers))))
    futures = [pool.submit(send_and_check, missing[n:n + size])
               for n in range(0, len(missing), size)]
    futures += [pool.submit(_md5_differences, src, dst, present[n:n + 100])
                for n in range(0, len(present), 100)]
    errors = {}
    for future in futures:
        errors.update(future.result())
    return errors


def _sync_send(src, dst, method, target, instances_ids, timeout):
    """Send one batch of instances from ``src`` to ``dst``; return ``{id: reason}`` of what
    surely failed (``"copy"``: each file downloaded and uploaded here; else one job)."""
    if method == "copy":
        errors = {}
        for instance_id in instances_ids:
            try:
                _store(dst, get_file(src, instance_id))
            except OrthancError as exc:
                errors[instance_id] = _reason(exc)
        return errors
    try:
        if method == "peer":
            peer_send(src, target, instances_ids, timeout=timeout)
        elif method == "dicomweb":
            dicomweb_send(src, target, instances_ids, timeout=timeout)
        else:
            transfers_send(src, target, instances_ids, INSTANCES, timeout=timeout,
                           peer_conn=dst)
        return {}
    except OrthancError as exc:
        return dict.fromkeys(instances_ids, _one_line(exc))


def _md5_differences(src, dst, instances_ids):
    """``{instance id: reason}`` for instances whose stored files differ on the two servers.

    Instances whose MD5 one server does not keep are not compared: Orthanc (1.10.1, 1.12.7,
    1.13.0) answers 404 without its JSON body when the file's MD5 was not stored
    (``StoreMD5ForAttachments: false``), and 404 with it for an unknown instance.
    """
    def md5(conn, instance_id):
        try:
            return _get(conn, f"/instances/{_segment(instance_id)}/attachments/dicom/md5",
                        raw=True).decode().strip()
        except NotFound as exc:
            return "missing" if exc.orthanc else None

    differences = {}
    for instance_id in instances_ids:
        ours, theirs = md5(src, instance_id), md5(dst, instance_id)
        if ours and theirs and ours != theirs:
            differences[instance_id] = (f"the file differs on {dst.url} (MD5 {theirs}, "
                                        f"{ours} on {src.url})")
    return differences


# ==== Command line ====

_CLI_EPILOG = """\
environment:
  ORTHANC_URL       server URL when --url is not given (default http://localhost:8042)
  ORTHANC_USER      user for HTTP basic auth, with ORTHANC_PASSWORD
  ORTHANC_PASSWORD  password (never needed on the command line)
  ORTHANC_TOKEN     Authorization header value instead of basic auth (a bare token gets Bearer)
  ORTHANC_DST_USER, ORTHANC_DST_PASSWORD, ORTHANC_DST_TOKEN
                    the same for the second server of sync and compare (DST_URL)

Data goes to stdout as JSON (one document, or JSON lines for find); progress and errors go
to stderr. Exit status: 0 on success, 1 when something failed, 2 for a usage error.
See `orthanc_fn COMMAND --help`."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line (``python -m orthanc_fn --help``) and return its exit status.

    Data goes to stdout as JSON; progress and a one-line error go to stderr. Returns 0 on
    success, 1 on failure (``--debug`` shows the traceback instead), 2 for a usage error.
    """
    import argparse
    import sys

    parser = _cli_parser(argparse)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error argparse has printed
        return int(exc.code or 0)  # argparse exits with 0 or 2
    if args.debug:
        logging.basicConfig(level=logging.DEBUG, format="%(name)s: %(message)s")
    hidden = [os.environ.get(name) for name in ("ORTHANC_PASSWORD", "ORTHANC_TOKEN",
                                                "ORTHANC_DST_PASSWORD", "ORTHANC_DST_TOKEN")]
    try:
        return args.run(_cli_connection(args.url), args)
    except BrokenPipeError:  # `| head`: stop quietly, and keep Python from complaining at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (OrthancError, OSError) as exc:
        if args.debug:
            raise
        line = _one_line(exc)
        for secret in filter(None, hidden):  # in case a server echoes one back
            line = line.replace(secret, "***")
        print(f"orthanc_fn {args.command}: {line}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"orthanc_fn {args.command}: interrupted", file=sys.stderr)
        return 130


def _cli_connection(url, prefix="ORTHANC_"):
    """The server at ``url`` with the credentials of ``{prefix}USER``, ``PASSWORD``, ``TOKEN``."""
    env = os.environ
    user, token = env.get(prefix + "USER"), env.get(prefix + "TOKEN")
    auth = (user, env.get(prefix + "PASSWORD", "")) if user else None
    return Connection(url or env.get(prefix + "URL") or "http://localhost:8042", auth=auth,
                      token=token or None)


def _cli_parser(argparse):
    def level(text):
        try:
            return _level(text)
        except OrthancValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    def pair(text):
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
        return key, value

    def day(text):
        try:
            return datetime.date.fromisoformat(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {text!r}") \
                from None

    def options(parser, after_command):
        """The options every command takes, before or after the command name."""
        unset = dict(default=argparse.SUPPRESS) if after_command else {}
        parser.add_argument("--url", **unset,
                            help="server URL (default: $ORTHANC_URL, else http://localhost:8042)")
        parser.add_argument("-q", "--quiet", action="store_true", **unset,
                            help="no progress and no messages on stderr")
        parser.add_argument("--debug", action="store_true", **unset,
                            help="log every request and show tracebacks")

    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="orthanc_fn", formatter_class=formatter, epilog=_CLI_EPILOG,
        description="Command line for the Orthanc DICOM server's REST API.")
    parser.add_argument("--version", action="version", version=f"orthanc_fn {__version__}")
    options(parser, after_command=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name, run, summary, **kwargs):
        sub = commands.add_parser(name, help=summary, description=summary,
                                  formatter_class=formatter, **kwargs)
        options(sub, after_command=True)
        sub.set_defaults(run=run)
        return sub

    command("alive", _cli_alive, "tell whether the server answers (exit 1 when it does not)")
    command("system", _cli_system, "print the server's /system")
    command("stats", _cli_stats, "print the server's /statistics")

    sub = command("upload", _cli_upload, "upload DICOM files, ZIPs and folders (recursive)")
    sub.add_argument("paths", nargs="+", metavar="PATH", help="a file or a folder")
    sub.add_argument("-j", "--jobs", type=int, metavar="N", help="parallel uploads")
    sub.add_argument("--ignore-errors", action="store_true",
                     help="go on past files Orthanc refuses and list them in the output")

    sub = command("find", _cli_find, "find resources by DICOM tags; prints JSON lines",
                  epilog="example: orthanc_fn find studies PatientName='DOE*' StudyDate=20260101-")
    sub.add_argument("level", type=level, help="patients, studies, series or instances")
    sub.add_argument("query", nargs="*", type=pair, metavar="KEY=VALUE",
                     help="DICOM keyword and value (wildcards * ?, date ranges A-B)")
    sub.add_argument("--ids", action="store_true", help="print ids only")
    sub.add_argument("--limit", type=int, metavar="N", help="stop after N matches")
    sub.add_argument("--case-insensitive", action="store_true",
                     help="match PatientName and other texts ignoring case")

    sub = command("download", _cli_download, "download a resource as a ZIP archive")
    sub.add_argument("level", type=level, help="patients, studies or series")
    sub.add_argument("orthanc_id", metavar="ID")
    sub.add_argument("dest", metavar="DEST", help="path of the ZIP file to write")

    sub = command("daily-stats", _cli_daily_stats,
                  "count resources per day of StudyDate (default: the last 8 days)")
    sub.add_argument("level", type=level, help="studies, series or instances")
    sub.add_argument("--from", dest="from_date", type=day, metavar="YYYY-MM-DD")
    sub.add_argument("--to", dest="to_date", type=day, metavar="YYYY-MM-DD")
    sub.add_argument("--table", action="store_true", help="print a table instead of JSON")

    sub = command("anonymize", _cli_anonymize, "anonymize a resource; prints the new id")
    sub.add_argument("level", type=level, help="patients, studies, series or instances")
    sub.add_argument("orthanc_id", metavar="ID")
    sub.add_argument("--keep", action="append", default=[], metavar="TAG",
                     help="keep this tag's value (repeat for several)")
    sub.add_argument("--replace", action="append", default=[], type=pair, metavar="TAG=VALUE",
                     help="set this tag (repeat for several)")
    sub.add_argument("--remove", action="append", default=[], metavar="TAG",
                     help="remove this tag too (repeat for several)")
    sub.add_argument("--keep-private-tags", action="store_true", help="keep private tags")
    sub.add_argument("--delete-original", action="store_true",
                     help="delete the original once the anonymized copy is stored")
    sub.add_argument("--force", action="store_true",
                     help="allow replacing identifiers such as StudyInstanceUID")
    sub.add_argument("--timeout", type=float, metavar="SECONDS", help="give up after that")

    sub = command("send", _cli_send, "send resources to a DICOM modality or an Orthanc peer")
    target = sub.add_mutually_exclusive_group(required=True)
    target.add_argument("--modality", metavar="NAME", help="C-STORE to this configured modality")
    target.add_argument("--peer", metavar="NAME", help="send to this configured Orthanc peer")
    sub.add_argument("orthanc_ids", nargs="+", metavar="ID")
    sub.add_argument("--timeout", type=float, metavar="SECONDS", help="give up after that")

    sub = command("watch", _cli_watch,
                  "follow the change log: print each change as a JSON line, or run a command",
                  epilog="example: orthanc_fn watch --type StableStudy --cursor seen.txt "
                         "--exec 'forward.sh {id}'\nStops on Ctrl-C or SIGTERM, the cursor "
                         "saved.")
    sub.add_argument("--type", dest="change_types", action="append", metavar="CHANGE",
                     help="only this ChangeType, e.g. StableStudy (repeat for several)")
    sub.add_argument("--since", type=int, default=0, metavar="SEQ",
                     help="start after this change number when there is no cursor file")
    sub.add_argument("--cursor", metavar="FILE",
                     help="file holding the last change handled: resume from it, keep it up "
                          "to date")
    sub.add_argument("--exec", dest="exec_command", metavar="CMD",
                     help="run CMD for each change ({id}, {type}, {seq}, {level} replaced); "
                          "a failure is retried, then reported on stderr")
    sub.add_argument("-j", "--jobs", type=int, default=1, metavar="N",
                     help="handle N changes at once (one resource's changes stay in order)")
    sub.add_argument("--poll", type=float, default=1.0, metavar="SECONDS",
                     help="wait between two looks at an idle log (default 1)")
    sub.add_argument("--timeout", type=float, default=600.0, metavar="SECONDS",
                     help="longest run of one --exec command (default 600)")

    for name, run, summary in (
            ("sync", _cli_sync, "copy to DST_URL the resources of SRC_URL it lacks; prints "
                                "the report"),
            ("compare", _cli_compare, "list what is only on SRC_URL, only on DST_URL, or on "
                                      "both with a different instance count")):
        sub = command(name, run, summary,
                      epilog="Credentials: SRC from ORTHANC_USER/PASSWORD/TOKEN, DST from "
                             "ORTHANC_DST_USER/PASSWORD/TOKEN.")
        sub.add_argument("src_url", metavar="SRC_URL")
        sub.add_argument("dst_url", metavar="DST_URL")
        sub.add_argument("query", nargs="*", type=pair, metavar="KEY=VALUE",
                         help="only the resources matching these DICOM tags")
        sub.add_argument("--level", type=level, default=STUDIES,
                         help="patients, studies (default), series or instances")
    sub = commands.choices["sync"]
    sub.add_argument("--method", choices=("auto",) + _SYNC_METHODS, default="auto",
                     help="how to copy (default: the first configured of peer, dicomweb, "
                          "transfers, copy)")
    sub.add_argument("--since", type=int, metavar="SEQ",
                     help="only resources the change log names after this change number")
    sub.add_argument("--no-verify", dest="verify", action="store_false",
                     help="skip the MD5 check of each instance on DST_URL")
    sub.add_argument("-j", "--jobs", type=int, default=4, metavar="N",
                     help="jobs or copies at once (default 4)")
    sub.add_argument("--timeout", type=float, metavar="SECONDS",
                     help="longest wait for one job (default one hour)")
    return parser


def _cli_print(data):
    import sys
    json.dump(data, sys.stdout, indent=2)
    sys.stdout.write("\n")
    sys.stdout.flush()


def _cli_alive(conn, args):
    alive = is_alive(conn)
    _cli_print(alive)
    if not alive and not args.quiet:
        import sys
        print(f"orthanc_fn alive: no answer from {conn.url} with these credentials",
              file=sys.stderr)
    return 0 if alive else 1


def _cli_system(conn, args):
    _cli_print(get_system(conn))
    return 0


def _cli_stats(conn, args):
    _cli_print(get_statistics(conn))
    return 0


def _cli_upload(conn, args):
    instances_ids, errors = [], []
    for path in args.paths:
        if not os.path.isdir(path):  # a file named on the command line must be valid
            instances_ids += upload_file(conn, path)
            continue
        with _CliProgress(f"upload {path}", args) as progress:
            result = upload_folder(conn, path, ignore_errors=args.ignore_errors,
                                   workers=args.jobs, progress=progress)
        instances_ids += result.instances_ids
        errors += [{"path": str(bad), "message": message} for bad, message in result.errors]
    _cli_print({"instances_ids": instances_ids, "errors": errors})
    _cli_message(args, f"upload: {len(instances_ids)} instances stored, "
                       f"{len(errors)} files refused")
    return 0


def _cli_find(conn, args):
    import itertools
    import sys
    matches = iter_find(conn, args.level, dict(args.query), expand=not args.ids,
                        case_sensitive=not args.case_insensitive)
    for match in itertools.islice(matches, args.limit):
        sys.stdout.write(json.dumps(match) + "\n")
        sys.stdout.flush()
    return 0


def _cli_download(conn, args):
    with _CliProgress("download", args, unit="B") as progress:
        path = download_archive(conn, args.level, args.orthanc_id, args.dest,
                                progress=progress)
    _cli_print({"path": os.fspath(path), "size": os.path.getsize(path)})
    return 0


def _cli_daily_stats(conn, args):
    if args.table:
        print_daily_stats(conn, args.level, args.from_date, args.to_date)
    else:
        stats = get_daily_stats(conn, args.level, args.from_date, args.to_date)
        _cli_print([{"date": str(date), "count": count} for date, count in stats])
    return 0


def _cli_anonymize(conn, args):
    with _CliProgress("anonymize", args, unit="%") as progress:
        new_id = anonymize(conn, args.level, args.orthanc_id, keep_tags=args.keep,
                           replace_tags=dict(args.replace), remove_tags=args.remove,
                           force=args.force, keep_private_tags=args.keep_private_tags,
                           delete_original=args.delete_original, timeout=args.timeout,
                           progress=progress)
    _cli_print({"ID": new_id, "level": args.level})
    return 0


def _cli_send(conn, args):
    if args.modality:
        _cli_print(modality_send(conn, args.modality, args.orthanc_ids, timeout=args.timeout))
    else:
        _cli_print(peer_send(conn, args.peer, args.orthanc_ids, timeout=args.timeout))
    return 0


def _cli_watch(conn, args):
    import signal
    import subprocess
    import sys

    stop, lock = threading.Event(), threading.Lock()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())

    def show(change):
        with lock:
            sys.stdout.write(json.dumps(change) + "\n")
            sys.stdout.flush()

    def run(change):
        import shlex
        fields = {"{id}": change["ID"], "{type}": change["ChangeType"],
                  "{seq}": str(change["Seq"]), "{level}": change["ResourceType"]}
        words = []
        for word in shlex.split(args.exec_command):
            for field, value in fields.items():
                word = word.replace(field, value)
            words.append(word)
        subprocess.run(words, check=True, timeout=args.timeout, stdin=subprocess.DEVNULL)

    def failed(change, error):
        _cli_message(args, f"watch: change {change['Seq']} ({change['ChangeType']} "
                           f"{change['ID']}) failed: {_one_line(error)}")

    try:
        watch_changes(conn, run if args.exec_command else show, change_types=args.change_types,
                      since=args.since, cursor=args.cursor, workers=args.jobs,
                      poll_interval=args.poll, stop=stop, on_error=failed)
    except KeyboardInterrupt:  # the cursor is saved by then
        pass
    return 0


def _cli_sync(conn, args):
    src, dst = _cli_connection(args.src_url), _cli_connection(args.dst_url, "ORTHANC_DST_")
    with _CliProgress(f"sync {args.level}", args) as progress:
        report = sync(src, dst, level=args.level, query=dict(args.query) or None,
                      since=args.since, method=args.method, verify=args.verify,
                      workers=args.jobs, progress=progress, timeout=args.timeout)
    _cli_print({"copied": report.copied, "present": report.present,
                "failed": [{"id": orthanc_id, "reason": reason}
                           for orthanc_id, reason in report.failed],
                "seconds": round(report.seconds, 3)})
    _cli_message(args, f"sync: {len(report.copied)} copied, {len(report.present)} already "
                       f"there, {len(report.failed)} failed in {_cli_duration(report.seconds)}")
    return 1 if report.failed else 0


def _cli_compare(conn, args):
    src, dst = _cli_connection(args.src_url), _cli_connection(args.dst_url, "ORTHANC_DST_")
    _cli_print(compare(src, dst, level=args.level, query=dict(args.query) or None)._asdict())
    return 0


def _cli_message(args, text):
    if not args.quiet:
        import sys
        print(text, file=sys.stderr)


class _CliProgress:
    """Show ``progress(done, total)`` calls on stderr (thread-safe; ``total`` may be None).

    On a terminal: one line redrawn with a bar, count, rate and ETA. Otherwise: a plain line
    every ``interval`` seconds. Leaving the ``with`` block prints the final state; nothing at
    all with ``--quiet``.
    """

    def __init__(self, label, args, unit="", interval=5.0):
        import sys
        self.stream = sys.stderr
        self.label, self.unit, self.quiet = label, unit, args.quiet
        self.tty = self.stream.isatty()
        self.interval = 0.1 if self.tty else interval
        self.start = self.shown = time.monotonic()
        self.state = None
        self.lock = threading.Lock()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        with self.lock:
            if self.state is not None and not self.quiet:
                self._show(time.monotonic(), final=True)

    def __call__(self, done, total=None):
        with self.lock:
            self.state = (done, total)
            now = time.monotonic()
            if not self.quiet and now - self.shown >= self.interval:
                self.shown = now
                self._show(now, final=False)

    def _amount(self, value, rate=False):
        if self.unit == "B":
            return f"{value / 1e6:.1f} MB" if value >= 1e6 else f"{value / 1e3:.0f} kB"
        return f"{value:.1f}" if rate else str(int(value))

    def _show(self, now, final):
        done, total = self.state
        elapsed = max(now - self.start, 1e-6)
        rate = done / elapsed
        parts = [self._amount(done) + (f"/{self._amount(total)}" if total else "")]
        if total:
            parts.append(f"{100 * done / total:.0f}%")
        parts.append(f"{self._amount(rate, rate=True)}/s")
        if final:
            parts.append(f"in {_cli_duration(elapsed)}")
        elif total and rate > 0:
            parts.append(f"ETA {_cli_duration((total - done) / rate)}")
        text = "  ".join(parts)
        if self.tty:
            bar = ""
            if total:
                filled = int(20 * min(done, total) / total)
                bar = "[" + "#" * filled + "-" * (20 - filled) + "]  "
            self.stream.write(f"\r{self.label}  {bar}{text}\x1b[K" + ("\n" if final else ""))
        else:
            self.stream.write(f"{self.label}: {text}\n")
        self.stream.flush()


def _cli_duration(seconds):
    minutes, seconds = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


if __name__ == "__main__":
    raise SystemExit(main())
