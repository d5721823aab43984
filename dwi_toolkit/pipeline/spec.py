"""Declarative pipeline definitions (TOML): parse, validate, fill defaults, hash, write back.

A pipeline file names an ordered list of steps from the step registry
(:mod:`dwi_toolkit.pipeline.steps`) and their parameters. Everything is checked before any
subject is touched: unknown keys, wrong types or values, unknown steps, and steps whose inputs no
earlier step provides all raise :class:`~dwi_toolkit.errors.PipelineError` with a message that
names the offending key (``steps[2].b_mn``).

Schema ``dwi_toolkit.pipeline/1`` (every key is documented in ``docs/pipeline.md``)::

    schema = "dwi_toolkit.pipeline/1"      # required
    name = "default"                       # required, short label
    description = "..."                    # optional
    plugins = ["my_lab.steps"]             # optional: modules that register extra steps

    [[steps]]
    step = "adc"                           # a registered step name
    id = "adc"                             # optional, unique (default: the step name)
    method = "wls"                         # the step's parameters, each checked
    b_min = 0.0

The *effective* configuration (defaults filled in) is written next to the outputs, and its
SHA-256 together with the software version is the *pipeline hash* that decides whether a subject
must be recomputed.

Python 3.11+ reads TOML with :mod:`tomllib`; on Python 3.10 the ``tomli`` package is needed
(a conditional dependency of the package).

Examples
--------
>>> spec = parse_pipeline('''
... schema = "dwi_toolkit.pipeline/1"
... name = "fit"
... [[steps]]
... step = "load"
... [[steps]]
... step = "adc"
... method = "ols"
... ''')
>>> [s.step for s in spec.steps], spec.steps[1].params["method"]
(['load', 'adc'], 'ols')
>>> parse_pipeline('schema = "dwi_toolkit.pipeline/1"\\nname = "x"\\nstepz = []')
Traceback (most recent call last):
...
dwi_toolkit.errors.PipelineError: <string>: unknown key 'stepz' at the top level; allowed keys: description, name, plugins, schema, steps.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._version import __version__
from ..errors import PipelineError

__all__ = [
    "SCHEMA",
    "StepSpec",
    "PipelineSpec",
    "parse_pipeline",
    "load_pipeline",
    "builtin_pipelines",
    "resolve_pipeline_path",
    "to_toml",
]

#: Schema identifier required in every pipeline file.
SCHEMA = "dwi_toolkit.pipeline/1"
_TOP_KEYS = {"schema", "name", "description", "plugins", "steps"}
_RESERVED_STEP_KEYS = {"step", "id"}
_ID_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


def _toml_loads(text: str, where: str) -> dict[str, Any]:
    try:
        import tomllib  # Python >= 3.11
    except ModuleNotFoundError:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ModuleNotFoundError as err:
            raise PipelineError(
                "reading pipeline files on Python 3.10 needs the 'tomli' package: pip install tomli"
            ) from err
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise PipelineError(f"{where}: not valid TOML: {err}") from err


@dataclass(frozen=True)
class StepSpec:
    """One configured step: the registered step name, a unique id and every parameter's value.

    Examples
    --------
    >>> spec = load_pipeline("adc-only")
    >>> step = spec.steps[1]
    >>> step.step, step.id, step.params["method"]
    ('adc', 'adc', 'wls')
    """

    step: str
    id: str
    params: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """``{"step": ..., "id": ..., **params}`` with parameters set to None left out."""
        return {"step": self.step, "id": self.id, **{k: v for k, v in self.params.items() if v is not None}}


@dataclass(frozen=True)
class PipelineSpec:
    """A validated pipeline with defaults filled in (the *effective* configuration).

    Attributes
    ----------
    name, description : str
    steps : tuple of StepSpec
    plugins : tuple of str
        Modules imported (here and in every worker) to register extra steps.
    source : str
        Where it came from (``builtin:default`` or the file name).

    Examples
    --------
    >>> spec = load_pipeline("default")
    >>> spec
    PipelineSpec(name='default', steps=[load, adc, roi_stats, compare, assess, report], source='builtin:default')
    >>> len(spec.hash)                       # SHA-256 of the steps, parameters and version
    64
    """

    name: str
    steps: tuple[StepSpec, ...]
    description: str = ""
    plugins: tuple[str, ...] = ()
    source: str = "<string>"
    schema: str = SCHEMA
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The effective configuration as TOML/JSON-ready builtins."""
        d: dict[str, Any] = {"schema": self.schema, "name": self.name}
        if self.description:
            d["description"] = self.description
        if self.plugins:
            d["plugins"] = list(self.plugins)
        d["steps"] = [s.to_dict() for s in self.steps]
        return d

    @property
    def hash(self) -> str:
        """SHA-256 of the steps, their parameters, the plugins and the dwi_toolkit version.

        Name, description and source are left out: renaming a pipeline does not redo work,
        changing any parameter or upgrading dwi_toolkit does.
        """
        core = {"schema": self.schema, "plugins": list(self.plugins),
                "steps": [s.to_dict() for s in self.steps], "version": __version__}
        return hashlib.sha256(json.dumps(core, sort_keys=True).encode()).hexdigest()

    def __repr__(self) -> str:
        return (f"PipelineSpec(name={self.name!r}, steps=[{', '.join(s.id for s in self.steps)}], "
                f"source={self.source!r})")

    def _repr_html_(self) -> str:
        from ..core._display import html_table

        rows = [("name", self.name), ("description", self.description), ("source", self.source),
                ("hash", self.hash[:12])]
        rows += [(f"step {s.id}", f"{s.step}: " + ", ".join(f"{k}={v!r}" for k, v in s.params.items()))
                 for s in self.steps]
        if self.plugins:
            rows.append(("plugins", ", ".join(self.plugins)))
        return html_table("PipelineSpec", rows)

    def to_toml(self) -> str:
        """The effective configuration as TOML, headed by the software version and hash."""
        head = (f"# Effective pipeline configuration written by dwi_toolkit {__version__}\n"
                f"# source: {self.source}\n# pipeline hash: {self.hash}\n")
        return head + to_toml(self.to_dict())

    def check_available(self) -> None:
        """Raise :class:`PipelineError` if a step needs a module this installation lacks."""
        from .steps import get_step

        for i, s in enumerate(self.steps):
            missing = get_step(s.step).missing_modules()
            if missing:
                raise PipelineError(
                    f"{self.source}: steps[{i}] ({s.step}) needs {', '.join(missing)}, which this "
                    f"installation of dwi_toolkit {__version__} does not provide; update dwi_toolkit or "
                    "remove the step."
                )


