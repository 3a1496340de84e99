"""Generators behind one interface, picked by name from a small registry.

- `local`: a GGUF model through llama-cpp-python, with the model's own chat template;
- `openai`: any OpenAI-compatible chat endpoint (vLLM, Ollama, a cloud service, llama-cpp's
  own server), with timeouts and retries;
- `extractive`: no LLM; sentences of the sources in the shape the question asks for, each
  cited (assistant/extractive.py). Fast, deterministic, always available.

A generator streams text deltas for a question and its numbered sources; citation checking,
refusals and warnings happen after it, the same for all three.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from assistant.answerability import AnswerJudge, JudgeOptions
from assistant.extractive import ExtractiveGenerator
from assistant.prompt import REFUSAL_SENTENCE, Turn, build_messages, build_rewrite_messages
from assistant.shapes import Shape, instruction, shape_of
from assistant.sources import Source, excerpts
from index.embedding import Embedder
from index.errors import ConfigurationError, KBError

log = logging.getLogger("kb.assistant")


class GeneratorError(KBError):
    """The generation backend failed (unreachable, timed out, refused); `status` is the HTTP
    status an endpoint answered with, if it answered."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status

    @property
    def retryable(self) -> bool:
        """A server error (5xx) may pass; a client error (4xx) will not."""
        return self.status is not None and self.status >= 500


class Generator(Protocol):
    name: str

    def stream(self, question: str, sources: Sequence[Source]) -> Iterator[str]:
        """Text deltas of a grounded answer citing sources as [n]."""
        ...

    def rewrite(self, history: Sequence[Turn], question: str) -> str | None:
        """A standalone version of a follow-up question, or None if it cannot rewrite."""
        ...


class ChatModel(Protocol):
    def stream_chat(
        self, messages: list[dict[str, str]], max_tokens: int, *, refusal: bool = False
    ) -> Iterator[str]:
        """Text deltas; `refusal`: the messages ask for a grounded answer, which the model may
        decline with REFUSAL_SENTENCE (a model that can weigh that opening does so)."""
        ...


@dataclass(frozen=True)
class GeneratorConfig:
    """Plain arguments for every backend (built from settings in api/assembly.py)."""

    model_path: Path | None = None
    context_tokens: int = 4096
    threads: int | None = None
    max_answer_tokens: int = 256
    base_url: str = "http://127.0.0.1:8080/v1"
    model: str = "local"
    api_key: str | None = None
    timeout_s: float = 120.0
    retries: int = 2
    context_words: int = 0  # cut the sources to the words closest to the question (0: no cut)
    quote_steps: bool = True  # a procedure's listed steps are quoted, not retold by the model
    quote_projects: bool = True  # prior projects are listed as the composer lists them
    refusal_probability: float = 0.25  # local model: refuse at this chance of opening so (0: off)
    replies_kept: int = 256  # local model: replies remembered by prompt (0: off)


Excerpts = Callable[[str, Sequence[Source]], dict[int, str]]


