"""The Vigil API: pydantic models of the custom resources, the single source of the CRDs."""

from vigil.api.names import API_VERSION, GROUP, VERSION

__all__ = ["API_VERSION", "GROUP", "VERSION"]
