# shellcheck shell=bash
# pymchelper, pinned: the real `convertmc` that the worker runs on SHIELD-HIT12A and FLUKA
# output, installed from PyPI into a virtualenv of its own (numpy is its only dependency).
PYMCHELPER_VERSION=2.9.6

# ensure_pymchelper DIR: makes DIR a virtualenv with pymchelper==$PYMCHELPER_VERSION (once)
# and prints the path of its convertmc.
ensure_pymchelper() {
  local venv=$1
  if ! "$venv/bin/python" -c "import pymchelper, sys; sys.exit(pymchelper.__version__ != '$PYMCHELPER_VERSION')" \
      >/dev/null 2>&1; then
    echo "installing pymchelper==$PYMCHELPER_VERSION into $venv" >&2
    rm -rf "$venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install -q --disable-pip-version-check "pymchelper==$PYMCHELPER_VERSION" >&2
  fi
  echo "$venv/bin/convertmc"
}
