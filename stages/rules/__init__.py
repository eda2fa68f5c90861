"""Rules: what the pipeline accepts. The params model (`config`: params.yaml parsed and checked
once) and crawl-line parsing (`crawl`: a line of a crawl file -> property ids and booking URLs)."""
