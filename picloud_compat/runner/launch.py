"""Starting an executor confined *before* any of the tenant's code can run.

An environment's interpreter (``_env``) runs what the tenant installed as soon as it
starts: ``.pth`` files, ``sitecustomize``, modules that shadow the platform's. So the
pool process does not exec it as root. It execs this launcher with the worker's own
interpreter in isolated mode (``-I``: no environment variables, no current directory on
``sys.path``), which joins the executor's memory cgroup, confines itself (a session, a
mount namespace with ``/proc`` hiding other users' processes, the key's uid, no groups)
and only then execs the job interpreter, also with ``-I``.

Run as ``python -I -m picloud_compat.runner.launch UID CGROUP_PROCS INTERPRETER ARGS...``
(CGROUP_PROCS may be empty).
"""

from __future__ import annotations

import os
import sys

from picloud_compat.runner.executor import confine


def main(argv: list[str]) -> None:
    """Join the cgroup, confine, exec the interpreter: nothing else."""
    uid, procs, target = int(argv[1]), argv[2], argv[3:]
    if procs:  # before the uid changes: only root may move a process between cgroups
        with open(procs, "w") as f:
            f.write(str(os.getpid()))
    confine(uid)
    os.execv(target[0], target)


if __name__ == "__main__":
    main(sys.argv)
