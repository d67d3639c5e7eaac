"""Mutation testing of the modules whose arithmetic decides what the network sees (issue 19).

Each mutant is one small change to a module, made by cosmic-ray's operators (comparison, number
constant, True/False, and/or, ``not`` added to a condition) plus statement deletion (a statement in a
function body replaced by ``pass``; cosmic-ray has no such operator, ``DeleteStatement`` below adds it
on cosmic-ray's ``Operator`` interface). The module's own test files then run against the mutant: a
failing run kills it, a passing run lets it survive. Tests that let many mutants survive cannot fail
when that code goes wrong.

Speed: the tests would spend most of a run importing torch and pytest, so a parent process imports them
once and forks one child per mutant, which runs pytest (``-x``) on a private copy of ``src/`` with the
mutated module in it (the working tree is never touched). Every module takes minutes, the whole run about
an hour on a shared 2-core machine (benchmarks/RESULTS.md, "Mutation testing"). Needs the ``mutation``
extra (cosmic-ray).

    PYTHONPATH=src python tools/mutation.py                  # every module, a table at the end
    PYTHONPATH=src python tools/mutation.py sampling --survivors   # one module, list what survived
    python tools/mutation.py --list                          # modules, test files, mutant counts

Exit status 1 when a module's kill rate is under ``--fail-under`` (default 90 %).
"""

from __future__ import annotations

import argparse
import ast
import compileall
import difflib
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import parso
from cosmic_ray.ast import ast_nodes, get_ast
from cosmic_ray.mutating import mutate_code
from cosmic_ray.operators import boolean_replacer, comparison_operator_replacement, number_replacer
from cosmic_ray.operators.operator import Example, Operator

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"


@dataclass(frozen=True)
class Target:
    """One module under test: its file (relative to src/dualstream), the functions to mutate (all when
    empty), the test files that exercise it and, deselected, slow tests in them that exercise other modules."""

    path: str
    tests: tuple[str, ...]
    functions: tuple[str, ...] = ()
    deselect: tuple[str, ...] = ()

    def pytest_args(self) -> list[str]:
        return [*self.tests, *(f"--deselect={t}" for t in self.deselect)]


# a training run (the engine's guard) and the loader workers' start: seconds each, no mutant of these modules needs them
_TRAINING_RUN = "tests/test_data_split.py::test_training_refuses_a_leaky_split_and_records_the_override"
_WORKER_START = "tests/test_data_clips.py::test_loader_workers_start_after_opencv_pool_ran"


TARGETS = {
    "sampling": Target("data/sampling.py", ("tests/test_sampling.py",)),
    "clips": Target("data/clips.py", ("tests/test_transforms.py", "tests/test_data_clips.py"),
                    deselect=(_WORKER_START,)),
    "device": Target("data/device.py", ("tests/test_data_device.py",), ("crop_resize", "split_streams", "normalise")),
    "make_split": Target("data/make_split.py", ("tests/test_data_split.py",), deselect=(_TRAINING_RUN,)),
    "ucf101": Target("data/ucf101.py", ("tests/test_ucf101.py", "tests/test_data_split.py"), deselect=(_TRAINING_RUN,)),
    "quantize": Target("flow/quantize.py", ("tests/test_flow_io.py",)),
    "attention": Target("models/attention.py", ("tests/test_models_attention.py",)),
}

def _each(before: str, afters: list[str], suffix: str, why: str, prefix: str = "") -> dict[tuple[str, str], str]:
    """One reason for several mutants of one line: ``prefix + after + suffix`` for each of ``afters``."""
    return {(before, prefix + after + suffix): why for after in afters}


