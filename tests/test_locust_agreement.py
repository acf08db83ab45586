"""Locust's own figures agree with ours, and our own stop is never counted as a failure."""

from locustrun import read_csv, read_json, run_folder

FAST = "/ws/ping/?sleep_ms=200"  # answered, about 200 ms after the due time
STALLED = "/ws/ping/?sleep_ms=30000"  # never answered within --pong-timeout 1: every ping fails


def locust_rows(folder) -> dict[str, dict]:
    return {row["Name"]: row for row in read_csv(folder / "locust_stats.csv")}


def assert_locust_counts_agree(folder) -> tuple[dict, dict]:
    """Every endpoint's ping and connect rows in locust_stats.csv count what summary.json counts."""
    ours = read_json(folder / "summary.json")["endpoints"]
    theirs = locust_rows(folder)
    for path, mine in ours.items():
        # A ping reaches Locust when it ends as a pong or an error; one in flight at the end never does.
        assert mine["pings"] == mine["pongs"] + mine["errors"] + mine["in_flight"]
        ping = theirs.get(f"ping {path}", {"Request Count": "0", "Failure Count": "0"})
        assert (int(ping["Request Count"]), int(ping["Failure Count"])) == (
            mine["pongs"] + mine["errors"],
            mine["errors"],
        ), path
        connect = theirs[f"connect {path}"]
        assert (int(connect["Request Count"]), int(connect["Failure Count"])) == (
            mine["connects"],
            mine["connects"] - mine["connect_ok"],
        ), path
    return ours, theirs


def test_locust_ping_rows_hold_pongs_only_and_count_every_failure(start_stack, locust, tmp_path):
    stack = start_stack(daphne_count=1)
    run = locust(
        "--headless",
        "--host",
        stack.instances[0].ws_url(""),
        "--results-dir",
        str(tmp_path / "results"),
        "-u",
        "4",
        "-r",
        "4",
        "-t",
        "5s",
        "--paths",
        f"{FAST},{STALLED}",
        "--ping-rate",
        "4",
        "--pong-timeout",
        "1",
    )
    assert run.wait(60) == 1, run.output()[-3000:]  # Locust's own exit code: its failures are still failures

    folder = run_folder(tmp_path / "results")
    ours, theirs = assert_locust_counts_agree(folder)
    stalled, stalled_row = ours[STALLED], theirs[f"ping {STALLED}"]
    assert stalled["pongs"] == 0 and stalled["errors"] >= 4 and stalled["max_ms"] is None
    # No pong, no latency: Locust's "no sample" zeros, not the time it took to give up (~1000 ms).
    assert float(stalled_row["Max Response Time"]) == 0 and float(stalled_row["Median Response Time"]) == 0
    # Locust's failure table still lists them, by kind.
    failed = {
        row["Error"]: int(row["Occurrences"])
        for row in read_csv(folder / "locust_failures.csv")
        if row["Name"] == f"ping {STALLED}"
    }
    assert (
        failed == {"WsFailure('pong_timeout')": stalled["pong_timeout"]}
        and stalled["pong_timeout"] == stalled["errors"]
    )

    fast, fast_row = ours[FAST], theirs[f"ping {FAST}"]
    assert fast["pongs"] >= 8 and fast["errors"] == 0
    assert float(fast_row["Max Response Time"]) <= fast["max_ms"] + 1
    median = float(
        fast_row["Median Response Time"]
    )  # Locust rounds to two significant digits, within min..max
    assert 0.9 * fast["p50_ms"] <= median <= fast["max_ms"] + 1, (fast_row, fast)
    # The aggregated row mixes in connects (a few ms) but no failure's time.
    assert float(theirs["Aggregated"]["Max Response Time"]) <= fast["max_ms"] + 1


def test_locust_connect_rows_hold_handshakes_only(locust, tmp_path):
    """A refused handshake is a failure in Locust's connect row, not a connect time."""
    rejected = "/anything/ws/ping/"  # not routed: Daphne answers the upgrade with an HTTP error
    # --stack local: a --host would be preflighted, and the rejected path refused before the run
    run = locust(
        "--headless",
        "--stack",
        "local",
        "--stack-daphne",
        "1",
        "--results-dir",
        str(tmp_path / "results"),
        "-u",
        "2",
        "-r",
        "2",
        "-t",
        "3s",
        "--protocol",
        "template",
        "--ping-template",
        '{"type": "ping", "seq": {seq}}',
        "--paths",
        f"/ws/ping/,{rejected}",
        "--ping-rate",
        "4",
        "--reconnect-min",
        "0.2",
        "--reconnect-max",
        "0.4",
    )
    assert run.wait(60) == 1, run.output()[-3000:]

    ours, theirs = assert_locust_counts_agree(run_folder(tmp_path / "results"))
    assert ours[rejected]["handshake_rejected"] >= 3 and ours[rejected]["connect_ok"] == 0
    refused = theirs[f"connect {rejected}"]
    assert float(refused["Max Response Time"]) == 0 and float(refused["Average Response Time"]) == 0
    accepted = theirs["connect /ws/ping/"]
    assert int(accepted["Failure Count"]) == 0 and float(accepted["Max Response Time"]) > 0


def test_a_clean_run_ends_without_errors_from_its_own_stop(start_stack, locust, tmp_path):
    """Many idle-ish sockets, stopped at -t: pings that come due while Locust stops its users
    are not due, and pings cut off by our own close are in flight, not failures."""
    stack = start_stack(daphne_count=1)
    run = locust(
        "--headless",
        "--host",
        stack.instances[0].ws_url(""),
        "--results-dir",
        str(tmp_path / "results"),
        "-u",
        "200",
        "-r",
        "200",
        "-t",
        "4s",
        "--paths",
        "/ws/ping/",
        "--ping-rate",
        "1",
        "--pong-timeout",
        "2",
    )
    code = run.wait(60)

    folder = run_folder(tmp_path / "results")
    summary = read_json(folder / "summary.json")["all"]
    failures = int(locust_rows(folder)["Aggregated"]["Failure Count"])
    assert (summary["errors"], failures, code) == (0, 0, 0), (summary, run.output()[-3000:])
    assert summary["pongs"] > 0
    assert summary["pings"] == summary["pongs"] + summary["errors"] + summary["in_flight"]


def test_a_graceful_stop_sends_nothing_new_and_waits_for_the_pongs_it_owes(start_stack, locust, tmp_path):
    """--stop-timeout keeps the users 3 s after -t: no ping comes due in that time, and the
    pings sent before it (each answered after 300 ms) get their pongs instead of being cut off."""
    stack = start_stack(daphne_count=1)
    users, rate, run_time = 50, 1, 3
    run = locust(
        "--headless",
        "--host",
        stack.instances[0].ws_url(""),
        "--results-dir",
        str(tmp_path / "results"),
        "-u",
        str(users),
        "-r",
        str(users),
        "-t",
        f"{run_time}s",
        "--stop-timeout",
        "3",
        "--paths",
        "/ws/ping/?sleep_ms=300",
        "--ping-rate",
        str(rate),
        "--pong-timeout",
        "2",
    )
    assert run.wait(60) == 0, run.output()[-3000:]

    summary = read_json(run_folder(tmp_path / "results") / "summary.json")["all"]
    assert summary["errors"] == 0 and summary["in_flight"] == 0 and summary["pongs"] == summary["pings"] > 0
    # Pinging on through the 3 s of the stop would make it about users * rate * 6.
    assert summary["pings"] <= users * rate * (run_time + 1), summary["pings"]
