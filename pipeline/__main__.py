"""Command line for the QA pipeline.

    python -m pipeline compile                      # writes pipeline/qa_finetune.yaml
    python -m pipeline compile --images build/images.env --accelerator-count 2
    python -m pipeline compile --num-nodes 4 --accelerator-count 8 --pvc qa-hf-cache --output multi.yaml
    python -m pipeline run --local                  # the whole DAG on this machine (profile: local)
    python -m pipeline run --local --profile tiny --set max_steps=2
    python -m pipeline run --local --runner docker --image qa-cpu:TAG
    python -m pipeline run --local --verbose       # every step's log (and tracebacks) on the terminal
    python -m pipeline serve --model DIR            # KServe model server (docs/serving.md)

`run` shows one line per step and the metrics; the full log is in
<pipeline-root>/logs/. Exit status: 0 done, 2 a wrong input or parameter, 1 any
other failure.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

from components.qa.errors import InvalidInputError
from pipeline.cli_options import add_compile_arguments, compile_pipeline
from pipeline.cluster_cli import add_cluster_commands
from pipeline.console import StepFailed, StepInputError
from pipeline.local_run import add_run_command
from pipeline.serving import add_serve_command

DEFAULT_YAML = Path(__file__).resolve().parent / "qa_finetune.yaml"


def compile_command(args) -> None:
    compile_pipeline(args, args.output)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    c = sub.add_parser("compile", help="compile the DAG to YAML")
    c.add_argument("--output", type=Path, default=DEFAULT_YAML)
    add_compile_arguments(c)
    c.set_defaults(func=compile_command)

    add_run_command(sub)  # the whole DAG on this machine (kfp.local)
    add_cluster_commands(sub)  # submit | schedule | runs | compare (kfp.Client)
    add_serve_command(sub)

    args = parser.parse_args(argv)
    try:
        args.func(args)
    except StepInputError as e:  # the step's own message: file, record, field, fix
        return _fail(args, f"error: step {e.step!r} rejected its input: {e}", 2)
    except InvalidInputError as e:
        return _fail(args, f"error: {e}", 2)
    except KeyboardInterrupt:
        return _fail(args, "error: interrupted", 130)
    except Exception as e:
        if getattr(args, "verbose", True):
            traceback.print_exc()
        message = str(e) if isinstance(e, StepFailed) else f"{type(e).__name__}: {e}"
        return _fail(args, f"error: {message}", 1)
    return 0


def _fail(args, line: str, code: int) -> int:
    """The error as the last line on stderr; the log (if any) names the detail above it."""
    console = getattr(args, "console", None)
    if console is not None:
        with open(console.log.name, "a", encoding="utf-8") as log:
            log.write(line + "\n")
        print(f"full log: {console.log.name}" + ("" if args.verbose else "  (--verbose shows it here)"),
              file=sys.stderr)
    print(line, file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
