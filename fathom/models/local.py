"""A model run in-process with transformers: the ``local:`` model URLs, no server needed.

:class:`LocalClient` has the interface of :class:`~fathom.models.sglang.SGLangClient`
(``generate``, ``context_length``, ``aclose``): a raw prompt goes in (the protocol already
rendered ChatML; no chat template is applied), text and token counts come out.

Spec syntax (``local:`` then one of):

- ``local:REPO_ID`` -- a Hugging Face repository, e.g. ``local:FractalAIResearch/Fathom-Search-4B``
  (weights come from the usual Hugging Face cache, downloaded on first use);
- ``local:DIR`` -- a directory holding a transformers checkpoint (``config.json``, weights, tokenizer);
- ``local:PATH/TO/FILE.gguf`` -- one GGUF file on disk (loaded through transformers' ``gguf_file=``,
  dequantized; the tokenizer comes from the GGUF file itself);
- ``local:REPO_ID::FILE.gguf`` (or ``local:DIR::FILE.gguf``) -- one GGUF file of a repository.

Prefix reuse: the model keeps the KV cache (``past_key_values``) of its previous call together with
the token ids it covers. A new prompt is tokenized, its longest common token prefix with those ids
is kept (the cache is cropped to it) and only the remaining tokens run through the model, so an
append-only transcript pays only for its new tokens. ``Generation.cached_tokens`` reports the
reused prefix length, as SGLang's radix cache does.

The model runs on the GPU when ``torch.cuda.is_available()``, else on the CPU; generation runs in
a worker thread (:func:`asyncio.to_thread`), one request at a time per model. A loaded model is
shared by every client of this process that names the same spec.
"""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import logging
import os
import threading
import weakref
from dataclasses import dataclass
from typing import Any

from fathom.aio import AsyncClosing
from fathom.errors import ConfigError, one_line
from fathom.models.base import ContextLengthError, FinishReason, Generation, ModelError

log = logging.getLogger(__name__)

PREFIX = "local:"
DEFAULT_SEARCH_MODEL = "local:FractalAIResearch/Fathom-Search-4B"  # what --local runs
DEFAULT_SYNTH_MODEL = "local:FractalAIResearch/Fathom-Synthesizer-4B"
INSTALL_HINT = "pip install 'fathom-deepresearch[local]'"
PREFILL_CHUNK = 2048  # prompt tokens per forward pass: bounds activation memory on long prompts

__all__ = [
    "DEFAULT_SEARCH_MODEL",
    "DEFAULT_SYNTH_MODEL",
    "PREFIX",
    "LocalClient",
    "LocalModel",
    "LocalSpec",
    "gpu_available",
    "is_local_url",
    "load_model",
    "local_available",
    "parse_spec",
    "unload_models",
]


# ---- spec ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalSpec:
    """Where a local model comes from: ``source`` (a repository id or a directory) and, for a
    GGUF checkpoint, the file inside it."""

    source: str
    gguf_file: str | None = None

    def __str__(self) -> str:
        if self.gguf_file is None:
            return PREFIX + self.source
        if _is_path(self.source):
            return PREFIX + os.path.join(self.source, self.gguf_file)
        return f"{PREFIX}{self.source}::{self.gguf_file}"


def is_local_url(url: str | None) -> bool:
    """True for a ``local:`` model spec."""
    return isinstance(url, str) and url.strip().startswith(PREFIX)


