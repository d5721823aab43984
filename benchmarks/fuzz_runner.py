"""Fuzz every public loader with mutated inputs and count the outcomes.

Each case builds one mutated input (a real GE DICOM series from ``$DWI_TOOLKIT_SHARED`` when
present, synthetic classic / MOSAIC / enhanced DICOM series, NIfTI DWI, ``.bval``/``.bvec``
text, ROI JSON, 3D Slicer markups, NIfTI label maps, ``clinical.json``, pipeline TOML), calls the
public entry point on it and classifies the outcome:

- ``ok``: a valid result;
- ``own``: the toolkit's own error (a :class:`~dwi_toolkit.errors.DwiToolkitError`);
- ``crash``: any other exception, or the input folder changed (a file written or modified);
- ``hang``: no answer within the time limit (``--timeout``, default 20 s).

Usage::

    python benchmarks/fuzz_runner.py --cases 10000 --seed 1 [--json out.json] [--formats dicom_ge,nifti]

The cases are split across the formats by fixed weights; ``--seed`` makes a run reproducible.
The test suite (``tests/fuzz/``) imports :func:`run_case` and the mutators from here.
"""

from __future__ import annotations

import argparse
import copy
import gzip
import hashlib
import io
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DWI_TOOLKIT_SHARED", REPO.parent / "shared"))
GE_SERIES = SHARED / "testdata" / "dicom" / "ge_mr29_dwi_tensor_r2" / "dicom"


# ------------------------------------------------------------------------------ outcome of one case
class _Hang(BaseException):
    """Raised by the alarm when a case exceeds its time limit (BaseException: loaders never catch it)."""


@dataclass
class Outcome:
    """How one case ended: ``kind`` in ok/own/crash/hang, a short ``detail`` and the duration."""

    kind: str
    detail: str = ""
    seconds: float = 0.0


def _snapshot(folder: Path) -> dict[str, str]:
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            out[p.relative_to(folder).as_posix()] = hashlib.sha1(p.read_bytes()).hexdigest()
    return out


def _on_alarm(signum, frame):  # pragma: no cover - only on a hang
    raise _Hang()


def run_case(func: Callable[[], object], inputs: Path, timeout: float = 20.0) -> Outcome:
    """Call `func` (which reads files under `inputs`) and classify what happened.

    An exception other than :class:`DwiToolkitError`, a time-out, or any change under `inputs`
    (a file written, modified or removed) counts against the toolkit.
    """
    from dwi_toolkit.errors import DwiToolkitError

    before = _snapshot(inputs)
    t0 = time.perf_counter()
    use_alarm = hasattr(signal, "setitimer") and os.name == "posix"
    if use_alarm:
        old = signal.signal(signal.SIGALRM, _on_alarm)
        signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            func()
        out = Outcome("ok")
    except _Hang:
        out = Outcome("hang", f"no answer within {timeout:g} s")
    except DwiToolkitError as err:
        out = Outcome("own", f"{type(err).__name__}: {str(err).splitlines()[0][:160]}")
    except Exception as err:  # noqa: BLE001 - this is what we count
        tb = traceback.extract_tb(err.__traceback__)
        where = f"{Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else "?"
        out = Outcome("crash", f"{type(err).__name__} at {where}: {str(err)[:160]}")
    finally:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
    out.seconds = time.perf_counter() - t0
    if _snapshot(inputs) != before:
        out = Outcome("crash", "the input folder changed", out.seconds)
    return out


# ------------------------------------------------------------------------------ generic mutators
_WEIRD_TEXT = ["", " ", "0", "-1", "1e400", "nan", "inf", "-inf", "65535", "4294967296", "2\\3", "abc",
               "1.2.3", "\\", "1e-320", "3" * 70, "\x00\x01", "Ω", "1,5", "+", "."]
_WEIRD_JSON = [None, True, False, 0, -1, 1e308, -1e308, 1e-320, "", "x", "L9", "left", [], {}, [[[]]],
               {"a": None}, "NaN", 2**63, [1, 2, 3], "9" * 400]


