#include "daemon/api/host_api.hpp"

#include <fstream>

#include <gtest/gtest.h>

#include "../lxd/temp_dir.hpp"

namespace berth::daemon::api {
namespace {

namespace fs = std::filesystem;

void write(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << text;
}

TEST(HostResources, ReadsCpusMemoryAndDisksFromTheTree) {
  lxd::testing::TempDir tmp;
  const auto& root = tmp.path();
  write(root / "proc/cpuinfo",
        "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Test CPU\ncpu MHz\t\t: 2000.123\n\n"
        "processor\t: 1\nvendor_id\t: GenuineIntel\nmodel name\t: Test CPU\ncpu MHz\t\t: 2000.123\n");
  for (int cpu : {0, 1, 2}) {
    const auto dir = root / ("sys/devices/system/cpu/cpu" + std::to_string(cpu));
    write(dir / "topology/physical_package_id", "0\n");
    write(dir / "topology/core_id", cpu == 2 ? "1\n" : std::to_string(cpu) + "\n");
  }
  write(root / "sys/devices/system/cpu/cpu2/online", "0\n");
  write(root / "sys/devices/system/cpu/cpufreq/policy0", "");  // not a cpu
  write(root / "proc/meminfo",
        "MemTotal:        1000 kB\nMemFree:          300 kB\nMemAvailable:     600 kB\n"
        "HugePages_Total:       2\nHugePages_Free:        1\nHugepagesize:       2048 kB\n");
  write(root / "sys/block/vda/size", "2048\n");
  write(root / "sys/block/vda/dev", "254:0\n");
  write(root / "sys/block/vda/queue/rotational", "0\n");
  write(root / "sys/block/vda/vda1/partition", "1\n");
  write(root / "sys/block/vda/vda1/size", "1024\n");
  write(root / "sys/block/loop0/size", "8\n");

  const auto r = host_resources(root, "x86_64");
  EXPECT_EQ(r["cpu"]["total"], 3);
  ASSERT_EQ(r["cpu"]["sockets"].size(), 1u);
  const auto& socket = r["cpu"]["sockets"][0];
  EXPECT_EQ(socket["name"], "Test CPU");
  EXPECT_EQ(socket["vendor"], "GenuineIntel");
  EXPECT_EQ(socket["frequency"], 2000);
  ASSERT_EQ(socket["cores"].size(), 2u);
  ASSERT_EQ(socket["cores"][1]["threads"].size(), 2u) << "cpus 1 and 2 share core 1";
  EXPECT_EQ(socket["cores"][1]["threads"][1]["online"], false);
  EXPECT_EQ(r["memory"]["total"], 1000 * 1024);
  EXPECT_EQ(r["memory"]["used"], 400 * 1024) << "total minus available";
  EXPECT_EQ(r["memory"]["hugepages_total"], 2 * 2048 * 1024);
  EXPECT_EQ(r["memory"]["hugepages_used"], 2048 * 1024);
  ASSERT_EQ(r["storage"]["total"], 1) << "loop devices are not disks";
  EXPECT_EQ(r["storage"]["disks"][0]["id"], "vda");
  EXPECT_EQ(r["storage"]["disks"][0]["size"], 2048 * 512);
  EXPECT_EQ(r["storage"]["disks"][0]["device"], "254:0");
  ASSERT_EQ(r["storage"]["disks"][0]["partitions"].size(), 1u);
  EXPECT_EQ(r["storage"]["disks"][0]["partitions"][0]["size"], 1024 * 512);

  // An empty tree is an empty host, not an error.
  lxd::testing::TempDir empty;
  const auto nothing = host_resources(empty.path(), "x86_64");
  EXPECT_EQ(nothing["cpu"]["total"], 0);
  EXPECT_EQ(nothing["memory"]["total"], 0);
}

TEST(Metrics, LxdNamesAndLabels) {
  ContainerUsage u;
  u.cpus = {{0, 1'500'000'000, 250'000'000}, {1, 0, 0}};
  u.memory = {{"RSS", 4096}, {"Cached", 1000}, {"NotLxds", 1}};
  u.memory_usage = 5000;
  u.memory_limit = 10000;
  u.swap_usage = 0;
  u.processes = 3;
  const auto text = metrics_text({{"c1", u}, {"web", ContainerUsage{}}});
  EXPECT_NE(text.find("# TYPE lxd_cpu_seconds_total counter\n"), std::string::npos);
  EXPECT_NE(text.find("lxd_cpu_seconds_total{cpu=\"0\",mode=\"user\",name=\"c1\",project=\"default\","
                      "type=\"container\"} 1.5\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("lxd_cpu_seconds_total{cpu=\"0\",mode=\"system\",name=\"c1\",project=\"default\","
                      "type=\"container\"} 0.25\n"),
            std::string::npos);
  EXPECT_NE(text.find("lxd_memory_RSS_bytes{name=\"c1\",project=\"default\",type=\"container\"} 4096\n"),
            std::string::npos);
  EXPECT_NE(text.find("lxd_memory_MemTotal_bytes{name=\"c1\",project=\"default\",type=\"container\"} 10000\n"),
            std::string::npos);
  EXPECT_NE(text.find("lxd_memory_MemFree_bytes{name=\"c1\",project=\"default\",type=\"container\"} 5000\n"),
            std::string::npos);
  EXPECT_NE(text.find("lxd_memory_MemAvailable_bytes{name=\"c1\",project=\"default\",type=\"container\"} 6000\n"),
            std::string::npos);
  EXPECT_NE(text.find("lxd_procs_total{name=\"c1\",project=\"default\",type=\"container\"} 3\n"), std::string::npos);
  EXPECT_NE(text.find("lxd_procs_total{name=\"web\",project=\"default\",type=\"container\"} 0\n"), std::string::npos);
  EXPECT_EQ(text.find("NotLxds"), std::string::npos) << "only LXD's memory names";
  EXPECT_EQ(text.find("MemTotal_bytes{name=\"web\""), std::string::npos) << "no limit known, no MemTotal";
  // One HELP and TYPE per metric.
  std::size_t helps = 0;
  for (auto at = text.find("# HELP lxd_procs_total"); at != std::string::npos;
       at = text.find("# HELP lxd_procs_total", at + 1)) {
    ++helps;
  }
  EXPECT_EQ(helps, 1u);
  EXPECT_EQ(metrics_text({}), "");
}

}  // namespace
}  // namespace berth::daemon::api
