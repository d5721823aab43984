"""One option name for one idea across every subcommand; old spellings still work, with a warning."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from dwi_toolkit.analysis.options import AnalysisOptions
from dwi_toolkit.cli.main import build_parser, main
from dwi_toolkit.core.image import DWISeries
from dwi_toolkit.errors import InputDataError


def _subparsers(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield name, sub
                yield from ((f"{name} {n}", s) for n, s in _subparsers(sub))


def _visible_flags(sub):
    return {s for a in sub._actions if a.help != argparse.SUPPRESS for s in a.option_strings}


#: one idea -> the one visible spelling, and spellings that must never be visible again
IDEAS = {
    "output": ("--out", {"--out-dir", "--outdir", "--output"}),
    "figures": ("--no-figures", {"--no-figure", "--no-png"}),
    "b range": ("--b-range", {"--b-min", "--b-max"}),
    "mask": ("--mask", {"--auto-mask"}),
}


def test_every_subcommand_uses_one_spelling_per_idea():
    for name, sub in _subparsers(build_parser()):
        flags = _visible_flags(sub)
        for idea, (good, old) in IDEAS.items():
            assert not flags & old, f"{name}: visible old spelling {flags & old} for {idea}; use {good}"
        if "--out" in flags:
            assert "-o" in flags, name


def test_fitting_commands_share_input_mask_and_figure_options():
    subs = dict(_subparsers(build_parser()))
    for name in ("adc", "ivim", "dti", "analyze"):
        flags = _visible_flags(subs[name])
        assert {"-o", "--out", "--mask", "--no-figures", "--method", "--bvals", "--bvecs",
                "--b0-threshold"} <= flags, name
    for name in ("adc", "dti", "analyze"):
        assert "--b-range" in _visible_flags(subs[name])
    for name in ("adc", "ivim", "dti", "analyze"):  # one analysis-mask policy: auto by default
        assert subs[name].parse_args(["x.nii.gz", "-o", "o", *(["--rois", "r"] if name == "analyze" else [])]).mask == "auto"


@pytest.fixture
def uniform_dwi(tmp_path):
    """A series with a background: a 6x6 tissue block inside an 8x8 field of view."""
    data = np.zeros((8, 8, 2, 3), np.float32)
    data[1:7, 1:7, :, :] = 1000.0 * np.exp(-np.array([0.0, 500.0, 1000.0]) * 1.0e-3)
    path = tmp_path / "dwi.nii.gz"
    DWISeries(data, np.eye(4), [0, 500, 1000], [[0, 0, 0], [1, 0, 0], [1, 0, 0]]).save(path)
    return path


def test_old_spellings_work_with_a_deprecation_message(uniform_dwi, tmp_path, capsys):
    out = tmp_path / "old"
    assert main(["adc", str(uniform_dwi), "--out-dir", str(out), "--b-min", "400", "--no-figure"]) == 0
    err = capsys.readouterr().err
    assert "--out-dir is deprecated" in err and "--b-min is deprecated" in err and "--no-figure is deprecated" in err
    summary = json.loads((out / "adc_fit.json").read_text())
    assert summary["bvals_used"] == [500.0, 1000.0] and not (out / "adc_montage.png").exists()
    # the new spelling gives the same fit, with no message
    new = tmp_path / "new"
    assert main(["adc", str(uniform_dwi), "-o", str(new), "--b-range", "400", "-", "--no-figures"]) == 0
    assert "deprecated" not in capsys.readouterr().err
    assert json.loads((new / "adc_fit.json").read_text())["bvals_used"] == summary["bvals_used"]


def test_mask_policy_is_stated_and_auto_excludes_background(uniform_dwi, tmp_path):
    assert main(["adc", str(uniform_dwi), "-o", str(tmp_path / "a"), "--no-figures"]) == 0
    auto = json.loads((tmp_path / "a" / "adc_fit.json").read_text())
    assert auto["mask"] == "auto" and auto["mask_voxels"] == 6 * 6 * 2
    assert main(["adc", str(uniform_dwi), "-o", str(tmp_path / "n"), "--no-figures", "--mask", "none"]) == 0
    none = json.loads((tmp_path / "n" / "adc_fit.json").read_text())
    assert none["mask"] == "none" and none["mask_voxels"] is None
    assert none["n_fitted"] < 8 * 8 * 2  # background voxels fail (zero signal) without a mask
    assert auto["median_adc_mm2_s"] == pytest.approx(1.0e-3, rel=1e-6)


def test_method_names_are_case_insensitive():
    subs = dict(_subparsers(build_parser()))
    assert subs["dti"].parse_args(["x", "-o", "o", "--method", "wls"]).method == "WLS"
    assert subs["adc"].parse_args(["x", "-o", "o", "--method", "NLLS"]).method == "nlls"
    assert subs["analyze"].parse_args(["x", "-o", "o", "--rois", "r", "--method", "Ols"]).method == "ols"
    with pytest.raises(SystemExit):
        subs["adc"].parse_args(["x", "-o", "o", "--method", "lm"])


def test_analysis_options_are_validated_and_defaulted_once():
    from dwi_toolkit.clinical.entrapment import DEFAULT_THRESHOLD_PCT

    o = AnalysisOptions()
    assert o.threshold_pct == DEFAULT_THRESHOLD_PCT and o.mask == "auto" and o.method == "wls"
    with pytest.raises(InputDataError, match="b_min"):
        AnalysisOptions(b_min=800, b_max=100)
    with pytest.raises(InputDataError, match="symptomatic_side"):
        AnalysisOptions(symptomatic_side="bilateral")
    with pytest.raises(InputDataError, match="unknown analysis option"):
        AnalysisOptions.from_mapping({"n_bootstrap": 10})
    assert set(o.to_dict()) == set(AnalysisOptions.names())


def test_every_cli_analysis_option_reaches_analysis_options():
    from dwi_toolkit.cli._options import analysis_options

    sub = dict(_subparsers(build_parser()))["analyze"]
    args = sub.parse_args(["x", "--rois", "r", "-o", "o", "--b-range", "-", "900", "--mask", "none",
                           "--no-figures", "--n-boot", "50", "--seed", "3", "--threshold-pct", "12",
                           "--symptomatic-side", "left", "--stenosis-policy", "acr2021",
                           "--csf-threshold", "0.0025", "--b0-threshold", "20", "--backend", "dcm2niix"])
    o = analysis_options(args)
    assert (o.b_min, o.b_max, o.mask, o.figures, o.n_boot, o.seed, o.threshold_pct, o.symptomatic_side,
            o.stenosis_policy, o.csf_threshold, o.b0_threshold, o.backend) == (
        None, 900.0, "none", False, 50, 3, 12.0, "left", "acr2021", 0.0025, 20.0, "dcm2niix")
