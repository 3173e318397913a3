"""The desktop proxy's RFB opening (ijpweb.desktop.rfb): DES against its published test
vectors, the VNC authentication against a real x11vnc (right and wrong passwords), the
browser's side with every RFB version noVNC may speak, and the parsers with hypothesis."""

from __future__ import annotations

import asyncio
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ijpweb.desktop import rfb

from ..vnc import vnc_server

# FIPS 46's worked example, the "Now is the time" vector, and known-answer tests of NIST
# SP 800-17 (variable plaintext, variable key, the S-box and permutation tests)
DES_VECTORS = [
    ("133457799BBCDFF1", "0123456789ABCDEF", "85E813540F0AB405"),
    ("0123456789ABCDEF", "4E6F772069732074", "3FA40E8A984D4815"),
    ("0E329232EA6D0D73", "8787878787878787", "0000000000000000"),
    ("0101010101010101", "8000000000000000", "95F8A5E5DD31D900"),
    ("0101010101010101", "4000000000000000", "DD7F121CA5015619"),
    ("0101010101010101", "0000000000000001", "166B40B44ABA4BD6"),
    ("8001010101010101", "0000000000000000", "95A8D72813DAA94D"),
    ("0101010101010102", "0000000000000000", "869EFD7F9F265A09"),
    ("7CA110454A1A6E57", "01A1D6D039776742", "690F5B0D9A26939B"),
    ("0131D9619DC1376E", "5CD54CA83DEF57DA", "7A389D10354BD271"),
    ("1046913489980131", "0000000000000000", "88D55E54F54C97B4"),
]


@pytest.mark.parametrize(("key", "plain", "cipher"), DES_VECTORS)
def test_des_meets_the_published_vectors(key, plain, cipher):
    assert rfb.des_encrypt_block(bytes.fromhex(key), bytes.fromhex(plain)) == bytes.fromhex(cipher)


@given(st.binary(min_size=8, max_size=8), st.binary(min_size=8, max_size=8))
def test_des_ignores_the_parity_bits(key, block):
    flipped = bytes(b ^ 1 for b in key)
    assert rfb.des_encrypt_block(key, block) == rfb.des_encrypt_block(flipped, block)


def test_des_refuses_wrong_sizes():
    with pytest.raises(ValueError):
        rfb.des_encrypt_block(b"short", b"12345678")
    with pytest.raises(ValueError):
        rfb.vnc_response("password", b"15 bytes only!!")


@given(st.text(min_size=8, max_size=20), st.binary(min_size=16, max_size=16))
def test_a_vnc_password_counts_to_its_eighth_byte(password, challenge):
    assert rfb.vnc_response(password, challenge) == rfb.vnc_response(password[:8], challenge)


def test_the_vnc_key_is_the_password_with_each_byte_mirrored():
    # "password": 0x70 ('p') mirrored is 0x0E, and so on (as every VNC implementation keys DES)
    key = bytes.fromhex("0E86CECEEEF64E26")
    challenge = bytes(range(16))
    assert rfb.vnc_response("password", challenge) == rfb.des_encrypt_block(
        key, challenge[:8]
    ) + rfb.des_encrypt_block(key, challenge[8:])


@given(st.binary(max_size=20))
def test_parse_version_takes_only_rfb_version_lines(line):
    try:
        major, minor = rfb.parse_version(line)
    except rfb.RFBError:
        return
    assert line == b"RFB %03d.%03d\n" % (major, minor)


@given(st.integers(0, 999), st.integers(0, 999))
def test_parse_version_reads_every_version(major, minor):
    assert rfb.parse_version(b"RFB %03d.%03d\n" % (major, minor)) == (major, minor)


class Browser:
    """The browser's side of an opening, as bytes: what it sends, and what it was sent."""

    def __init__(self, sends: bytes):
        self.sends, self.sent = bytearray(sends), bytearray()

    async def read(self, n: int) -> bytes:
        if len(self.sends) < n:
            raise rfb.RFBError("the browser closed the connection")
        out = bytes(self.sends[:n])
        del self.sends[:n]
        return out

    async def write(self, data: bytes) -> None:
        self.sent += data


