"""How a rotation makes a new value: the generator protocol and the registry.

A generator answers for the four things only the target knows: `create` makes
the new credential (or asks an upstream to mint it), `apply` makes the target
accept it (the rotation's `set` step), `test` says whether the target accepts it
yet, and `revoke` makes the target refuse an old one after its grace period.
Every call must be idempotent under `context.rotation_id`: after a crash the
same step runs again.

Built in: `random` (here) and `http` (`service.rotation.http_generator`). Other
types come from the entry-point group `tokenbroker.generators`; each entry point
names a factory `(params, settings) -> Generator`.

`GeneratorRegistry.check` finds what is wrong with a type and its parameters
before any rotation runs: when a policy is applied and in `tokenbroker policy
check`. The built-in types check every parameter; a plugin's factory may offer
`validate(params, settings)` answering a list of `GeneratorProblem`s (whose
messages, like the broker's, never repeat a value), and is otherwise only known
to exist. `settings` is None there when the configuration is not known (a
`policy check` without `--config`): the `http` endpoint names go unchecked.
"""

from __future__ import annotations

import json
import secrets
import string
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Final, Protocol

import structlog

from policies.model import GeneratorProblem
from service.errors import InvalidRequest
from service.rotation.settings import RotationSettings
from service.sensitive import Sensitive

log = structlog.get_logger(__name__)

ENTRY_POINT_GROUP: Final = "tokenbroker.generators"
LENGTHS: Final = range(16, 4097)
ALPHABETS: Final = {
    "alphanumeric": string.ascii_letters + string.digits,
    "hex": "0123456789abcdef",
    "base64url": string.ascii_letters + string.digits + "-_",
    "printable": string.ascii_letters + string.digits + "!#%+,-./:=?@^_~",
}


@dataclass(frozen=True, slots=True)
class RotationContext:
    """What a generator may know about the rotation it works for."""

    env: str
    secret: str
    rotation_id: str


@dataclass(frozen=True, slots=True)
class Minted:
    """A new credential; `ref` is an upstream id for it, never the value."""

    value: Sensitive
    ref: str | None = None


class Generator(Protocol):
    """Makes, applies, tests and revokes one secret's credentials."""

    def create(self, context: RotationContext) -> Minted:
        """A new credential. Raises a TokenBrokerError when none can be made."""
        ...

    def apply(self, context: RotationContext, value: Sensitive) -> None:
        """Make the target accept `value`. Raises a TokenBrokerError on failure."""
        ...

    def test(self, context: RotationContext, value: Sensitive) -> bool:
        """Whether the target accepts `value` now; False means not yet."""
        ...

    def revoke(
        self, context: RotationContext, value: Sensitive, ref: str | None
    ) -> None:
        """Make the target refuse `value` from now on."""
        ...


Factory = Callable[[Mapping[str, Any], RotationSettings], Generator]
Validator = Callable[
    [Mapping[str, Any], RotationSettings | None], Iterable[GeneratorProblem]
]
UNKNOWN_TYPE: Final = "no generator of this type is installed"


def unknown_keys(
    params: Mapping[str, Any], allowed: Iterable[str]
) -> list[GeneratorProblem]:
    """A problem for each key of `params` that is not in `allowed` (nor `type`)."""
    known = ("type", *allowed)
    return [
        GeneratorProblem(
            f"is not a known field; allowed: {', '.join(known)}", key, unknown=True
        )
        for key in params
        if key not in known
    ]


def refuse(kind: str, problems: Iterable[GeneratorProblem]) -> None:
    """Raise InvalidRequest naming the first problem, if there is one."""
    for problem in problems:
        where = "a parameter" if problem.unknown else problem.key
        subject = f"generator {kind}" + (f": {where}" if where else "")
        raise InvalidRequest(f"{subject} {problem.message}")


