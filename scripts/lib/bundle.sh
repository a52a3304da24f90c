# shellcheck shell=bash
# Shared by scripts/device-bundle.sh and scripts/container-build.sh (sourced, not run): a
# directory holding the release binary with the shared libraries it needs beside it, in DIR/lib.

# bundle_binary SRC DIR: copies SRC to DIR/thermalizer with its debug info stripped and its rpath
# set to $ORIGIN/lib, so the directory can move anywhere.
bundle_binary() {
  mkdir -p "$2/lib"
  cp "$1" "$2/thermalizer"
  strip --strip-debug "$2/thermalizer"
  # shellcheck disable=SC2016  # $ORIGIN is for the dynamic loader, not the shell
  patchelf --set-rpath '$ORIGIN/lib' "$2/thermalizer"
}

# bundle_deps LIBDIR WANTED OBJECT...: copies into LIBDIR every shared library the OBJECTs need
# (ldd's resolution on this machine, transitive) for which the shell function `WANTED NAME PATH`
# succeeds; a library already in LIBDIR is left as it is. Run it on objects whose own search
# paths still resolve here (a binary whose rpath was already moved to $ORIGIN/lib resolves only
# what is in LIBDIR or on the system).
bundle_deps() {
  local libdir=$1 wanted=$2 name path
  shift 2
  ldd "$@" 2>/dev/null | awk '/=> \// {print $1, $3}' | sort -u | while read -r name path; do
    if [ -e "$libdir/$name" ] || ! "$wanted" "$name" "$path"; then continue; fi
    cp -L "$path" "$libdir/$name"
  done
}
