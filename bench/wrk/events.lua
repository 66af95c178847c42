-- POST /api/v1/events: {"batch": [...]} of BENCH_API_BATCH (500) Segment track messages for
-- random existing leads (L0000001 … L<BENCH_API_LEADS>), every messageId unique.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "common.lua")

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

local batch = tonumber(os.getenv("BENCH_API_BATCH") or "500")
local leads = tonumber(os.getenv("BENCH_API_LEADS") or "1000")
local names = {"Email Opened", "Email Clicked", "Viewed Pricing Page", "Viewed Docs Page",
               "Form Submitted", "Content Downloaded", "Demo Requested"}
local sent = 0

function init(args)
  math.randomseed(os.time() * 100 + (thread_id or 0))
end

function request()
  sent = sent + 1
  local ts = os.date("!%Y-%m-%dT%H:%M:%SZ")
  local parts = {}
  for i = 1, batch do
    parts[i] = string.format(
      '{"type":"track","userId":"L%07d","event":"%s","messageId":"bench-%s-%d-%d-%d",' ..
      '"timestamp":"%s","properties":{"campaign_id":"bench"}}',
      math.random(leads), names[math.random(#names)], nonce, thread_id or 0, sent, i, ts)
  end
  return wrk.format(nil, nil, nil, '{"batch":[' .. table.concat(parts, ",") .. ']}')
end
