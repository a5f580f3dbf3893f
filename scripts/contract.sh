#!/usr/bin/env bash
# The API contract, checked against the running service (scripts/test.sh runs this after
# `cargo test`). It starts the `agent-portal` binary (embedded default, rate limits raised),
# signs in with curl as Acme's admin, fetches the served OpenAPI document and
#   1. validates it with openapi-spec-validator (OpenAPI 3.1),
#   2. generates a TypeScript client's types from it with openapi-typescript and type-checks
#      real responses of the service against them (`tsc --noEmit --strict`): every 2xx body a
#      client uses and the error body, captured with curl as typed constants,
#   3. runs schemathesis with every check, signed in (session cookie and CSRF header), for a
#      bounded number of examples per operation (scripts/contract/schemathesis.toml).
# Exits non-zero on any problem. The Python and Node tools are installed, pinned
# (scripts/contract/requirements.txt, package-lock.json), into target/tools on first use, as
# scripts/test.sh installs redis-server.
#
# Environment: CONTRACT_MAX_EXAMPLES (schemathesis examples per operation, default 50),
# CONTRACT_SEED (schemathesis seed, default 1: a fixed seed keeps the gate repeatable; set another
# to explore),
# CONTRACT_TOOLS_DIR (default target/tools), CARGO_TARGET_DIR (where the binary is built).
set -euo pipefail
cd "$(dirname "$0")/.."

here=scripts/contract
tools="${CONTRACT_TOOLS_DIR:-target/tools}"
max_examples="${CONTRACT_MAX_EXAMPLES:-50}"
seed="${CONTRACT_SEED:-1}"
mkdir -p "$tools"
tools="$(cd "$tools" && pwd)"

# ---- tools ----------------------------------------------------------------------------
venv="$tools/contract-venv"
if ! cmp -s "$here/requirements.txt" "$venv/requirements.txt" 2>/dev/null; then
  echo "contract: installing $(grep -cv '^#' "$here/requirements.txt") pinned Python packages into $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps -r "$here/requirements.txt"
  cp "$here/requirements.txt" "$venv/requirements.txt"
