"""Macro YAML -> validated MacroConfig, with every failure as one ConfigError line.

The edge of the configuration: YAML is parsed here, checked for shape (a mapping, finite
numbers, no duplicate or non-scalar keys, no anchors or aliases, bounded nesting), overridden by dotted keys for sweeps, validated by the pydantic
schema in `axelsim.config.macro`, and the files it names (technology table, signs file) are
checked to exist. Pydantic errors never escape: each becomes
`ConfigError(source=file, where='read_path.pipelines', expected='expected ...')`.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import importlib.resources
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional

import yaml
from pydantic import BaseModel, ValidationError

from axelsim.config.macro import AUTO, DEFAULT_HEAD_DIM, KeyedValueError, MacroConfig, auto_lanes, resolve_relative
from axelsim.errors import ConfigError
from axelsim.io import NotRegularFile, read_regular


MAX_DEPTH = 32  # nesting of YAML collections a macro file may use (it needs 3)
MAX_BASES = 8  # a macro's chain of `base:` files (each inherits from the next)
FILE_KEYS = (("technology", "file"), ("signs", "file"))
"""Keys naming files relative to the macro YAML that holds them."""
MAX_YAML_BYTES = 4 << 20
"""Largest YAML input read (4 MiB): a signs file for 1024 layers of d = 1024 is about 1 MiB."""


def one_line(text: object) -> str:
    """`text` with every non-printable character (newline, tab, NUL, ...) escaped as in repr()."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in str(text))


def _error(source: str, where: str, expectation: str) -> ConfigError:
    """A ConfigError whose message reads `<source>: <where>: expected <expectation>` on one line."""
    return ConfigError(one_line(source), one_line(where), f"expected {one_line(expectation)}")


def _short(text: str, limit: int = 40) -> str:
    """`text` cut to `limit` characters (with a marker), for quoting user input in a message."""
    return text if len(text) <= limit else f"{text[:limit]}...({len(text)} characters)"


@dataclass(frozen=True)
class LoadedMacro:
    """A validated macro and the files it was loaded from (all paths resolved).

    `derived` maps each value the loader derived instead of reading ({'write_path.comparators':
    448, 'head_dim': 64, ...}: lane counts absent or `auto`, and head_dim `auto` once bound to a
    trace by `bind_head_dim`). `tree` is the mapping validated (bases merged, overrides applied)
    with head_dim still `auto` when it was; `tech_builtin` says the technology table is the
    package's own (not found next to the macro).
    """

    config: MacroConfig
    path: Path
    signs_path: Optional[Path]
    tech_path: Path
    derived: dict = field(default_factory=dict)
    tree: Optional[dict] = None
    tech_builtin: bool = False

    @property
    def head_dim_auto(self) -> bool:
        return self.tree is not None and self.tree.get("head_dim") == AUTO


class _Loader(yaml.SafeLoader):
    """SafeLoader for macro files: reads `1e9` as a float (YAML 1.1 wants `1.0e+9`), rejects
    duplicate and non-scalar keys, anchors and aliases, and nesting deeper than MAX_DEPTH, and
    reports any failure of a value's constructor (`!!int x`, a 5000-digit integer) as a
    MarkedYAMLError at that value."""

    def __init__(self, stream):
        super().__init__(stream)
        self.depth = 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or event.anchor is not None:
            raise yaml.composer.ComposerError(
                None, None, "anchors and aliases (&name, *name) are not supported in axelsim YAML files", event.start_mark
            )
        if self.depth >= MAX_DEPTH:
            raise yaml.composer.ComposerError(
                None, None, f"nesting deeper than {MAX_DEPTH} levels", event.start_mark
            )
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_object(self, node, deep=False):
        try:
            return super().construct_object(node, deep=deep)
        except (yaml.YAMLError, RecursionError):
            raise
        except Exception as exc:  # a constructor's own IndexError, ValueError, KeyError, ...
            value = node.value if isinstance(node, yaml.ScalarNode) else node.id
            raise yaml.constructor.ConstructorError(
                None, None, f"a {node.tag} value, got {_short(repr(value))} ({type(exc).__name__}: "
                f"{_short(str(exc), 80)})", node.start_mark
            ) from None


_FLOAT = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)
_Loader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


