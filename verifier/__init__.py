"""The verifier: decides who each caller is. Read it top to bottom, each layer importing only downward
(the contracts in ``pyproject.toml``, checked by ``lint-imports`` in the test suite):

* :mod:`verifier.service`: the aiohttp app, its settings, metrics and ``main`` (``python -m verifier``);
* :mod:`verifier.sources`: the credential sources (bearer token, oauth2-proxy session, ALB header),
  each one class behind :class:`~verifier.sources.credential_source.CredentialSource`;
* :mod:`verifier.keys`: signing keys fetched over HTTP (Entra's JWKS, the ALB's keys), one fetch in
  flight per key;
* :mod:`verifier.core`: pure decisions, no I/O: JOSE and claims, the principal and its signed
  identity headers, reason codes and their HTTP status, the route policy.
"""
