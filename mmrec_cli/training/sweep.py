"""Hyper-parameter sweeps: one `mmrec finetune` run per (setting, seed), the choice among them, one test.

A setting gives a few dotted config keys (`model.hidden`, `train.lr`, the keys of `--set`) a value each. The
settings come from a grid (the cartesian product of each key's values) or are sampled from a space file. Every
run is `mmrec finetune` in a process of its own (this Python, `-m mmrec_cli`, the setting as `--set key=value`
and `--seed S`), writing DIR/runs/<setting id>/seed<S>.safetensors. A finished run (its artifact is there,
readable and made with this run's config and inputs) is skipped, an interrupted one continues from its
checkpoint (`finetune --resume`), so an interrupted sweep is finished by running the same command again.

The setting with the best validation metric averaged over seeds (read from each artifact's metadata) is chosen;
its runs alone are evaluated on the test split (`mmrec eval`, one process per seed), and against baseline
results with the paired tests of `mmrec eval --compare`. Everything here is a plain function; `sweep` does it
all, `mmrec sweep` calls it.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import itertools
import json
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmrec_cli import config as C
from mmrec_cli.errors import INTERNAL, IO_FAILURE, MmrecError, bad_input, not_found, usage
from mmrec_cli.training.jobs import Job, execute, last_line, thread_share

# The columns of the test table besides the selection metric (as `eval --compare`'s table).
TEST_KEYS = ("recall@10", "ndcg@10", "recall@20", "ndcg@20", "mrr@10")
DISTRIBUTIONS = ("log_uniform", "uniform")


@dataclass
class Setting:
    """One point of the sweep: dotted key -> value, as resolved by the config (1e-3 and 0.001 are one setting)."""

    id: str
    values: dict[str, Any]
    config: Any = field(repr=False, default=None)  # the resolved stage config (its train.seed not yet the run's)

    @property
    def sets(self) -> list[str]:
        """The `--set` arguments that give this setting to `mmrec finetune`."""
        return [f"{k}={json.dumps(v)}" for k, v in self.values.items()]

    def describe(self) -> str:
        return ", ".join(f"{k}={_text(v)}" for k, v in self.values.items())


@dataclass
class Run:
    setting: Setting
    seed: int
    artifact: Path

    @property
    def checkpoint(self) -> Path:
        return Path(f"{self.artifact}.ckpt")  # finetune's default: OUTPUT.ckpt

    @property
    def log(self) -> Path:
        return self.artifact.with_suffix(".log")


# ----------------------------------------------------------------------------- parsing the settings


def parse_seeds(text: str) -> list[int]:
    """--seeds of `sweep` and `finetune` as distinct integers: an empty list would train nothing, a repeated seed
    overwrite its own run."""
    try:
        values = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        values = []
    if not values or len(set(values)) < len(values):
        raise usage(f"--seeds {text}: expected integers separated by commas, each once, e.g. 1,2,3")
    return values


def parse_grid(items: list[str]) -> list[tuple[str, list[str]]]:
    """--grid key=v1,v2 ... as (key, raw values) in the order given; the values are read as `--set` reads them."""
    axes: list[tuple[str, list[str]]] = []
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise usage(f"--grid {item}: expected key=v1,v2,..., e.g. --grid train.lr=0.001,0.0003")
        values = raw.split(",")
        if any(not v.strip() for v in values):
            raise usage(f"--grid {item}: empty value; give one or more values separated by commas, e.g. --grid train.lr=0.001,0.0003")
        if key in (k for k, _ in axes):
            raise usage(f"--grid {key} is given twice; give all its values in one --grid {key}=v1,v2")
        axes.append((key, [v.strip() for v in values]))
    return axes


def grid_points(axes: list[tuple[str, list[str]]]) -> list[dict[str, str]]:
    """The cartesian product of the axes, the last key varying fastest."""
    keys = [k for k, _ in axes]
    return [dict(zip(keys, combo)) for combo in itertools.product(*(values for _, values in axes))]


def read_space(path: str) -> dict[str, Any]:
    """A space file (JSON or TOML): dotted key -> a list of choices, {"log_uniform": [lo, hi]} or
    {"uniform": [lo, hi]}. Sections may nest (TOML's `[train]` table, or `train.lr = ...` unquoted)."""
    from mmrec_cli import config as C

    space = _flatten_space(C.read_config_file(path), "")
    if not space:
        raise bad_input(f'{path}: the space has no keys; give e.g. {{"train.lr": {{"log_uniform": [0.0001, 0.01]}}, "model.hidden": [32, 64]}}')
    for key, spec in space.items():
        if not _valid_space_entry(spec):
            raise bad_input(f'{path}: \'{key}\': expected a non-empty list of choices, {{"log_uniform": [lo, hi]}} with 0 < lo < hi, or {{"uniform": [lo, hi]}} with lo < hi; got {json.dumps(spec)}')
    return space


def _flatten_space(data: dict, prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in data.items():
        if isinstance(v, dict) and not any(d in v for d in DISTRIBUTIONS):
            out |= _flatten_space(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = v
    return out


def _valid_space_entry(spec) -> bool:
    if isinstance(spec, list):
        return bool(spec)
    if not isinstance(spec, dict) or len(spec) != 1:
        return False
    (kind, bounds), = spec.items()
    if kind not in DISTRIBUTIONS or not isinstance(bounds, list) or len(bounds) != 2:
        return False
    if not all(isinstance(b, (int, float)) and not isinstance(b, bool) and math.isfinite(b) for b in bounds):
        return False
    lo, hi = bounds
    return lo < hi and (kind == "uniform" or lo > 0)


def sample_points(space: dict[str, Any], n: int, sample_seed: int) -> list[dict[str, str]]:
    """`n` draws from the space, the same for the same space and `sample_seed` (Python's `random`); each
    sampled float is rounded to 4 significant digits, so that settings read well and stay exact in files."""
    import random

    if n < 1:
        raise usage(f"--random {n}: give the number of settings to sample, 1 or more")
    rng = random.Random(sample_seed)
    points = []
    for _ in range(n):
        point = {}
        for key, spec in space.items():
            if isinstance(spec, list):
                value = spec[rng.randrange(len(spec))]
            else:
                (kind, (lo, hi)), = spec.items()
                x = math.exp(rng.uniform(math.log(lo), math.log(hi))) if kind == "log_uniform" else rng.uniform(lo, hi)
                value = float(f"{x:.4g}")
            point[key] = json.dumps(value)
        points.append(point)
    return points


def resolve_settings(spec, config_file: str | None, sets: list[str], points: list[dict[str, str]], where: Callable[[dict], str]) -> list[Setting]:
    """Each point as a Setting, checked by the config's own validation (unknown keys, types, ranges) before
    any run starts. Points that resolve to the same setting are kept once. `where(point)` names a point
    in an error."""
    from mmrec_cli.training import loading

    loading.resolve_stage(spec, config_file, sets, {})  # the fixed part, checked on its own first
    check_keys(points[0] if points else {}, sets, where)
    settings: dict[str, Setting] = {}
    for point in points:
        try:
            cfg = loading.resolve_stage(spec, config_file, sets + [f"{k}={v}" for k, v in point.items()], {})
        except MmrecError as err:
            raise MmrecError(f"{where(point)}: {err}", err.code) from None
        values = {k: _plain(_lookup(cfg, k)) for k in point}
        sid = setting_id(values)
        settings.setdefault(sid, Setting(sid, values, cfg))
    return list(settings.values())


def check_keys(point: dict[str, str], sets: list[str], where: Callable[[dict], str]) -> None:
    """No swept key is the seed (that is --seeds) or a key that --set fixes."""
    fixed = {item.partition("=")[0].strip() for item in sets}
    for key, value in point.items():
        if key == "train.seed":
            raise usage(f"{where({key: value})}: the seeds of a sweep are --seeds, e.g. --seeds 1,2,3; sweep other keys")
        if key in fixed:
            raise usage(f"{where({key: value})}: {key} is also fixed by --set; drop one of them")


def setting_id(values: dict[str, Any]) -> str:
    """A short, stable name of a setting: 8 hex digits of the sha256 of its values (keys sorted)."""
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode("utf-8")).hexdigest()[:8]


def _lookup(cfg, key: str):
    value = cfg
    for part in key.split("."):
        value = getattr(value, part)
    return value


def _plain(value):
    """A config value as JSON has it (tuples as lists)."""
    return json.loads(json.dumps(value))


def _text(value) -> str:
    return value if isinstance(value, str) else json.dumps(value)


# ----------------------------------------------------------------------------- the sweep


@dataclass
class Plan:
    """What a sweep runs and where; made and checked before anything is written."""

    model: str
    dataset: str
    out: Path
    seeds: list[int]
    settings: list[Setting]
    keys: list[str]
    metric: str
    source: dict
    features: str | None = None
    config: str | None = None
    sets: list[str] = field(default_factory=list)
    init: str | None = None
    baselines: list[str] = field(default_factory=list)
    device: str = "auto"
    identity: dict = field(default_factory=dict)  # the inputs' fingerprints every run must have been made with

    def runs(self) -> list[Run]:
        return [Run(s, seed, self.out / "runs" / s.id / f"seed{seed}.safetensors") for s in self.settings for seed in self.seeds]

    def test_result(self, seed: int) -> Path:
        return self.out / f"test_seed{seed}.json"

    def test_rankings(self, seed: int) -> Path:
        return self.out / f"test_seed{seed}.rankings.jsonl"


def plan(
    model: str, dataset: str, out: str | os.PathLike, seeds: str, *, features: str | None = None, config: str | None = None,
    sets: list[str] | None = None, init: str | None = None, grid: list[str] | None = None, random: int | None = None,
    space: str | None = None, sample_seed: int = 0, metric: str | None = None, baselines: list[str] | None = None,
    device: str = "auto", jobs: int = 1,
) -> Plan:
    """Check every input and build the plan; nothing is written. Errors are MmrecError (one line)."""
    from mmrec_cli import models

    sets, grid, baselines = list(sets or []), list(grid or []), [str(b) for b in baselines or []]
    if grid and random is not None:
        raise usage("--grid and --random are two ways to give the settings; use one of them")
    if not grid and random is None:
        raise usage("no settings to sweep; give --grid key=v1,v2 (repeatable) or --random N --space FILE")
    if (random is None) != (space is None):
        raise usage("--random N and --space FILE go together: N settings are sampled from the space file")
    if jobs < 1:
        raise usage(f"--jobs {jobs}: give the number of runs at a time, 1 or more")
    seed_list = parse_seeds(seeds)
    check_metric(metric, "--metric")
    spec = models.get(model)
    if "finetune" not in models.stages(model):
        raise usage(f"model '{model}' has no finetune stage; choose one of {', '.join(models.names('finetune'))}")
    from mmrec_cli.training import loading

    loading.resolve_stage(spec, config, sets, {})  # what every run shares, checked before what is swept
    if grid:
        axes = parse_grid(grid)
        points, source = grid_points(axes), {"grid": {k: v for k, v in axes}}
        items = dict(zip((k for k, _ in axes), grid))
        where = lambda point: f"--grid {items[next(iter(point))]}" if len(point) == 1 else "setting " + ", ".join(f"{k}={v}" for k, v in point.items())
        check_keys({k: v[0] for k, v in axes}, sets, where)
        _check_values_alone(spec, config, sets, axes, items)
    else:
        space_map = read_space(str(space))
        points, source = sample_points(space_map, random, sample_seed), {"random": random, "space": str(space), "sample_seed": sample_seed}
        where = lambda point: f"--space {space}: " + ", ".join(f"{k}={v}" for k, v in point.items())
    settings = resolve_settings(spec, config, sets, points, where)
    if grid and len(settings) < len(points):
        raise usage(f"--grid: {len(points)} combinations give only {len(settings)} distinct settings (a value given twice, as 0.001 and 1e-3); give each value once")
    chosen_metric = metric or _common_metric(settings)
    p = Plan(model, str(dataset), Path(out), seed_list, settings, list(points[0]), chosen_metric, source, features, config, sets, init, baselines, device)
    _check_outputs(p)
    _check_baselines(baselines)
    p.identity = _inputs_identity(spec, p)
    return p


def _check_values_alone(spec, config, sets, axes, items) -> None:
    """Each grid value on its own, so that an unknown key or a bad value names its --grid option."""
    from mmrec_cli.training import loading

    for key, values in axes:
        for v in values:
            try:
                loading.resolve_stage(spec, config, sets + [f"{key}={v}"], {})
            except MmrecError as err:
                raise MmrecError(f"--grid {items[key]}: {err}", err.code) from None


METRIC = re.compile(r"(recall|hit|ndcg|mrr)@(\d+)")


def check_metric(metric: str | None, where: str) -> None:
    """A metric that validation records: recall, hit, ndcg or mrr at one of the evaluation's cut-offs."""
    if metric is None:
        return
    from mmrec_cli.evaluation.ranking import KS

    m = METRIC.fullmatch(metric)
    if not m or int(m.group(2)) not in KS:
        raise usage(f"{where} {metric}: validation records recall, hit, ndcg and mrr at {', '.join(map(str, KS))}; e.g. {where} ndcg@10")


def _common_metric(settings: list[Setting]) -> str:
    metrics = sorted({s.config.train.metric for s in settings})
    if len(metrics) > 1:
        raise usage(f"the settings select on different train.metric ({', '.join(metrics)}); give the metric to choose by with --metric")
    return metrics[0]


def _check_outputs(p: Plan) -> None:
    """Before anything is written: DIR is a folder (or nothing yet), no output is an input, no input is in runs/."""
    from mmrec_cli.io.atomic import check_distinct, check_writable

    inputs = {"DATASET": p.dataset, "--features": p.features, "--config": p.config, "--init": p.init,
              "--space": p.source.get("space"), "--baseline": p.baselines}
    named = [p.out / n for n in ("settings.json", "results.csv", "results.md", "best.safetensors", "compare.json")]
    named += [f(s) for s in p.seeds for f in (p.test_result, p.test_rankings)]
    check_distinct({"-o": [str(p.out)]}, inputs)
    if p.out.exists() and not p.out.is_dir():
        raise MmrecError(f"-o {p.out}: a file is in the way; give a folder for the sweep (made if missing)", IO_FAILURE)
    check_writable(p.out / "results.csv", "-o")
    check_distinct({"-o": [str(x) for x in named]}, inputs)
    runs = os.path.realpath(p.out / "runs")
    for label, value in inputs.items():
        for path in value if isinstance(value, list) else [value]:
            if path is not None and os.path.realpath(path).startswith(runs + os.sep):
                raise MmrecError(f"{label} {path} is inside the sweep's runs folder {p.out / 'runs'}; move it out or give another -o", IO_FAILURE)


def _check_baselines(paths: list[str]) -> None:
    for path in paths:
        if not Path(path).is_file():
            raise not_found(f"--baseline {path}: no such file; give a result written by `mmrec eval ... --split test -o R.json --rankings R.jsonl`")
        try:
            result = json.loads(Path(path).read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as err:
            raise bad_input(f"--baseline {path}: not JSON ({err}); give a result written by `mmrec eval -o`") from None
        if not isinstance(result, dict) or not isinstance(result.get("metrics"), dict):
            raise bad_input(f"--baseline {path}: not an eval result (no \"metrics\"); give a result written by `mmrec eval -o`")


def _inputs_identity(spec, p: Plan) -> dict:
    """The fingerprints of the dataset, features and init, read (and so checked) once before any run."""
    from mmrec_cli.data import dataset as D
    from mmrec_cli.io import model_file
    from mmrec_cli.training import loading

    ds = D.load(p.dataset)
    _, feats_meta = loading.features_for(spec, ds, p.features)
    if p.init is not None:
        _, init_meta = model_file.load(p.init)
        if init_meta.get("model") != p.model:
            from mmrec_cli.errors import mismatch

            raise mismatch(f"{p.init}: a {init_meta.get('model')} model cannot initialise {p.model}; pass a `mmrec pretrain {p.model}` output")
    return {"dataset": ds.fingerprint(), "features": None if feats_meta is None else feats_meta["fingerprint"],
            "init": None if p.init is None else loading.fingerprint(p.init)}


def run_config(run: Run) -> dict:
    """The resolved config a run's artifact must record (its seed set), as JSON has it."""
    cfg = run.setting.config
    return _plain(dataclasses.asdict(dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, seed=run.seed))))


def finished(p: Plan, run: Run) -> dict | None:
    """The artifact's metadata when the run is finished; None when it is not (no file, or one unreadable).
    An artifact made with other settings or inputs is an error: the sweep would mix two experiments."""
    from mmrec_cli.io import artifacts

    if not run.artifact.is_file():
        return None
    try:
        meta = artifacts.read_meta(run.artifact, kind="model")
    except MmrecError:
        return None
    made = {"model": meta.get("model"), "stage": meta.get("stage"), "config": meta.get("config"),
            "dataset": (meta.get("dataset") or {}).get("fingerprint"), "features": (meta.get("features") or {}).get("fingerprint"),
            "init": (meta.get("init") or {}).get("fingerprint")}
    want = {"model": p.model, "stage": "finetune", "config": run_config(run), **p.identity}
    implied = _implied_settings(made, p.model)
    _ignore_same_results(made, want, p.model)
    diff = _first_difference(want, made)
    if diff is not None:
        key, theirs, mine = diff
        note = C.PREDATES if key in implied else ""
        raise MmrecError(f"{run.artifact} was made with {key} = {json.dumps(theirs)}{note}, this sweep has {json.dumps(mine)}; give the sweep another -o folder, or remove {run.artifact.parent}", IO_FAILURE)
    return meta


def _ignore_same_results(made: dict, want: dict, model: str) -> None:
    """A run made with other values of the settings that change how, not what, the model computes (ModelSpec
    .same_results, e.g. MISSRec's model.recompute) is this run: take this sweep's values for them."""
    from mmrec_cli import models

    recorded = (made.get("config") or {}).get("model")
    if isinstance(recorded, dict):
        for key in models.get(model).same_results:
            if key in recorded:
                recorded[key] = want["config"]["model"].get(key)


def _implied_settings(made: dict, model: str) -> set[str]:
    """Give `made["config"]` the default of each setting it does not record (the artifact predates the setting:
    `loading.default_settings`); return those keys, dotted from `config.`."""
    from mmrec_cli import models
    from mmrec_cli.training import loading

    config = made.get("config")
    if not isinstance(config, dict):
        return set()
    recorded, implied = C.flatten(config), set()
    for key, value in loading.default_settings(models.get(model)).items():
        section, name = key.split(".", 1)
        if key not in recorded and isinstance(config.get(section, {}), dict):
            config.setdefault(section, {})[name] = value
            implied.add(f"config.{key}")
    return implied


def _first_difference(want: dict, made: dict, prefix: str = "") -> tuple[str, Any, Any] | None:
    for key in list(want) + [k for k in made if k not in want]:
        a, b = want.get(key), made.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            found = _first_difference(a, b, f"{prefix}{key}.")
            if found:
                return found
        elif a != b:
            return f"{prefix}{key}", b, a
    return None


def valid_metric(meta: dict, metric: str, where: Path) -> float:
    """The validation `metric` of the epoch a finetune artifact kept."""
    value = (meta.get("valid") or {}).get(metric)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        known = ", ".join(sorted(k for k, v in (meta.get("valid") or {}).items() if isinstance(v, float)))
        if not known:
            raise bad_input(f"{where}: no validation metrics recorded (no epoch was validated); set train.eval_every to at most train.epochs")
        raise bad_input(f"{where}: no validation {metric} recorded (it has {known}); choose another --metric")
    return float(value)


def finetune_argv(p: Plan, run: Run) -> list[str]:
    argv = ["finetune", p.model, p.dataset, "-o", str(run.artifact), "--resume", "--seed", str(run.seed), "--device", p.device]
    for option, value in (("--features", p.features), ("--config", p.config), ("--init", p.init)):
        if value is not None:
            argv += [option, str(value)]
    for item in p.sets + run.setting.sets:
        argv += ["--set", item]
    return argv


def eval_argv(p: Plan, run: Run) -> list[str]:
    argv = ["eval", str(run.artifact), p.dataset, "--split", "test", "-o", str(p.test_result(run.seed)),
            "--rankings", str(p.test_rankings(run.seed)), "--device", p.device]
    return argv + (["--features", str(p.features)] if p.features is not None else [])


def sweep(
    model: str, dataset: str, out: str | os.PathLike, seeds: str, *, jobs: int = 1, log: Callable[[str], None] = lambda s: None,
    threads: int | None = None, **options,
) -> dict:
    """Plan, run (skipping finished runs, resuming interrupted ones), choose, test, and write DIR/settings.json,
    results.csv, results.md, best.safetensors and the test results. `options`: those of `plan`. Returns a
    summary: the chosen setting, its best seed, the output paths."""
    p = plan(model, dataset, out, seeds, jobs=jobs, **options)
    p.out.mkdir(parents=True, exist_ok=True)
    with _locked(p.out):
        return _sweep(p, jobs, log, threads)


def _sweep(p: Plan, jobs: int, log: Callable[[str], None], threads: int | None) -> dict:
    from mmrec_cli.io.jsonl import write_json

    runs = p.runs()
    metas: dict[tuple[str, int], dict] = {}
    for run in runs:
        meta = finished(p, run)  # every artifact is checked before anything is written or run
        if meta is not None:
            metas[(run.setting.id, run.seed)] = meta
    write_json(str(p.out / "settings.json"), settings_record(p))
    for run in runs:
        if (run.setting.id, run.seed) in metas:
            run.checkpoint.unlink(missing_ok=True)  # left when the sweep was killed between the artifact and its removal
    todo = [r for r in runs if (r.setting.id, r.seed) not in metas]
    share = threads or thread_share(jobs)
    drawn = p.source.get("random")
    if drawn is not None and drawn > len(p.settings):
        log(f"--random {drawn}: {len(p.settings)} distinct settings (the others were drawn twice)")
    log(f"sweep {p.model}: {len(p.settings)} settings x {len(p.seeds)} seeds = {len(runs)} runs; {len(metas)} finished, {len(todo)} to run"
        + (f", {min(jobs, len(todo))} at a time with {share} thread(s) each" if todo else ""))
    for run in runs:
        if (run.setting.id, run.seed) in metas:
            log(f"skipped {run.setting.id} seed {run.seed}: finished, valid {p.metric} {valid_metric(metas[(run.setting.id, run.seed)], p.metric, run.artifact):.4f}")
    pending = []
    for run in todo:
        state = "resuming from its checkpoint" if run.checkpoint.exists() else "training"
        pending.append(Job(f"{run.setting.id} seed {run.seed}", finetune_argv(p, run), run.log, f"{state} ({run.setting.describe()})", _reporter(p, run)))
    _raise_failed(execute(pending, jobs, log, share), len(pending), "runs")
    for run in todo:
        meta = finished(p, run)
        if meta is None:
            raise MmrecError(f"{run.artifact}: the run ended without writing it; see {run.log}", INTERNAL)
        metas[(run.setting.id, run.seed)] = meta
    rows = table(p, metas)
    chosen = next(r for r in rows if r["chosen"])
    best_seed = max(p.seeds, key=lambda s: (chosen["valid"][s], -p.seeds.index(s)))
    log(f"chosen {chosen['setting'].id} ({chosen['setting'].describe()}): valid {p.metric} {chosen['mean']:.4f} ± {chosen['std']:.4f} over {len(p.seeds)} seeds")
    tests = _test(p, chosen["setting"], jobs, log, share)
    comparison = None
    if p.baselines:
        from mmrec_cli.evaluation import stats

        comparison = stats.compare_files(p.baselines + [str(p.test_result(s)) for s in p.seeds])
        write_json(str(p.out / "compare.json"), comparison)
    summary = stats_of(tests, p.metric)
    _write_results(p, rows, summary, tests, comparison, best_seed)
    log(f"wrote {p.out / 'results.csv'}, {p.out / 'results.md'} and {p.out / 'best.safetensors'} (seed {best_seed}): "
        + "  ".join(f"test {k} {v['mean']:.4f} ± {v['std']:.4f}" for k, v in list(summary.items())[:3]))
    return {"chosen": chosen["setting"].id, "values": chosen["setting"].values, "best_seed": best_seed,
            "results": str(p.out / "results.csv"), "test": {k: v for k, v in summary.items()}}


def _reporter(p: Plan, run: Run) -> Callable[[], str]:
    def done() -> str:
        from mmrec_cli.io import artifacts

        try:
            return f"valid {p.metric} {valid_metric(artifacts.read_meta(run.artifact, kind='model'), p.metric, run.artifact):.4f}"
        except MmrecError as err:
            return str(err)
    return done


def _raise_failed(failed: list[tuple[Job, int]], total: int, what: str) -> None:
    if not failed:
        return
    job, code = failed[0]
    exit_code = code if 0 < code < 256 else INTERNAL
    raise MmrecError(f"{len(failed)} of {total} {what} failed, the first {job.label} (exit {code}): {last_line(job.log)}; "
                     "finished runs are kept: run the sweep again to retry the others", exit_code)


def settings_record(p: Plan) -> dict:
    return {"model": p.model, "metric": p.metric, "seeds": p.seeds, "keys": p.keys, "source": p.source,
            "fixed": {"config": p.config, "set": p.sets, "features": p.features, "init": p.init, "dataset": p.dataset},
            "settings": {s.id: s.values for s in p.settings}}


def table(p: Plan, metas: dict[tuple[str, int], dict]) -> list[dict]:
    """One row per setting: its per-seed validation metric, mean and sample std; the best mean chosen (the first on a tie)."""
    rows = []
    for s in p.settings:
        valid = {seed: valid_metric(metas[(s.id, seed)], p.metric, p.out / "runs" / s.id / f"seed{seed}.safetensors") for seed in p.seeds}
        mean, std = _mean_std(list(valid.values()))
        rows.append({"setting": s, "valid": valid, "mean": mean, "std": std, "chosen": False})
    best = max(range(len(rows)), key=lambda i: (rows[i]["mean"], -i))
    rows[best]["chosen"] = True
    return rows


def _mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value), as `eval --compare` reports over seeds."""
    mean = math.fsum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1))


def _test(p: Plan, s: Setting, jobs: int, log: Callable[[str], None], threads: int) -> dict[int, dict]:
    """The chosen setting's runs on the test split, one `mmrec eval` per seed (skipped when its result is there)."""
    from mmrec_cli.io import artifacts

    pending, runs = [], [Run(s, seed, p.out / "runs" / s.id / f"seed{seed}.safetensors") for seed in p.seeds]
    for run in runs:
        if _test_done(p, run, artifacts.fingerprint_file(run.artifact)):
            log(f"skipped test of {s.id} seed {run.seed}: {p.test_result(run.seed)} is there")
            continue
        log_path = run.artifact.with_name(f"test_seed{run.seed}.log")
        pending.append(Job(f"test {s.id} seed {run.seed}", eval_argv(p, run), log_path, "evaluating on the test split", lambda seed=run.seed: _test_line(p, seed)))
    _raise_failed(execute(pending, jobs, log, threads), len(pending), "test evaluations")
    out = {}
    for run in runs:
        result = _read_json(p.test_result(run.seed))
        if result is None:
            raise MmrecError(f"{p.test_result(run.seed)}: the evaluation ended without writing it", INTERNAL)
        out[run.seed] = result
    return out


