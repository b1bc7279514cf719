// libvirt's virt-host-validate checks for QEMU and LXC, made from the collected
// model rather than re-probing, so the metrics and --validate say the same thing.
#pragma once

#include <string>
#include <vector>

#include "virtcaps/model.h"

namespace virtcaps {

std::vector<HostCheck> RunHostChecks(const HostCapabilities& caps);

// "QEMU: Checking for hardware virtualization ... : PASS (note)" lines, as
// virt-host-validate prints them, with a hint under each failed check.
std::string FormatHostChecks(const std::vector<HostCheck>& checks);
// True when a check of severity fail did not pass.
bool AnyCheckFailed(const std::vector<HostCheck>& checks);

}  // namespace virtcaps