def parse_spec(url: str) -> LocalSpec:
    """Parse ``local:REPO_ID``, ``local:DIR``, ``local:FILE.gguf`` or ``local:REPO_ID::FILE.gguf``.

    Raises :class:`ConfigError` (one line) for a spec without a model or a ``::`` part that does
    not name a ``.gguf`` file.
    """
    text = url.strip()
    if not text.startswith(PREFIX):
        raise ConfigError(f"not a local model spec: {url!r} (expected {PREFIX}MODEL)")
    rest = text[len(PREFIX):].strip()
    usage = (f"use {PREFIX}REPO_ID, {PREFIX}DIR, {PREFIX}PATH/TO/FILE.gguf or {PREFIX}REPO_ID::FILE.gguf")
    if not rest:
        raise ConfigError(f"{url!r} names no model: {usage}")
    if "::" in rest:
        source, _, file = rest.partition("::")
        source, file = source.strip(), file.strip()
        if not source or not file.lower().endswith(".gguf"):
            raise ConfigError(f"{url!r}: the part after '::' must be a .gguf file and come after a model: {usage}")
        return LocalSpec(_expand(source), file)
    if rest.lower().endswith(".gguf"):
        path = _expand(rest)
        return LocalSpec(os.path.dirname(path) or ".", os.path.basename(path))
    return LocalSpec(_expand(rest))


def _is_path(source: str) -> bool:
    return source.startswith((".", "/", "~")) or os.path.isdir(source)


def _expand(source: str) -> str:
    return os.path.expanduser(source) if source.startswith("~") else source


# ---- optional dependencies ----------------------------------------------------------------------


def local_available() -> bool:
    """True when torch and transformers (the ``local`` extra) are installed."""
    return all(importlib.util.find_spec(name) is not None for name in ("torch", "transformers"))


def gpu_available() -> bool:
    """True when torch is installed and sees a CUDA GPU (never raises; False without torch)."""
    if importlib.util.find_spec("torch") is None:
        return False
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # a broken CUDA install is "no GPU" here
        return False


def _require_local(what: str) -> None:
    if not local_available():
        raise ModelError(f"{what} needs torch and transformers: {INSTALL_HINT}")


# ---- the loaded model ---------------------------------------------------------------------------


