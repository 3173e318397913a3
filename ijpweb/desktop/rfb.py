"""The RFB (VNC) protocol's opening, as the desktop proxy speaks it (RFC 6143).

Toward the job's VNC server the proxy is the client: it answers the server's VNC
authentication (a DES encryption of the server's challenge with the session's password)
itself. Toward the browser (noVNC) it is the server and offers security type None: the
VNC password never leaves the portal. After both openings the proxy only copies bytes.

Pure: the standard library only (DES is written out here: VNC authentication needs two
blocks of it per connection, and no cryptography package is a dependency).
"""

from __future__ import annotations

import asyncio
import struct

# --- DES (FIPS 46-3), encryption only -------------------------------------------------------

_IP = (58, 50, 42, 34, 26, 18, 10, 2, 60, 52, 44, 36, 28, 20, 12, 4, 62, 54, 46, 38, 30, 22, 14, 6,
       64, 56, 48, 40, 32, 24, 16, 8, 57, 49, 41, 33, 25, 17, 9, 1, 59, 51, 43, 35, 27, 19, 11, 3,
       61, 53, 45, 37, 29, 21, 13, 5, 63, 55, 47, 39, 31, 23, 15, 7)  # fmt: skip
_FP = (40, 8, 48, 16, 56, 24, 64, 32, 39, 7, 47, 15, 55, 23, 63, 31, 38, 6, 46, 14, 54, 22, 62, 30,
       37, 5, 45, 13, 53, 21, 61, 29, 36, 4, 44, 12, 52, 20, 60, 28, 35, 3, 43, 11, 51, 19, 59, 27,
       34, 2, 42, 10, 50, 18, 58, 26, 33, 1, 41, 9, 49, 17, 57, 25)  # fmt: skip
_E = (32, 1, 2, 3, 4, 5, 4, 5, 6, 7, 8, 9, 8, 9, 10, 11, 12, 13, 12, 13, 14, 15, 16, 17,
      16, 17, 18, 19, 20, 21, 20, 21, 22, 23, 24, 25, 24, 25, 26, 27, 28, 29, 28, 29, 30, 31, 32, 1)  # fmt: skip
_P = (16, 7, 20, 21, 29, 12, 28, 17, 1, 15, 23, 26, 5, 18, 31, 10,
      2, 8, 24, 14, 32, 27, 3, 9, 19, 13, 30, 6, 22, 11, 4, 25)  # fmt: skip
_PC1 = (57, 49, 41, 33, 25, 17, 9, 1, 58, 50, 42, 34, 26, 18, 10, 2, 59, 51, 43, 35, 27, 19, 11, 3,
        60, 52, 44, 36, 63, 55, 47, 39, 31, 23, 15, 7, 62, 54, 46, 38, 30, 22, 14, 6,
        61, 53, 45, 37, 29, 21, 13, 5, 28, 20, 12, 4)  # fmt: skip
_PC2 = (14, 17, 11, 24, 1, 5, 3, 28, 15, 6, 21, 10, 23, 19, 12, 4, 26, 8, 16, 7, 27, 20, 13, 2,
        41, 52, 31, 37, 47, 55, 30, 40, 51, 45, 33, 48, 44, 49, 39, 56, 34, 53, 46, 42, 50, 36, 29, 32)  # fmt: skip
