"""Signing keys over HTTP: Entra's JWKS per tenant and the ALB's keys per kid, both behind one
single-flight, rate-limited fetcher, with the lazily created HTTP client and the upstream timing the
credential sources reuse."""
