#include "doctest.hpp"

#include "json_reference.hpp"

#include <swirl/dispatch/json_parser.hpp>

#include <limits>
#include <random>
#include <string>
#include <vector>

namespace {

using nlohmann::json;

using json_reference::Sink;

swirl::Frame message(std::string payload, swirl::Opcode opcode = swirl::Opcode::text) {
    swirl::Frame f;
    f.opcode = opcode;
    f.payload = std::move(payload);
    return f;
}

std::optional<swirl::Caller<json>> decode(const std::string& payload, Sink& sink, const swirl::JsonParser& parser = {}) {
    auto frame = message(payload);
    return parser.decode(frame, sink);
}

/// Decodes `payload`, expecting it to be refused with an error reply containing `what`.
void check_refused(const std::string& payload, const std::string& what) {
    Sink sink;
    CHECK_FALSE(decode(payload, sink));
    REQUIRE(sink.sent.size() == 1);
    const auto reply = json::parse(sink.sent[0]);
    CHECK(reply.size() == 1);
    CHECK(reply.at("error").get<std::string>().find(what) != std::string::npos);
}

} // namespace

static_assert(swirl::Parser<swirl::JsonParser>);

TEST_CASE("json parser: class, action and object content") {
    Sink sink;
    const auto call = decode(R"({"class":"Room","action":"join","content":{"name":"lobby","n":3}})", sink);
    REQUIRE(call);
    CHECK(call->controller == "Room");
    CHECK(call->action == "join");
    CHECK(call->args == json{{"name", "lobby"}, {"n", 3}});
    CHECK(sink.sent.empty());
}

TEST_CASE("json parser: class defaults to Index, action to index, content to {}") {
    Sink sink;
    const auto call = decode("{}", sink);
    REQUIRE(call);
    CHECK(call->controller == "Index");
    CHECK(call->action == "index");
    CHECK(call->args == json::object());

    swirl::JsonParser custom;
    custom.default_controller = "Home";
    custom.default_action = "main";
    const auto other = decode(R"({"content":{"a":1}})", sink, custom);
    REQUIRE(other);
    CHECK(other->controller == "Home");
    CHECK(other->action == "main");
    CHECK(other->args == json{{"a", 1}});
}

TEST_CASE("json parser: scalar and array content is wrapped as {\"content\": x}") {
    Sink sink;
    for (const auto& [text, value] : std::vector<std::pair<std::string, json>>{
             {R"("hi")", "hi"}, {"42", 42}, {"1.5", 1.5}, {"true", true}, {"null", nullptr}, {"[1,2]", json{1, 2}}}) {
        CAPTURE(text);
        const auto call = decode(R"({"action":"x","content":)" + text + "}", sink);
        REQUIRE(call);
        CHECK(call->args == json{{"content", value}});
    }
    CHECK(sink.sent.empty());
}

TEST_CASE("json parser: binary messages are decoded too; control frames are not") {
    Sink sink;
    swirl::JsonParser parser;
    auto binary = message(R"({"action":"x"})", swirl::Opcode::binary);
    CHECK(parser.decode(binary, sink));
    auto ping = message(R"({"action":"x"})", swirl::Opcode::ping);
    CHECK_FALSE(parser.decode(ping, sink));
    CHECK(sink.sent.empty());
}

TEST_CASE("json parser: malformed input gets an error reply and dispatches nothing") {
    check_refused("", "malformed JSON");
    check_refused("not json", "malformed JSON");
    check_refused(R"({"action":"x")", "malformed JSON");
    check_refused(R"({"action":"x"} trailing)", "malformed JSON");
    check_refused("\"\xff\"", "malformed JSON");  // invalid UTF-8 inside a string (possible in a binary frame)
    check_refused("[1,2]", "expected a JSON object");
    check_refused("\"text\"", "expected a JSON object");
    check_refused(R"({"class":1})", "\"class\" must be a string");
    check_refused(R"({"action":["x"]})", "\"action\" must be a string");
}

TEST_CASE("json parser: nesting beyond max_depth is refused before parsing") {
    const auto nested = [](std::size_t depth) {
        return R"({"action":"x","content":)" + std::string(depth, '[') + std::string(depth, ']') + "}";
    };
    Sink sink;
    CHECK(decode(nested(63), sink));  // 63 arrays inside the top-level object: 64 levels
    CHECK(sink.sent.empty());
    check_refused(nested(64), "nested deeper than 64");
    // Found by the json_envelope fuzzer: brackets after a number are still counted, before the number is parsed.
    check_refused(R"({"content":1)" + std::string(65, '[') + "}", "nested deeper than 64");
    check_refused(std::string(1 << 20, '['), "nested deeper than 64");  // a megabyte of '[' costs one scan
    // Brackets inside strings, including after escaped quotes, do not count.
    CHECK(decode(R"({"action":"x","content":")" + std::string(200, '[') + R"(\"[[[["})", sink));
    CHECK(sink.sent.empty());
    // The envelope itself is one level: with a plain string content, the limit is met from max_depth = 1.
    swirl::JsonParser shallow;
    shallow.max_depth = 1;
    CHECK(decode(R"({"content":"x"})", sink, shallow));
    CHECK_FALSE(decode(R"({"content":{}})", sink, shallow));
    shallow.max_depth = 0;
    CHECK_FALSE(decode(R"({"content":"x"})", sink, shallow));
    CHECK(sink.sent.size() == 2);
}

