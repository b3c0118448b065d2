"""Policy document text to plain data: YAML or JSON, strictly.

Stricter than `yaml.safe_load` and `json.loads` where a lax reading could widen
or drop a grant: a duplicate key is an error (a second `deny:` would silently
replace the first), and YAML anchors and aliases are refused (they let a small
document expand into a huge one). Error messages name the document and the
line, never the content.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final, cast

import yaml

from service import json_body
from service.errors import PayloadTooLarge, PolicyInvalid

MAX_BYTES: Final = 1024 * 1024
MAX_DEPTH: Final = 32
JSON_MEDIA_TYPES: Final = frozenset({"application/json"})
# The names YAML goes by in the wild; application/yaml is RFC 9512's.
YAML_MEDIA_TYPES: Final = frozenset(
    {"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"}
)
MEDIA_TYPES: Final = JSON_MEDIA_TYPES | YAML_MEDIA_TYPES
_MERGE_TAG: Final = "tag:yaml.org,2002:merge"
# libyaml is many times faster than the pure-Python parser, whose scanner slows
# down with every open flow collection; it refuses nesting past its own limit
# (1000 levels by default) with this problem.
_LOADER: Final = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_NESTING_LIMIT: Final = "maximum nesting depth"


class _Refused(Exception):
    """The text parses but is not an acceptable document; says what and where."""

    def __init__(self, problem: str, line: int | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.line = line


def load_mapping(document: str, text: str | bytes, media_type: str) -> dict[str, Any]:
    """The top-level mapping of a policy document; empty when the text is empty.

    Raises PayloadTooLarge over MAX_BYTES and PolicyInvalid when the text is not
    UTF-8, not YAML or JSON, or its top level is not a mapping.
    """
    size = len(text) if isinstance(text, bytes) else len(text.encode("utf-8"))
    if size > MAX_BYTES:
        raise PayloadTooLarge(f"policy '{document}' is larger than {MAX_BYTES} bytes")

    try:
        data = _load(_decode(text), _base_media_type(media_type))
    except _Refused as refused:
        where = f"line {refused.line}: " if refused.line is not None else ""
        message = f"policy '{document}': {where}{refused.problem}"
        raise PolicyInvalid(message) from None

    if data is None:
        return {}
    if not isinstance(data, dict):
        raise PolicyInvalid(f"policy '{document}': the top level must be a mapping")
    return data


def _decode(text: str | bytes) -> str:
    if isinstance(text, str):
        return text.removeprefix("\ufeff")
    try:
        return text.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _Refused("not UTF-8 text") from None


def _base_media_type(media_type: str) -> str:
    return media_type.split(";", 1)[0].strip().lower()


def _load(text: str, media_type: str) -> object:
    if media_type in JSON_MEDIA_TYPES:
        return _load_json(text)
    return _load_yaml(text)


def _load_json(text: str) -> object:
    try:
        return json_body.loads(text, max_depth=MAX_DEPTH)
    except json_body.MalformedJson as malformed:
        raise _Refused(malformed.problem, malformed.line) from None


def _load_yaml(text: str) -> object:
    try:
        _check_events(yaml.parse(text, Loader=_LOADER))
        root = yaml.compose(text, Loader=_LOADER)
        if root is None:
            return None
        _check_node(root)
        return cast(object, yaml.SafeLoader("").construct_document(root))
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else None
        if _NESTING_LIMIT in (error.problem or ""):
            raise _Refused("nested too deeply", line) from None
        raise _Refused("not valid YAML", line) from None
    except yaml.YAMLError:
        raise _Refused("not valid YAML") from None
    except (ValueError, OverflowError):
        # A scalar that resolves to a type it cannot be, like a 13th month.
        raise _Refused("a value cannot be read") from None


def _check_events(events: Iterator[yaml.Event]) -> None:
    """Refuse aliases, and nesting past MAX_DEPTH as soon as the parser gets there.

    The events come one by one, so a deep document is refused before the rest
    of it is read, let alone composed into a tree.
    """
    depth = 0
    for event in events:
        if isinstance(event, yaml.AliasEvent):
            line = _event_line(event)
            raise _Refused("YAML anchors and aliases are not supported", line)
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise _Refused("nested too deeply", _event_line(event))
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _event_line(event: yaml.Event) -> int | None:
    """The line an event starts on; the parser gives every event a mark."""
    mark = event.start_mark
    return mark.line + 1 if mark is not None else None


def _check_node(node: Any) -> None:
    """Refuse duplicate and merge keys; the tree is at most MAX_DEPTH deep."""
    if isinstance(node, yaml.MappingNode):
        keys: set[tuple[str, str]] = set()
        for key, value in node.value:
            if key.tag == _MERGE_TAG:
                raise _Refused("YAML merge keys are not supported", _line_of(key))
            if isinstance(key, yaml.ScalarNode):
                if (key.tag, key.value) in keys:
                    raise _Refused("duplicate key", _line_of(key))
                keys.add((key.tag, key.value))
            _check_node(key)
            _check_node(value)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _check_node(item)


def _line_of(node: Any) -> int:
    return int(node.start_mark.line) + 1
