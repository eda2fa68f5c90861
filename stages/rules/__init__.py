"""Rules: what the pipeline accepts. The params model (`config`: params.yaml parsed and checked
once, with the validator in `settings` and the id-pattern check in `patterns`) and crawl-line
parsing (`crawl`: a line of a crawl file -> property ids and booking URLs, with `crawl_files`
reading files whatever they arrived as, `crawl_text` the debris, escapes and fields around
URLs, `crawl_bare` lines without a URL and ids that need more than one look, `crawl_outcome`
the outcome codes and rules fingerprint, `crawl_evidence` the stored and printable forms of a
line; `crawl` re-exports their public names)."""
