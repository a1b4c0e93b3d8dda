"""Third-party DICOM peers for the tests: pynetdicom SCPs and DCMTK's storescp / wlmscpfs.

Every peer listens on a free loopback port and is stopped at the end (``with`` or ``stop()``).

- ``PynetdicomPeer``: one pynetdicom AE in this process's threads. It answers C-ECHO, C-FIND
  (patient, study, series, instance levels: ``*`` / ``?`` wildcards, date ranges, UID lists;
  worklist queries against ``worklist``), C-MOVE (it C-STOREs to the move destination named in
  ``destinations``), C-GET (C-STOREs on the same association) and C-STORE (kept in
  ``stored``). ``behaviour="reject"`` rejects every association; ``"hang"`` accepts it and
  never answers a request (its handlers block until the peer stops).
- ``DcmtkPeer.storescp(folder)`` / ``DcmtkPeer.wlmscpfs(folder)``: DCMTK's programs as
  subprocesses (Debian's ``dcmtk``).
"""
from __future__ import annotations

import fnmatch
import io
import os
import socket
import subprocess
import threading
import time

from orthanc_rig import free_port

_LEVEL_KEYS = {"PATIENT": "PatientID", "STUDY": "StudyInstanceUID",
               "SERIES": "SeriesInstanceUID", "IMAGE": "SOPInstanceUID"}
_WORKLIST = "1.2.840.10008.5.1.4.31"
_SERVICE_FAILED = 0xC000