# Mutants no test can tell from the original (same behaviour on every valid input), excluded from the
# denominator: module -> {(original line, mutated line): why}, lines stripped; "*" for every mutant of a line.
EQUIVALENT: dict[str, dict[tuple[str, str], str]] = {
    "sampling": {
        ("if frames > 1 and offset + (frames - 1) * interval > last:",
         "if frames != 1 and offset + (frames - 1) * interval > last:"): "frames >= 1 was checked above",
        ("if frames > 1 and offset + (frames - 1) * interval > last:",
         "if frames > 1 and offset + (frames - 1) * interval >= last:"):
            "a clip ending on the last frame shrinks to (last - offset) // (frames - 1): its own interval",
        ("if offset + (frames - 1) * interval > last:", "if offset + (frames - 1) * interval >= last:"):
            "a clip ending on the last frame moves to last - (frames - 1) * interval: its own offset",
        ("if clips == 1:", "if clips <= 1:"): "clips < 1 raised above",
        ("return [max(1, (interval + 1) // 2)]", "return [max( 0, (interval + 1) // 2)]"):
            "interval >= 1 (DataConfig), so (interval + 1) // 2 >= 1 already",
        ("if not (0 <= start and 0 < span and start + span <= 1 + 1e-9):",
         "if not (0 <= start and 0 < span and start + span < 1 + 1e-9):"):
            "differs only where start + span is exactly the tolerance's edge 1 + 1e-9",
        ("span_min: float = 1.0) -> list[int]:", "span_min: float = 2.0) -> list[int]:"):
            "every span_min >= 1 means the whole video",
        ("start = float(rng.uniform(0.0, 1.0 - span)) if span < 1 else 0.0",
         "start = float(rng.uniform(0.0, 1.0 - span)) if span != 1 else 0.0"): "span is never above 1",
        ('return eval_phases(clips) if sampling == "spread" else list(eval_offsets(interval, clips))',
         'return eval_phases(clips) if sampling >= "spread" else list(eval_offsets(interval, clips))'):
            "the samplings are 'interval' < 'spread' (SAMPLINGS, checked by DataConfig)",
        ('if sampling == "spread":', 'if sampling >= "spread":'):
            "the samplings are 'interval' < 'spread' (SAMPLINGS, checked by DataConfig)",
        ('if self.sampling == "spread":', 'if self.sampling >= "spread":'):
            "the samplings are 'interval' < 'spread' (SAMPLINGS, checked by DataConfig and model.json's schema)",
        ('return max(1, self.span // self.frames) if self.sampling == "spread" else self.interval',
         'return max(1, self.span // self.frames) if self.sampling >= "spread" else self.interval'):
            "the samplings are 'interval' < 'spread' (SAMPLINGS, checked by DataConfig and model.json's schema)",
        ('if self.sampling != "spread":', 'if self.sampling < "spread":'):
            "the samplings are 'interval' < 'spread' (SAMPLINGS, checked by DataConfig and model.json's schema)",
        ('if kw.get("flow_method") == "unknown":', 'if kw.get("flow_method") >= "unknown":'):
            "no flow method name sorts after 'unknown' (flow.resolve_method's names; others are refused at load)",
    },
    "clips": {
        ("if img.shape[0] != size or img.shape[1] != size:", "*"):
            "crops are square, and OpenCV's resize to the same size returns the image unchanged",
        ("img = cv2.resize(img, (size, size), interpolation=shrink_filter(min(img.shape[:2]), size))",
         "img = cv2.resize(img, (size, size), interpolation=shrink_filter(min(img.shape[: 1]), size))"):
            "crops are square: min(h) is min(h, w)",
        ("img = cv2.flip(img, 1)", "img = cv2.flip(img, 2)"): "cv2.flip mirrors left-right for any positive code",
        ("_planes(_resize(rgb[t, rows, cols], size, crop.flip), _RGB_SCALE, _RGB_SHIFT, out_rgb[3 * t:3 * t + 3])",
         "_planes(_resize(rgb[t, rows, cols], size, crop.flip), _RGB_SCALE, _RGB_SHIFT, out_rgb[3 * t: 4 * t + 3])"):
            "_planes writes the first 3 planes of the slice it is given",
        ("_planes(_resize(rgb[t, rows, cols], size, crop.flip), _RGB_SCALE, _RGB_SHIFT, out_rgb[3 * t:3 * t + 3])",
         "_planes(_resize(rgb[t, rows, cols], size, crop.flip), _RGB_SCALE, _RGB_SHIFT, out_rgb[3 * t:3 * t + 4])"):
            "_planes writes the first 3 planes of the slice it is given",
        ("_planes(_resize(flow[t, rows, cols], size, crop.flip), flow_scale, flow_shift, out_flow[2 * t:2 * t + 2])",
         "_planes(_resize(flow[t, rows, cols], size, crop.flip), flow_scale, flow_shift, out_flow[2 * t: 3 * t + 2])"):
            "_planes writes the first 2 planes of the slice it is given",
        ("_planes(_resize(flow[t, rows, cols], size, crop.flip), flow_scale, flow_shift, out_flow[2 * t:2 * t + 2])",
         "_planes(_resize(flow[t, rows, cols], size, crop.flip), flow_scale, flow_shift, out_flow[2 * t:2 * t + 3])"):
            "_planes writes the first 2 planes of the slice it is given",
    },
    "device": {
        ("boxes = boxes.to(torch.float64).cpu()", "pass"):
            "on the CPU: theta is cast to the frames' float32, which integer boxes give as well",
        **_each("k = int(min(boxes[:, 2].min(), boxes[:, 3].min()) // size) if len(boxes) else 1",
                ["boxes[:, 3].min(), boxes[:, 3].min()", "boxes[:, 2].min(), boxes[:, 2].min()"],
                ") // size) if len(boxes) else 1", "crop boxes are square", prefix="k = int(min("),
        ("if k >= 2:", "if k >= 1:"): "a 1 x 1 box filter changes nothing",
        ("grid = F.affine_grid(theta.to(x.device, x.dtype), [b, 1, size, size], align_corners=False)",
         "grid = F.affine_grid(theta.to(x.device, x.dtype), [b, 2, size, size], align_corners=False)"):
            "affine_grid takes N, H, W from the size; C is not used",
        **_each("k = int(min(boxes[:, 2].min(), boxes[:, 3].min()) // size) if len(boxes) else 1",
                ["2", "0"], "", "a batch holds at least one clip",
                prefix="k = int(min(boxes[:, 2].min(), boxes[:, 3].min()) // size) if len(boxes) else "),
    },
    "ucf101": {
        ('return entry.path if group == entry.path else group.split("/", 1)[1]',
         'return entry.path if group is entry.path else group.split("/", 1)[1]'):
            "entry_group returns entry.path itself for a video without a group",
        ('return entry.path if group == entry.path else group.split("/", 1)[1]',
         'return entry.path if group == entry.path else group.split("/", 2)[1]'):
            "a group is 'folder/part of a file name': one '/'",
        ("if len(parts) == 2:", "if len(parts) >= 2:"): "a line has 1 or 2 parts here (checked above)",
        ("if not parts[1].isdigit() or int(parts[1]) - 1 != label:",
         "if not parts[1].isdigit() or int(parts[1]) - 1 is not label:"):
            "CPython keeps one object per small int: identity is equality for labels",
        ("return sorted(g for g, labels in classes.items() if len(labels) > 1)",
         "return sorted(g for g, labels in classes.items() if len(labels) != 1)"): "every group has a class",
    },
    "make_split": {
        ("if any(train_left[c] <= n for c, n in lost.items()):",
         "if any(train_left[c] == n for c, n in lost.items()):"):
            "a group not yet taken is still counted in train_left, so train_left[c] < n never holds",
        **_each('across = group_scope == "dataset" or (group_scope == "auto" and bool(groups_across_classes(entries, '
                'pattern)))', ['group_scope >= "dataset" or (group_scope == "auto"'],
                ' and bool(groups_across_classes(entries, pattern)))',
                "no scope sorts after 'dataset' (GROUP_SCOPES, checked above)", prefix="across = "),
        ('across = group_scope == "dataset" or (group_scope == "auto" and bool(groups_across_classes(entries, '
         'pattern)))', 'across = group_scope == "dataset" or (group_scope <= "auto" and bool(groups_across_classes('
         'entries, pattern)))'): "no scope sorts before 'auto' (GROUP_SCOPES, checked above)",
        **{(before, after): "CPython keeps one object per small int: identity is equality for labels and counts"
           for before, after in (
               ("if any(train_left[c] <= n for c, n in lost.items()):",
                "if any(train_left[c] is n for c, n in lost.items()):"),
               ("if not any(e.label == c for g in chosen for e in members[g]):",
                "if not any(e.label is c for g in chosen for e in members[g]):"),
               ("next((g for g in order if g not in chosen and any(e.label == c for e in members[g]) and take(g)), "
                "None)", "next((g for g in order if g not in chosen and any(e.label is c for e in members[g]) and "
                "take(g)), None)"),
               ("test_groups |= _pick_test_groups([e for e in entries if e.label == label], test_fraction, rng,",
                "test_groups |= _pick_test_groups([e for e in entries if e.label is label], test_fraction, rng,"))},
    },
}


