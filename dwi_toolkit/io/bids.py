"""BIDS raw-dataset layout for converted DICOM: file names and the dataset's top-level files.

``dwi-toolkit convert --bids --subject 01 [--session 1]`` writes::

    OUT/dataset_description.json            DatasetType "raw" (kept when it exists)
    OUT/README.md                           (kept when it exists)
    OUT/participants.tsv                    one row per participant (rows added, never removed)
    OUT/sub-01/[ses-1/]dwi/sub-01[_ses-1][_run-N]_dwi.{nii.gz,bval,bvec,json}
    OUT/sub-01/[ses-1/]dwi/sub-01[_ses-1]_ADC.{nii.gz,json}      scanner ADC (--scanner-adc)

The names follow BIDS 1.10 (the ``ADC`` suffix is valid raw data since BIDS 1.10); the official
validator (``bids-validator-deno``) reports no error on such a folder.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from .._version import __version__
from ..errors import InputDataError
from ._atomic import atomic_write_text

__all__ = ["BIDS_VERSION", "bids_label", "bids_stem", "write_raw_dataset_files"]

BIDS_VERSION = "1.10.0"


def bids_label(value: str, entity: str = "sub") -> str:
    """A BIDS label (letters and digits only) from `value`, without or with its ``sub-`` prefix.

    Raises
    ------
    InputDataError
        Nothing usable is left (e.g. ``"_"``).

    Examples
    --------
    >>> bids_label("01"), bids_label("sub-P_07"), bids_label("ses-pre", "ses")
    ('01', 'P07', 'pre')
    """
    body = value[len(entity) + 1:] if value.startswith(f"{entity}-") else value
    clean = re.sub(r"[^A-Za-z0-9]", "", body)
    if not clean:
        raise InputDataError(f"cannot make a BIDS {entity} label from {value!r}: use letters and digits, e.g. 01.")
    return clean


def bids_stem(root: str | os.PathLike, subject: str, suffix: str, *, session: str | None = None,
              run: int | None = None, datatype: str = "dwi") -> Path:
    """Path (without extension) of a raw BIDS file: ``root/sub-X/[ses-Y/]dwi/sub-X[_ses-Y][_run-N]_suffix``.

    Examples
    --------
    >>> bids_stem("out", "01", "dwi").as_posix()
    'out/sub-01/dwi/sub-01_dwi'
    >>> bids_stem("out", "sub-01", "dwi", session="1", run=2).as_posix()
    'out/sub-01/ses-1/dwi/sub-01_ses-1_run-2_dwi'
    """
    sub = f"sub-{bids_label(subject)}"
    ses = None if session is None else f"ses-{bids_label(session, 'ses')}"
    folder = Path(root) / sub / (ses or "") / datatype
    name = "_".join(x for x in (sub, ses, None if run is None else f"run-{int(run)}", suffix) if x)
    return folder / name


def write_raw_dataset_files(root: str | os.PathLike, subject: str, *, name: str | None = None) -> list[Path]:
    """Top-level files of a raw BIDS dataset: description and README when absent, participant row.

    Parameters
    ----------
    root : path-like
        The dataset folder.
    subject : str
        Participant label (``01`` or ``sub-01``); added to ``participants.tsv`` when missing.
    name : str, optional
        ``Name`` of a new ``dataset_description.json`` (default: the folder name).

    Returns
    -------
    list of Path
        Files written or updated.

    Examples
    --------
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> sorted(p.name for p in write_raw_dataset_files(root, "01"))
    ['README.md', 'dataset_description.json', 'participants.tsv']
    >>> _ = write_raw_dataset_files(root, "02")
    >>> (root / "participants.tsv").read_text().split()
    ['participant_id', 'sub-01', 'sub-02']
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    written = []
    desc = root / "dataset_description.json"
    if not desc.is_file():
        doc = {"Name": name or root.resolve().name, "BIDSVersion": BIDS_VERSION, "DatasetType": "raw",
               "GeneratedBy": [{"Name": "dwi_toolkit", "Version": __version__,
                                "Description": "dwi-toolkit convert --bids (DICOM to NIfTI)"}]}
        written.append(atomic_write_text(desc, json.dumps(doc, indent=2) + "\n"))
    readme = root / "README.md"
    if not readme.is_file():
        written.append(atomic_write_text(readme, (
            f"# {name or root.resolve().name}\n\nDiffusion-weighted MRI converted from DICOM by dwi_toolkit "
            f"{__version__} (`dwi-toolkit convert --bids`). Sidecars hold no patient identifiers.\n")))
    part = root / "participants.tsv"
    sub = f"sub-{bids_label(subject)}"
    lines = part.read_text(encoding="utf-8").splitlines() if part.is_file() else ["participant_id"]
    if sub not in (ln.split("\t")[0] for ln in lines[1:]):
        written.append(atomic_write_text(part, "\n".join([*lines, sub]) + "\n"))
    return written
