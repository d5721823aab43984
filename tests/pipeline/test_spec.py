"""Pipeline definitions: built-ins, validation errors that name the key, hashing, TOML round trip."""

from __future__ import annotations

import pytest

from dwi_toolkit.errors import PipelineError
from dwi_toolkit.pipeline.runner import run_pipeline
from dwi_toolkit.pipeline.spec import (
    SCHEMA, builtin_pipelines, load_pipeline, parse_pipeline, resolve_pipeline_path,
)
from dwi_toolkit.pipeline.steps import STEPS

from tests.conftest import REPO
from tests.pipeline._helpers import tiny_cohort

HEAD = f'schema = "{SCHEMA}"\nname = "t"\n'


def test_builtin_pipelines_ship_in_package_and_match_repo_copies():
    shipped = builtin_pipelines()
    assert {"default", "adc-only", "high-b"} <= set(shipped)
    for name, path in shipped.items():
        repo_copy = REPO / "pipelines" / f"{name}.toml"
        assert repo_copy.read_bytes() == path.read_bytes(), f"pipelines/{name}.toml differs from the package copy"
    assert {p.stem for p in (REPO / "pipelines").glob("*.toml")} == set(shipped)


@pytest.mark.parametrize("name", ["default", "adc-only", "high-b"])
def test_builtin_pipelines_validate(name):
    spec = load_pipeline(name)
    assert spec.source == f"builtin:{name}"
    steps = [s.step for s in spec.steps]
    assert steps[:2] == ["load", "adc"]
    for s in spec.steps:  # defaults filled for every declared parameter
        assert set(s.params) == set(STEPS[s.step].params)


def test_builtin_parameters_are_the_documented_ones():
    d = {s.step: s.params for s in load_pipeline("default").steps}
    assert d["adc"]["method"] == "wls" and d["adc"]["b_min"] == 0.0 and d["adc"]["b_max"] is None
    assert [s.step for s in load_pipeline("default").steps] == ["load", "adc", "roi_stats", "compare", "assess",
                                                                "report"]
    assert {s.step: s.params for s in load_pipeline("high-b").steps}["adc"]["b_min"] == 200.0
    assert {s.step: s.params for s in load_pipeline("adc-only").steps}["roi_stats"]["if_no_rois"] == "skip"


BAD = [
    (HEAD + "stepz = []\n", "unknown key 'stepz' at the top level"),
    ('name = "x"\n[[steps]]\nstep = "load"\n', "missing key 'schema'"),
    ('schema = "dwi_toolkit.pipeline/9"\nname = "x"\n[[steps]]\nstep = "load"\n', "schema:"),
    (f'schema = "{SCHEMA}"\n[[steps]]\nstep = "load"\n', "name:"),
    (HEAD, "steps: at least one"),
    (HEAD + '[[steps]]\nstep = "lod"\n', "steps[0].step: unknown step 'lod'"),
    (HEAD + '[[steps]]\nmethod = "wls"\n', "steps[0]: missing key 'step'"),
    (HEAD + '[[steps]]\nstep = "load"\n[[steps]]\nstep = "adc"\nb_mn = 200\n', "steps[1] (adc): unknown key 'b_mn'"),
    (HEAD + '[[steps]]\nstep = "load"\n[[steps]]\nstep = "adc"\nmethod = "wl"\n', "steps[1] (adc).method"),
    (HEAD + '[[steps]]\nstep = "load"\n[[steps]]\nstep = "adc"\nb_min = "200"\n', "steps[1] (adc).b_min: expected float"),
    (HEAD + '[[steps]]\nstep = "load"\n[[steps]]\nstep = "adc"\nb_min = -5\n', "steps[1] (adc).b_min: must be >= 0"),
    (HEAD + '[[steps]]\nstep = "load"\n[[steps]]\nstep = "adc"\nsave_maps = 1\n', "steps[1] (adc).save_maps: expected bool"),
    (HEAD + '[[steps]]\nstep = "load"\n[[steps]]\nstep = "adc"\nb_min = 800\nb_max = 200\n', "b_min (800"),
    (HEAD + '[[steps]]\nstep = "adc"\n', "steps[0] (adc): needs 'series'"),
    (HEAD + '[[steps]]\nstep = "load"\n[[steps]]\nstep = "load"\n', "steps[1] (load).id: 'load' is used"),
    (HEAD + 'plugins = ["no_such_module_xyz"]\n[[steps]]\nstep = "load"\n', "plugins[0]"),
    (HEAD + "[[steps]\n", "not valid TOML"),
]