def mutate_text(data: bytes, rng: random.Random) -> bytes:
    """Truncation, byte flips, inserted/deleted/duplicated lines, weird tokens."""
    kind = rng.choice(["truncate", "flip", "insert", "delete_line", "dup_line", "token", "binary"])
    b = bytearray(data)
    if kind == "truncate":
        return bytes(b[: rng.randrange(0, max(1, len(b)))])
    if kind == "flip" and b:
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        return bytes(b)
    if kind == "insert":
        i = rng.randrange(len(b) + 1)
        return bytes(b[:i]) + rng.choice(_WEIRD_TEXT).encode() + bytes(b[i:])
    lines = bytes(b).split(b"\n")
    if kind == "delete_line" and lines:
        del lines[rng.randrange(len(lines))]
        return b"\n".join(lines)
    if kind == "dup_line" and lines:
        i = rng.randrange(len(lines))
        lines.insert(i, lines[i] * rng.choice([1, 2, 50]))
        return b"\n".join(lines)
    if kind == "token":
        toks = bytes(b).split(b" ")
        if toks:
            toks[rng.randrange(len(toks))] = rng.choice(_WEIRD_TEXT).encode()
        return b" ".join(toks)
    return bytes(rng.randrange(256) for _ in range(rng.randint(0, 64)))


def _json_paths(doc, prefix=()):
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _json_paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _json_paths(v, (*prefix, i))


def mutate_json(doc, rng: random.Random) -> bytes:
    """Structural JSON mutations (delete / replace with a weird value / duplicate), or text ones."""
    if rng.random() < 0.25:
        return mutate_text(json.dumps(doc).encode(), rng)
    doc = copy.deepcopy(doc)
    for _ in range(rng.randint(1, 3)):
        paths = list(_json_paths(doc))[1:]
        if not paths:
            break
        path = rng.choice(paths)
        parent = doc
        for k in path[:-1]:
            parent = parent[k]
        key = path[-1]
        op = rng.choice(["delete", "replace", "replace", "dup"])
        if op == "delete":
            del parent[key]
        elif op == "replace":
            parent[key] = copy.deepcopy(rng.choice(_WEIRD_JSON))
        elif isinstance(parent, list):
            parent.insert(key, copy.deepcopy(parent[key]))
        else:
            parent[f"{key}_"] = copy.deepcopy(parent[key])
    return json.dumps(doc, allow_nan=True).encode()


# ------------------------------------------------------------------------------ DICOM mutators
_IMPORTANT = [0x00280010, 0x00280011, 0x00280100, 0x00280101, 0x00280103, 0x00280008, 0x00280002,
              0x00280030, 0x00200032, 0x00200037, 0x0020000E, 0x00080008, 0x00180088, 0x00180050,
              0x00281053, 0x00281052, 0x00189087, 0x00189089, 0x00431039, 0x001910BB, 0x001910BC,
              0x001910BD, 0x00291010, 0x0019100A, 0x20011003, 0x00080070, 0x0008103E, 0x00200013,
              0x52009229, 0x52009230, 0x00185100, 0x00181312, 0x00020010]
_VRS = ["AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "OB", "OW", "PN", "SH",
        "SL", "SQ", "SS", "ST", "TM", "UI", "UL", "UN", "US", "UT", "XX", "??"]


def _pixel_offset(raw: bytes) -> int:
    i = raw.rfind(b"\xe0\x7f\x10\x00")
    return i if i > 0 else len(raw)


def _meta_end(raw: bytes) -> int:
    i = raw.find(b"\x08\x00", 132)
    return i if i > 0 else min(len(raw), 300)


