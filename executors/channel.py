"""Authenticating what executors send: results, log lines and progress of the runs dispatched to them.

These endpoints accept neither API keys nor users: only a message signed (``scheduler_sdk.signing``) with
the secret of the executor named in X-Scheduler-Executor, fresh, with a nonce never used before, about an
execution that was dispatched to that very executor. Anything else is 401 and changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from django.db import IntegrityError, transaction
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import APIException, AuthenticationFailed
from rest_framework.permissions import BasePermission

from core.clock import utc_now
from executions.models import TaskExecution
from executions.services import retried_on_deadlock
from executors.models import Executor, SeenNonce
from executors.services import Proof
from scheduler_project.errors import DomainError, ErrorCode, reject_impossible_ids
from scheduler_sdk.signing import (
    HEADER_EXECUTOR,
    HEADER_NONCE,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    NONCE_TTL_SECONDS,
    NonceStore,
    SignatureError,
    header,
    verify,
)

logger = logging.getLogger(__name__)

R = TypeVar("R")

REPLAYED = "replayed request: nonce already used"  # the reason scheduler_sdk.signing.verify gives

PURGE_BATCH = 1000


def purge_old_nonces(now: datetime) -> int:
    """Deletes nonces too old to matter (a replay of them is stale anyway), in batches. Returns how many.
    The leader runs it every minute (``scheduling.housekeeping``)."""
    cutoff = now - timedelta(seconds=NONCE_TTL_SECONDS)
    deleted = 0
    while True:
        batch = list(SeenNonce.objects.filter(seen_at__lt=cutoff).values_list("pk", flat=True)[:PURGE_BATCH])
        if batch:
            deleted += SeenNonce.objects.filter(pk__in=batch).delete()[0]
        if len(batch) < PURGE_BATCH:
            return deleted


class SignedExecutor:
    """The principal of a request signed by an executor (``request.user``; ``request.auth`` is the Executor)."""

    is_authenticated = True
    is_active = True
    is_staff = is_superuser = False

    def __init__(self, executor: Executor) -> None:
        self.executor = executor
        self.pk = self.id = f"executor:{executor.pk}"
        self.username = f"executor {executor.instance_id}"
        # Set when the nonce was verified but is left for the view to record (``apply_signed_once``).
        self.unspent_nonce: tuple[str, datetime] | None = None

    def __str__(self) -> str:
        return self.username


class ExecutorSignatureAuthentication(BaseAuthentication):
    """Accepts only a fresh, never-replayed request signed with the named executor's secret."""

    clock = staticmethod(utc_now)

    def authenticate(self, request):
        if request.method != "POST":  # executors only POST; other methods get the endpoint's 405
            return None
        executor_id = header(request.headers, HEADER_EXECUTOR)
        if not executor_id:
            raise AuthenticationFailed(f"unsigned request: missing {HEADER_EXECUTOR} (executor requests must be "
                                       "signed with the executor's secret)")
        executor = Executor.objects.filter(pk=executor_id).first()
        if executor is None:
            raise AuthenticationFailed("signature not valid: unknown executor")
        signed = SignedExecutor(executor)
        try:
            verify(executor.secret, request.method, request._request.get_full_path(), request._request.body,
                   request.headers, remember_nonce=self._keep_for_the_view(signed), now=self.clock().timestamp())
        except SignatureError as exc:
            logger.warning("refused %s %s from executor %s: %s", request.method, request.path, executor.instance_id,
                           exc.reason)
            raise AuthenticationFailed(f"signature not valid: {exc.reason}") from None
        return signed, executor

    @staticmethod
    def _keep_for_the_view(signed: SignedExecutor) -> NonceStore:
        def keep(nonce: str, now: float) -> bool:
            seen_at = datetime.fromtimestamp(now, tz=UTC)
            signed.unspent_nonce = (nonce, seen_at)
            return True

        return keep

    def authenticate_header(self, request) -> str:
        return 'HMAC-SHA256 realm="executors"'  # makes DRF answer 401 (not 403) when refused


@retried_on_deadlock
@transaction.atomic
def _spend_nonce_then(signed: SignedExecutor, apply: Callable[[], R]) -> tuple[R | None, Exception | None]:
    nonce, seen_at = signed.unspent_nonce
    try:
        # The first statement of the transaction, so no savepoint is needed: a duplicate rolls back nothing.
        SeenNonce.objects.create(executor=signed.executor, nonce=nonce, seen_at=seen_at)
    except IntegrityError:
        raise AuthenticationFailed(f"signature not valid: {REPLAYED}") from None
    try:
        with transaction.atomic():
            return apply(), None
    except (DomainError, APIException) as refusal:
        return None, refusal  # refused, yet the message was authentic: its nonce stays spent


