"""Every name a run folder holds, defined once: its files, the CSV columns, the event names,
the summary.json keys and the labels of Daphne's failure signatures.

Writers (the collector, the probes, the recorder, the controller, the stack) and readers
(the report, compare, thresholds, the summary table) import these instead of retyping
them, so a column renamed here is renamed in every file a run writes and every reader.
Imports nothing of the suite: everything else may import it.
"""

# -- files ---------------------------------------------------------------------------

TIMESERIES_CSV = "timeseries.csv"  # one row a second, all endpoints together
ENDPOINTS_CSV = "endpoints.csv"  # one row a second and endpoint
GROUPS_CSV = "groups.csv"  # one row a second and channel-layer group
EVENTS_JSONL = "events.jsonl"  # one JSON object a line
MANIFEST_JSON = "manifest.json"  # what ran, written at the start (and at the end with ended_at)
SUMMARY_JSON = "summary.json"  # written when the run finished; a killed run has none
SERVER_DIR = "server"  # Daphne's logs, one file per instance and generation
# A process that ignored SIGTERM: its threads' stacks before the SIGKILL (server/<log name>.threads.txt)
THREAD_DUMP_SUFFIX = ".threads.txt"
EXCEPTIONS_CSV = "exceptions.csv"  # Daphne's "Exception inside application" lines, by second and message
REPORT_HTML = "report.html"
# The output of the process that wrote report.html at the run's end: the table and findings, or why it failed
REPORT_LOG = "report.log"
PLOTS_DIR = "plots"
LOCUST_PREFIX = "locust"  # Locust's own CSVs: locust_stats.csv, locust_stats_history.csv, ...
LOCUST_REPORT_HTML = "locust_report.html"  # Locust's own HTML report
LOCUST_LOG = "locust.log"  # the output of a Locust that `python -m load` started
LOCUST_WORKER_LOG = "locust-worker-{}.log"  # --workers N: worker n's output (n from 1)
# A worker's DEBUG line in its log: its pings sent per second as shipped to the master (JSON)
SHIPPED_TO_MASTER = "pings sent per second, shipped to the master:"
COMPARISON_CSV = "comparison.csv"  # a sweep's folder: one row per run
COMPARISON_HTML = "comparison.html"
FINDINGS_TXT = "findings.txt"  # a sweep's findings, one sentence a line
# A stack's own folder (`stack up`, and --stack local in the web UI, whose swarms
# each get a run folder): stack-<UTC time>/server/ and its events.jsonl. Not a run.
STACK_FOLDER_PREFIX = "stack"
# What the web UI's Download Data tab offers of the current swarm's run folder.
SWARM_DOWNLOADS = (TIMESERIES_CSV, ENDPOINTS_CSV, EVENTS_JSONL, SUMMARY_JSON, REPORT_HTML)
# In server/: what the stack, the hooks and a log command wrote.
REDIS_LOG = "redis.log"
MIGRATE_LOG = "migrate.log"
REMOTE_LOG = "remote.log"  # --server-log-cmd's output
DAPHNE_LOGS = "daphne-*.gen*.log"  # every instance and generation


def daphne_instance(index: int) -> str:
    """The name of Daphne instance `index`: in its log's name, events and TARGET_INSTANCE."""
    return f"daphne-{index}"


def daphne_log(instance: str, generation: int) -> str:
    """One instance's log for one generation (a restart starts the next)."""
    return f"{instance}.gen{generation}.log"


def agent_name(number: int) -> str:
    """The short name of the number-th --agent-url (from 0): in events and, with several, server/<name>/."""
    return f"agent{number}"


def hook_log(n: int) -> str:
    """The output of the n-th restart hook of a run."""
    return f"hook-{n:03d}.log"


def plot_png(name: str) -> str:
    return f"{name}.png"


# -- how a ping or a connect ended: one count column each ----------------------------

IN_FLIGHT = "in_flight"  # still unanswered when the user stopped: not an error, not a pong
PONG_TIMEOUT = "pong_timeout"
BAD_PONG = "bad_pong"
SEND_FAILED = "send_failed"
NOT_SENT_DISCONNECTED = "not_sent_disconnected"
CLOSED_BY_SERVER = "closed_by_server"
PING_ERRORS = (PONG_TIMEOUT, BAD_PONG, SEND_FAILED, NOT_SENT_DISCONNECTED, CLOSED_BY_SERVER)

