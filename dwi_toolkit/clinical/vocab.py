"""Per-subject clinical input: field names, vocabularies and validation.

The field names, meanings and vocabularies are those of rule set v1 in
dwi_toolkit References §3.10 and of the vignette schema in ``§3.11``
(``indication_vignettes.json``). Two fields are added for the imaging side of the toolkit:
``suspected_levels`` (root levels suspected clinically, ``"L1"`` … ``"S1"``) and an optional
pseudonymous ``subject_id``.

Units: ages in years; ``pain_duration_weeks`` and ``conservative_treatment_weeks`` in weeks;
``prior_lumbar_mri_months_ago`` in months (dwi_toolkit References §3.10, "units: weeks, months,
years").

Missing data (dwi_toolkit References §3.10): ``None`` (JSON ``null``) means "not recorded".
For the lists, ``[]`` means "assessed, none present" and ``None`` "not assessed". The one
exception is ``prior_lumbar_mri_months_ago``, where ``None`` means "no previous lumbar MRI", as
§3.10 defines it.

This module is pure: no file access (``clinical.json`` is read by :mod:`dwi_toolkit.io.clinical`,
which builds :class:`ClinicalInput` from it). It is the one clinical vocabulary of the toolkit:
``core`` holds no clinical knowledge (``docs/architecture.md``).

Examples
--------
>>> c = ClinicalInput.from_dict({"age": 45, "radicular_pain": True, "radicular_side": "left",
...                              "suspected_levels": ["L5"], "red_flags": []})
>>> c.symptomatic_side, c.suspected_levels, c.cauda_equina_signs is None
('left', ('L5',), True)
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from ..errors import ClinicalDataError

__all__ = [
    "SCHEMA_NAME",
    "SCHEMA_VERSION",
    "DECISIVE_RED_FLAGS",
    "NON_DECISIVE_FEATURES",
    "AGE_FEATURES",
    "RED_FLAG_VOCABULARY",
    "CES_SIGNS",
    "SUSPECTED_CONDITIONS",
    "RADICULAR_SIDES",
    "SEXES",
    "SETTINGS",
    "PRESCRIBER_SPECIALTIES",
    "LEVELS",
    "INPUT_FIELDS",
    "RULE_INPUT_FIELDS",
    "VIGNETTE_KEYS",
    "ClinicalInput",
    "clinical_json_schema",
    "load_packaged_schema",
]

#: Name and version of the ``clinical.json`` schema. Minor versions add optional fields only.
SCHEMA_NAME = "dwi_toolkit.clinical"
SCHEMA_VERSION = "1.0"

#: Red flags that decide rule R-RF (dwi_toolkit References §3.2, column "v1" = decisive).
DECISIVE_RED_FLAGS: tuple[str, ...] = (
    "history_of_cancer",
    "suspected_cancer",
    "unexplained_weight_loss",
    "fever",
    "suspected_spinal_infection",
    "intravenous_drug_use",
    "immunosuppression",
    "significant_trauma",
    "osteoporosis",
    "prolonged_corticosteroid_use",
    "progressive_neurological_deficit",
    "severe_neurological_deficit",
    "structural_deformity",
    "systemically_unwell",
    "widespread_neurological_signs",
    "suspected_spondyloarthritis",
)

#: Non-decisive features that may appear in ``red_flags`` (§3.2, §3.10; used by R-WEAK).
NON_DECISIVE_FEATURES: tuple[str, ...] = (
    "age_over_50",
    "age_over_70",
    "age_under_20",
    "night_pain",
    "thoracic_pain",
    "no_improvement_after_4_weeks",
)

#: The age features; R-WEAK counts them once together (§3.10).
AGE_FEATURES: tuple[str, ...] = ("age_over_50", "age_over_70", "age_under_20")

#: Everything accepted in ``red_flags``.
RED_FLAG_VOCABULARY: tuple[str, ...] = DECISIVE_RED_FLAGS + NON_DECISIVE_FEATURES

#: Cauda equina syndrome signs (§3.3, §3.10).
CES_SIGNS: tuple[str, ...] = (
    "saddle_anaesthesia",
    "urinary_retention",
    "difficulty_initiating_micturition",
    "impaired_urinary_stream_sensation",
    "faecal_incontinence",
    "loss_of_rectal_fullness_sensation",
    "bilateral_sciatica",
    "bilateral_progressive_leg_weakness",
    "anal_sphincter_laxity",
    "new_sexual_dysfunction",
)

#: Working diagnoses (§3.10). The diagnosis alone never triggers R-RF; the flags do.
SUSPECTED_CONDITIONS: tuple[str, ...] = (
    "disc_herniation",
    "spinal_stenosis",
    "radiculopathy_undetermined",
    "nonspecific",
    "suspected_malignancy",
    "suspected_infection",
    "suspected_fracture",
    "suspected_spondyloarthritis",
    "cauda_equina_syndrome",
    "postoperative_recurrence",
)

#: Symptomatic side (§3.10); ``None`` = none or unknown. The patient's side, not the image's.
RADICULAR_SIDES: tuple[str, ...] = ("left", "right", "bilateral")

#: Sex as in the vignettes (``"F"``/``"M"``) plus ``"other"``. Informational only.
SEXES: tuple[str, ...] = ("F", "M", "other")

#: Care setting (Kovacs 2013, §3.8: private practice is a risk factor). Informational only.
SETTINGS: tuple[str, ...] = ("public", "private")

#: Prescriber specialty (Kovacs 2013, §3.8). The first six are those of the vignettes; the rest
#: cover other common requesters. Informational only: never changes the class.
PRESCRIBER_SPECIALTIES: tuple[str, ...] = (
    "primary_care",
    "orthopaedic_surgery",
    "neurosurgery",
    "emergency_medicine",
    "rheumatology",
    "physical_medicine_rehabilitation",
    "neurology",
    "pain_medicine",
    "anaesthesiology",
    "internal_medicine",
    "oncology",
    "geriatrics",
    "radiology",
    "sports_medicine",
    "occupational_medicine",
    "other",
)

#: Root levels the toolkit measures (L1–S1).
LEVELS: tuple[str, ...] = ("L1", "L2", "L3", "L4", "L5", "S1")

#: Clinical fields of ``clinical.json`` in documentation order (§3.10 inputs + suspected_levels).
INPUT_FIELDS: tuple[str, ...] = (
    "age",
    "sex",
    "pain_duration_weeks",
    "conservative_treatment_weeks",
    "radicular_pain",
    "radicular_side",
    "suspected_levels",
    "referred_pain",
    "suspected_condition",
    "red_flags",
    "cauda_equina_signs",
    "surgery_considered",
    "prior_lumbar_surgery",
    "new_or_progressive_symptoms",
    "prior_lumbar_mri_months_ago",
    "clinical_change_since_prior_mri",
    "setting",
    "prescriber_specialty",
)

#: The fields rule set v1 reads to decide the class (the others are reported only).
RULE_INPUT_FIELDS: tuple[str, ...] = (
    "age",
    "pain_duration_weeks",
    "conservative_treatment_weeks",
    "radicular_pain",
    "suspected_condition",
    "red_flags",
    "cauda_equina_signs",
    "surgery_considered",
    "prior_lumbar_surgery",
    "new_or_progressive_symptoms",
    "prior_lumbar_mri_months_ago",
    "clinical_change_since_prior_mri",
)

#: Bookkeeping fields of ``clinical.json`` besides the clinical ones.
_META_FIELDS: tuple[str, ...] = ("schema", "schema_version", "subject_id")

#: Keys of a vignette (§3.11) that are not inputs; :meth:`ClinicalInput.from_vignette` drops them.
VIGNETTE_KEYS: tuple[str, ...] = (
    "id",
    "rule_set_version",
    "expected",
    "decisive_rules",
    "policy_sensitive",
    "acr_2021_variant",
    "rationale",
    "guideline",
)

_BOOL_FIELDS = (
    "radicular_pain",
    "referred_pain",
    "surgery_considered",
    "prior_lumbar_surgery",
    "new_or_progressive_symptoms",
    "clinical_change_since_prior_mri",
)
_NUMBER_FIELDS = {  # name -> (unit, upper sanity bound)
    "age": ("years", 130.0),
    "pain_duration_weeks": ("weeks", 52.0 * 100),
    "conservative_treatment_weeks": ("weeks", 52.0 * 100),
    "prior_lumbar_mri_months_ago": ("months", 12.0 * 100),
}
_CHOICE_FIELDS = {
    "sex": SEXES,
    "radicular_side": RADICULAR_SIDES,
    "suspected_condition": SUSPECTED_CONDITIONS,
    "setting": SETTINGS,
    "prescriber_specialty": PRESCRIBER_SPECIALTIES,
}
_LIST_FIELDS = {
    "red_flags": RED_FLAG_VOCABULARY,
    "cauda_equina_signs": CES_SIGNS,
    "suspected_levels": LEVELS,
}


def _allowed(values: Iterable[str]) -> str:
    return ", ".join(repr(v) for v in values)


def _check_number(name: str, value: Any) -> float | int | None:
    if value is None:
        return None
    unit, upper = _NUMBER_FIELDS[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ClinicalDataError(
            f"clinical field {name!r} must be a number in {unit} or null (not recorded), "
            f"got {value!r} ({type(value).__name__})"
        )
    if not math.isfinite(value) or value < 0 or value > upper:
        raise ClinicalDataError(
            f"clinical field {name!r} = {value!r} {unit} is outside 0–{upper:g} {unit}; "
            "enter the value in the documented unit or null when not recorded"
        )
    return value


def _check_bool(name: str, value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise ClinicalDataError(
        f"clinical field {name!r} must be true, false or null (not recorded), got {value!r}"
    )


def _check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or value not in allowed:
        hint = ""
        if name == "radicular_side":
            hint = "; use null when there is no symptomatic side or it is unknown"
        raise ClinicalDataError(
            f"clinical field {name!r} has unknown value {value!r}; allowed: {_allowed(allowed)} "
            f"or null{hint}"
        )
    return value


def _check_list(name: str, value: Any, allowed: tuple[str, ...]) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ClinicalDataError(
            f"clinical field {name!r} must be a list (use [] for 'assessed, none present' and "
            f"null for 'not assessed'), got {value!r}"
        )
    out: list[str] = []
    for item in value:
        if not isinstance(item, str) or item not in allowed:
            raise ClinicalDataError(
                f"clinical field {name!r} contains unknown item {item!r}; allowed: "
                f"{_allowed(allowed)}"
            )
        if item not in out:  # a set in meaning: a repeated item carries no information
            out.append(item)
    return tuple(out)


@dataclass(frozen=True)
class ClinicalInput:
    """The clinical picture of one subject, validated (dwi_toolkit References §3.10–§3.11).

    Every field may be ``None`` = not recorded (for lists: not assessed). Construction validates
    all values, so an instance that exists is valid; use :meth:`from_dict` for JSON-like input
    (it also rejects unknown keys).

    Parameters
    ----------
    age : float, optional
        Years.
    sex : {"F", "M", "other"}, optional
        Informational only.
    pain_duration_weeks : float, optional
        Duration of the current episode of pain, weeks.
    conservative_treatment_weeks : float, optional
        Duration of failed conservative care, weeks (should not exceed `pain_duration_weeks`;
        rule R-INCONSISTENT flags it when it does).
    radicular_pain : bool, optional
        Dermatomal radicular pain or root signs; for stenosis, neurogenic claudication / leg
        symptoms.
    radicular_side : {"left", "right", "bilateral"}, optional
        Symptomatic side (the patient's side). ``None`` = none or unknown. ``"bilateral"`` is not
        a cauda equina sign by itself; list ``"bilateral_sciatica"`` in `cauda_equina_signs`.
    suspected_levels : tuple of {"L1", "L2", "L3", "L4", "L5", "S1"}, optional
        Root levels suspected clinically (e.g. ``("L5",)``). Not used by the indication rules;
        used by the entrapment assessment.
    referred_pain : bool, optional
        Any pain referred into the leg (radicular or somatic). Informational (a Kovacs 2013 risk
        factor when false).
    suspected_condition : str, optional
        One of :data:`SUSPECTED_CONDITIONS`. ``None`` = cause unknown.
    red_flags : tuple of str, optional
        Items of :data:`RED_FLAG_VOCABULARY` (decisive red flags and non-decisive features).
    cauda_equina_signs : tuple of str, optional
        Items of :data:`CES_SIGNS`.
    surgery_considered : bool, optional
        Surgery **or** an image-guided intervention (epidural/root injection) is being considered.
    prior_lumbar_surgery, new_or_progressive_symptoms : bool, optional
    prior_lumbar_mri_months_ago : float, optional
        Months since the previous lumbar MRI; ``None`` = no previous lumbar MRI (§3.10).
    clinical_change_since_prior_mri : bool, optional
    setting : {"public", "private"}, optional
        Informational only (Kovacs 2013 risk factor).
    prescriber_specialty : str, optional
        One of :data:`PRESCRIBER_SPECIALTIES`. Informational only (Kovacs 2013 risk factor).
    subject_id : str, optional
        A pseudonymous study code such as ``"sub-01"``; never a name or record number.
    schema_version : str
        Version of the ``clinical.json`` schema the data follow (default :data:`SCHEMA_VERSION`).

    Raises
    ------
    ClinicalDataError
        For a value of the wrong type, out of range, or outside its vocabulary; the message
        names the field and lists the allowed values.

    Examples
    --------
    >>> ClinicalInput(age=45, red_flags=("fever",)).red_flags
    ('fever',)
    >>> ClinicalInput(radicular_side="up")
    Traceback (most recent call last):
    ...
    dwi_toolkit.errors.ClinicalDataError: clinical field 'radicular_side' has unknown value 'up'; ...
    """

    age: float | None = None
    sex: str | None = None
    pain_duration_weeks: float | None = None
    conservative_treatment_weeks: float | None = None
    radicular_pain: bool | None = None
    radicular_side: str | None = None
    suspected_levels: tuple[str, ...] | None = None
    referred_pain: bool | None = None
    suspected_condition: str | None = None
    red_flags: tuple[str, ...] | None = None
    cauda_equina_signs: tuple[str, ...] | None = None
    surgery_considered: bool | None = None
    prior_lumbar_surgery: bool | None = None
    new_or_progressive_symptoms: bool | None = None
    prior_lumbar_mri_months_ago: float | None = None
    clinical_change_since_prior_mri: bool | None = None
    setting: str | None = None
    prescriber_specialty: str | None = None
    subject_id: str | None = None
    schema_version: str = SCHEMA_VERSION

    def __post_init__(self) -> None:
        put = object.__setattr__  # frozen: normalise through object.__setattr__
        for name in _NUMBER_FIELDS:
            put(self, name, _check_number(name, getattr(self, name)))
        for name in _BOOL_FIELDS:
            put(self, name, _check_bool(name, getattr(self, name)))
        for name, allowed in _CHOICE_FIELDS.items():
            put(self, name, _check_choice(name, getattr(self, name), allowed))
        for name, allowed in _LIST_FIELDS.items():
            put(self, name, _check_list(name, getattr(self, name), allowed))
        if self.subject_id is not None and (
            not isinstance(self.subject_id, str) or not self.subject_id.strip()
        ):
            raise ClinicalDataError(
                f"clinical field 'subject_id' must be a non-empty pseudonymous code such as "
                f"'sub-01', got {self.subject_id!r}"
            )
        _check_schema_version(self.schema_version)

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ClinicalInput:
        """Build from a JSON-like mapping (the content of ``clinical.json``).

        Absent keys are ``None`` (not recorded). The optional keys ``schema`` (must be
        ``"dwi_toolkit.clinical"``), ``schema_version`` and ``subject_id`` are accepted. The label
        keys of the vignette schema (:data:`VIGNETTE_KEYS`, dwi_toolkit References §3.11) are
        accepted and ignored, so a vignette can be assessed as it stands; its
        ``rule_set_version`` must then be ``"v1"`` or ``"v2"`` (same inputs).

        Raises
        ------
        ClinicalDataError
            On an unknown key (the message names it and lists the known keys) or an invalid
            value.

        Examples
        --------
        >>> ClinicalInput.from_dict({"age": 30, "setting": "public"}).setting
        'public'
        >>> ClinicalInput.from_dict({"agee": 30})
        Traceback (most recent call last):
        ...
        dwi_toolkit.errors.ClinicalDataError: unknown clinical field 'agee'; ...
        """
        if not isinstance(data, Mapping):
            raise ClinicalDataError(
                f"clinical data must be a JSON object (mapping of field -> value), got "
                f"{type(data).__name__}"
            )
        known = set(INPUT_FIELDS) | set(_META_FIELDS) | set(VIGNETTE_KEYS)
        for key in data:
            if key not in known:
                raise ClinicalDataError(
                    f"unknown clinical field {key!r}; known fields: "
                    f"{_allowed(INPUT_FIELDS + _META_FIELDS)} (see docs/clinical.md)"
                )
        version = data.get("rule_set_version", "v1")
        if version not in ("v1", "v2"):  # v2 reads the same inputs as v1
            raise ClinicalDataError(
                f"vignette {data.get('id')!r} is for rule set {version!r}; this toolkit "
                "implements rule sets 'v1' and 'v2'"
            )
        schema = data.get("schema", SCHEMA_NAME)
        if schema != SCHEMA_NAME:
            raise ClinicalDataError(
                f"clinical field 'schema' is {schema!r}; expected {SCHEMA_NAME!r}"
            )
        kwargs = {k: data[k] for k in INPUT_FIELDS if k in data}
        if data.get("schema_version") is not None:
            kwargs["schema_version"] = data["schema_version"]
        if data.get("subject_id") is not None:
            kwargs["subject_id"] = data["subject_id"]
        return cls(**kwargs)

    @classmethod
    def from_vignette(cls, vignette: Mapping[str, Any]) -> ClinicalInput:
        """Build from one item of ``indication_vignettes.json`` (§3.11), dropping its labels.

        Same as :meth:`from_dict`, which ignores the label keys; kept for readability.

        Raises
        ------
        ClinicalDataError
            When ``rule_set_version`` is not ``"v1"``/``"v2"`` or an input is invalid.

        Examples
        --------
        >>> v = {"id": "X1", "rule_set_version": "v1", "age": 40, "expected": "uncertain"}
        >>> ClinicalInput.from_vignette(v).age
        40
        """
        return cls.from_dict(vignette)

    def replace(self, **changes: Any) -> ClinicalInput:
        """A validated copy with some fields changed (the original is unchanged).

        Examples
        --------
        >>> ClinicalInput(age=40).replace(age=41).age
        41
        """
        return dataclasses.replace(self, **changes)

    # -- views --------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict in the ``clinical.json`` layout (lists, not tuples; every field).

        Examples
        --------
        >>> d = ClinicalInput(age=40, red_flags=()).to_dict()
        >>> d["schema"], d["schema_version"], d["age"], d["red_flags"], d["cauda_equina_signs"]
        ('dwi_toolkit.clinical', '1.0', 40, [], None)
        """
        out: dict[str, Any] = {"schema": SCHEMA_NAME, "schema_version": self.schema_version}
        if self.subject_id is not None:
            out["subject_id"] = self.subject_id
        for name in INPUT_FIELDS:
            value = getattr(self, name)
            out[name] = list(value) if isinstance(value, tuple) else value
        return out

    @property
    def symptomatic_side(self) -> str | None:
        """``"left"`` or ``"right"`` when one side is symptomatic, else ``None``.

        Bilateral or unknown symptoms give ``None`` (the side comparison then reports absolute
        asymmetry). Sides are the patient's.
        """
        return self.radicular_side if self.radicular_side in ("left", "right") else None

    @property
    def unrecorded_fields(self) -> tuple[str, ...]:
        """Clinical fields that are ``None`` (not recorded / not assessed), in schema order.

        ``prior_lumbar_mri_months_ago`` is never listed: ``None`` there means "no previous
        lumbar MRI" (§3.10); nor is ``clinical_change_since_prior_mri`` when there was none.
        """
        skip = {"prior_lumbar_mri_months_ago"}
        if self.prior_lumbar_mri_months_ago is None:
            skip.add("clinical_change_since_prior_mri")
        return tuple(f for f in INPUT_FIELDS if getattr(self, f) is None and f not in skip)


def _check_schema_version(version: Any) -> None:
    if not isinstance(version, str):
        raise ClinicalDataError(
            f"clinical field 'schema_version' must be a string such as {SCHEMA_VERSION!r}, "
            f"got {version!r}"
        )
    if not re.fullmatch(r"1\.[0-9]+", version):
        raise ClinicalDataError(
            f"clinical.json schema_version {version!r} is not supported by this version of "
            f"dwi_toolkit (supports {SCHEMA_VERSION.split('.')[0]}.x); upgrade dwi_toolkit or "
            "convert the file"
        )


def clinical_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of ``clinical.json``, built from the vocabularies above.

    The packaged copy ``dwi_toolkit/clinical/data/clinical.schema.json`` equals this dict (a
    test checks it); :func:`dwi_toolkit.clinical.vocab.load_packaged_schema` reads it.

    Examples
    --------
    >>> s = clinical_json_schema()
    >>> s["properties"]["radicular_side"]["enum"]
    ['left', 'right', 'bilateral', None]
    """

    def nullable_number(desc: str, unit: str) -> dict[str, Any]:
        return {"type": ["number", "null"], "minimum": 0, "description": f"{desc} Unit: {unit}."}

    def nullable_bool(desc: str) -> dict[str, Any]:
        return {"type": ["boolean", "null"], "description": desc}

    def nullable_enum(values: tuple[str, ...], desc: str) -> dict[str, Any]:
        return {"enum": [*values, None], "description": desc}

    def nullable_list(values: tuple[str, ...], desc: str) -> dict[str, Any]:
        return {
            "type": ["array", "null"],
            "items": {"enum": list(values)},
            "uniqueItems": True,
            "description": desc,
        }

    props: dict[str, Any] = {
        "schema": {"const": SCHEMA_NAME, "description": "Schema name."},
        "schema_version": {
            "type": "string",
            "pattern": r"^1\.[0-9]+$",
            "description": f"Schema version; this toolkit writes {SCHEMA_VERSION!r}.",
        },
        "subject_id": {
            "type": ["string", "null"],
            "minLength": 1,
            "description": "Pseudonymous study code (e.g. 'sub-01'); never a name or record number.",
        },
        "age": nullable_number("Age.", "years"),
        "sex": nullable_enum(SEXES, "Sex; informational."),
        "pain_duration_weeks": nullable_number("Duration of the current pain episode.", "weeks"),
        "conservative_treatment_weeks": nullable_number(
            "Duration of failed conservative treatment.", "weeks"
        ),
        "radicular_pain": nullable_bool(
            "Dermatomal radicular pain or root signs; for stenosis, neurogenic claudication/leg "
            "symptoms."
        ),
        "radicular_side": nullable_enum(
            RADICULAR_SIDES, "Symptomatic side (patient's side); null = none or unknown."
        ),
        "suspected_levels": nullable_list(LEVELS, "Root levels suspected clinically."),
        "referred_pain": nullable_bool("Any pain referred into the leg; informational."),
        "suspected_condition": nullable_enum(
            SUSPECTED_CONDITIONS, "Working diagnosis; null = cause unknown."
        ),
        "red_flags": nullable_list(
            RED_FLAG_VOCABULARY,
            "Decisive red flags and non-decisive features; [] = assessed, none; null = not "
            "assessed.",
        ),
        "cauda_equina_signs": nullable_list(
            CES_SIGNS, "Cauda equina signs; [] = assessed, none; null = not assessed."
        ),
        "surgery_considered": nullable_bool(
            "Surgery or an image-guided intervention (epidural/root injection) is being considered."
        ),
        "prior_lumbar_surgery": nullable_bool("Previous lumbar spine surgery."),
        "new_or_progressive_symptoms": nullable_bool("New or progressive symptoms or findings."),
        "prior_lumbar_mri_months_ago": nullable_number(
            "Time since the previous lumbar MRI; null = no previous lumbar MRI.", "months"
        ),
        "clinical_change_since_prior_mri": nullable_bool(
            "Clinical change since the previous lumbar MRI."
        ),
        "setting": nullable_enum(SETTINGS, "Care setting; informational (Kovacs 2013)."),
        "prescriber_specialty": nullable_enum(
            PRESCRIBER_SPECIALTIES, "Requesting specialty; informational (Kovacs 2013)."
        ),
    }
    for key in VIGNETTE_KEYS:
        props[key] = {"description": "Vignette label (dwi_toolkit References §3.11); ignored."}
    props["rule_set_version"] = {"enum": ["v1", "v2"],
                                 "description": "Vignette label; 'v1' or 'v2' (same inputs)."}
    for name, (_unit, upper) in _NUMBER_FIELDS.items():
        props[name]["maximum"] = upper
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "dwi_toolkit clinical.json",
        "description": (
            "Per-subject clinical input for the indication and entrapment assessments "
            "(dwi_toolkit References §3.10-§3.11). null = not recorded; for lists [] = assessed, "
            "none present, null = not assessed; prior_lumbar_mri_months_ago null = no previous "
            "lumbar MRI."
        ),
        "type": "object",
        "additionalProperties": False,
        "properties": props,
    }


def load_packaged_schema() -> dict[str, Any]:
    """The JSON Schema shipped as ``dwi_toolkit/clinical/data/clinical.schema.json``.

    Use it with any JSON Schema validator (e.g. the ``jsonschema`` package) outside Python too.

    Examples
    --------
    >>> load_packaged_schema() == clinical_json_schema()
    True
    """
    text = resources.files("dwi_toolkit.clinical.data").joinpath("clinical.schema.json")
    return json.loads(text.read_text(encoding="utf-8"))