def mutate_dicom_bytes(raw: bytes, rng: random.Random) -> bytes:
    """Truncation at every region (preamble, file meta, dataset, pixel data) or header byte flips."""
    pix, meta = _pixel_offset(raw), _meta_end(raw)
    if rng.random() < 0.5:
        lo, hi = rng.choice([(0, 132), (132, meta), (meta, pix), (pix, len(raw))])
        return raw[: rng.randrange(lo, max(lo + 1, hi))]
    b = bytearray(raw)
    for _ in range(rng.randint(1, 16)):
        i = rng.randrange(min(len(b), pix + 16))
        b[i] = rng.randrange(256) if rng.random() < 0.5 else b[i] ^ (1 << rng.randrange(8))
    return bytes(b)


def mutate_dicom_dataset(ds, rng: random.Random) -> bytes:  # noqa: C901
    """Deleted tags, garbage / wrong-VR / odd-length values, odd Rows/Columns/BitsAllocated/... ."""
    from pydicom.dataelem import RawDataElement
    from pydicom.tag import Tag

    ds = copy.deepcopy(ds)
    present = [int(t) for t in ds.keys() if int(t) != 0x7FE00010]
    important = [t for t in _IMPORTANT if t in ds]
    for _ in range(rng.randint(1, 3)):
        tag = rng.choice(important if important and rng.random() < 0.7 else present or [0x00280010])
        kind = rng.choice(["delete", "garbage", "wrong_vr", "weird", "weird", "odd_length"])
        if kind == "delete":
            if tag in ds:
                del ds[tag]
            continue
        cur = ds.get_item(tag) if tag in ds else None
        vr = (cur.VR or "UN") if cur is not None else "UN"
        if kind == "garbage":
            value = bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 2, 4, 8, 9, 64])))
        elif kind == "odd_length":
            value = rng.choice(_WEIRD_TEXT).encode() + b"1"
            value = value if len(value) % 2 else value + b"7"
        else:
            value = rng.choice(_WEIRD_TEXT).encode("utf-8")
            if vr in ("US", "UL", "SS", "SL", "FL", "FD") and rng.random() < 0.5:
                value = rng.choice([b"\x00\x00", b"\xff\xff", b"\x00\x00\x00\x00", b"\x01\x00\x02\x00",
                                    b"\xff\xff\xff\x7f", b"\x00\x00\xc0\x7f" * 2])
        if kind == "wrong_vr":
            vr = rng.choice(_VRS)
            value = cur.value if cur is not None and isinstance(cur.value, bytes) else value
        ds._dict[Tag(tag)] = RawDataElement(Tag(tag), vr, len(value), value, 0, False, True)  # unconverted
    bio = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds.save_as(bio, enforce_file_format=False)
    except Exception:  # pydicom refuses to write some garbage: mutate the bytes instead
        return mutate_dicom_bytes(_dataset_bytes(ds), rng)
    return bio.getvalue()


def _dataset_bytes(ds) -> bytes:
    bio = io.BytesIO()
    for tag in list(ds.keys()):
        try:
            _ = ds[tag]
        except Exception:
            del ds[tag]
    try:
        ds.save_as(bio, enforce_file_format=False)
    except Exception:
        return b"\0" * 128 + b"DICM"
    return bio.getvalue()