_SHIFTS = (1, 1, 2, 2, 2, 2, 2, 2, 1, 2, 2, 2, 2, 2, 2, 1)
_S = (
    (14, 4, 13, 1, 2, 15, 11, 8, 3, 10, 6, 12, 5, 9, 0, 7, 0, 15, 7, 4, 14, 2, 13, 1, 10, 6, 12, 11, 9, 5, 3, 8,
     4, 1, 14, 8, 13, 6, 2, 11, 15, 12, 9, 7, 3, 10, 5, 0, 15, 12, 8, 2, 4, 9, 1, 7, 5, 11, 3, 14, 10, 0, 6, 13),
    (15, 1, 8, 14, 6, 11, 3, 4, 9, 7, 2, 13, 12, 0, 5, 10, 3, 13, 4, 7, 15, 2, 8, 14, 12, 0, 1, 10, 6, 9, 11, 5,
     0, 14, 7, 11, 10, 4, 13, 1, 5, 8, 12, 6, 9, 3, 2, 15, 13, 8, 10, 1, 3, 15, 4, 2, 11, 6, 7, 12, 0, 5, 14, 9),
    (10, 0, 9, 14, 6, 3, 15, 5, 1, 13, 12, 7, 11, 4, 2, 8, 13, 7, 0, 9, 3, 4, 6, 10, 2, 8, 5, 14, 12, 11, 15, 1,
     13, 6, 4, 9, 8, 15, 3, 0, 11, 1, 2, 12, 5, 10, 14, 7, 1, 10, 13, 0, 6, 9, 8, 7, 4, 15, 14, 3, 11, 5, 2, 12),
    (7, 13, 14, 3, 0, 6, 9, 10, 1, 2, 8, 5, 11, 12, 4, 15, 13, 8, 11, 5, 6, 15, 0, 3, 4, 7, 2, 12, 1, 10, 14, 9,
     10, 6, 9, 0, 12, 11, 7, 13, 15, 1, 3, 14, 5, 2, 8, 4, 3, 15, 0, 6, 10, 1, 13, 8, 9, 4, 5, 11, 12, 7, 2, 14),
    (2, 12, 4, 1, 7, 10, 11, 6, 8, 5, 3, 15, 13, 0, 14, 9, 14, 11, 2, 12, 4, 7, 13, 1, 5, 0, 15, 10, 3, 9, 8, 6,
     4, 2, 1, 11, 10, 13, 7, 8, 15, 9, 12, 5, 6, 3, 0, 14, 11, 8, 12, 7, 1, 14, 2, 13, 6, 15, 0, 9, 10, 4, 5, 3),
    (12, 1, 10, 15, 9, 2, 6, 8, 0, 13, 3, 4, 14, 7, 5, 11, 10, 15, 4, 2, 7, 12, 9, 5, 6, 1, 13, 14, 0, 11, 3, 8,
     9, 14, 15, 5, 2, 8, 12, 3, 7, 0, 4, 10, 1, 13, 11, 6, 4, 3, 2, 12, 9, 5, 15, 10, 11, 14, 1, 7, 6, 0, 8, 13),
    (4, 11, 2, 14, 15, 0, 8, 13, 3, 12, 9, 7, 5, 10, 6, 1, 13, 0, 11, 7, 4, 9, 1, 10, 14, 3, 5, 12, 2, 15, 8, 6,
     1, 4, 11, 13, 12, 3, 7, 14, 10, 15, 6, 8, 0, 5, 9, 2, 6, 11, 13, 8, 1, 4, 10, 7, 9, 5, 0, 15, 14, 2, 3, 12),
    (13, 2, 8, 4, 6, 15, 11, 1, 10, 9, 3, 14, 5, 0, 12, 7, 1, 15, 13, 8, 10, 3, 7, 4, 12, 5, 6, 11, 0, 14, 9, 2,
     7, 11, 4, 1, 9, 12, 14, 2, 0, 6, 10, 13, 15, 3, 5, 8, 2, 1, 14, 7, 4, 10, 8, 13, 15, 12, 9, 0, 3, 5, 6, 11),
)  # fmt: skip


def _permute(value: int, table: tuple[int, ...], width: int) -> int:
    """The bits of ``value`` (``width`` bits, bit 1 the most significant) in ``table``'s order."""
    out = 0
    for position in table:
        out = (out << 1) | ((value >> (width - position)) & 1)
    return out


def _subkeys(key: bytes) -> list[int]:
    cd = _permute(int.from_bytes(key, "big"), _PC1, 64)
    c, d = cd >> 28, cd & 0xFFFFFFF
    keys = []
    for shift in _SHIFTS:
        c = ((c << shift) | (c >> (28 - shift))) & 0xFFFFFFF
        d = ((d << shift) | (d >> (28 - shift))) & 0xFFFFFFF
        keys.append(_permute((c << 28) | d, _PC2, 56))
    return keys


def _f(r: int, k: int) -> int:
    x = _permute(r, _E, 32) ^ k
    out = 0
    for i in range(8):
        six = (x >> (42 - 6 * i)) & 0x3F
        row = ((six >> 4) & 2) | (six & 1)
        out = (out << 4) | _S[i][row * 16 + ((six >> 1) & 0xF)]
    return _permute(out, _P, 32)


def des_encrypt_block(key: bytes, block: bytes) -> bytes:
    """DES encryption of one 8-byte block with an 8-byte key (parity bits ignored)."""
    if len(key) != 8 or len(block) != 8:
        raise ValueError("DES takes an 8-byte key and 8-byte blocks")
    lr = _permute(int.from_bytes(block, "big"), _IP, 64)
    left, right = lr >> 32, lr & 0xFFFFFFFF
    for k in _subkeys(key):
        left, right = right, left ^ _f(right, k)
    return _permute((right << 32) | left, _FP, 64).to_bytes(8, "big")


def _mirror(byte: int) -> int:
    return int(f"{byte:08b}"[::-1], 2)


