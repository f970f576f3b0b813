#!/usr/bin/env bash
# Set up and run the demo shop: a virtualenv in .venv-demo, SQLite in
# demo.sqlite3, a web server and workers. Ctrl-C stops everything.
#
#   ./scripts/demo.sh                  set up, enqueue demo jobs, serve
#   ./scripts/demo.sh --no-serve       set up, run the demo jobs, exit
#   DEMO_PORT=8001 ./scripts/demo.sh   serve on another port (default 8000)
set -euo pipefail
cd "$(dirname "$0")/.."

PORT=${DEMO_PORT:-8000}
VENV=.venv-demo
PY=$VENV/bin/python
LOGS=$VENV/logs
SERVE=1
for arg in "$@"; do
  case $arg in
    --no-serve) SERVE=0 ;;
    -h | --help) sed -n '2,7p' "$0" | cut -c 3-; exit 0 ;;
    *) echo "demo: unknown argument '$arg' (see --help)" >&2; exit 2 ;;
  esac
done

# The demo never touches another database or settings module, whatever the
# shell around it says.
export DJANGO_SETTINGS_MODULE=testproject.settings
export DATABASE_URL="sqlite:///$PWD/demo.sqlite3"
export PYTHONUNBUFFERED=1

if [ -t 1 ]; then BOLD=$'\033[1m' PLAIN=$'\033[0m'; else BOLD="" PLAIN=""; fi
say() { printf '%s==> %s%s\n' "$BOLD" "$*" "$PLAIN"; }
fail() { echo "demo: $*" >&2; exit 1; }

python_ok() {  # python_ok CMD -> true if CMD is Python >= 3.11 with venv
  "$1" -c 'import sys, venv; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1
}

find_python() {  # print python3.12 (Django 6) if there is one, else the best
  local v full
  for v in 3.12 3.13; do
    if python_ok "python$v"; then echo "python$v"; return; fi
    if command -v pyenv >/dev/null 2>&1; then
      full=$(pyenv versions --bare 2>/dev/null | grep -E "^$v(\.[0-9]+)?$" | sort -V | tail -n 1)
      if [ -n "$full" ] && python_ok "$(pyenv root)/versions/$full/bin/python$v"; then
        echo "$(pyenv root)/versions/$full/bin/python$v"; return
      fi
    fi
  done
  for v in python3 python3.11 python; do
    if python_ok "$v"; then echo "$v"; return; fi
  done
  return 1
}

setup_env() {
  local python stamp=$VENV/.installed want
  if [ ! -x "$PY" ]; then
    python=$(find_python) || fail "needs Python 3.11 or newer (3.12 preferred) with venv."
    say "Creating $VENV with $("$python" -V 2>&1)"
    "$python" -m venv "$VENV" ||
      fail "'$python -m venv' failed (Debian/Ubuntu: apt install python3-venv)."
  fi
  want=$(cat setup.cfg pyproject.toml | cksum)
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    say "Installing django-bgjobs and what the demo needs into $VENV"
    # pip's output goes to a log, shown only if the install fails.
    if ! "$PY" -m pip install --disable-pip-version-check -e ".[demo]" \
      >"$VENV/pip.log" 2>&1; then
      tail -n 30 "$VENV/pip.log" >&2
      fail "pip install failed; the whole log is $VENV/pip.log"
    fi
    echo "$want" >"$stamp"
  fi
}

setup_db() {
  say "Migrating demo.sqlite3"
  "$PY" manage.py migrate --noinput -v 0
  if ! "$PY" manage.py shell -v 0 -c "import sys
from django.contrib.auth import get_user_model
sys.exit(not get_user_model().objects.filter(username='admin').exists())" \
    >/dev/null 2>&1; then
    say "Creating the superuser admin (password admin)"
    DJANGO_SUPERUSER_PASSWORD="admin" "$PY" manage.py createsuperuser \
      --noinput --username admin --email admin@example.com -v 0
  fi
}

port_free() {  # bind as runserver will (SO_REUSEADDR): fails only if in use
  "$PY" - "$PORT" <<'EOF'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
EOF
}

PIDS="" TAIL_PID="" SERVER_PID="" WORKERS_PID=""
stop_all() {
  local pid
  trap - INT TERM EXIT
  if [ -n "$TAIL_PID" ]; then kill "$TAIL_PID" 2>/dev/null || true; fi
  if [ -z "$PIDS" ]; then return 0; fi
  say "Stopping the demo's processes"
  for pid in $PIDS; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in $PIDS; do wait "$pid" 2>/dev/null || true; done
  PIDS=""
}
trap 'stop_all; exit 130' INT
trap 'stop_all; exit 143' TERM
trap 'stop_all' EXIT

start_server() {
  port_free || fail "port $PORT is busy (another server?). Stop it, or run
      DEMO_PORT=8001 ./scripts/demo.sh"
  say "Starting the web server on http://127.0.0.1:$PORT/ (log: $LOGS/server.log)"
  "$PY" manage.py runserver "127.0.0.1:$PORT" --noreload >"$LOGS/server.log" 2>&1 &
  SERVER_PID=$!
  PIDS="$PIDS $SERVER_PID"
  local _
  for _ in $(seq 1 100); do
    kill -0 "$SERVER_PID" 2>/dev/null ||
      fail "the web server stopped: $(tail -n 5 "$LOGS/server.log")"
    if "$PY" -c 'import sys, urllib.request as u; u.urlopen(sys.argv[1], timeout=1)' \
      "http://127.0.0.1:$PORT/" 2>/dev/null; then
      return 0
    fi
    sleep 0.2
  done
  fail "the web server did not answer on port $PORT within 20 s ($LOGS/server.log)"
}

start_workers() {
  say "Starting workers: 2 processes x 4 threads (log: $LOGS/workers.log)"
  "$PY" manage.py runworkers --processes 2 --concurrency 4 --grace 5 \
    >"$LOGS/workers.log" 2>&1 &
  WORKERS_PID=$!
  PIDS="$PIDS $WORKERS_PID"
}

serve() {
  echo
  say "The demo is running. Open http://127.0.0.1:$PORT/ (admin: admin / admin)."
  echo "    Logs: $LOGS/server.log and $LOGS/workers.log."
  echo "    The worker log follows: jobs as they run, and the e-mails they send."
  echo "    Press Ctrl-C to stop the web server and the workers."
  echo
  tail -n 0 -f "$LOGS/workers.log" &
  TAIL_PID=$!
  while kill -0 "$SERVER_PID" 2>/dev/null && kill -0 "$WORKERS_PID" 2>/dev/null; do
    sleep 1 &
    wait $! || true
  done
  fail "the web server or the workers stopped on their own; see $LOGS/"
}

setup_env
setup_db
mkdir -p "$LOGS"
if [ "$SERVE" = 1 ]; then start_server; fi
start_workers
say "Enqueueing demo jobs: signups, orders, flaky calls"
url=""
if [ "$SERVE" = 1 ]; then url="http://127.0.0.1:$PORT"; fi
"$PY" manage.py demo --wait 60 --url "$url"
if [ "$SERVE" = 1 ]; then serve; fi
