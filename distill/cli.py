"""`vqa-distill`: fine-tune the InternVideo2 teacher on MOS, then distill a student.

The group stays small: each subcommand's body lives in its own module and is only
imported here, so adding `teacher` / `student` is one `add_command` line each.
"""

from __future__ import annotations

import os
import sys

import click

from internvqa.runtime.cli_common import Group

from .average import average_command
from .import_cli import import_command
from .models.listing import models_command
from .train_cli import hybrid_command, student_command, teacher_command


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Train InternVQA models: teacher fine-tuning on MOS and distillation into students.

    \b
    Models:   `vqa-distill models` lists teachers and students with params and MACs.
    Teachers: internvideo2_1b, internvideo2_6b, internvideo2_cpu (CPU demos).
    Students: vit_s, vit_b, vit_l (homologous InternVideo2 S/B/L at patch 14),
              vit_tiny (tests) and any timm backbone as timm:<name>.
    """


main.add_command(models_command)
main.add_command(import_command)
main.add_command(teacher_command)
main.add_command(student_command)
main.add_command(hybrid_command)
main.add_command(average_command)


# glibc returns freed memory to the OS and page-faults it back on every training step; told
# to keep it, a batch-32 EfficientNet-Lite0 step on 2 cores took 1.9 s instead of ~28 s
# (REFERENCE section 7). Values already in the environment win; INTERNVQA_MALLOC=0 opts out.
MALLOC_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "100000000000",
              "MALLOC_TOP_PAD_": "1000000000"}


def run() -> None:
    """Console entry point: re-exec once with `MALLOC_ENV` set (Linux), then `main`."""
    wanted = sys.platform.startswith("linux") and os.environ.get("INTERNVQA_MALLOC") != "0"
    if wanted and any(k not in os.environ for k in MALLOC_ENV):
        env = {**MALLOC_ENV, **os.environ}
        os.execve(sys.executable, [sys.executable, "-m", "internvqa.distill.cli", *sys.argv[1:]],
                  env)
    main()


if __name__ == "__main__":
    main()
