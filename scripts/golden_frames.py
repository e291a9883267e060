#!/usr/bin/python3
"""Builds reference baidu_std frames without percore's codec and prints them.

The frames are assembled from the .proto files by protoc's Python output and
struct.pack, so they are an independent check of percore's encoder (see
test/unit/golden_frames_test.cc) and the hex dumps of docs/PROTOCOL.md.

Needs protoc and the python3 protobuf package (Debian: protobuf-compiler,
python3-protobuf); the compressed frames need python3-snappy (the gzip and
zlib ones use Python's own gzip and zlib modules). Usage: scripts/golden_frames.py [--cpp | --seeds DIR]
  (default)    xxd-like hex dumps with a breakdown of each frame
  --cpp        the frames as C++ byte arrays, for the golden test
  --seeds DIR  the seed corpus of the server connection fuzzer
               (test/fuzz/seeds): streams built from these frames and the
               test service's requests, each file a split byte then bytes
"""

import gzip
import importlib
import os
import struct
import subprocess
import sys
import tempfile
import zlib

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def compile_protos(out_dir):
    """Generates the Python modules for rpc_meta.proto, streaming_rpc_meta.proto,
    echo.proto and the test service."""
    subprocess.run(
        ["protoc", "-I", REPO_ROOT, "--python_out=" + out_dir,
         "percore/proto/rpc_meta.proto", "percore/proto/streaming_rpc_meta.proto",
         "percore/proto/echo.proto", "test/proto/test_service.proto"],
        check=True)
    sys.path.insert(0, out_dir)
    # protoc writes percore/proto/rpc_meta_pb2.py; make the folders importable packages.
    open(os.path.join(out_dir, "percore", "__init__.py"), "w").close()
    open(os.path.join(out_dir, "percore", "proto", "__init__.py"), "w").close()
    open(os.path.join(out_dir, "test", "__init__.py"), "w").close()
    open(os.path.join(out_dir, "test", "proto", "__init__.py"), "w").close()
    return (importlib.import_module("percore.proto.rpc_meta_pb2"),
            importlib.import_module("percore.proto.streaming_rpc_meta_pb2"),
            importlib.import_module("percore.proto.echo_pb2"),
            importlib.import_module("test.proto.test_service_pb2"))


def frame(meta, message_bytes, attachment, magic=b"PRPC"):
    """Header + meta + message + attachment; the meta's attachment_size must
    already be set. With magic STRM, a stream frame: the message is its data."""
    meta_bytes = meta.SerializeToString()
    body_size = len(meta_bytes) + len(message_bytes) + len(attachment)
    header = struct.pack(">4sII", magic, body_size, len(meta_bytes))
    return header + meta_bytes + message_bytes + attachment, len(meta_bytes)


def build_stream_frames(rpc_meta_pb2, streaming_pb2, echo_pb2):
    """A request opening a stream, then the four stream frames, each as brpc's
    src/brpc/policy/streaming_rpc_protocol.cpp and stream.cpp fill them."""
    frames = []

    # example.EchoService.Echo("hello") opening the client's stream 1, which
    # limits its writes (need_feedback) and has a handler (writable).
    meta = rpc_meta_pb2.RpcMeta()
    meta.request.service_name = "example.EchoService"
    meta.request.method_name = "Echo"
    meta.correlation_id = 4
    meta.stream_settings.stream_id = 1
    meta.stream_settings.need_feedback = True
    meta.stream_settings.writable = True
    message = echo_pb2.EchoRequest(message="hello").SerializeToString()
    frames.append(("stream_request", meta, message, b"", b"PRPC"))

    # DATA "hello" to the receiver's stream 2 from the sender's stream 1;
    # brpc sets has_continuation even when false.
    meta = streaming_pb2.StreamFrameMeta()
    meta.stream_id = 2
    meta.source_stream_id = 1
    meta.frame_type = streaming_pb2.FRAME_TYPE_DATA
    meta.has_continuation = False
    frames.append(("stream_data", meta, b"hello", b"", b"STRM"))

    # FEEDBACK from stream 2 to stream 1: 5 bytes consumed so far.
    meta = streaming_pb2.StreamFrameMeta()
    meta.stream_id = 1
    meta.source_stream_id = 2
    meta.frame_type = streaming_pb2.FRAME_TYPE_FEEDBACK
    meta.feedback.consumed_size = 5
    frames.append(("stream_feedback", meta, b"", b"", b"STRM"))

    # CLOSE from stream 1 to stream 2.
    meta = streaming_pb2.StreamFrameMeta()
    meta.stream_id = 2
    meta.source_stream_id = 1
    meta.frame_type = streaming_pb2.FRAME_TYPE_CLOSE
    frames.append(("stream_close", meta, b"", b"", b"STRM"))

    # RST to stream 1 (no source: an RST is never answered).
    meta = streaming_pb2.StreamFrameMeta()
    meta.stream_id = 1
    meta.frame_type = streaming_pb2.FRAME_TYPE_RST
    frames.append(("stream_rst", meta, b"", b"", b"STRM"))
    return frames