class RandomGenerator:
    """Random text from an alphabet, drawn with `secrets`; no target to talk to."""

    def __init__(self, length: int, alphabet: str) -> None:
        self.length = length
        self.alphabet = alphabet

    def __repr__(self) -> str:
        return f"RandomGenerator(length={self.length})"

    @classmethod
    def validate(
        cls, params: Mapping[str, Any], settings: RotationSettings | None
    ) -> list[GeneratorProblem]:
        """What is wrong with `{type: random, length: 48, alphabet: hex}`."""
        problems = unknown_keys(params, ("length", "alphabet"))
        length = params.get("length", LENGTHS.start)
        if isinstance(length, bool) or not isinstance(length, int) or (
            length not in LENGTHS
        ):  # fmt: skip
            problems.append(
                GeneratorProblem(
                    f"must be an integer from {LENGTHS.start} to {LENGTHS[-1]}",
                    "length",
                )
            )
        alphabet = params.get("alphabet", "alphanumeric")
        if not isinstance(alphabet, str) or alphabet not in ALPHABETS:
            problems.append(
                GeneratorProblem("must be one of " + ", ".join(ALPHABETS), "alphabet")
            )
        return problems

    @classmethod
    def from_params(
        cls, params: Mapping[str, Any], settings: RotationSettings
    ) -> RandomGenerator:
        """`{type: random, length: 48, alphabet: hex}`; raises InvalidRequest."""
        refuse("random", cls.validate(params, settings))
        length = params.get("length", settings.default_length)
        return cls(length, ALPHABETS[params.get("alphabet", "alphanumeric")])

    def create(self, context: RotationContext) -> Minted:
        text = "".join(secrets.choice(self.alphabet) for _ in range(self.length))
        return Minted(Sensitive.from_text(text))

    def apply(self, context: RotationContext, value: Sensitive) -> None:
        """Nothing to apply: the broker's store is the only place it lives."""

    def test(self, context: RotationContext, value: Sensitive) -> bool:
        return True

    def revoke(
        self, context: RotationContext, value: Sensitive, ref: str | None
    ) -> None:
        """Nothing to revoke beyond disabling the version, which rotation does."""


def _http_factory(params: Mapping[str, Any], settings: RotationSettings) -> Generator:
    # Imported late: httpx is only needed once an http generator is declared.
    from service.rotation.http_generator import HttpGenerator

    return HttpGenerator.from_params(params, settings)


def _http_validate(
    params: Mapping[str, Any], settings: RotationSettings | None
) -> list[GeneratorProblem]:
    from service.rotation.http_generator import HttpGenerator

    return HttpGenerator.validate(params, settings)


BUILT_IN: Final[dict[str, Factory]] = {
    "random": RandomGenerator.from_params,
    "http": _http_factory,
}
BUILT_IN_CHECKS: Final[dict[str, Validator]] = {
    "random": RandomGenerator.validate,
    "http": _http_validate,
}


class GeneratorRegistry:
    """Generator factories by type: built-in, registered, then entry points."""

    def __init__(
        self, settings: RotationSettings, *, settings_known: bool = True
    ) -> None:
        self.settings = settings
        # False for `policy check` without a configuration: the defaults stand
        # in, and what only the configuration knows goes unchecked.
        self.settings_known = settings_known
        self._factories: dict[str, Factory] = dict(BUILT_IN)
        self._built: dict[tuple[str, str], Generator] = {}
        self._lock = threading.Lock()

    def register(self, kind: str, factory: Factory) -> None:
        """Add a factory in-process (the broker's own extensions, tests)."""
        with self._lock:
            self._factories[kind] = factory
            self._built = {k: v for k, v in self._built.items() if k[0] != kind}

    def build(self, kind: str, params: Mapping[str, Any]) -> Generator:
        """A generator of `kind`, built once per parameters and then reused.

        Raises InvalidRequest for an unknown type or bad parameters.
        """
        key = (kind, json.dumps(params, sort_keys=True, default=str))
        with self._lock:
            built = self._built.get(key)
        if built is not None:
            return built
        factory = self._factories.get(kind) or self._plugin(kind)
        built = factory(params, self.settings)
        with self._lock:
            return self._built.setdefault(key, built)

    def check(self, kind: str, params: Mapping[str, Any]) -> list[GeneratorProblem]:
        """What is wrong with a generator of `kind` and `params`; empty when
        nothing is, as far as its type can tell without running it."""
        validate = BUILT_IN_CHECKS.get(kind)
        if validate is None:
            with self._lock:
                factory = self._factories.get(kind)
            if factory is None:
                factory = self._find_plugin(kind)
            if factory is None:
                return [GeneratorProblem(UNKNOWN_TYPE, "type")]
            validate = getattr(factory, "validate", None)
            if validate is None:
                return []
        settings = self.settings if self.settings_known else None
        try:
            return list(validate(params, settings))
        except Exception as error:
            # A plugin's own failure: named by type, its message may quote input.
            log.warning("generator_check_failed", kind=kind,
                        error_type=type(error).__name__)  # fmt: skip
            return [GeneratorProblem("the generator could not check its parameters")]

    def close(self) -> None:
        """Close every generator that holds connections."""
        with self._lock:
            built, self._built = list(self._built.values()), {}
        for generator in built:
            close = getattr(generator, "close", None)
            if close is not None:
                close()

    def _plugin(self, kind: str) -> Factory:
        factory = self._find_plugin(kind)
        if factory is None:
            raise InvalidRequest(f"generator type: {UNKNOWN_TYPE}")
        return factory

    def _find_plugin(self, kind: str) -> Factory | None:
        for point in entry_points(group=ENTRY_POINT_GROUP, name=kind):
            factory: Factory = point.load()
            with self._lock:
                self._factories[kind] = factory
            log.info("generator_plugin_loaded", kind=kind, value=point.value)
            return factory
        return None
