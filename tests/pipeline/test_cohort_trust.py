"""Cohort passes of ``dwi-toolkit run``: ``--harmonize-by`` (ComBat across sites from
participants.tsv) and ``--longitudinal`` (BIDS ``ses-*`` sessions compared), on phantoms with a
known site bias and a known change."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from dwi_toolkit.cli.main import main
from dwi_toolkit.io.rois import save_rois
from dwi_toolkit.phantom_sessions import make_second_site, make_session_pair
from dwi_toolkit.roi.sample import sample_rois

TINY = dict(shape=(36, 28, 24), voxel_size=(4.0, 4.0, 8.0))
SITE_SCALE = {"A": 1.0, "B": 1.15}  # site B measures every root ADC 15 % higher


@pytest.fixture(scope="module")
def two_sites(tmp_path_factory) -> Path:
    """4 subjects at each of two sites (folder layout) + participants.tsv with their site."""
    root = tmp_path_factory.mktemp("sites_in")
    lines = ["participant_id\tsite"]
    for i in range(8):
        site = "AB"[i % 2]
        label = f"sub-{i + 1:02d}"
        ph = make_second_site(adc_scale=SITE_SCALE[site], snr=40.0, seed=100 + i, **TINY)
        (root / label / "dwi").mkdir(parents=True)
        ph.series.save(root / label / "dwi" / f"{label}_dwi.nii.gz")
        save_rois(sample_rois(ph, kind="tube"), root / label / "rois.json")
        lines.append(f"{label}\t{site}")
    (root / "participants.tsv").write_text("\n".join(lines) + "\n")
    return root


def _site_means(rows: list[dict], feature: tuple, meta: dict) -> dict[str, float]:
    vals: dict[str, list[float]] = {}
    for r in rows:
        if (r["level"], r["side"], r["parameter"]) == feature:
            vals.setdefault(meta[r.get("participant", r["subject"])], []).append(float(r["mean"]))
    return {s: sum(v) / len(v) for s, v in vals.items()}


@pytest.mark.slow
def test_run_harmonize_by_site(two_sites, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["run", str(two_sites), "-o", str(out), "--pipeline", "adc-only", "--harmonize-by", "site"])
    assert rc == 0
    assert "harmonized:" in capsys.readouterr().out
    grp = out / "group" / "harmonized"
    with open(grp / "site_effect.csv") as fh:
        effect = list(csv.DictReader(fh))
    assert effect
    before = [float(r["anova_p_before"]) for r in effect]
    after = [float(r["anova_p_after"]) for r in effect]
    # a 15 % site bias is obvious before, gone after, on the features of the ADC table
    assert sum(p < 0.01 for p in before) >= len(before) // 2
    assert min(after) > 0.05
    meta = {f"sub-{i + 1:02d}": "AB"[i % 2] for i in range(8)}
    with open(out / "group" / "cohort_roi_stats.csv") as fh:
        raw = list(csv.DictReader(fh))
    with open(grp / "cohort_roi_stats_harmonized.csv") as fh:
        harm = list(csv.DictReader(fh))
    feat = ("L5", "left", "adc")
    m_raw, m_harm = _site_means(raw, feat, meta), _site_means(harm, feat, meta)
    assert m_raw["B"] / m_raw["A"] == pytest.approx(1.15, abs=0.05)
    assert abs(m_harm["B"] / m_harm["A"] - 1) < 0.03
    assert (grp / "site_boxplots.png").stat().st_size > 1000
    assert "Site effect before and after" in (grp / "index.html").read_text()


def test_run_harmonize_refuses_small_sites(two_sites, tmp_path, capsys):
    """Three sites of 4, 3 and 1 subjects: refused with the site and the minimum named."""
    part = tmp_path / "participants.tsv"
    part.write_text("participant_id\tsite\n" + "".join(f"sub-{i + 1:02d}\t{'A' if i < 4 else 'B' if i < 7 else 'C'}\n"
                                                         for i in range(8)))
    out = tmp_path / "out"
    rc = main(["run", str(two_sites), "-o", str(out), "--pipeline", "adc-only", "--harmonize-by", "site",
               "--participants", str(part)])
    err = capsys.readouterr().err
    assert rc != 0 and "too few subjects" in err and "'C': 1" in err
    assert (out / "group" / "cohort_roi_stats.csv").is_file()  # the subjects' results are kept
    rc = main(["run", str(two_sites), "-o", str(out), "--pipeline", "adc-only", "--harmonize-by", "scanner"])
    assert rc != 0 and "scanner" in capsys.readouterr().err


@pytest.mark.slow
def test_run_longitudinal_sessions(tmp_path, capsys):
    """A BIDS subject with two sessions (+15 % ADC on L4 right at ses-2): each session analysed,
    the change found real on L4 right only."""
    pair = make_session_pair(shape=(48, 38, 40), voxel_size=(3, 3, 5), seed=3)
    bids = tmp_path / "bids"
    (bids).mkdir()
    (bids / "dataset_description.json").write_text(json.dumps({"Name": "pair", "BIDSVersion": "1.9.0"}))
    for ses, ph in (("ses-1", pair.baseline), ("ses-2", pair.follow_up)):
        d = bids / "sub-01" / ses / "dwi"
        d.mkdir(parents=True)
        ph.series.save(d / f"sub-01_{ses}_dwi.nii.gz")
    rdir = bids / "derivatives" / "rois" / "sub-01" / "ses-1"
    rdir.mkdir(parents=True)
    save_rois(sample_rois(pair.baseline, kind="tube"), rdir / "rois.json")
    out = tmp_path / "out"
    rc = main(["run", str(bids), "-o", str(out), "--pipeline", "adc-only", "--longitudinal"])
    assert rc == 0, capsys.readouterr()
    man = json.loads((out / "manifest.json").read_text())["subjects"]
    assert sorted(man) == ["sub-01_ses-1", "sub-01_ses-2"]
    summary = json.loads((out / "group" / "longitudinal" / "longitudinal_summary.json").read_text())
    assert [(s["subject"], s["baseline"], s["follow_up"]) for s in summary] == [("sub-01", "ses-1", "ses-2")]
    real = [(r["level"], r["side"]) for r in summary[0]["comparison"]["rows"] if r["real_change"]]
    assert real == [("L4", "right")]
    assert "What changed" in (out / "group" / "longitudinal" / "index.html").read_text()
