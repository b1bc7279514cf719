#include <gtest/gtest.h>

#include <clocale>
#include <cmath>
#include <set>

#include "virtcaps/renderers.h"
#include "virtcaps/strings.h"

namespace virtcaps {
namespace {

HostCapabilities SampleHost() {
  HostCapabilities caps;
  caps.cpu.arch = "x86_64";
  caps.cpu.vendor = "Intel";
  caps.cpu.vendor_id = "GenuineIntel";
  caps.cpu.model_name = "Xeon \"quoted\" \\ name";
  caps.cpu.microcode = 0x2006e05;
  caps.cpu.signature = CpuSignature{6, 85, 4};
  CpuTopology topology;
  topology.sockets = 2;
  topology.cores = 20;
  topology.threads = 2;
  topology.method = "per_node";
  topology.physical_packages = 2;
  topology.physical_dies = 2;
  caps.cpu.topology = topology;
  caps.cpu.features = {"sse4_1", "vmx"};
  caps.cpu.page_sizes_kib = {4, 2048};
  caps.cpu.virtualization.extension = "vmx";
  caps.cpu.virtualization.cpu_supported = true;
  caps.cpu.virtualization.kernel_enabled = true;
  // firmware_disabled left unknown on purpose
  caps.kvm.device_present = true;
  caps.kvm.device_accessible = true;
  caps.kvm.vm_creatable = true;
  caps.kvm.nested = true;
  caps.collectors = {{"cpu", true, 0.5, ""}, {"kvm", false, 0.25, "boom"}};
  return caps;
}

std::string ValueOf(const std::string& text, const std::string& series) {
  for (std::string_view line : Split(text, '\n')) {
    if (line.rfind(series + " ", 0) == 0) return std::string(line.substr(series.size() + 1));
  }
  return "<absent>";
}

TEST(PrometheusRenderTest, AlertGaugesAreAlwaysPresentAndUnknownIsNaN) {
  std::string text = RenderPrometheus(SampleHost(), RefreshFacts{1700000000.5, 0.125, 3},
                                      BuildInfo{"1.2.3", "abc", "gcc"});
  EXPECT_EQ(ValueOf(text, "virtcaps_cpu_virtualization_supported"), "1");
  EXPECT_EQ(ValueOf(text, "virtcaps_cpu_virtualization_enabled"), "1");
  EXPECT_TRUE(
      std::isnan(std::stod(ValueOf(text, "virtcaps_cpu_virtualization_firmware_disabled"))));
  EXPECT_EQ(ValueOf(text, "virtcaps_kvm_usable"), "1");
  EXPECT_EQ(ValueOf(text, "virtcaps_kvm_nested_enabled"), "1");
  EXPECT_EQ(ValueOf(text, "virtcaps_scrape_collector_success{collector=\"kvm\"}"), "0");
  EXPECT_EQ(ValueOf(text, "virtcaps_scrape_collector_duration_seconds{collector=\"cpu\"}"), "0.5");
  EXPECT_EQ(ValueOf(text, "virtcaps_refreshes_total"), "3");
  EXPECT_EQ(
      ValueOf(text, "virtcaps_build_info{version=\"1.2.3\",revision=\"abc\",compiler=\"gcc\"}"),
      "1");
  EXPECT_EQ(ValueOf(text, "virtcaps_cpu_feature_info{feature=\"vmx\"}"), "1");
  // Label values are escaped.
  EXPECT_NE(text.find(R"(model_name="Xeon \"quoted\" \\ name")"), std::string::npos);
}

TEST(PrometheusRenderTest, EachFamilyIsDeclaredOnce) {
  std::string text = RenderPrometheus(SampleHost(), RefreshFacts{}, BuildInfo{});
  std::set<std::string> seen;
  for (std::string_view line : Split(text, '\n')) {
    if (line.rfind("# TYPE ", 0) != 0) continue;
    std::string name(SplitWhitespace(line)[2]);
    EXPECT_TRUE(seen.insert(name).second) << "declared twice: " << name;
  }
  EXPECT_GT(seen.size(), 15u);
}

TEST(PrometheusRenderTest, CommaDecimalLocaleDoesNotLeak) {
  if (std::setlocale(LC_ALL, "de_DE.UTF-8") == nullptr) GTEST_SKIP() << "de_DE.UTF-8 not installed";
  std::string text =
      RenderPrometheus(SampleHost(), RefreshFacts{1700000000.5, 0.125, 1}, BuildInfo{});
  std::setlocale(LC_ALL, "C");
  EXPECT_EQ(ValueOf(text, "virtcaps_refresh_duration_seconds"), "0.125");
}

TEST(PrometheusRenderTest, DisabledCollectorsExportNothing) {
  HostCapabilities caps = SampleHost();
  caps.collectors = {{"cpu", true, 0.1, ""}};
  std::string text = RenderPrometheus(caps, RefreshFacts{}, BuildInfo{});
  EXPECT_EQ(ValueOf(text, "virtcaps_kvm_usable"), "<absent>");
  EXPECT_EQ(ValueOf(text, "virtcaps_cpu_virtualization_enabled"), "1");
}

TEST(XmlRenderTest, HostCpuInSchemaOrder) {
  XmlElement doc = CapabilitiesXml(SampleHost());
  const XmlElement* cpu = doc.Child("host")->Child("cpu");
  ASSERT_NE(cpu, nullptr);
  std::vector<std::string> order;
  for (const XmlElement& child : cpu->children) {
    if (order.empty() || order.back() != child.name) order.push_back(child.name);
  }
  EXPECT_EQ(order, (std::vector<std::string>{"arch", "vendor", "microcode", "signature", "topology",
                                             "feature", "pages"}));
  EXPECT_EQ(*cpu->Child("microcode")->Attribute("version"), "33582597");  // decimal, as libvirt
  EXPECT_EQ(*cpu->Child("topology")->Attribute("cores"), "20");
}

}  // namespace
}  // namespace virtcaps
