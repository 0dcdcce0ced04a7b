#!/usr/bin/env bash
# `make up`: the whole stack in containers, with the demo catalog and accounts.
# Writes .env with fresh random secrets if there is none (never overwrites one), refuses
# missing or placeholder secrets with one line naming the variable, builds, migrates once
# (one-shot services), seeds, waits until every service is healthy, and prints where it is.
set -euo pipefail
cd "$(dirname "$0")/.."
ENV_FILE=.env
SECRETS=(POSTGRES_PASSWORD RABBITMQ_PASSWORD IDENTITY_SECRET JWT_SECRET METRICS_TOKEN GRAFANA_ADMIN_PASSWORD)
# Secrets newer than some .env files: generated into an existing .env that lacks them (none of
# them protects stored data, so a fresh one is harmless; the others are never made up).
ADDED_LATER=(METRICS_TOKEN GRAFANA_ADMIN_PASSWORD)

fail() { echo "error: $*" >&2; exit 1; }
random_secret() { python3 -c 'import secrets; print(secrets.token_hex(32))'; }

command -v docker >/dev/null || fail "make up needs Docker (docker compose v2); make run needs neither"
docker compose version >/dev/null 2>&1 || fail "make up needs Compose v2 (the 'docker compose' plugin)"
docker info >/dev/null 2>&1 || fail "the Docker daemon does not answer (is it started? may this user use it?)"

if [ ! -f "$ENV_FILE" ]; then
  {
    echo "# Written by make up on $(date -u +%Y-%m-%dT%H:%MZ): this stack's secrets. Keep it out of git."
    for name in "${SECRETS[@]}"; do
      echo "$name=$(random_secret)"
    done
    echo "DEMO_PASSWORD=bookstore-demo"
    echo "GATEWAY_BIND=127.0.0.1"
    echo "GATEWAY_PORT=18000"
  } > "$ENV_FILE"
  chmod 600 "$ENV_FILE"
  echo "wrote $ENV_FILE with fresh random secrets"
else
  for name in "${ADDED_LATER[@]}"; do
    if [ -z "${!name:-}" ] && ! grep -qE "^$name=" "$ENV_FILE"; then
      [ -z "$(tail -c 1 "$ENV_FILE")" ] || echo >> "$ENV_FILE"
      echo "$name=$(random_secret)" >> "$ENV_FILE"
      echo "added a fresh random $name to $ENV_FILE"
    fi
  done
fi

value_of() { grep -E "^$1=" "$ENV_FILE" | tail -n 1 | cut -d= -f2- || true; }
for name in "${SECRETS[@]}"; do
  value=${!name:-$(value_of "$name")}
  [ -n "$value" ] || fail "$ENV_FILE: $name is missing (see deploy/compose.env.example)"
  case "$value" in change-me*) fail "$ENV_FILE: $name is still the placeholder: set a real secret" ;; esac
done

port=${GATEWAY_PORT:-$(value_of GATEWAY_PORT)}
port=${port:-18000}
bind=${GATEWAY_BIND:-$(value_of GATEWAY_BIND)}
bind=${bind:-127.0.0.1}
demo=${DEMO_PASSWORD:-$(value_of DEMO_PASSWORD)}
demo=${demo:-bookstore-demo}

echo "building the images and starting the stack (a few minutes the first time) ..."
docker compose up --build --detach --wait --wait-timeout 300 "$@"
echo "loading the demo catalog and accounts ..."
docker compose --profile demo run --rm --no-deps demo-catalog
docker compose --profile demo run --rm --no-deps demo-users
api="http://${bind}:${port}"
cat <<INFO

The bookstore is up (containers; make down stops them, keeping the data volumes):
  API            $api/api/books
  API docs       $api/docs
  health         $api/health/ready
  try it         API=$api, then the README's "Try it" requests
  demo logins    admin@bookstore.local, staff@bookstore.local, customer@bookstore.local
                 password: $demo
  mail           docker compose exec mail-sink ls /tmp/mail   (the sink keeps every message)
INFO
