"""Vocabulary and validation of the per-subject clinical input (public home).

Field names and vocabularies are those of rule set v1 (``clinical-reference.md §3.10``) and of
the vignette schema (``§3.11``); see ``docs/clinical.md``. The implementation lives in
:mod:`dwi_toolkit.core.clinical` so that ``io`` can build :class:`ClinicalInput` without importing
this package (layering, ``docs/architecture.md``); every name is re-exported here.

Examples
--------
>>> from dwi_toolkit.clinical.vocab import ClinicalInput
>>> ClinicalInput.from_dict({"radicular_side": "right"}).symptomatic_side
'right'
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from ..core.clinical import (
    AGE_FEATURES,
    CES_SIGNS,
    DECISIVE_RED_FLAGS,
    INPUT_FIELDS,
    LEVELS,
    NON_DECISIVE_FEATURES,
    PRESCRIBER_SPECIALTIES,
    RADICULAR_SIDES,
    RED_FLAG_VOCABULARY,
    RULE_INPUT_FIELDS,
    SCHEMA_NAME,
    SCHEMA_VERSION,
    SETTINGS,
    SEXES,
    SUSPECTED_CONDITIONS,
    VIGNETTE_KEYS,
    ClinicalInput,
    clinical_json_schema,
)

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
