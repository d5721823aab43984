"""Checks of a report as a reader meets it, shared by the browser tests (sample and real series).

Headless Chromium renders the page: a screenshot at 1280 × 800, the layout measured by a probe
script injected into a copy of the page, and an A4 print-to-PDF read back with pdftotext. The
artefacts go to ``test-artifacts/browser/<name>/``. Each ``check_*`` raises AssertionError with
what is wrong; the values they compare come from the page, the PDF and report.json, and the
QC-flag checks recompute each fraction from the fit status and ROI masks themselves.
"""

from __future__ import annotations

import html as _html
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from dwi_toolkit.reporting.html import PRINT_SCRIPT

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
PDFTOTEXT = shutil.which("pdftotext")
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "browser"

needs_browser = pytest.mark.skipif(
    CHROMIUM is None or PDFTOTEXT is None,
    reason="headless Chromium and pdftotext are needed (apt-get install chromium poppler-utils)",
)

#: Injected into a copy of the page (without its CSP): measures the layout and writes it into the
#: DOM, which --dump-dom prints after the script ran.
PROBE = """<script>
window.addEventListener('load', () => {
  const tables = [...document.querySelectorAll('table')].map(t => {
    const host = t.parentElement;
    return {caption: (t.caption ? t.caption.textContent : '').slice(0, 60),
            right: t.getBoundingClientRect().right, host_right: host.getBoundingClientRect().right,
            clipped: t.scrollWidth > t.clientWidth + 1};
  });
  const g = document.querySelector('table.glance');
  const out = {page_width: document.documentElement.scrollWidth, viewport: window.innerWidth,
               viewport_height: window.innerHeight,
               glance_bottom: g ? g.getBoundingClientRect().bottom : null, tables: tables};
  const pre = document.createElement('pre'); pre.id = 'probe';
  pre.textContent = JSON.stringify(out); document.body.appendChild(pre);
});
</script>"""


def chromium(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--no-first-run", "--hide-scrollbars", "--enable-logging=stderr", "--v=0", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def artefact_dir(name: str) -> Path:
    d = ARTIFACTS / name if name else ARTIFACTS
    d.mkdir(parents=True, exist_ok=True)
    return d


def norm(text: str) -> str:
    return re.sub(r"[\s\-\u00ad]+", "", text)  # pdftotext joins words hyphenated at a line end


def visible_text(page: str) -> str:
    page = re.sub(r"<(style|script)>.*?</\1>", "", page, flags=re.S)
    page = re.sub(r'src="data:[^"]*"', "", page)
    return _html.unescape(re.sub(r"<[^>]+>", " ", page))


def run_with_spies(*args, **kwargs) -> dict:
    """``run_analysis(*args, **kwargs)``, keeping what it gave ``build_report`` (``fit``, ``roi_masks``,
    ``series`` ...) and the ADC montage figure (``montage``), for checks against the written report."""
    from dwi_toolkit.pipeline.analyze import run_analysis
    from dwi_toolkit.reporting import figures as F
    from dwi_toolkit.reporting import report as R

    seen: dict = {}
    build, montage = R.build_report, F.adc_montage

    def spy_build(**kw):
        seen.update(kw)
        return build(**kw)

    def spy_montage(*a, **kw):
        seen["montage"] = montage(*a, **kw)
        return seen["montage"]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(R, "build_report", spy_build)
        mp.setattr(F, "adc_montage", spy_montage)
        run_analysis(*args, **kwargs)
    return seen


# ------------------------------------------------------------------------------ page and screen
def check_self_contained_and_quiet(html_file: Path, shot: Path) -> None:
    """Nothing the browser could fetch, no script but the print helper, no console error; a screenshot."""
    page = html_file.read_text(encoding="utf-8")
    assert not re.search(r"<(link|iframe|object|embed)\b", page, re.I)
    assert re.findall(r"<script\b[^>]*>(.*?)</script>", page, re.S) == [PRINT_SCRIPT]
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page, re.I)
    assert not re.search(r"url\(\s*['\"]?(https?:|//)", page, re.I)
    proc = chromium("--window-size=1280,800", f"--screenshot={shot}", html_file.as_uri())
    assert shot.exists() and shot.stat().st_size > 10_000, proc.stderr[-2000:]
    console = [ln for ln in proc.stderr.splitlines() if "CONSOLE" in ln or "Refused to" in ln]
    assert not console, "\n".join(console)


