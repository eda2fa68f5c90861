"""download@<engine>: local and S3 sources, retries, resume, permanent failures, and DVC's view:
what DVC records is what was fetched, a failed download keeps the last good files, and a
download that fetched the same bytes leaves ingest up to date."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from stages import download
from tests.support.faultproxy import Fault, ProxiedRequest
from tests.support.s3 import FAKE_ACCESS_KEY_ID, FAKE_SECRET_ACCESS_KEY, use_s3_source

ENGINES = ("cloudbeds", "mews", "rms", "siteminder")


def run_facts(project, engine):
    """The download run's volatile facts: attempts, seconds, when, how it verified the bytes."""
    return json.loads((project.root / "data/raw" / f"{engine}.download.json").read_text())


def locked(project, stage):
    """The stage's entry in dvc.lock."""
    return yaml.safe_load((project.root / "dvc.lock").read_text())["stages"][stage]


def crawl_lines(first_id: int, count: int) -> bytes:
    """RMS crawl lines with numeric property ids, every line the same length."""
    line = b"https://bookings.rmscloud.com/Search/Index/%d/90/\n"
    return b"".join(line % (first_id + i) for i in range(count))


def test_local_download_copies_the_file_and_records_its_hash(project):
    assert download.main(["--engine", "mews"]) == 0
    source = (project.root / "data/sources/mews.txt").read_bytes()
    assert project.raw("mews") == source
    recorded = project.source_meta("mews")
    assert recorded["source"] == "data/sources/mews.txt"
    assert recorded["bytes"] == len(source)
    assert run_facts(project, "mews")["attempts"] == 1


def test_the_identity_file_holds_only_facts_that_change_the_ingest(project):
    assert download.main(["--engine", "mews"]) == 0
    first = (project.root / "data/raw/mews.meta.json").read_bytes()
    assert set(json.loads(first)) == {"source", "bytes", "md5", "etag", "source_modified"}
    assert {"downloaded_at", "seconds", "attempts"} <= set(run_facts(project, "mews"))
    assert download.main(["--engine", "mews"]) == 0
    assert (project.root / "data/raw/mews.meta.json").read_bytes() == first


def test_s3_and_local_downloads_are_identical(project, s3_bucket):
    assert download.main(["--engine", "rms"]) == 0
    local = project.raw("rms")
    use_s3_source(project, s3_bucket, s3_bucket.endpoint_url)
    assert download.main(["--engine", "rms"]) == 0
    assert project.raw("rms") == local
    recorded = project.source_meta("rms")
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
    assert project.raw("mews") == (project.root / "data/sources/mews.txt").read_bytes()
    assert run_facts(project, "mews")["attempts"] == 3


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
    assert project.raw("cloudbeds") == big
    gets = [r for r in fault_proxy.requests if r.method == "GET"]
    assert gets[-1].range == "bytes=500000-"
    assert gets[-1].if_match


def test_a_stalled_response_times_out_and_is_retried(project, s3_bucket, fault_proxy):
    use_s3_source(project, s3_bucket, fault_proxy.endpoint_url)
    project.edit_params(lambda p: p["source"].update(timeout=0.5))
    fault_proxy.plan(Fault.stall(2, method="GET"))
    assert download.main(["--engine", "siteminder"]) == 0
    assert project.raw("siteminder") == (project.root / "data/sources/siteminder.txt").read_bytes()


def test_a_missing_key_fails_at_once_naming_engine_and_key(project, s3_bucket, capsys):
    use_s3_source(project, s3_bucket, s3_bucket.endpoint_url)
    project.edit_params(lambda p: p["source"].update(retry_delay=30))  # a retry would show
    s3_bucket.client.delete_object(Bucket=s3_bucket.name, Key="crawls/mews.txt")
    started = time.monotonic()
    assert download.main(["--engine", "mews"]) == 1
    assert time.monotonic() - started < 20  # no 30 s retry delay was spent
    error = capsys.readouterr().err
    assert f"download@mews failed: s3://{s3_bucket.name}/crawls/mews.txt" in error
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
    assert project.raw("rms") == b"rmscloud.com/Search/Index/1234/90\n"


def test_a_fifth_engine_needs_only_a_params_entry(project):
    targets = [f"download@{engine}" for engine in ENGINES]
    project.dvc("repro", "--single-item", *targets)
    (project.root / "data/sources/ibe.txt").write_text("ibe12.rmscloud.com/4242\n")

    def add_engine(params):
        params["engines"]["newengine"] = {**params["engines"]["rms"], "file": "ibe.txt"}

    project.edit_params(add_engine)
    rerun = project.dvc("repro", "--single-item", *targets, "download@newengine").stdout
    assert project.ran_stages(rerun) == ["download@newengine"]
    assert project.raw("newengine") == b"ibe12.rmscloud.com/4242\n"


