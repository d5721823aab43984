"""Report: JSON schema and units, CSV tables, self-contained HTML (parsed, and in Chromium)."""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import re
import shutil
import struct
import subprocess
from html.parser import HTMLParser

import numpy as np
import pytest

from dwi_toolkit.analysis.compare import compare_sides
from dwi_toolkit.clinical.entrapment import NOT_INDICATED_STATEMENT, assess_entrapment
from dwi_toolkit.reporting.html import CSP, PRINT_SCRIPT, esc
from dwi_toolkit.reporting.report import SCHEMA, Report, build_report, file_checksum
from tests.reporting._synthetic import synthetic_subject

PNG_SIG = b"\x89PNG\r\n\x1a\n"


class _Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def _png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == PNG_SIG
    assert png[12:16] == b"IHDR"
    return struct.unpack(">II", png[16:24])


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    series, fit, masks, stats = synthetic_subject(
        meta={"PatientName": "Doe^Jane", "PatientID": "12345", "Manufacturer": "SIEMENS",
              "MagneticFieldStrength": 3.0, "EchoTime": 0.07})
    cmp = compare_sides(stats, symptomatic_side="left", n_boot=500)
    indication = {"classification": "inappropriate", "decisive_rules": ["R-NONSPEC"],
                  "citations": ["ACP-Chou2011-AnnInternMed"], "note": "<script>alert(1)</script>"}
    ent = assess_entrapment(cmp, {"radicular_side": "left", "suspected_levels": ["L5"]},
                            indication=indication)
    src = tmp_path_factory.mktemp("inputs") / "dwi.nii.gz"
    src.write_bytes(b"not really nifti")
    rep = build_report(series=series, fit=fit, roi_masks=masks, stats=stats, comparison=cmp,
                       indication=indication, entrapment=ent, subject="demo <01>",
                       parameters={"method": "wls", "b_min": 0.0, "threshold_pct": 10.0, "n_boot": 500},
                       inputs={"dwi": src})
    out = tmp_path_factory.mktemp("report")
    written = rep.save(out)
    return rep, out, written, src


def test_files_written(report):
    rep, out, written, _ = report
    for name in ("report.json", "report.html", "roi_stats.csv", "side_comparison.csv", "entrapment.csv"):
        assert (out / name).is_file(), name
    assert {p.name for p in (out / "figures").iterdir()} == {
        "side_comparison.png", "adc_montage.png", "signal_decay.png"}
    assert not [p for p in out.rglob(".*")], "temporary files left behind"


def test_json_schema_units_and_no_phi(report):
    rep, out, _, src = report
    text = (out / "report.json").read_text(encoding="utf-8")

    def _no_constants(name):  # NaN/Infinity are not JSON
        raise AssertionError(f"non-JSON constant {name}")

    d = json.loads(text, parse_constant=_no_constants)
    assert d["schema"] == SCHEMA == "dwi_toolkit.report/1"
    assert "Doe" not in text and "12345" not in text
    prov = d["provenance"]
    assert prov["software"] == "dwi_toolkit" and prov["version"]
    assert prov["parameters"]["b_min"] == {"value": 0.0, "unit": "s/mm^2"}
    assert prov["parameters"]["threshold_pct"]["unit"] == "%"
    inp = prov["inputs"][0]
    assert inp["name"] == "dwi.nii.gz" and str(src.parent) not in text
    assert inp["sha256"] == __import__("hashlib").sha256(src.read_bytes()).hexdigest()
    acq = d["acquisition"]
    assert acq["voxel_size"] == {"value": [1.5, 1.5, 4.0], "unit": "mm"}
    assert acq["bvals"]["unit"] == "s/mm^2" and acq["MagneticFieldStrength"]["unit"] == "T"
    # every comparison column has a declared unit (or null for labels); row units resolve
    sc = d["side_comparison"]
    assert set(sc["rows"][0]) <= set(sc["columns"])
    assert sc["columns"]["ratio_pct"] == "%" and sc["columns"]["xs"] == "{unit}"
    assert all(r["unit"] == "mm^2/s" for r in sc["rows"])
    assert set(sc["indices"]) == {"ratio_pct", "rel_diff_pct", "asymmetry_index_pct",
                                  "abs_asymmetry_index_pct"}
    assert set(d["roi_stats"]["rows"][0]) <= set(d["roi_stats"]["columns"])
    assert "values" not in d["roi_stats"]["rows"][0]
    ent = d["entrapment"]
    assert ent["threshold_is_diagnostic"] is False
    assert {lv["level"]: lv["classification"] for lv in ent["levels"]} == {"L4": "no_asymmetry",
                                                                              "L5": "concordant"}
    qc = d["qc"]
    assert qc["b0_threshold"] == {"value": 50.0, "unit": "s/mm^2"}
    assert qc["bvals_used"]["unit"] == "s/mm^2"
    assert qc["fit_status"]["failed_voxels"]["value"] == 1
    assert qc["excluded_voxels"]["unit"] == "voxels"
    assert qc["snr"]["per_roi"][0]["snr"]["value"] > 10


def test_numbers_in_json_match_objects(report):
    rep, out, _, _ = report
    d = json.loads((out / "report.json").read_text())
    row = next(r for r in d["side_comparison"]["rows"] if r["level"] == "L5")
    obj = rep.comparison.get("L5")
    assert row["rel_diff_pct"] == pytest.approx(obj.rel_diff_pct)
    assert row["xs"] == pytest.approx(obj.xs)


