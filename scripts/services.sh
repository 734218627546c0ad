#!/usr/bin/env bash
# Make sure the local RabbitMQ and PostgreSQL answer on loopback; start them if not.
set -u

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for_port() {
  local name=$1 port=$2
  for _ in $(seq 1 60); do
    answers "$port" && { echo "services: $name answers on 127.0.0.1:$port"; return 0; }
    sleep 1
  done
  echo "services: $name still not answering on 127.0.0.1:$port" >&2
  return 1
}

if ! answers 5432; then
  echo "services: starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
fi
if ! answers 5672; then
  echo "services: starting RabbitMQ"
  rabbitmq-server -detached || true
fi
wait_for_port PostgreSQL 5432 && wait_for_port RabbitMQ 5672
