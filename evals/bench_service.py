"""Service benchmark: the HTTP API as clients meet it, a real `kb serve` process on loopback.

For `POST /v1/search` and `POST /v1/ask` (extractive generator), N concurrent clients (1, 8, 32
by default) send the golden set's questions, each level bounded in requests and time and served
by a fresh server (so no level reuses vectors an earlier one cached); the table
gives throughput, p50/p95/p99 latency and errors (any non-2xx or transport error). With
`--local-ttft N` the server is restarted with the local model and N questions are streamed one
at a time from `POST /v1/ask/stream`, giving time to the first token event and to the final
event.

    python -m evals.bench_service [--levels 1,8,32] [--requests 300] [--seconds 60]
                                  [--local-ttft 5] [--backends torch,onnx] [--routes search]

Results go to data/bench/service.json. The server runs with one torch thread per request
(`KB_SERVE_THREADS=1`, the default) and no rate limit.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from api.assembly import build_embedder, build_ingester, build_store
from api.keys import KeyStore, Role
from evals.bench_answers import product_settings
from evals.benchkit import REPO, Column, configure_runtime, format_table, machine, percentiles
from evals.golden import load_golden

KB = Path(sys.executable).parent / "kb"


@dataclass
class LevelResult:
    route: str
    clients: int
    backend: str = "auto"  # KB_SERVE_EMBED_BACKEND of the server
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0

    def summary(self) -> dict[str, Any]:
        done = len(self.latencies) + sum(self.errors.values())
        return {
            "route": self.route,
            "backend": self.backend,
            "clients": self.clients,
            "requests": done,
            "errors": dict(self.errors),
            "throughput_rps": round(len(self.latencies) / self.wall_s, 2) if self.wall_s else 0,
            "latency_ms": percentiles([s * 1000 for s in self.latencies], (50, 95, 99), 1),
        }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prepare(workdir: Path) -> str:
    """Ingest corpus/ under workdir (unchanged documents are skipped on a rerun); an admin key."""
    settings = product_settings(workdir)
    store = build_store(settings)
    report = build_ingester(settings, store, build_embedder(settings)).sync(REPO / "corpus")
    if report.failed:
        sys.exit(f"ingest failed: {[f.to_json() for f in report.failed]}")
    keys = KeyStore(settings.keys_path)
    key = keys.create("bench_service", Role.ADMIN)
    keys.close()
    return key


@contextmanager
def server(workdir: Path, generator: str, backend: str = "auto") -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "KB_SERVE_EMBED_BACKEND": backend,
        "KB_DATA_DIR": str(workdir),
        "KB_GENERATOR": generator,
        "KB_RATE_LIMIT_PER_MINUTE": "0",
        "KB_LOG_LEVEL": "WARNING",
        "KB_LLM_MODEL_PATH": str(REPO / product_settings(workdir).llm_model_path),
    }
    log = (workdir / f"server-{generator}.log").open("w")
    process = subprocess.Popen(
        [str(KB), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            if process.poll() is not None:
                sys.exit(f"server exited {process.returncode}: see {log.name}")
            try:
                if httpx.get(f"{base}/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                sys.exit("server did not start within 300 s")
            time.sleep(0.5)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


async def run_level(
    base: str,
    key: str,
    route: str,
    bodies: Sequence[dict[str, Any]],
    clients: int,
    max_requests: int,
    max_seconds: float,
) -> LevelResult:
    result = LevelResult(route, clients)
    counter = itertools.count()
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=300) as c:
        started = time.perf_counter()
        deadline = started + max_seconds

        async def client() -> None:
            while (n := next(counter)) < max_requests and time.perf_counter() < deadline:
                body = bodies[n % len(bodies)]
                sent = time.perf_counter()
                try:
                    response = await c.post(route, json=body)
                except httpx.HTTPError as exc:
                    name = type(exc).__name__
                    result.errors[name] = result.errors.get(name, 0) + 1
                    continue
                if response.is_success:
                    result.latencies.append(time.perf_counter() - sent)
                else:
                    code = str(response.status_code)
                    result.errors[code] = result.errors.get(code, 0) + 1

        await asyncio.gather(*(client() for _ in range(clients)))
        result.wall_s = time.perf_counter() - started
    return result


def stream_ttft(base: str, key: str, questions: Sequence[str]) -> list[dict[str, Any]]:
    rows = []
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base, headers=headers, timeout=600) as c:
        for question in questions:
            sent = time.perf_counter()
            first = None
            refused = None
            with c.stream("POST", "/v1/ask/stream", json={"question": question}) as response:
                response.raise_for_status()
                for line in response.iter_lines():
                    if line.startswith("event: token") and first is None:
                        first = time.perf_counter() - sent
                    elif line.startswith("data: ") and first is not None and refused is None:
                        data = json.loads(line[6:])
                        refused = data.get("refused")
            rows.append(
                {
                    "question": question,
                    "first_token_s": round(first, 2) if first is not None else None,
                    "total_s": round(time.perf_counter() - sent, 2),
                    "refused": refused,
                }
            )
            print(f"  ttft {rows[-1]}", file=sys.stderr, flush=True)
    return rows


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", default="1,8,32", help="Concurrent clients per level.")
    parser.add_argument("--requests", type=int, default=300, help="Search requests per level.")
    parser.add_argument("--ask-requests", type=int, default=96, help="Ask requests per level.")
    parser.add_argument("--seconds", type=float, default=60, help="Time bound per level.")
    parser.add_argument("--local-ttft", type=int, default=5, help="Streamed local asks (0: skip).")
    parser.add_argument("--workdir", type=Path, default=REPO / "data" / "bench" / "service")
    parser.add_argument(
        "--backends",
        default="auto",
        help="KB_SERVE_EMBED_BACKEND values to compare on /v1/search, taking turns per level "
        "(e.g. torch,onnx).",
    )
    parser.add_argument("--routes", default="search,ask", help="Routes to load: search, ask.")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    configure_runtime()
    args.workdir.mkdir(parents=True, exist_ok=True)
    key = prepare(args.workdir)
    golden = load_golden()
    questions = [q.question for q in golden]
    levels = [int(n) for n in args.levels.split(",")]
    searches = [{"query": q, "k": 5} for q in questions]
    asks = [{"question": q} for q in questions]
    load_before = os.getloadavg()
    results: list[LevelResult] = []
    routes: dict[str, tuple[str, list[dict[str, Any]], int, list[str]]] = {
        "search": ("/v1/search", searches, args.requests, args.backends.split(",")),
        "ask": ("/v1/ask", asks, args.ask_requests, ["auto"]),
    }
    for name in args.routes.split(","):
        route, bodies, limit, backends = routes[name]
        for clients in levels:
            for backend in backends:
                # a fresh server per level: no level answers from vectors an earlier one cached
                with server(args.workdir, "extractive", backend) as base:
                    level = asyncio.run(
                        run_level(base, key, route, bodies, clients, limit, args.seconds)
                    )
                level.backend = backend
                results.append(level)
                print(f"  {level.summary()}", file=sys.stderr, flush=True)
    ttft: list[dict[str, Any]] = []
    if args.local_ttft and (REPO / product_settings(args.workdir).llm_model_path).exists():
        answerable = [q.question for q in golden if q.answerable][: args.local_ttft]
        with server(args.workdir, "local") as base:
            ttft = stream_ttft(base, key, answerable)
    summaries = [r.summary() for r in results]
    out = {
        "machine": machine(),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "levels": summaries,
        "local_stream": ttft,
    }
    path = REPO / "data" / "bench" / "service.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    columns = [
        Column("route", 12, "<"),
        Column("backend", 10, "<"),
        Column("clients", 8),
        Column("requests", 10),
        Column("errors", 8),
        Column("req/s", 8),
        Column("p50 ms", 9),
        Column("p95 ms", 9),
        Column("p99 ms", 9),
    ]
    rows = [
        [
            s["route"],
            s["backend"],
            s["clients"],
            s["requests"],
            sum(s["errors"].values()),
            s["throughput_rps"],
            s["latency_ms"].get("p50"),
            s["latency_ms"].get("p95"),
            s["latency_ms"].get("p99"),
        ]
        for s in summaries
    ]
    print("\n".join(format_table(columns, rows)))
    if ttft:
        firsts = [r["first_token_s"] for r in ttft if r["first_token_s"] is not None]
        totals = [r["total_s"] for r in ttft]
        print(
            f"local stream: first token {percentiles(firsts, (50, 95), 2)} s, "
            f"total {percentiles(totals, (50, 95), 2)} s over {len(ttft)} questions"
        )
    print(f"load average before/after: {out['load_before']} / {out['load_after']}")
    errors = sum(sum(s["errors"].values()) for s in summaries)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
