"""Activation ranges of several runs' models side by side: where 8 bits are coarsest, per model.

``python benchmarks/int8_ranges.py RUN [RUN ...]`` measures every activation tensor of each run's
model (:func:`mobile_skin.quant.activation_ranges.measure`) on the first images of one split and
writes ``int8_ranges_<runs>.json`` (every tensor of every run), ``.md`` (a summary per run and the
tensors with the lowest 8-bit SQNR, all runs side by side) and ``.png`` (SQNR along the graph, one
line per run).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mobile_skin.bench.report import markdown_table

if TYPE_CHECKING:
    from mobile_skin.data.run import RunData
    from mobile_skin.quant.activation_ranges import TensorRange

#: Images per batch (every tensor of the model is held at once for a batch).
BATCH = 25


def measure_run(
    run: RunData, split: str, limit: int | None, log: Callable[[str], None] = print
) -> list[TensorRange]:
    """Every activation tensor the int8 export quantizes in ``run``'s model (its export form),
    over the first ``limit`` rows of ``split``."""
    from tqdm.auto import tqdm

    from mobile_skin.common.errors import UserError
    from mobile_skin.contract.pipeline import make_dataset
    from mobile_skin.model.network import load_model
    from mobile_skin.quant import edge_model
    from mobile_skin.quant.activation_ranges import measure, quantized_layers

    rows = run.rows(split)
    if rows.empty:
        raise UserError(f"{run.paths.root}: the {split} split has no rows")
    rows = rows.head(limit) if limit else rows
    model = edge_model.to_edge_model(load_model(run.paths.best_model))
    batches = make_dataset(
        rows, run.spec.image_size, BATCH, encoding=run.spec.encoding, cache=True, labels=False
    )
    steps = 2 * -(-len(rows) // BATCH)
    names = quantized_layers(model, next(iter(batches)))
    with tqdm(total=steps, desc=run.paths.root.name, leave=False) as bar:
        stats = measure(model, batches, names, progress=bar.update)
    log(f"{run.paths.root.name}: {len(stats)} tensors over {len(rows)} {split} images")
    return stats


def summary_rows(runs: dict[str, list[TensorRange]]) -> list[list[str]]:
    """One row per run: tensors, median and lowest SQNR (whole tensor and median channel), and
    how many tensors sit below 30 dB (about 5 bits of a uniform signal)."""
    out = []
    for name, stats in runs.items():
        sqnr = np.array([s.sqnr_db for s in stats])
        channel = np.array([s.channel_sqnr_db for s in stats])
        worst = min(stats, key=lambda s: s.sqnr_db)
        worst_channel = min(stats, key=lambda s: s.channel_sqnr_db)
        out.append(
            [
                name,
                str(len(stats)),
                f"{np.median(sqnr):.1f} / {np.median(channel):.1f}",
                f"{worst.sqnr_db:.1f} (`{worst.name}`)",
                f"{worst_channel.channel_sqnr_db:.1f} (`{worst_channel.name}`)",
                f"{int((sqnr < 30).sum())} / {int((channel < 30).sum())}",
            ]
        )
    return out


def lowest_rows(runs: dict[str, list[TensorRange]], count: int) -> list[list[str]]:
    """The ``count`` tensors with the lowest SQNR in any run (ranked by their lowest), each with
    every run's SQNR, least-squares range and channel spread."""
    by_run = {name: {s.name: s for s in stats} for name, stats in runs.items()}
    lowest: dict[str, float] = {}
    for stats in runs.values():
        for s in stats:
            lowest[s.name] = min(lowest.get(s.name, np.inf), s.sqnr_db)
    ranked = sorted(lowest, key=lowest.get)[:count]
    out = []
    for tensor in ranked:
        cells = [f"`{tensor}`"]
        for name in runs:
            s = by_run[name].get(tensor)
            cells.append(
                "-"
                if s is None
                else f"{s.sqnr_db:.1f} / {s.channel_sqnr_db:.1f} dB, "
                f"[{s.clip_low:.3g}, {s.clip_high:.3g}], x{s.channel_spread:.1f}"
            )
        out.append(cells)
    return out


