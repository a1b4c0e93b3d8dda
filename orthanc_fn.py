"""orthanc_fn: a small, fast, dependable client for the Orthanc DICOM server's REST API.

Plain functions over a ``Connection`` namedtuple; only the standard library and urllib3.
The file works alone: copy it next to a script or an Orthanc Python plugin.

Quick start::

    import orthanc_fn as o
    conn = o.Connection("http://localhost:8042", auth=("orthanc", "orthanc"))
    ids, errors = o.upload_folder(conn, "/data/dicom")
    studies = o.find(conn, o.STUDIES, {"PatientName": "DOE*"})
    o.download_archive(conn, o.STUDIES, studies[0]["ID"], "study.zip")

Sections (``grep '^# ====' orthanc_fn.py``): Constants, Errors, Connection and transport,
System, Resources, Tags metadata attachments labels, Upload and download, Find and statistics,
Modify and anonymize, Jobs, Modalities peers transfers, InstancesSet (pure),
InstancesSet (server), Command line.
"""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = [
    # Constants
    "PATIENTS", "STUDIES", "SERIES", "INSTANCES", "LEVELS", "FEATURES",
    # Errors
    "OrthancError", "OrthancValueError", "HttpError", "NotFound", "NotAuthorized", "Conflict",
    "BadFileFormat", "OrthancConnectionError", "OrthancTimeout", "JobFailed",
    "TooManyResourcesFound", "UnsupportedByServer",
    # Connection and transport, System
    "Connection", "Changes", "is_alive", "wait_started", "get_system", "get_version",
    "get_statistics", "get_changes", "iter_changes", "delete_all_content",
    "get_capabilities", "is_version_at_least", "has_plugin", "get_metrics", "get_log_level",
    "set_log_level",
    # Resources
    "get_all_ids", "get_info", "exists", "get_parent_id", "get_children_ids", "delete",
    "get_resource_statistics", "get_first_instance_id", "get_modalities_of",
    "get_ordered_instances_ids", "get_preview", "create_dicom", "attach_pdf",
    "get_pdf_instances", "download_pdf", "merge_study", "split_study",
    # Tags, metadata, attachments, labels
    "get_tags", "get_simplified_tags", "set_string_metadata", "get_string_metadata",
    "set_binary_metadata", "get_binary_metadata", "has_metadata", "delete_metadata",
    "get_string_metadata_with_revision", "get_binary_metadata_with_revision",
    "set_attachment", "get_attachment", "delete_attachment", "get_attachment_with_revision",
    "get_labels", "add_label", "delete_label", "get_all_labels",
    # Upload and download
    "UploadResult", "UploadDetails", "upload", "upload_file", "upload_folder",
    "upload_folder_details", "upload_files_dicom_web", "get_file", "download_file",
    "download_archive", "download_instances", "download_media",
    # Find and statistics
    "lookup", "find", "iter_find", "get_daily_stats", "print_daily_stats",
    # Modify and anonymize
    "anonymize", "anonymize_as_job", "modify", "modify_as_job", "BulkResult", "modify_bulk",
    "modify_bulk_as_job", "anonymize_bulk", "anonymize_bulk_as_job",
    # Jobs
    "get_job", "wait_job", "cancel_job", "pause_job", "resume_job", "resubmit_job",
    # Modalities, peers, transfers
    "modality_echo", "modality_query", "modality_query_studies", "modality_retrieve",
    "modality_retrieve_study", "modality_send", "modality_send_as_job", "get_modalities",
    "configure_modality", "delete_modality", "modality_find_worklist", "peer_send",
    "peer_send_as_job", "get_peers", "configure_peer", "delete_peer", "transfers_send",
    "transfers_send_as_job", "dicomweb_send", "dicomweb_retrieve",
    # InstancesSet
    "InstancesSet", "instances_set_from_study", "instances_set_from_series",
    "instances_set_from_instances", "modify_instances_set", "delete_instances_set",
    "download_instances_set",
    # Command line
    "main",
]

