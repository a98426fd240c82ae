#!/usr/bin/env bash
# Entrypoint of the envctl-test/postgres:<MAJOR> images (see README.md).
#
# Written for envctl; it follows the documented behaviour of the official
# `postgres` Docker image's entrypoint so that envctl can treat both alike:
#   * `docker run IMAGE -c fsync=off`   -> postgres -c fsync=off
#   * started as root: prepare PGDATA / socket dir, re-run self as postgres (999)
#   * empty PGDATA: initdb, pg_hba "host all all all <method>", a socket-only
#     temporary server running /docker-entrypoint-initdb.d/*, then stop it
#   * finally exec the command (the real, network-listening server).
set -Eeo pipefail

log() { printf '%s: %s\n' "${0##*/}" "$*"; }
die() { printf '%s: error: %s\n' "${0##*/}" "$*" >&2; exit 1; }

# VAR or VAR_FILE (Docker secrets style) -> exported VAR; VAR_FILE is dropped.
env_or_file() {
	local name="$1" default="${2:-}"
	local file_name="${name}_FILE"
	local value="${!name:-}" file="${!file_name:-}"
	if [ -n "$value" ] && [ -n "$file" ]; then
		die "both $name and $file_name are set; use only one of them"
	fi
	if [ -n "$file" ]; then
		value="$(< "$file")"
	elif [ -z "$value" ]; then
		value="$default"
	fi
	export "$name=$value"
	unset "$file_name"
}

# Options after which postgres prints something and exits: no setup needed.
wants_info_only() {
	local a
	for a in "$@"; do
		case "$a" in
			-'?' | --help | --describe-config | -V | --version) return 0 ;;
		esac
	done
	return 1
}

load_settings() {
	env_or_file POSTGRES_PASSWORD
	env_or_file POSTGRES_USER postgres
	env_or_file POSTGRES_DB "$POSTGRES_USER"
	env_or_file POSTGRES_INITDB_ARGS
	: "${POSTGRES_HOST_AUTH_METHOD:=}"
	: "${PGDATA:?PGDATA must be set}"

	HAVE_CLUSTER=
	if [ -s "$PGDATA/PG_VERSION" ]; then
		HAVE_CLUSTER=yes
	fi
}

# Runs as root or as the postgres user. Errors on chmod are tolerated: with
# `--user` and a foreign-owned mount we may not be allowed, and postgres will
# complain itself if the permissions really are wrong.
prepare_directories() {
	local uid
	uid="$(id -u)"
	mkdir -p "$PGDATA"
	chmod 0700 "$PGDATA" 2> /dev/null || :
	mkdir -p /var/run/postgresql 2> /dev/null || :
	chmod 3777 /var/run/postgresql 2> /dev/null || :
	if [ -n "${POSTGRES_INITDB_WALDIR:-}" ]; then
		mkdir -p "$POSTGRES_INITDB_WALDIR"
		[ "$uid" != 0 ] || chown -R postgres:postgres "$POSTGRES_INITDB_WALDIR"
		chmod 0700 "$POSTGRES_INITDB_WALDIR"
	fi
	if [ "$uid" = 0 ]; then
		find "$PGDATA" /var/run/postgresql \! -user postgres -exec chown postgres:postgres {} +
	fi
}

# Re-execute this script as the postgres user (uid/gid 999).
become_postgres() {
	HOME="$(getent passwd postgres | cut -d: -f6)"
	export HOME="${HOME:-/var/lib/postgresql}"
	if command -v setpriv > /dev/null; then
		exec setpriv --reuid=postgres --regid=postgres --init-groups -- "${BASH_SOURCE[0]}" "$@"
	fi
	exec gosu postgres "${BASH_SOURCE[0]}" "$@"
}

check_can_initialise() {
	if [ -z "$POSTGRES_PASSWORD" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != trust ]; then
		cat >&2 <<-'EOF'
			Error: Database is uninitialized and superuser password is not specified.
			       You must specify POSTGRES_PASSWORD to a non-empty value for the
			       superuser, e.g. "-e POSTGRES_PASSWORD=password" on "docker run".

			       Alternatively POSTGRES_HOST_AUTH_METHOD=trust allows every
			       connection without a password (not recommended).
		EOF
		exit 1
	fi
	if [ "$POSTGRES_HOST_AUTH_METHOD" = trust ]; then
		printf '%s\n' \
			'WARNING: POSTGRES_HOST_AUTH_METHOD=trust: every host may connect as any' \
			'         user without a password.' >&2
	fi
	# From 18 on PGDATA is /var/lib/postgresql/<major>/docker; refuse to start
	# a fresh cluster next to data left by an older layout.
	if [ "$PGDATA" = "/var/lib/postgresql/${PG_MAJOR}/docker" ]; then
		local d found=()
		for d in /var/lib/postgresql /var/lib/postgresql/data /var/lib/postgresql/*/docker; do
			[ ! -s "$d/PG_VERSION" ] || found+=("$d")
		done
		if [ "${#found[@]}" -gt 0 ]; then
			die "PGDATA ($PGDATA) is empty but PostgreSQL data exists in: ${found[*]} (upgrade it with pg_upgrade or mount /var/lib/postgresql instead)"
		fi
	fi
	# fail early (before initdb) if the init scripts directory is unreadable
	ls /docker-entrypoint-initdb.d/ > /dev/null
}

# initdb insists that the current uid has a passwd entry: with an arbitrary
# `docker run --user`, fake one through libnss_wrapper (for initdb only).
with_passwd_entry() {
	local uid lib
	uid="$(id -u)"
	if getent passwd "$uid" > /dev/null; then
		"$@"
		return
	fi
	for lib in /usr/lib/*/libnss_wrapper.so /usr/lib/libnss_wrapper.so; do
		[ -s "$lib" ] && break
	done
	if [ ! -s "$lib" ]; then
		"$@"
		return
	fi
	local dir rc=0
	dir="$(mktemp -d)"
	printf 'postgres:x:%s:%s:PostgreSQL:%s:/bin/false\n' "$uid" "$(id -g)" "$PGDATA" > "$dir/passwd"
	printf 'postgres:x:%s:\n' "$(id -g)" > "$dir/group"
	LD_PRELOAD="$lib" NSS_WRAPPER_PASSWD="$dir/passwd" NSS_WRAPPER_GROUP="$dir/group" "$@" || rc=$?
	rm -rf "$dir"
	return "$rc"
}