def test_csv_tables(report):
    rep, out, _, _ = report
    with open(out / "side_comparison.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["level"] for r in rows] == ["L4", "L5"]
    assert {"ratio_pct", "rel_diff_pct", "asymmetry_index_pct", "abs_asymmetry_index_pct", "unit",
            "difference_ci_low", "n_s", "n_c", "flags"} <= set(rows[0])
    assert float(rows[1]["xs"]) == pytest.approx(rep.comparison.get("L5").xs)
    with open(out / "roi_stats.csv", newline="") as fh:
        stats = list(csv.DictReader(fh))
    assert len(stats) == 4 and "values" not in stats[0]
    with open(out / "entrapment.csv", newline="") as fh:
        ent = list(csv.DictReader(fh))
    assert {r["classification"] for r in ent} == {"no_asymmetry", "concordant"}


def test_html_self_contained_and_escaped(report):
    _, out, _, _ = report
    page = (out / "report.html").read_text(encoding="utf-8")
    p = _Collector()
    p.feed(page)
    imgs = [a for t, a in p.tags if t == "img"]
    assert len(imgs) == 3
    for a in imgs:
        assert a["src"].startswith("data:image/png;base64,")
        w, h = _png_size(base64.b64decode(a["src"].split(",", 1)[1], validate=True))
        assert w > 100 and h > 100
        assert a.get("alt")
    assert not [t for t, _ in p.tags if t in ("link", "iframe", "object", "embed")]
    # the only script is the print helper, allowed by its hash (no other script would run)
    assert page.count("<script") == 1 and f"<script>{PRINT_SCRIPT}</script>" in page
    digest = base64.b64encode(hashlib.sha256(PRINT_SCRIPT.encode()).digest()).decode()
    for _, a in p.tags:
        for k in ("src", "href"):
            v = a.get(k)
            assert v is None or v.startswith(("data:", "#")), v
    csp = [a for t, a in p.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert csp and "default-src 'none'" in csp[0]["content"]
    assert f"script-src 'sha256-{digest}'" in csp[0]["content"]
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    assert "demo &lt;01&gt;" in page
    text = " ".join(p.text)
    for needle in ("Research use only", "rarely change management", "asymmetry on the symptomatic side",
                   "SNR", "b=0 threshold", "SHA-256", "ratio = 100 · Xs / Xc", "not a diagnostic cut-off"):
        assert needle in text, needle
    no_images = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", page)
    assert "Doe" not in no_images and "12345" not in no_images


def test_repr_html_and_repr(report):
    rep = report[0]
    assert "Research use only" in rep._repr_html_()
    assert "Report(subject=" in repr(rep)


def test_minimal_report_without_results(tmp_path):
    rep = Report(provenance={"version": "x"}, acquisition={})
    rep.save(tmp_path)
    d = json.loads((tmp_path / "report.json").read_text())
    assert d["side_comparison"] is None and d["entrapment"] is None
    assert not (tmp_path / "side_comparison.csv").exists()


def test_folder_checksum_is_order_independent_and_content_sensitive(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "1.dcm").write_bytes(b"one")
    (tmp_path / "a" / "2.dcm").write_bytes(b"two")
    c1 = file_checksum(tmp_path / "a")
    assert c1["n_files"] == 2 and c1["kind"] == "folder"
    (tmp_path / "a" / "2.dcm").write_bytes(b"TWO")
    assert file_checksum(tmp_path / "a")["sha256"] != c1["sha256"]


def test_unknown_side_report_renders(tmp_path):
    series, fit, masks, stats = synthetic_subject(seed=3)
    cmp = compare_sides(stats, symptomatic_side=None, n_boot=200)
    ent = assess_entrapment(cmp, None)
    rep = build_report(series=series, fit=fit, roi_masks=masks, stats=stats, comparison=cmp,
                       entrapment=ent)
    page = rep.to_html()
    assert "absolute asymmetry index" in page and NOT_INDICATED_STATEMENT not in page


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not on PATH")
def test_html_renders_in_headless_chromium(report, tmp_path):
    """Open report.html in a real browser and check every image decoded (naturalWidth > 0).

    The page forbids scripts but its print helper (CSP). The probe copy keeps the page's policy
    and adds only a nonce for one probe script, so image loading is tested under the same img-src rule.
    """
    _, out, _, _ = report
    page = (out / "report.html").read_text(encoding="utf-8")
    nonce = "probe123"
    probe = page.replace(esc(CSP), esc(CSP.replace("script-src ", f"script-src 'nonce-{nonce}' ")), 1)
    assert probe != page
    script = (
        f'<script nonce="{nonce}">window.addEventListener("load",function(){{'
        'var im=[].slice.call(document.images);'
        'var ok=im.filter(function(i){return i.complete&&i.naturalWidth>0;}).length;'
        'document.body.setAttribute("data-probe",JSON.stringify({n:im.length,ok:ok}));});</script>'
    )
    probe = probe.replace("</body>", script + "</body>")
    path = tmp_path / "probe.html"
    path.write_text(probe, encoding="utf-8")
    cmd = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--virtual-time-budget=10000", "--dump-dom", path.as_uri()]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    m = re.search(r'data-probe="([^"]+)"', res.stdout)
    assert m, f"probe did not run; stderr tail: {res.stderr[-500:]}"
    result = json.loads(m.group(1).replace("&quot;", '"'))
    assert result["n"] == 3 and result["ok"] == 3, result


def test_jsonable_converts_numpy_and_nonfinite():
    from dwi_toolkit.reporting.report import _jsonable

    out = _jsonable({"a": np.bool_(True), "b": np.float32(1.5), "c": float("nan"), "d": np.arange(2),
                     "e": (np.int64(3), float("inf"))})
    assert out == {"a": True, "b": 1.5, "c": None, "d": [0, 1], "e": [3, None]}
    json.dumps(out, allow_nan=False)
