#pragma once
/// Minimal leveled logging to stderr through fmt.

#include <swirl/server/settings.hpp>

#include <fmt/format.h>

#include <cstdio>
#include <string_view>

namespace swirl::detail {

constexpr std::string_view level_name(LogLevel l) noexcept {
    switch (l) {
    case LogLevel::debug: return "debug";
    case LogLevel::info: return "info";
    case LogLevel::warning: return "warning";
    case LogLevel::error: return "error";
    case LogLevel::off: return "off";
    }
    return "?";
}

template <class... Args>
void log(LogLevel threshold, LogLevel level, fmt::format_string<Args...> format, Args&&... args) {
    if (level < threshold || level == LogLevel::off) return;
    fmt::print(stderr, "[swirl] {}: {}\n", level_name(level), fmt::format(format, std::forward<Args>(args)...));
}

} // namespace swirl::detail
