"""The sandbox's streaming multipart/form-data reader: any form, cut into reads anywhere
(a boundary split across two reads included), reads back as it was written; malformed
bodies are FormErrors, never a hang or a wrong part."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.sandbox.formdata import FormError, FormPart, FormReader

BOUNDARY = "----b0undary"


class Reads:
    """A body handed out in the given pieces, then b"" (the end), as a connection's reads."""

    def __init__(self, pieces: Sequence[bytes]) -> None:
        self._pieces = list(pieces)

    async def readany(self) -> bytes:
        return self._pieces.pop(0) if self._pieces else b""


def form_body(parts: Sequence[tuple[str, str | None, bytes]], preamble: bytes = b"") -> bytes:
    body = bytearray(preamble)
    for name, filename, content in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        body += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
        body += content + b"\r\n"
    body += f"--{BOUNDARY}--\r\n".encode()
    return bytes(body)


def cut(body: bytes, points: Sequence[int]) -> list[bytes]:
    marks = sorted({0, len(body), *(p % (len(body) + 1) for p in points)})
    return [body[a:b] for a, b in zip(marks, marks[1:], strict=False)]


async def read_all(reader: FormReader) -> list[tuple[FormPart, bytes]]:
    parts = []
    while (part := await reader.next_part()) is not None:
        content = bytearray()
        while chunk := await reader.read_chunk():
            content += chunk
        parts.append((part, bytes(content)))
    return parts


# Contents that look like the delimiter's beginnings, to make a boundary hard to find.
contents = st.lists(
    st.sampled_from([b"\r", b"\n", b"-", b"--", b"x", b"\r\n--", f"\r\n--{BOUNDARY[:5]}".encode()]),
    max_size=30,
).map(b"".join) | st.binary(max_size=300)


@settings(deadline=None, max_examples=300)
@given(
    parts=st.lists(
        st.tuples(st.sampled_from(["purpose", "file", "x"]), st.none() | st.just("a.md"), contents),
        max_size=4,
    ),
    preamble=st.sampled_from([b"", b"ignored preamble\r\n"]),
    points=st.lists(st.integers(min_value=0, max_value=2000), max_size=12),
)
def test_any_form_cut_anywhere_reads_back_as_written(
    parts: list[tuple[str, str | None, bytes]], preamble: bytes, points: list[int]
) -> None:
    """Parts (names, filenames, contents) come back exactly, however the body is cut."""
    body = form_body(parts, preamble)
    reader = FormReader(Reads(cut(body, points)), BOUNDARY)
    got = asyncio.run(read_all(reader))
    assert [(p.name, p.filename, c) for p, c in got] == parts


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"no boundary here at all", "holds no boundary"),
        (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=a\r\n\r\nabc".encode(),
         "ended inside a part"),
        (f"--{BOUNDARY}\r\nContent-Disposition: form-data".encode(), "inside a part's headers"),
        (f"--{BOUNDARY}\r\nContent-Type: text/plain\r\n\r\nx\r\n--{BOUNDARY}--".encode(),
         "without Content-Disposition"),
        (f"--{BOUNDARY}\r\nno colon\r\n\r\nx\r\n--{BOUNDARY}--".encode(), "has no colon"),
    ],
)  # fmt: skip
def test_a_malformed_body_is_a_form_error(body: bytes, problem: str) -> None:
    """A body without a boundary, cut short, or with a bad part header is a FormError."""
    with pytest.raises(FormError, match=problem):
        asyncio.run(read_all(FormReader(Reads([body]), BOUNDARY)))


def test_extended_filenames_and_quoted_pairs() -> None:
    """`filename*` (RFC 5987) wins over `filename`; a quoted `\\"` is a quote."""
    body = (
        f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; "
        "filename=\"resume.md\"; filename*=UTF-8''r%C3%A9sum%C3%A9.md\r\n\r\nx\r\n"
        f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; "
        'filename="say \\"hi\\"; bye.md"\r\n\r\ny\r\n'
        f"--{BOUNDARY}--\r\n"
    ).encode()
    got = asyncio.run(read_all(FormReader(Reads([body]), BOUNDARY)))
    assert [(p.filename, c) for p, c in got] == [("résumé.md", b"x"), ('say "hi"; bye.md', b"y")]
