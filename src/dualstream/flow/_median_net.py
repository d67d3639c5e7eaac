"""Median filters of 3 x 3 and 5 x 5 windows for the Triton flow kernels, generated at import.

Each network is Batcher's odd-even merge sort of the next power of two, with the comparators that touch the
(virtual, +inf) padding removed and every comparator whose output cannot reach the middle rank pruned: a straight
line of tl.minimum / tl.maximum calls, which Triton compiles to registers. Triton reads a function's source text,
so the generated text is registered with ``linecache`` under a name of its own before ``triton.jit`` sees it.
"""

from __future__ import annotations

import linecache

import triton
import triton.language as tl


def batcher(n: int) -> list[tuple[int, int]]:
    """Comparators (i, j), i < j, of Batcher's odd-even merge sort on n (a power of two) inputs, in order."""
    pairs = []
    p = 1
    while p < n:
        k = p
        while k >= 1:
            for j in range(k % p, n - k, 2 * k):
                for i in range(min(k, n - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    return pairs


def median_source(n: int) -> str:
    """Source of ``median{n}(v0, ..., v{n-1})``: the pruned straight-line network returning the middle value."""
    size = 1 << (n - 1).bit_length()
    net = [(i, j) for i, j in batcher(size) if j < n]
    # Wires hold SSA names; walk backwards from the middle rank to find the outputs that matter.
    needed = {n // 2}
    keep = []
    for i, j in reversed(net):
        if i in needed or j in needed:
            keep.append((i, j, i in needed, j in needed))
            needed |= {i, j}
    names = {k: f"v{k}" for k in range(n)}
    lines = [f"def median{n}({', '.join(names.values())}):"]
    for i, j, want_min, want_max in reversed(keep):
        a, b = names[i], names[j]
        for wire, want, op in ((i, want_min, "minimum"), (j, want_max, "maximum")):
            if want:
                names[wire] = f"t{len(lines) - 1}"
                lines.append(f"    {names[wire]} = tl.{op}({a}, {b})")
    lines.append(f"    return {names[n // 2]}")
    return "\n".join(lines) + "\n"


@triton.jit
def _at(base, row, col, dy: tl.constexpr, dx: tl.constexpr, H, W, mask):
    """base[clamp(row + dy), clamp(col + dx)]: a neighbour with replicated borders (as cv2.medianBlur)."""
    r = tl.minimum(tl.maximum(row + dy, 0), H - 1)
    c = tl.minimum(tl.maximum(col + dx, 0), W - 1)
    return tl.load(base + r * W + c, mask=mask, other=0.0)


def window_source(k: int) -> str:
    """Source of ``median_window{k}(src, row, col, H, W, mask)``: the median of each pixel's k x k neighbours."""
    offsets = range(-(k // 2), k // 2 + 1)
    taps = ", ".join(f"_at(src, row, col, {dy}, {dx}, H, W, mask)" for dy in offsets for dx in offsets)
    return f"def median_window{k}(src, row, col, H, W, mask):\n    return median{k * k}({taps})\n"


def _jit(name: str, text: str, scope: dict):
    filename = f"<dualstream.flow {name}>"
    linecache.cache[filename] = (len(text), None, text.splitlines(keepends=True), filename)
    exec(compile(text, filename, "exec"), scope)  # noqa: S102 - our own generated straight-line code
    return triton.jit(scope[name])


_scope = {"tl": tl, "__name__": __name__, "_at": _at}
_scope["median9"] = _jit("median9", median_source(9), _scope)
_scope["median25"] = _jit("median25", median_source(25), _scope)
median_window3 = _jit("median_window3", window_source(3), _scope)
median_window5 = _jit("median_window5", window_source(5), _scope)
