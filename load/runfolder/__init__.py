"""What a run folder holds and how it is named: the event log, run ids, the manifest."""
