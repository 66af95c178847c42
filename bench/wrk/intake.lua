-- POST /api/v1/intake: one new lead per request, each with its own email so none is a duplicate.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "common.lua")

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

local sent = 0

function request()
  sent = sent + 1
  return wrk.format(nil, nil, nil, string.format(
    '{"email":"bench-%s-%d-%d@example.com","first_name":"Bench","last_name":"Lead %d",' ..
    '"company":"Bench Co","source":"bench","tags":"bench,wrk","Industry":"software"}',
    nonce, thread_id or 0, sent, sent))
end