TEST_CASE("json parser: huge messages decode") {
    Sink sink;
    const std::string big(4 << 20, 'a');
    const auto call = decode(R"({"action":"echo","content":")" + big + "\"}", sink);
    REQUIRE(call);
    CHECK(call->args.at("content").get_ref<const std::string&>().size() == big.size());

    std::string many = R"({"action":"sum","content":{"values":[)";
    for (int i = 0; i < 100000; ++i) many += std::to_string(i) + ",";
    many.back() = ']';
    many += "}}";
    const auto list = decode(many, sink);
    REQUIRE(list);
    CHECK(list->args.at("values").size() == 100000);
}

TEST_CASE("json parser: encode writes class, action, then content or error") {
    swirl::JsonParser parser;
    Sink sink;
    const swirl::Caller<json> call{"Index", "hello", json::object()};
    const auto ok = parser.encode(swirl::JsonReply::ok("hello, Ada"), call, sink);
    REQUIRE(ok);
    CHECK(ok->payload == R"({"class":"Index","action":"hello","content":"hello, Ada"})");
    CHECK(ok->opcode == swirl::Opcode::text);

    const auto object = parser.encode(swirl::JsonReply::ok(json{{"id", 7}}), call, sink);
    REQUIRE(object);
    CHECK(object->payload == R"({"class":"Index","action":"hello","content":{"id":7}})");

    const auto error = parser.encode(swirl::JsonReply::failure("unknown action: Index.hello"), call, sink);
    REQUIRE(error);
    CHECK(error->payload == R"({"class":"Index","action":"hello","error":"unknown action: Index.hello"})");

    CHECK_FALSE(parser.encode(swirl::JsonReply{}, call, sink));
    CHECK_FALSE(parser.encode(swirl::JsonReply::close(4000), call, sink));
    CHECK(sink.sent.empty());
}

TEST_CASE("json parser: an echoed message comes back byte for byte") {
    swirl::JsonParser parser;
    Sink sink;
    const std::string wire = R"({"class":"Index","action":"echo","content":"payload \"quoted\" \\ é"})";
    auto call = decode(wire, sink);
    REQUIRE(call);
    const auto out = parser.encode(swirl::JsonReply::ok(call->args.at("content")), *call, sink);
    REQUIRE(out);
    CHECK(out->payload == wire);
}

TEST_CASE("json parser: strings are escaped; invalid UTF-8 becomes U+FFFD") {
    std::string out;
    swirl::JsonParser::append_string(out, std::string("a\"b\\c\n\t\x01\x1f", 9));
    CHECK(out == R"("a\"b\\c\n\t\u0001\u001f")");
    CHECK(json::parse(out) == std::string("a\"b\\c\n\t\x01\x1f", 9));

    out.clear();
    swirl::JsonParser::append_string(out, "bad \xff byte");
    CHECK(json::parse(out) == "bad \xEF\xBF\xBD byte");

    swirl::JsonParser parser;
    Sink sink;
    const swirl::Caller<json> call{"Index", "x", json::object()};
    const auto reply = parser.encode(swirl::JsonReply::ok(std::string("\xc3\x28")), call, sink);
    REQUIRE(reply);
    CHECK(json::parse(reply->payload).at("content") == "\xEF\xBF\xBD(");
}

TEST_CASE("json parser: append_string writes random strings exactly as nlohmann's dump() does") {
    // ASCII without escapes takes a shortcut; quotes, control characters, valid and invalid UTF-8 do not.
    static constexpr char alphabet[] = {'a', 'Z', ' ', '"', '\\', '\n', '\x01', '\x1f', '\x7f', '\xc3', '\xa9',
                                        '\xe2', '\x82', '\xac', '\xff'};
    std::mt19937 rng(20261122);
    std::size_t mismatches = 0;
    std::string first_bad;
    for (int iter = 0; iter < 50'000; ++iter) {
        std::string s(rng() % 20, 'a');
        for (char& c : s) c = alphabet[rng() % (iter % 2 ? 3 : sizeof alphabet)];  // every other one plain ASCII
        std::string out = "prefix";
        swirl::JsonParser::append_string(out, s);
        if (out != "prefix" + json(s).dump(-1, ' ', false, json::error_handler_t::replace) && mismatches++ == 0) first_bad = s;
    }
    CAPTURE(first_bad);
    CHECK(mismatches == 0);
}

