#!/usr/bin/env bash
# Private nginx for the fetch tests, on 127.0.0.1 only; never touches the
# system nginx.  Adapted from shared/bench/server.sh.
#
# Usage: nginx.sh start PORT DIR [TLS_PORT]
#                                   start; prints "pid N port P dir D"; with
#                                   TLS_PORT also https + HTTP/2 there, with a
#                                   self-signed certificate for "localhost"
#                                   (DIR/cert.pem)
#                                   (env NGINX_OWNER=PID: stopped too when
#                                   that process is gone)
#        nginx.sh stop PORT DIR     stop the master whose PID is in DIR
#        nginx.sh status PORT DIR
# DIR holds the configuration, the PID file (DIR/nginx.pid), logs and
# static files.
#
# Endpoints:
#   /hello                 "hello world\n"
#   /short-keepalive       "hello world\n"; the server closes the idle
#                          keep-alive connection 200 ms later
#   /bytes/0 /bytes/1k /bytes/100k /bytes/1m
#                          files of 0, 1024, 102400, 1048576 bytes
#                          (bytes/1k is "a"*1024, 100k "b"*..., 1m "c"*...)
#   /chunked               1,000,000 bytes ("0123456789" x 100000), chunked,
#                          no Content-Length
#   /delay/MS              "delayed\n" after MS milliseconds
#   /slow                  "start\n" at once, "end\n" 10 s later
#   /status/404 /status/502
#   /echo                  the request body, byte for byte
#   /method                the request method
#   /headers               the X-Test request header as the body; response
#                          headers X-Reply: yes, Set-Cookie: a=1, Set-Cookie: b=2
#   /redirect/N            N redirects (302, relative Location), then /hello
#   /redirect-file         302 to file:///etc/passwd
set -euo pipefail
cmd=${1:-}
port=${2:-}
dir=${3:-}
tls_port=${4:-}
[ -n "$cmd" ] && [ -n "$port" ] && [ -n "$dir" ] || {
  echo "usage: $0 start|stop|status PORT DIR" >&2
  exit 2
}
NGINX=${NGINX:-/usr/sbin/nginx}
pidf=$dir/nginx.pid