@pytest.mark.parametrize("text, message", BAD)
def test_invalid_pipeline_errors_name_the_key(text, message):
    with pytest.raises(PipelineError) as err:
        parse_pipeline(text, source="bad.toml")
    assert message in str(err.value)
    assert str(err.value).startswith("bad.toml")


def test_invalid_pipeline_fails_before_any_work(tmp_path):
    tiny_cohort(tmp_path / "in", n_good=1, broken=False)
    bad = tmp_path / "bad.toml"
    bad.write_text(HEAD + '[[steps]]\nstep = "load"\n[[steps]]\nstep = "adc"\nmethood = "wls"\n')
    out = tmp_path / "out"
    with pytest.raises(PipelineError, match="unknown key 'methood'"):
        run_pipeline(tmp_path / "in", out, pipeline=bad)
    assert not out.exists()


def test_unknown_pipeline_name_lists_builtins(tmp_path):
    with pytest.raises(PipelineError, match="adc-only"):
        resolve_pipeline_path("nonexistent")
    with pytest.raises(PipelineError, match="not found"):
        resolve_pipeline_path(tmp_path / "missing.toml")


def test_hash_tracks_parameters_not_names_and_toml_round_trips():
    a = parse_pipeline(HEAD + '[[steps]]\nstep = "load"\n[[steps]]\nstep = "adc"\n')
    b = parse_pipeline(HEAD.replace('"t"', '"renamed"') + '[[steps]]\nstep = "load"\n[[steps]]\nstep = "adc"\n')
    c = parse_pipeline(HEAD + '[[steps]]\nstep = "load"\n[[steps]]\nstep = "adc"\nmethod = "ols"\n')
    d = parse_pipeline(HEAD + '[[steps]]\nstep = "load"\n[[steps]]\nstep = "adc"\nmethod = "wls"\n')
    assert a.hash == b.hash == d.hash  # explicit default == implicit default
    assert a.hash != c.hash
    for spec in (c, load_pipeline("default"), load_pipeline("high-b")):
        again = parse_pipeline(spec.to_toml())
        assert again.hash == spec.hash and again.to_dict() == spec.to_dict()
        assert "dwi_toolkit" in spec.to_toml().splitlines()[0]


def test_missing_module_is_reported_before_work(monkeypatch):
    from dwi_toolkit.pipeline import steps

    monkeypatch.setitem(steps.STEPS, "load", steps.StepDef(
        name="load", func=steps.STEPS["load"].func, params=steps.STEPS["load"].params,
        provides=("series",), modules=("dwi_toolkit.no_such_module",)))
    spec = parse_pipeline(HEAD + '[[steps]]\nstep = "load"\n')
    with pytest.raises(PipelineError, match="no_such_module"):
        spec.check_available()


def test_docs_describe_every_step_and_parameter():
    text = (REPO / "docs" / "pipeline.md").read_text()
    for name, sdef in STEPS.items():
        if sdef.func.__module__ != "dwi_toolkit.pipeline.steps":
            continue  # test plugins
        assert f"**`{name}`**" in text, f"docs/pipeline.md lacks step {name}"
        for key in sdef.params:
            assert f"`{key}`" in text, f"docs/pipeline.md lacks parameter {name}.{key}"
    for key in ("schema", "name", "description", "plugins", "steps"):
        assert f"| `{key}` |" in text
