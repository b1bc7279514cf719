// The iommu collector: ACPI tables that describe an IOMMU (firmware) and the
// groups the kernel made (enabled), as virt-host-validate checks them.
#include "virtcaps/boot_constants.h"
#include "virtcaps/collector.h"
#include "virtcaps/files.h"

namespace virtcaps {

namespace {

class IommuCollector : public Collector {
 public:
  std::string_view name() const override { return "iommu"; }

  Status Collect(const CollectContext& context, HostCapabilities& caps) override {
    IommuState iommu;
    for (const char* table : {"DMAR", "IVRS", "IORT"}) {
      // The firmware's ACPI tables are fixed at boot.
      if (BootSysfsPathExists(context.paths, std::string("firmware/acpi/tables/") + table)) {
        iommu.firmware_tables.push_back(table);
      }
    }
    std::string groups_dir = context.paths.Sys("kernel/iommu_groups");
    if (IsDirectory(groups_dir)) {
      auto groups = ListDirectory(groups_dir);
      if (!groups) return groups.status();
      for (const std::string& group : *groups) {
        if (IsDirectory(groups_dir + "/" + group)) ++iommu.groups;
      }
    }
    iommu.kernel_enabled = iommu.groups > 0;
    caps.iommu = iommu;
    return Status();
  }
};

}  // namespace

std::unique_ptr<Collector> MakeIommuCollector() { return std::make_unique<IommuCollector>(); }

}  // namespace virtcaps