def _wait_listening(port, timeout=20.0, process=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"peer exited at start with status {process.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def read_dataset(data):
    """A pydicom Dataset from the bytes of a DICOM file."""
    import pydicom
    return pydicom.dcmread(io.BytesIO(data))


def worklist_dataset(patient_name, accession, station_aet, *, modality="CT",
                     date="20261130", charset="ISO_IR 100"):
    """A modality worklist item (as a pydicom Dataset with a file meta header)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid
    ds = Dataset()
    ds.SpecificCharacterSet = charset
    ds.PatientName, ds.PatientID, ds.AccessionNumber = patient_name, "P" + accession, accession
    ds.StudyInstanceUID = generate_uid()
    ds.PatientBirthDate, ds.PatientSex, ds.ReferringPhysicianName = "19700101", "O", ""
    ds.RequestedProcedureID, ds.RequestedProcedureDescription = "RP" + accession, "TEST"
    step = Dataset()  # what wlmscpfs requires of a complete item, no less
    step.Modality, step.ScheduledStationAETitle = modality, station_aet
    step.ScheduledProcedureStepStartDate, step.ScheduledProcedureStepStartTime = date, "080000"
    step.ScheduledProcedureStepID, step.ScheduledProcedureStepDescription = "SPS1", "TEST"
    step.ScheduledPerformingPhysicianName = ""
    ds.ScheduledProcedureStepSequence = [step]
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = _WORKLIST
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def write_dataset(ds, path):
    """Write a Dataset as a DICOM file (pydicom 2 or 3)."""
    import pydicom
    if int(pydicom.__version__.split(".")[0]) >= 3:
        ds.save_as(path, enforce_file_format=True)
    else:
        ds.is_little_endian, ds.is_implicit_VR = True, False
        ds.save_as(path, write_like_original=False)


# ---- matching, as a PACS does it (enough of PS3.4 C.2.2.2 for the tests)

def _matches_value(value, wanted, vr):
    if vr == "UI" and "\\" in wanted:
        return value in wanted.split("\\")
    if vr in ("DA", "TM", "DT") and "-" in wanted:
        low, _, high = wanted.partition("-")
        return (not low or value >= low) and (not high or value <= high)
    return fnmatch.fnmatchcase(value, wanted.replace("[", "[[]"))


def _matches(ds, query):
    for element in query:
        # Orthanc 1.10 puts MediaStorageSOPInstanceUID (group 0002) in an IMAGE-level C-MOVE
        # identifier: a PACS ignores the file meta group, so do we
        if element.keyword in ("QueryRetrieveLevel", "SpecificCharacterSet") \
                or element.tag.group == 0x0002:
            continue
        if element.VR == "SQ":
            if not element.value:
                continue
            items = ds.get(element.keyword) or []
            if not any(_matches(item, element.value[0]) for item in items):
                return False
            continue
        wanted = "" if element.value is None else str(element.value)
        if wanted in ("", "*"):
            continue
        if element.keyword not in ds:
            return False
        value = ds[element.keyword].value
        if not _matches_value("" if value is None else str(value), wanted, element.VR):
            return False
    return True


def _answer(ds, query):
    """The query's keys filled from ``ds`` (sequences item by item)."""
    from pydicom.dataset import Dataset
    answer = Dataset()
    for element in query:
        keyword = element.keyword
        if not keyword or keyword == "SpecificCharacterSet":
            continue
        if element.VR == "SQ":
            items = ds.get(keyword) or []
            asked = element.value[0] if element.value else Dataset()
            setattr(answer, keyword, [_answer(item, asked) for item in items])
        elif keyword in ds:
            setattr(answer, keyword, ds[keyword].value)
        else:
            answer.add_new(element.tag, element.VR, element.value)
    answer.SpecificCharacterSet = ds.get("SpecificCharacterSet", "ISO_IR 192")
    return answer


class PynetdicomPeer:
    """A pynetdicom SCP on 127.0.0.1 (see the module docstring); a context manager.

    ``datasets``: the archive (pydicom Datasets) answered by C-FIND and sent by C-MOVE/C-GET;
    ``worklist``: worklist items; ``destinations``: AET -> (host, port) for C-MOVE.
    ``requests`` lists the DIMSE services asked (``"C-ECHO"``, ``"C-FIND"``...), ``queries``
    the C-FIND identifiers received, ``stored`` the datasets received by C-STORE.
    """

    def __init__(self, aet="PYNETDICOM", *, datasets=(), worklist=(), destinations=None,
                 behaviour="answer"):
        from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, StoragePresentationContexts, evt
        from pynetdicom import sop_class as sc
        self.aet = aet
        self.port = free_port()
        self.datasets = list(datasets)
        self.worklist = list(worklist)
        self.destinations = dict(destinations or {})
        self.behaviour = behaviour
        self.requests, self.queries, self.stored = [], [], []
        self._stopped = threading.Event()
        ae = AE(ae_title=aet)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
        if behaviour == "reject":
            ae.require_calling_aet = ["NOBODY-KNOWN"]
        ae.add_supported_context(sc.Verification)
        for model in (sc.PatientRootQueryRetrieveInformationModelFind,
                      sc.StudyRootQueryRetrieveInformationModelFind,
                      sc.ModalityWorklistInformationFind,
                      sc.PatientRootQueryRetrieveInformationModelMove,
                      sc.StudyRootQueryRetrieveInformationModelMove,
                      sc.PatientRootQueryRetrieveInformationModelGet,
                      sc.StudyRootQueryRetrieveInformationModelGet):
            ae.add_supported_context(model)
        for context in StoragePresentationContexts:  # C-STORE SCP, and SCU role for C-GET
            ae.add_supported_context(context.abstract_syntax, ALL_TRANSFER_SYNTAXES,
                                     scu_role=True, scp_role=True)
        ae.requested_contexts = StoragePresentationContexts  # C-MOVE's sub-associations
        handlers = [(evt.EVT_C_ECHO, self._on_echo), (evt.EVT_C_FIND, self._on_find),
                    (evt.EVT_C_MOVE, self._on_move), (evt.EVT_C_GET, self._on_get),
                    (evt.EVT_C_STORE, self._on_store)]
        self._ae = ae
        self._server = ae.start_server(("127.0.0.1", self.port), block=False,
                                       evt_handlers=handlers)

    def _hangs(self, service):
        """Note the request; a hung peer then blocks until stop() and answers True."""
        self.requests.append(service)
        if self.behaviour == "hang":
            self._stopped.wait(600)
            return True
        return False

    def _on_echo(self, event):
        return _SERVICE_FAILED if self._hangs("C-ECHO") else 0x0000

    def _match(self, query):
        level = str(query.get("QueryRetrieveLevel", "STUDY"))
        key = _LEVEL_KEYS.get(level, "StudyInstanceUID")
        seen = {}
        for ds in self.datasets:
            if _matches(ds, query) and str(ds.get(key, "")) not in seen:
                seen[str(ds.get(key, ""))] = ds
        return list(seen.values())

    def _on_find(self, event):
        if self._hangs("C-FIND"):
            yield _SERVICE_FAILED, None
            return
        query = event.identifier
        self.queries.append(query)
        if event.request.AffectedSOPClassUID == _WORKLIST:
            matches = [ds for ds in self.worklist if _matches(ds, query)]
        else:
            matches = self._match(query)
        for ds in matches:
            answer = _answer(ds, query)
            if "QueryRetrieveLevel" in query:
                answer.QueryRetrieveLevel = query.QueryRetrieveLevel
            yield 0xFF00, answer

    def _instances(self, query):
        """Every archived instance under the identifier (whatever its level)."""
        return [ds for ds in self.datasets if _matches(ds, query)]

    def _on_move(self, event):
        if self._hangs("C-MOVE"):
            yield None, None
            return
        destination = event.move_destination
        destination = destination.decode() if isinstance(destination, bytes) else destination
        address = self.destinations.get(destination.strip())
        if address is None:
            yield None, None  # pynetdicom answers 0xA801 (unknown move destination)
            return
        instances = self._instances(event.identifier)
        yield address
        yield len(instances)
        for ds in instances:
            yield 0xFF00, ds

    def _on_get(self, event):
        if self._hangs("C-GET"):
            yield 0
            return
        instances = self._instances(event.identifier)
        yield len(instances)
        for ds in instances:
            yield 0xFF00, ds

    def _on_store(self, event):
        if self._hangs("C-STORE"):
            return _SERVICE_FAILED
        ds = event.dataset
        ds.file_meta = event.file_meta
        self.stored.append(ds)
        return 0x0000

    def stop(self):
        self._stopped.set()
        self._server.shutdown()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class DcmtkPeer:
    """A DCMTK program as a subprocess on a free loopback port; a context manager."""

    def __init__(self, command, port, folder):
        self.port = port
        self.folder = folder
        self.log_path = os.path.join(folder, "dcmtk.log")
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL)
        try:
            _wait_listening(port, process=self.process)
        except RuntimeError:
            self.stop()
            raise

    @classmethod
    def storescp(cls, folder, aet="STORESCP"):
        """``storescp``: writes every received instance into ``folder``."""
        port = free_port()
        return cls(["storescp", "--aetitle", aet, "--output-directory", str(folder),
                    str(port)], port, str(folder))

    @classmethod
    def wlmscpfs(cls, folder, aet="WLMSCPFS"):
        """``wlmscpfs``: answers worklist queries from the ``.wl`` files of ``folder/aet``."""
        os.makedirs(os.path.join(folder, aet), exist_ok=True)
        open(os.path.join(folder, aet, "lockfile"), "w").close()  # wlmscpfs needs one
        port = free_port()
        peer = cls(["wlmscpfs", "--data-files-path", str(folder), str(port)], port, str(folder))
        peer.aet = aet
        peer.worklist_folder = os.path.join(folder, aet)
        return peer

    def received(self):
        """The files storescp wrote (names starting with the modality, e.g. ``CT.1.2...``)."""
        return sorted(name for name in os.listdir(self.folder) if name != "dcmtk.log")

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

