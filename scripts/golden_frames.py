#!/usr/bin/python3
"""Builds reference baidu_std frames without percore's codec and prints them.

The frames are assembled from the .proto files by protoc's Python output and
struct.pack, so they are an independent check of percore's encoder (see
test/unit/golden_frames_test.cc) and the hex dumps of docs/PROTOCOL.md.

Needs protoc and the python3 protobuf package (Debian: protobuf-compiler,
python3-protobuf). Usage: scripts/golden_frames.py [--cpp]
  (default) xxd-like hex dumps with a breakdown of each frame
  --cpp     the frames as C++ byte arrays, for the golden test
"""

import importlib
import os
import struct
import subprocess
import sys
import tempfile

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def compile_protos(out_dir):
    """Generates the Python modules for rpc_meta.proto and echo.proto."""
    subprocess.run(
        ["protoc", "-I", REPO_ROOT, "--python_out=" + out_dir,
         "proto/rpc_meta.proto", "proto/echo.proto"],
        check=True)
    sys.path.insert(0, out_dir)
    # protoc writes proto/rpc_meta_pb2.py; make "proto" importable as a package.
    open(os.path.join(out_dir, "proto", "__init__.py"), "w").close()
    return (importlib.import_module("proto.rpc_meta_pb2"),
            importlib.import_module("proto.echo_pb2"))


def frame(meta, message_bytes, attachment):
    """Header + meta + message + attachment; the meta's attachment_size must
    already be set."""
    meta_bytes = meta.SerializeToString()
    body_size = len(meta_bytes) + len(message_bytes) + len(attachment)
    header = struct.pack(">4sII", b"PRPC", body_size, len(meta_bytes))
    return header + meta_bytes + message_bytes + attachment, len(meta_bytes)


def build_frames(rpc_meta_pb2, echo_pb2):
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

    result = []
    for name, meta, message, attachment in frames:
        data, meta_size = frame(meta, message, attachment)
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


def main():
    try:
        import google.protobuf  # noqa: F401
    except ImportError:
        sys.exit("golden_frames.py: this python3 has no protobuf package "
                 "(Debian: apt-get install python3-protobuf)")
    with tempfile.TemporaryDirectory() as out_dir:
        rpc_meta_pb2, echo_pb2 = compile_protos(out_dir)
        frames = build_frames(rpc_meta_pb2, echo_pb2)
    if sys.argv[1:] == ["--cpp"]:
        print_cpp(frames)
    elif not sys.argv[1:]:
        print_dumps(frames)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
