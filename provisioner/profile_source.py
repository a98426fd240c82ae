"""Where a profile's data comes from: its YAML file, `extends:` bases, `${VAR}`s and overrides.

`read_source(path)` returns the data that is validated, plus the means to say which file and
line a key came from, so that a validation error still names the right place even when the key
was inherited from a base profile or set by an override.

Order: the profile and its bases are read and deep-merged (mappings merged, lists and scalars
replaced), then `${VAR}` references in string values are filled in from the environment, then
overrides replace keys. Relative paths are not touched here: they all resolve against the folder
of the profile that was asked for (see `Profile.folder`), including those written in a base.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from provisioner.errors import ProfileError

EXTENDS_KEY = "extends"
_REFERENCE = re.compile(r"\$(?:(?P<dollar>\$)|\{(?P<body>[^}]*)\}|(?P<open>\{))")
_BODY = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>.*))?$", re.S)
_REFERENCE_HINT = "write ${NAME} or ${NAME:-default}; $$ is a literal $"
# A profile is a page of settings: a megabyte is far beyond any real one, and parsing and
# validating 50 MB took two minutes. Bases chain a few levels deep, not hundreds.
MAX_PROFILE_BYTES = 1024 * 1024
MAX_EXTENDS_DEPTH = 32

Location = Sequence[int | str]


@dataclass(frozen=True)
class Document:
    """One YAML file of a profile: its path as shown in messages and its node tree (for lines)."""

    path: Path
    root: yaml.Node | None


@dataclass(frozen=True)
class ProfileSource:
    """The merged data of a profile before validation, and where each key came from."""

    path: Path
    data: dict[str, Any]
    documents: tuple[Document, ...]  # the profile asked for first, then its bases in order
    overridden: tuple[tuple[str, ...], ...] = ()

    def where(self, loc: Location) -> str:
        """`file, line N` of the key at `loc` (the file that set it), or the profile's path."""
        parts = tuple(str(part) for part in loc)
        for key in self.overridden:
            if parts[: len(key)] == key:
                return f"{self.path} (override {'__'.join(key)})"
        document = self._owner(loc)
        line = _line_of(document.root, loc)
        return f"{document.path}, line {line}" if line else str(document.path)

    def _owner(self, loc: Location) -> Document:
        # The merged value comes from the first document (the profile before its bases) that
        # reaches furthest along the key path; lists are never merged, so they end the walk.
        best, best_depth = self.documents[0], -1
        for document in self.documents:
            depth = _mapping_depth(document.root, loc)
            if depth > best_depth:
                best, best_depth = document, depth
        return best


class YamlFloat(float):
    """A YAML float that remembers how it was written: `16.10` is not the text of 16.1."""

    text: str

    def __new__(cls, value: float, text: str) -> YamlFloat:
        number = super().__new__(cls, value)
        number.text = text
        return number


class ProfileLoader(yaml.SafeLoader):
    """YAML's safe loader, keeping the text of floats (`16.10` is not the text of 16.1)."""

    def construct_yaml_float(self, node: yaml.ScalarNode) -> float:
        return YamlFloat(super().construct_yaml_float(node), str(node.value))


_MERGE_TAG = "tag:yaml.org,2002:merge"
ProfileLoader.add_constructor("tag:yaml.org,2002:float", ProfileLoader.construct_yaml_float)


def read_source(path: Path, overrides: Mapping[str, Any] | None = None) -> ProfileSource:
    """Read the profile at `path` with its bases, variables and `overrides` (dotted keys)."""
    return parse_source(_read_text(path), path, overrides)


def parse_source(
    text: str, path: Path, overrides: Mapping[str, Any] | None = None
) -> ProfileSource:
    """Like `read_source`, for text already read; `path` anchors `extends` and names errors."""
    documents: list[Document] = []
    _check_size(len(text.encode("utf-8", errors="surrogateescape")), path, str(path))
    try:
        data = _load_chain(text, path, documents, (_resolved(path, str(path)),))
        source = ProfileSource(path=path, data=data, documents=tuple(documents))
        _interpolate(data, (), source, set())
        return _apply_overrides(source, overrides or {})
    except RecursionError:
        raise ProfileError(f"{path}: the document nests too deeply") from None


def _check_size(size: int, path: Path, where: str) -> None:
    if size > MAX_PROFILE_BYTES:
        raise ProfileError(
            f"{where}: {path} has {size} bytes; a profile may have at most "
            f"{MAX_PROFILE_BYTES} (1 MB)",
            hint="keep data in seed files (postgres.seed), not in the profile",
        )


