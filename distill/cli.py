"""`vqa-distill`: fine-tune the InternVideo2 teacher on MOS, then distill a student.

The group stays small: each subcommand's body lives in its own module and is only
imported here, so adding `teacher` / `student` is one `add_command` line each.
"""

from __future__ import annotations

import click

from .models.listing import models_command
from .train_cli import student_command, teacher_command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Train InternVQA models: teacher fine-tuning on MOS and distillation into students.

    \b
    Models:   `vqa-distill models` lists teachers and students with params and MACs.
    Teachers: internvideo2_1b, internvideo2_6b, internvideo2_cpu (CPU demos).
    Students: vit_s, vit_b, vit_l (homologous InternVideo2 S/B/L at patch 14),
              vit_tiny (tests) and any timm backbone as timm:<name>.
    """


main.add_command(models_command)
main.add_command(teacher_command)
main.add_command(student_command)


if __name__ == "__main__":
    main()
