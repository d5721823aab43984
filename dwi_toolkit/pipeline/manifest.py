"""The run records of an output folder: ``manifest.json`` (every subject) and per-subject
``provenance.json``.

Read by the runner (resume, skip) and by the cohort summary; neither imports the other.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

__all__ = ["MANIFEST", "PROVENANCE", "MANIFEST_SCHEMA", "PROVENANCE_SCHEMA", "read_manifest",
           "write_manifest", "read_provenance"]

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
PROVENANCE = "provenance.json"
MANIFEST_SCHEMA = "dwi_toolkit.manifest/1"
PROVENANCE_SCHEMA = "dwi_toolkit.subject-provenance/1"


def read_manifest(out_dir: str | os.PathLike) -> dict[str, Any]:
    """The run manifest of an output folder (an empty skeleton when there is none).

    Examples
    --------
    >>> import tempfile
    >>> out = tempfile.mkdtemp()
    >>> read_manifest(out)                                  # nothing run yet
    {'schema': 'dwi_toolkit.manifest/1', 'subjects': {}, 'runs': []}

    :func:`write_manifest` shows a round trip; ``run_pipeline``'s example a real run.
    """
    p = Path(out_dir) / MANIFEST
    if p.is_file():
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
            if isinstance(doc, dict) and doc.get("schema") == MANIFEST_SCHEMA:
                return doc
            logger.warning("%s is not a dwi_toolkit manifest; starting a new one", p)
        except (OSError, ValueError) as err:
            logger.warning("cannot read %s (%s); starting a new one", p, err)
    return {"schema": MANIFEST_SCHEMA, "subjects": {}, "runs": []}


def write_manifest(out_dir: Path, doc: dict[str, Any]) -> None:
    """Write `doc` as the manifest of `out_dir`, atomically (see :func:`read_manifest`).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> out = Path(tempfile.mkdtemp())
    >>> write_manifest(out, {"schema": MANIFEST_SCHEMA, "subjects": {"sub-01": {"status": "done"}}, "runs": []})
    >>> read_manifest(out)["subjects"]
    {'sub-01': {'status': 'done'}}
    """
    from ..io._atomic import atomic_write_text

    atomic_write_text(out_dir / MANIFEST, json.dumps(doc, indent=2, sort_keys=False) + "\n")


def read_provenance(path: Path) -> dict[str, Any] | None:
    """A subject's ``provenance.json``, or None when missing, unreadable or of another schema.

    Examples
    --------
    >>> import json, tempfile
    >>> from pathlib import Path
    >>> p = Path(tempfile.mkdtemp()) / PROVENANCE
    >>> read_provenance(p) is None
    True
    >>> _ = p.write_text(json.dumps({"schema": PROVENANCE_SCHEMA, "status": "done"}))
    >>> read_provenance(p)["status"]
    'done'
    """
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc.get("schema") == PROVENANCE_SCHEMA else None
