#!/usr/bin/env bash
# The README's first command, end to end, as CI runs it: `scripts/demo.sh` non-interactively in a
# fresh demo directory, then checks on what it left running, then `scripts/demo.sh down`.
#
#   1. the demo from a fresh directory: a real build, pushed, published, run (demo.sh checks those);
#   2. the operator as deploy/ runs it: its ServiceAccount's token (in-cluster configuration), the
#      Deployment's probes passing, non-root, read-only root filesystem, all capabilities dropped,
#      seccomp RuntimeDefault, and no request of its refused by RBAC (a missing verb fails here);
#   3. leader election with deploy/'s two replicas: the leader's Pod is deleted while a real build
#      runs; another replica holds the Lease within its lease duration, and the build ends Ready with
#      exactly one Job and one ImageSpecJob for its hash;
#   4. a second `demo.sh` run reuses everything;
#   5. `demo.sh down` leaves no process of the demo and no bridge.
# Needs root. Prints the timings it measured. Exits non-zero on the first failed check.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export IMAGE_BUILDER_DEMO_DIR=${IMAGE_BUILDER_DEMO_DIR:-$(mktemp -d /tmp/image-builder-demo-test.XXXXXX)}
DEMO_DIR=$IMAGE_BUILDER_DEMO_DIR
NS=hub
failures=0
check() { # description command…
  local what=$1; shift
  if "$@"; then echo "ok: $what"; else echo "FAILED: $what" >&2; failures=$((failures + 1)); fi
}
fatal() { echo "FAILED: $*" >&2; exit 1; }
finish() {
  status=$?
  bash "$ROOT/scripts/demo.sh" down >/dev/null 2>&1 || true
  exit "$status"
}
trap finish EXIT

# --- 1 ------------------------------------------------------------------------------------------
[ ! -e "$DEMO_DIR/pid" ] || fatal "$DEMO_DIR already holds a demo"
t0=$SECONDS
bash "$ROOT/scripts/demo.sh" --non-interactive
first=$(( SECONDS - t0 ))
# shellcheck disable=SC1091
. "$DEMO_DIR/env"
k() { "$KUBECTL" --kubeconfig "$DEMO_DIR/kubeconfig" "$@"; }
pods() { k get pods -n "$NS" -l app.kubernetes.io/name=image-builder -o "jsonpath=$1"; }

# --- 2 ------------------------------------------------------------------------------------------
check "two operator replicas Ready (probes passing)" \
  test "$(pods '{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c True)" = 2
pod=$(pods '{.items[0].metadata.name}')
field() { k get pod "$pod" -n "$NS" -o "jsonpath=$1"; }
check "runs as the image-builder ServiceAccount" test "$(field '{.spec.serviceAccountName}')" = image-builder
check "non-root (uid 65532)" test "$(field '{.spec.securityContext.runAsNonRoot} {.spec.securityContext.runAsUser}')" = "true 65532"
check "seccomp RuntimeDefault" test "$(field '{.spec.securityContext.seccompProfile.type}')" = RuntimeDefault
check "read-only root filesystem, no privilege escalation" \
  test "$(field '{.spec.containers[0].securityContext.readOnlyRootFilesystem} {.spec.containers[0].securityContext.allowPrivilegeEscalation}')" = "true false"
check "all capabilities dropped, none added" \
  test "$(field '{.spec.containers[0].securityContext.capabilities.drop} {.spec.containers[0].securityContext.capabilities.add}')" = '["ALL"] '
check "the service-account token is mounted" \
  sh -c "$KUBECTL --kubeconfig $DEMO_DIR/kubeconfig get pod $pod -n $NS -o jsonpath='{.spec.containers[0].volumeMounts[*].mountPath}' | grep -q /var/run/secrets/kubernetes.io/serviceaccount"
inside=$(k exec -n "$NS" "$pod" -- sh -c 'id -u; grep CapEff /proc/1/status; touch /probe 2>&1 || true')
check "inside the Pod: uid 65532, no effective capabilities, / read-only: $(echo $inside)" \
  sh -c 'set -- $0; [ "$1" = 65532 ] && [ "$3" = 0000000000000000 ] && echo "$0" | grep -q "Read-only file system"' "$inside"
logs=$(k logs -n "$NS" -l app.kubernetes.io/name=image-builder --tail=-1 --prefix)
check "in-cluster configuration (the service account's token)" grep -q 'in-cluster service account' <<<"$logs"
check "no request refused by RBAC (no 403 / forbidden in the operator logs)" bash -c '! grep -Eiq "forbidden|\"code\":403| 403 " <<<"$0"' "$logs"

# --- 3 ------------------------------------------------------------------------------------------
spec=failover
cat <<EOF | k apply -f - >/dev/null
apiVersion: primehub.io/v1alpha1
kind: ImageSpec
metadata: {name: $spec, namespace: $NS}
spec:
  baseImage: $POD_REGISTRY/harness/base:latest
  packages: {apt: [tree], pip: ["six==1.16.0"]}
  env: [{name: FAILOVER, value: "survived a leader change"}]
EOF
job=""
for _ in $(seq 300); do
  job=$(k get imagespec "$spec" -n "$NS" -o 'jsonpath={.status.jobName}' 2>/dev/null || true)
  [ -z "$job" ] || break; sleep 1
