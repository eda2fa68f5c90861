"""Storage: PostgreSQL (`db`, the embedded server in `embedded`, `migrations/`, the lead merge in
`leads`, load figures in `loads`), object storage (`s3`, `storage`), atomic files (`files`),
credentials (`secrets`) and the retry loop of transient faults (`retry`)."""
