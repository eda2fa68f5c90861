"""download@<engine>: local and S3 sources, retries, resume, permanent failures, and DVC's view."""

from __future__ import annotations

import json
import time

import pytest

from stages import download
from tests.support.faultproxy import Fault

ENGINES = ("cloudbeds", "mews", "rms", "siteminder")


def use_s3_source(project, bucket, endpoint_url, prefix="crawls"):
    """Point `source.root` at a DVC remote on the test server and upload the sample files."""
    for spec in project.params["engines"].values():
        bucket.put(
            f"{prefix}/{spec['file']}", (project.root / "data/sources" / spec["file"]).read_bytes()
        )
    project.add_s3_remote("crawls", f"s3://{bucket.name}/{prefix}", endpoint_url)
    project.edit_params(lambda p: p["source"].update(root="remote://crawls"))


def raw(project, engine):
    return (project.root / "data/raw" / f"{engine}.txt").read_bytes()


def meta(project, engine):
    return json.loads((project.root / "data/raw" / f"{engine}.meta.json").read_text())


def test_local_download_copies_the_file_and_records_its_hash(project):
    assert download.main(["--engine", "mews"]) == 0
    source = (project.root / "data/sources/mews.txt").read_bytes()
    assert raw(project, "mews") == source
    recorded = meta(project, "mews")
    assert recorded["source"] == "data/sources/mews.txt"
    assert recorded["bytes"] == len(source)
    assert recorded["attempts"] == 1


def test_s3_and_local_downloads_are_identical(project, s3_bucket):
    assert download.main(["--engine", "rms"]) == 0
    local = raw(project, "rms")
    use_s3_source(project, s3_bucket, s3_bucket.endpoint_url)
    assert download.main(["--engine", "rms"]) == 0
    assert raw(project, "rms") == local
    recorded = meta(project, "rms")
    assert recorded["source"] == f"s3://{s3_bucket.name}/crawls/rms.txt"
    assert recorded["etag"].strip('"') == recorded["md5"]


@pytest.mark.parametrize(
    "fault",
    [Fault.status(503, "SlowDown"), Fault.status(500, "InternalError"), Fault.reset()],
    ids=["503-slowdown", "500", "reset"],
)
def test_transient_failures_within_the_retry_budget_are_survived(
    project, s3_bucket, fault_proxy, fault
):
    use_s3_source(project, s3_bucket, fault_proxy.endpoint_url)
    fault_proxy.plan(fault, fault)  # params: 2 retries
    assert download.main(["--engine", "mews"]) == 0
    assert raw(project, "mews") == (project.root / "data/sources/mews.txt").read_bytes()
    assert meta(project, "mews")["attempts"] == 3


def test_more_failures_than_retries_fail_clearly_and_leave_no_output(
    project, s3_bucket, fault_proxy, capsys
):
    use_s3_source(project, s3_bucket, fault_proxy.endpoint_url)
    fault_proxy.fail_always(Fault.status(503, "SlowDown"))
    assert download.main(["--engine", "mews"]) == 1
    error = capsys.readouterr().err
    assert "download@mews" in error and f"s3://{s3_bucket.name}/crawls/mews.txt" in error
    assert "Gave up after 3 attempt(s)" in error
    assert not (project.root / "data/raw/mews.txt").exists()
    assert not list((project.root / "data/raw").glob(".mews.txt.*"))


def test_a_body_cut_short_is_resumed_with_a_ranged_read(project, s3_bucket, fault_proxy):
    use_s3_source(project, s3_bucket, fault_proxy.endpoint_url)
    big = b"".join(b"hotels.cloudbeds.com/reservation/ab%06d\n" % i for i in range(60_000))
    s3_bucket.put("crawls/cloudbeds_deduped.txt", big)
    fault_proxy.plan(Fault.truncate(500_000, method="GET"))
    assert download.main(["--engine", "cloudbeds"]) == 0
    assert raw(project, "cloudbeds") == big
    gets = [r for r in fault_proxy.requests if r.method == "GET"]
    assert gets[-1].range == "bytes=500000-"
    assert gets[-1].if_match