def measure_layout(html_file: Path, work: Path, out_json: Path) -> dict:
    page = html_file.read_text(encoding="utf-8")
    probe = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", page).replace("</body>", PROBE + "</body>")
    probe_file = work / "probe.html"
    probe_file.write_text(probe, encoding="utf-8")
    proc = chromium("--window-size=1280,800", "--virtual-time-budget=5000", "--dump-dom", probe_file.as_uri())
    m = re.search(r'<pre id="probe">(.*?)</pre>', proc.stdout, re.S)
    assert m, proc.stderr[-2000:]
    layout = json.loads(_html.unescape(m.group(1)))
    out_json.write_text(json.dumps(layout, indent=1), encoding="utf-8")
    return layout


def check_first_screen(layout: dict) -> None:
    """No horizontal scrolling at 1280 px, every level's row on the first 1280 × 800 screen, no clipped table."""
    assert layout["page_width"] <= 1280, "the page scrolls horizontally at 1280 px"
    assert layout["glance_bottom"] is not None and layout["glance_bottom"] <= layout["viewport_height"], layout
    for t in layout["tables"]:
        assert not t["clipped"] and t["right"] <= t["host_right"] + 1, t


# ------------------------------------------------------------------------------ print
def print_pdf(html_file: Path, pdf: Path) -> tuple[str, str]:
    """Chromium's A4 print-to-PDF of the page; (all text, text of page 1), whitespace removed."""
    proc = chromium("--no-pdf-header-footer", f"--print-to-pdf={pdf}", html_file.as_uri())
    assert pdf.exists() and pdf.stat().st_size > 10_000, proc.stderr[-2000:]
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True).stdout
    w, h = map(float, re.search(r"Page size:\s+([\d.]+) x ([\d.]+)", info).groups())
    assert abs(w - 595) < 3 and abs(h - 842) < 3, f"not A4: {w} x {h} pt"
    text = subprocess.run([PDFTOTEXT, str(pdf), "-"], capture_output=True, text=True).stdout
    page1 = subprocess.run([PDFTOTEXT, "-f", "1", "-l", "1", str(pdf), "-"], capture_output=True, text=True).stdout
    return norm(text), norm(page1)


def check_print_keeps_columns_and_details(page: str, text: str) -> None:
    """Every table header and the content of every closed <details> is in the printed text."""
    headers = {_html.unescape(re.sub(r"<[^>]+>", "", h)) for h in re.findall(r"<th>(.*?)</th>", page)}
    # a header wrapped over two lines in its cell comes out of pdftotext word by word
    missing = sorted(h for h in headers if h.strip() and not all(norm(w) in text for w in h.split()))
    assert not missing, f"column headers cut off in print: {missing}"
    letters = re.sub(r"[^A-Za-z]", "", text)       # list numbers and punctuation differ in print
    folded = []
    for body in re.findall(r"<details>(?:<summary>.*?</summary>)(.*?)</details>", page, re.S):
        words = re.sub(r"[^A-Za-z]", "", visible_text(body))[:60]
        if words:
            folded.append(words)
    lost = [w for w in folded if w not in letters]
    assert not lost, f"content of closed <details> missing from print: {lost}"


