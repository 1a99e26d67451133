# Sourced by bench/*_quality.sh and bench/recbole_reference.sh. settings VAR...: the environment settings of a command
# line. write_results TABLE_FILE [EXTRA_FILE] writes $RESULTS (docs/results/<name>.md) as a header (script, date,
# $PROTOCOL, $COMMAND_LINE, commit) and the table, atomically. $ROOT is the repository root. step OUTPUT CMD...: an
# incremental step, timed into $OUT/times.tsv.
write_results() {  # write_results TABLE_FILE [EXTRA_FILE]: docs/results/<name>.md = a header + the table, atomically
  local tmp="$RESULTS.tmp.$$" commit
  commit=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || true)
  mkdir -p "$(dirname "$RESULTS")"
  {
    echo "# Results of bench/$(basename "$0"), $(date -u +%Y-%m-%d)"
    echo
    echo "Written by \`bench/$(basename "$0")\` on every run; do not edit."
    echo
    echo "Protocol: $PROTOCOL"
    echo
    echo "Command, from the repository root${commit:+ at commit $commit}: \`$COMMAND_LINE\`"
    echo
    cat "$1"
    if [ $# -ge 2 ] && [ -s "$2" ]; then
      echo
      cat "$2"
    fi
  } > "$tmp"
  mv "$tmp" "$RESULTS"
  echo "wrote $RESULTS" >&2
}

settings() {  # settings VAR...: "VAR=value " for each VAR set in the environment, shell-quoted
  local v s=""
  for v in "$@"; do [ -n "${!v+x}" ] && s+="$v=$(printf %q "${!v}") "; done
  printf '%s' "$s"
}

step() {  # step OUTPUT command...: run unless OUTPUT exists, with its wall time in OUT/times.tsv
  local output=$1; shift
  [ -e "$output" ] && return 0
  local t0=$SECONDS
  echo "+ $*" >&2
  "$@"
  echo -e "$(basename "$output")\t$((SECONDS - t0))" >> "$OUT/times.tsv"
}
