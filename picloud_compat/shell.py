"""Shell commands as jobs (what ``picloud cron register LABEL SCHEDULE CMD`` schedules)."""

from __future__ import annotations

import subprocess

from picloud_compat.errors import CloudException


class ShellCommand:
    """A picklable callable that runs `command` with bash and returns its stdout.

    A non-zero exit raises CloudException with the tail of stderr, as PiCloud's shell
    jobs did.
    """

    def __init__(self, command: str) -> None:
        if not command.strip():
            raise ValueError("the shell command is empty")
        self.command = command
        self.__name__ = self.__qualname__ = f"shell: {command[:60]}"

    def __call__(self) -> str:
        proc = subprocess.run(["bash", "-c", self.command], capture_output=True, text=True)
        print(proc.stdout, end="")
        if proc.returncode != 0:
            raise CloudException(
                f"command exited with status {proc.returncode}: {proc.stderr[-2000:]}"
            )
        return proc.stdout
