#!/bin/sh
# Conecta's BinAuth script for openNDS (POSIX sh: OpenWrt's busybox ash, Debian's dash).
#
# openNDS runs it when a client asks to be let in (auth_client), is let in (client_auth, ndsctl_auth)
# and leaves (client_deauth, idle_deauth, timeout_deauth, downquota_deauth, upquota_deauth,
# ndsctl_deauth, shutdown_deauth). It asks Conecta, or tells it, over HTTP(S):
#   auth_client: may this client in, and with which session length, rates and quotas? Conecta says
#     yes only to a token it gave this device after the person registered or signed in; otherwise,
#     or when Conecta cannot be reached, the client stays out (exit 1).
#   the others: the session began or ended, with openNDS's byte counts. A report that cannot be sent
#     waits in $SPOOL and goes with the next one; Conecta counts a report it gets twice once.
# Every request is signed with HMAC-SHA256 under the gateway's faskey (needs `openssl`; OpenWrt:
# opkg install openssl-util) and names the gateway by its GatewayName.
#
# Install: copy to /usr/lib/opennds/conecta-binauth.sh, chmod 755, set openNDS's option binauth to
# that path, and write the portal's URL in /etc/conecta-opennds.conf:
#   CONECTA_URL=https://wifi.example.gob.mx
# (without it: http://fasremoteip:fasport, the FAS itself).

CONF=${CONECTA_CONF:-/etc/conecta-opennds.conf}
SPOOL=${CONECTA_SPOOL:-/tmp/conecta-binauth.spool}
[ -r "$CONF" ] && . "$CONF"

option() {   # an openNDS option, from UCI (OpenWrt) or opennds.conf
	if [ -e /etc/config/opennds ]; then
		uci -q get "opennds.@opennds[0].$1"
	else
		awk -v k="$1" 'tolower($1) == tolower(k) { sub(/^[ \t]*[^ \t]+[ \t]+/, ""); print; exit }' \
			/etc/opennds/opennds.conf
	fi
}

urlencode() {   # every byte as %XX: safe whatever the value holds
	printf '%s' "$1" | od -An -v -tx1 | tr -s ' \n' '  ' | sed 's/ *$//; s/^ *//; s/ /%/g; s/^\(.\)/%\1/'
}

FASKEY=${FASKEY:-$(option faskey)}
GATEWAY=${GATEWAYNAME:-$(option gatewayname)}
URL=${CONECTA_URL:-http://$(option fasremoteip):$(option fasport)}

send() {   # POST one signed report; prints Conecta's answer, fails when there is none
	sig=$(printf '%s' "$1" | openssl dgst -sha256 -hmac "$FASKEY" | sed 's/^.*= *//')
	wget -q -T 5 -O - --post-data="$1&sig=$sig" "$URL/opennds/binauth" 2>/dev/null
}

flush_spool() {   # reports that could not be sent before, oldest first
	[ -s "$SPOOL" ] || return 0
	mv "$SPOOL" "$SPOOL.$$" 2>/dev/null || return 0
	while IFS= read -r line; do
		case "$(send "$line")" in
			OK*) ;;
			*) printf '%s\n' "$line" >> "$SPOOL" ;;
		esac
	done < "$SPOOL.$$"
	rm -f "$SPOOL.$$"
}

method=$1
mac=$2
base="gw=$(urlencode "$GATEWAY")&method=$method&mac=$(urlencode "$mac")"

if [ "$method" = "auth_client" ]; then
	# $3 redir, $4 user agent, $5 client ip, $6 client token, $7 custom data
	answer=$(send "$base&ip=$(urlencode "$5")&tok=$(urlencode "$6")&ts=$(date +%s)")
	case "$answer" in
		"OK "*)
			echo "${answer#OK }"     # session seconds, upload and download kbit/s, upload and download kB
			exit 0 ;;
	esac
	echo "0 0 0 0 0"
	exit 1
fi

# $3 bytes incoming (from the Internet: the client's download), $4 bytes outgoing (its upload),
# $5 session start, $6 now (Unix seconds), $7 client token (as openNDS 9.10 calls it)
report="$base&down=$3&up=$4&start=$5&end=$6&tok=$(urlencode "$7")"
flush_spool
case "$(send "$report")" in
	OK*) ;;
	*) printf '%s\n' "$report" >> "$SPOOL" ;;
esac
echo "0 0 0 0 0"
exit 0
