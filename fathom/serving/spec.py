"""What each server is and the exact SGLang command line that launches it.

Pure functions: no process is started here, so the argv is unit-testable without SGLang.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from urllib.parse import urlsplit

from fathom.errors import ConfigError

SERVER_NAMES = ("search", "synth", "query")
SEARCH_MODEL = "FractalAIResearch/Fathom-Search-4B"
SYNTH_MODEL = "FractalAIResearch/Fathom-Synthesizer-4B"
DEFAULT_PORTS = {"search": 8902, "synth": 8903, "query": 8905}
# Fathom-Synthesizer-4B is a Qwen3-4B fine-tune: 40,960 positions natively.
NATIVE_CONTEXT = 40960
# The synthesizer reads a whole search trace and writes a long report, so upstream stretches it
# with YaRN factor 2.0. YaRN with factor F over N original positions covers F * N tokens: 2.0 *
# 40,960 = 81,920. Upstream asked for --context-length 131092, which factor 2.0 does not cover
# (SGLang would then accept prompts the scaled RoPE was never fitted for), and passed the YaRN
# keys flat, where SGLang's flat config update never puts them under rope_scaling. We keep the
# factor and ask for the context it really covers; a larger --context-length raises the factor
# to context / 40,960, so the two numbers always agree.
SYNTH_CONTEXT = 81920
DEFAULT_CONTEXT = {"search": NATIVE_CONTEXT, "synth": SYNTH_CONTEXT, "query": 32768}
LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class ServerSpec:
    """One logical server: ``replicas`` SGLang workers (behind the router when more than one)."""

    name: str
    model_path: str
    served_name: str
    host: str
    port: int
    context_length: int
    tp: int = 1
    replicas: int = 1
    gpus: tuple[str, ...] | None = None  # CUDA_VISIBLE_DEVICES for all workers; None: inherited
    mem_fraction_static: float | None = None
    extra_args: tuple[str, ...] = field(default_factory=tuple)

    @property
    def url(self) -> str:
        host = LOOPBACK if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"

    def worker_gpus(self) -> list[tuple[str, ...] | None]:
        """The GPUs of each replica: the list split evenly, in order."""
        if self.gpus is None:
            return [None] * self.replicas
        per = len(self.gpus) // self.replicas
        return [self.gpus[i * per:(i + 1) * per] for i in range(self.replicas)]

    def rope_override(self) -> str | None:
        """The synthesizer's YaRN, nested under ``rope_scaling`` as SGLang applies it (None when
        the context fits the native window)."""
        if self.name != "synth" or self.context_length <= NATIVE_CONTEXT:
            return None
        factor = self.context_length / NATIVE_CONTEXT
        return json.dumps({"rope_scaling": {
            "rope_type": "yarn", "factor": factor, "original_max_position_embeddings": NATIVE_CONTEXT}})

    def worker_argv(self, python: str, *, host: str, port: int) -> list[str]:
        """``python -m sglang.launch_server …`` for one worker. The API key is not here: the
        supervisor adds it (see :mod:`fathom.serving.supervise`), so it is never recorded."""
        argv = [
            python, "-m", "sglang.launch_server",
            "--model-path", self.model_path,
            "--served-model-name", self.served_name,
            "--host", host,
            "--port", str(port),
            "--context-length", str(self.context_length),
            "--tp-size", str(self.tp),
            # radix cache and CUDA graphs stay on (SGLang's defaults): never disabled here
            "--enable-metrics",
            "--enable-cache-report",
        ]
        if (rope := self.rope_override()) is not None:
            argv += ["--json-model-override-args", rope]
        if self.mem_fraction_static is not None:
            argv += ["--mem-fraction-static", f"{self.mem_fraction_static:g}"]
        return argv + list(self.extra_args)


def served_name_of(model_path: str) -> str:
    """``Qwen/Qwen3-4B`` -> ``Qwen3-4B`` (the last path part)."""
    return PurePosixPath(model_path.rstrip("/")).name or model_path


def port_of(url: str | None) -> int | None:
    """The port of a local ``http://127.0.0.1:PORT`` style URL, else None."""
    if not url or not url.startswith(("http://", "https://")):
        return None
    try:
        parts = urlsplit(url)
        return parts.port if parts.hostname in ("127.0.0.1", "localhost", "::1") else None
    except ValueError:
        return None