CONNECT_REFUSED = "connect_refused"
CONNECT_TIMEOUT = "connect_timeout"
HANDSHAKE_REJECTED = "handshake_rejected"
CONNECT_ERRORS = (CONNECT_REFUSED, CONNECT_TIMEOUT, HANDSHAKE_REJECTED)

# Close codes worth a column of their own; anything else is counted as "close_other".
CLOSE_CODES = (1000, 1001, 1006, 1011, 1012)
CLOSE_OTHER = "close_other"
CLOSE_COLUMNS = (*(f"close_{code}" for code in CLOSE_CODES), CLOSE_OTHER)


def close_column(code: int) -> str:
    return f"close_{code}" if code in CLOSE_CODES else CLOSE_OTHER


# -- counts, latency and time: timeseries.csv, endpoints.csv and summary.json's figures --

PINGS = "pings"
SENT = "sent"
PONGS = "pongs"
ERRORS = "errors"  # failed pings: the sum of PING_ERRORS
CONNECTS = "connects"
CONNECT_OK = "connect_ok"
CLOSES = "closes"
CLIENT_CLOSES = "client_closes"
BROADCASTS = "broadcasts"  # broadcast frames received (every copy), in the second they arrived
# Frames that answer no pending ping and are no broadcast, welcome or error: another
# user's message in a shared room, a late pong whose ping already failed, a server's chatter.
UNMATCHED = "unmatched"
LATE_SENDS = "late_sends"
FRESH_SOCKET_PONGS = "fresh_socket_pongs"
COUNT_COLUMNS = (
    PINGS,
    SENT,
    PONGS,
    IN_FLIGHT,
    ERRORS,
    *PING_ERRORS,
    CONNECTS,
    CONNECT_OK,
    *CONNECT_ERRORS,
    CLOSES,
    *CLOSE_COLUMNS,
    CLIENT_CLOSES,
    BROADCASTS,
    UNMATCHED,
    LATE_SENDS,
    FRESH_SOCKET_PONGS,
)

# Room delivery, settled when the run ends (load.measure.settlement): each in the second
# the broadcast was sent, by the receiving member's endpoint; empty (null) until settled.
BROADCASTS_RECEIVED = "broadcasts_received"  # owed broadcasts a member got (its first copy)
BROADCASTS_LOST = "broadcasts_lost"  # owed broadcasts a member never got
BROADCASTS_DUPLICATED = "broadcasts_duplicated"  # copies beyond the first
DELIVERY_COLUMNS = (BROADCASTS_RECEIVED, BROADCASTS_LOST, BROADCASTS_DUPLICATED)

P50_MS, P95_MS, P99_MS, MAX_MS = "p50_ms", "p95_ms", "p99_ms", "max_ms"
SERVICE_P50_MS, SERVICE_P99_MS = "service_p50_ms", "service_p99_ms"
PERCENTILES = (P50_MS, P95_MS, P99_MS)
LATENCY_COLUMNS = (*PERCENTILES, MAX_MS, SERVICE_P50_MS, SERVICE_P99_MS)
SEND_LAG_MAX_MS = "send_lag_max_ms"
# The busiest load process's CPU that second (% of one core), and whether the generator was
# the limit (late sends or CPU: load.measure.generator); its seconds' latencies are ours.
GENERATOR_CPU, GENERATOR_LIMITED = "generator_cpu", "generator_limited"
GENERATOR_LIMITED_SECONDS = "generator_limited_seconds"  # summary.json

TIME, EPOCH_S, ELAPSED_S, PHASE = "time", "epoch_s", "elapsed_s", "phase"
TIME_COLUMNS = (TIME, EPOCH_S, ELAPSED_S, PHASE)
RUN_PHASE = "run"  # the phase of a run without a staircase
ENDPOINT = "endpoint"
USERS = "users"
# timeseries.csv: a master's connected workers each second; summary.json: each worker's totals
WORKERS = "workers"
CONNECTIONS = "connections"
FIRST_PONG_AT = "first_pong_at"  # the second's earliest pong on a socket opened after a restart (epoch s)
FIRST_CONNECT_FAILED = "first_connect_failed_at"  # the second's earliest failed connect (epoch s)
FIRST_CONNECT_OK = "first_connect_ok_at"  # the second's earliest accepted connect (epoch s)

