#!/usr/bin/env bash
# Removes what scripts/install.sh installed: stops and disables the service (when
# systemd runs), removes the binaries and the unit. The configuration and the service
# user stay unless --purge is given. Safe to run again.
#
#   sudo scripts/uninstall.sh [--prefix DIR] [--purge]   system service
#   scripts/uninstall.sh --user [--prefix DIR] [--purge] user service
#
# Options:
#   --prefix DIR   where the binaries were installed (DIR/bin). Default: read from the
#                  installed unit's ExecStart, else /usr/local (--user: ~/.local).
#   --user         remove the user service installed with `install.sh --user`. Run it
#                  as that user, without sudo.
#   --purge        also remove the configuration (/etc/chronus, or ~/.config/chronus),
#                  local unit drop-ins and (system) the chronus user and group;
#                  /var/lib/chronus is removed if empty, else kept and named.
#   --root DIR     act on an installation staged with `install.sh --root DIR`: files
#                  only, no systemctl, no user removal, no root needed.
#   -h, --help     show this help.
set -euo pipefail
# userdel lives in sbin, which a plain `su` leaves out of PATH.
export PATH="$PATH:/usr/sbin:/sbin"

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }
die() {
  echo "uninstall.sh: error: $*" >&2
  exit 1
}
usage_error() {
  echo "uninstall.sh: $*" >&2
  echo "Try 'scripts/uninstall.sh --help'." >&2
  exit 64
}
say() { echo "uninstall.sh: $*"; }

orig_args=("$@")
prefix=""
user_mode=0
purge=0
root=""

while (($#)); do
  case "$1" in
    --prefix | --root)
      (($# >= 2)) || usage_error "$1 needs a directory"
      case "$1" in
        --prefix) prefix=$2 ;;
        --root) root=$2 ;;
      esac
      shift 2
      ;;
    --prefix=*) prefix=${1#*=} && shift ;;
    --root=*) root=${1#*=} && shift ;;
    --user) user_mode=1 && shift ;;
    --purge) purge=1 && shift ;;
    -h | --help) usage && exit 0 ;;
    *) usage_error "unknown argument '$1'" ;;
  esac
done

if [ -n "$prefix" ]; then
  case "$prefix" in
    /*) ;;
    *) usage_error "--prefix must be an absolute path (got '$prefix')" ;;
  esac
fi

if ((user_mode)); then
  [ -n "${HOME:-}" ] || die "--user needs HOME to be set"
  case "$HOME" in /*) ;; *) die "HOME must be an absolute path (got '$HOME')" ;; esac
  unit_dir="$HOME/.config/systemd/user"
  conf_dir="$HOME/.config/chronus"
  sctl=(systemctl --user)
else
  unit_dir=/etc/systemd/system
  conf_dir=/etc/chronus
  sctl=(systemctl)
fi
sc=${sctl[*]}

if [ -n "$root" ]; then
  case "$root" in /*) ;; *) root="$PWD/$root" ;; esac
  root=${root%/}
  [ -d "$root" ] || die "staging root $root does not exist"
else
  if ((user_mode)); then
    [ "$(id -u)" -ne 0 ] ||
      die "--user removes the service of the user who runs it: run it as that user, without sudo"
  elif [ "$(id -u)" -ne 0 ]; then
    die "removing the system service needs root: sudo scripts/uninstall.sh${orig_args[*]:+ ${orig_args[*]}} (or --user for a user service)"
  fi
fi

unit="$root$unit_dir/chronus.service"

# The prefix the unit was installed with, from its ExecStart.
if [ -z "$prefix" ]; then
  if [ -f "$unit" ]; then
    exec_start=$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$unit" | head -n 1)
    exec_start=${exec_start/#%h/${HOME:-}}
    case "$exec_start" in
      /*/bin/chronusd) prefix=${exec_start%/bin/chronusd} ;;
      /bin/chronusd) prefix=/ ;;
    esac
  fi
  if [ -z "$prefix" ]; then
    if ((user_mode)); then prefix="$HOME/.local"; else prefix=/usr/local; fi
  fi
fi
bin_dir="${prefix%/}/bin"

systemd_running() {
  if ((user_mode)); then
    systemctl --user show-environment >/dev/null 2>&1
  else
    [ -d /run/systemd/system ] && [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ]
  fi
}

remove() {
  local path=$1
  if [ -e "$path" ] || [ -L "$path" ]; then
    rm -rf -- "$path"
    say "removed: $path"
  else
    say "already absent: $path"
  fi
}

# --- stop the service ------------------------------------------------------------------

manage=0
if [ -n "$root" ]; then
  say "staging root $root: not touching systemd or users"
elif systemd_running; then
  manage=1
  if "${sctl[@]}" cat chronus.service >/dev/null 2>&1; then
    # Stops it (chronusd stops and reaps its workers; systemd kills the control group
    # after TimeoutStopSec) and removes the enablement symlinks.
    "${sctl[@]}" disable --now chronus.service ||
      say "warning: $sc disable --now chronus failed; continuing"
    say "stopped and disabled chronus.service"
  else
    say "chronus.service is not known to $sc"
  fi
else
  say "systemd is not running here: nothing to stop"
fi

# --- files -----------------------------------------------------------------------------

remove "$root$bin_dir/chronusd"
remove "$root$bin_dir/chronusctl"
remove "$unit"

if ((purge)); then
  # Local changes made with `systemctl edit chronus`.
  remove "$root$unit_dir/chronus.service.d"
  remove "$root$conf_dir"
  if ((!user_mode)); then
    state="$root/var/lib/chronus"
    if [ -d "$state" ]; then
      if rmdir "$state" 2>/dev/null; then
        say "removed: $state (it was empty)"
      else
        say "kept $state: it is not empty (recordings, journals); remove it yourself if it is not needed"
      fi
    fi
  fi
else
  say "kept the configuration in $root$conf_dir (--purge removes it)"
fi

if ((manage)); then
  "${sctl[@]}" daemon-reload
  "${sctl[@]}" reset-failed chronus.service >/dev/null 2>&1 || true
  say "ran $sc daemon-reload"
fi

# --- the service user ------------------------------------------------------------------

if ((purge && !user_mode)); then
  if [ -n "$root" ]; then
    say "staging root: not removing the chronus user"
  else
    if getent passwd chronus >/dev/null; then
      userdel chronus
      say "removed user chronus"
    else
      say "user chronus already absent"
    fi
    if getent group chronus >/dev/null; then
      groupdel chronus
      say "removed group chronus"
    fi
  fi
elif ((!user_mode)) && [ -z "$root" ]; then
  say "kept the chronus user (--purge removes it)"
fi
say "done"