# ------------------------------------------------------------------------------ words and numbers
def check_words_and_numbers(page: str) -> None:
    """No machine code word, no machine-precision number, units typeset once."""
    text = visible_text(page)
    codes = set(re.findall(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b(?!\.csv)", text)) - {"dwi_toolkit"}
    assert not codes, codes
    assert not re.findall(r"\d\.\d{5,}", text), re.findall(r".{30}\d\.\d{5,}.{10}", text)
    assert "mm^2" not in text and "s/mm^2" not in text and "a.u.." not in text


# ------------------------------------------------------------------------------ QC flags
def _failed(st: np.ndarray) -> np.ndarray:
    return (st != 0) & (st != 1)


def check_qc_flags(report: dict, status: np.ndarray, roi_masks, limit_pct: float = 5.0) -> None:
    """Each fit QC flag fires exactly when its fraction, recomputed here, exceeds the limit, with that value."""
    flags = report["qc"]["flags"]
    by = {(f["code"], f["subject"]): f for f in flags}
    for f in flags:
        assert f["message"] and f["advice"] and f["limit"] is not None, f
    expected = {}
    for label, m in roi_masks:
        st = status[np.asarray(m, bool)]
        if not st.size:
            continue
        fitted = int(np.sum(st != 1))
        if fitted:
            expected[("fit_failed_roi", label)] = 100.0 * _failed(st).sum() / fitted
        expected[("roi_outside_mask", label)] = 100.0 * np.sum(st == 1) / st.size
    body = status != 1
    if body.any():
        expected[("fit_failed_body", "body")] = 100.0 * _failed(status[body]).sum() / body.sum()
    for key, pct in expected.items():
        if pct > limit_pct:
            assert key in by, f"{key}: {pct:.1f} % > {limit_pct} % but no flag"
            assert by[key]["measured"] == pytest.approx(round(pct, 1), abs=0.051), (key, by[key], pct)
        else:
            assert key not in by, f"{key}: {pct:.1f} % within the limit but flagged"
    fs = report["qc"].get("fit_status")
    if fs and fs["attempted_voxels"]["value"]:
        frac = fs["failed_voxels"]["value"] / fs["attempted_voxels"]["value"]
        assert fs["failed_fraction"]["value"] == pytest.approx(frac)
    snr_warn = report["provenance"]["parameters"]["snr_warn"]
    snr_warn = snr_warn["value"] if isinstance(snr_warn, dict) else snr_warn
    for rec in (report["qc"].get("snr") or {}).get("per_roi", []):
        v = rec["snr"]["value"]
        assert (("low_snr", rec["roi"]) in by) == (v is not None and v < snr_warn), rec
    agreement = (report["qc"].get("scanner_adc") or {}).get("agreement")
    if agreement:
        judged = next(a for a in agreement if a["region"] == ("all ROIs" if report["qc"]["scanner_adc"]["judged_on"] == "ROIs" else "body"))
        flagged = any(f["code"] == "scanner_adc" for f in flags)
        assert flagged == (abs(judged["median_rel_diff_pct"]) > 100 * 0.10), judged


# ------------------------------------------------------------------------------ montage
def montage_label_overlaps(fig) -> tuple[int, list]:
    """(number of ROI labels, defects) of an ADC montage figure: pairs of labels whose text boxes
    overlap, and labels running out of their own panel (drawn under the next panel's image)."""
    from matplotlib.text import Text

    renderer = fig.canvas.get_renderer()
    labels = [t for ax in fig.axes for t in ax.texts if t.get_gid() == "roi-label"]
    for t in labels:  # positions at this renderer's dpi (a saved PNG may have moved them to another)
        t.update_positions(renderer)
    boxes = [Text.get_window_extent(t, renderer) for t in labels]  # the text box, without the leader
    pairs = [(labels[i].get_text(), labels[j].get_text()) for i in range(len(boxes))
             for j in range(i + 1, len(boxes)) if boxes[i].overlaps(boxes[j])]
    for t, b in zip(labels, boxes):
        frame = t.axes.bbox
        if b.x0 < frame.x0 - 1 or b.x1 > frame.x1 + 1 or b.y0 < frame.y0 - 1 or b.y1 > frame.y1 + 1:
            if any(other is not t.axes and other.bbox.overlaps(b) for other in t.figure.axes):
                pairs.append((t.get_text(), "runs under another panel"))
    return len(labels), pairs
