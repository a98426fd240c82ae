# envctl's start-up for a container of an image that follows the official postgres image's
# contract: initdb and postgres on PATH, PGDATA, a `postgres` user, gosu (or setpriv).
#
# Run as: bash -c "<this file>" envctl-boot [postgres arguments...]
#
# Unlike the image's entrypoint it starts no temporary server to create the database (about a
# quarter of a second): it runs initdb, which sets the password, then the server itself, while
# a helper creates the database over the local socket as soon as the server answers there. The
# same helper gives a cluster from envctl's cache this environment's own password, before any
# client can log in over TCP (nobody knows the password the cached cluster was built with).
#
# The password is never on a command line (any local user sees those, in the host's `ps` too)
# nor in the container's environment (`docker inspect` shows that): it arrives as a file only
# the server's user reads, initdb or the server reads it, and it is deleted once it is set.
# Images with scripts of their own in /docker-entrypoint-initdb.d go the image's way instead.
set -euf

# envctl's files (the password, the server's certificates and key) arrive in /etc/envctl,
# owned by uid 999, the postgres of the official Debian-based images; Alpine's is 70, and
# Postgres reads its key only when the key is its own. The server reads them from /dev/shm,
# this container's own tmpfs: a cluster kept in envctl's cache is committed from this
# container, and no secret of it may travel along.
if [ "$EUID" = 0 ] && [ -d /etc/envctl ]; then
	mv /etc/envctl /dev/shm/envctl
	chown -R postgres:postgres /dev/shm/envctl
fi