class DeleteStatement(Operator):
    """Replace one statement of a function body with ``pass`` (docstrings, ``pass`` and imports are kept)."""

    def mutation_positions(self, node):
        if node.type == "simple_stmt" and _in_function(node) and _deletable(node.children[0]):
            yield (node.start_pos, node.end_pos)

    def mutate(self, node, index):
        stmt = node.children[0]
        node.children[0] = parso.python.tree.Keyword("pass", stmt.start_pos, prefix=stmt.get_first_leaf().prefix)
        return node

    @classmethod
    def examples(cls):
        return (Example("def f():\n    x = 1\n", "def f():\n    pass\n"),)


def _in_function(node) -> bool:
    while node.parent is not None:
        node = node.parent
        if node.type == "funcdef":
            return True
    return False


def _deletable(stmt) -> bool:
    """Not an import, a global/nonlocal declaration, a docstring or ``pass``."""
    kept = ("import_name", "import_from", "global_stmt", "nonlocal_stmt", "string")
    return stmt.type not in kept and stmt.get_code().strip() != "pass"


# mutant kind -> cosmic-ray operator classes
KINDS: dict[str, tuple[type[Operator], ...]] = {
    "comparison": tuple(comparison_operator_replacement.operators()),
    "constant": (number_replacer.NumberReplacer,),
    "boolean": (boolean_replacer.ReplaceTrueWithFalse, boolean_replacer.ReplaceFalseWithTrue,
                boolean_replacer.ReplaceAndWithOr, boolean_replacer.ReplaceOrWithAnd, boolean_replacer.AddNot),
    "statement": (DeleteStatement,),
}


