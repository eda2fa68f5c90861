"""The one reader of dvc.yaml (stages.tools.pipeline): stage kinds, stage names, the graph."""

from __future__ import annotations

import pytest
import yaml

from stages.errors import PipelineError
from stages.tools.pipeline import engine_stages, expand, pipeline_graph, stage_kinds
from tests.support.project import REPO

pytestmark = pytest.mark.unit

ONE_OFF_AND_PER_ENGINE = """
stages:
  report:
    cmd: python report.py
  download:
    foreach: ${engines}
    do:
      cmd: python -m stages.download --engine ${key}
      outs:
        - ${paths.raw}/${key}.txt:
            persist: true
  ingest:
    foreach: ${engines}
    do:
      cmd: python -m stages.ingest --engine ${key}
      deps:
        - ${paths.raw}/${key}.txt
        - stages/ingest.py
"""


def test_the_stage_kinds_are_the_foreach_engines_stages_of_dvc_yaml_in_order():
    assert [kind.name for kind in stage_kinds(REPO)] == ["download", "ingest", "export", "publish"]


def test_an_engine_has_one_stage_per_kind_named_as_dvc_names_it():
    assert engine_stages(REPO, "mews") == [
        "download@mews",
        "ingest@mews",
        "export@mews",
        "publish@mews",
    ]


def test_one_off_stages_are_not_part_of_the_per_engine_grid(tmp_path):
    (tmp_path / "dvc.yaml").write_text(ONE_OFF_AND_PER_ENGINE, encoding="utf-8")
    assert engine_stages(tmp_path, "rms") == ["download@rms", "ingest@rms"]
    assert pipeline_graph(tmp_path) == {
        "stages": ["download", "ingest"],
        "edges": [["download", "ingest"]],
    }


def test_the_graph_links_each_stage_kind_to_the_one_its_outputs_feed():
    assert pipeline_graph(REPO) == {
        "stages": ["download", "ingest", "export", "publish"],
        "edges": [["download", "ingest"], ["ingest", "export"], ["export", "publish"]],
    }


def test_a_missing_or_damaged_dvc_yaml_gives_an_empty_graph(tmp_path):
    assert pipeline_graph(tmp_path) == {"stages": [], "edges": []}
    (tmp_path / "dvc.yaml").write_text("stages: [unclosed\n", encoding="utf-8")
    assert pipeline_graph(tmp_path) == {"stages": [], "edges": []}


def test_a_dvc_yaml_without_per_engine_stages_is_refused_by_name(tmp_path):
    (tmp_path / "dvc.yaml").write_text("stages:\n  report:\n    cmd: true\n", encoding="utf-8")
    with pytest.raises(PipelineError, match=r"dvc.yaml has no stage with `foreach: \$\{engines\}`"):
        engine_stages(tmp_path, "rms")


def test_a_path_is_expanded_with_the_engine_its_entry_and_params_values():
    values = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    assert expand("${paths.raw}/${key}.txt", values, "rms") == "data/raw/rms.txt"
    source = expand("${source.root}/${item.file}", values, "rms")
    assert source == f"{values['source']['root']}/{values['engines']['rms']['file']}"
    with pytest.raises(KeyError, match="paths.nowhere"):
        expand("${paths.nowhere}/${key}.txt", values, "rms")