def _test_done(p: Plan, run: Run, fingerprint: str) -> bool:
    result = _read_json(p.test_result(run.seed))
    return (result is not None and result.get("split") == "test" and (result.get("model") or {}).get("fingerprint") == fingerprint
            and p.test_rankings(run.seed).is_file())


def _test_line(p: Plan, seed: int) -> str:
    metrics = (_read_json(p.test_result(seed)) or {}).get("metrics") or {}
    return "  ".join(f"test {k} {metrics[k]:.4f}" for k in test_keys(p.metric) if k in metrics)


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("metrics"), dict) else None


def test_keys(metric: str) -> list[str]:
    return list(dict.fromkeys([metric, *TEST_KEYS]))


def stats_of(tests: dict[int, dict], metric: str) -> dict[str, dict]:
    """Mean and std over seeds of the test metrics shown (`stats.seed_summary`, as `eval --compare`)."""
    from mmrec_cli.evaluation import stats

    summary = stats.seed_summary(list(tests.values()))
    return {k: summary[k] for k in test_keys(metric) if k in summary}


# ----------------------------------------------------------------------------- results


def results_csv(p: Plan, rows: list[dict], summary: dict[str, dict]) -> str:
    m = p.metric
    header = ["setting", *p.keys, *(f"valid_{m}_seed{s}" for s in p.seeds), f"valid_{m}_mean", f"valid_{m}_std", "chosen"]
    header += [f"test_{k}_{stat}" for k in summary for stat in ("mean", "std")]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for r in rows:
        s = r["setting"]
        test = [_num(summary[k][stat]) if r["chosen"] else "" for k in summary for stat in ("mean", "std")]
        w.writerow([s.id, *(_text(s.values[k]) for k in p.keys), *(_num(r["valid"][seed]) for seed in p.seeds),
                    _num(r["mean"]), _num(r["std"]), "yes" if r["chosen"] else "no", *test])
    return buf.getvalue()


