#pragma once
/// Minimal leveled logging to stderr through fmt.

#include <swirl/server/settings.hpp>

#include <fmt/format.h>

#include <cstdio>
#include <exception>
#include <string>
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

/// An exception that escaped a handler, in words for a log line: its `what()`, or that it was no `std::exception`.
inline std::string describe_exception(std::exception_ptr failure) {
    try {
        std::rethrow_exception(failure);
    } catch (const std::exception& e) {
        return e.what();
    } catch (...) {
        return "(not a std::exception)";
    }
}

} // namespace swirl::detail
