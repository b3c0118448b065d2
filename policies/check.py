"""Checking a folder of policy files offline, for the CI of a policy repository.

Every problem names the file, the line and the field, as `file:line: field:
problem`, and never repeats a value. The checks are the broker's own: the same
strict reading (policies/load.py), the same model (policies/model.py) and the
same merge of an environment's documents (policies/evaluate.py). What only the
running broker knows is left out, except the backend names when the caller
passes the environment's configured backends, and the generators' types and
parameters when it passes a generator check (the broker's own registry).

A folder holds one environment's documents, or one subfolder per environment
(`policies/prod/*.yaml`), as `tokenbroker serve --policies` reads them.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from policies.evaluate import Policy
from policies.load import load_mapping
from policies.model import (
    GeneratorCheck,
    PolicyDocument,
    describe_errors,
    generator_problems,
    validate_document_name,
)
from service.errors import PayloadTooLarge, PolicyInvalid

SUFFIXES = {".yaml": "application/yaml", ".yml": "application/yaml",
            ".json": "application/json"}  # fmt: skip
WHOLE_DOCUMENT = "(document)"
_LINE = re.compile(r"line (\d+): ")


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong in one file."""

    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        line = f"{self.line}:" if self.line is not None else ""
        return f"{self.file}:{line} {self.field}: {self.message}"


def check_folder(
    folder: Path,
    backends: Mapping[str, Collection[str]] | None = None,
    generators: GeneratorCheck | None = None,
) -> list[Problem]:
    """Every problem of the policy files in `folder` and its environment folders.

    `backends` maps an environment (a subfolder's name; `""` for files directly
    in `folder`) to its configured backend names; without an entry, backend
    names are not checked. Without `generators`, neither are generators.
    """
    groups = {"": _policy_files(folder)}
    for child in sorted(path for path in folder.iterdir() if path.is_dir()):
        groups[child.name] = _policy_files(child)
    problems: list[Problem] = []
    for env, files in groups.items():
        known = None if backends is None else backends.get(env)
        problems.extend(check_files(files, known, generators))
    return problems


def check_files(
    files: Sequence[Path],
    backends: Collection[str] | None = None,
    generators: GeneratorCheck | None = None,
) -> list[Problem]:
    """Every problem of one environment's files, each alone and together."""
    problems: list[Problem] = []
    documents: dict[str, PolicyDocument] = {}
    nodes: dict[str, tuple[Path, Any]] = {}
    for path in files:
        document, root, found = check_file(path, generators)
        problems.extend(found)
        if document is not None:
            documents[path.stem] = document
            nodes[path.stem] = (path, root)
            problems.extend(_backend_problems(path, root, document, backends))
    try:
        Policy.from_documents(documents)
    except PolicyInvalid as invalid:
        problems.extend(_merge_problem(text, nodes) for text in invalid.problems)
    return problems


def check_file(
    path: Path, generators: GeneratorCheck | None = None
) -> tuple[PolicyDocument | None, Any, list[Problem]]:
    """The document a file holds (None when invalid), its YAML tree, problems.

    A document whose only problems are its generators' is still answered, so
    that it takes part in the checks across documents.
    """
    name, shown = path.stem, str(path)
    try:
        validate_document_name(name)
    except ValueError as error:
        message = f"the file name cannot name a document: {error}"
        return None, None, [Problem(shown, None, WHOLE_DOCUMENT, message)]
    try:
        text = path.read_text(encoding="utf-8")
        data = load_mapping(name, text, SUFFIXES[path.suffix])
    except UnicodeDecodeError:
        return None, None, [Problem(shown, None, WHOLE_DOCUMENT, "not UTF-8 text")]
    except (PolicyInvalid, PayloadTooLarge) as error:
        return None, None, [_load_problem(shown, name, error.message)]
    root = _tree(text)
    try:
        document = PolicyDocument.model_validate(data)
    except ValidationError as error:
        details = error.errors(include_input=False, include_url=False)
        sentences = describe_errors(name, error, data)
        return None, root, [
            _field_problem(shown, name, sentence, _line(root, detail["loc"]))
            for detail, sentence in zip(details, sentences, strict=True)
        ]  # fmt: skip
    if generators is None:
        return document, root, []
    return document, root, [
        Problem(shown, _line(root, loc), field, message)
        for loc, field, message in generator_problems(document, data, generators)
    ]  # fmt: skip


def _policy_files(folder: Path) -> list[Path]:
    return sorted(
        path for path in folder.iterdir() if path.is_file() and path.suffix in SUFFIXES
    )


def _tree(text: str) -> Any:
    # JSON is YAML as far as line marks go; a text YAML cannot compose gets no
    # line numbers, but its problems are still reported.
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None


def _line(root: Any, loc: Sequence[int | str]) -> int | None:
    """The line of the deepest node of `loc` that exists in the tree."""
    if root is None:
        return None
    node = root
    for index, part in enumerate(loc):
        # pydantic marks a bad mapping key with a last part `[key]`.
        child = _child(node, part, key=loc[index + 1 :] == ("[key]",))
        if child is None:
            break
        node = child
    return int(node.start_mark.line) + 1


def _child(node: Any, part: int | str, *, key: bool = False) -> Any:
    if isinstance(node, yaml.MappingNode):
        for name, value in node.value:
            if isinstance(name, yaml.ScalarNode) and name.value == str(part):
                return name if key else value
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int):
        return node.value[part] if 0 <= part < len(node.value) else None
    return None


def _field_problem(file: str, name: str, sentence: str, line: int | None) -> Problem:
    rest = sentence.removeprefix(f"policy '{name}': ")
    field, _, message = rest.partition(": ")
    return Problem(file, line, field, message)


def _load_problem(file: str, name: str, message: str) -> Problem:
    rest = message.removeprefix(f"policy '{name}': ")
    found = _LINE.match(rest)
    if found is None:
        return Problem(file, None, WHOLE_DOCUMENT, rest)
    return Problem(file, int(found.group(1)), WHOLE_DOCUMENT, rest[found.end() :])


def _merge_problem(text: str, nodes: Mapping[str, tuple[Path, Any]]) -> Problem:
    """A problem between documents (`policy 'a': secrets.x: already declared…`)."""
    name = text.removeprefix("policy '").split("'", 1)[0]
    path, root = nodes.get(name, (Path(name), None))
    rest = text.removeprefix(f"policy '{name}': ")
    field, _, message = rest.partition(": ")
    parts = field.split(".", 1)
    return Problem(str(path), _line(root, parts), field, message)


def _backend_problems(
    path: Path,
    root: Any,
    document: PolicyDocument,
    backends: Collection[str] | None,
) -> list[Problem]:
    if backends is None:
        return []
    return [
        Problem(
            str(path),
            _line(root, ["secrets", secret, "backend"]),
            f"secrets.{secret}.backend",
            "this environment has no backend by that name",
        )
        for secret, declaration in document.secrets.items()
        if declaration.backend is not None and declaration.backend not in backends
    ]
