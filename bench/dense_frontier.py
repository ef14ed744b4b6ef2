"""The dense-flow speed-accuracy frontier from the sweep's results: choice, tables and plot.

Run from the repository root after ``bench/sweep_dense.py`` (no measuring here, seconds)::

    .venv/bin/python bench/dense_frontier.py [--results bench/dense_sweep.json]
        [--png docs/dense_frontier.png]

Prints the choice of the default and the tables (markdown), and draws the frontier. The same
functions render the table of BENCHMARKS.md (``bench/run_all.py``, section 3).

The acceptance test of the issue, per scene: EPE <= 1.1 x the better (lower) of Farneback
(tutorial parameters) and DIS medium on that scene; time <= 0.5 x DIS medium's at 640x480.
The choice of the default: ``sweep_dense.choose_default``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np

BENCH = Path(__file__).resolve().parent
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import dense_scenes as ds  # noqa: E402
import scatter_plot as sp  # noqa: E402
import sweep_dense as sw  # noqa: E402

from optical_flow_ros.core.dense_flow import DenseFlowConfig  # noqa: E402

PNG = BENCH.parent / "docs" / "dense_frontier.png"
TOLERANCE, TIME_LIMIT = sw.TOLERANCE, sw.TIME_LIMIT
NAMED_LABELS = {"farneback": "Farneback", "dis_ultrafast": "DIS ultrafast",
                "dis_fast": "DIS fast", "dis_medium": "DIS medium"}


def reference_ms(results: dict[str, Any], threads: int, size: str = "640x480") -> float:
    """DIS medium's median ms over every time it was measured beside a configuration."""
    values = [e["time"][size][str(threads)]["baseline_ms"] for e in results["configs"].values()
              if size in e["time"]]
    return float(np.median(values))


def split_scores(results: dict[str, Any], split: str) -> dict[str, dict[str, float]]:
    """:func:`sweep_dense.scores` for ``split``, for the configurations measured on it."""
    configs = results["configs"]
    if split not in configs["farneback"]["epe"] or split not in configs[sw.BASELINE]["epe"]:
        return {}
    return sw.scores(results, split)


def describe(key: str) -> str:
    """A swept point as the DIS settings that differ from DIS medium's."""
    if key in sw.NAMED:
        return NAMED_LABELS[key]
    point = sw.parse_key(key)
    diffs = [f"{sw.SHORT[name]}{int(v) if isinstance(v, bool) else f'{v:g}'}"
             for name, v in point.items() if v != sw.MEDIUM[name]]
    return "medium + " + " ".join(diffs) if diffs else "= DIS medium"


def table_names(chosen: str) -> dict[str, str]:
    """Setting key -> the method name it ships as (the chosen one is dis_balanced)."""
    return {chosen: "dis_balanced", **{k: k for k in sw.NAMED}}


def markdown_table(results: dict[str, Any], chosen: str, names: dict[str, str]) -> str:
    """The frontier as a markdown table (640x480; EPE columns from the training scenes)."""
    sc, held = sw.scores(results), split_scores(results, "heldout")
    ref1, ref2 = reference_ms(results, 1), reference_ms(results, 2)
    lines = ["| method | DIS settings | ms 1 thread | ms 2 threads | x DIS medium (2 threads) "
             "| motorcycle EPE px | geo-mean EPE px | within 1.1x (train) | worst ratio "
             "| within 1.1x (held out) |", "|---" * 10 + "|"]
    for key in sw.table_rows(results, chosen):
        v = sc[key]
        entry = results["configs"][key]
        name = names.get(key, "")
        name = f"**{name}**" if key == chosen else name
        params = "" if key == "farneback" else (key if key not in sw.NAMED
                                                else describe_named(results, key))
        h = held.get(key)
        held_text = f"{h['within']}/{h['scenes']}" if h else "not run"
        lines.append(
            f"| {name} | {params} | {v['ratio1'] * ref1:.1f} | {v['ratio2'] * ref2:.1f} | "
            f"{v['ratio2']:.2f} | {entry['epe']['train']['motorcycle']:.2f} | "
            f"{v['geo_epe']:.3f} | {v['within']}/{v['scenes']} | {v['worst']:.2f} | "
            f"{held_text} |")
    lines += ["", "DIS settings: f finest scale, p patch size, s patch stride, g gradient-descent "
              "iterations, v variational-refinement iterations, a/d/y its alpha/delta/gamma, m "
              "mean normalisation, sp spatial propagation. Worst ratio: the largest EPE / "
              "better-baseline ratio over the training scenes."]
    return "\n".join(lines)


