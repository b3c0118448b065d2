"""What a rotation of one secret needs to know: where it lives and how it rotates.

The plan is read from the environment's policy each time, so a changed policy
applies to the next step. A secret without a `rotation:` block can still be
rotated on demand: with the `random` generator and the default grace.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from policies.model import Retire
from service.environment import Environment, Location
from service.errors import NotFound, TokenBrokerError
from service.rotation.generators import Generator, GeneratorRegistry
from service.rotation.settings import RotationSettings

MAX_ERROR_LENGTH = 500


@dataclass(frozen=True, slots=True)
class Plan:
    """How one secret rotates, resolved against the current policy."""

    location: Location
    generator: Generator
    grace: float
    retire: Retire
    # Only for `retire: when-unused`: the latest the previous version lives.
    max_grace: float


class Planner:
    """Resolves plans for the secrets of every environment."""

    def __init__(
        self,
        environments: Mapping[str, Environment],
        generators: GeneratorRegistry,
        settings: RotationSettings,
    ) -> None:
        self.environments = environments
        self.generators = generators
        self.settings = settings

    def environment(self, env: str) -> Environment:
        try:
            return self.environments[env]
        except KeyError:
            raise NotFound(f"no environment named {env!r}") from None

    def plan(self, env: str, secret: str) -> Plan:
        """The plan of a secret. Raises InvalidRequest for a bad generator."""
        environment = self.environment(env)
        declaration = environment.policy.binding(secret)
        rotation = declaration.rotation if declaration is not None else None
        location = environment.locate(secret)
        if rotation is None:
            grace = self.settings.default_grace_seconds
            generator = self.generators.build("random", {})
            return Plan(location, generator, grace, Retire.AFTER_GRACE, grace)
        generator = self.generators.build(
            rotation.generator.type, rotation.generator.params
        )
        max_grace = rotation.max_grace if rotation.max_grace is not None else None
        return Plan(
            location,
            generator,
            float(rotation.grace),
            rotation.retire,
            float(max_grace if max_grace is not None else rotation.grace),
        )


def describe(error: BaseException) -> str:
    """A message for a rotation record: the broker's own, or only a type name.

    Messages of the broker's errors never hold values; anything else (an SDK
    or a plugin) might, so only its type is kept.
    """
    if isinstance(error, TokenBrokerError):
        return error.message[:MAX_ERROR_LENGTH]
    return f"{type(error).__name__} (details withheld)"
