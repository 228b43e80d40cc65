# Shared by scripts/moto and scripts/kube-fake: a server started in the background whose pid
# is kept in $PID_FILE (each script sets PID_FILE and defines log()).

# Prints the pid of the server `start` left running, if it still runs.
running_pid() {
    [[ -f "$PID_FILE" ]] || return 1
    local pid
    pid="$(cat "$PID_FILE")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    echo "$pid"
}

# Stops that server (TERM, then KILL after 5 s) and removes the pid file and the files named
# as arguments.
stop_background() {
    local pid
    if pid="$(running_pid)"; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            kill -9 "$pid" 2>/dev/null || true
        fi
        log "stopped (pid $pid)"
    else
        log "was not running"
    fi
    rm -f "$PID_FILE" "$@"
}
