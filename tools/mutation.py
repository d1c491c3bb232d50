"""Mutation testing of the pure core: ``controller/decide`` and the ``api`` model it reads, driven through mutmut.

Role: one entry point (``scripts/mutation``, or ``python -m tools.mutation``) for three kinds of run:

* the full run (no option): every mutant; its score is the one quoted in ``docs/design/mutation-testing.md``;
* ``--sample N``: N mutants drawn at random (the seed is printed; ``--seed`` replays a draw) — the step at the end
  of ``scripts/test``;
* ``--changed [REF]``: every mutant of the mutated files this branch changed since it left REF (default ``main``);
* ``PATTERN ...``: only the mutants whose name matches one of the fnmatch patterns (``'controller.decide.ttl.*'``).

mutmut copies the tree into ``mutants/`` (git-ignored) and runs, for each mutant, only the unit tests that call the
mutated function (``[tool.mutmut]`` in pyproject.toml says which files are mutated and which tests run). A mutant
that survives fails the run unless ``tools/mutation-equivalent.toml`` lists it as equivalent, with the reason.

Invariants: the product is never edited (mutmut works on its copy); ``mutants/`` is rebuilt for every run, so a
verdict never comes from a stale copy; an allow-list entry names the function and the exact original and mutated
lines, so an unrelated edit that renumbers mutants keeps the entry and an edit of that line drops it; the exit
status is 0 only when every mutant run got a verdict and the score (killed / non-equivalent) reaches ``--min-score``
(default 100: every mutant killed or allow-listed; ``scripts/test`` holds its sample to the 90 % goal of
``docs/design/mutation-testing.md`` and prints every survivor either way).
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import random
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ALLOW_LIST = ROOT / "tools" / "mutation-equivalent.toml"
WORK = ROOT / "mutants"
LOG = WORK / "run.log"

# mutmut's verdicts (``mutmut results``): a timeout or a crash is a mutant the tests noticed.
KILLED = frozenset({"killed", "timeout", "segfault", "caught by type check"})
SURVIVED = frozenset({"survived", "no tests"})


@dataclass(frozen=True)
class Equivalent:
    """One allow-list entry: a mutation of ``function`` turning ``original`` into ``mutant`` changes nothing."""

    function: str
    original: str
    mutant: str
    reason: str


@dataclass(frozen=True)
class Survivor:
    name: str
    status: str
    function: str
    original: str
    mutant: str
    diff: str


def mutmut_config() -> Mapping[str, object]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        config: Mapping[str, object] = tomllib.load(f)["tool"]["mutmut"]
    return config


def _strings(config: Mapping[str, object], key: str) -> list[str]:
    value = config.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SystemExit(f"pyproject.toml [tool.mutmut] {key}: expected a list of strings, got {value!r}")
    return list(value)


def mutated_files() -> list[Path]:
    """The files mutmut mutates, relative to the root: the same selection as its own (fnmatch on the path)."""
    config = mutmut_config()
    only, never = _strings(config, "only_mutate"), _strings(config, "do_not_mutate")
    files: list[Path] = []
    for source in _strings(config, "source_paths"):
        for path in sorted((ROOT / source).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if (not only or any(fnmatch.fnmatch(rel, p) for p in only)) and not any(
                fnmatch.fnmatch(rel, p) for p in never
            ):
                files.append(Path(rel))
    return files


def mutant_names(files: Iterable[Path]) -> list[str]:
    """Every mutant mutmut will generate for ``files``, by the names ``mutmut run`` accepts."""
    from mutmut.mutation.file_mutation import mutate_file_contents
    from mutmut.utils.format_utils import get_mutant_name

    names: list[str] = []
    for path in files:
        mutated = mutate_file_contents(str(path), (ROOT / path).read_text(encoding="utf-8"))
        names.extend(get_mutant_name(path, name) for name in mutated.mutant_names)
    return names


def function_of(mutant: str) -> str:
    """``api.records.xǁJobǁcondition__mutmut_3`` → ``api.records.Job.condition``; ``….x_f__mutmut_1`` → ``….f``."""
    mangled = mutant.partition("__mutmut_")[0]
    module, _, local = mangled.rpartition(".")
    if local.startswith("xǁ"):
        local = local[2:].replace("ǁ", ".")
    elif local.startswith("x_"):
        local = local[2:]
    return f"{module}.{local}"


@dataclass(frozen=True)
class Outside:
    """Functions (an fnmatch pattern over ``function_of`` names) of the mutated files that decide never uses."""

    function: str
    reason: str


def load_allow_list(path: Path = ALLOW_LIST) -> tuple[list[Equivalent], list[Outside]]:
    with path.open("rb") as f:
        data = tomllib.load(f)
    entries: list[Equivalent] = []
    for i, raw in enumerate(data.get("equivalent", [])):
        missing = [k for k in ("function", "reason") if not str(raw.get(k, "")).strip()]
        missing += [k for k in ("original", "mutant") if not isinstance(raw.get(k), str)]  # "" = a deleted line
        if missing:
            raise SystemExit(f"{path.name}: equivalent[{i}] lacks {', '.join(missing)}; every entry needs all four")
        entries.append(Equivalent(raw["function"], _norm(raw["original"]), _norm(raw["mutant"]), raw["reason"]))
    outside: list[Outside] = []
    for i, raw in enumerate(data.get("outside", [])):
        if not str(raw.get("function", "")).strip() or not str(raw.get("reason", "")).strip():
            raise SystemExit(f"{path.name}: outside[{i}] needs a function pattern and a reason")
        outside.append(Outside(raw["function"], raw["reason"]))
    return entries, outside


def is_outside(mutant: str, outside: Sequence[Outside]) -> bool:
    return any(fnmatch.fnmatchcase(function_of(mutant), o.function) for o in outside)


def _norm(code: str) -> str:
    return "\n".join(line.strip() for line in code.strip().splitlines())


def _mutmut() -> str:
    exe = Path(sys.executable).parent / "mutmut"
    return str(exe) if exe.exists() else "mutmut"


def run_mutants(names: Sequence[str], jobs: int) -> None:
    """Run mutmut over ``names`` (all mutants when empty) in a fresh ``mutants/``; its progress goes to LOG."""
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir()
    with LOG.open("w", encoding="utf-8") as log:
        rc = subprocess.run(
            [_mutmut(), "run", "--max-children", str(jobs), *names],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            check=False,
        ).returncode
    if rc != 0:
        tail = LOG.read_text(encoding="utf-8", errors="replace").replace("\r", "\n").splitlines()[-40:]
        print("\n".join(tail), file=sys.stderr)
        raise SystemExit(f"mutmut run failed (exit {rc}); full output in {LOG.relative_to(ROOT)}")


def verdicts() -> dict[str, str]:
    out = subprocess.run(
        [_mutmut(), "results", "--all", "true"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    result: dict[str, str] = {}
    for line in out.splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if sep and "__mutmut_" in name:
            result[name] = status
    return result


def survivor(name: str, status: str) -> Survivor:
    diff = subprocess.run([_mutmut(), "show", name], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    lines = diff.splitlines()
    original = [ln[1:] for ln in lines if ln.startswith("-") and not ln.startswith("---")]
    mutant = [ln[1:] for ln in lines if ln.startswith("+") and not ln.startswith("+++")]
    return Survivor(name, status, function_of(name), _norm("\n".join(original)), _norm("\n".join(mutant)), diff)


def allowed(s: Survivor, allow: Sequence[Equivalent]) -> Equivalent | None:
    for entry in allow:
        if (entry.function, entry.original, entry.mutant) == (s.function, s.original, s.mutant):
            return entry
    return None


def _git(*args: str) -> str:
    out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"git {' '.join(args)} failed: {out.stderr.strip()} (--changed needs a ref that exists)")
    return out.stdout


def changed_files(ref: str, files: Sequence[Path]) -> list[Path]:
    """The mutated files this branch changed since it left ``ref`` (committed or not, new files included)."""
    base = _git("merge-base", ref, "HEAD").strip()
    touched = set(_git("diff", "--name-only", base, "--").split())
    touched |= set(_git("ls-files", "--others", "--exclude-standard").split())
    return [f for f in files if f.as_posix() in touched]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/mutation", description=__doc__.split("\n\n")[0] if __doc__ else "")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--sample", type=int, metavar="N", help="run N mutants drawn at random")
    mode.add_argument(
        "--changed", nargs="?", const="main", metavar="REF", help="run the mutants of files changed since leaving REF"
    )
    parser.add_argument(
        "patterns",
        nargs="*",
        metavar="PATTERN",
        help="only mutants whose name matches (fnmatch), e.g. 'controller.decide.ttl.*'",
    )
    parser.add_argument("--seed", type=int, help="seed of the --sample draw (printed by every sampled run)")
    parser.add_argument("--jobs", type=int, default=1, help="mutants run in parallel (default 1; the CPU is shared)")
    parser.add_argument(
        "--min-score",
        type=float,
        default=100.0,
        metavar="P",
        help="pass when at least P %% of the non-equivalent mutants run are killed (default 100: every one)",
    )
    args = parser.parse_args(argv)
    if not 0.0 <= args.min_score <= 100.0:
        parser.error("--min-score P: P is a percentage, from 0 to 100")
    if args.sample is not None and args.sample < 1:
        parser.error("--sample N: N must be at least 1")
    if args.jobs < 1:
        parser.error("--jobs N: N must be at least 1")

    os.chdir(ROOT)  # mutmut reads [tool.mutmut] from the working directory
    allow, outside = load_allow_list()
    files = mutated_files()
    started = time.monotonic()
    if args.changed is not None:
        files = changed_files(args.changed, files)
        if not files:
            print(f"mutation: no mutated file changed since {args.changed}: nothing to run")
            return 0
    generated = mutant_names(files)
    if args.patterns:
        generated = [n for n in generated if any(fnmatch.fnmatchcase(n, p) for p in args.patterns)]
    names = [n for n in generated if not is_outside(n, outside)]
    if not names:
        print("mutation: no mutant to run (none matches, or all are in functions decide does not use)")
        return 0
    chosen = names
    label = f"all {len(names)} mutants ({len(generated) - len(names)} more are in functions decide does not use)"
    if args.sample is not None:
        seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
        chosen = sorted(random.Random(seed).sample(names, min(args.sample, len(names))))  # noqa: S311 - a draw, not a secret
        label = f"{len(chosen)} of {len(names)} mutants, drawn with --seed {seed}"
    elif args.changed is not None:
        if not names:
            print(f"mutation: the files changed since {args.changed} have no mutants: nothing to run")
            return 0
        label = f"the {len(names)} mutants of {', '.join(f.as_posix() for f in files)} (changed since {args.changed})"
    print(f"mutation: running {label} (controller/decide and the api model it reads)", flush=True)
    run_mutants(chosen, args.jobs)

    status = verdicts()
    ran = {n: status.get(n, "not checked") for n in chosen}
    killed = [n for n, s in ran.items() if s in KILLED]
    unsure = sorted(n for n, s in ran.items() if s not in KILLED | SURVIVED)
    survivors = [survivor(n, s) for n, s in sorted(ran.items()) if s in SURVIVED]
    equivalent = [(s, e) for s in survivors if (e := allowed(s, allow)) is not None]
    live = [s for s in survivors if allowed(s, allow) is None]

    for s in live:
        print(f"\nSURVIVED ({s.status}): {s.name}\n{s.diff}")
    for name in unsure:
        print(f"\nNO VERDICT ({ran[name]}): {name}")
    if args.sample is None and args.changed is None and not args.patterns:  # a full run sees every survivor
        matched = {id(e) for _, e in equivalent}
        for e in allow:
            if id(e) not in matched:
                print(f"\nstale allow-list entry (no survivor matches it; remove it): {e.function}: {e.mutant!r}")

    judged = len(ran) - len(equivalent)
    score = 100.0 * len(killed) / judged if judged else 100.0
    elapsed = time.monotonic() - started
    print(
        f"\nmutation: {len(ran)} mutants, {len(killed)} killed, {len(live)} survived, {len(equivalent)} equivalent"
        f" (allow-listed), {len(unsure)} without a verdict; score {score:.1f} % of non-equivalent mutants"
        f" in {elapsed:.0f} s"
    )
    if unsure:
        return 1
    if live and score < args.min_score:
        print(f"mutation: the score is below --min-score {args.min_score:g} %")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
