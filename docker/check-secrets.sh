#!/bin/sh
# The check-secrets service: refuse to start the compose stack on missing or example secrets.
# Every other service waits for it to exit 0 (depends_on: service_completed_successfully), so
# `docker compose up` on an unedited .env (or none: the compose defaults are the example
# values) starts nothing; `docker compose logs check-secrets` shows one line naming the
# variable. Values are never printed.
#
# Checked: POSTGRES_PASSWORD, MQTT_BRIDGE_PASSWORD, GRAFANA_DB_PASSWORD and
# GRAFANA_ADMIN_PASSWORD must be set and not an example value (anything containing
# "change-me", or admin, password, changeme, secret, civicpulse, postgres);
# MQTT_DEVICE_PASSWORD (the simulator's account) may be empty, else the same rules. The
# logins inside the URLs must be those accounts': CIVICPULSE_DATABASE_URL = POSTGRES_USER +
# POSTGRES_PASSWORD, CIVICPULSE_MQTT_URL = MQTT_BRIDGE_USERNAME + MQTT_BRIDGE_PASSWORD and,
# when the simulator's account is on, SIM_MQTT_URL = MQTT_DEVICE_USERNAME + MQTT_DEVICE_PASSWORD
# (%-escapes in a URL are decoded first). GRAFANA_DB_PASSWORD must differ from POSTGRES_PASSWORD.
set -u

refuse() {
    echo "check-secrets: refusing to start: $*" >&2
    exit 1
}

# secret NAME [optional]: NAME is set (unless optional) and not an example value.
secret() {
    eval "value=\${$1-}"
    if [ -z "$value" ]; then
        [ "${2-}" = optional ] && return 0
        refuse "$1 is empty; set it in .env (e.g. to the output of: openssl rand -hex 24)"
    fi
    case "$value" in
        *change-me* | admin | password | changeme | secret | civicpulse | postgres)
            refuse "$1 is an example value (.env.example); set a secret of your own in .env (e.g. openssl rand -hex 24)"
            ;;
    esac
    return 0
}

# urldecode TEXT: TEXT with its %XX escapes decoded.
urldecode() {
    printf '%s\n' "$1" | LC_ALL=C awk '
        BEGIN { for (i = 0; i < 256; i++) hex[sprintf("%02x", i)] = i }
        {
            s = $0; out = ""
            while (match(s, /%[0-9A-Fa-f][0-9A-Fa-f]/)) {
                out = out substr(s, 1, RSTART - 1) sprintf("%c", hex[tolower(substr(s, RSTART + 1, 2))])
                s = substr(s, RSTART + 3)
            }
            printf "%s", out s
        }'
}

# login URL_NAME USER_NAME PASSWORD_NAME: the user and password in URL_NAME's URL are those.
login() {
    eval "url=\${$1-} user=\${$2-} password=\${$3-}"
    authority=${url#*://}
    authority=${authority%%/*}
    case "$authority" in
        *@*) userinfo=${authority%@*} ;;
        *) userinfo="" ;;
    esac
    url_user=${userinfo%%:*}
    case "$userinfo" in
        *:*) url_password=${userinfo#*:} ;;
        *) url_password="" ;;
    esac
    if [ "$(urldecode "$url_user")" != "$user" ] ||
        [ "$(urldecode "$url_password")" != "$password" ]; then
        refuse "$1 must log in as $2 with $3 (mqtt://USER:PASSWORD@host or postgresql://USER:PASSWORD@host); make them match in .env"
    fi
}

secret POSTGRES_PASSWORD
secret MQTT_BRIDGE_PASSWORD
secret GRAFANA_DB_PASSWORD
secret GRAFANA_ADMIN_PASSWORD
secret MQTT_DEVICE_PASSWORD optional

login CIVICPULSE_DATABASE_URL POSTGRES_USER POSTGRES_PASSWORD
login CIVICPULSE_MQTT_URL MQTT_BRIDGE_USERNAME MQTT_BRIDGE_PASSWORD
if [ -n "${MQTT_DEVICE_PASSWORD-}" ]; then
    if [ "${MQTT_DEVICE_USERNAME-}" = "${MQTT_BRIDGE_USERNAME-}" ]; then
        refuse "MQTT_DEVICE_USERNAME and MQTT_BRIDGE_USERNAME must differ"
    fi
    login SIM_MQTT_URL MQTT_DEVICE_USERNAME MQTT_DEVICE_PASSWORD
fi
if [ "$GRAFANA_DB_PASSWORD" = "$POSTGRES_PASSWORD" ]; then
    refuse "GRAFANA_DB_PASSWORD must differ from POSTGRES_PASSWORD (Grafana holds it; the owner's would give it the whole database)"
fi
echo "check-secrets: the secrets are set and none is an example value" >&2
exit 0
