"""Functions the tests submit. Workers run in an empty directory, so this module reaches
them by value (it is local, not installed): using it also exercises code shipping."""

from __future__ import annotations

import os
import sys
import time

SCALE = 3


class Point:
    def __init__(self, x: int, y: int) -> None:
        self.x, self.y = x, y

    def norm1(self) -> int:
        return abs(self.x) + abs(self.y)


def add(a, b=0):
    return a + b


def square(x):
    return x * x


def scaled(x):
    return x * SCALE


def echo(*args, **kwargs):
    return args, kwargs


def pair(a, b):
    return (a, b)


def fail(message="boom"):
    raise ValueError(message)


def noop(x=None):
    return x


def sleep(seconds, value=None):
    time.sleep(seconds)
    return value


def shout(text):
    print(text)
    print("to stderr", file=sys.stderr)
    return len(text)


def chatty(lines, pause):
    for i in range(lines):
        print(f"line {i}", flush=True)
        time.sleep(pause)
    return lines


def spin(seconds):
    end = time.time() + seconds
    x = 0
    while time.time() < end:
        x += 1
    return x


def c_loop():
    return sum(range(10**12))  # one long C call: holds the GIL, ignores signals' handlers


def pid():
    return os.getpid()


def env(name):
    return os.environ.get(name)


def make_point(x, y):
    return Point(x, y)


def norm(p):
    return p.norm1()


def unpicklable_result():
    import threading

    return threading.Lock()


def append_line(path, text):
    with open(path, "a") as f:
        f.write(text + "\n")
    return text


def nested_sum(n):
    """Submits a child job and waits for it: nested jobs, deeper than the pool."""
    import cloud

    if n <= 0:
        return 0
    return n + cloud.result(cloud.call(nested_sum, n - 1))


def isprime(n):
    if n < 2:
        return False
    i = 2
    while i * i <= n:
        if n % i == 0:
            return False
        i += 1
    return True


def sum_primes(n):
    return sum(x for x in range(2, n) if isprime(x))


def run_until_killed(path, kind="spin", children=0):
    """Record this process's pid (and any children's) in `path`, then never finish."""
    import signal
    import subprocess

    if kind == "ignore_term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    kids = [subprocess.Popen(["sleep", "1000"]) for _ in range(children)]
    with open(path + ".tmp", "w") as f:
        f.write(" ".join(str(p) for p in [os.getpid(), *(k.pid for k in kids)]))
    os.rename(path + ".tmp", path)
    if kind == "c_loop":
        return c_loop()
    if kind == "sleep":
        time.sleep(1000)
    return spin(1000)


def logged_sleep(path, seconds, tag):
    """Append `start tag` / `end tag` lines to `path` around a sleep (an execution ledger)."""
    with open(path, "a") as f:
        f.write(f"start {tag} {os.getpid()}\n")
    time.sleep(seconds)
    with open(path, "a") as f:
        f.write(f"end {tag}\n")
    return tag


def die_hard():
    """Kill the process running the job (a segfault-like loss, for every attempt)."""
    import signal

    os.kill(os.getpid(), signal.SIGKILL)


def greet(name, punctuation="!"):
    """A function published over REST in the tests."""
    return f"hello {name}{punctuation}"


def tick(path):
    """A cron body: appends one line per firing."""
    with open(path, "a") as f:
        f.write("tick\n")
    return "ticked"


def worker_only_instance():
    """Return an instance of a class whose module exists only in the job's process:
    it pickles by reference, so the client cannot load it."""
    import sys
    import types

    module = types.ModuleType("picloud_worker_only")

    class Thing:
        pass

    Thing.__module__ = module.__name__
    Thing.__qualname__ = "Thing"
    module.Thing = Thing
    sys.modules[module.__name__] = module
    return Thing()


def print_undecodable_name(x):
    """Job 150 prints a file name that is not valid UTF-8, as os.listdir returns it."""
    import os

    if x == 150:
        print("listing:", os.fsdecode(b"caf\xe9.txt"))
        raise OSError(os.fsdecode(b"cannot open caf\xe9.txt"))
    return x


def burn_cpu(seconds):
    """Spin for `seconds` of CPU time."""
    start = time.process_time()
    while time.process_time() - start < seconds:
        pass
    return seconds


def fail_on(x, bad):
    """`x`, or a ValueError when `x` is `bad` (one failing job in a map)."""
    if x == bad:
        raise ValueError(f"{x} is bad")
    return x


def stealing_victim(kind, arg):
    """Sleeps (``"sleep"``), does nothing (``"noop"``), or kills its own process the first
    time it runs (``"die_once"``, remembered in the file `arg`)."""
    import signal

    if kind == "sleep":
        time.sleep(arg)
    elif kind == "die_once" and not os.path.exists(arg):
        open(arg, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