def _num(x: float) -> str:
    return repr(float(x))  # every digit: the file is exact, and equal for equal runs


def results_md(p: Plan, rows: list[dict], summary: dict[str, dict], tests: dict[int, dict], comparison: dict | None, best_seed: int) -> str:
    m = p.metric
    chosen = next(r for r in rows if r["chosen"])["setting"]
    lines = [f"# Sweep of {p.model}: {len(p.settings)} settings x {len(p.seeds)} seeds", "",
             f"Chosen by the validation {m} averaged over seeds {', '.join(map(str, p.seeds))} (marked →).", ""]
    head = ["", "setting", *p.keys, f"valid {m} mean ± std", *(f"seed {s}" for s in p.seeds)]
    lines += ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in rows:
        s = r["setting"]
        cells = ["**→**" if r["chosen"] else "", f"`{s.id}`", *(_md(_text(s.values[k])) for k in p.keys),
                 f"{r['mean']:.4f} ± {r['std']:.4f}", *(f"{r['valid'][seed]:.4f}" for seed in p.seeds)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"## Test split: `{chosen.id}` ({_md(chosen.describe())})", "",
              "| metric | mean ± std | " + " | ".join(f"seed {s}" for s in p.seeds) + " |", "|" + " --- |" * (2 + len(p.seeds))]
    for k, v in summary.items():
        lines.append(f"| {k} | {v['mean']:.4f} ± {v['std']:.4f} | " + " | ".join(f"{tests[s]['metrics'][k]:.4f}" for s in p.seeds) + " |")
    lines += ["", f"`best.safetensors` is `runs/{chosen.id}/seed{best_seed}.safetensors`, the chosen setting's seed with the best validation {m}."]
    if comparison is not None:
        from mmrec_cli.evaluation import stats

        lines += ["", "## Paired tests against the baseline", "", "As `mmrec eval --compare` (also in `compare.json`):", "", "```",
                  *stats.text_table(comparison), "```"]
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def _write_results(p: Plan, rows, summary, tests, comparison, best_seed: int) -> None:
    import shutil

    from mmrec_cli.io.atomic import atomic_path, write_text

    chosen = next(r for r in rows if r["chosen"])["setting"]
    with atomic_path(p.out / "best.safetensors") as tmp:
        shutil.copyfile(p.out / "runs" / chosen.id / f"seed{best_seed}.safetensors", tmp)
    write_text(p.out / "results.md", results_md(p, rows, summary, tests, comparison, best_seed))
    write_text(p.out / "results.csv", results_csv(p, rows, summary))  # last: its presence says the sweep is complete


class _locked:
    """An exclusive lock on the sweep's folder (flock, released when the process ends however it ends), so that
    two sweeps never run the same runs at once. No file is left behind."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.fd: int | None = None

    def __enter__(self):
        try:
            import fcntl
        except ImportError:  # not on this platform: no lock
            return self
        self.fd = os.open(self.folder, os.O_RDONLY)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self.fd)
            self.fd = None
            raise MmrecError(f"-o {self.folder}: another mmrec sweep is running in this folder; wait for it to end or give another folder", IO_FAILURE) from None
        return self

    def __exit__(self, *exc):
        if self.fd is not None:
            os.close(self.fd)  # closing releases the lock
        return False
