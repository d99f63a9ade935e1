#pragma once
/// EasySwoole's JSON protocol: `{"class":"Index","action":"hello","content":{...}}` in, and
/// `{"class":"Index","action":"hello","content":...}` (or `"error":"..."`) out. Needs nlohmann/json
/// (Debian: nlohmann-json3-dev; Meson option `json`).

#include <swirl/frame.hpp>
#include <swirl/parser.hpp>
#include <swirl/reply.hpp>
#include <swirl/utf8.hpp>

#include <nlohmann/json.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace swirl {

using JsonReply = Reply<nlohmann::json>;

/// Decodes text or binary messages holding one JSON object. `class` defaults to `default_controller`, `action`
/// to `default_action`; `content` becomes the arguments: an object as it is, anything else wrapped as
/// `{"content": x}`, absent as `{}`. Malformed or over-nested JSON, or a `class`/`action` that is not a string,
/// gets an `{"error":"..."}` reply and dispatches nothing.
struct JsonParser {
    using args_type = nlohmann::json;
    using content_type = nlohmann::json;

    std::string default_controller = "Index";
    std::string default_action = "index";
    /// Deeper nesting is refused before parsing: serialising a deep value is recursive.
    std::size_t max_depth = 64;

    template <class Connection>
    std::optional<Caller<args_type>> decode(Frame& frame, Connection& connection) const {
        if (frame.opcode != Opcode::text && frame.opcode != Opcode::binary) return std::nullopt;
        if (nesting_exceeds(frame.payload, max_depth)) {
            return refuse(connection, "JSON nested deeper than " + std::to_string(max_depth) + " levels");
        }
        nlohmann::json doc = nlohmann::json::parse(frame.payload, nullptr, false);
        if (doc.is_discarded()) return refuse(connection, "malformed JSON");
        if (!doc.is_object()) return refuse(connection, "expected a JSON object");

        std::optional<Caller<args_type>> call(std::in_place, Caller<args_type>{default_controller, default_action, {}});
        if (const auto it = doc.find("class"); it != doc.end()) {
            if (!it->is_string()) return refuse(connection, "\"class\" must be a string");
            call->controller = it->get_ref<const std::string&>();
        }
        if (const auto it = doc.find("action"); it != doc.end()) {
            if (!it->is_string()) return refuse(connection, "\"action\" must be a string");
            call->action = it->get_ref<const std::string&>();
        }
        if (const auto it = doc.find("content"); it == doc.end()) {
            call->args = nlohmann::json::object();
        } else if (it->is_object()) {
            call->args = std::move(*it);
        } else {
            call->args = nlohmann::json::object();
            call->args["content"] = std::move(*it);
        }
        return call;
    }

    template <class Connection>
    std::optional<Outgoing> encode(const JsonReply& reply, const Caller<args_type>& caller, Connection&) const {
        if (reply.error.empty() && !reply.message) return std::nullopt;
        std::string out = R"({"class":)";
        append_string(out, caller.controller);
        out += R"(,"action":)";
        append_string(out, caller.action);
        if (!reply.error.empty()) {
            out += R"(,"error":)";
            append_string(out, reply.error);
        } else {
            out += R"(,"content":)";
            out += reply.message->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        }
        out += '}';
        return Outgoing{std::move(out), Opcode::text};
    }

    /// `{"error":"<what>"}`, as sent for messages that cannot be decoded.
    static std::string error_message(std::string_view what) {
        std::string out = R"({"error":)";
        append_string(out, what);
        out += '}';
        return out;
    }

    /// True when `text` opens more than `limit` nested arrays/objects (strings are skipped).
    static bool nesting_exceeds(std::string_view text, std::size_t limit) noexcept {
        std::size_t depth = 0;
        bool in_string = false;
        for (std::size_t i = 0; i < text.size(); ++i) {
            const char c = text[i];
            if (in_string) {
                if (c == '\\') ++i;
                else if (c == '"') in_string = false;
            } else if (c == '"') {
                in_string = true;
            } else if (c == '[' || c == '{') {
                if (++depth > limit) return true;
            } else if ((c == ']' || c == '}') && depth > 0) {
                --depth;
            }
        }
        return false;
    }

    /// Appends `s` as a JSON string literal; invalid UTF-8 becomes U+FFFD.
    static void append_string(std::string& out, std::string_view s) {
        if (!is_valid_utf8(s)) {
            out += nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
            return;
        }
        constexpr char hex[] = "0123456789abcdef";
        out += '"';
        for (const char c : s) {
            switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            case '\b': out += "\\b"; break;
            case '\f': out += "\\f"; break;
            default:
                if (static_cast<unsigned char>(c) < 0x20) {
                    out += "\\u00";
                    out += hex[(c >> 4) & 0xF];
                    out += hex[c & 0xF];
                } else {
                    out += c;
                }
            }
        }
        out += '"';
    }

private:
    template <class Connection>
    static std::optional<Caller<args_type>> refuse(Connection& connection, std::string_view what) {
        connection.send(error_message(what), Opcode::text);
        return std::nullopt;
    }
};

} // namespace swirl
