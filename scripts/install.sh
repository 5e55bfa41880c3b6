#!/usr/bin/env bash
# Installs Chronus: the chronusd and chronusctl binaries, the systemd unit, the example
# configuration and (system install) the `chronus` service user. Safe to run again: it
# updates binaries and the unit, and never overwrites an existing configuration.
#
#   sudo scripts/install.sh [--prefix DIR]        system service (default prefix /usr/local)
#   scripts/install.sh --user [--prefix DIR]      user service (default prefix ~/.local)
#
# Options:
#   --prefix DIR     binaries go to DIR/bin; the unit's ExecStart points there.
#   --user           install the user unit (~/.config/systemd/user/chronus.service) and
#                    configuration in ~/.config/chronus, for a sound server that runs in
#                    your login session. Run it as that user, without sudo.
#   --root DIR       stage the installation under DIR (packaging, tests): files only, no
#                    service user, no systemctl, no root needed.
#   --binaries DIR   install chronusd and chronusctl from DIR instead of building them.
#   -h, --help       show this help.
set -euo pipefail
# useradd, usermod and runuser live in sbin, which a plain `su` leaves out of PATH.
export PATH="$PATH:/usr/sbin:/sbin"

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }
die() {
  echo "install.sh: error: $*" >&2
  exit 1
}
usage_error() {
  echo "install.sh: $*" >&2
  echo "Try 'scripts/install.sh --help'." >&2
  exit 64
}
say() { echo "install.sh: $*"; }

repo=$(cd "$(dirname "$0")/.." && pwd)
orig_args=("$@")
prefix=""
user_mode=0
root=""
binaries=""

while (($#)); do
  case "$1" in
    --prefix | --root | --binaries)
      (($# >= 2)) || usage_error "$1 needs a directory"
      case "$1" in
        --prefix) prefix=$2 ;;
        --root) root=$2 ;;
        --binaries) binaries=$2 ;;
      esac
      shift 2
      ;;
    --prefix=*) prefix=${1#*=} && shift ;;
    --root=*) root=${1#*=} && shift ;;
    --binaries=*) binaries=${1#*=} && shift ;;
    --user) user_mode=1 && shift ;;
    -h | --help) usage && exit 0 ;;
    *) usage_error "unknown argument '$1'" ;;
  esac
done

# --- where things go --------------------------------------------------------------------

