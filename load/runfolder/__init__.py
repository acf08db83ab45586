"""What a run folder holds and how it is named: every name in it (names), writing it
(files, eventlog, runids, manifest), reading it back (loader) and the figures derived from
it (derive). Imports nothing of the suite, so every other package may import it."""