def vnc_response(password: str, challenge: bytes) -> bytes:
    """The answer to a VNC authentication challenge (16 bytes): the challenge encrypted with
    DES, ECB, under the password's first 8 bytes (NUL-padded), each byte's bits reversed (as
    every VNC implementation has it)."""
    if len(challenge) != 16:
        raise ValueError("a VNC challenge is 16 bytes")
    raw = password.encode("latin-1", "replace")[:8].ljust(8, b"\0")
    key = bytes(_mirror(b) for b in raw)
    return des_encrypt_block(key, challenge[:8]) + des_encrypt_block(key, challenge[8:])


# --- the openings ---------------------------------------------------------------------------

VERSION_38 = b"RFB 003.008\n"
SECURITY_NONE = 1
SECURITY_VNC = 2
MAX_REASON = 4096  # bytes of a server's failure reason that are read


class RFBError(Exception):
    """The VNC server (or the browser) did not speak RFB as expected; the message says how,
    in words a log may hold (never a password)."""


def parse_version(line: bytes) -> tuple[int, int]:
    """``RFB 003.008\\n`` -> (3, 8); RFBError for anything else."""
    if len(line) != 12 or not line.startswith(b"RFB ") or line[7:8] != b"." or line[11:12] != b"\n":
        raise RFBError("not an RFB protocol version")
    major, minor = line[4:7], line[8:11]
    if not (major.isdigit() and minor.isdigit()):
        raise RFBError("not an RFB protocol version")
    return int(major), int(minor)


async def _reason(read) -> str:
    (length,) = struct.unpack(">I", await read(4))
    text = await read(min(length, MAX_REASON))
    return text.decode("utf-8", "replace").strip()[:200]


async def authenticate(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, password: str) -> bytes:
    """The client's side of the opening with a job's VNC server: the version (3.8, or 3.7
    or 3.3 if the server speaks no newer), VNC authentication with ``password``, and its
    SecurityResult. Returns the version line the server was answered with. RFBError saying
    what failed."""

    async def read(n: int) -> bytes:
        try:
            return await reader.readexactly(n)
        except asyncio.IncompleteReadError:
            raise RFBError("the VNC server closed the connection during the opening") from None

    major, minor = parse_version(await read(12))
    if major != 3 or minor < 3:
        raise RFBError(f"the VNC server speaks RFB {major}.{minor}, which the proxy does not")
    minor = 8 if minor >= 8 else 7 if minor >= 7 else 3
    version = b"RFB 003.%03d\n" % minor
    writer.write(version)
    await writer.drain()
    if minor == 3:
        (kind,) = struct.unpack(">I", await read(4))
        if kind == 0:
            raise RFBError(f"the VNC server refused the connection: {await _reason(read)}")
        if kind != SECURITY_VNC:
            raise RFBError(f"the VNC server asks for security type {kind}, not VNC authentication")
    else:
        (n,) = await read(1)
        if n == 0:
            raise RFBError(f"the VNC server refused the connection: {await _reason(read)}")
        kinds = await read(n)
        if SECURITY_VNC not in kinds:
            raise RFBError(f"the VNC server offers no VNC authentication (security types {list(kinds)})")
        writer.write(bytes([SECURITY_VNC]))
    challenge = await read(16)
    writer.write(vnc_response(password, challenge))
    await writer.drain()
    (result,) = struct.unpack(">I", await read(4))
    if result != 0:
        why = await _reason(read) if minor >= 8 else ""
        raise RFBError("the VNC server refused the password" + (f": {why}" if why else ""))
    return version


async def offer_none(read, write, refusal: str | None = None) -> None:
    """The server's side of the opening with the browser: version 3.8 (or what the browser
    answers, 3.3 to 3.8), security type None, SecurityResult OK. With ``refusal``: no
    security type but that reason (the browser shows it), then RFBError. ``read(n)``
    returns exactly n bytes; ``write(data)`` sends."""
    await write(VERSION_38)
    major, minor = parse_version(await read(12))
    if major != 3 or minor < 3:
        raise RFBError(f"the browser speaks RFB {major}.{minor}")
    reason = (refusal or "").encode()[:MAX_REASON]
    if minor < 7:
        if refusal is not None:
            await write(struct.pack(">I", 0) + struct.pack(">I", len(reason)) + reason)
            raise RFBError("refused")
        await write(struct.pack(">I", SECURITY_NONE))
        return
    if refusal is not None:
        await write(b"\0" + struct.pack(">I", len(reason)) + reason)
        raise RFBError("refused")
    await write(bytes([1, SECURITY_NONE]))
    (chosen,) = await read(1)
    if chosen != SECURITY_NONE:
        raise RFBError(f"the browser chose security type {chosen}, not None")
    if minor >= 8:
        await write(struct.pack(">I", 0))
