#pragma once
/// swirl: a header-only C++20 coroutine WebSocket server. Include this for everything.

#include <swirl/protocol/close_code.hpp>
#include <swirl/protocol/frame.hpp>
#include <swirl/protocol/handshake.hpp>
#include <swirl/protocol/http_request.hpp>
#include <swirl/protocol/http_response.hpp>
#include <swirl/protocol/mask.hpp>
#include <swirl/protocol/message_reader.hpp>
#include <swirl/protocol/utf8.hpp>

#include <swirl/client/client.hpp>
#include <swirl/server/connection.hpp>
#include <swirl/server/server.hpp>
#include <swirl/server/settings.hpp>

#include <swirl/dispatch/context.hpp>
#include <swirl/dispatch/dispatcher.hpp>
#include <swirl/dispatch/parser.hpp>
#include <swirl/dispatch/reply.hpp>
#include <swirl/dispatch/text_parser.hpp>
// The JSON parser policy needs nlohmann/json: include <swirl/dispatch/json_parser.hpp> yourself.