fi
node_dir="$tools/contract-node"
if ! cmp -s "$here/package-lock.json" "$node_dir/package-lock.json" 2>/dev/null ||
  [ ! -x "$node_dir/node_modules/.bin/tsc" ]; then
  echo "contract: installing openapi-typescript and typescript (pinned) into $node_dir" >&2
  rm -rf "$node_dir"
  mkdir -p "$node_dir"
  cp "$here/package.json" "$here/package-lock.json" "$node_dir/"
  (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi

# ---- the service ----------------------------------------------------------------------
cargo build --quiet --locked -p portal-server --bin agent-portal
bin="${CARGO_TARGET_DIR:-target}/debug/agent-portal"
work="$(mktemp -d)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# Port 0: the service picks a free port and logs it.
env -i PATH="$PATH" PORT=0 LOG_LEVEL=info LOG_FORMAT=json \
  RATE_LIMIT_API_MAX=1000000 RATE_LIMIT_AUTH_MAX=1000000 RATE_LIMIT_ONBOARDING_MAX=1000000 \
  "$bin" >"$work/service.log" 2>&1 &
server_pid=$!
port=""
for _ in $(seq 1 100); do
  port="$(sed -n 's/.*"message":"agent-portal listening".*"port":\([0-9]*\).*/\1/p' "$work/service.log" | head -1)"
  [ -n "$port" ] && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/service.log" >&2; exit 1; }
  sleep 0.1
done
[ -n "$port" ] || { echo "contract: the service did not start" >&2; cat "$work/service.log" >&2; exit 1; }
base="http://localhost:$port"
api="$base/api/v1"

# Signs `$1` in with its own cookie jar `$2` (login → simulated Genesys → callback).
sign_in() {
  local jar=$2 next
  hop() { curl -sS -c "$jar" -b "$jar" -o /dev/null -w '%{redirect_url}' "$1"; }
  next="$(hop "$api/auth/login?login_hint=$1")"
  next="$(hop "$next")"
  hop "$next" >/dev/null
  grep -q sessionId "$jar" || { echo "contract: $1 could not sign in" >&2; exit 1; }
}
json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

admin_jar="$work/admin.jar"
sign_in admin@acme.example "$admin_jar"
admin_csrf="$(curl -sS -b "$admin_jar" "$api/auth/me" | json_field '["csrfToken"]')"
curl -sS "$api/openapi.json" -o "$work/openapi.json"

# ---- 1. the document is valid OpenAPI 3.1 ------------------------------------------------
echo "contract: openapi-spec-validator"
"$venv/bin/openapi-spec-validator" "$work/openapi.json"

# ---- 2. a generated TypeScript client type-checks against real responses ------------------
echo "contract: openapi-typescript + tsc --strict against real responses"
"$node_dir/node_modules/.bin/openapi-typescript" "$work/openapi.json" -o "$work/api.d.ts" >/dev/null
ts="$work/responses.ts"
echo 'import type { paths } from "./api";' >"$ts"
# capture NAME TEMPLATE METHOD STATUS JAR CSRF URL [curl options...]: the response's status
# must be STATUS, and its body becomes a constant of the generated type of that answer.
capture() {
  local name=$1 template=$2 method=$3 status=$4 jar=$5 csrf=$6 url=$7
  shift 7
  local args=(-sS -w '\n%{http_code}' -X "${method^^}")
  [ -n "$jar" ] && args+=(-b "$jar" -c "$jar")
  [ -n "$csrf" ] && args+=(-H "X-CSRF-Token: $csrf")
  local out code body
  out="$(curl "${args[@]}" "$@" "$url")"
  code="${out##*$'\n'}"
  body="${out%$'\n'*}"
  if [ "$code" != "$status" ]; then
    echo "contract: $name: $method $url answered $code, expected $status: $body" >&2
    exit 1
  fi
  printf 'export const %s: paths["%s"]["%s"]["responses"][%s]["content"]["application/json"] = %s;\n' \
    "$name" "$template" "$method" "$status" "$body" >>"$ts"
}
as_admin() { capture "$1" "$2" "$3" "$4" "$admin_jar" "$admin_csrf" "${@:5}"; }
json=(-H 'Content-Type: application/json')

capture root / get 200 "" "" "$base/"
capture health /health get 200 "" "" "$base/health"
capture livez /livez get 200 "" "" "$base/livez"
capture readyz /readyz get 200 "" "" "$base/readyz"
as_admin me /api/v1/auth/me get 200 "$api/auth/me"
as_admin statsToday /api/v1/dashboard/stats get 200 "$api/dashboard/stats"
as_admin statsMonth /api/v1/dashboard/stats get 200 "$api/dashboard/stats?period=month"
today="$(date -u +%F)"
month_ago="$(date -u -d '29 days ago' +%F)"
as_admin range /api/v1/dashboard/metrics/range get 200 \
  "$api/dashboard/metrics/range?startDate=$month_ago&endDate=$today"
as_admin threads /api/v1/history/threads get 200 "$api/history/threads?limit=5&status=active"
conversation="$(curl -sS -b "$admin_jar" "$api/history/threads?limit=1&status=active" | json_field '["data"][0]["conversation_id"]')"
as_admin messages '/api/v1/history/threads/{id}/messages' get 200 \
  "$api/history/threads/$conversation/messages"
as_admin sent /api/v1/widget/send post 200 "$api/widget/send" "${json[@]}" \
  -H 'Idempotency-Key: contract-1' \
  -d "{\"conversationId\":\"$conversation\",\"text\":\"Hello from the contract check\",\"mediaUrl\":\"https://cdn.example.com/a.png\"}"
as_admin cacheRefreshed /api/v1/dashboard/refresh post 200 "$api/dashboard/refresh"
as_admin sessionRefreshed /api/v1/auth/refresh post 200 "$api/auth/refresh"
as_admin ticket /api/v1/auth/ws-ticket post 200 "$api/auth/ws-ticket"
as_admin sessions /api/v1/auth/sessions get 200 "$api/auth/sessions"
as_admin audit /api/v1/audit get 200 "$api/audit?limit=5"
as_admin auditVerified /api/v1/audit/verify get 200 "$api/audit/verify"
# Error answers: the one error body, with details where the code has some.
capture noSession /api/v1/auth/me get 401 "" "" "$api/auth/me"
as_admin notFound '/api/v1/history/threads/{id}/messages' get 404 \
  "$api/history/threads/00000000-0000-4000-8000-000000000000/messages"
as_admin badQuery /api/v1/history/threads get 400 "$api/history/threads?page=0&limit=abc"
as_admin notJson /api/v1/widget/send post 415 "$api/widget/send" -H 'Content-Type: text/plain' -d 'hi'
as_admin otherTenant /api/v1/dashboard/refresh post 403 "$api/dashboard/refresh" "${json[@]}" \
  -d '{"tenantId":"2f9a61d8-5b7c-4e21-9d03-6a8b4f0910be"}'
# The onboarding wizard, by the demo user without a tenant.
new_jar="$work/new.jar"
sign_in new@newco.example "$new_jar"
new_csrf="$(curl -sS -b "$new_jar" "$api/auth/me" | json_field '["csrfToken"]')"
as_new() { capture "$1" "$2" "$3" "$4" "$new_jar" "$new_csrf" "${@:5}"; }
as_new notYet /api/v1/onboarding/step2 post 400 "$api/onboarding/step2" "${json[@]}" \
  -d '{"clientId":"newco-client-0001","clientSecret":"genesys-secret-0001","region":"eu-west-1"}'
as_new step1 /api/v1/onboarding/step1 post 200 "$api/onboarding/step1" "${json[@]}" \
  -d '{"companyName":"NewCo Ltd","region":"eu-west-1","contactEmail":"new@newco.example"}'
tenant="$(curl -sS -b "$new_jar" "$api/auth/me" | json_field '["tenantId"]')"
as_new step2 /api/v1/onboarding/step2 post 200 "$api/onboarding/step2" "${json[@]}" \
  -d '{"clientId":"newco-client-0001","clientSecret":"genesys-secret-0001","region":"eu-west-1"}'
as_new step3 /api/v1/onboarding/step3 post 200 "$api/onboarding/step3" "${json[@]}" \
  -d '{"phoneNumberId":"1098765432","systemUserToken":"EAAG-system-user-token-0001"}'
as_new status '/api/v1/onboarding/status/{tenantId}' get 200 "$api/onboarding/status/$tenant"
as_new validated /api/v1/onboarding/validate get 200 "$api/onboarding/validate?tenantId=$tenant"
as_new completed /api/v1/onboarding/complete post 200 "$api/onboarding/complete"
as_new loggedOut /api/v1/auth/logout post 200 "$api/auth/logout"
cat >"$work/tsconfig.json" <<'EOF'
{
  "compilerOptions": {
    "strict": true,
    "noEmit": true,
    "target": "ES2022",
    "module": "ESNext",
    "moduleResolution": "Bundler",
    "exactOptionalPropertyTypes": true
  },
  "files": ["responses.ts"]
}
EOF
"$node_dir/node_modules/.bin/tsc" -p "$work/tsconfig.json"
echo "contract: $(grep -c '^export const' "$ts") real responses type-check"

# ---- 3. schemathesis ----------------------------------------------------------------------
echo "contract: schemathesis (all checks, $max_examples examples per operation)"
PORTAL_SESSION="$(awk '$6 == "sessionId" { print $7 }' "$admin_jar")" \
PORTAL_CSRF="$admin_csrf" \
  "$venv/bin/schemathesis" --config-file "$here/schemathesis.toml" run "$api/openapi.json" \
  --url "$base" --checks all --max-examples "$max_examples" --workers 1 \
  --exclude-path /api/v1/auth/logout --exclude-path /api/v1/auth/logout-all --seed "$seed" --output-truncate true
