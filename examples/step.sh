#!/bin/sh
# step.sh LOG CMD...: run one pipeline step with its messages (progress, warnings) in LOG, and print one line
# when it starts and one when it ends, with its time; on failure, the end of LOG and CMD's exit status.
# The lines stay readable when `make -j` runs several steps at once.
log=$1; shift
name=$(basename "$log" .log)
mkdir -p "$(dirname "$log")"
start=$(date +%s)
echo "start $name" >&2
if "$@" 2>"$log"; then
  echo "done  $name in $(( $(date +%s) - start )) s: $(tail -n 1 "$log")" >&2
else
  status=$?
  tail -n 5 "$log" >&2
  echo "FAILED $name after $(( $(date +%s) - start )) s (exit $status); its messages: $log" >&2
  exit $status
fi
