"""A fake Azure Key Vault (secrets API) and Entra token endpoint for tests.

No emulator is installed here; this small Starlette app follows the documented
REST API closely enough for the real SDK, and injects the faults the backend must
survive: throttling, odd paging, soft-delete limbo and purge protection.
"""

from tests.backends.azure_fake.server import FakeKeyVault
from tests.backends.azure_fake.state import Faults, Seen, Vault

__all__ = ["FakeKeyVault", "Faults", "Seen", "Vault"]