class DicomSeriesFuzzer:
    """One DICOM series copied into `work`; each case mutates one file (or adds/removes files)."""

    def __init__(self, source_files: list[Path], work: Path):
        import pydicom

        self.dir = work
        self.dir.mkdir(parents=True, exist_ok=True)
        self.files = []
        self.orig: dict[Path, bytes] = {}
        self.ds = {}
        for i, f in enumerate(sorted(source_files)):
            raw = f.read_bytes()
            if raw[:2] == b"\x1f\x8b":
                raw = gzip.decompress(raw)
            dst = self.dir / f"IM{i:05d}"
            dst.write_bytes(raw)
            self.files.append(dst)
            self.orig[dst] = raw
            self.ds[dst] = pydicom.dcmread(io.BytesIO(raw), force=True)

    def case(self, rng: random.Random) -> Callable[[], object]:
        """Apply one mutation in place; returns the entry point to call (restore with :meth:`reset`)."""
        from dwi_toolkit.io import load_dwi

        kind = rng.random()
        f = rng.choice(self.files)
        if kind < 0.35:
            f.write_bytes(mutate_dicom_bytes(self.orig[f], rng))
        elif kind < 0.9:
            f.write_bytes(mutate_dicom_dataset(self.ds[f], rng))
        elif kind < 0.95:
            shutil.copy(f, self.dir / f"DUP{rng.randrange(10**6)}")  # duplicate file
        else:
            f.unlink()  # missing file
        entry = rng.random()
        if entry < 0.7:
            return lambda: load_dwi(self.dir)
        if entry < 0.85:
            return self._discover_then_load
        return self._cli_info

    def _discover_then_load(self):
        from dwi_toolkit.io.dicom import find_dwi_series, load_dicom_series

        return [load_dicom_series(i) for i in find_dwi_series(self.dir) if i.role == "dwi"]

    def _cli_info(self):
        import contextlib

        from dwi_toolkit.cli.main import main
        from dwi_toolkit.errors import InputDataError

        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
            code = main(["info", str(self.dir)])
        if code not in (0, 2) or "Traceback" in err.getvalue():
            raise RuntimeError(f"dwi-toolkit info exited {code}: {err.getvalue()[-300:]}")
        if code == 2:
            raise InputDataError(err.getvalue().strip())

    def reset(self) -> None:
        for p in self.dir.iterdir():
            if p not in self.orig:
                p.unlink()
        for p, raw in self.orig.items():
            p.write_bytes(raw)


# ------------------------------------------------------------------------------ NIfTI & gradients
def small_dwi():
    """A small 4-D DWI (6 x 5 x 3, b = 0, 800, 800, 800) as a DWISeries."""
    from dwi_toolkit.core.image import DWISeries

    b = np.array([0.0, 800.0, 800.0, 800.0])
    data = 1000.0 * np.exp(-b * 1.1e-3) * np.ones((6, 5, 3, 1))
    return DWISeries(data.astype(np.float32), np.diag([2.0, 2.0, 4.0, 1.0]), b,
                     [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])


_HDR_FIELDS = {  # NIfTI-1 header offsets: (offset, struct format)
    "dim": (40, "<8h"), "datatype": (70, "<h"), "bitpix": (72, "<h"), "pixdim": (76, "<8f"),
    "vox_offset": (108, "<f"), "scl_slope": (112, "<f"), "scl_inter": (116, "<f"),
    "qform_code": (252, "<h"), "sform_code": (254, "<h"), "quatern": (256, "<6f"), "srow": (280, "<12f"),
    "sizeof_hdr": (0, "<i"), "magic": (344, "4s"),
}
_NUM_WEIRD = [0, -1, 1, 2, 3, 4, 5, 7, 8, 32767, -32768, 1e30, float("nan"), float("inf"), 1e-40, 65535]


