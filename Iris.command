#!/bin/bash
# macOS: double-click in Finder to start Iris (first run installs it; keep this window open).
cd "$(dirname "$0")" || exit 1
exec python3 launcher.py "$@"
