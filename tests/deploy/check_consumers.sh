#!/usr/bin/env bash
# Real consumers of libvirt's capabilities over the agent's documents (issue 11).
#   virtinst: virtinst's own parser (Debian's virtinst) over the live /capabilities and
#             every fixture golden, and compared with the real libvirt's on this machine.
#   xpaths:   every XPath nova, KubeVirt, VDSM and virtinst read
#             (tests/fixtures/consumers/xpaths.tsv) answered by ours wherever libvirt's
#             capabilities and domain capabilities answer it. Exit 77 when libvirt
#             cannot run here (nothing to compare with).
# Usage: check_consumers.sh virtinst|xpaths AGENT_BINARY SOURCE_DIR
set -euo pipefail
mode=$1
agent=$2
source_dir=$3
source "$(dirname "$0")/lib.sh"
need_packages virtinst python3-lxml libvirt-daemon-system libvirt-clients
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

reference="$work/libvirt"
status=0
bash "$source_dir/tests/support/libvirt-reference.sh" "$reference" || status=$?
if [[ $status -eq 77 ]]; then
  reference=-
elif [[ $status -ne 0 ]]; then
  fail "tests/support/libvirt-reference.sh failed ($status)"
fi

mkdir -p "$work/ours"
"$agent" --once --format xml >"$work/ours/capabilities.xml" 2>"$work/ours.log" \
  || fail "agent --once --format xml: $(cat "$work/ours.log")"
# The capabilities goldens (the domain capabilities goldens, *.domcaps-*.xml, are another document).
goldens=()
for golden in "$source_dir"/tests/golden/*.xml; do
  [[ $golden == *.domcaps-*.xml ]] || goldens+=("$golden")
done

case $mode in
  virtinst)
    ref_caps=-
    [[ $reference != - ]] && ref_caps="$reference/capabilities.xml"
    "$agent" --once --format xml --driver qemu >"$work/ours/capabilities-qemu.xml" \
      2>"$work/ours.log" || fail "agent --once --format xml --driver qemu: $(cat "$work/ours.log")"
    "$PYTHON" "$source_dir/tests/deploy/check_virtinst.py" "$work/ours/capabilities.xml" \
      "$work/ours/capabilities-qemu.xml" "$ref_caps" "${goldens[@]}"
    # virtinst's UEFI decisions (<os> of the domain capabilities), where libvirt runs here.
    if [[ $reference != - ]]; then
      for virttype in qemu kvm; do
        [[ -e $reference/domcaps-$virttype.xml ]] || continue
        "$agent" --once --format domcapabilities --virttype "$virttype" \
          >"$work/ours/domcaps-$virttype.xml" 2>"$work/ours.log" \
          || fail "agent --once --format domcapabilities --virttype $virttype: $(cat "$work/ours.log")"
      done
      "$PYTHON" "$source_dir/tests/deploy/check_virtinst_domcaps.py" "$work/ours" "$reference"
    fi
    ;;
  xpaths)
    for virttype in qemu kvm; do
      # Only where libvirt has the same document (kvm: where KVM works here).
      [[ $reference != - && ! -e $reference/domcaps-$virttype.xml ]] && continue
      "$agent" --once --format domcapabilities --virttype "$virttype" \
        >"$work/ours/domcaps-$virttype.xml" 2>"$work/ours.log" \
        || fail "agent --once --format domcapabilities --virttype $virttype: $(cat "$work/ours.log")"
    done
    "$PYTHON" "$source_dir/tests/deploy/check_consumer_xpaths.py" \
      "$source_dir/tests/fixtures/consumers/xpaths.tsv" \
      "$source_dir/tests/fixtures/consumers/known-gaps.tsv" "$work/ours" "$reference" \
      "${goldens[@]}"
    ;;
  *) fail "unknown mode $mode" ;;
esac