def test_a_stalled_response_times_out_and_is_retried(project, s3_bucket, fault_proxy):
    use_s3_source(project, s3_bucket, fault_proxy.endpoint_url)
    project.edit_params(lambda p: p["source"].update(timeout=0.5))
    fault_proxy.plan(Fault.stall(2, method="GET"))
    assert download.main(["--engine", "siteminder"]) == 0
    assert raw(project, "siteminder") == (project.root / "data/sources/siteminder.txt").read_bytes()


def test_a_missing_key_fails_at_once_naming_engine_and_key(project, s3_bucket, capsys):
    use_s3_source(project, s3_bucket, s3_bucket.endpoint_url)
    project.edit_params(lambda p: p["source"].update(retry_delay=30))  # a retry would show
    s3_bucket.client.delete_object(Bucket=s3_bucket.name, Key="crawls/mews.txt")
    started = time.monotonic()
    assert download.main(["--engine", "mews"]) == 1
    assert time.monotonic() - started < 20  # no 30 s retry delay was spent
    error = capsys.readouterr().err
    assert f"download@mews: s3://{s3_bucket.name}/crawls/mews.txt" in error
    assert "NoSuchKey" in error
    assert not (project.root / "data/raw/mews.txt").exists()


def test_a_missing_bucket_is_permanent(project, s3_bucket, capsys):
    use_s3_source(project, s3_bucket, s3_bucket.endpoint_url)
    project.add_s3_remote("crawls", "s3://no-such-bucket/crawls", s3_bucket.endpoint_url)
    assert download.main(["--engine", "rms"]) == 1
    error = capsys.readouterr().err
    assert "NoSuchBucket" in error and "s3://no-such-bucket/crawls/rms.txt" in error


def test_a_missing_local_file_names_the_fix(project, capsys):
    (project.root / "data/sources/rms.txt").unlink()
    assert download.main(["--engine", "rms"]) == 1
    error = capsys.readouterr().err
    assert "rms.txt does not exist" in error and "source.root" in error


def test_an_unknown_engine_is_refused(project, capsys):
    assert download.main(["--engine", "nosuch"]) == 1
    assert "Unknown engine 'nosuch'" in capsys.readouterr().err


def test_changing_one_s3_object_makes_only_that_download_stale(project, s3_bucket):
    use_s3_source(project, s3_bucket, s3_bucket.endpoint_url)
    targets = [f"download@{engine}" for engine in ENGINES]
    project.dvc("repro", "--single-item", *targets)
    assert "download@" not in project.dvc("status", *targets).stdout

    s3_bucket.put("crawls/rms.txt", b"rmscloud.com/Search/Index/1234/90\n")
    status = project.dvc("status", *targets).stdout
    assert "download@rms" in status
    assert [e for e in ENGINES if f"download@{e}" in status] == ["rms"]
    rerun = project.dvc("repro", "--single-item", *targets).stdout
    assert project.ran_stages(rerun) == ["download@rms"]
    assert raw(project, "rms") == b"rmscloud.com/Search/Index/1234/90\n"


def test_a_fifth_engine_needs_only_a_params_entry(project):
    targets = [f"download@{engine}" for engine in ENGINES]
    project.dvc("repro", "--single-item", *targets)
    (project.root / "data/sources/ibe.txt").write_text("ibe12.rmscloud.com/4242\n")

    def add_engine(params):
        params["engines"]["newengine"] = {**params["engines"]["rms"], "file": "ibe.txt"}

    project.edit_params(add_engine)
    rerun = project.dvc("repro", "--single-item", *targets, "download@newengine").stdout
    assert project.ran_stages(rerun) == ["download@newengine"]
    assert raw(project, "newengine") == b"ibe12.rmscloud.com/4242\n"
