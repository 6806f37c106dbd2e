#pragma once
// The record berth keeps on each instance it manages (user.berth.managed): which config keys,
// devices and profiles it set. A key the fleet file no longer declares is removed only if the
// record names it; what berth never set is never touched. The record lives on the host, so a
// fresh machine sees it too.

#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "engine/model/desired.hpp"

namespace berth::model {

struct Managed {
  std::set<std::string> config;   // config keys, without user.berth.*
  std::set<std::string> devices;  // device names
  std::set<std::string> profiles;
  // Paths ("config.KEY", "devices.NAME") whose values were secrets: once the file no longer
  // declares one, its removal still shows the host's value as (sensitive).
  std::set<std::string> sensitive;
  friend bool operator==(const Managed&, const Managed&) = default;
};

// What a container spec declares, as a record.
[[nodiscard]] Managed managed_of(const ContainerSpec& spec);

// The record's text (the value of user.berth.managed): compact JSON with sorted lists, so equal
// records have equal text.
[[nodiscard]] std::string record_text(const Managed& managed);

// A record read back; nullopt when the text is not a record berth wrote (damaged or edited).
[[nodiscard]] std::optional<Managed> parse_record(std::string_view text);

// "config.limits.cpu, devices.eth1, profiles.web" — for a plan line (sensitive is not listed).
[[nodiscard]] std::string describe(const Managed& managed);

}  // namespace berth::model