TEST_CASE("json parser: the DOM-free path decodes exactly as the DOM would") {
    const swirl::JsonParser parser;
    const std::string bom = "\xEF\xBB\xBF";
    const auto nul_between = [](std::string_view a, std::string_view b) { return std::string(a) + '\0' + std::string(b); };
    const std::vector<std::string> messages = {
        R"({"class":"A","action":"b","content":{"x":[1,2,{"y":"z"}]}})",
        " \t\n{ \"class\" : \"A\" ,\r\n \"action\":\"b\" , \"content\" : 5 } \r\n",
        "{}", "{ }", R"({"content":"plain"})", R"({"content":""})", R"({"action":"x"})",
        R"({"class":"A\u0042"})", R"({"cl\u0061ss":"X"})", R"({"class":"A","class":"B"})", R"({"content":1,"content":2})",
        R"({"class":"A","extra":[1,2],"content":1})", R"({"":1})",
        R"({"content":"a\"b\\c\u00e9"})", R"({"content":["]","}",{"k":"[{"}]})", R"({"content":"\ud83d\ude00"})",
        R"({"content":-1})", R"({"content":1.5e3})", R"({"content":0})", R"({"content":01})", R"({"content":1.})",
        R"({"content":true})", R"({"content":false})", R"({"content":null})", R"({"content":tru})", R"({"content":nul})",
        R"({"content":-})", R"({"content":18446744073709551615})", R"({"content":-9223372036854775808})",
        R"({"content":1e400})", R"({"content":1 ,"action":"x"})", R"({"content":[] ,"action":"x"})",
        R"({"content":1 2})", R"({"content":"x""y"})", R"({"content":{}}})", R"({"content":[}})", R"({"content":{]})",
        R"({"content":"abc})", R"({"content":[1,2})", R"({"content":})", R"({"content")", R"({"content":)",
        R"({"action":"x"},)", R"({"action":"x"}})", R"({"action":"x"} x)", R"({"action" "x"})",
        R"({"action":"x" "class":"y"})", R"({"action":"x",})", R"({,})", R"({"action":"x")", "{", "",
        bom + R"({"action":"x"})", R"({"content":)" + bom + "1}", R"({"content":)" + bom + "\"s\"}",
        "{\"class\":\"\xff\"}", "{\"class\":\"a\x01\"}", "{\"content\":\"a\x01\"}", "{\"content\":\"\xc3\x28\"}",
        R"({"class":1})", R"({"class":null})", R"({"action":["x"]})", R"({"class":"é","action":"ü"})",
        "[1]", "\"x\"", "1", "null", R"({"content":{"content":1}})", R"({"content":[1,{"a":[]}]})",
        R"({"content":"tab	inside"})", R"({"content":"\/"})", "{\"action\":\"x\"}\n", "\n{\"action\":\"x\"}",
        R"({"content":[[[[[]]]]]})", nul_between(R"({"content":42)", "junk}"), nul_between(R"({"content":"a)", R"("})"),
        nul_between(R"({"action":"x"})", ""),
    };
    for (const auto& m : messages) {
        INFO("message: ", m);
        CHECK(json_reference::decode_with(parser, m) == json_reference::decode(m, parser));
    }
}

TEST_CASE("json parser: replies are written exactly as nlohmann's dump() writes them") {
    const std::vector<json> values = {
        json(nullptr), json(true), json(false), json(0), json(-1), json(std::numeric_limits<std::int64_t>::min()),
        json(std::numeric_limits<std::int64_t>::max()), json(std::numeric_limits<std::uint64_t>::max()), json(1.5),
        json(0.1), json(1e300), json(-0.0), json(""), json("a\"b\\c\n\t\x01\x1f\x7f é"), json("bad \xff byte"),
        json::object(), json::array(), json::parse(R"({"b":[1,{"c":null}],"a":"x","":{}})"),
        json{{"key\nwith\"escapes", 1}, {"k\xff", 2}}, json::array({json::array({json::array()}), 2.5, "s"}),
        json::binary({1, 2, 3}),
    };
    for (const auto& v : values) {
        INFO("value: ", v.dump(-1, ' ', false, json::error_handler_t::replace));
        std::string out;
        swirl::JsonParser::append_value(out, v);
        CHECK(out == v.dump(-1, ' ', false, json::error_handler_t::replace));
    }
}
