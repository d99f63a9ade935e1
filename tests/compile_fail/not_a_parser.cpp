// Must not compile: `Frames` is not a parser (its decode returns a bool, and it names no args_type).
// tests/compile_fail_test.py checks that the diagnostic is short and names the unmet requirement.
#include <swirl/dispatch/context.hpp>

struct Frames {
    using content_type = std::string;
    template <class Connection>
    bool decode(swirl::Frame&, Connection&) const { return true; }
};

struct Connection {
    std::uint64_t id() const noexcept { return 1; }
    void send(std::string_view, swirl::Opcode = swirl::Opcode::text) {}
    bool close(std::uint16_t, std::string_view) { return true; }
};

using Ctx = swirl::Context<Frames, Connection>;
Ctx* context = nullptr;
