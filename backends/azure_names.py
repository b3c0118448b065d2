"""Broker paths as Azure Key Vault secret names, reversibly and without collisions.

Key Vault allows only `[0-9a-zA-Z-]` (1-127 characters) and compares names
case-insensitively, so paths are escaped into lowercase with a prefix-free code:

| path character                         | name     |
|----------------------------------------|----------|
| `a`-`z`, `0`-`9`                       | itself   |
| `/`                                    | `--`     |
| `-`                                    | `-h`     |
| `.`                                    | `-p`     |
| `_`                                    | `-u`     |
| any other UTF-8 byte (`A` is `-41`)    | `-` hex  |

`payments/stripe-key` becomes `payments--stripe-hkey`. Because the code is
prefix-free, `secret_name(a + b) == secret_name(a) + secret_name(b)`, so a path
prefix is a name prefix. Decoding accepts only names that encode back to
themselves: two paths never share a name, and a hand-made name such as `-61`
(a non-canonical `a`) or `Payments` never decodes into someone else's path.
"""

from __future__ import annotations

from service.errors import InvalidRequest

MAX_NAME_LENGTH = 127


_PLAIN = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_ESCAPES = {"/": "--", "-": "-h", ".": "-p", "_": "-u"}
_UNESCAPES = {code[1]: char for char, code in _ESCAPES.items()}
_HEX = frozenset("0123456789abcdef")


def secret_name(path: str) -> str:
    """The Key Vault name of a broker path (see the module docstring).

    Raises InvalidRequest when the path is empty or cannot be UTF-8 encoded.
    """
    if not path:
        raise InvalidRequest("a secret path must not be empty")
    parts: list[str] = []
    for char in path:
        if char in _PLAIN:
            parts.append(char)
        elif char in _ESCAPES:
            parts.append(_ESCAPES[char])
        else:
            try:
                encoded = char.encode("utf-8")
            except UnicodeEncodeError:
                raise InvalidRequest("a secret path must be valid Unicode") from None
            parts.extend(f"-{byte:02x}" for byte in encoded)
    return "".join(parts)


def secret_path(name: str) -> str | None:
    """The broker path a Key Vault name stands for; None when it is not one."""
    decoded = bytearray()
    index = 0
    while index < len(name):
        char = name[index]
        if char in _PLAIN:
            decoded.append(ord(char))
            index += 1
        elif char != "-" or index + 1 >= len(name):
            return None
        elif name[index + 1] in _UNESCAPES:
            decoded.extend(_UNESCAPES[name[index + 1]].encode())
            index += 2
        elif set(name[index + 1 : index + 3]) <= _HEX and index + 2 < len(name):
            decoded.append(int(name[index + 1 : index + 3], 16))
            index += 3
        else:
            return None
    try:
        path = decoded.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return path if path and secret_name(path) == name else None
