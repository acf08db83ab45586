"""The configuration: dataclasses validated in one place (settings), and the table of the suite's options (options), from which Locust's options are made. Imports nothing of the suite."""
