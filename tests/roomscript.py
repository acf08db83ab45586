"""The script of tests/roomusers.py and the figures it implies, importable without Locust
(importing Locust monkey-patches the test process)."""

ROOM = "/ws/room/acct/"
SLOW = "/ws/room/acct/?sleep_ms=1000"
MEMBERS = 5
WAVE_1 = tuple(i * 0.1 for i in range(10))  # [0, 1): everyone is in the room
LEAVE_AT = 2.0
WAVE_2 = tuple(2.5 + i * 0.1 for i in range(5))  # [2.5, 3): the leaver has gone


# What each endpoint's members are owed: wave 1 goes to all five (30 from the stayers, 3
# from the leaver, 1 from the slow member, each to the four others); wave 2 (15 pings from
# the stayers) to the two other stayers and the slow member, not to the leaver.
SENT = 3 * len(WAVE_1 + WAVE_2) + 3 + 1
OWED_SLOW = 3 * len(WAVE_1) + 3 + 3 * len(WAVE_2)
OWED_ROOM = 3 * (2 * len(WAVE_1) + 3 + 1) + (3 * len(WAVE_1) + 1) + 3 * 2 * len(WAVE_2)
