#pragma once
/// The JSON parser's decoding rules written the plain way, over nlohmann's DOM: the reference that
/// `JsonParser::decode` (which skips the DOM for plain messages) must agree with. Shared by
/// `json_parser_test.cpp` and `fuzz/json_envelope_fuzzer.cpp`.

#include <swirl/dispatch/json_parser.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace json_reference {

/// What decoding a message did: the call it made, or the error reply it sent.
struct Decoded {
    std::optional<swirl::Caller<nlohmann::json>> call;
    std::string error;

    friend bool operator==(const Decoded& a, const Decoded& b) {
        if (a.error != b.error || a.call.has_value() != b.call.has_value()) return false;
        return !a.call || (a.call->controller == b.call->controller && a.call->action == b.call->action &&
                           a.call->args == b.call->args);
    }
};

inline Decoded decode(const std::string& payload, const swirl::JsonParser& parser = {}) {
    const auto refused = [](std::string what) { return Decoded{std::nullopt, swirl::JsonParser::error_message(what)}; };
    if (swirl::JsonParser::nesting_exceeds(payload, parser.max_depth))
        return refused("JSON nested deeper than " + std::to_string(parser.max_depth) + " levels");
    nlohmann::json doc = nlohmann::json::parse(payload, nullptr, false);
    if (doc.is_discarded()) return refused("malformed JSON");
    if (!doc.is_object()) return refused("expected a JSON object");
    swirl::Caller<nlohmann::json> call{parser.default_controller, parser.default_action, nlohmann::json::object()};
    if (doc.contains("class")) {
        if (!doc["class"].is_string()) return refused("\"class\" must be a string");
        call.controller = doc["class"].get<std::string>();
    }
    if (doc.contains("action")) {
        if (!doc["action"].is_string()) return refused("\"action\" must be a string");
        call.action = doc["action"].get<std::string>();
    }
    if (doc.contains("content")) {
        if (doc["content"].is_object()) call.args = doc["content"];
        else call.args["content"] = doc["content"];
    }
    return {std::move(call), {}};
}

/// A connection that records what the parser sends.
struct Sink {
    std::uint64_t id() const noexcept { return 1; }
    void send(std::string_view payload, swirl::Opcode = swirl::Opcode::text) { sent.emplace_back(payload); }
    bool close(std::uint16_t, std::string_view) { return true; }
    std::vector<std::string> sent;
};

/// What `JsonParser::decode` does with `payload`, in the reference's terms.
inline Decoded decode_with(const swirl::JsonParser& parser, const std::string& payload) {
    swirl::Frame frame;
    frame.opcode = swirl::Opcode::text;
    frame.payload = payload;
    Sink sink;
    Decoded d{parser.decode(frame, sink), {}};
    for (const auto& s : sink.sent) d.error += s;
    return d;
}

} // namespace json_reference
