"""In a real Jupyter kernel, a cell ending in a jid or a jid list shows a card (text/html
with the status) beside the unchanged text/plain form. The jobs run on the simulator,
which is what a notebook uses by default."""

from __future__ import annotations

import os
from pathlib import Path

import nbclient
import nbformat
import pytest

pytestmark = pytest.mark.timeout(180)

CELLS = [
    """
import cloud
cloud.config.progress = "off"
def square(x):
    if x == 3:
        raise ValueError("three")
    return x * x
jid = cloud.call(square, 7, _label="nb")
cloud.join(jid)
jid
""",
    """
jids = cloud.map(square, range(5))
cloud.join(jids, ignore_errors=True)
jids
""",
    "print(jid, jids)",
]


def test_a_cell_ending_in_a_jid_or_a_list_shows_a_card(tmp_path: Path) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in CELLS]
    os.environ.setdefault("PICLOUD_CONFIG_DIR", str(tmp_path / "cfg"))
    nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3").execute()
    one, many, printed = ([o for o in cell.outputs] for cell in notebook.cells)

    [card] = [o for o in one if o["output_type"] == "execute_result"]
    assert card["data"]["text/plain"] == "1"
    html = card["data"]["text/html"]
    assert "job 1" in html and ">done</span>" in html and "<code>square</code>" in html
    assert "[nb]" in html and "<code>49</code>" in html

    [card] = [o for o in many if o["output_type"] == "execute_result"]
    assert card["data"]["text/plain"] == "[2, 3, 4, 5, 6]"
    html = card["data"]["text/html"]
    assert (
        "5 jobs" in html and "</span> done 4</span>" in html and "</span> failed 1</span>" in html
    )

    assert [o["text"] for o in printed] == ["1 [2, 3, 4, 5, 6]\n"]