class LocalModel:
    """Weights, tokenizer and the KV cache of the previous call of one local model.

    :meth:`generate_sync` is blocking and thread-safe (one call at a time); ``tokens_run`` counts
    every token that has gone through the model's forward pass (prompt tokens not found in the
    cache, plus each generated token fed back), which is what prefix reuse saves.
    """

    def __init__(self, spec: LocalSpec, *, device: str | None = None) -> None:
        _require_local(f"local model {spec}")
        import torch
        import transformers
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.spec = spec
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        kwargs: dict[str, Any] = {}
        if spec.gguf_file is not None:
            kwargs["gguf_file"] = spec.gguf_file
        # The GPU takes the checkpoint's own dtype (bf16 for the Fathom models); the CPU float32.
        dtype: Any = "auto" if self.device.startswith("cuda") else torch.float32
        dtype_kw = "dtype" if _version(transformers.__version__) >= (4, 56) else "torch_dtype"
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(spec.source, **kwargs)
            model = AutoModelForCausalLM.from_pretrained(spec.source, **kwargs, **{dtype_kw: dtype})
        except Exception as exc:  # OSError (not found, hub offline), ValueError (bad GGUF), ...
            raise ModelError(f"cannot load local model {spec}: {one_line(exc, 240)}") from exc
        self.model = model.to(self.device).eval()
        # transformers 5.x renamed ``past_key_values`` to ``cache`` (argument and output field).
        params = inspect.signature(self.model.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"
        self.context_length = _context_length(self.model.config, self.tokenizer)
        self.eos_ids = _eos_ids(self.model, self.tokenizer)
        self.special_tokens = sorted(
            (t for t in getattr(self.tokenizer, "all_special_tokens", []) if t), key=len, reverse=True
        )
        self.tokens_run = 0
        self._lock = threading.Lock()
        self._cache: Any = None  # the past_key_values of the previous call
        self._cached_ids: list[int] = []  # the token ids that cache covers, in order
        self._async_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    def __repr__(self) -> str:
        return f"LocalModel({str(self.spec)!r}, device={self.device!r})"

    def async_lock(self) -> asyncio.Lock:
        """This model's lock on the running event loop: callers queue here, not in worker threads."""
        loop = asyncio.get_running_loop()
        lock = self._async_locks.get(loop)
        if lock is None:
            lock = self._async_locks[loop] = asyncio.Lock()
        return lock

    def count_tokens(self, text: str) -> int:
        """The number of tokens ``text`` has as a prompt."""
        return len(self._encode(text))

    def reset_cache(self) -> None:
        """Forget the KV cache (the next call runs its whole prompt)."""
        with self._lock:
            self._cache, self._cached_ids = None, []

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text)["input_ids"])

    def generate_sync(
        self,
        prompt: str,
        *,
        max_new_tokens: int,
        temperature: float = 0.6,
        repetition_penalty: float = 1.05,
        stop: list[str] | None = None,
        top_p: float | None = None,
        cancel: threading.Event | None = None,
        name: str = "local model",
    ) -> Generation:
        """Complete ``prompt``; blocking. Raises :class:`ContextLengthError` when the prompt plus
        ``max_new_tokens`` do not fit the context, :class:`ModelError` when the model fails."""
        with self._lock:
            ids = self._encode(prompt)
            max_new = max(0, int(max_new_tokens))
            if not ids:
                raise ModelError(f"{name} ({self.spec}) got an empty prompt")
            if len(ids) + max_new > self.context_length:
                raise ContextLengthError(
                    f"prompt does not fit the context of the {name} ({self.spec}): {len(ids)} prompt tokens + "
                    f"{max_new} new tokens > {self.context_length}"
                )
            try:
                return self._run(ids, max_new, temperature, repetition_penalty, stop or [], top_p, cancel)
            except ModelError:
                raise
            except Exception as exc:  # out of memory, a kernel error: the cache may be half-written
                self._cache, self._cached_ids = None, []
                raise ModelError(f"{name} ({self.spec}) failed: {type(exc).__name__}: {one_line(exc, 240)}") from exc

    # ---- the decoding loop ----------------------------------------------------------------------

    def _run(
        self,
        ids: list[int],
        max_new: int,
        temperature: float,
        repetition_penalty: float,
        stop: list[str],
        top_p: float | None,
        cancel: threading.Event | None,
    ) -> Generation:
        import torch

        reused = self._reuse_prefix(ids)
        if max_new == 0:
            return Generation("", "length", len(ids), 0, cached_tokens=reused)
        processors = _processors(temperature, repetition_penalty, top_p)
        greedy = temperature is None or temperature <= 1e-5
        seq = torch.empty((1, len(ids) + max_new), dtype=torch.long, device=self.device)
        seq[0, : len(ids)] = torch.tensor(ids, dtype=torch.long, device=self.device)
        stop_window = 4 * max((len(s) for s in stop), default=0) + 4  # tokens that can hold a stop string

        with torch.inference_mode():
            logits = None
            for start in range(reused, len(ids), PREFILL_CHUNK):
                logits = self._forward(ids[start : start + PREFILL_CHUNK])
            assert logits is not None  # _reuse_prefix always leaves at least one token to run
            generated: list[int] = []
            finish: FinishReason = "length"
            matched: str | int | None = None
            while True:
                scores = logits[:, -1, :].float()
                if processors:
                    scores = processors(seq[:, : len(ids) + len(generated)], scores)
                if greedy:
                    token = int(torch.argmax(scores, dim=-1)[0])
                else:
                    token = int(torch.multinomial(torch.softmax(scores, dim=-1), num_samples=1)[0, 0])
                seq[0, len(ids) + len(generated)] = token
                generated.append(token)
                if token in self.eos_ids:
                    finish, matched = "stop", token
                    break
                if stop:
                    tail = self.tokenizer.decode(generated[-stop_window:], skip_special_tokens=False)
                    hit = next((s for s in stop if s in tail), None)
                    if hit is not None:
                        finish, matched = "stop", hit
                        break
                if len(generated) >= max_new or (cancel is not None and cancel.is_set()):
                    break
                logits = self._forward([token])
        return Generation(
            text=self._text(generated, finish, matched, stop),
            finish_reason=finish,
            prompt_tokens=len(ids),
            completion_tokens=len(generated),
            cached_tokens=reused,
            matched_stop=matched,
        )

    def _reuse_prefix(self, ids: list[int]) -> int:
        """Crop the cache to the longest common prefix of its ids and ``ids`` (at least one prompt
        token is left to run, for the logits); returns the number of reused tokens."""
        common = 0
        for a, b in zip(self._cached_ids, ids):
            if a != b:
                break
            common += 1
        common = min(common, len(ids) - 1)
        cache = self._cache
        if cache is None or common == 0 or _seq_length(cache) != len(self._cached_ids):
            self._cache, self._cached_ids = None, []
            return 0
        surplus = len(self._cached_ids) - common
        if surplus:
            try:
                cache.crop(-surplus)  # negative: remove that many (the form every version accepts)
            except Exception as exc:  # a cache type that cannot roll back (sliding window past its size)
                log.debug("cannot crop the KV cache of %s (%s): running the whole prompt", self.spec, exc)
                self._cache, self._cached_ids = None, []
                return 0
            del self._cached_ids[common:]
        return common

    def _forward(self, tokens: list[int]) -> Any:
        """Run ``tokens`` after the cached ones; returns the logits of the last position."""
        import torch

        input_ids = torch.tensor([tokens], dtype=torch.long, device=self.device)
        self.tokens_run += len(tokens)
        # Ids first, cache second: if the forward pass fails, the caller drops both.
        self._cached_ids.extend(tokens)
        out = self.model(input_ids=input_ids, use_cache=True, logits_to_keep=1, **{self._cache_kw: self._cache})
        self._cache = getattr(out, self._cache_kw)
        return out.logits

    def _text(self, generated: list[int], finish: str, matched: str | int | None, stop: list[str]) -> str:
        """The completion without its EOS token or stop string (SGLang trims both)."""
        if isinstance(matched, str):
            raw = self.tokenizer.decode(generated, skip_special_tokens=False)
            cut = min((i for i in (raw.find(s) for s in stop) if i >= 0), default=len(raw))
            text = raw[:cut]
            for special in self.special_tokens:
                text = text.replace(special, "")
            return text
        if finish == "stop":
            generated = generated[:-1]
        return self.tokenizer.decode(generated, skip_special_tokens=True)


