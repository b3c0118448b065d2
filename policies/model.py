"""One policy document, as SPEC.md "Policy documents" writes it.

`parse_document` turns YAML or JSON text into a `PolicyDocument` or raises
`PolicyInvalid` whose problems each name the document, the field path and what
is wrong. No message repeats a rejected value: documents get pasted with
secrets in them by mistake.

A generator's parameters depend on its type, which only the broker's generator
registry knows (service/rotation/generators.py): given a `GeneratorCheck`,
`parse_document` asks it about every rotation's generator and reports what it
finds as it reports any other field.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Final, NoReturn

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    StrictBool,
    StrictStr,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails

from policies.duration import format_duration, parse_duration
from policies.load import load_mapping
from policies.match import Pattern, validate_secret_name
from policies.rates import RateField
from policies.scopes import Action, is_broker_scope, is_scope_token
from service.errors import InvalidRequest, PolicyInvalid
from service.validation import UNKNOWN_FIELD, allowed_fields, model_at

SERVICE_NAME: Final = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
DOCUMENT_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# Names a route under policies/ takes for itself (GET policies/explain): a
# document of that name could be stored but never read back.
RESERVED_DOCUMENT_NAMES: Final = frozenset({"explain"})
BACKEND_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}")
_BACKEND_PATH: Final = re.compile(r"[^\x00-\x1f\x7f]{1,1024}")
_CRON_FIELD: Final = re.compile(r"[0-9A-Za-z*/,?#-]+")
# A location holds field names and validated service and secret names only (an
# unknown key is never shown); this guards that anything else stays out too.
_SHOWN_KEY: Final = re.compile(r"[A-Za-z0-9._/*:-]{1,128}")


def validate_service_name(name: str) -> None:
    """Return when `name` is a valid service name; raise ValueError otherwise."""
    if not isinstance(name, str) or not SERVICE_NAME.fullmatch(name):
        raise ValueError(
            "a service name must be 1 to 63 lower-case letters, digits or '-', "
            "starting with a letter or digit"
        )


def validate_document_name(name: str) -> None:
    """Return when `name` can name a new policy document; raise ValueError
    otherwise. The one check of a document's name, wherever one comes from."""
    if not isinstance(name, str) or not DOCUMENT_NAME.fullmatch(name):
        raise ValueError(
            "a policy document name is 1 to 128 ASCII letters, digits, '-', '_' "
            "or '.', starting with a letter or digit"
        )
    if name in RESERVED_DOCUMENT_NAMES:
        reserved = ", ".join(sorted(RESERVED_DOCUMENT_NAMES))
        raise ValueError(
            f"a policy document cannot be named {reserved}: the API takes "
            "that name for an endpoint of its own"
        )


def _service_name(value: str) -> str:
    validate_service_name(value)
    return value


def _secret_name(value: str) -> str:
    validate_secret_name(value)
    return value


def _pattern(value: object) -> Pattern:
    if isinstance(value, Pattern):
        return value
    if not isinstance(value, str):
        raise ValueError("expected a pattern such as payments/*")
    return Pattern.parse(value)


def _duration(value: object) -> int:
    if not isinstance(value, str):
        raise ValueError("expected a duration such as 15m, 24h or 30d")
    return parse_duration(value)


def _cron(value: str) -> str:
    fields = value.split()
    if len(fields) != 5 or not all(_CRON_FIELD.fullmatch(f) for f in fields):
        raise ValueError("expected a cron expression of 5 fields, such as 0 3 * * 1")
    return value


def _audience_scope(value: str) -> str:
    if not is_scope_token(value):
        raise ValueError("expected a scope without spaces or quotes")
    if is_broker_scope(value):
        raise ValueError("admin and secrets: scopes cannot be given to an audience")
    return value


def _backend_name(value: str) -> str:
    if not BACKEND_NAME.fullmatch(value):
        raise ValueError("expected a backend name of letters, digits, '_' or '-'")
    return value


def _backend_path(value: str) -> str:
    if not _BACKEND_PATH.fullmatch(value):
        raise ValueError("expected a path of 1 to 1024 characters, no control ones")
    return value


