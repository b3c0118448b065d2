"""Secret stores behind one protocol, `backends.base.SecretBackend`; a module each."""
