"""Schemathesis hooks for `.ci/schemathesis` (loaded by `hooks` in `.ci/schemathesis.toml`).

1. Upload bodies are audio. Every raw-bytes body in the document is a recording's bytes (or the
   first bytes of a resumable upload), and the server decides what a file is from its first
   bytes: the document says so (`contentMediaType: audio/*`), but a JSON Schema cannot make a
   generator write a WAV header. So the raw-bytes media types, and the multipart `file` part
   (`audio/*`), are generated as WAV files: a valid header (mono or stereo, 8 or 16 bits, a
   common sample rate) around random samples. Bytes that are not audio are the server's 415,
   which generated (positive) data then never meets.
2. `draft_aware_response_conformance`: `content_type_conformance` and
   `response_schema_conformance` for the two operations where the IETF draft answers an
   incomplete upload with 201 and no body, while the same status carries a Recording otherwise
   (OpenAPI tells responses apart by status only). The toml switches the two built-in checks off
   for those operations; this check runs them on every answer there except that one kind
   (status 201, `Upload-Complete: ?0`, no body), whose headers are still checked.
"""

import struct

import schemathesis
from hypothesis import strategies as st
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance


@st.composite
def wav_files(draw):
    channels = draw(st.sampled_from([1, 2]))
    bits = draw(st.sampled_from([8, 16]))
    rate = draw(st.sampled_from([8000, 16000, 22050, 44100, 48000]))
    block = channels * bits // 8
    frames = draw(st.integers(min_value=1, max_value=2048))
    samples = draw(st.binary(min_size=frames * block, max_size=frames * block))
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * block, block, bits)
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(samples)) + samples
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


# Raw bodies: one-shot uploads (and the original app's), tus creation and appends, draft appends;
# `audio/*` names the multipart `file` part's type.
schemathesis.openapi.media_type(
    "audio/wav",
    wav_files(),
    aliases=["application/octet-stream", "application/offset+octet-stream", "application/partial-upload"],
)

# Operations whose 201 is either a Recording or (the draft, upload still incomplete) empty.
DRAFT_OPERATIONS = {"POST /api/v1/recordings", "PATCH /api/v1/uploads/{id}"}


@schemathesis.check
def draft_aware_response_conformance(ctx, response, case):
    if case.operation.label not in DRAFT_OPERATIONS:
        return None
    incomplete = response.headers.get("upload-complete") == ["?0"]
    if response.status_code == 201 and incomplete and not response.content:
        return None
    content_type_conformance(ctx, response, case)
    return response_schema_conformance(ctx, response, case)