def _read_capped(path: Path, where: str) -> str:
    """The text of `path`, refused before it is read whole when it is over the size cap."""
    with open(path, "rb") as handle:
        data = handle.read(MAX_PROFILE_BYTES + 1)
    _check_size(len(data), path, where)
    return data.decode("utf-8")


def _read_text(path: Path) -> str:
    try:
        return _read_capped(path, str(path))
    except FileNotFoundError:
        raise ProfileError(
            f"{path}: no such profile", hint="check the path, e.g. profiles/quickstart.yaml"
        ) from None
    except IsADirectoryError:
        raise ProfileError(f"{path}: is a folder, not a profile file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"{path}: cannot be read ({exc})") from None


def _parse_yaml(text: str, path: Path) -> tuple[yaml.Node | None, dict[str, Any]]:
    try:
        loader = ProfileLoader(text)
        try:
            # One parse: the node tree names lines, the same nodes build the data.
            root = loader.get_single_node()
            _refuse_duplicate_keys(loader, root, path)
            data = loader.construct_document(root) if root is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ProfileError(
            f"{path}{where}: not valid YAML ({problem})",
            hint="check indentation and quoting around that line",
        ) from None
    except (ValueError, RecursionError) as exc:
        raise ProfileError(f"{path}: not valid YAML ({exc})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ProfileError(
            f"{path}: a profile is a mapping of keys such as name and postgres, "
            f"not a {type(data).__name__}",
            hint="start from profiles/quickstart.yaml",
        )
    return root, data


def _refuse_duplicate_keys(loader: ProfileLoader, root: yaml.Node | None, path: Path) -> None:
    """A key written twice in one mapping is an error: YAML would keep the last silently.

    Keys brought in by a merge (`<<: *base`) may be overridden: that is what they are for.
    """
    stack: list[tuple[yaml.Node, tuple[Any, ...]]] = [(root, ())] if root is not None else []
    visited: set[int] = set()
    while stack:
        node, loc = stack.pop()
        if id(node) in visited:  # an alias: its node was walked already
            continue
        visited.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            stack += [(item, (*loc, index)) for index, item in enumerate(node.value)]
        if not isinstance(node, yaml.MappingNode):
            continue
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE_TAG:
                stack.append((value_node, loc))
                continue
            key = loader.construct_object(key_node)
            line = key_node.start_mark.line + 1
            if key in seen:
                dotted = ".".join(str(part) for part in (*loc, key))
                raise ProfileError(
                    f"{path}, line {line}: {dotted} is set twice (first on line {seen[key]})",
                    hint="YAML would keep only the last one: remove one of them",
                )
            seen[key] = line
            stack.append((value_node, (*loc, key)))


def _load_chain(
    text: str, path: Path, documents: list[Document], chain: tuple[Path, ...]
) -> dict[str, Any]:
    """The data of `path` merged over its bases; `chain` holds the files above, for cycles."""
    root, data = _parse_yaml(text, path)
    document = Document(path=path, root=root)
    documents.append(document)
    if EXTENDS_KEY not in data:
        return data
    named = data.pop(EXTENDS_KEY)
    line = _line_of(root, (EXTENDS_KEY,))
    where = f"{path}, line {line}" if line else str(path)
    if not isinstance(named, str) or not named.strip():
        raise ProfileError(
            f"{where}: extends: must be the path of another profile, e.g. base.yaml",
            hint="the path is relative to the profile that names it",
        )
    base = path.parent / named
    if len(chain) >= MAX_EXTENDS_DEPTH:
        raise ProfileError(
            f"{where}: extends: more than {MAX_EXTENDS_DEPTH} profiles deep",
            hint=f"a chain of bases may be at most {MAX_EXTENDS_DEPTH} profiles long",
        )
    resolved = _resolved(base, f"{where}: extends")
    if resolved in chain:
        cycle = " -> ".join(str(p) for p in (*chain, resolved))
        raise ProfileError(
            f"{where}: extends: a cycle: {cycle}",
            hint="a profile cannot extend itself through its bases; remove one of the extends",
        )
    base_text = _read_base(base, where)
    base_data = _load_chain(base_text, base, documents, (*chain, resolved))
    return _deep_merge(base_data, data)


def _resolved(path: Path, where: str) -> Path:
    try:
        return path.resolve()
    except (RuntimeError, OSError):  # RuntimeError: a symlink loop (Python 3.11, 3.12)
        raise ProfileError(
            f"{where}: {path} is a symlink loop", hint="point the link at a profile file"
        ) from None


def _read_base(base: Path, where: str) -> str:
    try:
        return _read_capped(base, f"{where}: extends")
    except FileNotFoundError:
        raise ProfileError(
            f"{where}: extends: no such profile {base}",
            hint="the path is relative to the profile that names it",
        ) from None
    except IsADirectoryError:
        raise ProfileError(f"{where}: extends: {base} is a folder, not a profile file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"{where}: extends: {base} cannot be read ({exc})") from None


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """`override` over `base`: mappings merge key by key; lists, scalars and nulls replace."""
    merged = dict(base)
    for key, value in override.items():
        below = merged.get(key)
        if isinstance(below, dict) and isinstance(value, dict):
            merged[key] = _deep_merge(below, value)
        else:
            merged[key] = value
    return merged


def _interpolate(
    node: Any, loc: tuple[int | str, ...], source: ProfileSource, seen: set[int]
) -> Any:
    """Fill in `${VAR}`s in every string value below `node`, in place; keys stay as written."""
    if isinstance(node, dict | list):
        if id(node) in seen:  # a YAML alias back to itself: filled in once is enough
            return node
        seen.add(id(node))
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in list(items):
            node[key] = _interpolate(value, (*loc, key), source, seen)
        return node
    if isinstance(node, str) and "$" in node:
        return _substitute(node, loc, source)
    return node


def _substitute(text: str, loc: tuple[int | str, ...], source: ProfileSource) -> str:
    key = ".".join(str(part) for part in loc)

    def replace(match: re.Match[str]) -> str:
        if match.group("dollar"):
            return "$"
        body = _BODY.match(match.group("body") or "")
        if match.group("open") is not None or body is None:
            shown = match.group(0) if match.group("open") is None else text[match.start() :]
            raise ProfileError(
                f"{source.where(loc)}: {key}: '{shown}' is not a variable reference",
                hint=_REFERENCE_HINT,
            )
        name, default = body.group("name"), body.group("default")
        if default is not None and "${" in default:
            raise ProfileError(
                f"{source.where(loc)}: {key}: '{match.group(0)}}}': a default cannot hold "
                "another ${...} reference",
                hint="give a plain default (${A:-value}), or set A in the environment",
            )
        value = os.environ.get(name)
        if default is not None and not value:
            return default
        if value is None:
            raise ProfileError(
                f"{source.where(loc)}: {key}: ${{{name}}} is not set",
                hint=f"set {name} in the environment, or give a default: ${{{name}:-value}}",
            )
        return value

    return _REFERENCE.sub(replace, text)


def _apply_overrides(source: ProfileSource, overrides: Mapping[str, Any]) -> ProfileSource:
    data = source.data
    keys: list[tuple[str, ...]] = []
    for dotted, value in overrides.items():
        parts = tuple(dotted.split("."))
        if not all(parts):
            raise ProfileError(
                f"{source.path}: override '{dotted}' is not a key path",
                hint="name keys like postgres.port (postgres__port as a keyword argument)",
            )
        node = data
        for depth, part in enumerate(parts[:-1]):
            below = node.get(part)
            if below is None:
                below = {}
            elif not isinstance(below, dict):
                prefix = ".".join(parts[: depth + 1])
                raise ProfileError(
                    f"{source.path} (override {'__'.join(parts)}): {prefix} is not a mapping",
                    hint="override a key that exists in the profile reference",
                )
            # A copy: YAML aliases may share this mapping with another key.
            copy = dict(below)
            node[part] = copy
            node = copy
        node[parts[-1]] = value
        keys.append(parts)
    return ProfileSource(
        path=source.path, data=data, documents=source.documents, overridden=tuple(keys)
    )


def _mapping_depth(root: yaml.Node | None, loc: Location) -> int:
    """How many keys of `loc` the document sets as nested mappings (-1: not even the first)."""
    node = root
    depth = -1
    for part in loc:
        if not isinstance(node, yaml.MappingNode):
            return depth
        for key_node, value_node in node.value:
            if key_node.value == str(part):
                depth += 1
                node = value_node
                break
        else:
            return depth
    return depth


def _line_of(root: yaml.Node | None, loc: Location) -> int | None:
    node = root
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if key_node.value == str(part):
                    line = key_node.start_mark.line + 1
                    node = value_node
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return line
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line