def render(runs: dict[str, list[TensorRange]], header: str, count: int) -> str:
    """The Markdown report: ``header``, the summary table, the lowest-SQNR tensors."""
    names = list(runs)
    return (
        "\n\n".join(
            [
                header,
                "## Per model\n\n"
                + markdown_table(
                    [
                        "run",
                        "tensors",
                        "median SQNR, tensor / channel (dB)",
                        "lowest tensor SQNR (dB)",
                        "lowest channel SQNR (dB)",
                        "tensors < 30 dB, tensor / channel",
                    ],
                    summary_rows(runs),
                ),
                f"## The {count} tensors with the lowest 8-bit SQNR in any model\n\n"
                "Each cell: SQNR at 8 bits of the whole tensor / of its median channel, the "
                "least-squares range, and the channel spread (the largest absolute value over the "
                "median channel's).\n\n"
                + markdown_table(["tensor", *names], lowest_rows(runs, count)),
            ]
        )
        + "\n"
    )


def write_plot(path: Path, runs: dict[str, list[TensorRange]]) -> Path:
    """SQNR of every tensor in graph order, one line per run, each inverted-residual block's
    first tensor marked (``b0`` .. ``b14``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mobile_skin.common.fileio import atomic_path

    first = next(iter(runs.values()))
    ticks: dict[str, int] = {}
    for i, s in enumerate(first):
        block = s.name.split("/")[0]
        if block.startswith("expanded_conv"):
            ticks.setdefault(block, i)
    labels = ["b" + (b.rsplit("_", 1)[1] if "_conv_" in b else "0") for b in ticks]
    fig, axes = plt.subplots(2, 1, figsize=(11, 6), sharex=True)
    for ax, field, title in zip(
        axes,
        ("sqnr_db", "channel_sqnr_db"),
        ("whole tensor", "median channel"),
        strict=True,
    ):
        for name, stats in runs.items():
            ax.plot([getattr(s, field) for s in stats], lw=1, label=name)
        ax.axhline(48.1, color="grey", lw=0.5, ls="--")
        ax.set(ylabel="8-bit SQNR (dB)", title=title)
    axes[0].legend(fontsize=8)
    axes[1].set_xticks(list(ticks.values()), labels)
    axes[1].set_xlabel("tensor (graph order; ticks: each block's first)")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def run_report(
    runs: Sequence[RunData],
    out_prefix: Path,
    *,
    split: str = "val",
    limit: int | None = 400,
    count: int = 20,
    command: str = "python benchmarks/int8_ranges.py",
    log: Callable[[str], None] = print,
) -> list[Path]:
    """Measure ``runs`` and write ``<out_prefix>.json``, ``.md`` and ``.png``; returns the paths."""
    from mobile_skin.common.errors import UserError
    from mobile_skin.common.fileio import shown_path, suffixed, write_json, write_text
    from mobile_skin.common.machine import describe, headline

    names = [run.paths.root.name for run in runs]
    if len(set(names)) < len(names):
        raise UserError(f"runs share a directory name ({', '.join(names)}): rename one")
    measured = {run.paths.root.name: measure_run(run, split, limit, log) for run in runs}
    images = f"the first {limit}" if limit else "all"
    header = (
        f"# Int8 activation ranges: {', '.join(measured)}\n\n"
        f"Every activation tensor of each model's export form, on {images} {split} images, each "
        "quantized alone to 8 bits over its least-squares range (mobile_skin.quant."
        "activation_ranges). SQNR: signal over quantization noise; a uniform signal filling its "
        f"range gets 48.1 dB. Machine: {headline()}. Command: `{command}`.\n\n"
        f"![SQNR along the graph]({suffixed(out_prefix, '.png').name})"
    )
    document = {
        "command": command,
        "split": split,
        "limit": limit,
        "machine": describe(),
        "runs": {
            name: {"run": shown_path(run.paths.root), "tensors": [s.to_dict() for s in stats]}
            for (name, stats), run in zip(measured.items(), runs, strict=True)
        },
    }
    return [
        write_json(suffixed(out_prefix, ".json"), document),
        write_text(suffixed(out_prefix, ".md"), render(measured, header, count)),
        write_plot(suffixed(out_prefix, ".png"), measured),
    ]