# ------------------------------------------------------------------------------------ TOML out
def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # TOML basic strings share JSON's escapes
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise PipelineError(f"cannot write {type(v).__name__} value {v!r} to TOML")


def to_toml(doc: dict[str, Any]) -> str:
    """Write a pipeline dictionary (scalars, lists, a ``steps`` array of tables) as TOML.

    Examples
    --------
    >>> to_toml({"schema": "s", "name": "n", "steps": [{"step": "load", "b0_threshold": 50.0}]}).splitlines()
    ['schema = "s"', 'name = "n"', '', '[[steps]]', 'step = "load"', 'b0_threshold = 50.0']
    """
    lines = [f"{k} = {_toml_value(v)}" for k, v in doc.items() if k != "steps" and v is not None]
    for st in doc.get("steps", []):
        lines += ["", "[[steps]]"] + [f"{k} = {_toml_value(v)}" for k, v in st.items() if v is not None]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------ validation
def _check_param(where: str, key: str, value: Any, param: Any) -> Any:
    """Validate one parameter value against its declaration; return the normalised value."""
    types = param.types
    if isinstance(value, bool) and bool not in types:
        ok = False
    elif float in types and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    else:
        ok = isinstance(value, types)
    if not ok:
        want = " or ".join(sorted({t.__name__ for t in types}))
        raise PipelineError(f"{where}.{key}: expected {want}, got {type(value).__name__} {value!r}.")
    if param.choices is not None and value not in param.choices:
        raise PipelineError(
            f"{where}.{key}: {value!r} is not allowed; choose one of {', '.join(map(repr, param.choices))}."
        )
    if param.min is not None and isinstance(value, (int, float)) and value < param.min:
        raise PipelineError(f"{where}.{key}: must be >= {param.min}, got {value!r}.")
    if param.max is not None and isinstance(value, (int, float)) and value > param.max:
        raise PipelineError(f"{where}.{key}: must be <= {param.max}, got {value!r}.")
    return value


