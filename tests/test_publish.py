"""publish@<engine>: where a workbook was published is part of what publish did, so a new
target (`publish.to`, or the url of the DVC remote it names) re-runs publish under `dvc repro`."""

from __future__ import annotations

import json

WORKBOOK = b"PK\x03\x04 a workbook's bytes, as export@mews left them " * 200


def a_workbook(project, engine: str) -> bytes:
    """What export@engine leaves for publish: publish uploads the bytes, whatever they are."""
    path = project.root / "data/exports" / f"{engine}.xlsx"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(WORKBOOK)
    return WORKBOOK


def published_record(project, engine: str) -> dict:
    return json.loads((project.root / "data/published" / f"{engine}.json").read_text())


def test_a_new_url_for_the_publish_remote_uploads_the_workbook_there(project, s3_bucket):
    workbook = a_workbook(project, "mews")
    project.add_s3_remote("leads", f"s3://{s3_bucket.name}/leads/week-48", s3_bucket.endpoint_url)
    project.edit_params(lambda p: p["publish"].update(to="remote://leads"))
    project.dvc("repro", "--single-item", "publish@mews")
    assert s3_bucket.get("leads/week-48/mews_leads.xlsx") == workbook

    project.add_s3_remote("leads", f"s3://{s3_bucket.name}/leads/week-49", s3_bucket.endpoint_url)
    assert "publish@mews" in project.dvc("status", "publish@mews").stdout
    rerun = project.dvc("repro", "--single-item", "publish@mews")
    assert project.ran_stages(rerun.stdout) == ["publish@mews"]
    assert s3_bucket.get("leads/week-49/mews_leads.xlsx") == workbook
    assert published_record(project, "mews")["uri"] == s3_bucket.url(
        "leads/week-49/mews_leads.xlsx"
    )


def test_a_new_publish_to_uploads_the_workbook_there(project, s3_bucket, monkeypatch):
    workbook = a_workbook(project, "rms")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_bucket.endpoint_url)
    project.edit_params(lambda p: p["publish"].update(to=f"s3://{s3_bucket.name}/a/"))
    project.dvc("repro", "--single-item", "publish@rms")
    project.edit_params(lambda p: p["publish"].update(to=f"s3://{s3_bucket.name}/b/"))
    rerun = project.dvc("repro", "--single-item", "publish@rms")
    assert project.ran_stages(rerun.stdout) == ["publish@rms"]
    assert s3_bucket.get("a/rms_leads.xlsx") == s3_bucket.get("b/rms_leads.xlsx") == workbook
