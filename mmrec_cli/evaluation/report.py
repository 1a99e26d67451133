"""Self-contained HTML reports: metrics tables and training/validation curves drawn as inline SVG.

`eval_report` shows one evaluation: its metrics table, the model's training loss and validation
metrics per epoch (from the model artifact's `history`), and what was evaluated. `compare_report`
puts several eval results side by side (best per row in bold), the mean +- std of runs that
differ only by seed, the paired significance tests, and the curves of every model on one chart.
No plotting library: the SVG is written here, so the file opens anywhere, offline.
"""

from __future__ import annotations

import html
import math

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22")
MAIN_METRICS = ("ndcg@10", "recall@10", "mrr@10")

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; margin: 2em auto; max-width: 1000px; padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: .2em; } h2 { font-size: 1.15em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
.sub { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: .6em 0; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #ddd; padding: .3em .7em; text-align: right; } th { background: #f5f5f5; }
td:first-child, th:first-child { text-align: left; }
.wide { overflow-x: auto; max-width: 100%; margin: .6em 0; } .wide table { margin: 0; } tr.pooled td { background: #f7f7f7; font-weight: 600; }
.best { font-weight: 700; } .sig { color: #1a7f37; } .ns { color: #888; }
.charts { display: flex; flex-wrap: wrap; gap: 1em; } svg { background: #fff; border: 1px solid #eee; }
dl { display: grid; grid-template-columns: max-content auto; gap: .2em 1em; } dt { color: #666; } dd { margin: 0; font-family: ui-monospace, monospace; font-size: .9em; }
"""


# ----------------------------------------------------------------------------- charts


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About n round tick values covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0]
    if hi <= lo:
        lo, hi = lo - (abs(lo) or 1) * 0.5, hi + (abs(hi) or 1) * 0.5
    raw = (hi - lo) / max(1, n)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks, t = [], start
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 12))
        t += step
    if ticks[-1] < hi:
        ticks.append(round(t, 12))
    return ticks


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1000 or abs(v) < 0.001:
        return f"{v:.2g}"
    return f"{v:.4g}"


def line_chart(series: dict[str, list[tuple[float, float]]], title: str, xlabel: str = "epoch", ylabel: str = "", marks: dict[str, float] | None = None, width: int = 470, height: int = 300) -> str:
    """An SVG line chart: one polyline with points per named series; `marks` draws dashed x lines."""
    pts = [(x, y) for s in series.values() for x, y in s if y is not None and math.isfinite(y)]
    esc = html.escape
    if not pts:
        return f'<svg width="{width}" height="80" role="img"><text x="10" y="40" fill="#888">{esc(title)}: no data</text></svg>'
    left, right, top, bottom = 58, 16, 30, 44
    legend = legend_layout(list(series), width) if len(series) > 1 else []
    h = height + (18 * (legend[-1][1] + 1) if legend else 0)
    pw, ph = width - left - right, height - top - bottom
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    xt = nice_ticks(min(xs), max(xs), 6) if max(xs) > min(xs) else [min(xs) - 1, min(xs), min(xs) + 1]
    xt = [t for t in xt if float(t).is_integer()] or xt  # epochs are integers
    yt = nice_ticks(min(ys), max(ys), 5)
    x0, x1, y0, y1 = xt[0], xt[-1], yt[0], yt[-1]

    def X(x):
        return left + (x - x0) / ((x1 - x0) or 1) * pw

    def Y(y):
        return top + ph - (y - y0) / ((y1 - y0) or 1) * ph

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{h}" viewBox="0 0 {width} {h}" role="img" font-family="system-ui, sans-serif" font-size="11">']
    out.append(f'<text x="{width / 2}" y="18" text-anchor="middle" font-size="13" font-weight="600">{esc(title)}</text>')
    for t in yt:
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{Y(t):.1f}" y2="{Y(t):.1f}" stroke="#eee"/>')
        out.append(f'<text x="{left - 6}" y="{Y(t) + 4:.1f}" text-anchor="end" fill="#555">{_fmt(t)}</text>')
    for t in xt:
        out.append(f'<line x1="{X(t):.1f}" x2="{X(t):.1f}" y1="{top + ph}" y2="{top + ph + 4}" stroke="#888"/>')
        out.append(f'<text x="{X(t):.1f}" y="{top + ph + 16}" text-anchor="middle" fill="#555">{_fmt(t)}</text>')
    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#bbb"/>')
    out.append(f'<text x="{left + pw / 2}" y="{top + ph + 34}" text-anchor="middle" fill="#333">{esc(xlabel)}</text>')
    if ylabel:
        out.append(f'<text transform="translate(14 {top + ph / 2}) rotate(-90)" text-anchor="middle" fill="#333">{esc(ylabel)}</text>')
    for i, (name, x) in enumerate((marks or {}).items()):
        out.append(f'<line x1="{X(x):.1f}" x2="{X(x):.1f}" y1="{top}" y2="{top + ph}" stroke="#999" stroke-dasharray="4 3"><title>{esc(name)}</title></line>')
        anchor, dx = ("end", -3) if X(x) > left + pw * 0.7 else ("start", 3)
        out.append(f'<text x="{X(x) + dx:.1f}" y="{top + 11 + 12 * i}" text-anchor="{anchor}" fill="#777">{esc(name)}</text>')
    for i, (name, s) in enumerate(series.items()):
        color = COLORS[i % len(COLORS)]
        good = [(x, y) for x, y in s if y is not None and math.isfinite(y)]
        if not good:
            continue
        path = " ".join(f"{X(x):.1f},{Y(y):.1f}" for x, y in good)
        out.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{path}"/>')
        if len(good) <= 60:
            for x, y in good:
                out.append(f'<circle cx="{X(x):.1f}" cy="{Y(y):.1f}" r="2.6" fill="{color}"><title>{esc(name)} epoch {_fmt(x)}: {y:.4f}</title></circle>')
        if legend:
            out.append(_legend_entry(name, color, legend[i], height, width))
    out.append("</svg>")
    return "\n".join(out)


# Legend text is 11px. Estimating each label's width from its characters (generously: about the
# widest common sans fonts) keeps entries apart without measuring them in a browser.
SWATCH_W, GAP_W, ROW_H = 16, 14, 18


def text_w(s: str) -> float:
    """An upper bound on the width of 11px sans text: wide glyphs 11px, capitals 8px, others 6.5px."""
    return sum(11.0 if c in "mwMW@%…" else 8.0 if c.isupper() else 6.5 for c in s)


def _fit(s: str, max_w: float) -> str:
    """s, cut short with an ellipsis until it is at most max_w wide."""
    while len(s) > 1 and text_w(s) > max_w:
        s = s[:-2] + "…"
    return s


def legend_layout(names: list[str], width: int) -> list[tuple[float, int]]:
    """(x, row) of each legend entry: left to right, wrapping to a new row before one would overflow."""
    out, x, row, right = [], 10.0, 0, width - 10
    for name in names:
        w = SWATCH_W + text_w(_legend_text(name, width))
        if x > 10 and x + w > right:
            x, row = 10.0, row + 1
        out.append((x, row))
        x += w + GAP_W
    return out


def _legend_text(name: str, width: int) -> str:
    return _fit(name, width - 20 - SWATCH_W)


def _legend_entry(name: str, color: str, at: tuple[float, int], height: int, width: int) -> str:
    x, y = at[0], height + 4 + ROW_H * at[1]
    label = html.escape(_legend_text(name, width))
    return f'<g><title>{html.escape(name)}</title><rect x="{x:.1f}" y="{y}" width="12" height="4" fill="{color}"/><text x="{x + SWATCH_W:.1f}" y="{y + 6}" fill="#333">{label}</text></g>'


def history_series(history: list[dict]) -> tuple[list[tuple[float, float]], dict[str, list[tuple[float, float]]]]:
    """(training loss per epoch, {validation metric: per epoch}) from an artifact's history."""
    loss = [(h["epoch"], h.get("loss")) for h in history if "epoch" in h]
    valid: dict[str, list] = {}
    for h in history:
        for k, v in (h.get("valid") or {}).items():
            if isinstance(v, (int, float)):
                valid.setdefault(k, []).append((h["epoch"], float(v)))
    return loss, valid


# ----------------------------------------------------------------------------- tables


def metrics_table(metrics: dict) -> str:
    """Rows Recall / NDCG / MRR, one column per cut-off."""
    ks = sorted({int(k.split("@")[1]) for k in metrics if "@" in k})
    names = [n for n in ("recall", "ndcg", "mrr") if any(f"{n}@{k}" in metrics for k in ks)]
    head = "".join(f"<th>@{k}</th>" for k in ks)
    label = {"recall": "Recall", "ndcg": "NDCG", "mrr": "MRR"}
    rows = "".join(f"<tr><td>{label[n]}</td>" + "".join(f"<td>{_num(metrics.get(f'{n}@{k}'))}</td>" for k in ks) + "</tr>" for n in names)
    return f"<table><tr><th>metric</th>{head}</tr>{rows}</table>"


def _num(v, digits: int = 4) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def compare_table(columns: list[tuple[str, dict]], std: dict[str, dict] | None = None) -> str:
    """Metrics as rows, one column per result; the best value of each row in bold."""
    keys = []
    for _, m in columns:
        keys += [k for k in m if k not in keys and k != "users" and isinstance(m[k], (int, float))]
    keys.sort(key=lambda k: (k.split("@")[0] != "recall", k.split("@")[0] != "ndcg", int(k.split("@")[1]) if "@" in k else 0))
    head = "".join(f"<th>{html.escape(label)}</th>" for label, _ in columns)
    rows = []
    for k in keys:
        vals = [m.get(k) for _, m in columns]
        best = max((v for v in vals if v is not None), default=None)
        cells = []
        for (label, _), v in zip(columns, vals):
            s = _num(v)
            if std and label in std and k in std[label]:
                s += f" ± {std[label][k]:.4f}"
            cells.append(f'<td class="best">{s}</td>' if v is not None and v == best and len(columns) > 1 else f"<td>{s}</td>")
        rows.append(f"<tr><td>{html.escape(k)}</td>{''.join(cells)}</tr>")
    users = "".join(f"<td>{m.get('users', '–')}</td>" for _, m in columns)
    users = f"<tr><td>users</td>{users}</tr>" if any("users" in m for _, m in columns) else ""
    return _wide(f"<table><tr><th>metric</th>{head}</tr>{''.join(rows)}{users}</table>")


def significance_table(tests: list[dict], alpha: float = 0.05) -> str:
    rows = [_sig_row(t, metric, r, alpha) for t in tests for metric, r in t["tests"].items()]
    head = "<tr><th>comparison</th><th>metric</th><th>users</th><th>mean A</th><th>mean B</th><th>B − A</th><th>B better / worse / tied</th><th>paired t p</th><th>Wilcoxon p</th></tr>"
    note = f"Two-sided p-values over per-user values; green where both tests give p &lt; {alpha}."
    if any("seeds" in t for t in tests):
        note += " Rows with a seed pair the runs of that seed; “mean over seeds” rows test each user's metric averaged over those seeds."
    return _wide(f"<table>{head}{''.join(rows)}</table>") + f"<p class='sub'>{note}</p>"


def _sig_row(t: dict, metric: str, r: dict, alpha: float) -> str:
    cls = "sig" if r["wilcoxon_p"] < alpha and r["t_p"] < alpha else "ns"
    tr = '<tr class="pooled">' if "seeds" in t else "<tr>"
    return (
        f"{tr}<td>{html.escape(t['label'])}</td><td>{html.escape(metric)}</td><td>{r['users']}</td>"
        f"<td>{r['mean_a']:.4f}</td><td>{r['mean_b']:.4f}</td><td>{r['mean_diff']:+.4f}</td><td>{r['better']} / {r['worse']} / {r['ties']}</td>"
        f'<td class="{cls}">{r["t_p"]:.3g}</td><td class="{cls}">{r["wilcoxon_p"]:.3g}</td></tr>'
    )


SLICE_KINDS = {"target": "By the target's popularity in train", "history": "By history length (items before the target)"}
SLICE_METRICS = ("recall@10", "ndcg@10", "recall@20", "ndcg@20")


def slice_tables(slices: dict) -> str:
    """`eval --slice`'s metrics: a table per kind, a row per slice (users counted; unseen = never in train)."""
    out = []
    for kind, title in SLICE_KINDS.items():
        rows = slices.get(kind) or {}
        if not rows:
            continue
        head = "<tr><th>slice</th><th>users</th>" + "".join(f"<th>{m}</th>" for m in SLICE_METRICS) + "</tr>"
        body = "".join(f"<tr><td>{html.escape(name)}</td><td>{m.get('users', '–')}</td>" + "".join(f"<td>{_num(m.get(k))}</td>" for k in SLICE_METRICS) + "</tr>" for name, m in rows.items())
        out.append(f"<h3>{title}</h3>" + _wide(f"<table>{head}{body}</table>"))
    cold = slices.get("cold_max")
    if cold is not None:
        out.append(f"<p class='sub'>cold = seen 1 to {cold} times in train; mid and popular split the rest at its median count ({slices.get('median_warm_count')}).</p>")
    return "".join(out)


def slice_comparison(results: list[dict], metric: str = "ndcg@10") -> str:
    """One metric per slice, one column per result that has slices."""
    have = [r for r in results if r.get("slices")]
    out = []
    for kind, title in SLICE_KINDS.items():
        names: list[str] = []
        for r in have:
            names += [n for n in r["slices"].get(kind, {}) if n not in names]
        if names:
            cols = [(r["label"], {n: r["slices"].get(kind, {}).get(n, {}).get(metric) for n in names}) for r in have]
            head = "".join(f"<th>{html.escape(label)}</th>" for label, _ in cols)
            rows = "".join(f"<tr><td>{html.escape(n)}</td>" + "".join(f"<td>{_num(c.get(n))}</td>" for _, c in cols) + "</tr>" for n in names)
            out.append(f"<h3>{title}: {metric}</h3>" + _wide(f"<table><tr><th>slice</th>{head}</tr>{rows}</table>"))
    return "".join(out)


def _wide(table: str) -> str:
    """A table in its own horizontally scrolling box, so many columns do not widen the page."""
    return f"<div class='wide'>{table}</div>"


def _dl(items: dict) -> str:
    return "<dl>" + "".join(f"<dt>{html.escape(str(k))}</dt><dd>{html.escape(str(v))}</dd>" for k, v in items.items() if v not in (None, "")) + "</dl>"


def page(title: str, subtitle: str, body: list[str]) -> str:
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{CSS}</style></head><body>\n<h1>{html.escape(title)}</h1><p class='sub'>{html.escape(subtitle)}</p>\n" + "\n".join(body) + "\n</body></html>\n"
    )


# ----------------------------------------------------------------------------- reports


def curves(history: list[dict], best_epoch: int | None = None, metrics=MAIN_METRICS) -> str:
    loss, valid = history_series(history)
    marks = {f"best epoch {best_epoch}": best_epoch} if best_epoch is not None and best_epoch >= 0 else None
    charts = [line_chart({"train loss": loss}, "Training loss", ylabel="loss", marks=marks)]
    shown = {k: v for k, v in valid.items() if k in metrics} or dict(list(valid.items())[:3])
    if shown:
        charts.append(line_chart(shown, "Validation metrics", ylabel="value", marks=marks))
    return f"<div class='charts'>{''.join(charts)}</div>"


def eval_report(result: dict, history: list[dict] | None) -> str:
    """The report of one `mmrec eval` result; `history` from the model artifact's metadata."""
    m = result.get("model", {})
    title = f"{m.get('name', 'model')} on {result.get('split', '?')}"
    subtitle = f"{result['metrics'].get('users', '?')} users, protocol {result.get('protocol')}, masked from the ranking: {result.get('masked') or ('train' if result.get('mask_history') else 'none')}"
    body = ["<h2>Metrics</h2>", metrics_table(result["metrics"])]
    if result.get("slices"):
        body += ["<h2>Slices</h2>", slice_tables(result["slices"])]
    body.append("<h2>Training and validation</h2>")
    if history:
        body.append(curves(history, m.get("best_epoch")))
    else:
        body.append("<p class='sub'>The model artifact holds no training history.</p>")
    body += ["<h2>What was evaluated</h2>", _dl({"model": m.get("path"), "model fingerprint": m.get("fingerprint"), "best epoch": m.get("best_epoch"), "dataset": result.get("dataset", {}).get("path"), "dataset fingerprint": result.get("dataset", {}).get("fingerprint"), "seed": result.get("seed"), "mmrec": (result.get("versions") or {}).get("mmrec"), "torch": (result.get("versions") or {}).get("torch")})]
    return page(f"mmrec eval: {title}", subtitle, body)


def comparison_report(comparison: dict) -> str:
    """Several eval results side by side (`mmrec_cli.evaluation.stats.compare_files`), with the curves of the
    models whose artifacts are still where the results say."""
    res = comparison["results"]
    body = ["<h2>Metrics</h2>", compare_table([(r["label"], r["metrics"]) for r in res])]
    for w in comparison.get("warnings", []):
        body.append(f"<p class='sub'>Note: {html.escape(w)}</p>")
    if comparison["seeds"]:
        cols = [(g["label"], {k: v["mean"] for k, v in g["summary"].items()}) for g in comparison["seeds"]]
        std = {g["label"]: {k: v["std"] for k, v in g["summary"].items()} for g in comparison["seeds"]}
        body += ["<h2>Over seeds (mean ± sample std)</h2>", compare_table(cols, std)]
    if comparison["tests"]:
        body += ["<h2>Paired significance (per user)</h2>", significance_table(comparison["tests"])]
    if any(r.get("slices") for r in res):
        body += ["<h2>Slices</h2>", slice_comparison(res)]
    histories = {r["label"]: _history(r.get("model_path")) for r in res}
    if any(histories.values()):
        loss = {label: history_series(h)[0] for label, h in histories.items() if h}
        ndcg = {label: history_series(h)[1].get("ndcg@10", []) for label, h in histories.items() if h}
        body += ["<h2>Training and validation</h2>", f"<div class='charts'>{line_chart(loss, 'Training loss', ylabel='loss')}{line_chart(ndcg, 'Validation NDCG@10', ylabel='ndcg@10')}</div>"]
    rows = {r["label"]: f"{r.get('model')} · {r.get('split')} · seed {r.get('seed')} · {r.get('model_path')}" for r in res}
    body += ["<h2>Files</h2>", _dl(rows)]
    return page("mmrec eval: comparison", f"{len(res)} results", body)


def _history(model_path: str | None) -> list[dict] | None:
    """The training history in a model artifact's metadata, if the artifact is still there."""
    if not model_path:
        return None
    from mmrec_cli.errors import MmrecError
    from mmrec_cli.io import artifacts

    try:
        return artifacts.read_meta(model_path, "model").get("history")
    except MmrecError:
        return None