run_initdb() {
	local -a args=(--username="$POSTGRES_USER")
	local -a extra=()
	if [ -n "$POSTGRES_INITDB_ARGS" ]; then
		# shell-style splitting so quoted values keep their spaces
		eval "extra=( $POSTGRES_INITDB_ARGS )"
	fi
	if [ -n "${POSTGRES_INITDB_WALDIR:-}" ]; then
		args+=(--waldir="$POSTGRES_INITDB_WALDIR")
	fi
	if [ -n "$POSTGRES_PASSWORD" ]; then
		with_passwd_entry initdb "${args[@]}" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") "${extra[@]}"
	else
		with_passwd_entry initdb "${args[@]}" "${extra[@]}"
	fi
}

# "host all all all <method>" for non-socket connections. Without an explicit
# method use the server's password_encryption (scram-sha-256 by default).
append_host_rule() {
	local method="$POSTGRES_HOST_AUTH_METHOD"
	if [ -z "$method" ]; then
		method="$(postgres -C password_encryption "$@" 2> /dev/null)" || method=
		: "${method:=scram-sha-256}"
	fi
	{
		printf '\n'
		if [ "$method" = trust ]; then
			printf '# POSTGRES_HOST_AUTH_METHOD=trust: no password needed from anywhere\n'
		fi
		printf 'host all all all %s\n' "$method"
	} >> "$PGDATA/pg_hba.conf"
}

# quote for /bin/sh (pg_ctl hands -o to "sh -c")
sh_quote() {
	local a out=
	for a in "$@"; do
		out+="'${a//\'/\'\\\'\'}' "
	done
	printf '%s' "$out"
}

temp_server_start() {
	# socket-only server: nothing outside the container can connect yet
	NOTIFY_SOCKET='' PGUSER="${PGUSER:-$POSTGRES_USER}" \
		pg_ctl -D "$PGDATA" -w start \
		-o "$(sh_quote "$@" -c listen_addresses= -p "${PGPORT:-5432}")"
}

temp_server_stop() {
	PGUSER="${PGUSER:-$POSTGRES_USER}" pg_ctl -D "$PGDATA" -m fast -w stop
}

# psql against the temporary server, stopping at the first error.
psql_run() {
	local -a cmd=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc)
	[ -z "$POSTGRES_DB" ] || cmd+=(--dbname "$POSTGRES_DB")
	PGHOST='' PGHOSTADDR='' "${cmd[@]}" "$@"
}
# the official entrypoint exposes this array to sourced init scripts
# shellcheck disable=SC2034
psql=(psql_run)

create_database() {
	[ "$POSTGRES_DB" != postgres ] || return 0
	local name="$POSTGRES_DB" exists
	exists="$(POSTGRES_DB='' psql_run --dbname postgres --tuples-only --no-align \
		--set name="$name" <<< "SELECT 1 FROM pg_database WHERE datname = :'name'")"
	if [ -z "$exists" ]; then
		POSTGRES_DB='' psql_run --dbname postgres --set name="$name" <<< 'CREATE DATABASE :"name"'
	fi
}

run_init_files() {
	local f
	for f in "$@"; do
		[ -e "$f" ] || continue # unmatched glob
		case "$f" in
			*.sh)
				if [ -x "$f" ]; then
					log "running $f"
					"$f"
				else
					log "sourcing $f"
					# shellcheck disable=SC1090
					. "$f"
				fi
				;;
			*.sql) log "running $f"; psql_run -f "$f" ;;
			*.sql.gz) log "running $f"; gzip -dc "$f" | psql_run ;;
			*.sql.xz) log "running $f"; xz -dc "$f" | psql_run ;;
			*.sql.zst) log "running $f"; zstd -dcq "$f" | psql_run ;;
			*) log "ignoring $f" ;;
		esac
	done
}

main() {
	if [ "${1:0:1}" = - ]; then
		set -- postgres "$@"
	fi

	if [ "$1" = postgres ] && ! wants_info_only "$@"; then
		load_settings
		prepare_directories
		if [ "$(id -u)" = 0 ]; then
			become_postgres "$@"
		fi

		if [ -z "$HAVE_CLUSTER" ]; then
			check_can_initialise
			run_initdb
			append_host_rule "${@:2}"
			# for 'local' methods other than trust (e.g. --auth-local=scram-sha-256)
			export PGPASSWORD="${PGPASSWORD:-$POSTGRES_PASSWORD}"
			temp_server_start "${@:2}"
			create_database
			run_init_files /docker-entrypoint-initdb.d/*
			temp_server_stop
			unset PGPASSWORD
			printf '\nPostgreSQL init process complete; ready for start up.\n\n'
		else
			printf '\nPostgreSQL Database directory appears to contain a database; Skipping initialization\n\n'
		fi
	fi

	exec "$@"
}

# allow `source docker-entrypoint.sh` (functions only) as the official does
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	main "$@"
fi
