#!/usr/bin/env bash
# Local single-node Apache Kafka broker (KRaft, combined broker + controller) for development and
# tests. No Docker: the broker jars come from Maven Central (deploy/kafka/pom.xml) and run with
# `java -cp "libs/*" kafka.Kafka`.
#
#   deploy/kafka/kafka.sh fetch    download the jars into the cache (no-op when cached)
#   deploy/kafka/kafka.sh start    fetch, format storage once, start in the background, wait until ready
#                                  (no-op when already running and healthy)
#   deploy/kafka/kafka.sh wait     wait until the running broker is ready
#   deploy/kafka/kafka.sh stop     SIGTERM (controlled shutdown), SIGKILL after a timeout
#   deploy/kafka/kafka.sh status   exit 0 ready, 1 running but not answering, 3 not running
#   deploy/kafka/kafka.sh reset    stop and delete the data dir (all topics)
#
# Any command takes --secure (or AUPWATCH_KAFKA_MODE=secure): a second, separate broker with a
# SASL_SSL listener (SCRAM-SHA-512 users, a CA and broker certificate made here with openssl and
# keytool) on its own ports, directory and pid file; the plain broker is not touched. Clients
# find their settings in <dir>/client.env (AUPWATCH_KAFKA__* lines) and the CA in <dir>/tls/ca.pem.
#
# Environment:
#   AUPWATCH_KAFKA_PORT             client port on 127.0.0.1 (default 19092)
#   AUPWATCH_KAFKA_CONTROLLER_PORT  KRaft controller port (default: client port + 1)
#   AUPWATCH_KAFKA_DIR              pid file, logs, rendered config, data (default <repo>/var/kafka)
#   AUPWATCH_CACHE                  jar cache root (default $HOME/.cache/aupwatch)
#   AUPWATCH_KAFKA_HEAP             JVM heap flags (default "-Xms128m -Xmx768m")
#   AUPWATCH_KAFKA_START_TIMEOUT    seconds to wait for readiness (default 120)
#   AUPWATCH_KAFKA_STOP_TIMEOUT     seconds to wait for a graceful stop (default 30)
#   JAVA_HOME / MVN                 java and maven to use (default: java and mvn on PATH)
#   AUPWATCH_KAFKA_MODE             plain (default) or secure (same as --secure)
#   AUPWATCH_KAFKA_SECURE_PORT      secure mode: SASL_SSL port (default 19094; controller port + 1)
#   AUPWATCH_KAFKA_SECURE_DIR       secure mode: state dir (default <repo>/var/kafka-secure)
set -euo pipefail

COMMAND=${1:-}
MODE=${AUPWATCH_KAFKA_MODE:-plain}
for arg in "${@:2}"; do
    case $arg in
        --secure) MODE=secure ;;
        *) echo "kafka: unknown option $arg" >&2; exit 2 ;;
    esac
done
[[ $MODE == plain || $MODE == secure ]] || { echo "kafka: AUPWATCH_KAFKA_MODE must be plain or secure, not $MODE" >&2; exit 2; }

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
POM=$HERE/pom.xml
TEMPLATE=$HERE/server.properties

VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM" | head -n1)
[[ -n $VERSION ]] || { echo "kafka: no <kafka.version> in $POM" >&2; exit 2; }

CACHE=${AUPWATCH_CACHE:-$HOME/.cache/aupwatch}
DIST=$CACHE/kafka-$VERSION
LIBS=$DIST/libs
if [[ $MODE == secure ]]; then
    # own variables: settings meant for the plain broker must not move the secured one onto it
    KDIR=${AUPWATCH_KAFKA_SECURE_DIR:-$REPO/var/kafka-secure}
    PORT=${AUPWATCH_KAFKA_SECURE_PORT:-19094}
    CPORT=$((PORT + 1))
    HEAP=${AUPWATCH_KAFKA_HEAP:--Xms64m -Xmx512m}
