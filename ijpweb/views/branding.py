"""The facility's accent colour as a stylesheet and its logo (ijp.site.*, ijpweb.branding):
both from the settings read at start, never from a path in a request."""

from pyramid.httpexceptions import HTTPNotFound
from pyramid.response import Response
from pyramid.view import view_config

DAY = 86400


@view_config(route_name="brand.css", request_method="GET")
def brand_css(request):
    brand = request.registry.settings["ijp"].branding
    resp = Response(body=brand.stylesheet.encode(), content_type="text/css", charset="utf-8")
    resp.cache_control = f"public, max-age={DAY}"
    return resp


@view_config(route_name="brand.logo", request_method="GET")
def brand_logo(request):
    brand = request.registry.settings["ijp"].branding
    if not brand.logo:
        raise HTTPNotFound()
    resp = Response(body=brand.logo, content_type=brand.logo_type)
    resp.cache_control = f"public, max-age={DAY}"
    # an SVG opened on its own runs nothing and loads nothing
    resp.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'; sandbox"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    return resp
