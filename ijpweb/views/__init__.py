"""Pages and htmx fragments. A page and its fragment share a route; the fragment
view answers requests with ``HX-Request: true``."""

HTMX = "HX-Request:true"


def wants_json(request) -> bool:
    """An API client: under /api/, or asks for JSON and not for HTML."""
    if request.path.startswith("/api/"):
        return True
    offers = request.accept.acceptable_offers(["text/html", "application/json"])
    return bool(offers) and offers[0][0] == "application/json"


def as_int(value, default=0):
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def vary(request):
    request.response.vary = ("HX-Request",)