def sizes_table(results: dict[str, Any], chosen: str, names: dict[str, str]) -> str:
    """The table's rows at every size: ms (1 and 2 threads), x DIS medium, geo-mean EPE.

    The geo-mean EPE covers the training scenes built at that size (the motorcycle pair
    resized with its disparity scaled; at 640x480 it is at its own 741x500).
    """
    configs = results["configs"]
    sizes = [s for s in sw.SIZES if all(s in configs[k]["time"] for k in sw.NAMED)]
    head = ["method", "DIS settings"]
    for size in sizes:
        head += [f"{size} ms 1 / 2 threads", f"{size} x DIS medium (2 threads)",
                 f"{size} geo-mean EPE px"]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for key in sw.table_rows(results, chosen):
        entry = configs[key]
        if not all(size in entry["time"] for size in sizes):
            continue
        name = names.get(key, "")
        row = [f"**{name}**" if key == chosen else name, "" if key in sw.NAMED else key]
        for size in sizes:
            t = entry["time"][size]
            epe = entry["epe"]["train" if size == "640x480" else f"train@{size}"]
            geo = float(np.exp(np.mean(np.log([max(v, 1e-6) for v in epe.values()]))))
            row += [f"{t['1']['ms']:.1f} / {t['2']['ms']:.1f}", f"{t['2']['ratio']:.2f}",
                    f"{geo:.3f}"]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def describe_named(results: dict[str, Any], key: str) -> str:
    """OpenCV preset as a point key (for the table), via the DIS settings it resolves to."""
    from optical_flow_ros.core.dense_flow import DenseFlowConfig, dis_settings

    settings = dis_settings(DenseFlowConfig(**results["configs"][key]["config"]))
    return sw.point_key({name: settings[name] for name in sw.SHORT})


def scene_table(results: dict[str, Any], key: str, split: str) -> str:
    """Per scene: EPE of Farneback, DIS medium and ``key``, and the ratio to the better."""
    configs = results["configs"]
    far, med = configs["farneback"]["epe"][split], configs[sw.BASELINE]["epe"][split]
    ours = configs[key]["epe"][split]
    lines = ["| scene | max motion px | Farneback | DIS medium | chosen | chosen / better |",
             "|---|---|---|---|---|---|"]
    info = results["scenes"][split]
    for scene in ours:
        best = min(far[scene], med[scene])
        mark = "" if ours[scene] <= TOLERANCE * best else " **x**"
        lines.append(f"| {scene} | {info[scene]['max_motion_px']:g} | {far[scene]:.3f} | "
                     f"{med[scene]:.3f} | {ours[scene]:.3f} | {ours[scene] / best:.2f}{mark} |")
    return "\n".join(lines)


def plot(results: dict[str, Any], chosen: str, path: Path) -> None:
    """Two panels over ms (640x480, 2 threads): geo-mean EPE, and scenes within 1.1x."""
    sc = sw.scores(results)
    ref2 = reference_ms(results, 2)
    img = sp.canvas(1180, 540)
    ms = {k: v["ratio2"] * ref2 for k, v in sc.items()}
    x = sp.Axis(1.0, 300.0, True, (1, 2, 5, 10, 20, 50, 100, 200),
                f"ms per 640x480 frame, 2 OpenCV threads (log; DIS medium = {ref2:.1f} ms)")
    ticks = (0.02, 0.05, 0.1, 0.2, 0.5, 1, 2)
    y_lo = max(t for t in ticks if t <= min(v["geo_epe"] for v in sc.values()))
    left = sp.Panel(img, (80, 70, 560, 470), x,
                    sp.Axis(y_lo, 2.0, True, tuple(t for t in ticks if t >= y_lo),
                            "EPE px, geometric mean of 40 training scenes (log)"),
                    "Accuracy vs time of every swept DIS setting")
    right = sp.Panel(img, (670, 70, 1150, 470), x,
                     sp.Axis(0, 40, False, (0, 10, 20, 30, 40),
                             "training scenes within 1.1x of the better of Farneback / "
                             "DIS medium"),
                     "The issue's test, scene by scene")
    swept = [k for k in sc if k not in sw.NAMED]
    front = sw.pareto({k: sc[k] for k in swept}, "ratio2", "geo")
    front_w = sw.pareto({k: {**sc[k], "neg": -sc[k]["within"]} for k in swept}, "ratio2", "neg")
    limit = TIME_LIMIT * ms["dis_medium"]
    colors = {"farneback": (40, 40, 200), "dis_ultrafast": (160, 110, 0),
              "dis_fast": (200, 140, 0), "dis_medium": (120, 60, 0)}
    for panel, metric, fr in ((left, "geo_epe", front), (right, "within", front_w)):
        panel.dots([ms[k] for k in swept], [sc[k][metric] for k in swept], (170, 170, 170))
        panel.line([ms[k] for k in fr], [sc[k][metric] for k in fr], (0, 150, 0))
        panel.vline(limit, (0, 0, 200), "0.5x DIS medium")
        for key, color in colors.items():
            panel.marker(ms[key], sc[key][metric], color, NAMED_LABELS[key])
        panel.marker(ms[chosen], sc[chosen][metric], (0, 120, 255), "dis_balanced",
                     offset=(-100, -12))
    right.hline(40, (0, 0, 200), "")
    left.legend([("swept setting", (170, 170, 170)), ("frontier", (0, 150, 0)),
                 ("chosen default", (0, 120, 255))])
    sp._text(img, f"OpenCV {results['meta'].get('opencv')}, {len(swept)} DIS settings, "
             f"sweep of {results['meta'].get('updated')}; single pairs, no temporal init; "
             f"time = ratio to DIS medium measured alongside x DIS medium's median over the "
             f"sweep (shared 2-core machine)",
             (80, 520), 0.4, sp.GREY)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img)