def build_frames(rpc_meta_pb2, streaming_pb2, echo_pb2):
    frames = []

    # A request: example.EchoService.Echo("hello") with attachment "ATTACH".
    meta = rpc_meta_pb2.RpcMeta()
    meta.request.service_name = "example.EchoService"
    meta.request.method_name = "Echo"
    meta.request.log_id = 42
    meta.request.timeout_ms = 500
    meta.correlation_id = 1
    attachment = b"ATTACH"
    meta.attachment_size = len(attachment)
    message = echo_pb2.EchoRequest(message="hello").SerializeToString()
    frames.append(("request", meta, message, attachment))

    # Its response: an empty but present RpcResponseMeta means success
    # (error_code 0), as brpc's server writes it (mutable_response()).
    meta = rpc_meta_pb2.RpcMeta()
    meta.response.SetInParent()
    meta.correlation_id = 1
    meta.attachment_size = len(attachment)
    message = echo_pb2.EchoResponse(message="hello").SerializeToString()
    frames.append(("response", meta, message, attachment))

    # An error response: no message, no attachment.
    meta = rpc_meta_pb2.RpcMeta()
    meta.response.error_code = 1002
    meta.response.error_text = "no such method: example.EchoService.Nope"
    meta.correlation_id = 2
    frames.append(("error_response", meta, b"", b""))

    # Compressed frames (compress_type 1 snappy, 2 gzip, 3 zlib): the message
    # alone is compressed, never the meta or the attachment, in brpc's formats
    # (raw snappy, RFC 1952 gzip, RFC 1950 zlib), at zlib's default level 6.
    # gzip with mtime 0, so that the bytes do not depend on the clock.
    try:
        import snappy
    except ImportError:
        sys.exit("golden_frames.py: this python3 has no snappy module "
                 "(Debian: apt-get install python3-snappy)")
    compressors = [
        ("snappy", 1, snappy.compress),
        ("gzip", 2, lambda data: gzip.compress(data, compresslevel=6, mtime=0)),
        ("zlib", 3, lambda data: zlib.compress(data, 6)),
    ]
    text = "hello " * 8
    for type_name, compress_type, compress in compressors:
        meta = rpc_meta_pb2.RpcMeta()
        meta.request.service_name = "example.EchoService"
        meta.request.method_name = "Echo"
        meta.compress_type = compress_type
        meta.correlation_id = 3
        meta.attachment_size = len(attachment)
        message = compress(echo_pb2.EchoRequest(message=text).SerializeToString())
        frames.append(("request_" + type_name, meta, message, attachment))
    for type_name, compress_type, compress in compressors:
        meta = rpc_meta_pb2.RpcMeta()
        meta.response.SetInParent()
        meta.compress_type = compress_type
        meta.correlation_id = 3
        message = compress(echo_pb2.EchoResponse(message=text).SerializeToString())
        frames.append(("response_" + type_name, meta, message, b""))

    frames = [entry + (b"PRPC",) for entry in frames]
    frames += build_stream_frames(rpc_meta_pb2, streaming_pb2, echo_pb2)
    result = []
    for name, meta, message, attachment, magic in frames:
        data, meta_size = frame(meta, message, attachment, magic)
        result.append((name, meta, message, attachment, data, meta_size))
    return result


def hex_dump(data):
    """xxd-like: offset, 16 bytes in hex (grouped by two), ASCII."""
    lines = []
    for offset in range(0, len(data), 16):
        row = data[offset:offset + 16]
        hex_part = " ".join(row[i:i + 2].hex() for i in range(0, len(row), 2))
        ascii_part = "".join(chr(b) if 0x20 <= b < 0x7f else "." for b in row)
        lines.append("%08x: %-39s  %s" % (offset, hex_part, ascii_part))
    return "\n".join(lines)


def print_dumps(frames):
    for name, meta, message, attachment, data, meta_size in frames:
        if data.startswith(b"STRM"):
            print("== %s: %d bytes (header 12, meta %d, data %d)"
                  % (name, len(data), meta_size, len(message)))
        else:
            print("== %s: %d bytes (header 12, meta %d, message %d, attachment %d)"
                  % (name, len(data), meta_size, len(message), len(attachment)))
        print("meta: " + str(meta).replace("\n", " ").strip())
        print(hex_dump(data))
        print()