# A cluster from the cache that the suite makes its databases from runs in memory (PGDATA, a
# tmpfs): its files are copied there from the image's layer, unless they are more than
# ENVCTL_MEMORY_MAX_KB or this container cannot (not root): then it runs where it is.
if [ -n "${ENVCTL_MEMORY_FROM:-}" ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
	read -r size _ < <(du -sk "$ENVCTL_MEMORY_FROM")
	if [ "$EUID" = 0 ] && [ "$size" -le "${ENVCTL_MEMORY_MAX_KB:-0}" ]; then
		if command -v tar >/dev/null; then
			# One process reads while the other writes: half the time of cp -a here.
			tar -C "$ENVCTL_MEMORY_FROM" -cf - . | tar -C "$PGDATA" -xf -
		else
			cp -a "$ENVCTL_MEMORY_FROM/." "$PGDATA/"
		fi
	else
		export PGDATA=$ENVCTL_MEMORY_FROM
	fi
fi

if [ ! -s "$PGDATA/PG_VERSION" ] && [ -n "$(ls -A /docker-entrypoint-initdb.d 2>/dev/null)" ]; then
	exec docker-entrypoint.sh postgres "$@"
fi

if [ "$EUID" = 0 ]; then
	mkdir -p "$PGDATA"
	chown postgres:postgres "$PGDATA"
	chmod 0700 "$PGDATA"
	if command -v gosu >/dev/null; then
		exec gosu postgres bash -c "$BASH_EXECUTION_STRING" "$0" "$@"
	elif command -v setpriv >/dev/null; then
		export HOME=/var/lib/postgresql
		exec setpriv --reuid=postgres --regid=postgres --init-groups -- \
			bash -c "$BASH_EXECUTION_STRING" "$0" "$@"
	fi
	exec docker-entrypoint.sh postgres "$@"
fi

password_file=$POSTGRES_PASSWORD_FILE

if [ ! -s "$PGDATA/PG_VERSION" ]; then
	# POSTGRES_INITDB_ARGS is a list of words, as for the image's entrypoint (globbing is off).
	# shellcheck disable=SC2086
	initdb -D "$PGDATA" --username="$POSTGRES_USER" \
		--pwfile="$password_file" \
		--auth-local=trust --auth-host=scram-sha-256 $POSTGRES_INITDB_ARGS >/dev/null
	printf '\nhost all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
	rm -f "$password_file"
fi

# A cluster from the cache was copied from a running server: its lock file is stale, and
# nothing else can be running in this new container.
rm -f "$PGDATA/postmaster.pid"

# The server's own psql: on Debian-based images /usr/bin/psql, first on PATH, is a Perl
# wrapper that costs 30 ms before psql itself starts.
server=$(command -v postgres)
psql="${server%/*}/psql"
[ -x "$psql" ] || psql=psql

# Clients over TCP are turned away by pg_hba until the helper has set this environment's
# password (and made its database): before that, a cluster from the cache would still take
# the password it was built with, and an early client would cost the server a password check
# that must fail. A rejection is cheap, and says plainly that the server is not ready yet.
hba="$PGDATA/pg_hba.conf"
listen=
for arg in "$@"; do
	case $arg in
	hba_file=*) hba=${arg#hba_file=} ;;
	listen_addresses=*) listen=${arg#listen_addresses=} ;;
	esac
done

# Where the server listens is on its command line; the configuration file's line is made to
# agree, or every reload of the file (the helper's, below) would log that the file "contains
# errors": a setting that needs a restart, with another value than the running one.
conf="$PGDATA/postgresql.conf"
if [ -n "$listen" ] && [ -f "$conf" ]; then
	mapfile -t lines <"$conf"
	wanted="listen_addresses = '$listen'"
	changed=
	for i in "${!lines[@]}"; do
		if [ "${lines[i]#listen_addresses}" != "${lines[i]}" ] && [ "${lines[i]}" != "$wanted" ]; then
			lines[i]=$wanted
			changed=1
		fi
	done
	[ -z "$changed" ] || printf '%s\n' "${lines[@]}" >"$conf"
fi
until_ready="host all all all reject  # envctl-boot: until the password is set"
mapfile -t rules <"$hba"
printf '%s\n' "$until_ready" "${rules[@]}" >"$hba"

# What the helper runs: the password of a cluster from envctl's cache (ENVCTL_CACHED is set
# then; initdb set it otherwise), the database unless the cluster comes from the cache (which
# kept it). The server reads the password from its file itself: the statement psql sends names
# only the file, and the ALTER ROLE that holds the password runs inside the server, where
# log_statement and pg_stat_activity see only the DO block. PGOPTIONS below keeps the session
# out of the log anyway, its errors included (without their statement and context). The database is copied file by
# file (FILE_COPY, 15+): the default WAL_LOG strategy would leave the template's pages in
# shared memory, 10 MiB more for an idle server. The helper of a cached cluster connects to
# the environment's database, which loads its catalogs once: then the first client need not.
sql=
if [ -n "${ENVCTL_CACHED:-}" ] && [ -f "$password_file" ]; then
	read -r -d '' sql <<-'SQL' || true
		SELECT set_config('envctl.password_file', :'password_file', false);
		DO $$ BEGIN
		    EXECUTE format('ALTER ROLE %I PASSWORD %L', current_user,
		                   pg_read_file(current_setting('envctl.password_file')));
		END $$;
	SQL
fi
helper_db=$POSTGRES_DB
if [ -z "${ENVCTL_CACHED:-}" ]; then
	helper_db=postgres
	read -r -d '' create <<-'SQL' || true
		SELECT format('CREATE DATABASE %I', :'db')
		    || CASE WHEN current_setting('server_version_num')::int >= 150000
		       THEN ' STRATEGY = FILE_COPY' ELSE '' END
		WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec
	SQL
	sql+=$'\n'$create
fi

# connection.py's UNLOGGED_SESSION, which envctl's own sessions that set a password use.
quiet="-c log_statement=none -c log_min_duration_statement=-1"
quiet+=" -c log_min_error_statement=panic -c log_error_verbosity=terse"
(
	set +eu
	# The helper's own clock: initdb, before it, may have taken long on a busy machine.
	SECONDS=0
	# A pipe that nobody writes to: `read -t` on it is a sleep without a process.
	exec {nap}<> <(:)
	while [ "$SECONDS" -lt 600 ]; do
		# The postmaster writes "ready" into its lock file once it accepts connections (what
		# pg_ctl -w waits for): reading it is cheap, where a psql that fails costs a process,
		# and twenty servers starting at once on two cores cannot spare fifty a second each.
		# A server that is not ready after five seconds (or never says so) gets a psql four
		# times a second.
		status=()
		mapfile -t -s 7 -n 1 status 2>/dev/null <"$PGDATA/postmaster.pid"
		line="${status[0]:-}"
		if [ "${line#ready}" = "$line" ]; then
			if [ "$SECONDS" -lt 5 ]; then
				read -r -t 0.005 -u "$nap"
				continue
			fi
			read -r -t 0.25 -u "$nap"
		fi
		if PGOPTIONS=$quiet "$psql" -X -q -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" \
			-d "$helper_db" -v password_file="$password_file" -v db="$POSTGRES_DB" \
			>/dev/null 2>&1 <<<"$sql"
		then
			rm -f "$password_file"
			# Open the door: drop the rejection, and have the server read pg_hba again ($$ is
			# this script's process, which is the server by now: see the exec below).
			mapfile -t rules <"$hba"
			for i in "${!rules[@]}"; do
				[ "${rules[i]}" != "$until_ready" ] || unset 'rules[i]'
			done
			printf '%s\n' "${rules[@]}" >"$hba"
			kill -HUP $$
			exit 0
		fi
		read -r -t 0.02 -u "$nap"
	done
	echo "envctl-boot: could not set the password and create database $POSTGRES_DB" >&2
	# The server is this helper's parent once it runs: any other status would make it
	# restart as if a backend had crashed.
	exit 0
)&

exec postgres "$@"
