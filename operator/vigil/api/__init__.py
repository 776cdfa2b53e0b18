"""The Vigil API: pydantic models of the custom resources, the single source of the CRDs."""

GROUP = "vigil.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
