"""JWTs bound to the password they were issued under.

simplejwt's CHECK_REVOKE_TOKEN puts a digest of the user's password hash into every token and refuses an
access token whose digest no longer matches; its refresh endpoint does not look, so a refresh token would
keep minting access tokens after the password changed. This serializer checks it there too.
"""

from __future__ import annotations

import hmac

from django.contrib.auth import get_user_model
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.serializers import TokenRefreshSerializer
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.utils import get_md5_hash_password


class PasswordBoundTokenRefreshSerializer(TokenRefreshSerializer):
    def validate(self, attrs):
        refresh = self.token_class(attrs["refresh"])
        user_id = refresh.payload.get(api_settings.USER_ID_CLAIM)
        user = get_user_model().objects.filter(**{api_settings.USER_ID_FIELD: user_id}).first() if user_id else None
        issued_under = str(refresh.payload.get(api_settings.REVOKE_TOKEN_CLAIM, ""))
        if user is None or not hmac.compare_digest(issued_under, get_md5_hash_password(user.password)):
            raise AuthenticationFailed("token no longer valid: the password was changed", "password_changed")
        return super().validate(attrs)
