"""scheduler_sdk.signing: the canonical string, and every reason a message is refused (injected clock)."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from scheduler_sdk.signing import (
    HEADER_EXECUTOR,
    HEADER_NONCE,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    MemoryNonceStore,
    SignatureError,
    signature_headers,
    verify,
)

SECRET = "s3cret-for-signing-tests"
NOW = 1_900_000_000.0
BODY = b'{"status": "success"}'
PATH = "/api/v1/executions/e-1/callback"


def signed(**overrides):
    return signature_headers(overrides.pop("secret", SECRET), "POST", PATH, BODY, now=NOW, **overrides)


def check(headers, *, method="POST", path=PATH, body=BODY, now=NOW, store=None):
    verify(SECRET, method, path, body, headers, remember_nonce=store or MemoryNonceStore(), now=now)


def test_signature_is_hmac_sha256_over_the_documented_canonical_string():
    headers = signed(executor_id="x-1")
    canonical = "\n".join(["v1", "POST", PATH, headers[HEADER_TIMESTAMP], headers[HEADER_NONCE],
                           hashlib.sha256(BODY).hexdigest()])
    expected = hmac.new(SECRET.encode(), canonical.encode(), hashlib.sha256).hexdigest()
    assert headers[HEADER_SIGNATURE] == f"v1={expected}"
    assert headers[HEADER_TIMESTAMP] == str(int(NOW)) and headers[HEADER_EXECUTOR] == "x-1"


def test_a_fresh_signed_message_is_accepted_with_headers_in_any_case():
    check({name.lower(): value for name, value in signed().items()})


@pytest.mark.parametrize("change", [
    {"method": "PUT"}, {"path": PATH + "?x=1"}, {"path": "/api/v1/executions/e-2/callback"},
    {"body": b'{"status": "failed"}'},
])
def test_any_change_to_method_path_or_body_breaks_the_signature(change):
    with pytest.raises(SignatureError, match="bad signature"):
        check(signed(), **change)


def test_another_secret_is_a_bad_signature():
    with pytest.raises(SignatureError, match="bad signature"):
        check(signed(secret="someone-else"))


@pytest.mark.parametrize("missing", [HEADER_TIMESTAMP, HEADER_NONCE, HEADER_SIGNATURE])
def test_missing_headers_are_named(missing):
    headers = signed()
    del headers[missing]
    with pytest.raises(SignatureError, match=f"missing {missing}"):
        check(headers)


@pytest.mark.parametrize("skew", [-301, 301])
def test_messages_more_than_five_minutes_off_are_stale(skew):
    with pytest.raises(SignatureError, match="stale"):
        check(signed(), now=NOW + skew)


def test_five_minutes_off_is_still_fresh():
    check(signed(), now=NOW + 300)
    check(signed(), now=NOW - 300)


def test_a_nonce_is_single_use():
    store = MemoryNonceStore()
    headers = signed()
    check(headers, store=store)
    with pytest.raises(SignatureError, match="replayed"):
        check(headers, store=store, now=NOW + 299)


def test_forged_messages_do_not_use_up_nonces():
    store = MemoryNonceStore()
    headers = signed()
    with pytest.raises(SignatureError, match="bad signature"):
        check({**headers, HEADER_SIGNATURE: "v1=" + "0" * 64}, store=store)
    check(headers, store=store)


def test_the_nonce_store_forgets_after_its_ttl():
    store = MemoryNonceStore(ttl=600)
    assert store("n" * 16, NOW) and not store("n" * 16, NOW + 600)
    assert store("n" * 16, NOW + 601)


def test_an_empty_secret_never_signs_nor_verifies():
    with pytest.raises(ValueError, match="no signing secret"):
        signature_headers("", "GET", "/health", b"")
    with pytest.raises(SignatureError, match="no secret"):
        verify("", "POST", PATH, BODY, signed(), remember_nonce=MemoryNonceStore(), now=NOW)
