"""An environment (``_env``): a named list of requirements that jobs run with.

PiCloud's environments were machine images users set up by hand; here an environment
is what Ray's ``runtime_env={"pip": [...]}`` and Modal's ``Image.pip_install`` are: pip
requirements, built by each worker on first use into a virtual environment cached by the
spec's digest. The digest covers the requirements and the workers' runtime (Python and
cloudpickle versions), so equal specs share one build and a new runtime builds anew.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

from packaging.requirements import InvalidRequirement, Requirement

from picloud_compat.signing import RUNTIME

MAX_REQUIREMENTS = 200
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
PROTECTED = frozenset({"cloudpickle", "msgpack", "picloud-compat"})
"""What the job process itself runs on: a job's environment may not replace them (its
pickles must load exactly as the client made them)."""


@dataclass(frozen=True)
class EnvSpec:
    """A tenant's environment as stored."""

    name: str
    requirements: tuple[str, ...]
    description: str = ""
    created: float = 0.0

    def digest(self) -> str:
        """What a built environment is cached under (same spec, same build)."""
        doc = json.dumps({"requirements": sorted(self.requirements), "runtime": RUNTIME})
        return hashlib.sha256(doc.encode()).hexdigest()[:24]

    def as_record(self) -> dict[str, str]:
        """The record's fields (strings, as every record's are)."""
        return {
            "requirements": json.dumps(list(self.requirements)),
            "description": self.description,
            "created": repr(self.created),
        }

    @classmethod
    def from_record(cls, name: str, record: dict[str, str]) -> EnvSpec:
        """The spec saved under `name`."""
        return cls(
            name,
            tuple(json.loads(record.get("requirements") or "[]")),
            record.get("description", ""),
            float(record.get("created") or 0.0),
        )


def checked_name(name: object) -> str:
    """An environment name: letters, digits, ``._-``, at most 64 characters."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"environment name {name!r} must be 1-64 letters, digits, '.', '_' or '-'")
    return name


def checked_requirements(lines: Iterable[object]) -> tuple[str, ...]:
    """Requirement lines (PEP 508, as in a requirements.txt without pip options); a bad
    one is refused naming it, before anything is saved or built."""
    out: list[str] = []
    for raw in lines:
        if not isinstance(raw, str):
            raise TypeError(f"a requirement must be a string, got {raw!r}")
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("-"):
            raise ValueError(f"requirement {line!r}: pip options are not accepted here")
        if "${" in line:  # installers expand environment variables in requirement files
            raise ValueError(f"requirement {line!r}: variables are not accepted here")
        try:
            req = Requirement(line)
        except InvalidRequirement as exc:
            raise ValueError(f"requirement {line!r} is not valid: {exc}") from None
        if req.url:
            raise ValueError(f"requirement {line!r}: only packages from the index are accepted")
        if _canonical(req.name) in PROTECTED:
            raise ValueError(
                f"requirement {line!r}: {req.name} is what the job process runs on and must "
                "stay the workers' own version"
            )
        out.append(str(req))
    if not out:
        raise ValueError("an environment needs at least one requirement")
    if len(out) > MAX_REQUIREMENTS:
        raise ValueError(f"an environment takes at most {MAX_REQUIREMENTS} requirements")
    return tuple(out)


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()
