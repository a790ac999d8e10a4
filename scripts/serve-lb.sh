#!/usr/bin/env bash
# Two `ie serve` replicas behind nginx on loopback, and a load test through nginx.
#
#   scripts/serve-lb.sh MODEL_DIR            (after `pnpm build`)
#   CONCURRENCY=16 MAX_TOKENS=32 THREADS=1 LB_PORT=18080 scripts/serve-lb.sh MODEL_DIR
#
# The server keeps nothing between requests (a conversation is the messages the client sends), so
# any replica can answer any request: nginx spreads them (least_conn) and stops sending to a
# replica whose connections fail. Everything listens on 127.0.0.1 and stops when the script ends.
# Without nginx the script says so and exits 0: it never pretends to balance anything.
set -euo pipefail

MODEL=${1:-}
if [ -z "$MODEL" ]; then
  echo "usage: scripts/serve-lb.sh MODEL_DIR" >&2
  exit 2
fi
if ! command -v nginx >/dev/null 2>&1; then
  echo "serve-lb: nginx is not installed, so no load balancer was started and nothing was tested."
  echo "serve-lb: install it (Debian/Ubuntu: apt-get install nginx) and run this script again."
  exit 0
fi

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CLI="$ROOT/apps/ie/dist/cli.js"
if [ ! -f "$CLI" ]; then
  echo "serve-lb: $CLI is missing: run pnpm build first" >&2
  exit 2
fi
LB_PORT=${LB_PORT:-18080}
PORTS=("$((LB_PORT + 1))" "$((LB_PORT + 2))")
THREADS=${THREADS:-1}
WORK=$(mktemp -d)
PIDS=()

cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

for i in 0 1; do
  node "$CLI" serve "$MODEL" --host 127.0.0.1 --port "${PORTS[$i]}" --threads "$THREADS" --model-name bench \
    --queue 64 >"$WORK/replica$i.log" 2>&1 &
  PIDS+=("$!")
done

# Ready means /health says 200: the model is loaded (what a Kubernetes readiness probe checks).
for port in "${PORTS[@]}"; do
  for _ in $(seq 1 300); do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/health")" = 200 ]; then continue 2; fi
    sleep 0.2
  done
  echo "serve-lb: the replica on port $port did not become ready:" >&2
  cat "$WORK"/replica*.log >&2
  exit 1
done

mkdir -p "$WORK/nginx"
cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 1024; }
http {
  access_log $WORK/nginx/access.log;
  client_body_temp_path $WORK/nginx/body;
  proxy_temp_path $WORK/nginx/proxy;
  fastcgi_temp_path $WORK/nginx/fastcgi;
  uwsgi_temp_path $WORK/nginx/uwsgi;
  scgi_temp_path $WORK/nginx/scgi;
  upstream ie {
    least_conn;
    server 127.0.0.1:${PORTS[0]} max_fails=3 fail_timeout=10s;
    server 127.0.0.1:${PORTS[1]} max_fails=3 fail_timeout=10s;
    keepalive 32;
  }
  server {
    listen 127.0.0.1:$LB_PORT;
    client_max_body_size 1m;
    location / {
      proxy_pass http://ie;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      # Server-sent events pass through as they come.
      proxy_buffering off;
      proxy_read_timeout 600s;
      # A replica that is full (429) or loading (503) is not retried elsewhere: the client sees it.
      proxy_next_upstream error timeout;
    }
  }
}
EOF
nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' &
PIDS+=("$!")
for _ in $(seq 1 100); do
  if [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$LB_PORT/health")" = 200 ]; then break; fi
  sleep 0.1
done

echo "serve-lb: 2 replicas (ports ${PORTS[*]}) behind nginx at http://127.0.0.1:$LB_PORT"
status=0
SERVER_URL="http://127.0.0.1:$LB_PORT" CONCURRENCY=${CONCURRENCY:-16} MAX_TOKENS=${MAX_TOKENS:-32} node "$ROOT/benchmarks/serve.mjs" || status=$?

# How the load was spread: each replica's own count of answered completions.
for port in "${PORTS[@]}"; do
  n=$(curl -s "http://127.0.0.1:$port/metrics" | awk '/^ie_requests_total\{endpoint="\/v1\/completions",status="200"\}/ { print $2 }')
  echo "serve-lb: replica :$port answered ${n:-0} completion request(s)"
done
exit "$status"