class PromptedGenerator:
    """Any chat model behind the grounded prompt; `excerpts` (question, sources -> the text
    shown of each source) cuts the sources down, when given. A question of one of `quoted`
    shapes is answered as `composer` answers it, quoted and cited, without the model, when
    the composer finds lines in that shape: a procedure's listed steps (the shipped 1.5B
    model retold 12 steps as their headings, dropping every threshold) and one line per prior
    project (evals/README.md, "Answer shapes" and "Quoting the projects")."""

    def __init__(
        self,
        name: str,
        model: ChatModel,
        max_tokens: int,
        excerpts: Excerpts | None = None,
        composer: ExtractiveGenerator | None = None,
        quoted: Collection[Shape] = (),
    ) -> None:
        self.name = name
        self._model = model
        self._max_tokens = max_tokens
        self._excerpts = excerpts
        self._composer = composer
        self._quoted = frozenset(quoted)

    def stream(self, question: str, sources: Sequence[Source]) -> Iterator[str]:
        quoted = (
            self._composer.quote(question, sources, self._quoted)
            if self._composer and self._quoted
            else []
        )
        if quoted:
            return iter([line + "\n" for line in quoted])
        return self._model.stream_chat(
            self.messages(question, sources), self._max_tokens, refusal=True
        )

    def refusal_probability(self, question: str, sources: Sequence[Source]) -> float | None:
        """The model's probability of opening its answer with the refusal sentence, where the
        model can tell (evals/calibrate_refusal.py calibrates KB_LLM_REFUSAL_PROBABILITY)."""
        measure = getattr(self._model, "refusal_probability", None)
        return None if measure is None else float(measure(self.messages(question, sources)))

    def messages(self, question: str, sources: Sequence[Source]) -> list[dict[str, str]]:
        texts = self._excerpts(question, sources) if self._excerpts else None
        told = instruction(shape_of(question, sources), question)
        return build_messages(question, sources, texts, told)

    def rewrite(self, history: Sequence[Turn], question: str) -> str | None:
        text = "".join(self._model.stream_chat(build_rewrite_messages(history, question), 64))
        text = text.strip().strip('"').splitlines()[0].strip() if text.strip() else ""
        return text or None


def softmax(scores: np.ndarray) -> np.ndarray:
    """Next-token probabilities from next-token logits."""
    shifted = np.exp(scores.astype(np.float64) - float(np.max(scores)))
    return shifted / shifted.sum()


def opening_probability(scores: np.ndarray, token: int) -> float:
    """Softmax probability of `token` among next-token logits."""
    return float(softmax(scores)[token])


