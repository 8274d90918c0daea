#!/usr/bin/env bash
# Fetches the web UI's third-party browser files from npm into src/kawa/ui/static/vendor/.
# Run it to upgrade them (then update the versions in LICENSES.md); kawa itself never downloads them.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=src/kawa/ui/static/vendor
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fetch() {  # package@version file-in-package target
  (cd "$work" && npm pack -q "$1" >/dev/null && mkdir -p "${1%@*}" && tar xzf ./*.tgz -C "${1%@*}" && rm ./*.tgz)
  cp "$work/${1%@*}/package/$2" "$dest/$3"
}
fetch htmx.org@2.0.11 dist/htmx.min.js htmx.min.js
fetch htmx-ext-sse@2.2.4 dist/sse.min.js htmx-sse.min.js
fetch chart.js@4.6.1 dist/chart.umd.min.js chart.umd.min.js
fetch cytoscape@3.34.4 dist/cytoscape.min.js cytoscape.min.js
