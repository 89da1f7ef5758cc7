"""SQLite cache of model responses, keyed by (backend, model, prompt text, image hash,
generation settings).

Every backend looks its answers up the same way: ``look_up`` gives the keys of a call's images,
what the cache holds and what is left to compute (``Lookup.todo``), and ``Lookup.put`` stores a
new answer. Each answer is committed as soon as it arrives, so an interrupted run resumes where it
stopped and a rerun makes no model calls. Errors are not cached (a rerun retries them).
Thread-safe: one connection guarded by a lock (the OpenAI backend writes from threads).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emolib.paths import results_dir

SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    backend TEXT, model TEXT, image_hash TEXT, prompt_hash TEXT, settings TEXT,
    response TEXT, latency_s REAL, created REAL
)"""


@dataclass(frozen=True)
class CachedResponse:
    response: str
    latency_s: float


def cache_key(backend: str, model: str, prompt: str, image_hash: str, settings: dict[str, Any]) -> str:
    """sha256 of the five parts (settings canonicalised as sorted JSON)."""
    parts = [backend, model, prompt, image_hash, json.dumps(settings, sort_keys=True, default=str)]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def cache_path(profile_name: str) -> Path:
    """``results/<profile>/vlm_cache.sqlite``: one cache per profile, shared by all configs."""
    return results_dir(profile_name) / "vlm_cache.sqlite"


class ResponseCache:
    """Get and put raw model responses by key; counts hits and misses."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(SCHEMA)
        self._conn.commit()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> CachedResponse | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT response, latency_s FROM responses WHERE key = ?", (key,)).fetchone()
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        return CachedResponse(row[0], row[1])

    def put(self, key: str, response: str, latency_s: float, backend: str = "", model: str = "",
            image_hash: str = "", prompt: str = "", settings: dict[str, Any] | None = None) -> None:
        prompt_hash = hashlib.sha256(prompt.encode()).hexdigest()[:16]
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (key, backend, model, image_hash, prompt_hash,
                 json.dumps(settings or {}, sort_keys=True, default=str), response, latency_s,
                 time.time()))
            self._conn.commit()

    def __len__(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._conn.close()


@dataclass
class Lookup:
    """The cache lookups of one call of a backend: per image its key and what the cache held
    (None: to compute). ``cache`` None: nothing is cached, everything is computed."""

    cache: ResponseCache | None
    backend: str
    model: str
    prompt: str
    settings: dict[str, Any]
    hashes: list[str]
    keys: list[str] = field(default_factory=list)
    found: list[CachedResponse | None] = field(default_factory=list)

    @property
    def todo(self) -> list[int]:
        """Positions of the images the cache has no answer for."""
        return [i for i, hit in enumerate(self.found) if hit is None]

    def put(self, i: int, response: str, latency_s: float) -> None:
        """Store the answer to image ``i`` (committed at once)."""
        if self.cache is not None:
            self.cache.put(self.keys[i], response, latency_s, self.backend, self.model, self.hashes[i], self.prompt,
                           self.settings)


def look_up(cache: ResponseCache | None, backend: str, model: str, prompt: str, hashes: list[str],
            settings: dict[str, Any], key_model: str | None = None) -> Lookup:
    """Look up the answers of ``model`` to ``prompt`` for the images of ``hashes`` under the
    generation ``settings``; ``key_model``: what names the model in the key when it is more than
    its name (an endpoint's ``base_url|model``)."""
    keys = [cache_key(backend, key_model or model, prompt, h, settings) for h in hashes]
    found = [cache.get(k) if cache is not None else None for k in keys]
    return Lookup(cache, backend, model, prompt, settings, list(hashes), keys, found)
