-- Shared by the bench/bench_api.py scripts; each one loads it with dofile().
--
-- The API key comes from the environment, never from the command line (where `ps` shows it).
-- done() prints one machine-readable line that bench_api.py parses; the --latency text above
-- it is for people (and the fallback parser).

local key = os.getenv("LEADLENS_API_KEY")
if key and key ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. key
end

-- setup() runs in the main Lua state once per thread: number the threads so request bodies can
-- carry ids unique across threads (messageIds and emails must never repeat, or the server's
-- dedup turns the load into cheap no-ops).
local next_thread = 0
function setup(thread)
  next_thread = next_thread + 1
  thread:set("thread_id", next_thread)
end

-- Unique per wrk process, so repeated runs against one store never collide either.
nonce = os.getenv("BENCH_API_NONCE") or tostring(os.time())

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"mean_us":%.1f,' ..
    '"p50_us":%.0f,"p90_us":%.0f,"p99_us":%.0f,"max_us":%.0f,' ..
    '"connect_errors":%d,"read_errors":%d,"write_errors":%d,"status_errors":%d,"timeouts":%d}\n',
    summary.requests, summary.duration, summary.bytes, latency.mean,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
