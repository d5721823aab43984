"""Find the subjects of a study: a folder of subject folders, or a BIDS dataset.

Two layouts are recognised (nothing is ever written into the input):

**Folder of subject folders** — every non-hidden sub-folder of INPUT is one subject::

    INPUT/patient_A/            DICOM files at any depth, or NIfTI + .bval/.bvec (any depth)
    INPUT/patient_A/rois.json   optional ROIs: rois.json / *rois*.json, *.mrk.json, *_dseg.nii.gz
    INPUT/patient_A/clinical.json   optional clinical data (or *_clinical.json)
    INPUT/patient_A/rois/junctions.mrk.json   optional dural-junction points for tractography
                                (any ROI file whose name contains "junction"; never taken for the ROIs)

  ROI and clinical files are looked for at the top of the subject folder and in a ``rois/``
  (ROIs) sub-folder. A NIfTI with ``.bval``/``.bvec`` beside it wins over DICOM; label maps
  (``*_dseg``), masks and maps are never taken for the DWI. Folder names become BIDS labels:
  ``sub-01`` stays, ``patient_A`` becomes ``sub-patientA``.

**BIDS dataset** — INPUT has ``dataset_description.json``; units are (subject, session) from
``sub-*/[ses-*/]dwi/*_dwi.nii[.gz]``. ROIs and clinical data come from derivatives folders
(``INPUT/derivatives/*/sub-*/[ses-*/]``, plus any given with ``derivatives=``), with the same
file names as above (``*_rois.json``, ``*.mrk.json``, ``*_dseg.nii.gz``, ``*clinical.json``).

A subject whose DWI cannot be found is still listed, with :attr:`Subject.problem` saying why, so
the run reports it instead of silently dropping it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import PipelineError

__all__ = ["Subject", "Dataset", "discover", "subject_label", "input_checksums"]

logger = logging.getLogger(__name__)

_NON_DWI = re.compile(r"(_dseg|_mask|_probseg|_roi|_label|dwimap|_adc|_fa|_md|_s0map|_truth|tissue)", re.I)
_SKIP_SUFFIXES = (".json", ".bval", ".bvec", ".bvals", ".bvecs", ".tsv", ".txt", ".csv", ".png",
                  ".jpg", ".html", ".md", ".nii", ".nii.gz", ".gz", ".toml", ".py", ".label")


@dataclass(frozen=True)
class Subject:
    """One unit of work: a subject (and session) with the paths of its inputs.

    Attributes
    ----------
    label : str
        BIDS subject label with prefix, e.g. ``sub-01``.
    session : str or None
        ``ses-...`` or None.
    source : str
        Folder of the subject relative to the input root (for messages and the manifest).
    dwi : Path or None
        NIfTI file or DICOM folder; None when not found (see `problem`).
    bvals, bvecs : Path or None
        Gradient files of a NIfTI input.
    rois, clinical : Path or None
    junctions : Path or None
        Dural-junction points per root (an ROI file, name containing ``junction``) where distance
        along a tracked root is 0; the ``track`` step uses them.
    problem : str or None
        Why the subject cannot run (reported as its failure reason).
    root : Path
        The input root.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from dwi_toolkit.sample_data import COHORT, generate_cohort
    >>> tmp = Path(tempfile.mkdtemp())
    >>> _ = generate_cohort(tmp / "in", subjects={k: COHORT[k] for k in ("sub-01", "sub-05")}, dicom=False)
    >>> s = discover(tmp / "in").subjects[0]
    >>> s.key, s.dwi.name, s.rois.name, s.clinical.name
    ('sub-01', 'sub-01_dwi.nii.gz', 'rois.json', 'clinical.json')
    """

    label: str
    source: str
    root: Path
    session: str | None = None
    dwi: Path | None = None
    bvals: Path | None = None
    bvecs: Path | None = None
    rois: Path | None = None
    clinical: Path | None = None
    problem: str | None = None
    kind: str = "nifti"
    junctions: Path | None = None

    def __repr__(self) -> str:
        have = [r for r in ("dwi", "bvals", "bvecs", "rois", "clinical", "junctions") if getattr(self, r) is not None]
        extra = f", problem={self.problem!r}" if self.problem else ""
        return f"Subject({self.key!r}, kind={self.kind!r}, inputs={have}{extra})"

    @property
    def key(self) -> str:
        """Unique name of the unit, e.g. ``sub-01`` or ``sub-01_ses-1`` (manifest key)."""
        return self.prefix

    @property
    def prefix(self) -> str:
        """BIDS entity prefix of output file names."""
        return self.label if self.session is None else f"{self.label}_{self.session}"

    @property
    def out_relpath(self) -> str:
        """Output folder relative to OUTDIR: ``sub-01`` or ``sub-01/ses-1``."""
        return self.label if self.session is None else f"{self.label}/{self.session}"

    def input_files(self) -> dict[str, list[Path]]:
        """Input files by role (``dwi``, ``rois``, ``clinical``, ``junctions``), for checksums."""
        files: dict[str, list[Path]] = {}
        if self.dwi is not None:
            if self.dwi.is_dir():
                files["dwi"] = sorted(p for p in _walk_files(self.dwi) if p.is_file())
            else:
                side = [self.dwi, self.bvals, self.bvecs, _sidecar(self.dwi)]
                files["dwi"] = [p for p in side if p is not None and p.is_file()]
        if self.rois is not None:
            r = [self.rois]
            tsv = _strip_nii(self.rois).with_suffix(".tsv") if _is_nifti(self.rois) else None
            if tsv is not None and tsv.is_file():
                r.append(tsv)
            files["rois"] = r
        if self.clinical is not None:
            files["clinical"] = [self.clinical]
        if self.junctions is not None:
            files["junctions"] = [self.junctions]
        return files


@dataclass(frozen=True)
class Dataset:
    """The discovered study: its layout kind (``folders`` or ``bids``), root and subjects.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from dwi_toolkit.sample_data import COHORT, generate_cohort
    >>> tmp = Path(tempfile.mkdtemp())
    >>> _ = generate_cohort(tmp / "in", subjects={k: COHORT[k] for k in ("sub-01", "sub-05")}, dicom=False)
    >>> ds = discover(tmp / "in")
    >>> ds.kind, [s.key for s in ds.subjects]
    ('folders', ['sub-01', 'sub-05'])
    """

    kind: str
    root: Path
    subjects: tuple[Subject, ...]
    name: str = ""
    derivatives: tuple[Path, ...] = field(default_factory=tuple)

    def __repr__(self) -> str:
        return (f"Dataset(kind={self.kind!r}, name={self.name!r}, subjects={len(self.subjects)}, "
                f"root={str(self.root)!r})")

    def _repr_html_(self) -> str:
        from ..core._display import html_table

        rows = [("layout", self.kind), ("name", self.name), ("root", str(self.root)),
                ("subjects", ", ".join(s.key for s in self.subjects) or "none")]
        if self.derivatives:
            rows.append(("derivatives", ", ".join(map(str, self.derivatives))))
        return html_table("Dataset", rows)


# ------------------------------------------------------------------------------ helpers
def _is_nifti(p: Path) -> bool:
    n = p.name.lower()
    return n.endswith(".nii") or n.endswith(".nii.gz")


def _strip_nii(p: Path) -> Path:
    for ext in (".nii.gz", ".nii"):
        if p.name.lower().endswith(ext):
            return p.with_name(p.name[: -len(ext)])
    return p


def _sidecar(p: Path) -> Path | None:
    s = _strip_nii(p).with_suffix(".json")
    return s if s.is_file() else None


def _visible(paths: Iterable[Path]) -> list[Path]:
    return sorted(p for p in paths if not p.name.startswith("."))


def _walk_files(folder: Path) -> list[Path]:
    """Visible files under `folder`, following symlinked folders (a ``dwi/`` or DICOM folder
    linked into the subject) but never into a loop: a folder already visited (by its real path)
    is skipped with a warning."""
    out = []
    seen = {os.path.realpath(folder)}
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        keep = []
        for d in sorted(d for d in dirnames if not d.startswith(".")):
            real = os.path.realpath(os.path.join(dirpath, d))
            if real in seen:
                logger.warning("%s: symlink loop or folder reached twice (-> %s); not followed again",
                               Path(dirpath, d), real)
                continue
            seen.add(real)
            keep.append(d)
        dirnames[:] = keep
        out += [Path(dirpath) / f for f in sorted(filenames) if not f.startswith(".")]
    return out


def subject_label(name: str) -> str:
    """BIDS subject label for a folder name (``sub-`` + letters and digits only).

    Examples
    --------
    >>> subject_label("sub-01"), subject_label("patient_A"), subject_label("07")
    ('sub-01', 'sub-patientA', 'sub-07')
    """
    body = name[4:] if name.startswith("sub-") else name
    clean = re.sub(r"[^A-Za-z0-9]", "", body)
    if not clean:
        raise PipelineError(f"cannot make a BIDS subject label from folder name {name!r}; rename it.")
    return f"sub-{clean}"


def _find_rois(folders: Sequence[Path]) -> Path | None:
    """ROI file by precedence: rois.json, *rois*.json, *.mrk.json, *_dseg.nii[.gz] (names
    containing ``junction`` are junction points, :func:`_find_junctions`)."""
    cands: list[tuple[int, Path]] = []
    for f in folders:
        if not f.is_dir():
            continue
        for p in _visible(f.iterdir()):
            if not p.is_file():
                continue
            n = p.name.lower()
            if "junction" in n:
                continue
            if n == "rois.json":
                cands.append((0, p))
            elif n.endswith(".mrk.json"):
                cands.append((2, p))
            elif n.endswith(".json") and "rois" in n:
                cands.append((1, p))
            elif (n.endswith("_dseg.nii.gz") or n.endswith("_dseg.nii")) and "tissue" not in n:
                cands.append((3, p))
    if not cands:
        return None
    cands.sort()
    if len(cands) > 1:
        logger.info("several ROI files in %s; using %s", cands[0][1].parent, cands[0][1].name)
    return cands[0][1]


def _find_junctions(folders: Sequence[Path]) -> Path | None:
    """Dural-junction points: the first ``*junction*.json`` (ROI JSON or Slicer markups)."""
    for f in folders:
        if f.is_dir():
            hits = sorted(p for p in _visible(f.glob("*.json")) if p.is_file() and "junction" in p.name.lower())
            if hits:
                if len(hits) > 1:
                    logger.info("several junction files in %s; using %s", f, hits[0].name)
                return hits[0]
    return None


def _find_clinical(folders: Sequence[Path]) -> Path | None:
    for f in folders:
        if not f.is_dir():
            continue
        exact = f / "clinical.json"
        if exact.is_file():
            return exact
        hits = [p for p in _visible(f.glob("*clinical.json")) if p.is_file()]
        if hits:
            return hits[0]
    return None


def _find_dwi(folder: Path) -> tuple[Path | None, Path | None, Path | None, str | None, str]:
    """(dwi, bvals, bvecs, problem, kind) for a subject folder."""
    from ..io.gradients import find_gradient_files
    from ..io.loading import looks_like_dicom

    files = _walk_files(folder)
    niftis = [p for p in files if _is_nifti(p) and not _NON_DWI.search(_strip_nii(p).name)]
    with_grad = []
    for p in niftis:
        bval, bvec = find_gradient_files(p)
        if bval is not None:
            with_grad.append((p, bval, bvec))
    if len(with_grad) == 1:
        return with_grad[0][0], with_grad[0][1], with_grad[0][2], None, "nifti"
    if len(with_grad) > 1:
        named = [t for t in with_grad if "dwi" in t[0].name.lower()]
        if len(named) == 1:
            return named[0][0], named[0][1], named[0][2], None, "nifti"
        names = ", ".join(str(t[0].relative_to(folder)) for t in with_grad)
        return None, None, None, f"several DWI NIfTI files with b-values ({names}); keep one per subject", "nifti"
    dicoms = [p for p in files if not p.name.lower().endswith(_SKIP_SUFFIXES) and looks_like_dicom(p)]
    if dicoms:
        common = Path(os.path.commonpath([str(p.parent) for p in dicoms]))
        return common, None, None, None, "dicom"
    if len(niftis) == 1:
        # no b-values beside it: load_dwi reports exactly what is missing
        return niftis[0], None, None, None, "nifti"
    if niftis:
        names = ", ".join(str(p.relative_to(folder)) for p in niftis)
        return None, None, None, f"no .bval/.bvec beside any NIfTI ({names}) and no DICOM files", "nifti"
    return None, None, None, "no DWI found: no DICOM files and no NIfTI with .bval/.bvec (any depth)", "nifti"


def _want(label: str, participants: set[str] | None) -> bool:
    return participants is None or label in participants


def _participants(labels: Sequence[str] | None) -> set[str] | None:
    if not labels:
        return None
    return {lab if lab.startswith("sub-") else f"sub-{lab}" for lab in labels}


# ------------------------------------------------------------------------------ discovery
def _discover_folders(root: Path, participants: set[str] | None) -> list[Subject]:
    subjects: list[Subject] = []
    seen: dict[str, str] = {}
    for folder in _visible(root.iterdir()):
        if not folder.is_dir() or folder.name in ("derivatives", "logs"):
            continue
        if (folder / "manifest.json").is_file() and (folder / "pipeline.toml").is_file():
            continue  # a dwi_toolkit output folder (e.g. a previous run's), never a subject
        label = subject_label(folder.name)
        if label in seen:
            raise PipelineError(
                f"subject folders {seen[label]!r} and {folder.name!r} both map to label {label!r}; rename one."
            )
        seen[label] = folder.name
        if not _want(label, participants):
            continue
        dwi, bval, bvec, problem, kind = _find_dwi(folder)
        subjects.append(Subject(
            label=label, source=folder.name, root=root, dwi=dwi, bvals=bval, bvecs=bvec,
            rois=_find_rois([folder, folder / "rois"]), clinical=_find_clinical([folder]),
            problem=problem, kind=kind, junctions=_find_junctions([folder, folder / "rois"]),
        ))
    return subjects


def _discover_bids(root: Path, participants: set[str] | None, derivatives: Sequence[Path]) -> list[Subject]:
    from ..io.gradients import find_gradient_files

    subjects: list[Subject] = []
    for sub in _visible(root.glob("sub-*")):
        if not sub.is_dir() or not _want(sub.name, participants):
            continue
        sessions = [s for s in _visible(sub.glob("ses-*")) if s.is_dir()] or [None]
        for ses in sessions:
            base = ses if ses is not None else sub
            dwis = [p for p in _visible((base / "dwi").glob("*_dwi.nii*")) if _is_nifti(p)]
            ses_name = ses.name if ses is not None else None
            deriv = [d / sub.name / ses_name if ses_name else d / sub.name for d in derivatives]
            deriv_dwi = [d / "dwi" for d in deriv]
            problem = dwi = bval = bvec = None
            if len(dwis) == 1:
                dwi = dwis[0]
                bval, bvec = find_gradient_files(dwi)
            elif not dwis:
                problem = f"no {base.relative_to(root).as_posix()}/dwi/*_dwi.nii[.gz] file"
            else:
                names = ", ".join(p.name for p in dwis)
                problem = f"several DWI runs ({names}); run them as separate datasets or keep one"
            subjects.append(Subject(
                label=sub.name, session=ses_name, source=base.relative_to(root).as_posix(), root=root,
                dwi=dwi, bvals=bval, bvecs=bvec, problem=problem,
                rois=_find_rois([*deriv, *deriv_dwi, *[d / "rois" for d in deriv]]) or _find_rois([base / "rois"]),
                clinical=_find_clinical([*deriv, base, sub]),
                junctions=_find_junctions([*deriv, *deriv_dwi, *[d / "rois" for d in deriv], base / "rois"]),
            ))
    return subjects


def discover(
    input_path: str | os.PathLike,
    *,
    participant_labels: Sequence[str] | None = None,
    derivatives: Sequence[str | os.PathLike] = (),
) -> Dataset:
    """Find the subjects under `input_path` (folder of subject folders, or BIDS dataset).

    Parameters
    ----------
    input_path : path-like
    participant_labels : sequence of str, optional
        Only these subjects (``01`` or ``sub-01``).
    derivatives : sequence of path-like, optional
        BIDS only: extra derivatives folders holding ROIs / clinical.json per subject.

    Returns
    -------
    Dataset

    Raises
    ------
    PipelineError
        The input does not exist, holds no subject, or a requested participant is absent.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from dwi_toolkit.sample_data import COHORT, generate_cohort
    >>> tmp = Path(tempfile.mkdtemp())
    >>> _ = generate_cohort(tmp / "in", subjects={k: COHORT[k] for k in ("sub-01", "sub-05")}, dicom=False)
    >>> [s.key for s in discover(tmp / "in", participant_labels=["05"]).subjects]
    ['sub-05']
    """
    root = Path(input_path)
    if not root.is_dir():
        raise PipelineError(f"input folder not found: {root}")
    participants = _participants(participant_labels)
    extra = tuple(Path(d) for d in derivatives)
    if (root / "dataset_description.json").is_file():
        deriv_root = root / "derivatives"
        derivs = tuple(
            d for d in (_visible(deriv_root.iterdir()) if deriv_root.is_dir() else [])
            if d.is_dir() and not ((d / "manifest.json").is_file() and (d / "pipeline.toml").is_file())
        )  # our own outputs (derivatives/dwi_toolkit) are not an input
        subjects = _discover_bids(root, participants, derivs + extra)
        kind, derivs_used = "bids", derivs + extra
    else:
        subjects = _discover_folders(root, participants)
        kind, derivs_used = "folders", ()
    if participants is not None:
        missing = sorted(participants - {s.label for s in subjects})
        if missing:
            raise PipelineError(f"participant(s) not found in {root}: {', '.join(missing)}")
    if not subjects:
        raise PipelineError(
            f"no subjects found in {root}: expected a BIDS dataset (dataset_description.json) or "
            "one folder per subject holding DICOM or NIfTI + .bval/.bvec."
        )
    logger.info("%s: %d subject(s) (%s layout)", root, len(subjects), kind)
    return Dataset(kind=kind, root=root, subjects=tuple(subjects), name=root.name, derivatives=derivs_used)


def _sha256(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def input_checksums(subject: Subject) -> dict[str, dict]:
    """SHA-256 of the subject's inputs by role.

    A role with one file gives ``{"path", "sha256", "size_bytes"}``; a DICOM folder gives the
    SHA-256 over the sorted ``relative/path  sha256`` lines of its files and ``n_files``. Paths
    are relative to the input root (no absolute paths in outputs).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from dwi_toolkit.sample_data import COHORT, generate_cohort
    >>> tmp = Path(tempfile.mkdtemp())
    >>> _ = generate_cohort(tmp / "in", subjects={k: COHORT[k] for k in ("sub-01", "sub-05")}, dicom=False)
    >>> sums = input_checksums(discover(tmp / "in").subjects[0])
    >>> sorted(sums)[:3], len(sums["dwi"]["sha256"])
    (['clinical', 'dwi', 'dwi:bval'], 64)
    """
    out: dict[str, dict] = {}
    for role, files in subject.input_files().items():
        rel = lambda p: p.relative_to(subject.root).as_posix() if p.is_relative_to(subject.root) else p.name  # noqa: E731
        if role == "dwi" and subject.dwi is not None and subject.dwi.is_dir():
            lines = [f"{p.relative_to(subject.dwi).as_posix()}  {_sha256(p)}" for p in files]
            out[role] = {"path": rel(subject.dwi), "sha256": hashlib.sha256("\n".join(lines).encode()).hexdigest(),
                         "n_files": len(files), "size_bytes": sum(p.stat().st_size for p in files)}
            continue
        for i, p in enumerate(files):
            name = role if i == 0 else f"{role}:{p.suffix.lstrip('.') or p.name}"
            out[name] = {"path": rel(p), "sha256": _sha256(p), "size_bytes": p.stat().st_size}
    return out