# With servers sharing a GPU, the share of its memory they split between them (SGLang's own
# default for one server is about 0.9; the rest is CUDA graphs and activations).
SHARED_MEMORY = 0.8


def place_gpus(
    names: Sequence[str], chosen: dict[str, tuple[str, ...]], *, per_server: int, visible: Sequence[str] | None
) -> tuple[dict[str, tuple[str, ...]], float | None]:
    """The GPUs of each server, and the memory share each gets when servers must share GPUs.

    A server without its own ``--gpus`` gets the next block of ``per_server`` GPUs. ``visible``
    lists the GPUs this host shows (None: unknown, blocks are numbered from 0 as they come); on a
    host with fewer GPUs than the blocks need, blocks wrap around and servers share, each with
    ``SHARED_MEMORY`` divided by the most servers on one GPU (None when nobody shares).
    """
    if visible and per_server > len(visible):
        raise ConfigError(f"each server needs {per_server} GPUs (tp x replicas) and this host shows {len(visible)}")
    placed: dict[str, tuple[str, ...]] = {}
    first = 0
    for name in names:
        if name in chosen:
            placed[name] = chosen[name]
            first = max(first, *(int(g) + 1 for g in chosen[name]))
            continue
        slots = range(first, first + per_server)
        placed[name] = tuple(str(visible[i % len(visible)]) if visible else str(i) for i in slots)
        first += per_server
    crowd = max(Counter(g for block in placed.values() for g in set(block)).values(), default=1)
    return placed, (round(SHARED_MEMORY / crowd, 2) if crowd > 1 else None)


def parse_gpus(value: str) -> tuple[str, ...]:
    gpus = tuple(g.strip() for g in value.split(",") if g.strip())
    if not gpus or not all(g.isdigit() for g in gpus):
        raise ConfigError(f"--gpus {value!r} is not a list of GPU numbers such as 0,1")
    return gpus


def build_spec(
    name: str,
    *,
    model_path: str | None,
    port: int | None,
    host: str = LOOPBACK,
    gpus: tuple[str, ...] | None = None,
    tp: int | None = None,
    replicas: int = 1,
    context_length: int | None = None,
    mem_fraction_static: float | None = None,
    extra_args: tuple[str, ...] = (),
) -> ServerSpec:
    """A validated :class:`ServerSpec`; ConfigError (one line) on a bad combination."""
    if name not in SERVER_NAMES:
        raise ConfigError(f"unknown server {name!r}: use search, synth, query or all")
    if model_path is None:
        if name == "query":
            raise ConfigError("the query LLM has no default model: give one, e.g. --model-path Qwen/Qwen3-4B")
        model_path = SEARCH_MODEL if name == "search" else SYNTH_MODEL
    if replicas < 1:
        raise ConfigError("--replicas must be at least 1")
    if tp is not None and tp < 1:
        raise ConfigError("--tp must be at least 1")
    if gpus is not None:
        if len(gpus) % replicas:
            raise ConfigError(f"{len(gpus)} GPUs cannot be split evenly over {replicas} replicas")
        per = len(gpus) // replicas
        if tp is None:
            tp = per
        elif tp != per:
            raise ConfigError(f"each of the {replicas} replica(s) of {name} gets {per} GPU(s), but --tp is {tp}")
    context = context_length or DEFAULT_CONTEXT[name]
    if context < 1024:
        raise ConfigError("--context-length must be at least 1024")
    if mem_fraction_static is not None and not 0 < mem_fraction_static < 1:
        raise ConfigError("--mem-fraction-static must be between 0 and 1")
    port = port or DEFAULT_PORTS[name]
    if not 0 < port < 65536:
        raise ConfigError(f"--port {port} is not a TCP port")
    served = {"search": "Fathom-Search-4B", "synth": "Fathom-Synthesizer-4B"}.get(name) or served_name_of(model_path)
    return ServerSpec(
        name=name, model_path=model_path, served_name=served, host=host, port=port,
        context_length=context, tp=tp or 1, replicas=replicas, gpus=gpus,
        mem_fraction_static=mem_fraction_static, extra_args=tuple(extra_args),
    )