@dataclass
class Mutant:
    kind: str
    operator: str
    line: int
    before: str
    after: str
    code: str
    outcome: str = ""


@dataclass
class Tally:
    mutants: int = 0
    killed: int = 0
    survived: int = 0
    timeout: int = 0
    equivalent: int = 0
    seconds: float = 0.0
    survivors: list[Mutant] = field(default_factory=list)

    @property
    def rate(self) -> float:
        counted = self.mutants - self.equivalent
        return 100.0 * (self.killed + self.timeout) / counted if counted else 100.0


def _function_lines(source: str, names: tuple[str, ...]) -> list[tuple[int, int]]:
    tree = ast.parse(source)
    spans = [(n.lineno, n.end_lineno) for n in ast.walk(tree)
             if isinstance(n, ast.FunctionDef) and n.name in names]
    missing = set(names) - {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    if missing:
        raise SystemExit(f"tools/mutation.py: functions not found: {', '.join(sorted(missing))}")
    return spans


def mutants(name: str, target: Target) -> list[Mutant]:
    """Every mutant of ``target``, in line order."""
    source = (SRC / "dualstream" / target.path).read_text()
    spans = _function_lines(source, target.functions) if target.functions else [(1, source.count("\n") + 1)]
    lines = source.splitlines()
    out = []
    for kind, operators in KINDS.items():
        for op_cls in operators:
            op = op_cls()
            positions = [start for node in ast_nodes(get_ast(source)) for start, _ in op.mutation_positions(node)]
            for occurrence, (line, _) in enumerate(positions):
                if not any(a <= line <= b for a, b in spans):
                    continue
                code = mutate_code(source, op, occurrence)
                if code is None or code == source:
                    continue
                changed = [d for d in difflib.ndiff(lines, code.splitlines()) if d[:2] in ("- ", "+ ")]
                before = " / ".join(d[2:].strip() for d in changed if d.startswith("- "))
                after = " / ".join(d[2:].strip() for d in changed if d.startswith("+ "))
                out.append(Mutant(kind, op_cls.__name__, line, before, after, code))
    return sorted(out, key=lambda m: m.line)


def _preimport() -> None:
    """The heavy libraries the tests import, once in the parent (the children fork with them loaded)."""
    os.environ.setdefault("TRITON_INTERPRET", "1")  # as tests/conftest.py sets it before torch loads
    import cv2  # noqa: F401
    import numpy  # noqa: F401
    import pytest  # noqa: F401
    import torch  # noqa: F401
    import torch.nn.functional  # noqa: F401
    for extra in ("yaml", "safetensors.torch", "matplotlib.pyplot", "tqdm", "torch.utils.data"):
        try:
            __import__(extra)
        except ImportError:
            pass
    # one pytest session on an empty test outside the project loads pytest's own modules and its plugins
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "test_warm.py").write_text("def test_warm():\n    pass\n")
        saved = os.dup(1)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        try:
            pytest.main([tmp, "-q", "-p", "no:cacheprovider", f"--rootdir={tmp}"])
        finally:
            os.dup2(saved, 1)
            os.close(devnull)
            os.close(saved)