import json
import logging
import os
import re
import threading
import time
from typing import NamedTuple, Optional, Tuple
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

try:
    import urllib3
except ImportError as exc:  # pragma: no cover - exercised by a test in a bare interpreter
    raise ImportError(
        "orthanc_fn needs urllib3: `pip install urllib3`, or inside an Orthanc Python plugin "
        "`apt-get install python3-urllib3`") from exc

_log = logging.getLogger(__name__)


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

# Which feature needs which Orthanc version: drives UnsupportedByServer.
FEATURES = {
    "labels": (1, 12, 0),
    "requested_tags": (1, 11, 0),
    "find_since_with_limit": (1, 0, 0),
    "revisions": (1, 9, 2),
    "bulk_modify": (1, 9, 0),
    "extended_changes": (1, 12, 5),
    "extended_find": (1, 12, 5),
}

_DEFAULT_TIMEOUT = urllib3.Timeout(connect=3.0, read=60.0)
_JSON = "application/json"


# ==== Errors ====

class OrthancError(Exception):
    """Root of every error orthanc_fn raises; keyword context becomes attributes.

    Errors pickle: ``args`` holds the message and the attributes travel in ``__dict__``.
    """

    def __init__(self, message: str = "", **context):
        super().__init__(message)
        self.__dict__.update(context)


class OrthancValueError(OrthancError, ValueError):
    """An argument is wrong before anything is sent (URL without scheme, bad id, bad level)."""


class HttpError(OrthancError):
    """Orthanc answered with a non-2xx status.

    Attributes: ``status``, ``method``, ``url`` (never with credentials) and ``orthanc``, the
    JSON error body Orthanc sent (a dict with ``Message``, ``Details``, ``OrthancStatus``...) or
    None.
    """
    status = None
    method = None
    url = None
    orthanc = None


class NotFound(HttpError):
    """404: the resource, route, modality or metadata is unknown."""


class NotAuthorized(HttpError):
    """401 or 403: wrong credentials, or a token the server refuses."""


class Conflict(HttpError):
    """409: for example a stale revision."""


class BadFileFormat(HttpError):
    """Orthanc refused a file as not DICOM; ``path`` names the file when there was one."""
    path = None


class OrthancConnectionError(OrthancError, ConnectionError):
    """The server could not be reached (refused, unknown host, TLS failure, reset)."""


class OrthancTimeout(OrthancError, TimeoutError):
    """The server or a job did not answer in time."""


class JobFailed(OrthancError):
    """An Orthanc job ended in ``Failure``; ``job`` is Orthanc's job dict."""
    job = None


class TooManyResourcesFound(OrthancError):
    """A lookup that expects one resource found several."""


class UnsupportedByServer(OrthancError):
    """The server is too old for the asked feature; ``needed`` and ``actual`` are versions."""
    needed = None
    actual = None


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

    def __new__(cls, url, auth=None, token=None):
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

    def __repr__(self):
        auth = None if self.auth is None else (self.auth[0], "***")
        token = None if self.token is None else "***"
        return f"Connection(url={self.url!r}, auth={auth!r}, token={token!r})"

    __str__ = __repr__

    def __getnewargs__(self):
        return tuple(self)


def _normalize_url(url, auth):
    text = str(url).strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        shown = _redact_url(text)
        raise OrthancValueError(
            f"Connection URL must start with http:// or https://, got {shown!r}")
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, netloc = netloc.rsplit("@", 1)
        if auth is None:
            user, _, password = userinfo.partition(":")
            from urllib.parse import unquote
            auth = (unquote(user), unquote(password))
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", "")), auth


def _redact_url(text):
    return re.sub(r"//[^/@]*@", "//***@", text)


def _new_pool():
    return urllib3.PoolManager(num_pools=32, maxsize=32, block=True, retries=False,
                               timeout=_DEFAULT_TIMEOUT)