# --- what was fetched is what DVC recorded ------------------------------------------------------


def test_an_object_replaced_during_the_download_is_fetched_again_and_dvc_records_that_version(
    project, s3_bucket, fault_proxy
):
    use_s3_source(project, s3_bucket, fault_proxy.endpoint_url)
    old, new = crawl_lines(10**9, 20_000), crawl_lines(2 * 10**9, 20_000)
    s3_bucket.put("crawls/rms.txt", old)
    gets: list[ProxiedRequest] = []

    def replace_once_the_stage_has_read_it(request: ProxiedRequest) -> None:
        # The first HEAD after the first GET: the stage's own check of the object, or (on a
        # stage without one) DVC hashing the dependency once the command ended.
        if request.path != s3_bucket.path("crawls/rms.txt"):
            return
        if request.method == "GET":
            gets.append(request)
        elif request.method == "HEAD" and len(gets) == 1 and s3_bucket.get("crawls/rms.txt") == old:
            s3_bucket.put("crawls/rms.txt", new)

    fault_proxy.on_request(replace_once_the_stage_has_read_it)
    project.dvc("repro", "--single-item", "download@rms")
    new_etag = s3_bucket.head("crawls/rms.txt")["ETag"]
    assert project.raw("rms") == new
    assert locked(project, "download@rms")["deps"][0]["etag"] == new_etag.strip('"')
    assert project.source_meta("rms")["etag"] == new_etag
    assert run_facts(project, "rms")["attempts"] == 2
    assert "download@rms" not in project.dvc("status", "download@rms").stdout


def stage_env() -> dict[str, str]:
    """This process's environment with the venv first on PATH, as DVC runs a stage."""
    env = dict(os.environ)
    env["PATH"] = f"{os.path.dirname(sys.executable)}{os.pathsep}{env.get('PATH', '')}"
    env.pop("CRAWL_PIPELINE_ROOT", None)
    return env


def rewrite_in_place_mid_copy(project, source, new: bytes) -> bool:
    """Run download@mews, freeze it (SIGSTOP) once part of the copy is written, rewrite the
    source in place, let it go on. False when the copy finished before it could be frozen."""
    raw_folder = project.root / "data/raw"
    process = subprocess.Popen(
        [sys.executable, "-m", "stages.download", "--engine", "mews"],
        cwd=project.root,
        env=stage_env(),
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while process.poll() is None and time.monotonic() < deadline:
            partial = [p for p in raw_folder.glob(".mews.txt.*.tmp") if p.stat().st_size]
            if partial:
                os.kill(process.pid, signal.SIGSTOP)
                if partial[0].stat().st_size >= len(new):
                    return False
                with source.open("r+b") as handle:
                    handle.write(new)
                return True
            time.sleep(0.0005)
        return False
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGCONT)
        assert process.wait(timeout=120) == 0


def test_a_local_crawl_file_rewritten_during_the_copy_is_copied_again(project):
    source = project.root / "data/sources/mews.txt"
    old, new = crawl_lines(10**9, 800_000), crawl_lines(3 * 10**9, 800_000)  # 46 MB each
    for _ in range(3):  # a copy that ends before it is frozen proves nothing: try again
        source.write_bytes(old)
        if rewrite_in_place_mid_copy(project, source, new):
            break
    else:
        pytest.fail("the copy always finished before it could be frozen")
    assert project.raw("mews") == new
    assert project.source_meta("mews")["bytes"] == len(new)
    assert run_facts(project, "mews")["attempts"] == 2


def test_a_resumed_read_answered_with_the_whole_object_starts_again_from_byte_0(
    project, s3_bucket, fault_proxy
):
    use_s3_source(project, s3_bucket, fault_proxy.endpoint_url)
    body = crawl_lines(10**9, 130_000)  # 7.5 MB: two parts, as `aws s3 cp` uploads it
    assert s3_bucket.put_multipart("crawls/rms.txt", body).endswith('-2"')
    fault_proxy.plan(
        Fault.truncate(3_000_000, method="GET"),
        Fault.strip("range", "if-match", method="GET"),  # a store that ignores both: 200
    )
    assert download.main(["--engine", "rms"]) == 0
    assert project.raw("rms") == body
    gets = [r for r in fault_proxy.requests if r.method == "GET"]
    assert [g.range for g in gets] == [None, "bytes=3000000-"]
    assert run_facts(project, "rms")["verified"] == "multipart-etag"