def mutate_nifti(raw_nii: bytes, rng: random.Random) -> bytes:
    """Header fields (dims incl. huge ones, datatype, pixdim, offsets, scaling, affine), voxel NaN/Inf,
    byte flips; the caller gzips or truncates."""
    import struct

    b = bytearray(raw_nii)
    kind = rng.choice(["field", "field", "field", "flip", "nan", "truncate"])
    if kind == "field":
        name = rng.choice(list(_HDR_FIELDS))
        off, fmt = _HDR_FIELDS[name]
        n = struct.calcsize(fmt)
        if fmt == "4s":
            b[off:off + 4] = rng.choice([b"n+1\0", b"ni1\0", b"n+2\0", b"xxxx"])
        else:
            vals = list(struct.unpack_from(fmt, b, off))
            i = rng.randrange(len(vals))
            v = rng.choice(_NUM_WEIRD)
            if fmt[-1] == "h":
                v = int(max(-32768, min(32767, v if np.isfinite(v) else 0)))
            elif fmt[-1] == "i":
                v = int(max(-2**31, min(2**31 - 1, v if np.isfinite(v) else 0)))
            vals[i] = v
            struct.pack_into(fmt, b, off, *vals)
        assert len(b) >= off + n
    elif kind == "flip":
        for _ in range(rng.randint(1, 10)):
            i = rng.randrange(min(len(b), 352))
            b[i] ^= 1 << rng.randrange(8)
    elif kind == "nan":
        vox = 352
        for _ in range(rng.randint(1, 20)):
            i = vox + 4 * rng.randrange((len(b) - vox) // 4)
            struct.pack_into("<f", b, i, rng.choice([float("nan"), float("inf"), -float("inf"), 1e38, -1e38]))
    else:
        return bytes(b[: rng.randrange(len(b))])
    return bytes(b)


class NiftiFuzzer:
    """A NIfTI DWI (+ .bval/.bvec) in `work`; each case mutates the image, or the gradient text."""

    def __init__(self, work: Path, gradients: bool = False):
        from dwi_toolkit.io.nifti import save_dwi

        self.dir = work
        self.dir.mkdir(parents=True, exist_ok=True)
        s = small_dwi()
        save_dwi(s, self.dir / "dwi.nii")
        self.nii = (self.dir / "dwi.nii").read_bytes()
        (self.dir / "dwi.json").unlink()
        self.bval = (self.dir / "dwi.bval").read_bytes()
        self.bvec = (self.dir / "dwi.bvec").read_bytes()
        self.gradients = gradients

    def case(self, rng: random.Random) -> Callable[[], object]:
        from dwi_toolkit.io import load_dwi

        for p in self.dir.glob("dwi.nii*"):
            p.unlink()
        if self.gradients:
            (self.dir / "dwi.nii").write_bytes(self.nii)
            which = rng.choice(["dwi.bval", "dwi.bvec"])
            base = self.bval if which == "dwi.bval" else self.bvec
            (self.dir / which).write_bytes(mutate_text(base, rng))
            target = self.dir / "dwi.nii"
        else:
            data = mutate_nifti(self.nii, rng)
            if rng.random() < 0.5:
                gz = gzip.compress(data, compresslevel=1)
                if rng.random() < 0.4:  # an interrupted copy of a .nii.gz
                    gz = gz[: rng.randrange(len(gz))]
                target = self.dir / "dwi.nii.gz"
                target.write_bytes(gz)
            else:
                target = self.dir / "dwi.nii"
                target.write_bytes(data)
        return lambda: load_dwi(target)

    def reset(self) -> None:
        (self.dir / "dwi.bval").write_bytes(self.bval)
        (self.dir / "dwi.bvec").write_bytes(self.bvec)


# ------------------------------------------------------------------------------ ROIs, clinical, TOML
class FileFuzzer:
    """One text/JSON input file in `work`, mutated per case and read by `entry(path)`."""

    def __init__(self, work: Path, name: str, base: bytes, entry: Callable[[Path], object], as_json: bool):
        self.dir = work
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / name
        self.base, self.entry, self.as_json = base, entry, as_json
        self.doc = json.loads(base) if as_json else None

    def case(self, rng: random.Random) -> Callable[[], object]:
        data = mutate_json(self.doc, rng) if self.as_json else mutate_text(self.base, rng)
        self.path.write_bytes(data)
        return lambda: self.entry(self.path)

    def reset(self) -> None:
        self.path.write_bytes(self.base)


_AFF = np.array([[2.0, 0, 0, -8], [0, 2.0, 0, -6], [0, 0, 2.0, -4], [0, 0, 0, 1]])


class LabelMapFuzzer:
    """A NIfTI label map with its ``.tsv``; each case mutates the table or the image header."""

    def __init__(self, work: Path):
        from dwi_toolkit.io.rois import save_rois
        from dwi_toolkit.roi.model import RoiSet, RootROI, Sphere

        self.dir = work
        self.dir.mkdir(parents=True, exist_ok=True)
        rois = RoiSet([RootROI("L5", "left", shape=Sphere([-4, 0, 0], 3.0)),
                       RootROI("L5", "right", shape=Sphere([4, 0, 0], 3.0))])
        save_rois(rois, self.dir / "labels.nii", reference=(np.array([8, 6, 4]), _AFF))
        self.nii = (self.dir / "labels.nii").read_bytes()
        self.tsv = (self.dir / "labels.tsv").read_bytes()

    def case(self, rng: random.Random) -> Callable[[], object]:
        from dwi_toolkit.io.rois import load_rois

        if rng.random() < 0.5:
            (self.dir / "labels.tsv").write_bytes(mutate_text(self.tsv, rng))
        else:
            (self.dir / "labels.nii").write_bytes(mutate_nifti(self.nii, rng))
        return lambda: load_rois(self.dir / "labels.nii")

    def reset(self) -> None:
        (self.dir / "labels.nii").write_bytes(self.nii)
        (self.dir / "labels.tsv").write_bytes(self.tsv)


def _roi_docs() -> tuple[bytes, bytes]:
    from dwi_toolkit.io.rois import rois_to_json, rois_to_slicer
    from dwi_toolkit.roi.model import Polygon, RoiSet, RootROI, Sphere, Tube

    rois = RoiSet([RootROI("L5", "left", shape=Sphere([-20, 0, 0], 3.0)),
                   RootROI("S1", "right", shape=Tube([[20, 0, -10], [22, 5, -30]], 2.5)),
                   RootROI("L4", "left", shape=Polygon([[0, 0, 0], [4, 0, 0], [4, 4, 0]], thickness_mm=2.0))])
    return (json.dumps(rois_to_json(rois)).encode(),
            json.dumps(rois_to_slicer(RoiSet([rois[0]]))).encode())


def make_fuzzers(work: Path, formats: list[str] | None = None) -> dict[str, object]:
    """Every available fuzzer by format name (``dicom_ge`` only when the shared data is present)."""
    from dwi_toolkit.io.clinical import load_clinical
    from dwi_toolkit.io.dicom._synthetic import write_enhanced_series, write_mosaic_series, write_series
    from dwi_toolkit.io.rois import load_rois
    from dwi_toolkit.pipeline.spec import load_pipeline
    from dwi_toolkit.sample_data import SAMPLE_CLINICAL

    want = set(formats) if formats else None
    out: dict[str, object] = {}

    def add(name, make):
        if want is None or name in want:
            out[name] = make()

    if GE_SERIES.is_dir():
        add("dicom_ge", lambda: DicomSeriesFuzzer([p for p in GE_SERIES.rglob("*") if p.is_file()], work / "ge"))
    for name, writer, kw in (("dicom_classic", write_series, {"rows": 6, "cols": 6, "n_slices": 3}),
                             ("dicom_mosaic", write_mosaic_series, {}),
                             ("dicom_enhanced", write_enhanced_series, {})):
        def make(name=name, writer=writer, kw=kw):
            src = work / f"src_{name}"
            writer(src, **kw)
            files = [src] if src.is_file() else [p for p in src.rglob("*") if p.is_file()]
            return DicomSeriesFuzzer(files, work / name)
        add(name, make)
    add("nifti", lambda: NiftiFuzzer(work / "nifti"))
    add("gradients", lambda: NiftiFuzzer(work / "gradients", gradients=True))
    roi_json, slicer = _roi_docs()
    add("roi_json", lambda: FileFuzzer(work / "roi_json", "rois.json", roi_json, load_rois, True))
    add("slicer", lambda: FileFuzzer(work / "slicer", "L5_left.mrk.json", slicer, load_rois, True))
    add("labelmap", lambda: LabelMapFuzzer(work / "labelmap"))
    add("clinical", lambda: FileFuzzer(work / "clinical", "clinical.json", json.dumps(SAMPLE_CLINICAL).encode(),
                                       load_clinical, True))
    toml = (REPO / "dwi_toolkit" / "pipeline" / "builtin" / "default.toml").read_bytes()
    add("pipeline_toml", lambda: FileFuzzer(work / "toml", "pipeline.toml", toml, load_pipeline, False))
    return out


#: Share of the cases per format.
WEIGHTS = {"dicom_ge": 25, "dicom_classic": 10, "dicom_mosaic": 6, "dicom_enhanced": 6, "nifti": 14,
           "gradients": 8, "roi_json": 7, "slicer": 6, "labelmap": 6, "clinical": 6, "pipeline_toml": 6}


@dataclass
class Tally:
    """Counts per format and outcome, plus the first examples of crashes and hangs."""

    counts: dict[str, Counter] = field(default_factory=dict)
    problems: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    slowest: float = 0.0

    def add(self, fmt: str, seed: int, out: Outcome) -> None:
        self.counts.setdefault(fmt, Counter())[out.kind] += 1
        self.slowest = max(self.slowest, out.seconds)
        if out.kind in ("crash", "hang") and len(self.problems) < 200:
            self.problems.append({"format": fmt, "seed": seed, "kind": out.kind, "detail": out.detail})

    def totals(self) -> Counter:
        t: Counter = Counter()
        for c in self.counts.values():
            t.update(c)
        return t


def fuzz(n_cases: int, seed: int = 1, formats: list[str] | None = None, timeout: float = 20.0,
         progress: bool = False) -> Tally:
    """Run `n_cases` mutated inputs split across the formats by :data:`WEIGHTS`."""
    import logging

    logging.getLogger("dwi_toolkit").setLevel(logging.CRITICAL)
    logging.getLogger("nibabel").setLevel(logging.CRITICAL)
    tally = Tally()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="dwi_fuzz_") as tmp:
        fuzzers = make_fuzzers(Path(tmp), formats)
        total_w = sum(WEIGHTS[f] for f in fuzzers)
        for fmt, fz in fuzzers.items():
            n = max(1, round(n_cases * WEIGHTS[fmt] / total_w))
            for i in range(n):
                case_seed = seed * 1_000_003 + i
                rng = random.Random(f"{fmt}:{case_seed}")
                try:
                    func = fz.case(rng)
                    out = run_case(func, fz.dir, timeout)
                finally:
                    fz.reset()
                tally.add(fmt, case_seed, out)
                if progress and (i + 1) % 200 == 0:
                    print(f"{fmt}: {i + 1}/{n} {dict(tally.counts[fmt])}", file=sys.stderr, flush=True)
    tally.seconds = time.perf_counter() - t0
    return tally


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=20.0)
    ap.add_argument("--formats", default="", help="comma-separated subset of: " + ", ".join(WEIGHTS))
    ap.add_argument("--json", default="", help="write the counts to this JSON file")
    args = ap.parse_args(argv)
    formats = [f for f in args.formats.split(",") if f] or None
    tally = fuzz(args.cases, args.seed, formats, args.timeout, progress=True)
    tot = tally.totals()
    print(f"{'format':16s} {'cases':>7s} {'ok':>7s} {'own':>7s} {'crash':>6s} {'hang':>5s}")
    for fmt, c in tally.counts.items():
        print(f"{fmt:16s} {sum(c.values()):7d} {c['ok']:7d} {c['own']:7d} {c['crash']:6d} {c['hang']:5d}")
    print(f"{'total':16s} {sum(tot.values()):7d} {tot['ok']:7d} {tot['own']:7d} {tot['crash']:6d} {tot['hang']:5d}")
    print(f"{tally.seconds:.0f} s, slowest case {tally.slowest:.2f} s")
    for p in tally.problems[:30]:
        print(f"  {p['kind']} {p['format']} seed={p['seed']}: {p['detail']}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "cases": sum(tot.values()), "totals": dict(tot), "seconds": round(tally.seconds, 1),
            "slowest_case_s": round(tally.slowest, 2),
            "by_format": {k: dict(v) for k, v in tally.counts.items()}, "problems": tally.problems,
        }, indent=2) + "\n")
    return 1 if tot["crash"] or tot["hang"] else 0


if __name__ == "__main__":
    sys.exit(main())