_POOL = _new_pool()
_POOL_LOCK = threading.Lock()

# Connection failures before sending, and 502/503, are retried for every method. A read
# timeout or a reset after sending is retried only for idempotent methods: never a POST twice.
_RETRY_IDEMPOTENT = urllib3.Retry(
    total=4, connect=3, read=2, status=4, other=0, backoff_factor=0.1,
    status_forcelist=(502, 503), allowed_methods=("GET", "PUT", "DELETE", "HEAD"),
    raise_on_status=False, respect_retry_after_header=True)
_RETRY_POST = _RETRY_IDEMPOTENT.new(read=0, allowed_methods=("POST",))


def _reset_pool_after_fork():  # a child process must not share the parent's sockets
    global _POOL
    _POOL = _new_pool()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_pool_after_fork)


def _segment(value, what="id"):
    """Quote one path segment; refuse anything that could reach another endpoint."""
    text = str(value)
    if not text or text in (".", "..") or any(c in text for c in "/\\?#%") \
            or any(ord(c) < 32 for c in text):
        raise OrthancValueError(f"invalid {what} {text!r}: not a single URL path segment")
    return quote(text, safe="")


def _level(level):
    try:
        return _LEVEL_NAMES[level]
    except (KeyError, TypeError):
        raise OrthancValueError(
            f"invalid level {level!r}: use one of {', '.join(LEVELS)} "
            "(or Patient, Study, Series, Instance)") from None


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
    ``stream=True``, which the caller must release). Every urllib3 exception and every non-2xx
    answer is translated here by ``_translate``.
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
        data = response.data if not stream else response.read()
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
        return response.data.decode("utf-8", "replace")


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
    elif isinstance(orthanc, dict) and orthanc.get("OrthancStatus") == 15:
        cls = BadFileFormat
    message = f"{method} {url} -> HTTP {status}{said}"
    return cls(message, status=status, method=method, url=url, orthanc=orthanc)


def _get(conn, path, query=None, **options):
    return _request(conn, "GET", path, query=query, **options)


def _post(conn, path, json_body=None, **options):
    return _request(conn, "POST", path, json_body=json_body, **options)


def _put(conn, path, json_body=None, **options):
    return _request(conn, "PUT", path, json_body=json_body, **options)


def _delete(conn, path, **options):
    return _request(conn, "DELETE", path, **options)


def _parse_version(text):
    if text == "mainline":
        return (999, 999, 999)
    numbers = [int(n) for n in re.findall(r"\d+", str(text))[:3]]
    return tuple(numbers + [0] * (3 - len(numbers)))


def _require(conn, feature):
    """Raise UnsupportedByServer unless the server has ``feature`` (costs one GET /system)."""
    needed = FEATURES[feature]
    actual = get_version(conn)
    if actual < needed:
        raise UnsupportedByServer(
            f"{feature.replace('_', ' ')} needs Orthanc {'.'.join(map(str, needed))} or newer; "
            f"{conn.url} runs {'.'.join(map(str, actual))}", needed=needed, actual=actual)


# ==== System ====

class Changes(NamedTuple):
    """A page of Orthanc's change log: ``changes`` (list of dicts), ``last`` (Seq), ``done``."""
    changes: list
    last: int
    done: bool


def is_alive(conn, timeout=2.0):
    """Tell whether ``GET /system`` answers 200 with these credentials; never raises.

    >>> is_alive(Connection("http://127.0.0.1:9"), timeout=0.5)
    False
    """
    try:
        _get(conn, "/system", timeout=timeout, retries=False)
        return True
    except OrthancError:
        return False


def wait_started(conn, timeout=60.0):
    """Wait until the server answers ``GET /system``; True if it did within ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        if is_alive(conn, timeout=min(2.0, max(0.1, deadline - time.monotonic()))):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def get_system(conn):
    """Return Orthanc's ``/system`` dict (``Version``, ``ApiVersion``, ``DicomAet``...)."""
    return _get(conn, "/system")


