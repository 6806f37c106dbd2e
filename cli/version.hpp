#pragma once
#include <string_view>
namespace berth::cli {
inline constexpr std::string_view berth_version = "0.1.0";
}
