"""What the terminal shows: a wrong input fails once, fast, with the step's own message last.

The end-to-end cases run `python -m pipeline run --local --profile tiny` as a user does,
with a bad dataset file; the rest drive the pieces (the step's failure record, the
console, progress lines, the parameter checks) directly.
"""

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from components.qa.errors import FAILURE_TAG, InvalidInputError, failure_line, parse_failure_line
from components.qa.progress import Progress, parse_progress_line
from components.qa.progress_callback import ProgressCallback
from pipeline.console import RunConsole, StepInputError, progress_bar
from pipeline.local_run import format_summary
from pipeline.parameters import profile_parameters

REPO = Path(__file__).resolve().parents[2]
SAMPLE = json.loads((REPO / "data/squad-sample/validation.json").read_text())


def cli(tmp_path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run([sys.executable, "-m", "pipeline", "run", "--local", "--profile", "tiny",
                           "--pipeline-root", str(tmp_path / "root"), *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def log_of(result: subprocess.CompletedProcess) -> str:
    path = re.search(r"^log: (\S+)$", result.stderr, re.M)[1]
    return Path(path).read_text()


def one_question(edit) -> str:
    """The first article of the shipped SQuAD sample, cut to one paragraph, with `edit` applied."""
    article = json.loads(json.dumps(SAMPLE["data"][0]))
    article["paragraphs"] = article["paragraphs"][:1]
    doc = {"version": SAMPLE.get("version", "1.1"), "data": [article]}
    edit(article["paragraphs"][0]["qas"][0])
    return json.dumps(doc)


BAD_FILES = {
    # 67 bytes of truncated JSON: the case of the issue
    "malformed-json": ('{"version": "1.1", "data": [{"title": "x", "paragraphs": [{"context"',
                       "malformed JSON"),
    "question-missing": (one_question(lambda qa: qa.pop("question")), "'question'"),
    "answer-start-as-text": (one_question(lambda qa: qa["answers"][0].update(answer_start="12")),
                             "answer_start"),
}


@pytest.mark.parametrize("name", [
    "malformed-json",
    pytest.param("question-missing", marks=pytest.mark.slow),
    pytest.param("answer-start-as-text", marks=pytest.mark.slow),
])
def test_a_wrong_input_fails_once_with_the_file_on_the_last_line(tmp_path, name):
    content, problem = BAD_FILES[name]
    bad = tmp_path / f"{name}.json"
    bad.write_text(content)
    result = cli(tmp_path, "--set", f"dataset={bad}")

    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: step 'download' rejected its input: ")
    assert str(bad) in last and problem in last
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stdout == ""  # no metrics: nothing was scored
    log = log_of(result)
    assert "Traceback" in log and "InvalidInputError" in log and problem in log
    assert log.count("Executing task \x1b[96m'download'") == 1  # one attempt: no retry
    assert "'preprocess-train'" not in log  # nothing ran after the rejected input


@pytest.mark.slow
def test_a_step_that_fails_otherwise_ends_with_its_own_error_line(tmp_path):
    """answer_policy=drop with every answer wrong: download has no example left to publish."""
    def wrong_answer(qa):
        qa["answers"] = [{"text": "not in the context", "answer_start": 0}]
    doc = json.loads(one_question(wrong_answer))
    for qa in doc["data"][0]["paragraphs"][0]["qas"]:
        wrong_answer(qa)
    bad = tmp_path / "all-dropped.json"
    bad.write_text(json.dumps(doc))
    result = cli(tmp_path, "--set", f"dataset={bad}", "--set", "answer_policy=drop")

    last = result.stderr.strip().splitlines()[-1]
    assert str(bad) in last and "no examples left" in last
    # the exit status says which kind of line it is: 2 a rejected input, 1 any other failure
    assert result.returncode == (2 if "rejected its input" in last else 1)
    assert last.startswith("error: step 'download' ")
    assert "Traceback" not in result.stderr + result.stdout and "Traceback" in log_of(result)


def test_a_verbose_run_shows_the_traceback(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(BAD_FILES["malformed-json"][0])
    result = cli(tmp_path, "--set", f"dataset={bad}", "--verbose")

    assert result.returncode == 2
    assert "Traceback (most recent call last)" in result.stdout
    assert "components.qa.errors.InvalidInputError" in result.stdout
    assert str(bad) in result.stderr.strip().splitlines()[-1]


def test_a_bad_parameter_fails_before_the_dag_without_a_traceback(tmp_path):
    result = cli(tmp_path, "--set", "max_answer_length=-1")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: field 'max_answer_length'")
    assert "Traceback" not in result.stderr


# -- the step's failure record ------------------------------------------------------------

def run_step_code(code: str, kfp_runtime: bool) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("_KFP_RUNTIME", None)
    if kfp_runtime:
        env["_KFP_RUNTIME"] = "true"  # what the KFP executor's command sets
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)


def test_a_steps_invalid_input_leaves_its_record_after_the_traceback():
    code = ("from components.qa.errors import InvalidInputError\n"
            "print('working', flush=True)\n"
            "raise InvalidInputError('expected int, got str', fix='Use a number.', "
            "source='/data/train.json', record='q1', field='answers[0].answer_start')\n")
    step = run_step_code(code, kfp_runtime=True)
    assert step.returncode == 1
    lines = step.stderr.strip().splitlines()
    assert lines[0].startswith("Traceback") and lines[-1].startswith(FAILURE_TAG)
    record = parse_failure_line("    " + lines[-1])  # kfp.local indents step output
    assert record == {"error": "InvalidInputError", "problem": "expected int, got str",
                      "fix": "Use a number.", "source": "/data/train.json", "record": "q1",
                      "field": "answers[0].answer_start",
                      "message": "in /data/train.json, record 'q1', field 'answers[0].answer_start': "
                                 "expected int, got str. Use a number."}

    outside = run_step_code(code, kfp_runtime=False)  # a user's own script: untouched
    assert FAILURE_TAG not in outside.stderr and "Traceback" in outside.stderr
    other = run_step_code("import components.qa.errors\nraise KeyError('x')\n", kfp_runtime=True)
    assert FAILURE_TAG not in other.stderr  # only a wrong input is reported as one


def test_a_failure_line_round_trips_and_garbage_is_not_one():
    error = InvalidInputError("bad", fix="Fix it.", source="f.json", field="context")
    assert parse_failure_line(failure_line(error)) == error.as_record()
    assert parse_failure_line(FAILURE_TAG + ": {not json") is None
    assert parse_failure_line("qa-step-errors: {}") is None


# -- the console --------------------------------------------------------------------------

class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def kfp_lines(step: str, status: str) -> tuple[str, str]:
    """What kfp.local logs when a step starts and ends (colours included)."""
    return (f"00:00:00.000 - INFO - Executing task \x1b[96m'{step}'\x1b[0m\n",
            f"00:00:00.000 - INFO - Task \x1b[96m'{step}'\x1b[0m finished with status "
            f"\x1b[92m{status}\x1b[0m\n")


def console_for(clock, verbose=False, heartbeat=30.0):
    log, terminal = io.StringIO(), io.StringIO()
    console = RunConsole(log, terminal, verbose=verbose, tty=False, heartbeat=heartbeat, clock=clock)
    return console, log, terminal


def test_the_console_shows_one_line_per_step_and_logs_everything():
    clock = Clock()
    console, log, terminal = console_for(clock)
    console.write("00:00:00.000 - INFO - Task download cache hit (key=0123456789ab); skipping execution.\n")
    start, end = kfp_lines("fine-tune", "SUCCESS")
    console.write(start)
    console.write('    {"executorInput": {"inputs": {}}}\n')
    clock.now = 100.0
    console.write('    qa-progress: {"phase": "fine-tune", "done": 50, "total": 250, "elapsed": 100.0}\n')
    clock.now = 500.0
    console.write("    qa-progress: ")  # a line that arrives in two pieces (Docker's log stream)
    console.write('{"phase": "fine-tune", "done": 250, "total": 250, "elapsed": 500.0}\n')
    console.write(end)
    shown = terminal.getvalue().splitlines()
    assert shown[0].split() == ["download", "cached"]
    assert shown[1].startswith("fine-tune") and "[####." in shown[1] and "50/250" in shown[1]
    assert "ETA 6:40" in shown[1]  # 100 s for 50 steps: 400 s for the other 200
    assert shown[-1].split() == ["fine-tune", "8:20", "ok"]
    assert "executorInput" not in terminal.getvalue()
    assert "executorInput" in log.getvalue() and "qa-progress" in log.getvalue()


def test_the_console_stops_the_run_at_a_rejected_input_and_keeps_a_crash_line():
    clock = Clock()
    console, log, terminal = console_for(clock)
    start, end = kfp_lines("evaluate", "FAILURE")
    console.write(start)
    console.write("    RuntimeError: CUDA error: out of memory\n")
    console.write(end)
    assert console.failed_step == "evaluate"
    assert console.last_error["evaluate"] == "RuntimeError: CUDA error: out of memory"
    assert terminal.getvalue().splitlines()[-1].split() == ["evaluate", "0", "s", "failed"]

    error = InvalidInputError("malformed JSON at line 1, column 2", fix="Fix it.", source="/d/bad.json")
    console.write(kfp_lines("download", "FAILURE")[0])
    with pytest.raises(StepInputError) as caught:
        console.write("    " + failure_line(error) + "\n")
    assert caught.value.step == "download" and str(caught.value) == str(error)


def test_the_console_captures_print_and_kfps_info_logging():
    import logging

    console, log, terminal = console_for(Clock())
    level = logging.getLogger().level
    with console.capturing():
        print("    executor output")
        # kfp.local logs a cache hit on the root logger, outside its own logger context
        logging.getLogger("kfp.local").info("Task preprocess-train cache hit (key=0123456789ab); "
                                            "skipping execution.")
    assert "executor output" in log.getvalue() and "cache hit" in log.getvalue()
    assert terminal.getvalue().split() == ["preprocess-train", "cached"]
    assert logging.getLogger().level == level  # put back


def test_on_a_terminal_the_running_step_is_redrawn_in_place():
    clock, log, terminal = Clock(), io.StringIO(), io.StringIO()
    console = RunConsole(log, terminal, tty=True, clock=clock)
    start, end = kfp_lines("evaluate", "SUCCESS")
    console.write(start)
    clock.now = 3.0
    console.write('qa-progress: {"phase": "evaluate", "done": 32, "total": 45, "elapsed": 3.0}\n')
    drawn = terminal.getvalue()
    assert "\n" not in drawn and drawn.endswith("\r\x1b[Kevaluate                  3 s  running  "
                                                "[#################.......] 32/45  ETA 1 s")
    clock.now = 4.0
    console.write(end)
    assert terminal.getvalue().endswith("\r\x1b[Kevaluate                  4 s  ok\n")


def test_a_verbose_console_passes_everything_through():
    console, log, terminal = console_for(Clock(), verbose=True)
    start, end = kfp_lines("download", "SUCCESS")
    console.write(start + "    Traceback (most recent call last):\n" + end)
    assert terminal.getvalue() == log.getvalue()


def test_a_quiet_step_shows_it_is_alive_every_heartbeat():
    clock = Clock()
    console, log, terminal = console_for(clock, heartbeat=30.0)
    console.write(kfp_lines("preprocess-train", "SUCCESS")[0])
    clock.now = 31.0
    console._show_status()  # what the ticker thread calls
    clock.now = 40.0
    console._show_status()  # within the heartbeat: nothing new
    assert terminal.getvalue().splitlines() == ["preprocess-train         31 s  running"]


def test_progress_lines_are_throttled_and_the_last_is_always_printed():
    clock, out = Clock(), io.StringIO()
    progress = Progress("evaluate", total=10, every=2.0, out=out, clock=clock)
    for done in range(1, 11):
        clock.now = done * 0.5
        progress.update(done)
    records = [parse_progress_line(line) for line in out.getvalue().splitlines()]
    assert [r["done"] for r in records] == [1, 5, 9, 10]
    assert records[-1] == {"phase": "evaluate", "done": 10, "total": 10, "elapsed": 5.0}
    assert progress_bar(records[1], width=10) == "[#####.....] 5/10  ETA 2 s"


def test_the_trainer_callback_reports_steps_from_rank_zero_only(capsys):
    class State:
        is_world_process_zero, max_steps, global_step = True, 4, 0

    callback = ProgressCallback(every=0.0)
    state = State()
    callback.on_train_begin(None, state, None)
    for step in range(1, 5):
        state.global_step = step
        callback.on_step_end(None, state, None)
    records = [parse_progress_line(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["done"], r["total"]) for r in records] == [(0, 4), (1, 4), (2, 4), (3, 4), (4, 4)]

    state.is_world_process_zero = False
    other_rank = ProgressCallback(every=0.0)
    other_rank.on_train_begin(None, state, None)
    other_rank.on_step_end(None, state, None)
    assert capsys.readouterr().out == ""


def test_the_summary_ends_with_the_metrics_table():
    summary = format_summary({"metrics": {"exact_match": 38.8, "f1": 53.9, "num_examples": 24},
                              "run_dir": "/r/qa-finetune-1", "artifacts": ["/r/a"], "seconds": 12.5})
    assert summary.splitlines()[-3:] == ["exact_match   38.8000", "f1            53.9000",
                                         "num_examples  24"]
    assert "/r/a" not in summary  # the artifact list stays in the log


@pytest.mark.parametrize("name", ["batch_size", "eval_batch_size", "n_best", "max_answer_length",
                                  "max_train_samples", "max_eval_samples"])
def test_each_bad_parameter_is_named_as_itself(name):
    with pytest.raises(InvalidInputError) as caught:
        profile_parameters("tiny", {name: "-1"})
    assert caught.value.field == name and f"{name}=-1" in str(caught.value)