def _run_tests(src: Path, tests: list[str], log: Path, timeout: float) -> tuple[str, float]:
    """Fork a child that runs pytest ``tests`` (its arguments) with ``src`` first on the path: killed, survived
    or timeout."""
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 3
        try:
            os.setpgid(0, 0)
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            sys.path.insert(0, str(src))
            os.environ["PYTHONPATH"] = os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")])
            sys.dont_write_bytecode = True
            os.chdir(ROOT)
            import pytest

            code = int(pytest.main([*tests, "-x", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"]))
        except BaseException:  # noqa: BLE001 - whatever happens, the child must exit here
            import traceback

            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    try:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() - start > timeout:
                os.killpg(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return "timeout", time.monotonic() - start
            time.sleep(0.05)
    except BaseException:  # interrupted: the child and its workers go too
        os.killpg(pid, signal.SIGKILL)
        raise
    seconds = time.monotonic() - start
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
        return "survived", seconds
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) in (4, 5):  # usage error, no tests: our fault
        raise SystemExit(f"tools/mutation.py: pytest exit {os.WEXITSTATUS(status)} on {' '.join(tests)} (see {log})")
    return "killed", seconds


def run_module(name: str, target: Target, work: Path, *, limit: int | None, verbose: bool,
               lines: set[int] | None = None) -> Tally:
    src = work / "src"
    module = src / "dualstream" / target.path
    original = module.read_text()
    pyc = module.parent / "__pycache__"
    log = work / f"{name}.log"
    outcome, base = _run_tests(src, target.pytest_args(), log, timeout=600)
    if outcome != "survived":
        raise SystemExit(f"tools/mutation.py: {name}: the tests fail without a mutant (see {log})")
    timeout = 5 * base + 20  # generous: a loaded machine must not turn a slow survivor into a kill
    tally = Tally()
    todo = [m for m in mutants(name, target) if lines is None or m.line in lines][:limit]
    equivalent = EQUIVALENT.get(name, {})
    start = time.monotonic()
    for i, m in enumerate(todo, 1):
        tally.mutants += 1
        if (m.before, m.after) in equivalent or (m.before, "*") in equivalent:
            m.outcome = "equivalent"
            tally.equivalent += 1
            continue
        module.write_text(m.code)
        for stale in pyc.glob(module.stem + ".*.pyc"):
            stale.unlink()
        try:
            m.outcome, _ = _run_tests(src, target.pytest_args(), log, timeout)
        finally:
            module.write_text(original)
        setattr(tally, m.outcome, getattr(tally, m.outcome) + 1)
        if m.outcome == "survived":
            tally.survivors.append(m)
        if verbose:
            print(f"  [{i}/{len(todo)}] {m.outcome:8s} {target.path}:{m.line} {m.operator}: {m.before}  ->  {m.after}",
                  flush=True)
    tally.seconds = time.monotonic() - start
    return tally


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("modules", nargs="*", metavar="MODULE", help=f"modules to mutate (default: all): {', '.join(TARGETS)}")
    parser.add_argument("--survivors", action="store_true", help="list the mutants that survived")
    parser.add_argument("--list", action="store_true", help="only list the modules, their tests and mutant counts")
    parser.add_argument("--limit", type=int, default=None, help="at most this many mutants per module (a smoke run)")
    parser.add_argument("--lines", default=None,
                        help="only the mutants on these lines, e.g. 120,131-133 (to recheck survivors after a fix)")
    parser.add_argument("--fail-under", type=float, default=90.0, help="exit 1 when a kill rate is below (%%)")
    parser.add_argument("-v", "--verbose", action="store_true", help="one line per mutant as it runs")
    args = parser.parse_args(argv)
    names = args.modules or list(TARGETS)
    lines = None
    if args.lines:
        try:
            lines = {n for part in args.lines.split(",") for a, _, b in [part.partition("-")]
                     for n in range(int(a), int(b or a) + 1)}
        except ValueError:
            parser.error(f"--lines: expected numbers and ranges such as 120,131-133, got {args.lines[:40]!r}")
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        parser.error(f"unknown module {unknown[0][:40]!r}; choose from {', '.join(TARGETS)}")
    if args.list:
        for name in names:
            t = TARGETS[name]
            counts: dict[str, int] = {}
            for m in mutants(name, t):
                counts[m.kind] = counts.get(m.kind, 0) + 1
            where = f" ({', '.join(t.functions)})" if t.functions else ""
            print(f"{name:11s} {t.path}{where}: {sum(counts.values())} mutants {counts}; tests {' '.join(t.tests)}")
        return 0
    _preimport()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # kill <pid>: the child goes, the copy is removed
    results: dict[str, Tally] = {}
    with tempfile.TemporaryDirectory(prefix="dualstream-mutation-") as tmp:
        work = Path(tmp)
        shutil.copytree(SRC, work / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        compileall.compile_dir(work / "src", quiet=1)
        for name in names:
            print(f"{name}: {TARGETS[name].path} against {' '.join(TARGETS[name].pytest_args())}", flush=True)
            results[name] = tally = run_module(name, TARGETS[name], work, limit=args.limit, verbose=args.verbose,
                                                 lines=lines)
            print(f"{name}: {tally.killed + tally.timeout}/{tally.mutants - tally.equivalent} killed "
                  f"({tally.rate:.1f} %) in {tally.seconds:.0f} s", flush=True)
    print()
    print(f"{'module':11s} {'mutants':>7s} {'killed':>6s} {'survived':>8s} {'timeout':>7s} {'equiv':>5s} "
          f"{'kill rate':>9s} {'time':>6s}")
    for name, t in results.items():
        print(f"{name:11s} {t.mutants:7d} {t.killed:6d} {t.survived:8d} {t.timeout:7d} {t.equivalent:5d} "
              f"{t.rate:8.1f}% {t.seconds:5.0f}s")
    if args.survivors:
        for name, t in results.items():
            for m in t.survivors:
                print(f"survived {TARGETS[name].path}:{m.line} {m.operator}: {m.before}  ->  {m.after}")
    for name, t in results.items():
        for (before, after), why in EQUIVALENT.get(name, {}).items():
            print(f"equivalent {TARGETS[name].path}: {before}  ->  {after}  ({why})")
    return 1 if any(t.rate < args.fail_under for t in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
