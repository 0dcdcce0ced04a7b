"""`make bench BENCH_ARGS="--against REV"`: this checkout's order path against another
revision's, on the same machine at the same time.

These machines change speed several-fold within minutes, so figures taken one run after
another compare the machine's moods as much as the code. Here both stacks run side by side
(each in a database and broker namespace of its own, `REV` from a git worktree with its own
virtualenv), and one load generator places orders on each in turn, in short phases, the order
of each round swapped: each round's ratio compares the two under the same conditions, and the
median of the ratios is the figure to quote.
"""

import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from bookstore_testing.phases import (
    machine_busy_ms,
    order_client,
    percentile,
    place_orders,
    prepare_orders,
)
from bookstore_testing.stacks import DEMO_PASSWORD, standalone_stack

REPO = Path(__file__).resolve().parents[3]


class AgainstError(RuntimeError):
    pass


def _uv() -> str:
    found = os.environ.get("UV") or shutil.which("uv") or str(Path.home() / ".local/bin/uv")
    if not Path(found).exists():
        raise AgainstError("uv is needed to build the other revision's environment: make bench")
    return found


def _git(*args: str) -> str:
    done = subprocess.run(  # noqa: S603 - git, with our own arguments
        ["git", "-C", str(REPO), *args],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise AgainstError(f"git {' '.join(args)}: {done.stderr.strip() or 'failed'}")
    return done.stdout.strip()


@contextlib.contextmanager
def checkout(rev: str) -> Iterator[tuple[str, Path]]:
    """`rev` in a worktree of its own with its locked dependencies installed: its commit and
    its interpreter. Removed afterwards."""
    try:
        commit = _git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    except AgainstError:
        raise AgainstError(f"no commit named {rev!r} in this repository") from None
    where = Path(tempfile.mkdtemp(prefix="bookstore-against-")) / "tree"
    _git("worktree", "add", "--detach", str(where), commit)
    try:
        print(f"against {commit[:7]}: installing its locked dependencies ...", flush=True)
        subprocess.run(  # noqa: S603 - uv, with our own arguments
            [_uv(), "sync", "--frozen", "--all-packages", "--quiet"], cwd=where, check=True
        )
        yield commit, where / ".venv" / "bin" / "python"
    finally:
        _git("worktree", "remove", "--force", str(where))
        shutil.rmtree(where.parent, ignore_errors=True)


async def _phase(
    gateway: Any, books: list[str], customers: list[dict[str, str]], seconds: float
) -> dict[str, float]:
    busy, started = machine_busy_ms(), time.perf_counter()
    latencies, outcomes = await place_orders(gateway, books, customers, seconds)
    elapsed, cpu = time.perf_counter() - started, machine_busy_ms() - busy
    return {
        "orders_per_second": round(len(latencies) / elapsed, 1),
        "p99_ms": round(percentile(latencies, 99) * 1000, 1),
        "machine_cpu_ms_per_order": round(cpu / max(len(latencies), 1), 2),
        "not_confirmed": len(outcomes) - outcomes.count("confirmed"),
    }


async def duel(
    python: Path, *, clients: int, rounds: int, phase_seconds: float
) -> dict[str, list[dict[str, float]]]:
    """Both stacks up, then `rounds` rounds of a phase on each (the order swapped each round)."""
    env = {"LOG_LEVEL": "WARNING"}
    async with AsyncExitStack() as stacks:
        ours, _ = await stacks.enter_async_context(standalone_stack("bench", env=env))
        theirs, _ = await stacks.enter_async_context(
            standalone_stack("against", env=env, python=str(python))
        )
        sides = {}
        for name, stack in (("ours", ours), ("theirs", theirs)):
            gateway = await stacks.enter_async_context(order_client(stack.url("gateway"), clients))
            books, customers = await prepare_orders(gateway, DEMO_PASSWORD, clients)
            await place_orders(gateway, books, customers, 2)  # warm-up, not measured
            sides[name] = (gateway, books, customers)
        results: dict[str, list[dict[str, float]]] = {"ours": [], "theirs": []}
        for number in range(1, rounds + 1):
            turn = ["ours", "theirs"] if number % 2 else ["theirs", "ours"]
            for name in turn:
                results[name].append(await _phase(*sides[name], phase_seconds))
            ours_now, theirs_now = results["ours"][-1], results["theirs"][-1]
            print(
                f"round {number}/{rounds}: ours {ours_now['orders_per_second']} orders/s, "
                f"theirs {theirs_now['orders_per_second']}",
                flush=True,
            )
    return results


FIGURES = (
    ("orders completed /s", "orders_per_second"),
    ("POST to final, p99 ms", "p99_ms"),
    ("machine CPU per order, ms", "machine_cpu_ms_per_order"),
)


def table(results: dict[str, list[dict[str, float]]], commit: str) -> str:
    theirs_label = f"{commit[:7]} (median)"
    rows = [f"{'':28} {'ours (median)':>14} {theirs_label:>16} {'ratio: median (min-max)':>26}"]
    for label, key in FIGURES:
        ours = [r[key] for r in results["ours"]]
        theirs = [r[key] for r in results["theirs"]]
        ratios = [a / b for a, b in zip(ours, theirs, strict=True) if b]
        spread = (
            f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})"
            if ratios
            else ""
        )
        ours_median, theirs_median = statistics.median(ours), statistics.median(theirs)
        rows.append(f"{label:28} {ours_median:>14g} {theirs_median:>16g} {spread:>26}")
    failed = sum(r["not_confirmed"] for side in results.values() for r in side)
    rows.append(f"orders not confirmed, both sides: {failed}")
    return "\n".join(rows)


def run(rev: str, *, clients: int, rounds: int, phase_seconds: float, out: str) -> int:
    try:
        with checkout(rev) as (commit, python):
            results = asyncio.run(
                duel(python, clients=clients, rounds=rounds, phase_seconds=phase_seconds)
            )
    except (AgainstError, subprocess.CalledProcessError) as exc:
        print(f"error: {exc}")
        return 1
    Path(out).write_text(
        json.dumps({"against": commit, "clients": clients, **results}, indent=2) + "\n"
    )
    print()
    print(table(results, commit))
    print(
        f"{clients} clients, {rounds} rounds of {phase_seconds:g} s on each side; written to {out}"
    )
    return 0
