#!/usr/bin/env bash
# Runs the older Celery stacks' pytest subsets side by side, each in its .venv-STACK,
# then prints each one's output in the order given; exits with the last failure's code.
#
# usage: run_stacks.sh STACK=TESTS...   (TESTS: pytest arguments split on whitespace,
#                                        never globbed: ids with [params] stay as they are)
# env:   BOUNDARY_TEST_REDIS_URL (the Redis the tests share, each under its own prefix)
#
# Side by side, not one after another: the subsets mostly wait (for workers to start, for
# leases to lapse, for a Redis to restart), so three of them on 2 cores take about as
# long as the longest alone.
set -u -f

logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT
names=()
pids=()
for spec in "$@"; do
    stack="${spec%%=*}"
    read -r -a tests <<<"${spec#*=}"
    echo "make test: subset on the $stack stack (${#tests[@]} test paths), side by side"
    ".venv-$stack/bin/python" -m pytest -q -p no:cacheprovider "${tests[@]}" \
        >"$logs/$stack.log" 2>&1 &
    names+=("$stack")
    pids+=("$!")
done

rc=0
for i in "${!pids[@]}"; do
    src=0
    wait "${pids[$i]}" || src=$?
    echo "make test: --- the ${names[$i]} stack's subset ---"
    cat "$logs/${names[$i]}.log"
    if [ "$src" -eq 5 ]; then echo "make test: pytest collected no tests" >&2; fi
    if [ "$src" -ne 0 ]; then
        echo "make test: the ${names[$i]} stack failed ($src)" >&2
        rc=$src
    fi
done
exit "$rc"