def print_cpp(frames):
    for name, _, _, _, data, _ in frames:
        print("constexpr unsigned char kGolden%s[] = {"
              % "".join(part.capitalize() for part in name.split("_")))
        # 16 a line, as clang-format lays them out in the test.
        for offset in range(0, len(data), 16):
            row = data[offset:offset + 16]
            print("    " + " ".join("0x%02x," % b for b in row))
        print("};")
        print()


def request(rpc_meta_pb2, service, method, correlation_id, message, attachment=b"",
            compress_type=0, timeout_ms=0):
    meta = rpc_meta_pb2.RpcMeta()
    meta.request.service_name = service
    meta.request.method_name = method
    meta.correlation_id = correlation_id
    if timeout_ms:
        meta.request.timeout_ms = timeout_ms
    if compress_type:
        meta.compress_type = compress_type
    if attachment:
        meta.attachment_size = len(attachment)
    return frame(meta, message, attachment)[0]


def write_seeds(directory, rpc_meta_pb2, echo_pb2, test_pb2, frames):
    """Writes the fuzzer's seed corpus: byte 0 picks the split, then bytes."""
    golden = {name: data for name, _, _, _, data, _ in frames}

    def echo(correlation_id, text, attachment=b""):
        return request(rpc_meta_pb2, "example.EchoService", "Echo", correlation_id,
                       echo_pb2.EchoRequest(message=text).SerializeToString(), attachment)

    def sleep(correlation_id, milliseconds):
        return request(rpc_meta_pb2, "percore.test.TestService", "Sleep", correlation_id,
                       test_pb2.SleepRequest(milliseconds=milliseconds,
                                             tag=correlation_id).SerializeToString())

    seeds = {
        "golden_request": (0, golden["request"]),
        "golden_request_in_small_pieces": (3, golden["request"]),
        "pipelined_echoes": (17, echo(1, "a") + echo(2, "b") + echo(3, "c")),
        "request_then_response_frame": (5, golden["request"] + golden["response"]),
        "request_then_error_response": (0, golden["request"] + golden["error_response"]),
        "worker_pool_past_the_inflight_limit": (0, b"".join(sleep(i, 1) for i in range(6))),
        "fail_and_whoami": (9, request(rpc_meta_pb2, "percore.test.TestService", "Fail", 7,
                                       test_pb2.FailRequest(code=1004, text="no").SerializeToString())
                            + request(rpc_meta_pb2, "percore.test.TestService", "WhoAmI", 8, b"")),
        "unknown_service_method_and_compression": (
            0, request(rpc_meta_pb2, "no.Such", "Echo", 1, b"")
            + request(rpc_meta_pb2, "example.EchoService", "Nope", 2, b"")
            + request(rpc_meta_pb2, "example.EchoService", "Echo", 3,
                      echo_pb2.EchoRequest(message="z").SerializeToString(), compress_type=1)),
        "request_then_http": (0, golden["request"] + b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
        "expired_deadline": (0, request(rpc_meta_pb2, "percore.test.TestService", "Sleep", 4,
                                        test_pb2.SleepRequest(milliseconds=2).SerializeToString(),
                                        timeout_ms=1) + sleep(5, 2)),
        # Answers past the fuzzer server's 8 KiB unwritten-bytes limit.
        "backpressure": (0, b"".join(echo(i, "x", b"y" * 3000) for i in range(5))),
        "oversized_header": (0, echo(1, "before") + struct.pack(">4sII", b"PRPC", 1 << 20, 4)),
        # Worker-pool answers far larger than their requests.
        "bulk_answers": (0, b"".join(
            request(rpc_meta_pb2, "percore.test.TestService", "Bulk", i,
                    test_pb2.BulkRequest(bytes=6000).SerializeToString()) for i in range(4))),
        "half_a_frame": (0, echo(1, "whole") + echo(2, "cut")[:20]),
    }
    os.makedirs(directory, exist_ok=True)
    for name, (split, data) in seeds.items():
        with open(os.path.join(directory, name), "wb") as out:
            out.write(bytes([split]) + data)


def main():
    try:
        import google.protobuf  # noqa: F401
    except ImportError:
        sys.exit("golden_frames.py: this python3 has no protobuf package "
                 "(Debian: apt-get install python3-protobuf)")
    with tempfile.TemporaryDirectory() as out_dir:
        rpc_meta_pb2, streaming_pb2, echo_pb2, test_pb2 = compile_protos(out_dir)
        frames = build_frames(rpc_meta_pb2, streaming_pb2, echo_pb2)
        if len(sys.argv) == 3 and sys.argv[1] == "--seeds":
            write_seeds(sys.argv[2], rpc_meta_pb2, echo_pb2, test_pb2, frames)
            return
    if sys.argv[1:] == ["--cpp"]:
        print_cpp(frames)
    elif not sys.argv[1:]:
        print_dumps(frames)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
