"""The tractography section in a subject report: JSON block with units, tables, figures, HTML."""

from __future__ import annotations

import json

import numpy as np

from dwi_toolkit.reporting.report import Report, make_provenance
from dwi_toolkit.reporting.tracts_section import tract_section


def test_report_carries_the_tractography_section(tmp_path):
    from dwi_toolkit.phantom_roots import RootLesion, make_root_phantom
    from dwi_toolkit.tracts import along_root_profiles, compare_profiles, find_lesions, track_roots

    ph = make_root_phantom(levels=("L5",), voxel_size=2.5, n_directions=12, snr=30, lesion=RootLesion("L5", "right"))
    tracts = track_roots(ph.series, ph.seeds, mask=ph.body_mask)
    from dwi_toolkit.models.dti import fit_dti

    fit = fit_dti(ph.series, mask=ph.body_mask)
    prof = along_root_profiles(tracts, fit, n_boot=100)
    comps = compare_profiles(prof)
    sec = tract_section(tracts, prof, comps, find_lesions(comps), fa=fit.fa, files={"profiles": "tracts/x.csv"})
    rep = Report(provenance=make_provenance(), acquisition={}, sections=[sec])
    written = rep.save(tmp_path)
    doc = json.loads((tmp_path / "report.json").read_text())
    block = doc["tractography"]
    assert block["profile_comparison"]["columns"]["peak_distance_mm"] == "mm"
    assert block["files"] == {"profiles": "tracts/x.csv"}
    # the comparison rows are those of compare_profiles, the lesion on the simulated side
    assert len(block["profile_comparison"]["rows"]) == len(comps)
    assert [x["side"] for x in block["lesions"]["rows"]] == ["right"]
    adc = next(r for r in block["profile_comparison"]["rows"] if r["parameter"] == "adc")
    assert adc["unit"] == "mm^2/s" and np.isfinite(adc["critical_t"])
    assert {"figures/tract_profiles.png", "figures/tracts_coronal.png", "tract_roots.csv",
            "tract_profile_comparison.csv"} <= set(written)
    html = (tmp_path / "report.html").read_text()
    assert 'id="tractography"' in html or "Root tractography and along-root profiles" in html
    assert html.count("data:image/png;base64") >= 2
    # the page shows readable headers and display units, not field names
    section = html[html.index("Root tractography and along-root profiles"):]
    for code in ("n_seeds", "rejected_too_short", "critical_t", "deviation_found", "max_misalignment_mm", "mm^2/s"):
        assert code not in section, code
    assert "×10⁻³ mm²/s" in section and "origins misaligned up to (mm)" in section
    assert "smallest difference it could report" in section and adc["smallest_reportable_difference"] >= 0.15