def apply_signed_once(request, apply: Callable[[], R]) -> R:
    """Runs ``apply`` and records the request's nonce in one transaction (run again whole if the database
    picks it as a deadlock victim); returns what ``apply`` returned. A replay, concurrent or later, meets the
    nonce's unique key: 401, and nothing it carries is applied. A refusal from ``apply`` (DomainError, DRF
    error) still spends the nonce, and is raised after the commit."""
    signed = request.user
    if not isinstance(signed, SignedExecutor) or signed.unspent_nonce is None:
        raise AssertionError("apply_signed_once needs EXECUTOR_AUTHENTICATION on the view")
    result, refusal = _spend_nonce_then(signed, apply)
    if refusal is not None:
        raise refusal
    return result


def registration_proof(request) -> Proof | None:
    """The executor whose secret (current, or the one an admin rotated away) signed this registration request,
    or None: not signed, an unknown executor (the scheduler's database was reset: it registers as new), a bad
    signature, stale, or replayed. The nonce of an accepted signature is spent at once.

    Call it before ``request.data``: it reads the raw body, which Django keeps once read this way.
    """
    executor_id = header(request.headers, HEADER_EXECUTOR)
    executor = Executor.objects.filter(pk=executor_id).first() if executor_id else None
    if executor is None:
        return None
    for secret in (executor.secret, executor.previous_secret):
        if not secret:
            continue
        try:
            verify(secret, request.method, request._request.get_full_path(), request._request.body, request.headers,
                   remember_nonce=_spend_at_once(executor), now=utc_now().timestamp())
        except SignatureError:
            continue
        return Proof(executor_id=executor.pk, secret=secret)
    logger.warning("registration signed as executor %s carries no valid signature", executor.instance_id)
    return None


def _spend_at_once(executor: Executor) -> NonceStore:
    def spend(nonce: str, now: float) -> bool:
        seen_at = datetime.fromtimestamp(now, tz=UTC)
        try:
            with transaction.atomic():
                SeenNonce.objects.create(executor=executor, nonce=nonce, seen_at=seen_at)
        except IntegrityError:
            return False
        return True

    return spend


class IsDispatchedExecutor(BasePermission):
    """The signed executor is the one the execution (URL ``pk``) was dispatched to. Refusal is 401: the
    message is not authentic for this execution, whoever signed it."""

    def has_permission(self, request, view) -> bool:
        if request.method != "POST":
            return True  # no handler: the endpoint answers 405
        executor = request.auth
        if not isinstance(executor, Executor):
            return False
        reject_impossible_ids(view.kwargs, {"pk": ErrorCode.EXECUTION_NOT_FOUND})  # before any query sees it
        dispatched_to = list(TaskExecution.objects.filter(pk=view.kwargs.get("pk"))
                             .values_list("executor_id", flat=True)[:1])
        if not dispatched_to:
            return True  # the view answers 404 for an unknown execution
        if dispatched_to[0] != executor.pk:
            logger.warning("refused %s %s: execution not dispatched to executor %s", request.method, request.path,
                           executor.instance_id)
            raise AuthenticationFailed("signature not valid for this execution: it was not dispatched to "
                                       "this executor")
        return True


class IsSignedExecutor(BasePermission):
    """Any executor whose signature was accepted: for messages about several executions (a batch of results),
    where the view checks each execution against ``request.auth`` itself."""

    def has_permission(self, request, view) -> bool:
        return request.method != "POST" or isinstance(request.auth, Executor)


# Every view behind these spends the request's nonce through ``apply_signed_once``: authentication only
# verifies it, so the nonce commits with what the message changes (a view that skipped it would accept replays).
EXECUTOR_AUTHENTICATION = [ExecutorSignatureAuthentication]
EXECUTOR_PERMISSIONS = [IsDispatchedExecutor]


class ExecutorOnlyForPost:
    """View mixin: POST comes from the executor running the execution (signed); GET keeps the API's auth."""

    def _from_executor(self) -> bool:
        # self.request is Django's request here (View.setup); None while drf-spectacular builds its mock.
        return getattr(self.request, "method", None) == "POST"

    def get_authenticators(self):
        if self._from_executor():
            return [auth() for auth in EXECUTOR_AUTHENTICATION]
        return super().get_authenticators()

    def get_permissions(self):
        if self._from_executor():
            return [permission() for permission in EXECUTOR_PERMISSIONS]
        return super().get_permissions()


class ExecutorSignatureScheme(OpenApiAuthenticationExtension):
    target_class = "executors.channel.ExecutorSignatureAuthentication"
    name = "executorSignature"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey", "in": "header", "name": HEADER_SIGNATURE,
            "description": f"HMAC-SHA256 by the executor the execution was dispatched to, with {HEADER_EXECUTOR}, "
            f"{HEADER_TIMESTAMP} and {HEADER_NONCE}. See README \"Executors: registration key and signed "
            "messages\".",
        }