else
    KDIR=${AUPWATCH_KAFKA_DIR:-$REPO/var/kafka}
    PORT=${AUPWATCH_KAFKA_PORT:-19092}
    CPORT=${AUPWATCH_KAFKA_CONTROLLER_PORT:-$((PORT + 1))}
    HEAP=${AUPWATCH_KAFKA_HEAP:--Xms128m -Xmx768m}
fi
START_TIMEOUT=${AUPWATCH_KAFKA_START_TIMEOUT:-120}
STOP_TIMEOUT=${AUPWATCH_KAFKA_STOP_TIMEOUT:-30}
JAVA=${JAVA_HOME:+$JAVA_HOME/bin/}java
MVN=${MVN:-mvn}

PIDFILE=$KDIR/kafka.pid
READYFILE=$KDIR/kafka.ready   # holds the pid once that process has logged "Kafka Server started"
LOG=$KDIR/kafka.log           # log4j output (rolled at 20 MB)
OUT=$KDIR/kafka.out           # JVM stdout/stderr (crashes, early errors)
CONFIG=$KDIR/server.properties
LOG4J=$KDIR/log4j.properties
DATA=$KDIR/data
TLS=$KDIR/tls                 # secure mode: CA, broker keystore, truststore
SECRETS=$KDIR/secrets         # secure mode: store, admin and client passwords (made at format time)
CLIENT_ENV=$KDIR/client.env   # secure mode: a client's AUPWATCH_KAFKA__* settings
CLIENT_USER=aupwatch

NAME=kafka
[[ $MODE == plain ]] || NAME="kafka ($MODE)"
say() { echo "$NAME: $*"; }
die() { echo "$NAME: ERROR: $*" >&2; exit 1; }

log_tail() {
    local f
    for f in "$OUT" "$LOG"; do
        if [[ -s $f ]]; then
            echo "---- last 40 lines of $f ----" >&2
            tail -n 40 "$f" >&2
        fi
    done
}

# Serialise start/stop/fetch between concurrent callers (parallel test runs, several shells).
lock() {  # lock FILE
    exec 9>"$1"
    flock -w 600 9 || die "timed out waiting for lock $1"
}

fetched() { [[ -f $DIST/.complete ]] && [[ $(cat "$DIST/.complete") == "$(sha256sum <"$POM" | cut -d' ' -f1)" ]]; }

cmd_fetch() {
    mkdir -p "$CACHE"
    if fetched; then
        say "kafka $VERSION jars cached in $LIBS"
        return 0
    fi
    lock "$CACHE/kafka-$VERSION.lock"
    if ! fetched; then
        command -v "$MVN" >/dev/null || die "maven ($MVN) not found; it is needed once to fetch the broker jars"
        local tmp=$DIST.tmp.$$
        rm -rf "$tmp"
        say "fetching kafka $VERSION jars from Maven Central into $LIBS (first run only) ..." >&2
        # (maven 3.8 prints bare colour-reset codes even in batch mode: strip them)
        if ! "$MVN" -q -B -Dstyle.color=never -f "$POM" dependency:copy-dependencies \
                -DoutputDirectory="$tmp/libs" 2>&1 | sed -e 's/\x1b\[[0-9;]*m//g' >&2; then
            rm -rf "$tmp"
            die "maven could not fetch the kafka $VERSION jars (see above)"
        fi
        ls "$tmp"/libs/kafka_2.13-*.jar >/dev/null 2>&1 || { rm -rf "$tmp"; die "fetch produced no kafka_2.13 jar"; }
        sha256sum <"$POM" | cut -d' ' -f1 >"$tmp/.complete"
        rm -rf "$DIST"
        mv "$tmp" "$DIST"
        say "fetched kafka $VERSION ($(ls "$LIBS" | wc -l) jars) into $LIBS" >&2
    else
        say "kafka $VERSION jars cached in $LIBS"
    fi
    exec 9>&-
}

pid_of() { [[ -f $PIDFILE ]] && cat "$PIDFILE" 2>/dev/null || true; }