def get_version(conn):
    """Return the server's version as a tuple of ints; ``mainline`` compares as newest.

    Orthanc: GET /system.
    """
    return _parse_version(get_system(conn)["Version"])


def get_statistics(conn):
    """Return ``/statistics`` (``CountStudies``, ``TotalDiskSizeMB``...)."""
    return _get(conn, "/statistics")


def get_changes(conn, since=0, limit=100):
    """Return one page of the change log after ``since`` as ``Changes(changes, last, done)``."""
    answer = _get(conn, "/changes", {"since": int(since), "limit": int(limit)})
    return Changes(answer["Changes"], answer["Last"], answer["Done"])


def iter_changes(conn, since=0, page_size=1000):
    """Yield every change after ``since`` (Orthanc's dicts), paging until ``Done``."""
    while True:
        page = get_changes(conn, since, page_size)
        yield from page.changes
        if page.done or not page.changes:
            return
        since = page.last


def delete_all_content(conn):
    """Delete every patient of the server (and so every study, series and instance)."""
    ids = _get(conn, "/patients")
    if ids:
        _post(conn, "/tools/bulk-delete", {"Resources": ids}, timeout=600)


# ==== Resources ====

def get_all_ids(conn, level):
    """Return the ids of every resource at ``level``.

    Orthanc: GET /{level}.
    """
    return _get(conn, "/" + _level(level))


def get_info(conn, level, orthanc_id):
    """Return Orthanc's dict for one resource (``MainDicomTags``, ``ParentStudy``...).

    Raises ``NotFound`` for an unknown id.
    """
    return _get(conn, f"/{_level(level)}/{_segment(orthanc_id)}")


def exists(conn, level, orthanc_id):
    """Tell whether the resource exists (False also for an id Orthanc could never have)."""
    try:
        get_info(conn, level, orthanc_id)
        return True
    except (NotFound, OrthancValueError):
        return False


def get_parent_id(conn, level, orthanc_id, parent_level):
    """Return the id of the ancestor at ``parent_level`` (e.g. the study of an instance).

    Orthanc: GET /{level}/{id}/{parent} in one request.
    """
    parent = _ORTHANC_LEVEL[_level(parent_level)].lower()
    return _get(conn, f"/{_level(level)}/{_segment(orthanc_id)}/{parent}")["ID"]


def get_children_ids(conn, level, orthanc_id, child_level):
    """Return the ids of every descendant at ``child_level`` in one request.

    >>> # get_children_ids(conn, PATIENTS, patient_id, INSTANCES)  -> every instance id
    """
    answer = _get(conn, f"/{_level(level)}/{_segment(orthanc_id)}/{_level(child_level)}")
    return [item["ID"] for item in answer]


def delete(conn, level, orthanc_ids):
    """Delete one resource (an id) or several (a list of ids)."""
    ids = [orthanc_ids] if isinstance(orthanc_ids, str) else list(orthanc_ids)
    for orthanc_id in ids:
        _delete(conn, f"/{_level(level)}/{_segment(orthanc_id)}")


# ==== Tags, metadata, attachments, labels ====


# ==== Upload and download ====

def upload(conn, buffer):
    """Store a DICOM file, or a ZIP of DICOM files, given as bytes; return the instance ids.

    An instance the server already has counts as stored. Raises ``BadFileFormat`` when
    Orthanc does not recognize the content. Orthanc: POST /instances.
    """
    answer = _post(conn, "/instances", body=bytes(buffer),
                   headers={"Content-Type": "application/octet-stream"})
    answers = answer if isinstance(answer, list) else [answer]
    return [item["ID"] for item in answers]


# ==== Find and statistics ====


# ==== Modify and anonymize ====


# ==== Jobs ====


# ==== Modalities, peers, transfers ====


# ==== InstancesSet (pure) ====


# ==== InstancesSet (server) ====


# ==== Command line ====
