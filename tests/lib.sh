# lib.sh — what the shell test scripts share; sourced right after `set -u`:
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# ok GOT WANT WHAT   counts a check, printing "FAIL: WHAT (got ..., want ...)" when GOT != WANT
# skip REASON...     prints why and exits 77 (ctest's SKIP_RETURN_CODE)
# finish             prints the counts and exits 0 only when no check failed
pass=0 fail=0
ok() { if [ "$1" = "$2" ]; then pass=$((pass+1)); else fail=$((fail+1)); echo "FAIL: $3 (got '$1', want '$2')"; fi; }
skip() { echo "skip: $*"; exit 77; }
finish() { echo "$pass passed, $fail failed"; [ "$fail" = 0 ]; exit $?; }
