#include "virtcaps/cli.h"

#include <gtest/gtest.h>

#include "virtcaps/collector.h"

namespace virtcaps {
namespace {

Expected<CommandLine> Parse(std::vector<std::string> args) {
  return ParseCommandLine(args, CollectorDefaults());
}

TEST(CliTest, ParsesNodeExporterStyleFlags) {
  auto cli = Parse({"--web.listen-address=127.0.0.1:1", "--web.listen-address", ":2",
                    "--path.rootfs=/host", "--no-collector.kvm", "--collector.cpu",
                    "--log.level=debug", "--once", "--format", "prometheus"});
  ASSERT_TRUE(cli) << cli.error();
  EXPECT_EQ(cli->listen_addresses, (std::vector<std::string>{"127.0.0.1:1", ":2"}));
  EXPECT_EQ(cli->rootfs, "/host");
  EXPECT_EQ(cli->collectors.at("kvm"), false);
  EXPECT_EQ(cli->collectors.at("cpu"), true);
  EXPECT_EQ(cli->mode, CommandLine::Mode::kOnce);
  EXPECT_EQ(cli->once_format, CommandLine::Format::kPrometheus);
}

TEST(CliTest, SystemdSocketIsOffUnlessAsked) {
  auto plain = Parse({});
  ASSERT_TRUE(plain) << plain.error();
  EXPECT_FALSE(plain->systemd_socket);
  auto cli = Parse({"--web.systemd-socket"});
  ASSERT_TRUE(cli) << cli.error();
  EXPECT_TRUE(cli->systemd_socket);
  EXPECT_FALSE(Parse({"--web.systemd-socket=yes"}));  // a switch, no value
}

TEST(CliTest, RejectsUnknownFlagsAndCollectors) {
  EXPECT_FALSE(Parse({"--bogus"}));
  EXPECT_FALSE(Parse({"--collector.gpu"}));
  EXPECT_FALSE(Parse({"--format=json"}));
  EXPECT_FALSE(Parse({"--log.level=loud"}));
  EXPECT_FALSE(Parse({"--config.file"}));
}

TEST(CliTest, FlagsOverrideTheConfig) {
  auto cli =
      Parse({"--web.listen-address=127.0.0.1:9999", "--no-collector.kvm", "--path.procfs=/p"});
  ASSERT_TRUE(cli);
  auto config = ResolveConfig(*cli, CollectorDefaults());
  ASSERT_TRUE(config) << config.error();
  EXPECT_EQ(config->web.listen_addresses, (std::vector<std::string>{"127.0.0.1:9999"}));
  EXPECT_FALSE(config->collectors.at("kvm"));
  EXPECT_EQ(config->paths.procfs, "/p");
  auto bad = Parse({"--web.listen-address=nonsense"});
  ASSERT_TRUE(bad);
  EXPECT_FALSE(ResolveConfig(*bad, CollectorDefaults()));
}

}  // namespace
}  // namespace virtcaps