@pytest.mark.parametrize(
    ("version", "choice", "answer"),
    [
        (b"RFB 003.008\n", b"\x01", b"RFB 003.008\n\x01\x01\x00\x00\x00\x00"),  # None, then SecurityResult OK
        (b"RFB 003.007\n", b"\x01", b"RFB 003.008\n\x01\x01"),  # 3.7: no SecurityResult after None
        (b"RFB 003.003\n", b"", b"RFB 003.008\n\x00\x00\x00\x01"),  # 3.3: the server names the type
        (b"RFB 003.889\n", b"\x01", b"RFB 003.008\n\x01\x01\x00\x00\x00\x00"),  # (Apple's: as 3.8)
    ],
)
def test_the_browser_is_offered_no_password(version, choice, answer):
    browser = Browser(version + choice)
    asyncio.run(rfb.offer_none(browser.read, browser.write))
    assert bytes(browser.sent) == answer and not browser.sends


def test_a_browser_choosing_vnc_authentication_is_refused():
    browser = Browser(b"RFB 003.008\n\x02")
    with pytest.raises(rfb.RFBError, match="security type 2"):
        asyncio.run(rfb.offer_none(browser.read, browser.write))


@pytest.mark.parametrize("version", [b"RFB 003.008\n", b"RFB 003.003\n"])
def test_a_refusal_reaches_the_browser_as_rfb_says_it(version):
    browser = Browser(version)
    with pytest.raises(rfb.RFBError):
        asyncio.run(rfb.offer_none(browser.read, browser.write, "the desktop did not answer"))
    reason = b"the desktop did not answer"
    head = b"\x00" if version.endswith(b"008\n") else b"\x00\x00\x00\x00"
    assert bytes(browser.sent) == b"RFB 003.008\n" + head + struct.pack(">I", len(reason)) + reason


def test_not_a_browser_speaking_rfb():
    browser = Browser(b"GET / HTTP/1.1\r\n")
    with pytest.raises(rfb.RFBError, match="not an RFB"):
        asyncio.run(rfb.offer_none(browser.read, browser.write))


# --- against real servers -----------------------------------------------------------------


async def _open(host: str, port: int, password: str) -> tuple[bytes, int, int, str]:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        version = await asyncio.wait_for(rfb.authenticate(reader, writer, password), 10)
        writer.write(b"\x01")  # ClientInit: shared
        await writer.drain()
        width, height = struct.unpack(">HH", await reader.readexactly(4))
        await reader.readexactly(16)  # the pixel format
        (length,) = struct.unpack(">I", await reader.readexactly(4))
        name = (await reader.readexactly(length)).decode(errors="replace")
        return version, width, height, name
    finally:
        writer.close()


def test_vnc_authentication_with_a_real_x11vnc():
    with vnc_server(geometry="800x600") as vnc:
        version, width, height, _name = asyncio.run(_open(vnc.host, vnc.port, vnc.password))
        assert version == b"RFB 003.008\n"
        assert (width, height) == (800, 600)
        # a wrong password is refused, with x11vnc's reason
        with pytest.raises(rfb.RFBError, match="refused the password"):
            asyncio.run(_open(vnc.host, vnc.port, "Wr0ngPwd"))


def test_a_server_that_is_not_vnc():
    async def run():
        async def http(reader, writer):
            writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            await writer.drain()
            writer.close()

        async def closes(reader, writer):
            writer.close()

        found = []
        for serve in (http, closes):
            server = await asyncio.start_server(serve, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            async with server:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                try:
                    await rfb.authenticate(reader, writer, "password")
                except rfb.RFBError as e:
                    found.append(str(e))
                finally:
                    writer.close()
        return found

    assert asyncio.run(run()) == [
        "not an RFB protocol version",
        "the VNC server closed the connection during the opening",
    ]
