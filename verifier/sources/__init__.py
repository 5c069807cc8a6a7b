"""Credential sources: the bearer token, the oauth2-proxy session (with its CSRF checks) and the ALB
header, each one class behind :class:`~verifier.sources.credential_source.CredentialSource`."""