def _version(text: str) -> tuple[int, int]:
    parts = []
    for piece in text.split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return (parts + [0, 0])[0], (parts + [0, 0])[1]


def _seq_length(cache: Any) -> int:
    try:
        return int(cache.get_seq_length())
    except Exception:
        return -1


def _context_length(config: Any, tokenizer: Any) -> int:
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    value = getattr(tokenizer, "model_max_length", None)
    return value if isinstance(value, int) and 0 < value < 10**7 else 2048


def _eos_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    found: set[int] = set()
    for raw in (getattr(getattr(model, "generation_config", None), "eos_token_id", None),
                getattr(model.config, "eos_token_id", None), tokenizer.eos_token_id):
        if isinstance(raw, int):
            found.add(raw)
        elif isinstance(raw, (list, tuple)):
            found.update(int(x) for x in raw if isinstance(x, int))
    return frozenset(found)


def _processors(temperature: float, repetition_penalty: float, top_p: float | None) -> Any:
    from transformers import (
        LogitsProcessorList,
        RepetitionPenaltyLogitsProcessor,
        TemperatureLogitsWarper,
        TopPLogitsWarper,
    )

    processors = LogitsProcessorList()
    if repetition_penalty and repetition_penalty != 1.0:
        processors.append(RepetitionPenaltyLogitsProcessor(float(repetition_penalty)))
    if temperature is not None and temperature > 1e-5:
        if temperature != 1.0:
            processors.append(TemperatureLogitsWarper(float(temperature)))
        if top_p is not None and 0.0 < top_p < 1.0:
            processors.append(TopPLogitsWarper(float(top_p)))
    return processors


