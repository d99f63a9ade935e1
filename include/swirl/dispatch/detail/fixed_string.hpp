#pragma once
/// A string literal usable as a template argument: `Action<"hello", &Index::hello>`.

#include <algorithm>
#include <cstddef>
#include <string_view>

namespace swirl::detail {

template <std::size_t N>
struct FixedString {
    char chars[N]{};

    constexpr FixedString(const char (&literal)[N]) noexcept { std::copy_n(literal, N, chars); }
    constexpr std::string_view view() const noexcept { return {chars, N - 1}; }
};

} // namespace swirl::detail
