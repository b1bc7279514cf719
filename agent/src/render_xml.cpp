#include <string>

#include "virtcaps/renderers.h"

namespace virtcaps {

namespace {

void AddHostCpu(XmlElement& host, const HostCpu& cpu) {
  XmlElement& element = host.Add("cpu");
  element.Add("arch", cpu.arch);
  if (!cpu.vendor.empty()) element.Add("vendor", cpu.vendor);
  // The schema wants a positive integer; libvirt prints it in decimal.
  if (cpu.microcode && *cpu.microcode > 0) {
    element.Add("microcode").SetAttribute("version", std::to_string(*cpu.microcode));
  }
  if (cpu.signature && cpu.signature->family > 0) {
    element.Add("signature")
        .SetAttribute("family", std::to_string(cpu.signature->family))
        .SetAttribute("model", std::to_string(cpu.signature->model))
        .SetAttribute("stepping", std::to_string(cpu.signature->stepping));
  }
  if (cpu.topology) {
    element.Add("topology")
        .SetAttribute("sockets", std::to_string(cpu.topology->sockets))
        .SetAttribute("dies", std::to_string(cpu.topology->dies))
        .SetAttribute("cores", std::to_string(cpu.topology->cores))
        .SetAttribute("threads", std::to_string(cpu.topology->threads));
  }
  if (cpu.max_phys_addr_bits) {
    element.Add("maxphysaddr")
        .SetAttribute("mode", "passthrough")
        .SetAttribute("bits", std::to_string(*cpu.max_phys_addr_bits));
  }
  for (const std::string& feature : cpu.features) {
    element.Add("feature").SetAttribute("name", feature);
  }
  for (uint64_t size : cpu.page_sizes_kib) {
    element.Add("pages").SetAttribute("unit", "KiB").SetAttribute("size", std::to_string(size));
  }
}

}  // namespace

XmlElement CapabilitiesXml(const HostCapabilities& caps) {
  XmlElement root("capabilities");
  XmlElement& host = root.Add("host");
  AddHostCpu(host, caps.cpu);
  return root;
}

std::string RenderCapabilitiesXml(const HostCapabilities& caps) {
  return WriteXml(CapabilitiesXml(caps));
}

}  // namespace virtcaps