def test_a_resumed_read_on_a_versioned_bucket_asks_for_the_version_it_started_with(
    project, s3_bucket, fault_proxy
):
    s3_bucket.client.put_bucket_versioning(
        Bucket=s3_bucket.name, VersioningConfiguration={"Status": "Enabled"}
    )
    use_s3_source(project, s3_bucket, fault_proxy.endpoint_url)
    body = crawl_lines(10**9, 20_000)
    s3_bucket.put("crawls/rms.txt", body)
    version = s3_bucket.head("crawls/rms.txt")["VersionId"]
    fault_proxy.plan(Fault.truncate(300_000, method="GET"))
    assert download.main(["--engine", "rms"]) == 0
    assert project.raw("rms") == body
    resumed = [r for r in fault_proxy.requests if r.method == "GET"][-1]
    assert resumed.range == "bytes=300000-" and f"versionId={version}" in resumed.query
    assert project.source_meta("rms")["version_id"] == version


def test_credentials_kept_with_the_dvc_remote_in_config_local_reach_the_download(
    project, s3_bucket, monkeypatch
):
    use_s3_source(project, s3_bucket, s3_bucket.endpoint_url)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    for option, value in (
        ("access_key_id", FAKE_ACCESS_KEY_ID),
        ("secret_access_key", FAKE_SECRET_ACCESS_KEY),
    ):
        project.dvc("remote", "modify", "--local", "crawls", option, value)
    project.dvc("repro", "--single-item", "download@mews")
    assert project.raw("mews") == (project.root / "data/sources/mews.txt").read_bytes()
    for written in ("data/raw/mews.meta.json", "data/raw/mews.download.json", "dvc.lock"):
        assert FAKE_SECRET_ACCESS_KEY not in (project.root / written).read_text()
    assert FAKE_SECRET_ACCESS_KEY not in (project.root / "logs/download/mews.log").read_text()


def test_a_download_that_fails_under_dvc_repro_keeps_the_last_good_files(
    project, s3_bucket, fault_proxy
):
    use_s3_source(project, s3_bucket, fault_proxy.endpoint_url)
    project.dvc("repro", "--single-item", "download@mews")
    files = [project.root / "data/raw" / name for name in ("mews.txt", "mews.meta.json")]
    good = [path.read_bytes() for path in files]
    new = b"https://app.mews.com/distributor/0b1e4c52-7a8d-4f6e-9c3b-2d5f8a9e1c47\n"
    s3_bucket.put("crawls/mews.txt", new)
    fault_proxy.fail_always(Fault.status(503, "SlowDown", method="GET"))
    failed = project.dvc("repro", "--single-item", "download@mews", check=False)
    assert failed.returncode != 0
    assert "Gave up after 3 attempt(s)" in failed.stdout + failed.stderr
    assert [path.read_bytes() for path in files] == good
    assert "download@mews" in project.dvc("status", "download@mews").stdout  # still stale
    fault_proxy.clear()
    project.dvc("repro", "--single-item", "download@mews")
    assert project.raw("mews") == new


def test_going_back_to_an_earlier_crawl_file_downloads_it_again(project):
    source = project.root / "data/sources/rms.txt"
    first, second = source.read_bytes(), crawl_lines(10**9, 50)
    project.dvc("repro", "--single-item", "download@rms")
    source.write_bytes(second)
    project.dvc("repro", "--single-item", "download@rms")
    source.write_bytes(first)
    again = project.dvc("repro", "--single-item", "download@rms")
    assert project.ran_stages(again.stdout) == ["download@rms"]
    assert project.raw("rms") == first
    assert project.source_meta("rms")["bytes"] == len(first)


def test_a_comment_in_storage_py_reruns_download_only_and_leaves_ingest_up_to_date(
    project, database_url
):
    chain = [f"{stage}@mews" for stage in ("download", "ingest", "export", "publish")]
    first = project.dvc("repro", "publish@mews")
    assert project.ran_stages(first.stdout) == chain
    with (project.root / "stages/store/storage.py").open("a") as module:
        module.write("# A comment changes no download.\n")
    again = project.dvc("repro", "publish@mews")
    assert project.ran_stages(again.stdout) == ["download@mews"]
    assert project.dvc("status", *chain).stdout.strip() == "Data and pipelines are up to date."


# --- DVC's own messages lead to the fix -------------------------------------------------------


def test_status_leads_from_dvcs_forbidden_message_to_the_credentials_fix(
    project, s3_bucket, fault_proxy
):
    use_s3_source(project, s3_bucket, fault_proxy.endpoint_url)
    fault_proxy.fail_always(Fault.status(403, "Forbidden", method="HEAD"))  # bad credentials
    failed = project.dvc("repro", "--single-item", "download@mews", check=False)
    dvc_says = failed.stdout + failed.stderr
    assert "Forbidden" in dvc_says and "HeadObject" in dvc_says
    status = project.stage("observe.status")
    assert "dvc remote modify --local crawls access_key_id" in status.stdout
