"""Side by side with Parsl: the same three-app workflow, tracked by Parsl and by telemetry-sdk.

Parsl is installed from PyPI into the benchmark's own virtual environment (``bench/.venv``,
created on first use; not a project dependency). Each run is a fresh process; a loopback UDP
socket in this process stands in for the tracking host. Both trackers are pointed at it at
run time (Parsl by changing ``UsageTracker.__init__`` defaults in ``_parsl_workflow.py``), and
both resolve their tracking name through ``_resolver/sitecustomize.py``, which either answers
127.0.0.1 at once or never answers. Parsl's files are never edited.

Three Parsl variants: as released (level 0 and 3), and level 3 with the obvious fix of Parsl
issue #4038 simulated at run time (``_resolver/bench_parsl_fix.py``), because as released
Parsl sends nothing.

    python bench/parsl_compare.py                 # 5 runs per case, 3 with the hanging resolver
    python bench/parsl_compare.py --runs 10 --hang-runs 5
    python bench/parsl_compare.py --quick         # telemetry-sdk only, one run each, no Parsl
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

from _common import (
    BENCH,
    RESOLVER_DIR,
    UdpCounter,
    clean_env,
    fmt_ms,
    fmt_s,
    machine_line,
    median,
    print_table,
    verdict,
)

PARSL_VERSION = "2026.10.26"
VENV = BENCH / ".venv"
TRACKING_NAMES = "tracking.parsl-project.org,tracking.bench.invalid"
CHILD_TIMEOUT = 120.0


@dataclass
class Case:
    label: str
    tracker: str  # "parsl", "parsl-fixed" or "sdk"
    level: int
    resolver: str  # "loopback" or "hang"
    walls: list[float] = field(default_factory=list)
    cleanups: list[float] = field(default_factory=list)
    exits: list[float] = field(default_factory=list)
    delivered: int = 0
    expected: int = 0
    failures: int = 0
    #: Runs whose datagrams were counted (timed runs plus delivery-only runs).
    counted: int = 0

    @property
    def family(self) -> str:
        return "sdk" if self.tracker == "sdk" else "parsl"


def venv_python() -> str:
    return str(VENV / "bin" / "python")


def ensure_parsl(version: str) -> str:
    """Create ``bench/.venv`` with ``parsl==version`` unless it is there; return its version."""
    probe = [venv_python(), "-c", "import parsl; print(parsl.__version__)"]
    if (VENV / "bin" / "python").exists():
        found = subprocess.run(probe, capture_output=True, text=True, check=False).stdout.strip()
        if found == version:
            return found
    print(f"creating {VENV} with parsl=={version} (once) ...", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run(
        [venv_python(), "-m", "pip", "install", "--quiet", f"parsl=={version}"],
        check=True,
    )
    return subprocess.run(probe, capture_output=True, text=True, check=True).stdout.strip()


def run_once(case: Case, counter: UdpCounter, state_dir: str) -> None:
    if case.family == "parsl":
        cmd = [venv_python(), str(BENCH / "_parsl_workflow.py"), str(case.level), str(counter.port)]
        if case.tracker == "parsl-fixed":
            cmd.append("--fixed")
    else:
        cmd = [sys.executable, str(BENCH / "_sdk_workflow.py"), str(case.level), str(counter.port)]
    env = clean_env(
        PYTHONPATH=str(RESOLVER_DIR),
        BENCH_RESOLVER=case.resolver,
        BENCH_NAMES=TRACKING_NAMES,
        XDG_STATE_HOME=f"{state_dir}/state",
        XDG_CONFIG_HOME=f"{state_dir}/config",
    )
    counter.drain(0.0)
    began = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd, env=env, capture_output=True, text=True, timeout=CHILD_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        case.failures += 1
        print(f"  {case.label}: timed out after {CHILD_TIMEOUT:.0f} s", file=sys.stderr)
        return
    wall = time.perf_counter() - began
    exited = time.time()
    got = counter.drain(0.3)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        case.failures += 1
        print(f"  {case.label}: exit {proc.returncode}\n{proc.stderr[-2000:]}", file=sys.stderr)
        return
    timings = json.loads(lines[-1])
    case.walls.append(wall)
    case.cleanups.append(timings["cleanup"])
    case.exits.append(exited - timings["end"])
    case.delivered += sum(1 for d in got if d[:1] == b"1")
    case.expected += 2 if case.level == 3 else (1 if case.level else 0)
    case.counted += 1


def build_cases(with_parsl: bool) -> list[Case]:
    parsl = f"Parsl {PARSL_VERSION}"
    cases = []
    for resolver in ("loopback", "hang"):
        if with_parsl:
            cases += [
                Case(parsl, "parsl", 0, resolver),
                Case(parsl, "parsl", 3, resolver),
                Case(f"{parsl}, #4038 fix simulated", "parsl-fixed", 3, resolver),
            ]
        cases += [
            Case("telemetry-sdk", "sdk", 0, resolver),
            Case("telemetry-sdk", "sdk", 3, resolver),
        ]
    return cases


def level0(cases: list[Case], case: Case) -> Case:
    return next(
        c for c in cases if c.family == case.family and c.level == 0 and c.resolver == case.resolver
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per case, resolver answering")
    parser.add_argument("--hang-runs", type=int, default=3, help="runs per case, resolver hanging")
    parser.add_argument(
        "--released-runs",
        type=int,
        default=20,
        help="runs of Parsl as released at level 3 (resolver answering), to count deliveries",
    )
    parser.add_argument("--parsl-version", default=PARSL_VERSION)
    parser.add_argument("--no-parsl", action="store_true", help="telemetry-sdk cases only")
    parser.add_argument("--quick", action="store_true", help="one run each, telemetry-sdk only")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.hang_runs, args.no_parsl = 1, 1, True

    print(machine_line())
    if not args.no_parsl:
        version = ensure_parsl(args.parsl_version)
        print(f"# Parsl {version} from PyPI in {VENV}")
    cases = build_cases(not args.no_parsl)
    with UdpCounter() as counter, tempfile.TemporaryDirectory() as state_dir:
        # Interleave the cases, so that drift on a shared machine hits them all alike.
        for resolver, runs in (("loopback", args.runs), ("hang", args.hang_runs)):
            for i in range(runs):
                for case in (c for c in cases if c.resolver == resolver):
                    print(
                        f"  run {i + 1}/{runs}: {case.label}, level {case.level}, resolver {resolver}",
                        file=sys.stderr,
                        flush=True,
                    )
                    run_once(case, counter, state_dir)
        released = next(
            (
                c
                for c in cases
                if c.tracker == "parsl" and c.level == 3 and c.resolver == "loopback"
            ),
            None,
        )
        extra_runs = max(0, args.released_runs - args.runs) if released is not None else 0
        for i in range(extra_runs):
            assert released is not None
            print(
                f"  extra run {i + 1}/{extra_runs}: {released.label}, level 3 (deliveries)",
                file=sys.stderr,
                flush=True,
            )
            # Delivery-only runs: counted, but kept out of the timing medians.
            scratch = Case(released.label, released.tracker, released.level, released.resolver)
            run_once(scratch, counter, state_dir)
            released.delivered += scratch.delivered
            released.expected += scratch.expected
            released.counted += scratch.counted
            released.failures += scratch.failures

    rows = []
    for case in cases:
        base = level0(cases, case)
        extra = median(case.walls) - median(base.walls) if case is not base else 0.0
        rows.append(
            [
                case.label,
                case.level,
                "answers" if case.resolver == "loopback" else "never answers",
                len(case.walls),
                fmt_s(median(case.walls)),
                f"{extra * 1e3:+,.0f} ms",
                fmt_ms(median(case.cleanups)),
                fmt_ms(median(case.exits)),
                f"{case.delivered}/{case.expected}"
                + (f" ({case.failures} failed)" if case.failures else ""),
            ]
        )
    print_table(
        "Three-app workflow, one fresh process per run (medians)",
        [
            "tracker",
            "level",
            "resolver",
            "runs",
            "whole script",
            "over level 0",
            "cleanup",
            "exit after main",
            "datagrams delivered",
        ],
        rows,
    )

    def find(tracker: str, level: int, resolver: str) -> Case | None:
        return next(
            (
                c
                for c in cases
                if c.tracker == tracker and c.level == level and c.resolver == resolver
            ),
            None,
        )

    checks = []
    for resolver, word in (("loopback", "answers"), ("hang", "never answers")):
        sdk3, sdk0 = find("sdk", 3, resolver), find("sdk", 0, resolver)
        assert sdk3 is not None
        assert sdk0 is not None
        sdk_extra = median(sdk3.walls) - median(sdk0.walls)
        checks.append(
            [
                f"telemetry-sdk level 3 cost over level 0, resolver {word}",
                f"{sdk_extra * 1e3:+,.1f} ms",
                "<= 250 ms" if resolver == "hang" else "-",
                verdict(sdk_extra <= 0.25) if resolver == "hang" else "-",
            ]
        )
        checks.append(
            [
                f"telemetry-sdk level 3 close(), resolver {word}",
                fmt_ms(median(sdk3.cleanups)),
                "<= 5 ms" if resolver == "loopback" else "-",
                verdict(median(sdk3.cleanups) <= 0.005) if resolver == "loopback" else "-",
            ]
        )
        if resolver == "loopback":
            ok = sdk3.expected > 0 and sdk3.delivered == sdk3.expected and not sdk3.failures
            checks.append(
                [
                    "telemetry-sdk level 3 datagrams delivered",
                    f"{sdk3.delivered}/{sdk3.expected}",
                    "100 %",
                    verdict(ok),
                ]
            )
        fixed, p0 = find("parsl-fixed", 3, resolver), find("parsl", 0, resolver)
        if fixed is not None and p0 is not None:
            parsl_extra = median(fixed.walls) - median(p0.walls)
            ratio = parsl_extra / sdk_extra if sdk_extra > 0 else float("inf")
            checks.append(
                [
                    f"Parsl (#4038 fixed) level 3 cost over level 0, resolver {word}",
                    f"{parsl_extra * 1e3:+,.0f} ms ({ratio:,.0f}x telemetry-sdk's)"
                    if sdk_extra > 0
                    else f"{parsl_extra * 1e3:+,.0f} ms",
                    "-",
                    "-",
                ]
            )
        released = find("parsl", 3, resolver)
        if released is not None and resolver == "loopback":
            checks.append(
                [
                    f"Parsl {PARSL_VERSION} as released, level 3 datagrams delivered",
                    f"{released.delivered}/{released.expected} in {released.counted} runs",
                    "(issue #4038: 0)",
                    "-",
                ]
            )
    print_table("Targets and ratios (same run)", ["figure", "measured", "target", "result"], checks)
    failed = sum(c.failures for c in cases)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