# ----- the quick re-measure of the shipped methods (bench/run_all.py) ----------------------

QUICK_METHODS = ("farneback", "dis_medium", "dis_fast", "dis_balanced")
QUICK_TIMING_SCENE = "field-mleft-a4"


def remeasure(rounds: int) -> dict[str, Any]:
    """The shipped named methods measured now, as the sweep measured them.

    EPE (px) on the motorcycle pair and the 10 held-out smooth fields over the Middlebury
    frames (640x480); ms per 640x480 call with 1 and 2 threads, alternating with DIS medium
    (``rounds`` calls each). Returns per method ``epe`` (scene -> px) and ``time`` (threads
    -> ms, baseline_ms, ratio), and per scene the better baseline.
    """
    scenes = [ds.motorcycle(), *ds.middlebury_fields()]
    out: dict[str, Any] = {"scenes": [s.name for s in scenes], "methods": {}}
    pair = next(s for s in scenes if s.name == QUICK_TIMING_SCENE)
    for method in QUICK_METHODS:
        config = DenseFlowConfig(method=method)
        out["methods"][method] = {"epe": sw.epes(config, scenes),
                                  "time": sw.timing(config, pair, rounds)}
    far, med = (out["methods"][m]["epe"] for m in ("farneback", "dis_medium"))
    out["better_baseline"] = {s: min(far[s], med[s]) for s in out["scenes"]}
    return out


def remeasure_within(data: dict[str, Any], method: str) -> tuple[int, int]:
    """Scenes of a :func:`remeasure` where ``method`` is within the tolerance, and all."""
    epe, best = data["methods"][method]["epe"], data["better_baseline"]
    return sum(epe[s] <= TOLERANCE * best[s] for s in best), len(best)


def remeasure_markdown(data: dict[str, Any]) -> str:
    """Per method: ms (1 and 2 threads, x DIS medium), EPE per scene, scenes within 1.1x."""
    scenes = data["scenes"]
    head = ["method", "ms 1 thread", "ms 2 threads", "x DIS medium (2 threads)",
            *scenes, "within 1.1x"]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for method, m in data["methods"].items():
        t1, t2 = m["time"]["1"], m["time"]["2"]
        within, total = remeasure_within(data, method)
        lines.append("| " + " | ".join(
            [method, f"{t1['ms']:.1f}", f"{t2['ms']:.1f}", f"{t2['ratio']:.2f}"]
            + [f"{m['epe'][s]:.3f}" for s in scenes] + [f"{within}/{total}"]) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=sw.RESULTS)
    parser.add_argument("--png", type=Path, default=PNG)
    args = parser.parse_args()
    results = sw.load(args.results)
    chosen, meets = sw.choose_default(results)
    sc = sw.scores(results)[chosen]
    print(f"chosen: {chosen} ({describe(chosen)}): {sc['ratio2']:.3f}x DIS medium (2 threads),"
          f" {sc['ratio1']:.3f}x (1 thread); within {TOLERANCE}x on {sc['within']}/"
          f"{sc['scenes']} training scenes{' (all)' if meets else ''}, worst {sc['worst']:.2f}")
    print(markdown_table(results, chosen, table_names(chosen)))
    print()
    print(sizes_table(results, chosen, table_names(chosen)))
    print()
    print(scene_table(results, chosen, "train"))
    if "heldout" in results["configs"][chosen]["epe"]:
        print()
        print(scene_table(results, chosen, "heldout"))
    plot(results, chosen, args.png)
    print(f"wrote {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