running() { [ -f "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null; }

start() {
  if running; then
    echo "pid $(cat "$pidf") port $port dir $dir"
    return 0
  fi
  local mod="" m nofile
  for m in /usr/lib/nginx/modules/ngx_http_echo_module.so \
    /usr/share/nginx/modules/ngx_http_echo_module.so; do
    [ -f "$m" ] && { mod=$m; break; }
  done
  [ -n "$mod" ] || {
    echo "ngx_http_echo_module missing (apt-get install libnginx-mod-http-echo)" >&2
    exit 1
  }
  nofile=$(ulimit -Hn)
  [ "$nofile" = unlimited ] && nofile=100000
  [ "$nofile" -gt 100000 ] && nofile=100000
  mkdir -p "$dir"/{logs,tmp,www/bytes}
  printf 'hello world\n' >"$dir/www/hello.txt"
  : >"$dir/www/bytes/0"
  head -c 1024 /dev/zero | tr '\0' a >"$dir/www/bytes/1k"
  head -c 102400 /dev/zero | tr '\0' b >"$dir/www/bytes/100k"
  head -c 1048576 /dev/zero | tr '\0' c >"$dir/www/bytes/1m"
  head -c 33554432 /dev/zero | tr '\0' d >"$dir/www/bytes/32m"
  local tls_listen=""
  if [ -n "$tls_port" ]; then
    [ -f "$dir/cert.pem" ] || openssl req -x509 -newkey rsa:2048 -nodes \
      -keyout "$dir/key.pem" -out "$dir/cert.pem" -days 2 \
      -subj /CN=localhost >/dev/null 2>&1
    tls_listen="listen 127.0.0.1:$tls_port ssl http2;
    ssl_certificate $dir/cert.pem;
    ssl_certificate_key $dir/key.pem;"
  fi
  local redirects="" i
  redirects+="    location = /redirect/1 { return 302 /hello; }"$'\n'
  for i in $(seq 2 30); do
    redirects+="    location = /redirect/$i { return 302 /redirect/$((i - 1)); }"$'\n'
  done
  cat >"$dir/nginx.conf" <<CONF
load_module $mod;
daemon on;
master_process on;
worker_processes 2;
worker_rlimit_nofile $nofile;
pid $pidf;
error_log $dir/logs/error.log warn;
events { worker_connections $nofile; multi_accept on; }
http {
  access_log off;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
  client_body_buffer_size 4m;
  client_max_body_size 8m;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  absolute_redirect off;
  sendfile on;
  tcp_nodelay on;
  default_type text/plain;
  # /delay/MS -> seconds string "S.mmm" for echo_sleep
  map \$uri \$delay_s {
    "~^/delay/(?<a>[0-9]+)(?<b>[0-9]{3})\$" "\$a.\$b";
    "~^/delay/(?<b>[0-9]{3})\$"             "0.\$b";
    "~^/delay/(?<b>[0-9]{2})\$"             "0.0\$b";
    ~^/delay/(?<b>[0-9])\$                "0.00\$b";
    default "0";
  }
  server {
    listen 127.0.0.1:$port backlog=65535;
    $tls_listen
    root $dir/www;
    location = /hello  { try_files /hello.txt =404; }
    location = /short-keepalive { keepalive_timeout 200ms; try_files /hello.txt =404; }
    location /bytes/   { default_type application/octet-stream; }
    location = /chunked { echo_duplicate 100000 "0123456789"; }
    location ~ ^/delay/[0-9]+\$ { echo_sleep \$delay_s; echo "delayed"; }
    location = /slow { echo "start"; echo_flush; echo_sleep 10; echo "end"; }
    location = /status/502 { return 502 "bad gateway\n"; }
    location = /status/404 { return 404 "not found\n"; }
    location = /echo { echo_read_request_body; echo_request_body; }
    location = /method { echo -n \$request_method; }
    location = /headers {
      add_header X-Reply yes;
      add_header Set-Cookie a=1;
      add_header Set-Cookie b=2;
      echo -n \$http_x_test;
    }
$redirects
    location = /redirect-file { return 302 file:///etc/passwd; }
  }
}
CONF
  "$NGINX" -p "$dir" -c "$dir/nginx.conf" -e "$dir/logs/error.log" -t -q
  "$NGINX" -p "$dir" -c "$dir/nginx.conf" -e "$dir/logs/error.log"
  for _ in $(seq 50); do running && break; sleep 0.1; done
  running || {
    echo "nginx failed to start, see $dir/logs/error.log" >&2
    exit 1
  }
  # NGINX_OWNER=PID: stop nginx when that process is gone, however it
  # ended (a test killed with SIGKILL cannot stop it itself).  The watcher
  # holds none of the caller's descriptors, so a caller reading this
  # script's output is not kept waiting.
  if [ -n "${NGINX_OWNER:-}" ]; then
    setsid bash -c 'while kill -0 "$1" 2>/dev/null && [ -f "$2" ]; do sleep 1; done
      [ -f "$2" ] && kill "$(cat "$2")" 2>/dev/null' watcher "$NGINX_OWNER" "$pidf" \
      </dev/null >/dev/null 2>&1 &
  fi
  echo "pid $(cat "$pidf") port $port dir $dir"
}

stop() {
  if running; then
    local pid
    pid=$(cat "$pidf")
    # fast stop of this master only: a graceful one (QUIT) would wait for
    # what a test left in flight (/slow, /delay/3000), seconds per program
    kill -TERM "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    rm -f "$pidf" # a KILLed master leaves it: no watcher may act on it
    echo "stopped pid $pid"
  else
    echo "not running (no live pid in $pidf)"
  fi
}

case $cmd in
start) start ;;
stop) stop ;;
status)
  if running; then
    echo "pid $(cat "$pidf") port $port dir $dir"
  else
    echo "stopped"
    exit 1
  fi
  ;;
*)
  echo "usage: $0 start|stop|status PORT DIR" >&2
  exit 2
  ;;
esac