def _construct_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict:
    if not isinstance(node, yaml.MappingNode):
        raise yaml.constructor.ConstructorError(
            None, None, f"a mapping for {node.tag}, got a {node.id}", node.start_mark
        )
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            raise yaml.constructor.ConstructorError(
                None, None, f"a key name, got a {key_node.id} as a mapping key", key_node.start_mark
            )
        key = loader.construct_object(key_node, deep=deep)  # a scalar: hashable
        if key in seen:
            raise yaml.MarkedYAMLError(
                problem=f"duplicate key {key!r} (first on line {seen[key] + 1})", problem_mark=key_node.start_mark
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _position(text: str, index: int) -> str:
    """'line L, column C' of a character index into `text`."""
    line = text.count("\n", 0, index)
    line_start = text.rfind("\n", 0, index) + 1
    return f"line {line + 1}, column {index - line_start + 1}"


def parse_yaml_mapping(text: str, source: str) -> dict:
    """Parse YAML text that must hold a non-empty mapping; ConfigError otherwise (with line number).

    Every failure of the parser or of a value's constructor is one ConfigError line; PyYAML's
    multi-line messages are reduced to 'line L, column C' and the problem.
    """
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = exc.problem or exc.context or "malformed YAML"
        raise _error(source, where, f"valid YAML ({problem})") from None
    except yaml.reader.ReaderError as exc:
        where = _position(text, exc.position) if isinstance(exc.position, int) else ""
        raise _error(source, where, f"valid YAML (character {exc.character!r}: {exc.reason})") from None
    except yaml.YAMLError as exc:
        raise _error(source, "", f"valid YAML ({' '.join(str(exc).split())})") from None
    except RecursionError:
        raise _error(source, "", f"valid YAML nested at most {MAX_DEPTH} levels deep") from None
    except Exception as exc:  # noqa: BLE001 - the parse boundary: no parser fault may escape as a traceback
        raise _error(source, "", f"valid YAML ({type(exc).__name__}: {_short(str(exc), 80)})") from None
    if data is None:
        raise _error(source, "", "a YAML mapping, got an empty file")
    if not isinstance(data, dict):
        raise _error(source, "", f"a YAML mapping at the top level, got {type(data).__name__}")
    return data


def read_yaml_mapping(path: str | Path, what: str) -> dict:
    """Read a YAML file whose top level is a mapping (a macro, sweep or technology file).

    `what` names the kind of file in errors. Every flaw is one ConfigError line naming the file:
    missing, not a regular file (a FIFO, /dev/zero, a folder), larger than MAX_YAML_BYTES,
    unreadable or not UTF-8, empty, or bad YAML (see `parse_yaml_mapping`).
    """
    source = one_line(str(path))
    try:
        text = read_regular(path, MAX_YAML_BYTES).decode("utf-8")
    except FileNotFoundError:
        raise _error(source, "", f"an existing {what} file") from None
    except NotRegularFile as exc:
        raise _error(source, "", f"a {what} file: {exc.strerror}") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise _error(source, "", f"a readable UTF-8 {what} file ({one_line(reason)})") from None
    return parse_yaml_mapping(text, str(path))


def _check_finite(data: Any, source: str) -> None:
    """Reject NaN and infinities anywhere in the tree, naming the dotted key.

    Iterative, and each container is visited once: a deep, shared or self-referencing tree (a
    mapping built by hand or by a sweep file's aliases) is walked in time linear in its size.
    """
    pending: list[tuple[Any, str]] = [(data, "")]
    visited: set[int] = set()
    while pending:
        node, where = pending.pop()
        if isinstance(node, float) and not math.isfinite(node):
            raise _error(source, where, f"a finite number, got {node}")
        if isinstance(node, (dict, list)):
            if id(node) in visited:
                continue
            visited.add(id(node))
        if isinstance(node, dict):
            children = [(value, f"{where}.{key}" if where else str(key)) for key, value in node.items()]
            pending.extend(reversed(children))  # popped in document order: the first bad value is named
        elif isinstance(node, list):
            pending.extend(reversed([(value, f"{where}[{index}]") for index, value in enumerate(node)]))


def _model_at(loc: tuple, root: type[BaseModel] = MacroConfig) -> Optional[type[BaseModel]]:
    """The schema class of the section a pydantic error location points into (None if not a section)."""
    model: type[BaseModel] = root
    for part in loc:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field is not None else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


_TYPE_NAMES = {
    "int_type": "an integer", "int_parsing": "an integer", "int_from_float": "an integer",
    "float_type": "a number", "float_parsing": "a number", "bool_type": "true or false",
    "bool_parsing": "true or false", "string_type": "a string", "model_type": "a mapping",
    "model_attributes_type": "a mapping", "dict_type": "a mapping", "finite_number": "a finite number",
}
_BOUNDS = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}


