"""Why is a fusion model where it is? For trained runs: video top-1 on the run's test list with both streams,
with the RGB stream zeroed and with the flow stream zeroed (zero is what modality dropout feeds in training),
and each attention layer's learned ``gamma`` with the share of the fused feature its term makes up
(``|gamma * l(y) e| / |y|`` over the test clips, eq. 4).

    python benchmarks/fusion_probe.py RUN [RUN ...]        # run folders (train, fit or ablation runs)

Prints one line per run and a mean per model name; reads what the runs wrote, trains nothing.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from dualstream.config import load_config  # noqa: E402
from dualstream.data.dataset import EvalViews  # noqa: E402
from dualstream.data.sampling import ClipSpec, eval_positions  # noqa: E402
from dualstream.data.ucf101 import read_split  # noqa: E402
from dualstream.inference.package import load_model  # noqa: E402
from dualstream.inference.predict import attention_layers  # noqa: E402

MODES = ("both", "rgb zeroed", "flow zeroed")


def probe(run: Path) -> dict:
    cfg = load_config(run / "config.yaml")
    model, spec_json = load_model(run)
    test = read_split(cfg.data.splits, cfg.data.split).test
    spec = ClipSpec.from_config(cfg.data)
    d = cfg.data
    views = EvalViews(d.cache, test, spec, offsets=eval_positions(d.sampling, interval=d.interval, clips=d.eval_clips))
    ratios: list[float] = []

    def record(module, inputs, output):  # eq. 4: out = gamma * (l(y) e) + y
        y = inputs[0]
        ratios.append(float((output - y).norm() / y.norm().clamp_min(1e-12)))

    hooks = [a.register_forward_hook(record) for a in attention_layers(model)]
    probs = {m: np.zeros((len(test), len(spec_json["classes"]))) for m in MODES}
    with torch.no_grad():
        for start in range(0, len(views), 32):
            rgb, flow, _, videos = views.__getitems__(list(range(start, min(start + 32, len(views)))))
            for mode in MODES:
                r = torch.zeros_like(rgb) if mode == "rgb zeroed" else rgb
                f = torch.zeros_like(flow) if mode == "flow zeroed" else flow
                p = torch.softmax(model(r, f), 1).numpy()
                np.add.at(probs[mode], videos.numpy(), p)
    for h in hooks:
        h.remove()
    labels = np.array([e.label for e in test])
    out = {m: float((probs[m].argmax(1) == labels).mean()) for m in MODES}
    out["gamma"] = [float(a.gamma.detach().reshape(-1)[0]) for a in attention_layers(model)]
    out["attention share"] = float(np.mean(ratios)) if ratios else float("nan")
    out["model"] = spec_json["name"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(1)
    per_model: dict[str, list[dict]] = defaultdict(list)
    for run in args.runs:
        r = probe(run)
        per_model[r["model"]].append(r)
        gam = ", ".join(f"{g:+.3f}" for g in r["gamma"]) or "-"
        print(f"{run}: {r['model']}: " + ", ".join(f"{m} {r[m]:.3f}" for m in MODES)
              + f"; gamma {gam}; attention share {r['attention share']:.3f}", flush=True)
    for name, rs in per_model.items():
        line = ", ".join(f"{m} {np.mean([r[m] for r in rs]):.3f} +- {np.std([r[m] for r in rs], ddof=1) if len(rs) > 1 else 0:.3f}"
                         for m in MODES)
        print(f"mean over {len(rs)} runs, {name}: {line}; attention share {np.mean([r['attention share'] for r in rs]):.3f}")


if __name__ == "__main__":
    main()