done
[ -n "$job" ] || fatal "no build Job for $spec within 5 minutes"
# The build runs in the Pod's init container (buildah's isolated build; the Pod is Pending then)
# and the `build` container only hands the result back, so "during the build" is: some container
# of the build Pod has started and the Pod has not finished.
phase=""; started=""
for _ in $(seq 300); do
  state=$(k get pods -n "$NS" -l "job-name=$job" -o 'jsonpath={.items[0].status.phase} {.items[0].status.initContainerStatuses[*].state.running.startedAt}{.items[0].status.containerStatuses[*].state.running.startedAt}' 2>/dev/null || true)
  phase=${state%% *}; started=${state#"$phase"}; started=${started# }
  case "$phase" in Succeeded|Failed) break ;; esac
  [ -z "$started" ] || break; sleep 1
done
[ -n "$started" ] || fatal "no container of the build Pod of $job running within 5 minutes (Pod phase: ${phase:-no Pod})"
holder=$(k get lease image-builder -n "$NS" -o 'jsonpath={.spec.holderIdentity}')
lease_seconds=$(k get lease image-builder -n "$NS" -o 'jsonpath={.spec.leaseDurationSeconds}')
leader_pod=${holder%%_*}
deleted_at=$(date +%s.%N)
k delete pod "$leader_pod" -n "$NS" --wait=false >/dev/null
echo "deleted the leader's Pod $leader_pod during build $job (lease duration ${lease_seconds}s)"
new_holder=""; handover=""
for _ in $(seq 600); do
  new_holder=$(k get lease image-builder -n "$NS" -o 'jsonpath={.spec.holderIdentity}' 2>/dev/null || true)
  if [ -n "$new_holder" ] && [ "${new_holder%%_*}" != "$leader_pod" ]; then
    handover=$(awk -v a="$(date +%s.%N)" -v b="$deleted_at" 'BEGIN{printf "%.1f", a-b}'); break
  fi
  sleep 0.2
done
[ -n "$handover" ] || fatal "no other replica took the Lease within 2 minutes (holder: ${new_holder:-none})"
# acquireTime is written by the new leader when it took the Lease (microseconds, the apiserver's
# machine's clock, which is this machine's).
acquired=$(k get lease image-builder -n "$NS" -o 'jsonpath={.spec.acquireTime}')
acquired_after=$(awk -v a="$(date -d "$acquired" +%s.%N)" -v b="$deleted_at" 'BEGIN{printf "%.1f", a-b}')
echo "handed over to ${new_holder%%_*}: Lease acquired ${acquired_after}s after the delete (seen after ${handover}s)"
check "handover within the lease duration (${lease_seconds}s)" \
  awk -v a="$acquired_after" -v l="$lease_seconds" 'BEGIN{exit !(a <= l)}'
ready=""
for _ in $(seq 900); do
  ready=$(k get imagespec "$spec" -n "$NS" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status} {.status.conditions[?(@.type=="Stalled")].status}')
  case "$ready" in "True "*|*" True") break ;; esac
  sleep 2
done
check "the build survived the leader change: Ready" test "${ready%% *}" = True
jobs=$(k get jobs -n "$NS" -l "imagespecs.primehub.io/name=$spec" -o 'jsonpath={.items[*].metadata.name}')
check "exactly one Job for the hash ($job): $jobs" test "$jobs" = "$job"
records=$(k get imagespecjobs.primehub.io -n "$NS" -l "imagespecs.primehub.io/name=$spec" -o 'jsonpath={.items[*].metadata.name}')
check "exactly one ImageSpecJob record: $records" test "$records" = "$job"
builds=$(k get imagespec "$spec" -n "$NS" -o 'jsonpath={.status.builds[*].jobName}')
check "one build in the history: $builds" test "$builds" = "$job"
k rollout status deployment/image-builder -n "$NS" --timeout=300s >/dev/null
replicas=""
for _ in $(seq 120); do  # the deleted Pod may still be terminating
  replicas=$(pods '{range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status} {end}')
  [ "$(echo "$replicas" | wc -w)" = 2 ] && [ "$(echo "$replicas" | grep -o '=True' | wc -l)" = 2 ] && break
  sleep 1
done
check "two Ready replicas again after the delete: $replicas" \
  sh -c '[ "$(echo "$0" | wc -w)" = 2 ] && [ "$(echo "$0" | grep -o "=True" | wc -l)" = 2 ]' "$replicas"

# --- 4 ------------------------------------------------------------------------------------------
t0=$SECONDS
bash "$ROOT/scripts/demo.sh" --non-interactive >"$DEMO_DIR/second-run.log" 2>&1 || { cat "$DEMO_DIR/second-run.log"; fatal "the second demo run failed"; }
second=$(( SECONDS - t0 ))
check "the second run reused the cluster" grep -q "reusing the running cluster" "$DEMO_DIR/second-run.log"
check "the second run reused the operator image" grep -q "reusing .*image-builder/operator" "$DEMO_DIR/second-run.log"
check "the second run built nothing (no new Job)" \
  test "$(k get jobs -n "$NS" -l imagespecs.primehub.io/name=demo-tools -o name | wc -l)" = 1

# --- 5 ------------------------------------------------------------------------------------------
cluster_pid=$(cat "$DEMO_DIR/pid")
bash "$ROOT/scripts/demo.sh" down
check "local-cluster (pid $cluster_pid) stopped" sh -c "! kill -0 $cluster_pid 2>/dev/null"
check "the demo directory is gone" test ! -e "$DEMO_DIR"
check "the node tier's directory is gone" test ! -e "$CLUSTER_DIR"
trap - EXIT

echo "demo timings: first run ${first}s, second run ${second}s"
[ "$failures" = 0 ] || { echo "$failures check(s) failed" >&2; exit 1; }
echo "demo test passed"
