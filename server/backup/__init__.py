"""`csdp backup` and `csdp restore`: a portable snapshot of the log, decisions, catalog events, audit and checkpoints."""
