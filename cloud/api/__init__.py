"""The HTTP API: one router per resource, bearer-token roles, JSON errors."""
