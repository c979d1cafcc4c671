"""What each command does with its parsed arguments, and what it prints; the work is in the
layers below (tuner.run, tuner.output, tuner.study)."""
from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import optuna

from tuner import backends
from tuner.cli.options import measuring, options, writable
from tuner.config import modelconfig
from tuner.errors import ConfigError, Exit
from tuner.measure.inputs import Inputs
from tuner.measure.load import LoadSpec
from tuner.output import choice
from tuner.output.export import verify
from tuner.output.report import (
    ceiling_text,
    counts_line,
    failures,
    front_table,
    measurement_text,
    models_text,
    steps_text,
)
from tuner.output.study_report import write_report
from tuner.run import measure_once, search, verify_server
from tuner.server import RemoteServer
from tuner.study import guide
from tuner.study.confirm import confirmed, is_current, rejected
from tuner.study.selection import baseline_of
from tuner.study.settings import settings_of
from tuner.study.storage import existing, load_existing
from tuner.study.trials import Key


def cmd_search(args) -> int:
    study = search(options(args))
    model = settings_of(study).model
    slo = choice.slo_within(study, args.slo_p95_ms)
    chosen = choice.chosen(study, args.policy, slo)
    _print_front(study, chosen)
    status = _export(study, model, chosen, args, "slo" if slo else args.policy, slo)
    if chosen is not None and status == Exit.OK and args.launcher == "remote" and args.keep_chosen:
        with RemoteServer(args.url) as server:
            server.control.load(model, modelconfig.to_json(modelconfig.parse_config(chosen.user_attrs[Key.CONFIG])))
        print(f"left trial #{chosen.number}'s config loaded on {args.url}")
    return status


def _print_front(study: optuna.Study, chosen) -> None:
    trials, final, failed_again = study.get_trials(deepcopy=False), confirmed(study), rejected(study)
    how = " (re-measured: medians)" if is_current(study) else ""
    print(f"\n{counts_line(trials, failed_again)}\nPareto front{how}, and the baseline (* = exported):")
    settings = settings_of(study)
    print(front_table(final, baseline_of(final), chosen, settings.goal))
    for line in failures(trials, failed_again):
        print(f"failed {line}")
    for text in (steps_text(chosen), models_text(chosen, baseline_of(final), settings)) if chosen else ():
        if text:
            print(text)
    if guided := guide.summary(study):
        print(guided)


def _export(study: optuna.Study, model: str, chosen, args, policy: str, slo: float | None) -> int:
    if chosen is None:
        print(f"\nno measured trial meets {choice.unmet(study, slo)}: nothing exported", file=sys.stderr)
        return Exit.NOT_MET
    done = choice.export_choice(study, model, chosen, args.out, args.storage, policy, slo)
    print(f"\nexported trial #{chosen.number} ({done.summary}) to {done.path}")
    if done.ceiling is not None:
        print(ceiling_text(done.ceiling, chosen))
    print(f"watch or browse the study: tuner dashboard --storage {args.storage}")
    return Exit.OK


def cmd_measure(args) -> int:
    if args.json:
        writable(args.json, "--json")
    config = modelconfig.read_config(args.config) if args.config else None
    outcome = measure_once(measuring(args), config)
    if outcome.measurement is None:
        print(f"error: {outcome.reason}", file=sys.stderr)
        return Exit.NOT_MET
    print(measurement_text(outcome.measurement))
    if args.json:
        args.json.write_text(json.dumps(dataclasses.asdict(outcome.measurement), indent=2) + "\n")
    return Exit.OK


def cmd_dashboard(args) -> int:
    from optuna_dashboard import run_server  # a web server's imports: only for this command

    rdb = existing(args.storage)
    print(f"optuna-dashboard on http://{args.host}:{args.port}/ for {args.storage} (Ctrl-C to stop)", flush=True)
    run_server(rdb, host=args.host, port=args.port)
    return Exit.OK


def cmd_report(args) -> int:
    study = load_existing(args.storage, args.study_name)
    print(write_report(study, args.out, args.policy, choice.slo_within(study, args.slo_p95_ms)))
    return Exit.OK


def cmd_export(args) -> int:
    study = load_existing(args.storage, args.study_name)
    model = settings_of(study).model
    slo = choice.slo_within(study, args.slo_p95_ms)
    chosen = choice.numbered(study, args.trial) if args.trial is not None else choice.chosen(study, args.policy, slo)
    if args.verify and not settings_of(study).goal.is_default:
        raise ConfigError("--verify repeats a throughput study's measurement; for a goodput or capacity study, "
                          "measure the export with `tuner measure --config ... --request-rate RATE`")
    policy = "trial" if args.trial is not None else ("slo" if slo else args.policy)
    status = _export(study, model, chosen, args, policy, slo)
    if status or not args.verify or chosen is None:
        return status
    context = study.user_attrs.get("context", {})
    if not context.get("model_repository"):
        raise ConfigError("--verify needs the model's files: this study was made with a remote server, which reads "
                          "its own repository; copy the export there and run `tuner measure` against it")
    verdict = verify(args.out, Path(context["model_repository"]), model, list(chosen.user_attrs.get(Key.MEMBERS) or {}),
                     verify_server(context), LoadSpec.from_json(context["load"]),
                     Inputs.from_json(context.get("inputs")), chosen, args.run_dir / "verify")
    print(verdict.text(chosen))
    return Exit.OK if verdict.within_ci else Exit.NOT_MET  # not measured, or not what the study measured


def cmd_backends(args) -> int:
    if args.action == "build":
        for name in args.names:
            backends.build(name, args.source_dir, args.jobs)
        return Exit.OK
    print(f"cache: {backends.cache_root()}")
    print(f"{'backend':12} {'links':26} built")
    print(f"{'python':12} {'(in nvidia-pytriton)':26} yes")
    for row in backends.status():
        print(f"{row.backend:12} {row.library:26} {row.folder or 'no: tuner backends build ' + row.backend}")
    return Exit.OK


COMMANDS = {"search": cmd_search, "measure": cmd_measure, "dashboard": cmd_dashboard, "report": cmd_report,
            "export": cmd_export, "backends": cmd_backends}
