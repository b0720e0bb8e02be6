"""JWT endpoints (djangorestframework-simplejwt) answering in the API's envelope."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework_simplejwt import views as jwt_views

from accounts.throttling import counting_failures
from scheduler_project.envelope import ok
from scheduler_project.schema import envelope, errors


class TokenPairSerializer(serializers.Serializer):
    access = serializers.CharField(help_text="Send as `Authorization: Bearer <access>`.")
    refresh = serializers.CharField(help_text="Exchange at /api/v1/auth/token/refresh for a new access token.")


class AccessTokenSerializer(serializers.Serializer):
    access = serializers.CharField()


class TokenObtainView(jwt_views.TokenObtainPairView):
    @extend_schema(responses={200: envelope("TokenPair", TokenPairSerializer()), **errors(400, 401, 429)},
                   description="A Django user's username and password for an access token (and a refresh "
                   "token). Repeated failures from one address are answered 429.")
    def post(self, request, *args, **kwargs):
        with counting_failures(request):
            response = super().post(request, *args, **kwargs)
        return ok(response.data)


class TokenRefreshView(jwt_views.TokenRefreshView):
    @extend_schema(responses={200: envelope("TokenRefreshed", AccessTokenSerializer()), **errors(400, 401, 429)},
                   description="A refresh token for a new access token.")
    def post(self, request, *args, **kwargs):
        with counting_failures(request):
            response = super().post(request, *args, **kwargs)
        return ok(response.data)
