"""Old against new: ``python -m bench.edge`` on two checkouts, alternating, and one table of medians.

    python -m bench.edge.compare OLD_CHECKOUT NEW_CHECKOUT [--pairs 3] [--duration 5]

Each checkout runs its own harness with its own virtual environment (``<checkout>/.venv``), one
repetition at a time (``--repetitions 1 --no-readme``): old, new, old, new, ... so that the load of
the machine, which moves absolute figures a lot on shared cores, falls on both alike. The medians over
the pairs are printed as a Markdown table (req/s, p99, CPU per request, and the API's and the
verifier's share of it), followed by each side's goal ratios, and the raw outputs are kept in
``--keep`` when given.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

#: The per-process columns worth showing beside the total.
COMPONENTS = ("our API", "verifier", "oauth2-proxy", "edge nginx")


@dataclass
class Run:
    """One harness output, parsed: row label -> column -> number."""

    rows: dict[str, dict[str, float]] = field(default_factory=dict)
    components: dict[str, dict[str, float]] = field(default_factory=dict)
    goals: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _number(cell: str) -> float | None:
    text = cell.strip().replace(",", "").replace("*", "").rstrip("x").replace(" µs", "")
    try:
        return float(text)
    except ValueError:
        return None


def parse(output: str) -> Run:
    run = Run()
    table: list[list[str]] = []
    tables: list[list[list[str]]] = []
    for line in output.splitlines():
        if line.startswith("|"):
            table.append([cell.strip() for cell in line.strip().strip("|").split("|")])
            continue
        if table:
            tables.append(table)
            table = []
        if line.startswith(("A valid bearer", "The cache-miss row")):
            run.notes.append(line.strip())
    if table:
        tables.append(table)
    for rows in tables:
        header, body = rows[0], rows[2:]
        if header[:2] == ["path", "req/s"]:
            for cells in body:
                run.rows[cells[0]] = {
                    "rps": _number(cells[1]) or 0.0, "p99": _number(cells[3]) or 0.0,
                    "cpu": _number(cells[4]) or 0.0,
                }  # fmt: skip
        elif header[0] == "goal":
            for cells in body:
                run.goals[cells[0]] = cells[2]
        elif header[0] == "path":
            for cells in body:
                run.components[cells[0]] = {
                    name: _number(value) or 0.0 for name, value in zip(header[1:], cells[1:], strict=False)
                }
    return run


def harness(checkout: Path, duration: float, keep: Path | None, name: str, tokens: int) -> Run:
    command = [str(checkout / ".venv" / "bin" / "python"), "-m", "bench.edge", "--repetitions", "1",
               "--no-readme", "--duration", f"{duration:g}", "--tokens", str(tokens)]  # fmt: skip
    print(f"[compare] {name}: {' '.join(command[1:])} in {checkout}", file=sys.stderr, flush=True)
    done = subprocess.run(command, cwd=checkout, capture_output=True, text=True, check=False)
    if keep is not None:
        (keep / f"{name}.out").write_text(done.stdout + "\n--- stderr ---\n" + done.stderr)
    if done.returncode != 0:
        raise SystemExit(f"{name} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return parse(done.stdout)


def _median(runs: list[Run], row: str, column: str, *, components: bool = False) -> float | None:
    values = [(r.components if components else r.rows).get(row, {}).get(column) for r in runs]
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _cell(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def render(old: list[Run], new: list[Run]) -> str:
    lines = [
        f"{len(old)} pairs (old, new, old, new, ...), one repetition each, medians over the pairs.",
        "",
        "| path | req/s old | req/s new | p99 ms old | p99 ms new | CPU µs/req old | CPU µs/req new "
        "| new/old | our API µs old | our API µs new | verifier µs old | verifier µs new |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in old[0].rows:
        cpu_old, cpu_new = _median(old, row, "cpu"), _median(new, row, "cpu")
        ratio = f"{cpu_new / cpu_old:.2f}x" if cpu_old and cpu_new else "—"
        lines.append(
            f"| {row} | {_cell(_median(old, row, 'rps'))} | {_cell(_median(new, row, 'rps'))} "
            f"| {_cell(_median(old, row, 'p99'), 2)} | {_cell(_median(new, row, 'p99'), 2)} "
            f"| {_cell(cpu_old)} | {_cell(cpu_new)} | {ratio} "
            f"| {_cell(_median(old, row, 'our API', components=True))} "
            f"| {_cell(_median(new, row, 'our API', components=True))} "
            f"| {_cell(_median(old, row, 'verifier', components=True))} "
            f"| {_cell(_median(new, row, 'verifier', components=True))} |"
        )
    lines += ["", "| goal | " + " | ".join(f"old #{i + 1}" for i in range(len(old)))
              + " | " + " | ".join(f"new #{i + 1}" for i in range(len(new))) + " |",
              "|---|" + "---:|" * (len(old) + len(new))]  # fmt: skip
    for goal in old[0].goals:
        cells = [r.goals.get(goal, "—") for r in old] + [r.goals.get(goal, "—") for r in new]
        lines.append(f"| {goal} | " + " | ".join(cells) + " |")
    lines += ["", "Notes of the last pair:", ""]
    lines += [f"- old: {note}" for note in old[-1].notes] + [f"- new: {note}" for note in new[-1].notes]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.edge.compare", description=__doc__.split("\n")[0])
    parser.add_argument("old", type=Path, help="checkout of the old commit, with its own .venv")
    parser.add_argument("new", type=Path, help="checkout of the new commit, with its own .venv")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--keep", type=Path, help="folder for each run's raw output")
    parser.add_argument(
        "--tokens", type=int, default=10_000,
        help="distinct tokens for the cache-miss row (enough for every request of a run to miss)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    old: list[Run] = []
    new: list[Run] = []
    for i in range(args.pairs):
        old.append(harness(args.old.resolve(), args.duration, args.keep, f"old-{i + 1}", args.tokens))
        new.append(harness(args.new.resolve(), args.duration, args.keep, f"new-{i + 1}", args.tokens))
    print(render(old, new))
    return 0


if __name__ == "__main__":
    sys.exit(main())