# -- Daphne's failure signatures (load.probes.serverlog counts them) -----------------

SIG_KILLED_OWN_AWAIT = "sig_killed_own_await"
SIG_KILLED_ON_THREAD = "sig_killed_on_thread"
SIG_KILLED_OTHER = "sig_killed_other"
SIG_EXCEPTION = "sig_exception"
SIG_KILLED_PENDING = "sig_killed_pending"
SIG_TASK_EXCEPTION = "sig_task_exception"
SIG_OVER_CAPACITY = "sig_over_capacity"
SIG_OVER_CAPACITY_CHANNELS = "sig_over_capacity_channels"
SIG_HANDSHAKE_INCOMPLETE = "sig_handshake_incomplete"
SERVER_COLUMNS = (
    SIG_KILLED_OWN_AWAIT,
    SIG_KILLED_ON_THREAD,
    SIG_KILLED_OTHER,
    SIG_EXCEPTION,
    SIG_KILLED_PENDING,
    SIG_TASK_EXCEPTION,
    SIG_OVER_CAPACITY,
    SIG_OVER_CAPACITY_CHANNELS,
    SIG_HANDSHAKE_INCOMPLETE,
)
# An app instance killed for taking too long to shut down (FM-1), by what it was waiting on.
TOO_LONG_KILLS = (SIG_KILLED_OWN_AWAIT, SIG_KILLED_ON_THREAD, SIG_KILLED_OTHER)
KILL_COLUMNS = (*TOO_LONG_KILLS, SIG_KILLED_PENDING)  # every app instance Daphne killed
# What a person reads for each signature, in the order tables list them.
SIGNATURE_LABELS = {
    SIG_KILLED_OWN_AWAIT: "killed (took too long to shut down; own await)",
    SIG_KILLED_ON_THREAD: "killed (took too long to shut down; waiting on a thread)",
    SIG_KILLED_OTHER: "killed (took too long to shut down; other)",
    SIG_KILLED_PENDING: "pending application instances killed at SIGTERM",
    SIG_EXCEPTION: "Exception inside application",
    SIG_TASK_EXCEPTION: "Task exception was never retrieved",
    SIG_OVER_CAPACITY: "channels over capacity in a group (lines)",
    SIG_HANDSHAKE_INCOMPLETE: "handshakes that never completed",
    SIG_OVER_CAPACITY_CHANNELS: "channels over capacity (channels named in those lines)",
}

# -- Redis (load.probes.redisprobe samples them) -------------------------------------

REDIS_KEYS, REDIS_USED_MEMORY_MB, REDIS_CLIENTS = "redis_keys", "redis_used_memory_mb", "redis_clients"
GROUPS = "groups"
GROUP_MEMBERS = "group_members"
STALE_MEMBERS = "stale_members"  # group members whose process is no longer alive
MEMBER_PROCESSES = "member_processes"
SPECIFIC_KEYS = "specific_keys"
DEAD_PROCESS_KEYS = "dead_process_keys"
LIVE_PROCESSES = "live_processes"
REDIS_COLUMNS = (
    REDIS_KEYS,
    REDIS_USED_MEMORY_MB,
    REDIS_CLIENTS,
    GROUPS,
    GROUP_MEMBERS,
    STALE_MEMBERS,
    MEMBER_PROCESSES,
    SPECIFIC_KEYS,
    DEAD_PROCESS_KEYS,
    LIVE_PROCESSES,
)
GROUP, MEMBERS = "group", "members"

# -- the CSV files, column by column -------------------------------------------------

