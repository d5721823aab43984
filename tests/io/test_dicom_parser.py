"""The fast header parser agrees with pydicom; CSA parser; vendor helpers."""

from __future__ import annotations

import struct

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")

from dwi_toolkit.io.dicom import load_dicom_dwi  # noqa: E402
from dwi_toolkit.io.dicom._parser import FastParseError, parse_header, wanted_tags  # noqa: E402
from dwi_toolkit.io.dicom._synthetic import write_series  # noqa: E402
from dwi_toolkit.io.dicom.csa import csa_float, csa_floats, parse_csa  # noqa: E402
from dwi_toolkit.io.dicom.vendors import Diffusion, classic_diffusion, to_image_frame  # noqa: E402


def _same_as_pydicom(path):
    raw = path.read_bytes()
    ds, sop, ts, off = parse_header(raw)
    ref = pydicom.dcmread(path, stop_before_pixels=True)
    assert sop == ref.file_meta.MediaStorageSOPClassUID and ts == ref.file_meta.TransferSyntaxUID
    assert raw[off:off + 4] == b"\xe0\x7f\x10\x00"
    for tag in wanted_tags():
        if tag in ref and ref[tag].VR != "SQ":
            assert ds[tag].value == ref[tag].value, hex(tag)
        elif tag not in ref:
            assert tag not in ds


def test_parser_matches_pydicom_explicit_and_implicit(tmp_path):
    paths = write_series(tmp_path / "e", n_slices=2, bvals=(0, 1000), bvecs_lps=((0, 0, 0), (0, 1, 0)))
    for p in paths:
        _same_as_pydicom(p)
    # implicit VR little endian copies load to the same series
    for p in paths:
        ds = pydicom.dcmread(p)
        ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
        out = tmp_path / "i" / p.name
        out.parent.mkdir(exist_ok=True)
        ds.save_as(out, implicit_vr=True, little_endian=True, enforce_file_format=True)
        _same_as_pydicom(out)
    a, b = load_dicom_dwi(tmp_path / "e"), load_dicom_dwi(tmp_path / "i")
    np.testing.assert_array_equal(np.asarray(a.data), np.asarray(b.data))
    np.testing.assert_allclose(a.bvecs, b.bvecs)


def test_parser_refuses_non_part10(tmp_path):
    with pytest.raises(FastParseError):
        parse_header(b"\x08\x00" + b"\x00" * 200)


def test_files_without_preamble_fall_back_to_pydicom(tmp_path):
    paths = write_series(tmp_path / "e", n_slices=2, bvals=(0, 1000), bvecs_lps=((0, 0, 0), (0, 1, 0)))
    for p in paths:  # raw dataset without preamble and file meta (old ACR-NEMA-like export)
        ds = pydicom.dcmread(p)
        out = tmp_path / "np" / p.name
        out.parent.mkdir(exist_ok=True)
        del ds.file_meta
        ds.save_as(out, implicit_vr=True, little_endian=True, enforce_file_format=False)
    s = load_dicom_dwi(tmp_path / "np")
    assert s.shape == (10, 8, 2, 2)


def _csa2(tags: dict[str, list[str]]) -> bytes:
    out = b"SV10\x04\x03\x02\x01" + struct.pack("<2I", len(tags), 77)
    for name, items in tags.items():
        out += name.encode().ljust(64, b"\0") + struct.pack("<i4siii", 1, b"FD\0\0", 4, len(items), 77)
        for it in items:
            v = it.encode() + b"\0"
            out += struct.pack("<4i", len(v), len(v), 77, len(v)) + v.ljust((len(v) + 3) // 4 * 4, b"\0")
    return out


def test_csa2_parser_and_siemens_diffusion():
    blob = _csa2({"B_value": ["1000"], "DiffusionGradientDirection": ["0.6", "-0.8", "0"],
                  "NumberOfImagesInMosaic": ["30"]})
    csa = parse_csa(blob)
    assert csa_float(csa, "B_value") == 1000
    assert csa_floats(csa, "DiffusionGradientDirection") == [0.6, -0.8, 0.0]
    assert parse_csa(b"garbage" * 3) == {}
    ds = pydicom.Dataset()
    d = classic_diffusion(ds, "siemens", csa)
    assert d == Diffusion(1000.0, (0.6, -0.8, 0.0), "lps", False, "siemens-csa")


def test_ge_private_bvalue_and_logical_frame():
    ds = pydicom.Dataset()
    ds.add_new((0x0043, 0x1039), "IS", [1000001000, 8, 0, 0])
    for t, v in zip((0x10BB, 0x10BC, 0x10BD), ("0.5", "0.5", "0.7071068")):
        ds.add_new((0x0019, t), "DS", v)
    d = classic_diffusion(ds, "ge", {})
    assert d.bval == pytest.approx(1000.0) and d.frame == "ge"
    # dcm2niix: axial, COL phase encoding -> (-x, y, z)
    v = to_image_frame(d.vec, "ge", np.array([1.0, 0, 0, 0, 1, 0]), phase_rc="C", slice_axis=2)
    np.testing.assert_allclose(v, np.array([-0.5, 0.5, 0.7071068]) / np.linalg.norm([0.5, 0.5, 0.7071068]))
    # multi-shell scaled vector: b scaled by |g|^2, vector normalised
    ds[0x0019, 0x10BB].value, ds[0x0019, 0x10BC].value, ds[0x0019, 0x10BD].value = "0.5", "0", "0"
    d = classic_diffusion(ds, "ge", {})
    assert d.bval == pytest.approx(250.0) and d.vec == (1.0, 0.0, 0.0)


def test_philips_isotropic_volume_is_flagged():
    ds = pydicom.Dataset()
    ds.DiffusionBValue = 1000.0
    ds.DiffusionGradientOrientation = [0.0, 0.0, 0.0]
    assert classic_diffusion(ds, "philips", {}).isotropic