def _describe(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def _translate(error: dict, source: str, root: type[BaseModel] = MacroConfig) -> ConfigError:
    """One pydantic error dict -> ConfigError with the dotted key path and an expectation (root: the schema)."""
    loc = tuple(error["loc"])
    where = ".".join(str(p) for p in loc)
    kind = error["type"]
    ctx = error.get("ctx") or {}
    value = error.get("input")
    if kind == "extra_forbidden":
        section = _model_at(loc[:-1], root)
        known = sorted(section.model_fields) if section is not None else []
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        return _error(source, where, f"a known key{hint} (unknown key '{loc[-1]}'; known: {', '.join(known)})")
    if kind == "value_error":
        cause = ctx.get("error")
        if isinstance(cause, KeyedValueError):
            return _error(source, cause.where, cause.expected)
        text = str(cause) if cause is not None else error["msg"]
        text = text[len("expected "):] if text.startswith("expected ") else text
        return _error(source, where, text)
    if kind in _BOUNDS:
        bound = next(iter(ctx.values()))
        return _error(source, where, f"a value {_BOUNDS[kind]} {bound}, got {_describe(value)}")
    if kind == "literal_error":
        return _error(source, where, f"one of {ctx.get('expected')}, got {_describe(value)}")
    if kind in _TYPE_NAMES:
        return _error(source, where, f"{_TYPE_NAMES[kind]}, got {_describe(value)}")
    return _error(source, where, f"{error['msg'][0].lower()}{error['msg'][1:]}, got {_describe(value)}")


def macro_from_dict(data: Mapping[str, Any], source: str = "<dict>") -> MacroConfig:
    """Validate a macro mapping (as read from YAML); raises ConfigError naming source and key path."""
    if not isinstance(data, Mapping):
        raise _error(source, "", f"a mapping of macro keys, got {type(data).__name__}")
    _check_finite(dict(data), source)
    try:
        return MacroConfig.model_validate(dict(data))
    except ValidationError as exc:
        raise _translate(exc.errors()[0], source) from None


def _set_dotted(tree: dict, key: str, value: Any, source: str) -> None:
    """Set `tree['a']['b'] = value` for key 'a.b', creating sections that are absent."""
    parts = key.split(".")
    if not all(parts):
        raise _error(source, key, "a dotted key path such as 'read_path.pipelines'")
    node = tree
    for depth, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise _error(source, key, f"'{'.'.join(parts[:depth + 1])}' to be a section, it holds a value")
        node = child
    node[parts[-1]] = value


def _overridden(config_dict: Mapping[str, Any], overrides: Mapping[str, Any], source: str) -> dict:
    tree = copy.deepcopy(dict(config_dict))
    for key, value in overrides.items():
        _set_dotted(tree, str(key), value, source)
    return tree


def apply_overrides(
    config_dict: Mapping[str, Any], overrides: Mapping[str, Any], source: str = "<overrides>"
) -> MacroConfig:
    """Apply dotted-key overrides (`{'read_path.pipelines': 2}`) to a macro mapping and validate.

    The input mapping is not modified. Errors name the override's key (unknown keys get a
    'did you mean' suggestion) and `source` (the sweep file, or the macro file).
    """
    return macro_from_dict(_overridden(config_dict, overrides, source), source)


def builtin_data() -> Path:
    """The package's data folder: `tech/` in it holds the built-in technology tables."""
    return Path(str(importlib.resources.files("axelsim")))


def _is_file(macro_path: Path, path: Path, where: str, what: str) -> bool:
    try:
        return path.is_file()
    except OSError as exc:  # a name longer than NAME_MAX, a path through a file, ...
        raise _error(str(macro_path), where, f"an existing {what} file, cannot open {_short(str(path), 80)} "
                     f"({exc.strerror or exc})") from None


def _existing_file(macro_path: Path, relative: str, where: str, what: str, builtin: bool = False) -> tuple[Path, bool]:
    """(path, found among the built-in files): relative to the macro file, else (when `builtin`)
    relative to the package's data folder."""
    path = resolve_relative(macro_path, relative)
    if _is_file(macro_path, path, where, what):
        return path, False
    if builtin and not Path(relative).is_absolute():
        packaged = builtin_data() / relative
        if _is_file(macro_path, packaged, where, what):
            return packaged, True
        raise _error(str(macro_path), where, f"an existing {what} file, {path} does not exist "
                     f"(nor the built-in {packaged})")
    raise _error(str(macro_path), where, f"an existing {what} file, {path} does not exist")


def _merge(base: dict, child: Mapping[str, Any]) -> dict:
    """`child` over `base`: sections merge key by key, any other value replaces."""
    out = dict(base)
    for key, value in child.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _rebase_files(data: dict, base_path: Path, top_path: Path) -> None:
    """Rewrite the base file's relative file names so they resolve from the top macro's folder."""
    for section, key in FILE_KEYS:
        holder = data.get(section)
        value = holder.get(key) if isinstance(holder, dict) else None
        if isinstance(value, str) and value and not Path(value).is_absolute():
            target = resolve_relative(base_path, value)
            if target.exists():  # else: left as written (a built-in table name, or an error later)
                holder[key] = os.path.relpath(target, top_path.parent)


def read_macro_tree(path: Path, top: Optional[Path] = None, chain: tuple[Path, ...] = ()) -> dict:
    """The mapping of a macro YAML with its `base:` chain merged in (base first, then this file).

    `base: OTHER.yaml` is relative to the file naming it; a cycle, a chain longer than
    MAX_BASES or a missing base file is a ConfigError naming the file and `base`.
    """
    top = top or path
    data = read_yaml_mapping(path, "macro YAML")
    if chain:
        _rebase_files(data, path, top)
    if "base" not in data:
        return data
    base = data.pop("base")
    if not (isinstance(base, str) and base.strip()):
        raise _error(str(path), "base", f"a macro YAML file name relative to this file, got {_describe(base)}")
    base_path, _ = _existing_file(path, base, "base", "base macro YAML")
    seen = [p.resolve() for p in (*chain, path)]
    if base_path.resolve() in seen:
        raise _error(str(path), "base", f"a chain of base files without a cycle ({base} is already in it)")
    if len(chain) + 1 >= MAX_BASES:
        raise _error(str(path), "base", f"a chain of at most {MAX_BASES} base files")
    return _merge(read_macro_tree(base_path, top, (*chain, path)), data)


def _validated(tree: dict, head_dim: Optional[int], source: str) -> tuple[MacroConfig, dict]:
    """(config, derived values) of a merged macro mapping, head_dim `auto` bound to `head_dim`
    (the schema default when None)."""
    concrete = dict(tree)
    derived: dict[str, Any] = {}
    if concrete.get("head_dim") == AUTO:
        concrete["head_dim"] = head_dim if head_dim is not None else DEFAULT_HEAD_DIM
        derived["head_dim"] = concrete["head_dim"]
    derived.update(auto_lanes(concrete))
    return macro_from_dict(concrete, source), derived


def load_macro(path: str | Path, overrides: Optional[Mapping[str, Any]] = None,
               head_dim: Optional[int] = None) -> LoadedMacro:
    """Read, validate and resolve one macro YAML (optionally with dotted-key overrides).

    `base:` files are merged first (`read_macro_tree`); `head_dim: auto` takes `head_dim` (the
    trace's; 128 until `bind_head_dim` gives one). Raises ConfigError for a missing or
    unreadable file, bad YAML, a bad key or value, or a technology table / signs file that does
    not exist (a relative technology file not next to the macro is looked up among the built-in
    tables).
    """
    macro_path = Path(path)
    tree = _overridden(read_macro_tree(macro_path), overrides or {}, str(macro_path))
    return _loaded(tree, macro_path, head_dim)


def _loaded(tree: dict, macro_path: Path, head_dim: Optional[int] = None) -> LoadedMacro:
    """Validate a merged macro mapping and find the files it names (relative to `macro_path`)."""
    config, derived = _validated(tree, head_dim, str(macro_path))
    tech_path, builtin = _existing_file(macro_path, config.technology.file, "technology.file", "technology table",
                                        builtin=True)
    signs_path = None
    if config.signs.file is not None:
        signs_path, _ = _existing_file(macro_path, config.signs.file, "signs.file", "signs")
    return LoadedMacro(config=config, path=macro_path, signs_path=signs_path, tech_path=tech_path,
                       derived=derived, tree=tree, tech_builtin=builtin)


def bind_head_dim(loaded: LoadedMacro, head_dim: int) -> LoadedMacro:
    """The macro for a trace of head size `head_dim`: itself unless its head_dim is `auto`."""
    if not loaded.head_dim_auto or loaded.config.head_dim == head_dim:
        return loaded
    config, derived = _validated(loaded.tree, head_dim, str(loaded.path))
    return dataclasses.replace(loaded, config=config, derived=derived)


def from_config(config: MacroConfig | Mapping[str, Any], source: str = "<config>",
                folder: str | Path = ".") -> LoadedMacro:
    """A LoadedMacro from an in-memory MacroConfig or macro mapping (as a YAML would hold; `base:`
    not allowed). File names in it resolve against `folder`, then the built-in tables."""
    if isinstance(config, MacroConfig):
        tree = config.model_dump(mode="python")
    elif isinstance(config, Mapping):
        tree = copy.deepcopy(dict(config))
        if "base" in tree:
            raise _error(source, "base", "no base file in an in-memory macro (merge it before)")
    else:
        raise _error(source, "", f"a MacroConfig or a mapping of macro keys, got {type(config).__name__}")
    return _loaded(tree, Path(folder) / source)


def dump_macro(config: MacroConfig) -> str:
    """The configuration as YAML text; `macro_from_dict(yaml.safe_load(text))` gives it back equal."""
    return yaml.safe_dump(config.model_dump(mode="python"), sort_keys=False, default_flow_style=False)
