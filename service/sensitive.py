"""A type for secret material that never shows itself by accident.

Values and credentials travel through the broker as `Sensitive`: its repr and str
are masked, so a value that slips into a log call, an exception or a debugger
print shows `[secure]`. Code that needs the bytes calls `reveal()`, which makes
every place that handles the real value easy to find.
"""

from __future__ import annotations

import hmac
from typing import Final, NoReturn

MASK: Final = "[secure]"


class Sensitive:
    """Secret bytes with a masked repr; compare with `equals`, read with `reveal`."""

    __slots__ = ("_data",)

    def __init__(self, data: bytes) -> None:
        if not isinstance(data, bytes):
            raise TypeError("Sensitive holds bytes")
        self._data = data

    @classmethod
    def from_text(cls, text: str) -> Sensitive:
        return cls(text.encode("utf-8"))

    def reveal(self) -> bytes:
        return self._data

    def reveal_text(self) -> str:
        """The value as text; raises UnicodeDecodeError when it is not UTF-8."""
        return self._data.decode("utf-8")

    def equals(self, other: Sensitive) -> bool:
        """Constant-time comparison."""
        return hmac.compare_digest(self._data, other._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"Sensitive({MASK})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sensitive) and self.equals(other)

    def __hash__(self) -> int:
        return hash(self._data)

    def __reduce__(self) -> NoReturn:
        raise TypeError("Sensitive values are not pickled")
