"""Storage: PostgreSQL (`db`, the embedded server in `embedded`, `migrations/`, the COPY of a
load's ids in `staging` and the lead merge in `leads`, load figures and the lost-crawl guard in
`loads`), object storage (`s3`, `storage`), atomic files (`files`), credentials (`secrets`) and
the retry loop of transient faults (`retry`)."""
