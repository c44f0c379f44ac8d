"""The jq sandbox's child process: `python -m reconciler.jq_worker MEMORY_BYTES MAX_OUTPUT_BYTES CPU_S`.

Started and owned by `reconciler.jq_sandbox.JqSandbox`, never by hand. It caps its own address space
(RLIMIT_AS) and CPU time, then answers requests on its pipes until stdin reaches EOF (its parent closed it
or died). Each request runs through `reconciler.core.rendering.IN_PROCESS`, so programs compile exactly as
they do in-process and stay cached here between passes.

Wire format, both ways: a 4-byte big-endian length, then that many bytes of UTF-8 JSON.
    child -> parent, once   {"ready": true}
    parent -> child         {"program": str, "args"?: str}    "args" only when they change; kept until then
    child -> parent         {"outputs": [...]} | {"jq": message, "compile": bool} | {"limit": kind}
                            | {"failed": exception class name}
    parent -> child         {"batch": str, "count": int, "args"?: str}   a `batch_program` of `count`
                            templates, for `InProcessJq.run_batch`
    child -> parent         {"batch": [[text, ...] | null, ...]}   null: run that one alone (also
                            where its output passes the output cap) | {"batch": null}: it does not
                            compile | a limit or failure as above
`kind` is "memory" (the child exits right after), "depth" or "output". The parent words the messages.
"""

from __future__ import annotations

import json
import os
import resource
import sys
from typing import Any, BinaryIO

from reconciler.core.rendering import IN_PROCESS, JqError

HEADER_BYTES = 4
# Exit status of a child whose MemoryError struck too deep to answer; the parent reads it as the memory cap.
EXIT_OUT_OF_MEMORY = 3
_USAGE = "usage: python -m reconciler.jq_worker MEMORY_BYTES MAX_OUTPUT_BYTES CPU_SECONDS"


def frame(message: dict[str, Any]) -> bytes:
    body = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return len(body).to_bytes(HEADER_BYTES, "big") + body


# Encoded at import time: once the address space is exhausted, encoding the answer could fail too.
_OUT_OF_MEMORY = frame({"limit": "memory"})
_TOO_DEEP = frame({"limit": "depth"})
_TOO_LARGE = frame({"limit": "output"})


def _address_space_bytes() -> int:
    """What this process maps already (VmSize): the cap is on top of it, so it measures the template."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[0]) * resource.getpagesize()
    except (OSError, ValueError, IndexError):
        return 0


def _apply_limits(*, memory_bytes: int) -> None:
    # A core dump of this process would hold every secret it was sent; jq's out-of-memory abort makes one.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    limit = _address_space_bytes() + memory_bytes
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _arm_cpu_backstop(*, seconds: int) -> None:
    """Move the CPU limit to `seconds` past what this process has used so far.

    The parent's deadline normally kills a runaway program long before; this backstop ends one whose
    parent died mid-run (nobody left to kill it, and it never reads the EOF). It is re-armed per request
    because the limit counts the lifetime CPU time of a child that serves passes for days."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = int(usage.ru_utime + usage.ru_stime) + 1
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = used + seconds
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _claim_pipes() -> tuple[BinaryIO, BinaryIO]:
    """The protocol's streams; fd 1 then points at /dev/null so nothing else can write into the protocol."""
    out = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    return sys.stdin.buffer, out


def _read_frame(stream: BinaryIO) -> dict[str, Any] | None:
    header = stream.read(HEADER_BYTES)
    if len(header) < HEADER_BYTES:
        return None
    size = int.from_bytes(header, "big")
    body = stream.read(size)
    if len(body) < size:
        return None
    message: dict[str, Any] = json.loads(body)
    return message


def _text_bytes(value: Any) -> int:
    """The size of the outputs as texts: the wrapped programs yield lists of JSON texts."""
    if isinstance(value, str):
        return len(value) if value.isascii() else len(value.encode("utf-8"))
    if isinstance(value, list):
        return sum(_text_bytes(item) for item in value)
    return len(json.dumps(value))


def _answer(program: str, args_json: str, *, max_output_bytes: int) -> bytes:
    try:
        outputs = IN_PROCESS.run(program, args_json)
    except JqError as exc:
        return frame({"jq": str(exc), "compile": exc.compile})
    if _text_bytes(outputs) > max_output_bytes:
        return _TOO_LARGE
    return frame({"outputs": outputs})


def _answer_batch(program: str, count: int, args_json: str, *, max_output_bytes: int) -> bytes:
    results = IN_PROCESS.run_batch(program, count, args_json)
    if results is None:
        return frame({"batch": None})
    return frame({"batch": [r if r is None or _text_bytes(r) <= max_output_bytes else None for r in results]})


def serve(requests: BinaryIO, answers: BinaryIO, *, max_output_bytes: int, cpu_seconds: int) -> int:
    args_json = "{}"
    answers.write(frame({"ready": True}))
    answers.flush()
    while (request := _read_frame(requests)) is not None:
        args_json = request.get("args", args_json)
        _arm_cpu_backstop(seconds=cpu_seconds)
        try:
            if "batch" in request:
                reply = _answer_batch(
                    request["batch"], request["count"], args_json, max_output_bytes=max_output_bytes
                )
            else:
                reply = _answer(request["program"], args_json, max_output_bytes=max_output_bytes)
        except MemoryError:
            # Whatever libjq or the interpreter half-built is suspect: answer, then make way for a fresh child.
            answers.write(_OUT_OF_MEMORY)
            answers.flush()
            return EXIT_OUT_OF_MEMORY
        except RecursionError:
            reply = _TOO_DEEP
        except Exception as exc:  # e.g. a lone surrogate libjq cannot take: report it, keep serving
            reply = frame({"failed": type(exc).__name__})
        answers.write(reply)
        answers.flush()
    return 0


def main(argv: list[str]) -> int:
    try:
        memory_bytes, max_output_bytes, cpu_seconds = (int(arg) for arg in argv)
    except ValueError:
        print(_USAGE, file=sys.stderr)
        return 2
    requests, answers = _claim_pipes()
    _apply_limits(memory_bytes=memory_bytes)
    try:
        return serve(requests, answers, max_output_bytes=max_output_bytes, cpu_seconds=cpu_seconds)
    except BrokenPipeError:  # the parent is gone: nobody is left to answer
        return 0
    except MemoryError:
        return EXIT_OUT_OF_MEMORY


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
