"""HTTP headers the demo's processes use to talk to each other.

Kept apart so the splitter and the load generator do not import the model server.
"""

MIRROR_HEADER = "X-Vigil-Mirror"
"""``1`` on a mirrored copy of a request (sent by the splitter to a shadow backend)."""

STABLE_PREDICTION_HEADER = "X-Vigil-Stable-Prediction"
"""The predicted class (``0``/``1``) the answering backend gave for the same request."""

BACKEND_HEADER = "X-Vigil-Backend"
"""Response: the backend that answered. Request: send to this backend only (feedback)."""

VERSION_HEADER = "X-Vigil-Version"
"""Response: the model version that answered."""

REQUEST_ID_HEADER = "X-Request-Id"
"""Request: an id chosen by the caller; the model server uses it as the request id."""

CONTROL_HEADER = "X-Vigil-Shadow-Control"
"""``1`` on a request the splitter also mirrors to a shadow: the answering server scores it a
second time and counts whether it agrees with itself (the shadow gate's live control)."""
