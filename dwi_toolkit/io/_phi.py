"""Patient identifiers that must never reach outputs unless the user asks for them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["PHI_KEYS", "strip_phi"]

#: Sidecar/DICOM keywords that identify a patient, an operator or an institution/visit.
PHI_KEYS = frozenset(
    {
        "PatientName", "PatientID", "PatientBirthDate", "PatientBirthTime", "PatientSex",
        "PatientAge", "PatientWeight", "PatientSize", "PatientAddress", "PatientTelephoneNumbers",
        "OtherPatientIDs", "OtherPatientNames", "PatientMotherBirthName", "EthnicGroup",
        "ReferringPhysicianName", "PerformingPhysicianName", "OperatorsName", "RequestingPhysician",
        "PhysiciansOfRecord", "NameOfPhysiciansReadingStudy", "AccessionNumber", "StudyID",
        "StudyDate", "StudyTime", "SeriesDate", "SeriesTime", "AcquisitionDate", "AcquisitionTime",
        "ContentDate", "ContentTime", "AcquisitionDateTime", "InstitutionName",
        "InstitutionAddress", "InstitutionalDepartmentName", "StationName", "DeviceSerialNumber",
        "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID",
        "IssuerOfPatientID", "MedicalRecordLocator", "PatientComments", "AdditionalPatientHistory",
    }
)


def strip_phi(meta: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of `meta` without patient, operator, institution or visit identifiers.

    Examples
    --------
    >>> strip_phi({"PatientName": "Doe^J", "EchoTime": 0.07})
    {'EchoTime': 0.07}
    """
    return {k: v for k, v in meta.items() if k not in PHI_KEYS}