if ((user_mode)); then
  [ -n "${HOME:-}" ] || die "--user needs HOME to be set"
  case "$HOME" in /*) ;; *) die "HOME must be an absolute path (got '$HOME')" ;; esac
  [ -n "$prefix" ] || prefix="$HOME/.local"
else
  [ -n "$prefix" ] || prefix=/usr/local
fi
case "$prefix" in
  /*) ;;
  *) usage_error "--prefix must be an absolute path (got '$prefix')" ;;
esac
# The prefix is written into the unit's ExecStart, where spaces and % have meanings.
[[ "$prefix" =~ ^[A-Za-z0-9._/+@-]+$ ]] ||
  usage_error "--prefix may contain only letters, digits and . _ / + @ - (got '$prefix')"
prefix=${prefix%/}
[ -n "$prefix" ] || prefix=/

if [ -n "$root" ]; then
  case "$root" in /*) ;; *) root="$PWD/$root" ;; esac
  root=${root%/}
  mkdir -p "$root"
fi

if ((user_mode)); then
  unit_src="$repo/systemd/chronus-user.service"
  unit_dir="$HOME/.config/systemd/user"
  conf_dir="$HOME/.config/chronus"
  sctl=(systemctl --user)
else
  unit_src="$repo/systemd/chronus.service"
  unit_dir=/etc/systemd/system
  conf_dir=/etc/chronus
  sctl=(systemctl)
fi
bin_dir="${prefix%/}/bin"
exec_start="$bin_dir/chronusd"
# The user unit names the home directory %h, so it survives a change of home path.
if ((user_mode)); then
  case "$exec_start" in "${HOME%/}"/*) exec_start="%h/${exec_start#"${HOME%/}"/}" ;; esac
fi

# --- who may do this -------------------------------------------------------------------

if [ -z "$root" ]; then
  if ((user_mode)); then
    [ "$(id -u)" -ne 0 ] ||
      die "--user installs for the user who runs it: run it as that user, without sudo (use a system install for root)"
  elif [ "$(id -u)" -ne 0 ]; then
    die "a system install writes to $bin_dir, $unit_dir and $conf_dir and creates the chronus user: run it as root, e.g. sudo scripts/install.sh${orig_args[*]:+ ${orig_args[*]}} (or use --user for a user service)"
  fi
fi

# systemd is the service manager (PID 1), as opposed to e.g. a container's init.
systemd_running() {
  if ((user_mode)); then
    systemctl --user show-environment >/dev/null 2>&1
  else
    [ -d /run/systemd/system ] && [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ]
  fi
}

# --- binaries ----------------------------------------------------------------------------

# A binary is stale when it is missing or a source file, manifest or the lock file is
# newer than it.
stale() {
  local bin=$1
  [ -x "$bin" ] || return 0
  [ -n "$(find "$repo/Cargo.toml" "$repo/Cargo.lock" "$repo/crates" -type f -newer "$bin" -print -quit)" ]
}

build_release() {
  local cargo owner home
  owner=$(stat -c %U "$repo")
  if [ "$(id -u)" -eq 0 ] && [ "$owner" != root ] && [ "$owner" != UNKNOWN ]; then
    # Under sudo: build as the checkout's owner, with their toolchain, so that target/
    # does not fill with root-owned files.
    home=$(getent passwd "$owner" | cut -d: -f6)
    cargo=$(runuser -u "$owner" -- env HOME="$home" PATH="$home/.cargo/bin:$PATH" \
      sh -c 'command -v cargo' || true)
    [ -n "$cargo" ] || die "cargo not found for $owner: install Rust (scripts/deps.sh run), or build first and pass --binaries DIR"
    say "building release binaries as $owner (cargo build --release --locked -p chronusd -p chronusctl)"
    (cd "$repo" && runuser -u "$owner" -- env HOME="$home" PATH="$home/.cargo/bin:$PATH" \
      "$cargo" build --release --locked -p chronusd -p chronusctl)
  else
    cargo=$(PATH="${HOME:-/nonexistent}/.cargo/bin:$PATH" command -v cargo || true)
    [ -n "$cargo" ] || die "cargo not found: install Rust (scripts/deps.sh run), or build first and pass --binaries DIR"
    say "building release binaries (cargo build --release --locked -p chronusd -p chronusctl)"
    (cd "$repo" && "$cargo" build --release --locked -p chronusd -p chronusctl)
  fi
}

if [ -n "$binaries" ]; then
  src_bin=$binaries
else
  src_bin="$repo/target/release"
  if stale "$src_bin/chronusd" || stale "$src_bin/chronusctl"; then
    build_release
  else
    say "release binaries in $src_bin are up to date"
  fi
fi
for b in chronusd chronusctl; do
  { [ -f "$src_bin/$b" ] && [ -x "$src_bin/$b" ]; } || die "$src_bin/$b is missing or not executable"
done

# --- installing files ------------------------------------------------------------------

# install_file MODE SRC DST: installs atomically (a running chronusd keeps its old
# binary) and says whether anything changed.
install_file() {
  local mode=$1 src=$2 dst=$3 tmp
  if [ -f "$dst" ] && cmp -s "$src" "$dst"; then
    chmod "$mode" "$dst"
    say "unchanged: $dst"
    return
  fi
  mkdir -p "$(dirname "$dst")"
  tmp="$(dirname "$dst")/.$(basename "$dst").new.$$"
  install -m "$mode" "$src" "$tmp"
  local verb=installed
  [ -e "$dst" ] && verb=updated
  mv -f "$tmp" "$dst"
  say "$verb: $dst"
}

# install_config SRC DST: only when DST does not exist; an existing file is the
# operator's and is never touched.
install_config() {
  local src=$1 dst=$2
  if [ -e "$dst" ]; then
    say "kept existing: $dst"
  else
    install_file 0644 "$src" "$dst"
  fi
}

for b in chronusd chronusctl; do
  install_file 0755 "$src_bin/$b" "$root$bin_dir/$b"
done

rendered=$(mktemp)
trap 'rm -f "$rendered"' EXIT
# Point ExecStart at the installed binary; everything else is the unit as shipped.
# (--prefix is restricted to characters that need no escaping here.)
sed "s#^ExecStart=[^ ]*chronusd#ExecStart=${exec_start}#" "$unit_src" >"$rendered"
grep -q "^ExecStart=${exec_start}\$" "$rendered" || die "could not set ExecStart in $unit_src"
install_file 0644 "$rendered" "$root$unit_dir/chronus.service"

install_config "$repo/config/chronus.toml" "$root$conf_dir/chronus.toml"
install_config "$repo/systemd/chronus.env.example" "$root$conf_dir/chronus.env"

# --- the service user ------------------------------------------------------------------

if ((!user_mode)); then
  if [ -n "$root" ]; then
    say "staging root $root: not creating the chronus user (useradd --system --no-create-home --home-dir /var/lib/chronus --shell /usr/sbin/nologin --user-group --groups audio chronus)"
  else
    getent group audio >/dev/null || { groupadd --system audio && say "created group audio"; }
    if ! getent passwd chronus >/dev/null; then
      group_opt=(--user-group)
      getent group chronus >/dev/null && group_opt=(--gid chronus)
      # Its home is the unit's StateDirectory (/var/lib/chronus, created by systemd),
      # where a PulseAudio client keeps its cookie.
      useradd --system --no-create-home --home-dir /var/lib/chronus \
        --shell /usr/sbin/nologin "${group_opt[@]}" --groups audio \
        --comment "Chronus audio daemon" chronus
      say "created system user chronus (groups: chronus, audio)"
    elif ! id -nG chronus | tr ' ' '\n' | grep -qx audio; then
      usermod -a -G audio chronus
      say "added existing user chronus to group audio"
    else
      say "user chronus exists and is in group audio"
    fi
  fi
fi

# --- systemd -----------------------------------------------------------------------------

sc=${sctl[*]}
if [ -n "$root" ]; then
  say "staged under $root; on the target system run: $sc daemon-reload && $sc enable --now chronus"
elif systemd_running; then
  "${sctl[@]}" daemon-reload
  say "ran $sc daemon-reload"
  if "${sctl[@]}" is-active --quiet chronus.service; then
    say "chronus is running the previous binaries: $sc restart chronus"
  else
    say "start it now and at boot with: $sc enable --now chronus"
  fi
else
  if ((user_mode)); then
    say "no systemd user manager is reachable (no login session?): when there is one, run: $sc daemon-reload && $sc enable --now chronus"
  else
    say "systemd is not running here (PID 1 is $(cat /proc/1/comm 2>/dev/null || echo unknown)): on a systemd host run: $sc daemon-reload && $sc enable --now chronus"
  fi
fi
if ((user_mode)); then
  check="CHRONUS_CONFIG=$conf_dir/chronus.toml $bin_dir/chronusd check-config"
else
  check="$bin_dir/chronusd check-config"
fi
say "configuration: $conf_dir/chronus.toml and $conf_dir/chronus.env; see what is in force with: $check"
say "done"