def import_plugins(plugins: tuple[str, ...] | list[str], where: str = "<pipeline>") -> None:
    """Import plugin modules (they register steps with :func:`dwi_toolkit.pipeline.steps.register_step`)."""
    for i, mod in enumerate(plugins):
        try:
            importlib.import_module(mod)
        except ImportError as err:
            raise PipelineError(f"{where}: plugins[{i}]: cannot import module {mod!r}: {err}") from err


def _validate(doc: dict[str, Any], where: str) -> PipelineSpec:
    from .steps import STEPS

    unknown = sorted(set(doc) - _TOP_KEYS)
    if unknown:
        raise PipelineError(
            f"{where}: unknown key {unknown[0]!r} at the top level; allowed keys: {', '.join(sorted(_TOP_KEYS))}."
        )
    schema = doc.get("schema")
    if schema is None:
        raise PipelineError(f"{where}: missing key 'schema'; add schema = \"{SCHEMA}\".")
    if schema != SCHEMA:
        raise PipelineError(f"{where}: schema: {schema!r} is not supported; this version reads {SCHEMA!r}.")
    name = doc.get("name")
    if not isinstance(name, str) or not name.strip():
        raise PipelineError(f"{where}: name: a non-empty string is required.")
    desc = doc.get("description", "")
    if not isinstance(desc, str):
        raise PipelineError(f"{where}: description: expected a string.")
    plugins = doc.get("plugins", [])
    if not isinstance(plugins, list) or not all(isinstance(p, str) for p in plugins):
        raise PipelineError(f"{where}: plugins: expected a list of module names (strings).")
    import_plugins(plugins, where)
    steps = doc.get("steps")
    if not isinstance(steps, list) or not steps:
        raise PipelineError(f"{where}: steps: at least one [[steps]] table is required.")
    available: set[str] = {"subject"}
    ids: set[str] = set()
    out: list[StepSpec] = []
    for i, raw in enumerate(steps):
        loc = f"{where}: steps[{i}]"
        if not isinstance(raw, dict):
            raise PipelineError(f"{loc}: expected a table ([[steps]]), got {type(raw).__name__}.")
        name_ = raw.get("step")
        if not isinstance(name_, str):
            raise PipelineError(f"{loc}: missing key 'step' (the step to run; one of {', '.join(sorted(STEPS))}).")
        if name_ not in STEPS:
            raise PipelineError(
                f"{loc}.step: unknown step {name_!r}; registered steps: {', '.join(sorted(STEPS))}."
            )
        sdef = STEPS[name_]
        loc = f"{loc} ({name_})"
        sid = raw.get("id", name_)
        if not isinstance(sid, str) or not _ID_RE.match(sid):
            raise PipelineError(f"{loc}.id: expected a name of letters, digits, '_' or '-', got {sid!r}.")
        if sid in ids:
            raise PipelineError(f"{loc}.id: {sid!r} is used by an earlier step; give each step a unique id.")
        ids.add(sid)
        params: dict[str, Any] = {}
        for key, value in raw.items():
            if key in _RESERVED_STEP_KEYS:
                continue
            if key not in sdef.params:
                allowed = ", ".join(sorted(sdef.params)) or "(none)"
                raise PipelineError(f"{loc}: unknown key {key!r}; allowed keys for step {name_!r}: {allowed}.")
            params[key] = _check_param(loc, key, value, sdef.params[key])
        for key, p in sdef.params.items():
            params.setdefault(key, p.default)
        if sdef.check is not None:
            msg = sdef.check(params)
            if msg:
                raise PipelineError(f"{loc}: {msg}")
        missing = [r for r in sdef.requires if r not in available]
        if missing:
            providers = sorted(n for n, d in STEPS.items() if missing[0] in d.provides)
            raise PipelineError(
                f"{loc}: needs {missing[0]!r}, which no earlier step provides; put "
                f"{' or '.join(repr(p) for p in providers) or 'a step that provides it'} before it."
            )
        available |= set(sdef.provides)
        out.append(StepSpec(step=name_, id=sid, params=params))
    return PipelineSpec(name=name.strip(), description=desc, plugins=tuple(plugins), steps=tuple(out),
                        source=where, schema=schema)


