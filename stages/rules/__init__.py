"""Rules: what the pipeline accepts. The params model (`config`: params.yaml parsed and checked
once, with the validator in `settings` and the id-pattern check in `patterns`) and crawl-line
parsing (`crawl`: a line of a crawl file -> property ids and booking URLs)."""
