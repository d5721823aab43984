"""Finding the series under a path and picking one (shared by the native reader and the dcm2niix back-end)."""

from __future__ import annotations

import os
from pathlib import Path

from ...errors import DicomError
from .discovery import DicomSeriesInfo, scan_files

__all__ = ["select_series"]


def _listing(infos) -> str:
    return "\n".join("  " + s.summary() for s in infos)


def _series_infos(path: Path, *, b0_threshold: float):
    """Series under `path`; for a single file, the series it belongs to (from its folder)."""
    from .discovery import _group_key, describe_series

    if path.is_file():
        from ._files import CorruptDicom, NotDicom, read_header

        try:
            one = read_header(path)
        except (NotDicom, CorruptDicom) as err:
            raise DicomError(f"{path} is not a readable DICOM file ({err}).") from err
        uid = str(one.ds.get("SeriesInstanceUID", ""))
        if int(one.ds.get("NumberOfFrames", 1) or 1) > 1 or not uid:
            return [describe_series([one], b0_threshold=b0_threshold)], uid
        files = [f for f in scan_files(path.parent) if str(f.ds.get("SeriesInstanceUID", "")) == uid]
        key = _group_key(one)
        files = [f for f in files if _group_key(f) == key] or [one]
        return [describe_series(files, b0_threshold=b0_threshold)], uid
    files = scan_files(path)
    if not files:
        raise DicomError(f"no DICOM files found under {path} (looked at every file, any depth).")
    groups: dict = {}
    for f in files:
        groups.setdefault(_group_key(f), []).append(f)
    infos = [describe_series(g, b0_threshold=b0_threshold) for g in groups.values()]
    infos.sort(key=lambda s: (s.series_number if s.series_number is not None else 1 << 30, s.description))
    return infos, None


def select_series(infos, *, series_uid: str | None, role: str, path) -> DicomSeriesInfo:
    """Pick the one series of `role` (or the one with `series_uid`); raise with a listing otherwise.

    Examples
    --------
    >>> import tempfile
    >>> from dwi_toolkit.io.dicom import find_dwi_series
    >>> from dwi_toolkit.io.dicom._synthetic import write_series
    >>> folder = tempfile.mkdtemp()
    >>> _ = write_series(folder)
    >>> infos = find_dwi_series(folder)
    >>> select_series(infos, series_uid=None, role="dwi", path=folder).n_volumes
    4
    """
    if series_uid:
        match = [s for s in infos if s.series_uid == series_uid]
        if not match:
            raise DicomError(
                f"no series with SeriesInstanceUID {series_uid} under {path}. Series found:\n{_listing(infos)}"
            )
        pick = [s for s in match if s.role == role] or match
        if pick[0].role != role:
            raise DicomError(
                f"series {series_uid} ('{pick[0].description}') is a '{pick[0].role}' series, not "
                f"'{role}'." + (" Load scanner ADC maps with load_scanner_adc()." if pick[0].role == "adc" else "")
            )
        return pick[0]
    cand = [s for s in infos if s.role == role]
    if not cand:
        raise DicomError(
            f"no {'raw diffusion-weighted' if role == 'dwi' else role} series under {path}. "
            f"Series found:\n{_listing(infos) or '  (none)'}"
        )
    if len(cand) > 1:
        what = f"{len(cand)} {'raw DWI' if role == 'dwi' else role} series under {path}"
        if len({s.series_uid for s in cand}) < len(cand):  # one series exported twice (classic + enhanced)
            folders = sorted({os.path.commonpath([str(Path(f).parent) for f in s.files]) for s in cand if s.files})
            raise DicomError(
                f"{what}, and they share a SeriesInstanceUID: one series stored several times (e.g. as classic "
                f"and as enhanced DICOM), so the UID cannot tell them apart; give the folder of one of them "
                f"as the input path:\n" + "\n".join(f"  {f}" for f in folders) + f"\n{_listing(cand)}"
            )
        raise DicomError(
            f"{what}; pick one with series_uid=... (command line: --series-uid UID, or give the series' "
            f"own folder as the input path):\n{_listing(cand)}"
        )
    return cand[0]
