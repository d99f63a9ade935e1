#pragma once
/// EasySwoole's JSON protocol: `{"class":"Index","action":"hello","content":{...}}` in, and
/// `{"class":"Index","action":"hello","content":...}` (or `"error":"..."`) out. Needs nlohmann/json
/// (Debian: nlohmann-json3-dev; Meson option `json`).

#include <swirl/dispatch/detail/json_envelope.hpp>
#include <swirl/protocol/frame.hpp>
#include <swirl/dispatch/parser.hpp>
#include <swirl/dispatch/reply.hpp>
#include <swirl/protocol/utf8.hpp>

#include <nlohmann/json.hpp>

#include <charconv>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace swirl {

using JsonReply = Reply<nlohmann::json>;

/// Decodes text or binary messages holding one JSON object. `class` defaults to `default_controller`, `action`
/// to `default_action`; `content` becomes the arguments: an object as it is, anything else wrapped as
/// `{"content": x}`, absent as `{}`. Malformed or over-nested JSON, or a `class`/`action` that is not a string,
/// gets an `{"error":"..."}` reply and dispatches nothing. A plain message is decoded without a DOM (only its
/// content is parsed) and replies are written without `dump()`'s temporaries; the results are the DOM's.
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
        const auto envelope = detail::JsonEnvelope::scan(frame.payload);
        const bool flat = envelope && !envelope->may_nest();
        if (flat ? max_depth == 0 : nesting_exceeds(frame.payload, max_depth)) {
            return refuse(connection, "JSON nested deeper than " + std::to_string(max_depth) + " levels");
        }
        if (envelope) {
            std::optional<nlohmann::json> content;
            if (envelope->content_is_string) content.emplace(std::string(unquote(*envelope->content)));
            else if (envelope->content) content = nlohmann::json::parse(*envelope->content, nullptr, false);
            if (!content || !content->is_discarded()) return make_call(envelope->controller, envelope->action, std::move(content));
        }
        nlohmann::json doc = nlohmann::json::parse(frame.payload, nullptr, false);
        if (doc.is_discarded()) return refuse(connection, "malformed JSON");
        if (!doc.is_object()) return refuse(connection, "expected a JSON object");
        std::optional<std::string_view> names[2];
        for (const auto& [member, name] : {std::pair{"class", &names[0]}, std::pair{"action", &names[1]}}) {
            if (const auto it = doc.find(member); it != doc.end()) {
                if (!it->is_string()) return refuse(connection, must_be_string(member));
                *name = it->template get_ref<const std::string&>();
            }
        }
        std::optional<nlohmann::json> content;
        if (const auto it = doc.find("content"); it != doc.end()) content = std::move(*it);
        return make_call(names[0], names[1], std::move(content));
    }

    template <class Connection>
    std::optional<Outgoing> encode(const JsonReply& reply, const Caller<args_type>& caller, Connection&) const {
        if (reply.error.empty() && !reply.message) return std::nullopt;
        std::string out;
        // {"class":"…","action":"…","content":…} is 37 bytes besides the names and the content.
        const std::size_t fixed = 40 + caller.controller.size() + caller.action.size();
        out.reserve(fixed + (!reply.error.empty()           ? reply.error.size()
                             : reply.message->is_string() ? reply.message->get_ref<const std::string&>().size()
                                                          : 64));
        out += R"({"class":)";
        append_string(out, caller.controller);
        out += R"(,"action":)";
        append_string(out, caller.action);
        if (!reply.error.empty()) {
            out += R"(,"error":)";
            append_string(out, reply.error);
        } else {
            out += R"(,"content":)";
            append_value(out, *reply.message);
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
            if (in_string) i = detail::find_json_special(text, i);
            if (i == text.size()) break;
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

    /// Appends `value` as JSON, as `dump()` writes it (invalid UTF-8 becomes U+FFFD) but without a temporary string.
    static void append_value(std::string& out, const nlohmann::json& value) {
        using type = nlohmann::json::value_t;
        switch (value.type()) {
        case type::string: append_string(out, value.get_ref<const std::string&>()); return;
        case type::boolean: out += value.get<bool>() ? "true" : "false"; return;
        case type::null: out += "null"; return;
        case type::number_integer: append_number(out, value.get<std::int64_t>()); return;
        case type::number_unsigned: append_number(out, value.get<std::uint64_t>()); return;
        case type::object: {
            out += '{';
            const char* separator = "";
            for (const auto& [key, member] : value.get_ref<const nlohmann::json::object_t&>()) {
                out += std::exchange(separator, ",");
                append_string(out, key);
                out += ':';
                append_value(out, member);
            }
            out += '}';
            return;
        }
        case type::array: {
            out += '[';
            const char* separator = "";
            for (const auto& element : value.get_ref<const nlohmann::json::array_t&>()) {
                out += std::exchange(separator, ",");
                append_value(out, element);
            }
            out += ']';
            return;
        }
        default:  // floating point (nlohmann's shortest round-trip form), binary, discarded
            out += value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        }
    }

    /// Appends `s` as a JSON string literal; invalid UTF-8 becomes U+FFFD.
    static void append_string(std::string& out, std::string_view s) {
        // What precedes the first special or non-ASCII byte is plain ASCII: no escape, no UTF-8 check.
        const std::size_t first = detail::find_json_special(s, 0, true);
        if (first != s.size() && !is_valid_utf8(s.substr(first))) {
            out += nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
            return;
        }
        constexpr char hex[] = "0123456789abcdef";
        out += '"';
        std::size_t plain = 0;  // start of the run of characters that need no escape
        for (std::size_t i = first; (i = detail::find_json_special(s, i)) < s.size(); ++i) {
            const char c = s[i];
            out.append(s.data() + plain, i - plain);
            plain = i + 1;
            switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            case '\b': out += "\\b"; break;
            case '\f': out += "\\f"; break;
            default:
                out += "\\u00";
                out += hex[(c >> 4) & 0xF];
                out += hex[c & 0xF];
            }
        }
        out.append(s.data() + plain, s.size() - plain);
        out += '"';
    }

private:
    template <class Integer>
    static void append_number(std::string& out, Integer n) {
        char digits[24];
        out.append(digits, std::to_chars(digits, digits + sizeof digits, n).ptr);
    }

    /// The characters of a string literal without escapes: what is between its quotes.
    static std::string_view unquote(std::string_view literal) noexcept { return literal.substr(1, literal.size() - 2); }

    static std::string must_be_string(std::string_view member) { return '"' + std::string(member) + "\" must be a string"; }

    /// The call for a message's members, each absent or already checked: `content` becomes the arguments.
    std::optional<Caller<args_type>> make_call(std::optional<std::string_view> controller, std::optional<std::string_view> action,
                                               std::optional<nlohmann::json> content) const {
        std::optional<Caller<args_type>> call(std::in_place);
        call->controller = controller.value_or(default_controller);
        call->action = action.value_or(default_action);
        if (!content) {
            call->args = nlohmann::json::object();
        } else if (content->is_object()) {
            call->args = std::move(*content);
        } else {
            call->args = nlohmann::json::object();
            call->args["content"] = std::move(*content);
        }
        return call;
    }

    template <class Connection>
    static std::optional<Caller<args_type>> refuse(Connection& connection, std::string_view what) {
        connection.send(error_message(what), Opcode::text);
        return std::nullopt;
    }
};

} // namespace swirl