# ---- one load per process per model -------------------------------------------------------------

_models: dict[tuple[LocalSpec, str | None], LocalModel] = {}
_load_lock = threading.Lock()


def load_model(spec: LocalSpec | str, *, device: str | None = None) -> LocalModel:
    """This process's loaded model for ``spec`` (loaded on first use, then shared). Blocking."""
    spec = parse_spec(spec) if isinstance(spec, str) else spec
    key = (spec, device)
    with _load_lock:
        model = _models.get(key)
        if model is None:
            log.info("loading local model %s", spec)
            model = _models[key] = LocalModel(spec, device=device)
        return model


def unload_models() -> None:
    """Forget every loaded model of this process (their memory is freed once unused)."""
    with _load_lock:
        _models.clear()


# ---- the client ---------------------------------------------------------------------------------


class LocalClient(AsyncClosing):
    """A local model with the interface of :class:`~fathom.models.sglang.SGLangClient`.

    The model loads on the first call (in a worker thread), then stays loaded for the process;
    :meth:`aclose` does not unload it (other clients of the same spec share it). ``name`` labels
    error messages. Raises :class:`ConfigError` for a bad spec and :class:`ModelError` when torch
    or transformers are missing, at construction, so a run fails at its start.
    """

    def __init__(self, spec: LocalSpec | str, *, name: str = "local model", device: str | None = None) -> None:
        self.spec = parse_spec(spec) if isinstance(spec, str) else spec
        self.name = name
        self.device = device
        _require_local(f"{name} {self.spec}")
        self._model: LocalModel | None = None

    def __repr__(self) -> str:
        return f"LocalClient({str(self.spec)!r}, name={self.name!r})"

    @property
    def tokens_run(self) -> int:
        """Tokens run through the model's forward pass so far (by every client of this model)."""
        return self._model.tokens_run if self._model is not None else 0

    async def model(self) -> LocalModel:
        """The loaded model (loads it on first use)."""
        if self._model is None:
            self._model = await asyncio.to_thread(load_model, self.spec, device=self.device)
        return self._model

    async def generate(
        self,
        prompt: str,
        *,
        max_new_tokens: int,
        temperature: float = 0.6,
        repetition_penalty: float = 1.05,
        stop: list[str] | None = None,
        top_p: float | None = None,
    ) -> Generation:
        """Complete ``prompt`` (raw text, no chat template applied) and return text and usage.

        Raises :class:`ContextLengthError` or :class:`ModelError` (one-line messages).
        """
        model = await self.model()
        cancel = threading.Event()
        async with model.async_lock():
            try:
                return await asyncio.to_thread(
                    model.generate_sync,
                    prompt,
                    max_new_tokens=max_new_tokens,
                    temperature=temperature,
                    repetition_penalty=repetition_penalty,
                    stop=stop,
                    top_p=top_p,
                    cancel=cancel,
                    name=self.name,
                )
            except asyncio.CancelledError:
                cancel.set()  # the worker thread stops at its next token
                raise

    async def count_tokens(self, text: str) -> int:
        """The number of tokens ``text`` has as a prompt of this model."""
        return (await self.model()).count_tokens(text)

    async def context_length(self) -> int | None:
        """The model's context window in tokens (its config's ``max_position_embeddings``)."""
        return (await self.model()).context_length

    async def health(self) -> bool:
        """True: an in-process model has no server to be down (loading errors surface on use)."""
        return True

    async def aclose(self) -> None:
        """Nothing to close: the loaded model stays shared for the process (see :func:`unload_models`)."""
