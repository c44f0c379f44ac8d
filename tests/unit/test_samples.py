"""Every sample in configmaps/ parses, is selected and renders with the sample inputs (kopf's lesson:
untested examples rot). The real worker applies them in tests/integration/test_samples_apply.py."""

from __future__ import annotations

from pathlib import Path

from reconciler.clients.inputs import load_inputs
from reconciler.clients.sources import load_configmaps
from reconciler.core.planning import unconverged
from reconciler.core.rendering import Renderer
from reconciler.core.selectors import parse_selector
from reconciler.model import ClusterState, DesiredState, LiveConnector
from reconciler.pipeline import render_all
from reconciler.settings import InputSettings

ROOT = Path(__file__).resolve().parents[2]


def render_samples() -> list:  # type: ignore[type-arg]
    inputs, warnings = load_inputs(
        InputSettings(properties_dirs=[str(ROOT / "configmaps/inputs/properties")]),
        environ={"DEMO_DATA_DIR": "/data"},
    )
    assert warnings == []
    # The top-level samples, which `make demo` applies; those in subdirectories need plugins or inputs of
    # their own and have their own tests (camel/: test_camel_sample.py).
    docs, errors = load_configmaps(sorted(str(p) for p in (ROOT / "configmaps").glob("*.yaml")))
    assert errors == []
    desired = render_all(docs, renderer=Renderer(inputs), selector=parse_selector("destination=connect"))
    assert desired.problems == ()
    return list(desired.connectors)


def test_samples_render() -> None:
    by_name = {d.name: d for d in render_samples()}
    assert set(by_name) == {"demo-file-source", "demo-file-sink", "demo-archive-sink", "demo-retired-source"}
    src = by_name["demo-file-source"]
    assert (
        src.config["tasks.max"] == "1"
        and src.config["topic"] == "demo-lines"
        and src.config["file"] == "/data/input.txt"
    )
    assert by_name["demo-archive-sink"].state is DesiredState.STOPPED
    assert by_name["demo-retired-source"].enabled is False


def test_unconverged_compares_connector_and_task_states() -> None:
    desired = render_samples()
    live = {
        "default": ClusterState(
            "default",
            {
                "demo-file-source": LiveConnector("demo-file-source", {}, "RUNNING", ("RUNNING",)),
                "demo-file-sink": LiveConnector("demo-file-sink", {}, "RUNNING", ("FAILED",)),
                "demo-archive-sink": LiveConnector("demo-archive-sink", {}, "STOPPED", ()),
                "demo-retired-source": LiveConnector("demo-retired-source", {}, "RUNNING", ()),
            },
        )
    }
    assert unconverged(desired, live) == ["demo-file-sink", "demo-retired-source"]
