"""ijpweb.bodies: the upload form's parser and the bounded read, with hypothesis.

- Any well-made multipart form (any field names, text values, files of any bytes, read in
  chunks of any size) parses to what WebOb's own parser makes of it, when its fields are
  within their bounds; files come back byte for byte.
- A field over MAX_FIELD_BYTES is refused (413) naming it, having read little more than
  the bound of it, whatever follows it.
- read_at_most never reads more than the limit and one byte.
"""

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from webob import Request

from ijpweb import bodies
from ijpweb.inputs import InputError

BOUNDARY = "----bOuNdArY-7f3a"


class Chunked(io.RawIOBase):
    """``data`` given at most ``size`` bytes per read, counting what is read."""

    def __init__(self, data: bytes, size: int):
        self.data, self.size, self.pos = data, size, 0

    def readable(self):
        return True

    def read(self, n=-1):
        n = self.size if n is None or n < 0 else min(n, self.size)
        out = self.data[self.pos : self.pos + n]
        self.pos += len(out)
        return out


names = st.text(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters='"\\%'), min_size=1,
                max_size=20)  # fmt: skip
field_values = st.text(st.characters(blacklist_categories=("Cs",)), max_size=300)
file_bytes = st.binary(max_size=3000)
parts = st.lists(
    st.one_of(
        st.tuples(st.just("field"), names, field_values),
        st.tuples(st.just("file"), names, st.tuples(names, file_bytes)),
    ),
    max_size=8,
)


def form(items) -> bytes:
    out = b""
    for kind, name, value in items:
        if kind == "field":
            head = f'Content-Disposition: form-data; name="{name}"'
            data = value.encode()
        else:
            filename, data = value
            head = (
                f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\nContent-Type: x/y'
            )
        out += f"--{BOUNDARY}\r\n{head}\r\n\r\n".encode() + data + b"\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode()


def parsed(items):
    """(name, text) and (name, (filename, bytes)), the files closed."""
    out = []
    for n, v in items:
        if isinstance(v, str):
            out.append((n, v))
        else:
            out.append((n, (v.filename, v.file.read())))
            v.file.close()
    return out


@settings(max_examples=200, deadline=None)
@given(parts, st.integers(1, 5000))
def test_a_form_parses_as_webob_parses_it(items, chunk):
    body = form(items)
    # (boundary-like text in a value would end the part for every parser alike: not made here)
    if any(f"--{BOUNDARY}".encode() in (v.encode() if k == "field" else v[1]) for k, _, v in items):
        return
    ours = parsed(bodies.parse_multipart(Chunked(body, chunk), BOUNDARY.encode()))
    req = Request.blank(
        "/", method="POST", body=body, content_type=f"multipart/form-data; boundary={BOUNDARY}"
    )
    theirs = parsed(req.POST.items())
    assert ours == theirs
    expected = [(n, v if k == "field" else (v[0], v[1])) for k, n, v in items]
    assert ours == expected


@settings(max_examples=50, deadline=None)
@given(names, st.integers(bodies.MAX_FIELD_BYTES + 1, 4 * bodies.MAX_FIELD_BYTES), st.integers(1, 70_000))
def test_a_field_over_its_bound_is_refused_naming_it_having_read_little_more(name, size, chunk):
    body = form(
        [("field", "csrf_token", "t"), ("field", name, "v" * size), ("file", "file", ("a.txt", b"x"))]
    )
    stream = Chunked(body, chunk)
    with pytest.raises(bodies.BodyTooLarge) as refused:
        bodies.parse_multipart(stream, BOUNDARY.encode())
    assert refused.value.status == 413 and refused.value.field == name[:60]
    assert stream.pos <= bodies.MAX_FIELD_BYTES + 2 * max(chunk, bodies.CHUNK) + 1000


def test_fields_together_are_bounded():
    items = [("field", f"f{i}", "v" * 60_000) for i in range(5)]
    with pytest.raises(bodies.BodyTooLarge) as refused:
        bodies.parse_multipart(io.BytesIO(form(items)), BOUNDARY.encode())
    assert refused.value.field == "f4"


@pytest.mark.parametrize(
    "body, message",
    [
        (b"no boundary at all", "has no part"),
        (b"--" + BOUNDARY.encode() + b"\r\nContent-Disposition: form-data\r\n\r\nx\r\n", "has a part without a name"),
        (b"--" + BOUNDARY.encode() + b"\r\nX: y\r\n\r\nx\r\n", "without Content-Disposition"),
        (b"--" + BOUNDARY.encode() + b'\r\nContent-Disposition: form-data; name="a"\r\n\r\nx', "ends before"),
        (b"--" + BOUNDARY.encode() + b"junk\r\n", "something else than a line break"),
        (b"--" + BOUNDARY.encode() + b'\r\nContent-Disposition: form-data; name="a"\r\n\r\n\xff\r\n--'
         + BOUNDARY.encode() + b"--", "a is not UTF-8"),
        (b"--" + BOUNDARY.encode() + b"\r\n" + b"X: " + b"y" * 20_000 + b"\r\n\r\n", "too many headers"),
        (b"p" * 70_000, "too much before its first boundary"),
    ],
)  # fmt: skip
def test_a_form_not_well_made_is_refused(body, message):
    with pytest.raises(InputError) as refused:
        bodies.parse_multipart(io.BytesIO(body), BOUNDARY.encode())
    assert message in refused.value.message


@given(st.binary(max_size=5000), st.integers(0, 6000), st.integers(1, 300))
def test_read_at_most_reads_no_more_than_the_limit_and_one_byte(data, limit, chunk):
    stream = Chunked(data, chunk)
    got = bodies.read_at_most(stream, limit)
    assert stream.pos <= limit + 1
    assert got == (data if len(data) <= limit else None)


@pytest.mark.parametrize(
    "ctype",
    ["multipart/form-data", "multipart/form-data; boundary=", 'multipart/form-data; boundary="a\x7f"'],
)
def test_a_content_type_without_a_usable_boundary_is_refused_naming_it(ctype):
    with pytest.raises(InputError) as refused:
        bodies.boundary(ctype)
    assert refused.value.field == "Content-Type"
