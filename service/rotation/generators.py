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
"""

from __future__ import annotations

import json
import secrets
import string
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Final, Protocol

import structlog

from service.errors import InvalidRequest
from service.rotation.settings import RotationSettings
from service.sensitive import Sensitive

log = structlog.get_logger(__name__)

ENTRY_POINT_GROUP: Final = "tokenbroker.generators"
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


class RandomGenerator:
    """Random text from an alphabet, drawn with `secrets`; no target to talk to."""

    def __init__(self, length: int, alphabet: str) -> None:
        self.length = length
        self.alphabet = alphabet

    def __repr__(self) -> str:
        return f"RandomGenerator(length={self.length})"

    @classmethod
    def from_params(
        cls, params: Mapping[str, Any], settings: RotationSettings
    ) -> RandomGenerator:
        """`{type: random, length: 48, alphabet: hex}`; raises InvalidRequest."""
        unknown = set(params) - {"length", "alphabet"}
        if unknown:
            raise InvalidRequest("generator random: unknown parameter")
        length = params.get("length", settings.default_length)
        if not isinstance(length, int) or not 16 <= length <= 4096:
            raise InvalidRequest("generator random: length must be 16 to 4096")
        alphabet = params.get("alphabet", "alphanumeric")
        if not isinstance(alphabet, str) or alphabet not in ALPHABETS:
            raise InvalidRequest(
                "generator random: alphabet must be one of " + ", ".join(ALPHABETS)
            )
        return cls(length, ALPHABETS[alphabet])

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


BUILT_IN: Final[dict[str, Factory]] = {
    "random": RandomGenerator.from_params,
    "http": _http_factory,
}


class GeneratorRegistry:
    """Generator factories by type: built-in, registered, then entry points."""

    def __init__(self, settings: RotationSettings) -> None:
        self.settings = settings
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

    def close(self) -> None:
        """Close every generator that holds connections."""
        with self._lock:
            built, self._built = list(self._built.values()), {}
        for generator in built:
            close = getattr(generator, "close", None)
            if close is not None:
                close()

    def _plugin(self, kind: str) -> Factory:
        found = entry_points(group=ENTRY_POINT_GROUP, name=kind)
        for point in found:
            factory: Factory = point.load()
            self._factories[kind] = factory
            log.info("generator_plugin_loaded", kind=kind, value=point.value)
            return factory
        raise InvalidRequest(f"no generator of type {kind!r} is installed")
