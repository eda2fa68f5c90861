"""Fixtures shared by the test suite: real PostgreSQL, a real S3-protocol server, a fault
proxy, and throw-away copies of the project."""

from tests.support.pg import database_url, pg_server, pytest_runtest_setup  # noqa: F401
from tests.support.project import project, project_template  # noqa: F401
from tests.support.s3 import aws_env, fault_proxy, s3_bucket, s3_server  # noqa: F401
from tests.support.units import pytest_collection_finish, pytest_ignore_collect  # noqa: F401
from tests.support.webhook import webhook  # noqa: F401
from tests.support.workers import pytest_collection_modifyitems  # noqa: F401
