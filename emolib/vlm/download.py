"""Resumable, verified downloads over HTTP, for the weights ``emolib.vlm.weights`` lists.

A flaky connection costs only the bytes in flight. A file is written to ``<blob>.incomplete``
as it arrives and continued with an HTTP Range request: after a dropped connection inside the
call (a TCP reset, a timeout, a 5xx; wait ``BACKOFF_S * 2**k`` up to ``BACKOFF_MAX_S``, where
``k`` counts attempts without a new byte, and give up after ``RETRIES`` of them), and in a
later call or process (the partial file stays on disk; an orphaned ``<etag>.<id>.incomplete``
that a killed huggingface_hub download left is adopted, the others removed). A finished file
is checked against its size and hash (``sha256``: a full hash or the prefix a file name
carries; ``git_sha1``: the git blob id of a small hub file) before it is moved into place. A
partial file that turns out bad is dropped and downloaded once more from zero.

HF_TOKEN is sent to the hub endpoint only (httpx drops it on a redirect to another host) and
never appears in a message.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from filelock import FileLock
from huggingface_hub import constants, get_token
from tqdm.auto import tqdm

RETRY_STATUS = (408, 429, 500, 502, 503, 504)
RETRIES = 8
BACKOFF_S = 1.0
BACKOFF_MAX_S = 60.0
CHUNK = 1 << 20


class FetchError(RuntimeError):
    """A weight that could not be fetched; the message names it and says why."""


class Offline(FetchError):
    """The server could not be reached at all (no network, DNS, refused)."""


@dataclass(frozen=True)
class RemoteFile:
    """One file to download: ``blob`` is its final place, ``link`` its snapshot entry (hub)."""

    name: str
    url: str
    size: int | None
    blob: Path
    lock: Path
    link: Path | None = None
    commit: str | None = None
    sha256: str | None = None
    git_sha1: str | None = None

    @property
    def partial(self) -> Path:
        return self.blob.with_name(self.blob.name + ".incomplete")


class Hub:
    """One HTTP client for fetching; the HF_TOKEN header goes to the hub endpoint only."""

    def __init__(self, retries: int = RETRIES, backoff_s: float = BACKOFF_S, progress: bool = True) -> None:
        self.endpoint = constants.ENDPOINT.rstrip("/")
        self.retries, self.backoff_s, self.progress = retries, backoff_s, progress
        self.client = httpx.Client(follow_redirects=True, timeout=httpx.Timeout(60.0, connect=10.0))
        self.unreachable: set[str] = set()

    def headers(self, url: str) -> dict[str, str]:
        token = get_token() if url.startswith(self.endpoint + "/") else None
        return {"user-agent": "emolib", "accept-encoding": "identity",
                **({"authorization": f"Bearer {token}"} if token else {})}

    def request(self, method: str, url: str, **params) -> httpx.Response:
        """A small request with retries on 5xx/429/dropped reads; Offline when unreachable."""
        host = httpx.URL(url).host
        for attempt in range(self.retries + 1):
            if host in self.unreachable:
                raise Offline(f"{host} is unreachable")
            try:
                resp = self.client.request(method, url, headers=self.headers(url), params=params)
            except httpx.ConnectError:
                self.unreachable.add(host)
                raise Offline(f"{host} is unreachable") from None
            except httpx.TransportError as err:
                resp, why = None, type(err).__name__
            else:
                if resp.status_code not in RETRY_STATUS:
                    return resp
                why = f"HTTP {resp.status_code}"
            if attempt < self.retries:
                time.sleep(min(self.backoff_s * 2**attempt, BACKOFF_MAX_S))
        raise FetchError(f"{url}: {why} after {self.retries + 1} attempts")

    def access_error(self, resp: httpx.Response, url: str, what: str) -> FetchError:
        """The error of a refused request (401/403 on the hub: gated or private, say what to do)."""
        if resp.status_code in (401, 403) and url.startswith(self.endpoint + "/"):
            page = url.split("/resolve/")[0].split("/revision/")[0].replace("/api/models/", "/")
            token = "HF_TOKEN is set but has no access" if get_token() else "set HF_TOKEN"
            return FetchError(f"{what}: HTTP {resp.status_code}, gated or private: accept its terms at "
                              f"{page} and {token}")
        return FetchError(f"{what}: HTTP {resp.status_code} from {url}")

    def __enter__(self) -> Hub:
        return self

    def __exit__(self, *exc) -> None:
        self.client.close()


def bytes_needed(file: RemoteFile) -> int | None:
    """What is left to download of ``file`` (partial downloads count as had)."""
    if file.blob.is_file():
        return 0
    return None if file.size is None else file.size - max([_size(file.partial), *map(_size, _orphans(file))])


def fetch_file(file: RemoteFile, hub: Hub) -> int:
    """One file into place (resumed, verified, linked into its snapshot); bytes received."""
    received = 0
    if not file.blob.is_file():
        file.lock.parent.mkdir(parents=True, exist_ok=True)
        file.blob.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(file.lock):
            if not file.blob.is_file():
                _adopt_orphans(file)
                resumed = _size(file.partial) > 0
                for attempt in (0, 1):  # a bad kept prefix gets one more try, from zero
                    received += _download(file, hub)
                    if _verified(file):
                        break
                    file.partial.unlink()
                    if attempt or not resumed:
                        raise FetchError(f"{file.name}: the downloaded file fails its size/hash check")
                os.replace(file.partial, file.blob)
    if file.link is not None and not file.link.exists():
        file.link.parent.mkdir(parents=True, exist_ok=True)
        file.link.unlink(missing_ok=True)
        file.link.symlink_to(os.path.relpath(file.blob, file.link.parent))
    return received


def _download(file: RemoteFile, hub: Hub) -> int:
    """Grow ``file.partial`` to the full file with Range requests; bytes received."""
    got, failures, why, best = [0], 0, "", _size(file.partial)
    with tqdm(total=file.size, initial=_size(file.partial), unit="B", unit_scale=True, unit_divisor=1024,
              desc=file.name[-40:], disable=not hub.progress, leave=False) as bar:
        while file.size is None or _size(file.partial) != file.size:
            try:
                done = _stream(file, hub, bar, got)
            except httpx.TransportError as err:
                done, why = False, f"{type(err).__name__}: {err}"
            if done and file.size is None:
                break
            if file.size is not None and _size(file.partial) > file.size:
                file.partial.unlink()
                raise FetchError(f"{file.name}: the server sent more than the {file.size} bytes announced")
            # progress = a partial file longer than ever (a server that ignores Range and drops
            # at the same point would otherwise retry forever)
            failures, best = (0, _size(file.partial)) if _size(file.partial) > best else (failures + 1, best)
            if failures > hub.retries:
                raise FetchError(f"{file.name}: no progress in {failures} attempts ({why or 'short response'})")
            if failures:
                time.sleep(min(hub.backoff_s * 2 ** (failures - 1), BACKOFF_MAX_S))
    return got[0]


def _stream(file: RemoteFile, hub: Hub, bar: tqdm, got: list[int]) -> bool:
    """One GET from the partial file's end on, appended to it (``got[0]`` counts the bytes even
    when the connection drops); False on a retryable status."""
    have = _size(file.partial)
    headers = hub.headers(file.url) | ({"range": f"bytes={have}-"} if have else {})
    with hub.client.stream("GET", file.url, headers=headers) as resp:
        if resp.status_code == 416 and have:  # what we have is not a prefix the server knows
            file.partial.unlink()
            return False
        if resp.status_code in RETRY_STATUS:
            return False
        if resp.status_code >= 400:
            raise hub.access_error(resp, file.url, file.name)
        start = have if resp.status_code == 206 else 0  # 200: the server ignored Range, restart
        if start and not resp.headers.get("content-range", "").startswith(f"bytes {have}-"):
            raise FetchError(f"{file.name}: server answered Range {have}- with {resp.headers.get('content-range')}")
        with file.partial.open("r+b" if start else "wb") as fh:
            fh.seek(start)
            bar.update(start - bar.n)
            for chunk in resp.iter_bytes():  # as it arrives: a fixed chunk size would hold back bytes a reset loses
                fh.write(chunk)
                got[0] += len(chunk)
                bar.update(len(chunk))
    return True


def _verified(file: RemoteFile) -> bool:
    if file.size is not None and _size(file.partial) != file.size:
        return False
    if file.sha256:
        return _digest(file.partial, hashlib.sha256()).startswith(file.sha256)
    if file.git_sha1:
        return _digest(file.partial, hashlib.sha1(f"blob {_size(file.partial)}\0".encode())) == file.git_sha1
    return True


def _digest(path: Path, hasher) -> str:
    with path.open("rb") as fh:
        while block := fh.read(8 * CHUNK):
            hasher.update(block)
    return hasher.hexdigest()


def _orphans(file: RemoteFile) -> list[Path]:
    """Process-unique partial files (``<etag>.<id>.incomplete``) of killed huggingface_hub downloads."""
    return sorted(file.blob.parent.glob(f"{file.blob.name}.*.incomplete")) if file.blob.parent.is_dir() else []


def _adopt_orphans(file: RemoteFile) -> None:
    """Keep the longest partial download of this blob as ours (a prefix of the same file), drop the rest."""
    for orphan in sorted(_orphans(file), key=_size):
        if _size(orphan) > _size(file.partial) and (file.size is None or _size(orphan) <= file.size):
            os.replace(orphan, file.partial)
        else:
            orphan.unlink()


def _size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else 0
