#!/bin/sh
# Writes `virtcaps-agent --once --format prometheus` to $TEXTFILE_DIR/virtcaps.prom for
# node_exporter's textfile collector, for hosts that run node_exporter rather than the
# agent's own HTTP server.
#
# The file is replaced atomically: the output goes to a temporary file in the same
# directory (so the rename never crosses a filesystem), which is renamed over
# virtcaps.prom only when the agent succeeded. node_exporter reads either the old or
# the new file, never a half-written one; it ignores the temporary file, whose name
# does not end in .prom. On failure the previous file stays and the script exits
# non-zero; node_textfile_mtime_seconds then shows how old the data is.
#
# Environment:
#   TEXTFILE_DIR         node_exporter's --collector.textfile.directory
#                        (default /var/lib/prometheus/node-exporter, Debian's)
#   VIRTCAPS_AGENT       the agent binary (default /usr/bin/virtcaps-agent)
#   VIRTCAPS_AGENT_ARGS  flags for the agent, split on spaces
#                        (default --config.file=/etc/virtcaps/virtcaps.yaml)
set -eu

textfile_dir=${TEXTFILE_DIR:-/var/lib/prometheus/node-exporter}
agent=${VIRTCAPS_AGENT:-/usr/bin/virtcaps-agent}
agent_args=${VIRTCAPS_AGENT_ARGS---config.file=/etc/virtcaps/virtcaps.yaml}

tmp=$(mktemp "$textfile_dir/.virtcaps.prom.XXXXXX")
trap 'rm -f "$tmp"' EXIT
trap 'exit 1' HUP INT TERM

# shellcheck disable=SC2086  # VIRTCAPS_AGENT_ARGS is a list of flags
"$agent" $agent_args --once --format prometheus >"$tmp"
chmod 0644 "$tmp"
mv -f "$tmp" "$textfile_dir/virtcaps.prom"