# The pid file's process is alive and is our broker (not a recycled pid).
is_running() {
    local pid
    pid=$(pid_of)
    [[ -n $pid && -r /proc/$pid/cmdline ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "kafka.Kafka $CONFIG"
}

# A Kafka ApiVersions v0 request (correlation id 7) over bash's /dev/tcp; ready when the answer
# carries our correlation id and error code 0. Needs no client library.
probe() {
    local port=${1:-$PORT} resp
    resp=$(timeout 3 bash -c '
        exec 3<>/dev/tcp/127.0.0.1/'"$port"' || exit 1
        printf "\x00\x00\x00\x0a\x00\x12\x00\x00\x00\x00\x00\x07\xff\xff" >&3
        head -c 10 <&3 | od -An -tx1' 2>/dev/null) || return 1
    resp=${resp//[[:space:]]/}
    [[ ${#resp} -eq 20 && ${resp:8:12} == 000000070000 ]]
}

# The same request over TLS, trusting only our CA: proves the certificate chain and the listener.
# stdin stays open briefly so that s_client reads the answer before it hangs up.
probe_tls() {
    local resp
    resp=$( { printf "\x00\x00\x00\x0a\x00\x12\x00\x00\x00\x00\x00\x07\xff\xff"; sleep 0.5; } |
        timeout 5 openssl s_client -quiet -no_ign_eof -verify_return_error -CAfile "$TLS/ca.pem" \
            -verify_ip 127.0.0.1 -connect "127.0.0.1:$PORT" 2>/dev/null | head -c 10 | od -An -tx1) || return 1
    resp=${resp//[[:space:]]/}
    [[ ${#resp} -eq 20 && ${resp:8:12} == 000000070000 ]]
}

port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

is_ready() {
    is_running || return 1
    local pid
    pid=$(pid_of)
    if [[ $(cat "$READYFILE" 2>/dev/null || true) != "$pid" ]]; then
        grep -q "Kafka Server started" "$LOG" 2>/dev/null || return 1
        echo "$pid" >"$READYFILE"
    fi
    if [[ $MODE == secure ]]; then probe_tls; else probe; fi
}

wait_ready() {
    local deadline=$((SECONDS + START_TIMEOUT))
    while ! is_ready; do
        if ! is_running; then
            log_tail
            die "broker process exited during startup (logs: $KDIR)"
        fi
        if ((SECONDS >= deadline)); then
            log_tail
            die "broker not ready on 127.0.0.1:$PORT after ${START_TIMEOUT}s (pid $(pid_of) left running; logs: $KDIR; retry with '$0 wait' or give up with '$0 stop')"
        fi
        sleep 0.5
    done
}

secret() { sed -n "s/^$1=//p" "$SECRETS"; }

# Passwords are made once, with the data they protect (the SCRAM users are formatted into it).
make_secrets() {
    [[ -f $SECRETS ]] && return 0
    [[ ! -f $DATA/meta.properties ]] || die "$DATA is formatted but $SECRETS is missing; start afresh with: $0 reset --secure"
    (
        umask 077
        printf 'store=%s\nadmin=%s\nclient=%s\n' "$(openssl rand -hex 16)" "$(openssl rand -hex 16)" \
            "$(openssl rand -hex 16)" >"$SECRETS.tmp"
    )
    mv "$SECRETS.tmp" "$SECRETS"
}

# A CA and a broker certificate for 127.0.0.1/localhost, in PKCS12 stores for the JVM; made once.
make_tls() {
    [[ -f $TLS/broker.p12 && -f $TLS/truststore.p12 && -f $TLS/ca.pem ]] && return 0
    command -v openssl >/dev/null || die "openssl not found (needed to make the secured broker's certificates)"
    command -v keytool >/dev/null || die "keytool not found (it comes with the JDK)"
    local tmp=$TLS.tmp.$$ pass
    pass=$(secret store)
    rm -rf "$tmp"
    mkdir -p "$tmp"
    (
        umask 077
        cd "$tmp"
        openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=aupwatch local Kafka CA" \
            -keyout ca.key -out ca.pem -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
        openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout broker.key -out broker.csr 2>/dev/null
        printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
            "extendedKeyUsage=serverAuth,clientAuth" "subjectAltName=IP:127.0.0.1,DNS:localhost" \
            "authorityKeyIdentifier=keyid,issuer" >broker.ext
        openssl x509 -req -in broker.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 \
            -extfile broker.ext -out broker.pem 2>/dev/null
        openssl pkcs12 -export -name broker -in broker.pem -inkey broker.key -certfile ca.pem \
            -passout "pass:$pass" -out broker.p12
        keytool -importcert -noprompt -alias ca -file ca.pem -storetype PKCS12 \
            -keystore truststore.p12 -storepass "$pass" >/dev/null 2>&1
        rm -f broker.csr broker.ext ca.srl
        chmod 644 ca.pem
    ) || { rm -rf "$tmp"; die "could not make the TLS certificates in $TLS"; }
    rm -rf "$TLS"
    mv "$tmp" "$TLS"
    say "made a CA ($TLS/ca.pem) and a broker certificate for 127.0.0.1" >&2
}

write_client_env() {
    (
        umask 077
        cat >"$CLIENT_ENV.tmp" <<EOF
# generated by deploy/kafka/kafka.sh --secure: settings of a client of this broker
AUPWATCH_KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:$PORT
AUPWATCH_KAFKA__SECURITY_PROTOCOL=SASL_SSL
AUPWATCH_KAFKA__SASL_MECHANISM=SCRAM-SHA-512
AUPWATCH_KAFKA__SASL_USERNAME=$CLIENT_USER
AUPWATCH_KAFKA__SASL_PASSWORD=$(secret client)
AUPWATCH_KAFKA__SSL_CAFILE=$TLS/ca.pem
EOF
    )
    mv "$CLIENT_ENV.tmp" "$CLIENT_ENV"
}

render_config() {
    mkdir -p "$DATA"
    (
        umask 077  # the secured config holds passwords
        sed -e "s|@PORT@|$PORT|g" -e "s|@CONTROLLER_PORT@|$CPORT|g" -e "s|@DATA_DIR@|$KDIR|g" \
            "$TEMPLATE" >"$CONFIG.tmp"
        if [[ $MODE == secure ]]; then
            sed -e "s|@PORT@|$PORT|g" -e "s|@CONTROLLER_PORT@|$CPORT|g" -e "s|@TLS_DIR@|$TLS|g" \
                -e "s|@STORE_PASSWORD@|$(secret store)|g" -e "s|@ADMIN_PASSWORD@|$(secret admin)|g" \
                "$HERE/server-secure.properties" >>"$CONFIG.tmp"
        fi
    )
    mv "$CONFIG.tmp" "$CONFIG"
    cat >"$LOG4J" <<EOF
# generated by deploy/kafka/kafka.sh
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.RollingFileAppender
log4j.appender.file.File=$LOG
log4j.appender.file.MaxFileSize=20MB
log4j.appender.file.MaxBackupIndex=2
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.log.LogCleaner=WARN
log4j.logger.org.apache.kafka.storage.internals.log=WARN
log4j.logger.kafka.log=WARN
EOF
}

cmd_start() {
    command -v "$JAVA" >/dev/null || die "java not found (set JAVA_HOME or put java 11+ on PATH)"
    mkdir -p "$KDIR"
    if is_ready; then
        say "already running (pid $(pid_of)) on 127.0.0.1:$PORT"
        return 0
    fi
    fetched || cmd_fetch
    lock "$KDIR/kafka.lock"
    if is_ready; then
        say "already running (pid $(pid_of)) on 127.0.0.1:$PORT"
        return 0
    fi
    if is_running; then   # started by another caller and still coming up
        wait_ready
        say "running (pid $(pid_of)) on 127.0.0.1:$PORT"
        return 0
    fi
    rm -f "$PIDFILE" "$READYFILE"
    local p
    for p in "$PORT" "$CPORT"; do
        if port_open "$p"; then die "port 127.0.0.1:$p is in use by another process (not this broker: no live pid in $PIDFILE); set AUPWATCH_KAFKA_PORT"; fi
    done

    local -a scram=()
    if [[ $MODE == secure ]]; then
        make_secrets
        make_tls
        write_client_env
        # the broker's own user (inter-broker traffic) and the client user
        scram=(--add-scram "SCRAM-SHA-512=[name=admin,password=$(secret admin)]"
               --add-scram "SCRAM-SHA-512=[name=$CLIENT_USER,password=$(secret client)]")
    fi
    render_config
    if [[ ! -f $DATA/meta.properties ]]; then
        local cluster_id
        cluster_id=$("$JAVA" -cp "$LIBS/*" -Dlog4j.configuration="file:$LOG4J" kafka.tools.StorageTool random-uuid)
        if ! "$JAVA" -cp "$LIBS/*" -Dlog4j.configuration="file:$LOG4J" kafka.tools.StorageTool \
                format -t "$cluster_id" -c "$CONFIG" "${scram[@]}" >"$OUT" 2>&1; then
            cat "$OUT" >&2
            die "formatting $DATA failed"
        fi
    fi

    if [[ -f $LOG ]]; then mv -f "$LOG" "$LOG.prev"; fi
    local -a jvm
    # shellcheck disable=SC2206  # HEAP is a list of flags
    jvm=($HEAP -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35
         -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true -Djava.net.preferIPv4Stack=true
         -Dlog4j.configuration="file:$LOG4J" -Dkafka.logs.dir="$KDIR")
    # setsid: not killed with the caller's process group (pytest, CI step); 9>&- drops the lock fd.
    setsid "$JAVA" "${jvm[@]}" -cp "$LIBS/*" kafka.Kafka "$CONFIG" </dev/null >"$OUT" 2>&1 9>&- &
    echo $! >"$PIDFILE"
    local t0=$SECONDS
    wait_ready
    say "started kafka $VERSION (pid $(pid_of)) on 127.0.0.1:$PORT in $((SECONDS - t0))s; logs in $KDIR"
}

cmd_wait() {
    is_running || die "not running (start it with: $0 start)"
    wait_ready
    say "ready (pid $(pid_of)) on 127.0.0.1:$PORT"
}

cmd_stop() {
    mkdir -p "$KDIR"
    lock "$KDIR/kafka.lock"
    if ! is_running; then
        rm -f "$PIDFILE" "$READYFILE"
        say "not running"
        return 0
    fi
    local pid deadline
    pid=$(pid_of)
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + STOP_TIMEOUT))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
        while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
        say "killed (pid $pid) after ${STOP_TIMEOUT}s without a graceful stop"
    else
        say "stopped (pid $pid)"
    fi
    rm -f "$PIDFILE" "$READYFILE"
}

cmd_status() {
    if is_ready; then
        say "running (pid $(pid_of)) on 127.0.0.1:$PORT, kafka $VERSION, logs in $KDIR"
    elif is_running; then
        say "running (pid $(pid_of)) but not answering on 127.0.0.1:$PORT; logs in $KDIR"
        return 1
    else
        say "not running"
        return 3
    fi
}

cmd_reset() {
    cmd_stop
    rm -rf "$DATA"
    # the SCRAM users were formatted into the data: their passwords go with it (the CA stays)
    rm -f "$SECRETS" "$CLIENT_ENV"
    say "deleted $DATA"
}

case $COMMAND in
    fetch) cmd_fetch ;;
    start) cmd_start ;;
    wait) cmd_wait ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    reset) cmd_reset ;;
    *)
        echo "usage: $0 {fetch|start|wait|stop|status|reset} [--secure]" >&2
        exit 2
        ;;
esac
