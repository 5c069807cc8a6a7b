"""The identity contract's old address, kept for the API's route modules, which import
:class:`Principal` from here; everything else imports :mod:`verifier.core.identity`."""

from verifier.core.identity import Principal

__all__ = ["Principal"]