TIMESERIES_COLUMNS = (
    *TIME_COLUMNS,
    USERS,
    WORKERS,  # a master's connected workers (Locust's worker_count); empty in a one-process run
    CONNECTIONS,
    *COUNT_COLUMNS[:5],
    *LATENCY_COLUMNS,
    *COUNT_COLUMNS[5:],
    *DELIVERY_COLUMNS,
    SEND_LAG_MAX_MS,
    GENERATOR_CPU,
    GENERATOR_LIMITED,
    FIRST_PONG_AT,
    FIRST_CONNECT_FAILED,
    FIRST_CONNECT_OK,
    *SERVER_COLUMNS,
    *REDIS_COLUMNS,
)
ENDPOINT_COLUMNS = (
    *TIME_COLUMNS,
    ENDPOINT,
    *COUNT_COLUMNS[:5],
    *LATENCY_COLUMNS,
    *COUNT_COLUMNS[5:],
    *DELIVERY_COLUMNS,
    SEND_LAG_MAX_MS,
)
GROUP_COLUMNS = (TIME, EPOCH_S, ELAPSED_S, GROUP, MEMBERS, STALE_MEMBERS)
MESSAGE, COUNT = "message", "count"
EXCEPTION_COLUMNS = (*TIME_COLUMNS, MESSAGE, COUNT)

# -- events.jsonl: the "event" of each line ------------------------------------------

EVENT = "event"
RUN_START, RUN_END = "run_start", "run_end"
# A --fail-on threshold breached by the figures so far (load.analysis.livethresholds): its text and line.
THRESHOLD_BREACHED, THRESHOLD, LINE = "threshold_breached", "threshold", "line"
# The chaos controller's actions: one action_begin, then one of ACTION_ENDS.
ACTION_BEGIN, ACTION_DONE, ACTION_FAILED, ACTION_ABORTED = (
    "action_begin",
    "action_done",
    "action_failed",
    "action_aborted",
)
ACTION_ENDS = (ACTION_DONE, ACTION_FAILED, ACTION_ABORTED)
# The stack's processes (load.supervise.stack).
SPAWNED, LISTENING, READY, FAILED = "spawned", "listening", "ready", "failed"
SIGNAL_SENT, EXITED = "signal_sent", "exited"
THREAD_DUMP = "thread_dump"  # SIGUSR1 before a SIGKILL: where the stacks were kept (FM-4)
RESTART_BEGIN, RESTART_DONE = "restart_begin", "restart_done"
ASGI_THREADS_SET = "asgi_threads_set"
REDIS_READY, REDIS_STOPPED = "redis_ready", "redis_stopped"
REDIS_RESTART_BEGIN, REDIS_RESTART_DONE = "redis_restart_begin", "redis_restart_done"
# Which versions the target app runs with (load.supervise.targetstack): name, python,
# versions, seconds building its virtualenv, and what does not apply to them.
TARGET_STACK = "target_stack"
STACK_VERSIONS, NOT_APPLICABLE, VENV_BUILD_S = "stack_versions", "not_applicable", "venv_build_s"
AGENT_UNREACHABLE = "agent_unreachable"  # a remote agent did not answer (load.chaos.remote)
# With agents (load.chaos.remote), each event from an agent and each restart outcome says
# which: its short name (agent0, agent1, ... in the order --agent-url gave them; with several,
# also its folder server/<name>/) and its host:port; an outcome also says the instance's
# number across all agents, the one --restart-which takes (agent0's instances first).
AGENT, AGENT_HOST, TARGET_INDEX = "agent", "agent_host", "target_index"
# An exited event's "how" (load.supervise.procs).
HOW_EXITED = EXITED  # ended by itself, or by SIGTERM within the grace period
KILLED_AFTER_TIMEOUT = "killed_after_timeout"  # ignored SIGTERM for kill_after seconds
SIGKILLED = "sigkill"  # a hard stop
ALREADY_GONE = "already_exited"  # had exited before we signalled it

# The "action" of an action event.
RESTART, ASGI_THREADS, REDIS_RESTART, REDIS_FLUSH = "restart", "asgi_threads", "redis_restart", "redis_flush"
RESTART_ACTIONS = (RESTART, ASGI_THREADS)  # the actions that restart Daphne
# An action asked for by hand (the web UI's chaos tab): who asked, and the restart it asked for.
BY, BY_WEB_UI = "by", "web_ui"
MODE, WHICH = "mode", "which"

