#!/usr/bin/env bash
# Property-based API tests of a running order service against the spec it serves:
# schemathesis with every check, stateful phase included, as an anonymous client, a customer and
# a merchant. Bounded: SCHEMATHESIS_MAX_EXAMPLES cases per operation and phase, and at most
# SCHEMATHESIS_ROLE_TIMEOUT seconds per role.
#
#   scripts/schemathesis.sh http://127.0.0.1:3000
#
# Installs schemathesis into a venv under .stack/ on first use (python3 with venv and pip needed).
# The merchant logs in with MERCHANT_EMAIL / MERCHANT_PASSWORD (the defaults of .env.example) and
# seeds its catalogue; the customer is registered fresh. The service's login rate limits must
# allow the run (tests/e2e/schemathesis.rs, which calls this, raises them). Exit status: 0 when every role is
# clean, else 1. One worker: with several, Python 3.11's ast module fails inside hypothesis now
# and then ("AST constructor recursion depth mismatch"), an error of the tool, not of the API.
set -euo pipefail

BASE=${1:?usage: scripts/schemathesis.sh BASE_URL}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VERSION=4.32.5
VENV=${SCHEMATHESIS_VENV:-$ROOT/.stack/schemathesis-$VERSION}
MAX_EXAMPLES=${SCHEMATHESIS_MAX_EXAMPLES:-50}
ROLE_TIMEOUT=${SCHEMATHESIS_ROLE_TIMEOUT:-120}
MERCHANT_EMAIL=${MERCHANT_EMAIL:-merchant@larder.local}
MERCHANT_PASSWORD=${MERCHANT_PASSWORD:-merchant-password}

say() { printf '==> %s\n' "$*" >&2; }

if [[ ! -x "$VENV/bin/schemathesis" ]]; then
    say "installing schemathesis $VERSION into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$VERSION"
fi

# POST a JSON body; prints the response body.
post() { curl -fsS -X POST "$BASE$1" -H 'content-type: application/json' "${@:3}" -d "$2"; }
token() { python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])'; }

merchant=$(post /auth/login "{\"email\": \"$MERCHANT_EMAIL\", \"password\": \"$MERCHANT_PASSWORD\"}" | token)
post /order/seed 'null' -H "authorization: Bearer $merchant" >/dev/null
customer_email="st-$(date +%s%N)@example.com"
post /auth/register "{\"email\": \"$customer_email\", \"password\": \"password-123\"}" >/dev/null
customer=$(post /auth/login "{\"email\": \"$customer_email\", \"password\": \"password-123\"}" | token)

# schemathesis writes .hypothesis/ and .schemathesis/ into the working directory.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

failed=0
for role in anonymous customer merchant; do
    auth=()
    case "$role" in
        customer) auth=(-H "Authorization: Bearer $customer") ;;
        merchant) auth=(-H "Authorization: Bearer $merchant") ;;
    esac
    say "schemathesis as $role (--checks all, all phases, $MAX_EXAMPLES examples)"
    rc=0
    timeout --kill-after=10 "$ROLE_TIMEOUT" "$VENV/bin/schemathesis" \
        --config-file "$ROOT/scripts/schemathesis.toml" \
        run "$BASE/openapi.json" --url "$BASE" "${auth[@]}" \
        --checks all --phases examples,coverage,fuzzing,stateful \
        --max-examples "$MAX_EXAMPLES" --request-timeout 10 \
        --generation-database none --no-color || rc=$?
    if ((rc != 0)); then
        say "schemathesis as $role failed (exit $rc)"
        failed=1
    fi
done
exit "$failed"
