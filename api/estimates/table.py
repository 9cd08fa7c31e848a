"""An estimate as `tunery estimate` prints it: tables in the manner of `accelerate estimate-memory`."""

from __future__ import annotations

from api.estimates.service import Estimate
from catalog.sizes import format_bytes


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "│ " + " │ ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)) + " │"

    rule = "─┼─".join("─" * width for width in widths)
    return "\n".join(
        [
            "┌─" + "─┬─".join("─" * w for w in widths) + "─┐",
            line(header),
            "├─" + rule + "─┤",
            *(line(row) for row in rows),
            "└─" + "─┴─".join("─" * w for w in widths) + "─┘",
        ]
    )


def _duration(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h {rest // 60:02d}m" if hours else f"{rest // 60}m {rest % 60:02d}s"


def render(estimate: Estimate) -> str:
    recipe = estimate.recipe
    counts = estimate.parameters
    share = 100 * counts.trainable / counts.total if counts.total else 0.0
    where = f"{recipe.num_gpus} GPU{'s' if recipe.num_gpus > 1 else ''}"
    if recipe.num_nodes > 1:
        where += f" x {recipe.num_nodes} nodes"
    if recipe.distributed != "none":
        where += f", {recipe.distributed}"
    lines = [
        f"Memory per GPU for training {estimate.model} with {recipe.type} ({estimate.method}; batch "
        f"{estimate.batch_size} x {recipe.max_seq_length} tokens; {where}; gradient checkpointing "
        f"{'on' if recipe.gradient_checkpointing else 'off'})",
        f"Parameters: {counts.total:,} total, {counts.trainable:,} trainable ({share:.2f}%)",
    ]
    if estimate.tokens is not None:
        lines.append(
            f"Training file: {estimate.tokens.n_examples:,} examples, {estimate.tokens.tokens:,} tokens an "
            f"epoch (counted by {estimate.tokens.counted_by}), {estimate.n_epochs} epochs"
        )
    rows = []
    for name, memory in estimate.by_precision.items():
        rows.append(
            [
                name,
                format_bytes(memory.parameters_bytes),
                format_bytes(memory.gradients_bytes),
                format_bytes(memory.optimizer_bytes),
                format_bytes(memory.activations_bytes + memory.logits_bytes),
                format_bytes(memory.total_bytes_per_gpu),
            ]
        )
    header = ["dtype", "parameters", "gradients", "optimizer", "activations", "total per GPU"]
    lines.append(_table(header, rows))
    if estimate.pools:
        pool_rows = [
            [
                fit.pool.name,
                fit.pool.describe(),
                "yes" if fit.fits else "no",
                "no" if fit.fits_without_checkpointing else "yes",
                f"{fit.tokens_per_second:,.0f} ({'measured' if fit.measured else 'default'})",
                _duration(fit.estimated_seconds),
            ]
            for fit in estimate.pools
        ]
        header = ["pool", "GPUs", "fits", "needs checkpointing", "tokens/s", "duration"]
        lines.append(_table(header, pool_rows))
    else:
        lines.append("No GPU pools registered: jobs train on the default pool.")
    return "\n".join(lines)