class RefusalGate:
    """A llama.cpp logits processor for the first generated token: when the refusal's opening
    token is at least `at` likely, it is forced, and greedy decoding continues the refusal in
    the model's own words; otherwise the logits pass unchanged. A small model that would
    answer "Yes, ..." while giving the refusal a 20% chance is usually answering from a
    passage beside the question; `at` is calibrated so answerable questions stay answered."""

    def __init__(self, token: int, at: float) -> None:
        self.token = token
        self.at = at
        self.probability: float | None = None  # measured at the first step

    def __call__(self, input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        if self.probability is not None:
            return scores
        self.probability = opening_probability(scores, self.token)
        if self.at <= 0 or self.probability < self.at:
            return scores
        forced = np.full_like(scores, -np.inf)
        forced[self.token] = scores[self.token]
        return forced


class FirstTokenProbe:
    """A llama.cpp logits processor that keeps the softmax of the first generated token's
    logits and changes nothing."""

    def __init__(self) -> None:
        self.probabilities: np.ndarray | None = None

    def __call__(self, input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        if self.probabilities is None:
            self.probabilities = softmax(scores)
        return scores


def _processors(gate: RefusalGate | FirstTokenProbe) -> Any:
    from llama_cpp import LogitsProcessorList

    return LogitsProcessorList([gate])


class Replies:
    """What a deterministic model replied, by prompt: the most recent `size` replies, kept
    by a digest of everything that decides them (the messages, sources included, and the
    generation's parameters). Decoding is greedy and every prompt is read from the same
    position (LlamaCppChat._prime), so the same prompt gets the same reply: asking again
    ("How do we deploy document processing?", however it is typed: assistant/question.py)
    costs nothing, and a changed source changes the prompt, so nothing stale is replayed."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._kept: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(*parts: Any) -> str:
        text = json.dumps(parts, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def get(self, key: str) -> Any:
        with self._lock:
            if key in self._kept:
                self._kept.move_to_end(key)
            return self._kept.get(key)

    def put(self, key: str, reply: Any) -> None:
        if self._size <= 0:
            return
        with self._lock:
            self._kept[key] = reply
            self._kept.move_to_end(key)
            while len(self._kept) > self._size:
                self._kept.popitem(last=False)


class LlamaCppChat:
    """A local GGUF model; loaded on first use, one generation at a time. With
    `refusal_probability` > 0, a grounded answer whose refusal opening is that likely is
    refused (RefusalGate). A prompt asked again is answered from `Replies`."""

    def __init__(
        self,
        path: Path,
        context_tokens: int,
        threads: int | None,
        refusal_probability: float,
        replies_kept: int = GeneratorConfig.replies_kept,
    ) -> None:
        self._path = path
        self._n_ctx = context_tokens
        self._threads = threads
        self._refusal_probability = refusal_probability
        self._llm: Any = None
        self._refusal_token = 0
        self._lock = threading.Lock()
        self._formatter: Any = None  # the model's chat template, as llama-cpp applies it
        self._opening: tuple[int, ...] | None = None  # the prompt opening in the cache
        self.replies = Replies(replies_kept)

    def _load(self) -> Any:
        if self._llm is None:
            from llama_cpp import Llama

            if not self._path.is_file():
                raise ConfigurationError(
                    f"local model {self._path} does not exist: run `make install` or set "
                    "KB_LLM_MODEL_PATH to a GGUF file"
                )
            threads = self._threads or os.cpu_count() or 1  # llama-cpp's default is half
            self._llm = Llama(
                model_path=str(self._path),
                n_ctx=self._n_ctx,
                n_threads=threads,
                n_threads_batch=threads,
                verbose=False,
            )
            opening = self._llm.tokenize(REFUSAL_SENTENCE.encode(), add_bos=False, special=False)
            self._refusal_token = int(opening[0])
            self._formatter = _chat_formatter(self._llm)
        return self._llm

    def _prime(self, llm: Any, messages: list[dict[str, str]]) -> None:
        """Make the answer to a prompt the same whatever was asked before. llama.cpp's
        results depend a little on how a prompt is cut into batches, and it reuses whatever
        the previous prompt shared with this one, so the same question could be read from a
        different position and answered differently. Every prompt is therefore read in two
        parts: its opening (everything before the last message's text: the rules and the
        worked example, the same for every grounded answer), evaluated on its own from
        position 0 once and then reused, and the rest, always evaluated from the end of the
        opening."""
        if self._formatter is None:
            return
        tokens = self._tokens(llm, messages)
        blank = [*messages[:-1], {"role": messages[-1]["role"], "content": ""}]
        k = _common_prefix(tokens, self._tokens(llm, blank))
        if k == 0 or k >= len(tokens):
            llm.reset()  # read whole, from position 0
            self._opening = None
            return
        opening = tuple(tokens[:k])
        if self._opening == opening and llm.n_tokens >= k:
            llm.n_tokens = k  # what followed the opening is evaluated again, from there
            return
        llm.reset()
        llm.eval(list(opening))
        self._opening = opening

    def _tokens(self, llm: Any, messages: list[dict[str, str]]) -> list[int]:
        formatted = self._formatter(messages=messages)
        text = formatted.prompt.encode("utf-8")
        return list(llm.tokenize(text, add_bos=not formatted.added_special, special=True))

    def stream_chat(
        self, messages: list[dict[str, str]], max_tokens: int, *, refusal: bool = False
    ) -> Iterator[str]:
        """Deltas as the model writes them. The model runs in a thread of its own that holds
        the lock and queues its deltas, so a reader that is slow, stalled or gone (a
        streaming client) never keeps the model from the next answer; a reader that stops
        early makes generation stop at the next token. A prompt answered before in full is
        answered again from `replies`, without the model."""
        gated = refusal and self._refusal_probability > 0  # not for rewrites
        key = Replies.key("chat", messages, max_tokens, gated and self._refusal_probability)
        said = self.replies.get(key)
        if said is not None:
            yield from said
            return
        deltas: queue.Queue[str | BaseException | None] = queue.Queue()
        stop = threading.Event()
        worker = threading.Thread(
            target=self._generate,
            args=(messages, max_tokens, gated, deltas, stop, key),
            name="kb-llm",
            daemon=True,
        )
        worker.start()
        try:
            while (item := deltas.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()

    def _generate(
        self,
        messages: list[dict[str, str]],
        max_tokens: int,
        gated: bool,
        deltas: queue.Queue[str | BaseException | None],
        stop: threading.Event,
        key: str,
    ) -> None:
        said: list[str] = []
        try:
            with self._lock:
                llm = self._load()
                self._prime(llm, messages)
                gate = RefusalGate(self._refusal_token, self._refusal_probability)
                for part in llm.create_chat_completion(
                    messages=messages,
                    max_tokens=max_tokens,
                    temperature=0.0,
                    stream=True,
                    logits_processor=_processors(gate) if gated else None,
                ):
                    if stop.is_set():
                        break
                    delta = part["choices"][0]["delta"].get("content")
                    if delta:
                        said.append(delta)
                        deltas.put(delta)
                else:  # the whole reply, not one its reader cut short
                    self.replies.put(key, tuple(said))
        except BaseException as exc:  # handed to the reader, which raises it
            deltas.put(exc)
        finally:
            deltas.put(None)

    def refusal_probability(self, messages: list[dict[str, str]]) -> float:
        """The probability of the refusal's opening token as the answer's first token."""
        return self.opening_probabilities(messages, [[REFUSAL_SENTENCE]])[0]

    def opening_probabilities(
        self, messages: list[dict[str, str]], openings: Sequence[Sequence[str]]
    ) -> list[float]:
        """For each group of openings, the probability that the reply's first token is the
        first token of one of them: one prompt evaluation, no text generated (none for a
        prompt and openings measured before)."""
        key = Replies.key("openings", messages, [list(group) for group in openings])
        known = self.replies.get(key)
        if known is not None:
            return list(known)
        with self._lock:
            llm = self._load()
            self._prime(llm, messages)
            probe = FirstTokenProbe()
            llm.create_chat_completion(
                messages=messages,
                max_tokens=1,
                temperature=0.0,
                logits_processor=_processors(probe),
            )
            groups = [{self._first_token(llm, text) for text in group} for group in openings]
        assert probe.probabilities is not None
        found = [float(sum(probe.probabilities[t] for t in group)) for group in groups]
        self.replies.put(key, tuple(found))
        return found

    @staticmethod
    def _first_token(llm: Any, text: str) -> int:
        return int(llm.tokenize(text.encode(), add_bos=False, special=False)[0])


def _chat_formatter(llm: Any) -> Any:
    """The formatter llama-cpp builds from the model's own chat template (None when the
    model has none: prompts are then read whole, without reuse)."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    template = llm.metadata.get("tokenizer.chat_template")
    if llm.chat_format != "chat_template.default" or not template:
        return None
    eos, bos = llm.token_eos(), llm.token_bos()
    return Jinja2ChatFormatter(
        template=template,
        eos_token=llm._model.token_get_text(eos) if eos != -1 else "",
        bos_token=llm._model.token_get_text(bos) if bos != -1 else "",
        stop_token_ids=[eos],
    )


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


class OpenAIChat:
    """An OpenAI-compatible `/chat/completions` endpoint, streamed over SSE."""

    def __init__(self, config: GeneratorConfig) -> None:
        self._config = config

    def stream_chat(
        self, messages: list[dict[str, str]], max_tokens: int, *, refusal: bool = False
    ) -> Iterator[str]:
        import httpx

        c = self._config
        headers = {"Authorization": f"Bearer {c.api_key}"} if c.api_key else {}
        body = {
            "model": c.model,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": 0.0,
            "stream": True,
        }
        url = c.base_url.rstrip("/") + "/chat/completions"
        for attempt in range(c.retries + 1):
            started = False
            try:
                with httpx.stream(
                    "POST", url, json=body, headers=headers, timeout=c.timeout_s
                ) as response:
                    if response.status_code >= 400:
                        response.read()
                        raise GeneratorError(
                            f"{url} answered {response.status_code}: {response.text[:200]}",
                            status=response.status_code,
                        )
                    for delta in _sse_deltas(response.iter_lines()):
                        started = True
                        yield delta
                return
            except (httpx.TransportError, GeneratorError) as exc:
                retryable = isinstance(exc, httpx.TransportError) or (
                    isinstance(exc, GeneratorError) and exc.retryable
                )
                if started or not retryable or attempt == c.retries:
                    status = exc.status if isinstance(exc, GeneratorError) else None
                    raise GeneratorError(f"generation at {url} failed: {exc}", status) from exc
                log.warning(
                    "generation attempt %d at %s failed (%s); retrying", attempt + 1, url, exc
                )
                time.sleep(0.5 * 2**attempt)


def _sse_deltas(lines: Iterator[str]) -> Iterator[str]:
    for line in lines:
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            return
        choices = json.loads(data).get("choices") or [{}]
        delta = (choices[0].get("delta") or {}).get("content")
        if delta:
            yield delta


def _local(config: GeneratorConfig, embedder: Embedder) -> Generator:
    if config.model_path is None:
        raise ConfigurationError("KB_LLM_MODEL_PATH is not set")
    try:
        import llama_cpp  # noqa: F401
    except ImportError as exc:
        raise ConfigurationError(
            "llama-cpp-python is not installed: run `make install`, or choose "
            "KB_GENERATOR=extractive or openai"
        ) from exc
    chat = LlamaCppChat(
        config.model_path,
        config.context_tokens,
        config.threads,
        config.refusal_probability,
        config.replies_kept,
    )
    return _prompted("local", chat, config, embedder)


def _openai(config: GeneratorConfig, embedder: Embedder) -> Generator:
    return _prompted("openai", OpenAIChat(config), config, embedder)


def _prompted(
    name: str, model: ChatModel, config: GeneratorConfig, embedder: Embedder
) -> PromptedGenerator:
    quoted = [Shape.PROCEDURE] * config.quote_steps + [Shape.PROJECTS] * config.quote_projects
    composer = ExtractiveGenerator(embedder) if quoted else None
    excerpter = _excerpter(config, embedder)
    return PromptedGenerator(name, model, config.max_answer_tokens, excerpter, composer, quoted)


def _excerpter(config: GeneratorConfig, embedder: Embedder) -> Excerpts | None:
    if config.context_words <= 0:
        return None
    return functools.partial(excerpts, embedder=embedder, max_words=config.context_words)


def _extractive(config: GeneratorConfig, embedder: Embedder) -> Generator:
    return ExtractiveGenerator(embedder)


GENERATORS: dict[str, Callable[[GeneratorConfig, Embedder], Generator]] = {
    "local": _local,
    "openai": _openai,
    "extractive": _extractive,
}


def local_available(config: GeneratorConfig) -> bool:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return False
    return config.model_path is not None and config.model_path.is_file()


def make_judge(
    config: GeneratorConfig, generator: Generator, options: JudgeOptions
) -> AnswerJudge | None:
    """The local model as the judge of the extractive composer's answers, when it is
    installed (assistant/answerability.py); None otherwise: the model's own answers are
    refused by its refusal gate instead."""
    if generator.name != "extractive" or config.model_path is None or not local_available(config):
        return None
    chat = LlamaCppChat(
        config.model_path, config.context_tokens, config.threads, 0.0, config.replies_kept
    )
    return AnswerJudge(chat, options)


def make_generator(name: str, config: GeneratorConfig, embedder: Embedder) -> Generator:
    """`auto` is the local model when it is installed, else the extractive composer."""
    if name == "auto":
        name = "local" if local_available(config) else "extractive"
        log.info("generator: %s", name)
    if name not in GENERATORS:
        raise ConfigurationError(
            f"unknown generator '{name}': use one of auto, {', '.join(GENERATORS)}"
        )
    return GENERATORS[name](config, embedder)
