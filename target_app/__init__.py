"""A Django + Channels project served by Daphne, built to fail the way production does.

Every knob comes from the environment (see settings.py); the knobs of one ping (sleep,
work, payload) travel in the ping itself, so one server serves every scenario.
"""
