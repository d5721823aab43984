"""The report in a real browser (headless Chromium): no console errors, no external requests, the
first screen answers at 1280 px, the A4 print keeps every column, and the montage labels do not
overlap.

Artefacts (screenshot, A4 PDF, the measured layout) are written to ``test-artifacts/browser/``
(git-ignored). Needs ``chromium`` and ``pdftotext`` (Debian: ``apt-get install chromium
poppler-utils``; ``make test`` installs them when run as root with apt); skipped with that reason
when absent.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
PDFTOTEXT = shutil.which("pdftotext")
ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_data" / "sub-01"
ARTIFACTS = ROOT / "test-artifacts" / "browser"

needs_browser = pytest.mark.skipif(
    CHROMIUM is None or PDFTOTEXT is None,
    reason="headless Chromium and pdftotext are needed (apt-get install chromium poppler-utils)",
)

#: Injected into a copy of the page (the real page forbids scripts): measures the layout and
#: writes it into the DOM, which --dump-dom prints after the script ran.
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


def _chromium(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--no-first-run", "--hide-scrollbars", "--enable-logging=stderr", "--v=0", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    from dwi_toolkit.pipeline.analyze import run_analysis

    out = tmp_path_factory.mktemp("browser_report")
    run_analysis(SAMPLE / "dwi" / "sub-01_dwi.nii.gz", SAMPLE / "rois" / "sub-01_rois.json",
                 clinical_path=SAMPLE / "clinical.json", out_dir=out, b_min=100)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return out


@needs_browser
@pytest.mark.slow
def test_page_opens_without_console_errors_or_requests(report_dir):
    html = (report_dir / "report.html").read_text(encoding="utf-8")
    # nothing the browser could fetch: no scripts, stylesheets, frames or http(s) references
    assert not re.search(r"<(script|link|iframe|object|embed)\b", html, re.I)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html, re.I)
    assert not re.search(r"url\(\s*['\"]?(https?:|//)", html, re.I)
    shot = ARTIFACTS / "report_1280.png"
    proc = _chromium("--window-size=1280,800", f"--screenshot={shot}", (report_dir / "report.html").as_uri())
    assert shot.exists() and shot.stat().st_size > 10_000, proc.stderr[-2000:]
    console = [ln for ln in proc.stderr.splitlines() if "CONSOLE" in ln or "Refused to" in ln]
    assert not console, "\n".join(console)


@needs_browser
@pytest.mark.slow
def test_first_screen_fits_1280_and_no_table_is_clipped(report_dir, tmp_path):
    page = (report_dir / "report.html").read_text(encoding="utf-8")
    probe = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", page).replace("</body>", PROBE + "</body>")
    probe_file = tmp_path / "probe.html"
    probe_file.write_text(probe, encoding="utf-8")
    proc = _chromium("--window-size=1280,800", "--virtual-time-budget=5000", "--dump-dom", probe_file.as_uri())
    m = re.search(r'<pre id="probe">(.*?)</pre>', proc.stdout, re.S)
    assert m, proc.stderr[-2000:]
    import html as _html

    layout = json.loads(_html.unescape(m.group(1)))
    (ARTIFACTS / "layout_1280.json").write_text(json.dumps(layout, indent=1), encoding="utf-8")
    assert layout["page_width"] <= 1280, "the page scrolls horizontally at 1280 px"
    # every level's row is on the first screen (1280 × 800, no scrolling)
    assert layout["glance_bottom"] is not None and layout["glance_bottom"] <= layout["viewport_height"]
    for t in layout["tables"]:
        assert not t["clipped"] and t["right"] <= t["host_right"] + 1, t


def _norm(text: str) -> str:
    return re.sub(r"[\s\-\u00ad]+", "", text)  # pdftotext joins words hyphenated at a line end


@needs_browser
@pytest.mark.slow
def test_a4_pdf_keeps_every_column(report_dir):
    pdf = ARTIFACTS / "report_A4.pdf"
    proc = _chromium("--no-pdf-header-footer", f"--print-to-pdf={pdf}", (report_dir / "report.html").as_uri())
    assert pdf.exists() and pdf.stat().st_size > 10_000, proc.stderr[-2000:]
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True).stdout
    w, h = map(float, re.search(r"Page size:\s+([\d.]+) x ([\d.]+)", info).groups())
    assert abs(w - 595) < 3 and abs(h - 842) < 3, f"not A4: {w} x {h} pt"
    text = _norm(subprocess.run([PDFTOTEXT, str(pdf), "-"], capture_output=True, text=True).stdout)
    page1 = _norm(subprocess.run([PDFTOTEXT, "-f", "1", "-l", "1", str(pdf), "-"],
                                 capture_output=True, text=True).stdout)
    html = (report_dir / "report.html").read_text(encoding="utf-8")
    import html as _html

    headers = {_html.unescape(re.sub(r"<[^>]+>", "", h)) for h in re.findall(r"<th>(.*?)</th>", html)}
    missing = sorted(h for h in headers if h.strip() and _norm(h) not in text)
    assert not missing, f"column headers cut off in print: {missing}"
    # the per-level results are all on the first printed page, with the result in words
    for level in ("L1", "L2", "L3", "L4", "L5", "S1"):
        assert f"{level}ganglion" in page1
    assert "asymmetryonthesymptomaticside" in page1 and "no_asymmetry" not in text


def test_montage_labels_do_not_overlap():
    """Labels of ROIs crowded at the midline on every slice get boxes that never overlap."""
    from matplotlib.text import Text

    from dwi_toolkit.reporting.figures import adc_montage

    adc = np.full((40, 30, 6), 1.2e-3)
    rois = []
    for z in range(6):
        for side, x0 in (("left", 17), ("right", 20)):
            m = np.zeros(adc.shape, bool)
            m[x0:x0 + 2, 14:16, z] = True
            rois.append((f"L{z % 5 + 1} {side} ganglion", m))
    fig = adc_montage((adc, np.diag([2.0, 2.0, 4.0, 1.0])), rois=rois)
    renderer = fig.canvas.get_renderer()
    labels = [t for ax in fig.axes for t in ax.texts if t.get_gid() == "roi-label"]
    assert len(labels) == len(rois)
    boxes = [Text.get_window_extent(t, renderer) for t in labels]
    overlaps = [(labels[i].get_text(), labels[j].get_text()) for i in range(len(boxes))
                for j in range(i + 1, len(boxes)) if boxes[i].overlaps(boxes[j])]
    assert not overlaps
    # ≥ 9 pt at print size: a 3-panel row printed 180 mm wide
    width_in = fig.get_size_inches()[0]
    assert min(t.get_fontsize() for t in labels) * (180 / 25.4) / width_in >= 9
