#!/usr/bin/env bash
# A private three-node RabbitMQ cluster on loopback, for the cluster fault test and for trying
# quorum queues by hand. It never touches the machine's own RabbitMQ (its node, ports, data, config).
#
#   scripts/rabbitmq-cluster.sh start            start the three nodes and cluster them
#   scripts/rabbitmq-cluster.sh stop             stop them (data kept; `reset` deletes it)
#   scripts/rabbitmq-cluster.sh status           cluster status as node 1 sees it
#   scripts/rabbitmq-cluster.sh stop-node N      stop node N (1-3) alone
#   scripts/rabbitmq-cluster.sh start-node N     start node N again (it rejoins the cluster)
#   scripts/rabbitmq-cluster.sh urls             the BROKER_URL listing the three nodes
#   scripts/rabbitmq-cluster.sh ctl N ARGS...    rabbitmqctl against node N
#   scripts/rabbitmq-cluster.sh reset            stop, then delete the data directories
#
# Settings (environment):
#   RABBITMQ_CLUSTER_NAME       node name prefix: nodes are NAME_1@localhost.. (default ehcluster)
#   RABBITMQ_CLUSTER_PORT_BASE  node N listens for AMQP on BASE+N and for Erlang distribution on
#                               BASE+10+N (default 35670: 35671-35673 and 35681-35683)
#   RABBITMQ_CLUSTER_DIR        data, logs, config, cookie (default ${TMPDIR:-/tmp}/NAME)
#   RABBITMQ_CLUSTER_COOKIE     the shared Erlang cookie (default: NAME-cookie-for-loopback-tests)
set -euo pipefail

NAME=${RABBITMQ_CLUSTER_NAME:-ehcluster}
BASE=${RABBITMQ_CLUSTER_PORT_BASE:-35670}
DIR=${RABBITMQ_CLUSTER_DIR:-${TMPDIR:-/tmp}/$NAME}
COOKIE=${RABBITMQ_CLUSTER_COOKIE:-$NAME-cookie-for-loopback-tests}
NODES=(1 2 3)
# The packaged scripts under /usr/sbin switch to the rabbitmq user and read /etc/rabbitmq; these do not.
RMQ_BIN=${RABBITMQ_BIN_DIR:-/usr/lib/rabbitmq/bin}

node() { echo "${NAME}_$1@localhost"; }
amqp_port() { echo $((BASE + $1)); }
dist_port() { echo $((BASE + 10 + $1)); }

# Everything a node or the CLI needs, private to this cluster.
node_env() {
  local n=$1 home="$DIR/home"
  export HOME="$home"
  export RABBITMQ_NODENAME
  RABBITMQ_NODENAME=$(node "$n")
  export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
  export RABBITMQ_NODE_PORT
  RABBITMQ_NODE_PORT=$(amqp_port "$n")
  export RABBITMQ_DIST_PORT
  RABBITMQ_DIST_PORT=$(dist_port "$n")
  export RABBITMQ_MNESIA_BASE="$DIR/node$n/mnesia"
  export RABBITMQ_LOG_BASE="$DIR/node$n/log"
  export RABBITMQ_PID_FILE="$DIR/node$n/rabbitmq.pid"
  export RABBITMQ_CONF_ENV_FILE="$DIR/rabbitmq-env.conf"
  export RABBITMQ_CONFIG_FILE="$DIR/node$n/rabbitmq.conf"
  export RABBITMQ_ADVANCED_CONFIG_FILE="$DIR/advanced.config"
  export RABBITMQ_ENABLED_PLUGINS_FILE="$DIR/enabled_plugins"
  export ERL_EPMD_ADDRESS=127.0.0.1
  export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-setcookie $COOKIE -kernel inet_dist_use_interface {127,0,0,1}"
}

