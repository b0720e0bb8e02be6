from rest_framework import status
from rest_framework.exceptions import APIException


class Conflict(APIException):
    """A request that collides with existing state and has no business code of its own (HTTP 409)."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "conflicts with the current state of the resource"
    default_code = "conflict"