ServiceName = Annotated[StrictStr, AfterValidator(_service_name)]
SecretName = Annotated[StrictStr, AfterValidator(_secret_name)]
PatternField = Annotated[
    Pattern, PlainValidator(_pattern), PlainSerializer(str, return_type=str)
]
Duration = Annotated[
    int, PlainValidator(_duration), PlainSerializer(format_duration, return_type=str)
]
Cron = Annotated[StrictStr, AfterValidator(_cron)]
AudienceScope = Annotated[StrictStr, AfterValidator(_audience_scope)]
BackendName = Annotated[StrictStr, AfterValidator(_backend_name)]
BackendPath = Annotated[StrictStr, AfterValidator(_backend_path)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SecretRules(_Model):
    """The patterns a service may act on, per action, and those it may never."""

    read: tuple[PatternField, ...] = ()
    write: tuple[PatternField, ...] = ()
    rotate: tuple[PatternField, ...] = ()
    revoke: tuple[PatternField, ...] = ()
    deny: tuple[PatternField, ...] = ()

    def for_action(self, action: Action) -> tuple[Pattern, ...]:
        """The grant patterns of `action`."""
        patterns: tuple[Pattern, ...] = getattr(self, action.value)
        return patterns


class TokenRule(_Model):
    """Scopes a service may hold in tokens for one audience service."""

    audience: ServiceName
    scopes: tuple[AudienceScope, ...] = Field(min_length=1)


class ServiceRules(_Model):
    """What one document grants one service."""

    admin: StrictBool = False
    secrets: SecretRules = Field(default_factory=SecretRules)
    tokens: tuple[TokenRule, ...] = ()
    max_ttl: Duration | None = None
    # Caps the service's requests to this environment (`100/s`); see rates.py.
    rate_limit: RateField | None = None


class Retire(StrEnum):
    """When the previous version of a rotated secret stops being readable."""

    AFTER_GRACE = "after-grace"
    WHEN_UNUSED = "when-unused"


class Generator(BaseModel):
    """How a new value is made: a `type` and free-form parameters for it."""

    model_config = ConfigDict(extra="allow", frozen=True)

    type: StrictStr = Field(min_length=1, max_length=64)

    @property
    def params(self) -> dict[str, Any]:
        """Every key but `type`."""
        return dict(self.model_extra or {})

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # Parameters could hold anything; the repr names them only.
        yield "type", self.type
        yield "params", sorted(self.params)


@dataclass(frozen=True, slots=True)
class GeneratorProblem:
    """One thing wrong with a generator: `message` says what, never the value.

    `key` is the parameter at fault (`type` for the type itself), or None for
    the generator as a whole. With `unknown`, `key` is no parameter of the type
    at all: it is named by its place in the mapping only, never shown.
    """

    message: str
    key: str | None = None
    unknown: bool = False


# The problems of a generator's type and parameters (every key but `type`).
GeneratorCheck = Callable[[str, Mapping[str, Any]], Sequence[GeneratorProblem]]


class Rotation(_Model):
    """A rotation schedule: exactly one of `every` and `cron` (UTC)."""

    every: Duration | None = None
    cron: Cron | None = None
    generator: Generator
    grace: Duration
    window: Duration | None = None
    jitter: Duration | None = None
    retire: Retire = Retire.AFTER_GRACE
    max_grace: Duration | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Rotation:
        if (self.every is None) == (self.cron is None):
            raise ValueError("give exactly one of every and cron")
        if self.max_grace is not None and self.max_grace < self.grace:
            raise ValueError("max_grace must be at least grace")
        return self


class SecretDeclaration(_Model):
    """Where a secret lives and how it rotates.

    Without `backend` it lives in the environment's default backend; without
    `path`, under its own name.
    """

    backend: BackendName | None = None
    path: BackendPath | None = None
    rotation: Rotation | None = None


class PolicyDocument(_Model):
    """One named policy document; an empty one grants nothing."""

    services: dict[ServiceName, ServiceRules] = Field(default_factory=dict)
    secrets: dict[SecretName, SecretDeclaration] = Field(default_factory=dict)


def parse_document(
    name: str,
    text: str | bytes,
    media_type: str,
    *,
    generators: GeneratorCheck | None = None,
) -> PolicyDocument:
    """The policy document `text` holds, read as JSON or else as YAML.

    With `generators`, every rotation's generator is checked too. Raises
    InvalidRequest for a bad document name, PayloadTooLarge for an oversized
    text and PolicyInvalid listing every problem found.
    """
    if not isinstance(name, str) or not DOCUMENT_NAME.fullmatch(name):
        raise InvalidRequest(
            "a policy name must be 1 to 128 letters, digits, '.', '_' or '-'"
        )

    data = load_mapping(name, text, media_type)
    try:
        document = PolicyDocument.model_validate(data)
    except ValidationError as error:
        _refuse(name, describe_errors(name, error, data))
    if generators is not None:
        found = generator_problems(document, data, generators)
        if found:
            _refuse(
                name, [f"policy '{name}': {field}: {what}" for _, field, what in found]
            )
    return document


def generator_problems(
    document: PolicyDocument, data: dict[str, Any], check: GeneratorCheck
) -> list[tuple[tuple[str, ...], str, str]]:
    """Every problem `check` finds in the document's generators: its location
    (as pydantic's), the field path shown and what is wrong.

    `data` is what the document was validated from, for an unknown key's place.
    """
    found: list[tuple[tuple[str, ...], str, str]] = []
    for secret, declaration in document.secrets.items():
        if declaration.rotation is None:
            continue
        generator = declaration.rotation.generator
        base: tuple[str, ...] = ("secrets", secret, "rotation", "generator")
        for problem in check(generator.type, generator.params):
            loc, message = base, problem.message
            if problem.unknown and problem.key is not None:
                place = _position(data, (*base, problem.key))
                key = f"key {place}" if place is not None else "a key"
                message = f"{key} {problem.message}"
            elif problem.key is not None:
                loc = (*base, problem.key)
            found.append((loc, _dotted(loc, set()), message))
    return found


def _refuse(name: str, problems: list[str]) -> NoReturn:
    # From None: the pydantic error holds the rejected input.
    if len(problems) == 1:
        raise PolicyInvalid(problems[0], problems) from None
    raise PolicyInvalid(
        f"policy '{name}': {len(problems)} problems", problems
    ) from None


def describe_errors(
    document: str, error: ValidationError, data: dict[str, Any]
) -> list[str]:
    """One sentence per validation error, naming document, field and problem.

    `data` is what was validated; an unknown field is named by its position in
    its mapping and the fields allowed there, never by its key.
    """
    details = error.errors(include_input=False, include_url=False)
    bad_keys = {tuple(d["loc"][:-1]) for d in details if _is_key(d)}
    return [
        f"policy '{document}': {_location(d, bad_keys)}: {_problem(d, data)}"
        for d in details
    ]


def _is_key(detail: ErrorDetails) -> bool:
    return len(detail["loc"]) >= 2 and detail["loc"][-1] == "[key]"


def _location(detail: ErrorDetails, bad_keys: set[tuple[int | str, ...]]) -> str:
    loc = detail["loc"]
    if _is_key(detail):
        loc = loc[:-2]
    elif detail["type"] in ("invalid_key", UNKNOWN_FIELD):
        loc = loc[:-1]
    return _dotted(loc, bad_keys)


def _dotted(loc: Sequence[int | str], bad_keys: set[tuple[int | str, ...]]) -> str:
    """A location as a field path, every key that may not be shown masked."""
    path = ""
    for index, part in enumerate(loc):
        if tuple(loc[: index + 1]) in bad_keys:
            path += ".<invalid key>"
        elif isinstance(part, int):
            path += f"[{part}]"
        elif _SHOWN_KEY.fullmatch(part):
            path += f".{part}"
        else:
            path += ".<unreadable key>"
    return path.removeprefix(".") or "(top level)"


_PROBLEMS: Final = {
    "missing": "required field is missing",
    "string_type": "expected a string",
    "bool_type": "expected true or false",
    "int_type": "expected an integer",
    "tuple_type": "expected a list",
    "list_type": "expected a list",
    "dict_type": "expected a mapping",
    "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
    "too_short": "must not be empty",
    "invalid_key": "keys must be strings",
}


def _problem(detail: ErrorDetails, data: dict[str, Any]) -> str:
    prefix = "invalid key: " if _is_key(detail) else ""
    kind = detail["type"]
    ctx = detail.get("ctx", {})
    if kind == UNKNOWN_FIELD:
        return _unknown_field(detail["loc"], data)
    if kind == "value_error":
        return prefix + str(ctx.get("error", "invalid value"))
    if kind == "enum":
        return f"{prefix}expected {ctx.get('expected', 'a listed value')}"
    # pydantic's own messages are templates that never contain the input.
    return prefix + _PROBLEMS.get(kind, detail["msg"])


def _unknown_field(loc: tuple[int | str, ...], data: dict[str, Any]) -> str:
    parent = model_at(PolicyDocument, loc[:-1])
    allowed = allowed_fields(parent) if parent is not None else "none"
    position = _position(data, loc)
    key = f"key {position}" if position is not None else "a key"
    return f"{key} is not a known field; allowed: {allowed}"


def _position(data: dict[str, Any], loc: tuple[int | str, ...]) -> int | None:
    """The 1-based place of the key `loc` ends in, within its mapping."""
    node: Any = data
    for part in loc[:-1]:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
    if not isinstance(node, dict) or loc[-1] not in node:
        return None
    return list(node).index(loc[-1]) + 1
