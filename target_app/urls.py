# /healthz is served outside Django (see asgi.py); Django answers 404 to everything else.
urlpatterns: list = []
