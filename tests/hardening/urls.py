"""The project's URLs plus one API view behind HTTP Basic only, so the lockout's API behaviour is tested
whatever authentication the real endpoints are configured with."""

from django.urls import path
from rest_framework.authentication import BasicAuthentication
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from scheduler_project.urls import handler500  # noqa: F401 - handler500 re-exported
from scheduler_project.urls import urlpatterns as project_urlpatterns


class BasicOnlyView(APIView):
    authentication_classes = [BasicAuthentication]
    permission_classes = [IsAuthenticated]

    def get(self, request):
        return Response({"username": request.user.get_username()})


urlpatterns = [path("api/hardening-basic", BasicOnlyView.as_view()), *project_urlpatterns]