prepare() {
  mkdir -p "$DIR/home"
  printf '%s' "$COOKIE" >"$DIR/home/.erlang.cookie"
  chmod 400 "$DIR/home/.erlang.cookie"
  : >"$DIR/rabbitmq-env.conf"
  echo '[].' >"$DIR/enabled_plugins" # no management plugin: it would listen on 15672
  echo '[].' >"$DIR/advanced.config"
  for n in "${NODES[@]}"; do
    mkdir -p "$DIR/node$n/mnesia" "$DIR/node$n/log"
    cat >"$DIR/node$n/rabbitmq.conf" <<EOF
listeners.tcp.default = 127.0.0.1:$(amqp_port "$n")
disk_free_limit.absolute = 50MB
cluster_partition_handling = pause_minority
cluster_formation.peer_discovery_backend = classic_config
cluster_formation.classic_config.nodes.1 = $(node 1)
cluster_formation.classic_config.nodes.2 = $(node 2)
cluster_formation.classic_config.nodes.3 = $(node 3)
EOF
  done
}

ctl() {
  local n=$1
  shift
  (node_env "$n" && "$RMQ_BIN/rabbitmqctl" --erlang-cookie "$COOKIE" -n "$(node "$n")" "$@")
}

running() { ctl "$1" -q status >/dev/null 2>&1; }

start_node() {
  local n=$1
  if running "$n"; then
    echo "rabbitmq-cluster: $(node "$n") already running"
    return 0
  fi
  (node_env "$n" && exec nohup "$RMQ_BIN/rabbitmq-server" >"$DIR/node$n/log/startup.log" 2>&1 </dev/null) &
  # await_startup fails at once while the node is not yet reachable: ask again until it answers.
  local deadline=$((SECONDS + 120))
  until ctl "$n" -q await_startup --timeout 30 >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      echo "rabbitmq-cluster: $(node "$n") did not start; see $DIR/node$n/log" >&2
      tail -n 20 "$DIR/node$n/log/startup.log" >&2 || true
      return 1
    fi
    sleep 1
  done
  echo "rabbitmq-cluster: $(node "$n") up on 127.0.0.1:$(amqp_port "$n")"
}

stop_node() {
  local n=$1
  if running "$n"; then
    ctl "$n" -q stop >/dev/null 2>&1 || true
    echo "rabbitmq-cluster: $(node "$n") stopped"
  fi
}

stop_all() {
  local n
  for n in "${NODES[@]}"; do stop_node "$n" & done
  wait
}

joined() { ctl 1 -q cluster_status --formatter json 2>/dev/null | grep -q "\"$(node "$1")\""; }

# The nodes find each other at first boot (classic_config peer discovery); a node that booted alone
# (the others were slow) joins node 1 here.
cluster() {
  for n in 2 3; do
    joined "$n" && continue
    ctl "$n" -q stop_app >>"$DIR/cluster.log" 2>&1
    ctl "$n" -q reset >>"$DIR/cluster.log" 2>&1
    ctl "$n" -q join_cluster "$(node 1)" >>"$DIR/cluster.log" 2>&1
    ctl "$n" -q start_app >>"$DIR/cluster.log" 2>&1
    echo "rabbitmq-cluster: $(node "$n") joined $(node 1)"
  done
}

urls() {
  local out=() n
  for n in "${NODES[@]}"; do out+=("amqp://guest:guest@127.0.0.1:$(amqp_port "$n")/%2F"); done
  (IFS=,; echo "${out[*]}")
}

case "${1:-}" in
  start)
    prepare
    for n in "${NODES[@]}"; do start_node "$n" & done
    wait
    for n in "${NODES[@]}"; do running "$n" || { echo "rabbitmq-cluster: $(node "$n") is not running" >&2; exit 1; }; done
    cluster
    echo "BROKER_URL=$(urls)"
    ;;
  stop) stop_all ;;
  status) ctl 1 cluster_status ;;
  start-node) prepare && start_node "${2:?node number}" ;;
  stop-node) stop_node "${2:?node number}" ;;
  urls) urls ;;
  ctl)
    n=${2:?node number}
    shift 2
    ctl "$n" "$@"
    ;;
  reset)
    stop_all
    rm -rf "$DIR"
    ;;
  *)
    sed -n '2,19p' "$0" >&2
    exit 2
    ;;
esac
