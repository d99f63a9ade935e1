#pragma once
/// swirl: a header-only C++20 coroutine WebSocket server. Include this for everything.

#include <swirl/close_code.hpp>
#include <swirl/frame.hpp>
#include <swirl/handshake.hpp>
#include <swirl/http_request.hpp>
#include <swirl/http_response.hpp>
#include <swirl/mask.hpp>
#include <swirl/message_reader.hpp>
#include <swirl/utf8.hpp>

#include <swirl/client.hpp>
#include <swirl/connection.hpp>
#include <swirl/server.hpp>
#include <swirl/settings.hpp>

#include <swirl/context.hpp>
#include <swirl/dispatcher.hpp>
#include <swirl/parser.hpp>
#include <swirl/reply.hpp>
#include <swirl/text_parser.hpp>
// The JSON parser policy needs nlohmann/json: include <swirl/json_parser.hpp> yourself.