# -- summary.json ----------------------------------------------------------------------

ALL = "all"  # the figures of every endpoint merged
ENDPOINTS = "endpoints"
PHASES = "phases"
SERVER = "server"  # signature -> count for the whole run (null: not measured)
LATE_WINDOWS = "late_windows"
RUN_ID = "run_id"
STARTED_AT, ENDED_AT, DURATION_S = "started_at", "ended_at", "duration_s"
RESTARTS = "restarts"
# Each entry of restarts (load.analysis.recovery.restart_costs writes them).
AT_S = "at_s"  # when the plan said, in seconds from the start (also in action events)
DOWN_S, DOWN_SOURCE = "down_s", "down_source"
DOWN_BY_DAPHNE, DOWN_BY_CLIENTS = "daphne", "clients"  # the down_source values
FIRST_PONG_S = "first_pong_s"
RECOVERY_S = "recovery_s"
NOT_RECOVERED_WITHIN_S = "not_recovered_within_s"  # no recovery_s: at least this long
NOT_RECOVERED_UNTIL = "not_recovered_until"
FAILED_PINGS = "failed_pings"
SERVER_KILLS = "server_kills"
STALE_MEMBERS_BEFORE, STALE_MEMBERS_AFTER = "stale_members_before", "stale_members_after"
# A restart's not_recovered_until: what ended the seconds its recovery was looked for in.
UNTIL_RUN_END, UNTIL_NEXT_RESTART = RUN_END, "next_restart"
NOT_MEASURED = "not_measured"  # figure -> why this run could not measure it (its cells empty, null)
EXCEPTION_MESSAGES = "exception_messages"
CHAOS_FAILURES = "chaos_failures"
THRESHOLD_BREACHES = "threshold_breaches"
THRESHOLD_NOTES = "threshold_notes"
# Keys of not_measured that stand for a group of figures, and why a run could not measure them.
SERVER_SIGNATURES = "server_signatures"  # every signature at once, when no log is followed
REDIS = "redis"  # every Redis figure at once, when nothing probes Redis
DELIVERIES = "deliveries"  # every delivery figure at once, when the run's end could not settle them
# summary.json's deliveries: what the settlement started from (null when not settled).
BROADCASTS_SENT = "broadcasts_sent"  # room pings whose send the users reported
MEMBER_LIVES = "member_lives"  # room sockets named by a welcome
# Owed to a member the run's stop ended, sent less than a pong timeout before it: still on
# its way, neither received nor lost (as a ping's in_flight).
BROADCASTS_IN_FLIGHT = "broadcasts_in_flight"
NO_SERVER_LOG = "no server log given: --server-log or --server-log-cmd (or --stack local, or --agent-url)"
NO_REDIS_PROBE = "no Redis probe: --redis-probe-url (the channel layer's Redis) or --stack local"

# -- manifest.json ---------------------------------------------------------------------

CHAOS_PLAN = "chaos_plan"
COMMAND, OPTIONS, CONFIG, STACK = "command", "options", "config", "stack"  # secrets masked before written
VERSIONS, GIT_SHA, HOST = "versions", "git_sha", "host"

# -- comparison.csv (a sweep's folder): one row per run; per-endpoint columns as metric[endpoint] --

RUN_DIR, FINISHED, PERCENTILES_FROM = "run_dir", "finished", "percentiles"
ERROR_RATE, PONGS_PER_S = "error_rate", "pongs_per_s"  # percent; pongs over the run's seconds
RECOVERY_S_MEAN, STALE_MEMBERS_MAX = "recovery_s_mean", "stale_members_max"
RESTARTS_NOT_RECOVERED = "restarts_not_recovered"
KILLED_TOO_LONG, KILLED_PENDING = "killed_too_long", "killed_pending"


def per_endpoint(metric: str, endpoint: str) -> str:
    """comparison.csv's column of one endpoint's metric."""
    return f"{metric}[{endpoint}]"


def endpoint_of(column: str, metric: str) -> str | None:
    """The endpoint of a per_endpoint column of `metric`; None for any other column."""
    prefix = f"{metric}["
    return column[len(prefix) : -1] if column.startswith(prefix) and column.endswith("]") else None
