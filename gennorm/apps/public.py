"""What the demo's server answers: files named relative to its temp folder, a full temp folder told.

Why: Gradio writes absolute file paths into everything it sends (the page, /config, /upload,
every event's files and their URLs), which showed the demo's temp folder -- and, with TMPDIR
under a home folder, the user's name -- though the page is meant to show no path of this
machine. `PublicPaths`, an ASGI middleware inside Gradio's own (so it sees bodies before they are
compressed), cuts the temp folder off every path it answers with ("<folder>/abc/x.png" ->
"abc/x.png") and reads a relative path in a request (`/file=abc/x.png`, a JSON `"path"`) as
relative to that folder again; Gradio's own checks of what may be served then run as before.

A full temp folder made an upload an HTTP 500 and an event `{"error": null}` (the demo hides
other errors' text: it could name internals). `disk_full` finds the ENOSPC behind an error, and
both the middleware (uploads) and the demo's events answer TEMP_FULL instead.
"""
from __future__ import annotations

import errno
import json
import re
from pathlib import Path
from urllib.parse import quote

TEMP_FULL = "The server's temp space is full: it cannot take uploads or store results now; try again later."
FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
# answers that may name paths: the page, JSON, event streams, plain-text errors (files and the
# frontend's scripts are passed through as they are)
TEXT_TYPES = (b"text/html", b"application/json", b"text/event-stream", b"text/plain")
_FILE_ROUTE = "/file="


def disk_full(err: BaseException | None) -> bool:
    """Whether `err`, or an error it was raised from or while handling, is a full disk or quota."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, OSError) and err.errno in FULL_ERRNOS:
            return True
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return False


def _relative(path: str) -> bool:
    return bool(path) and not path.startswith(("/", "\\")) and "://" not in path


class PublicPaths:
    """ASGI middleware: answers name files relative to `folder`; requests' relative paths are in it."""

    def __init__(self, app, folder: str | Path):
        self.app = app
        self.folder = str(Path(folder).resolve())
        # the folder as given and resolved, raw and as JSON writes it with ensure_ascii (non-ASCII names)
        forms = {str(Path(folder)), self.folder}
        forms |= {json.dumps(f)[1:-1] for f in forms}
        alternatives = b"|".join(re.escape(f.encode()) for f in sorted(forms, key=len, reverse=True))
        # the folder then "/" (cut) or the end of a path (".": the folder itself)
        self._pattern = re.compile(rb"(?:" + alternatives + rb")(/|(?![\w.+@-]))")

    def public(self, body: bytes) -> bytes:
        return self._pattern.sub(lambda m: b"" if m.group(1) else b".", body)

    def local(self, path: str) -> str:
        return f"{self.folder}/{path}" if _relative(path) else path

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        scope = self._local_route(scope)
        if _header(scope["headers"], b"content-type").startswith(b"application/json"):
            scope, receive = await self._local_body(scope, receive)
        started = False

        async def send_public(message):
            nonlocal started
            started = True
            await public_send(message)

        public_send = self._public_sender(send)
        try:
            await self.app(scope, receive, send_public)
        except Exception as err:
            if started or not disk_full(err):
                raise
            # an upload into a full temp folder (Gradio: HTTP 500 and a traceback)
            body = TEMP_FULL.encode()
            await send({"type": "http.response.start", "status": 507,
                        "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})

    def _local_route(self, scope):
        """`.../file=abc/x.png` -> `.../file=<folder>/abc/x.png`."""
        head, sep, path = scope["path"].partition(_FILE_ROUTE)
        if not sep or not _relative(path):
            return scope
        new = f"{head}{sep}{self.local(path)}"
        return {**scope, "path": new, "raw_path": quote(new).encode()}

    async def _local_body(self, scope, receive):
        """A JSON request body whose relative "path" values are made local (the rest is unchanged)."""
        chunks, more = [], True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return scope, _replay([message], receive)
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        try:
            data = json.loads(body)
        except ValueError:
            return scope, _replay([{"type": "http.request", "body": body}], receive)
        body = json.dumps(self._local_paths(data)).encode()
        headers = [(k, v) for k, v in scope["headers"] if k != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        return {**scope, "headers": headers}, _replay([{"type": "http.request", "body": body}], receive)

    def _local_paths(self, data):
        if isinstance(data, dict):
            return {k: self.local(v) if k == "path" and isinstance(v, str) else self._local_paths(v)
                    for k, v in data.items()}
        if isinstance(data, list):
            return [self._local_paths(v) for v in data]
        return data

    def _public_sender(self, send):
        """Text answers with the folder cut off: whole bodies (their length fixed), streams by message."""
        state = {"start": None, "chunks": []}

        async def sender(message):
            if message["type"] == "http.response.start":
                if not _header(message.get("headers", []), b"content-type").startswith(TEXT_TYPES):
                    state["start"] = False  # a file: passed through
                    return await send(message)
                if _header(message.get("headers", []), b"content-length"):
                    state["start"] = message  # held until the body is complete
                    return None
                state["start"] = True  # a stream (server-sent events): each message on its own
                return await send(message)
            if message["type"] != "http.response.body" or state["start"] is False:
                return await send(message)
            if state["start"] is True:
                return await send({**message, "body": self.public(message.get("body", b""))})
            state["chunks"].append(message.get("body", b""))
            if message.get("more_body", False):
                return None
            body = self.public(b"".join(state["chunks"]))
            start = state["start"]
            headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
            await send({**start, "headers": headers})
            return await send({"type": "http.response.body", "body": body})

        return sender


def _header(headers, name: bytes) -> bytes:
    return next((v.lower() for k, v in headers if k.lower() == name), b"")


def _replay(messages, receive):
    """A `receive` that hands out `messages` (the body already read), then the client's own `receive`."""
    queue = list(messages)

    async def replay():
        return queue.pop(0) if queue else await receive()

    return replay