def parse_pipeline(text: str, *, source: str = "<string>") -> PipelineSpec:
    """Parse and validate a pipeline definition given as TOML text.

    Raises
    ------
    PipelineError
        Invalid TOML or any schema violation; the message names the key.

    Examples
    --------
    >>> spec = parse_pipeline('''
    ... schema = "dwi_toolkit.pipeline/1"
    ... name = "adc-high-b"
    ... [[steps]]
    ... step = "load"
    ... [[steps]]
    ... step = "adc"
    ... b_min = 200.0
    ... ''')
    >>> spec.steps[1].params["b_min"], spec.steps[1].params["method"]      # defaults filled in
    (200.0, 'wls')
    """
    return _validate(_toml_loads(text, source), source)


def builtin_pipelines() -> dict[str, Path]:
    """Pipelines shipped inside the package: name → path of its TOML file.

    Examples
    --------
    >>> sorted(builtin_pipelines())
    ['adc-only', 'default', 'dti', 'high-b', 'ivim', 'tractography']
    """
    from importlib import resources

    folder = resources.files("dwi_toolkit.pipeline") / "builtin"
    return {Path(str(p)).stem: Path(str(p)) for p in folder.iterdir() if str(p).endswith(".toml")}


def resolve_pipeline_path(name_or_path: str | os.PathLike) -> tuple[Path, str]:
    """The file of a pipeline given by built-in name or path, and a label for messages.

    Examples
    --------
    >>> path, label = resolve_pipeline_path("default")
    >>> path.name, label
    ('default.toml', 'builtin:default')
    """
    p = Path(name_or_path)
    if p.suffix == ".toml" or p.exists() or os.sep in str(name_or_path):
        if not p.is_file():
            raise PipelineError(f"pipeline file not found: {p}")
        return p, p.name
    builtin = builtin_pipelines()
    if str(name_or_path) not in builtin:
        raise PipelineError(
            f"unknown pipeline {str(name_or_path)!r}: give a .toml file or one of the built-in "
            f"pipelines: {', '.join(sorted(builtin))}."
        )
    return builtin[str(name_or_path)], f"builtin:{name_or_path}"


def load_pipeline(name_or_path: str | os.PathLike | PipelineSpec = "default") -> PipelineSpec:
    """Load and validate a pipeline by built-in name (``default``, ``adc-only``, ``high-b``) or file.

    Examples
    --------
    >>> spec = load_pipeline("adc-only")
    >>> spec.source, [s.step for s in spec.steps][:2]
    ('builtin:adc-only', ['load', 'adc'])
    """
    if isinstance(name_or_path, PipelineSpec):
        return name_or_path
    path, label = resolve_pipeline_path(name_or_path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise PipelineError(f"cannot read pipeline file {path}: {err}") from err
    from ..io._guard import reading

    with reading(path, "a pipeline definition", error=PipelineError,
                 hint="see docs/pipeline.md for the [[steps]] format"):
        return parse_pipeline(text, source=label)


def spec_from_dict(doc: dict[str, Any], *, source: str = "<dict>") -> PipelineSpec:
    """Validate a pipeline given as a dictionary (e.g. the effective configuration sent to workers)."""
    return _validate(dict(doc), source)
