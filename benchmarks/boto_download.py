"""The download baseline: boto3's managed transfer (`download_file`) of one S3 object.

    python -m benchmarks.boto_download BUCKET KEY DEST

The endpoint and credentials come from the environment (AWS_ENDPOINT_URL, AWS_* keys); the
transfer settings are boto3's defaults (8 MB parts, 10 threads).
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    bucket, key, dest = argv
    import boto3
    from botocore.config import Config

    client = boto3.client("s3", config=Config(s3={"addressing_style": "path"}))
    client.download_file(bucket, key, dest)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
