-- wrk script: refresh-token rotation. Each thread holds a pool of live refresh tokens (its
-- share of the file named by $TOKENS); every request spends one and every answer puts its
-- successor back, so each family is a chain of rotations and no token is ever reused.
local threads = {}
local counter = 0

function setup(thread)
  thread:set("index", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  pool, non2xx, rotated = {}, 0, 0
  local n, i = tonumber(os.getenv("THREADS")), 0
  for line in io.lines(os.getenv("TOKENS")) do
    if i % n == index then table.insert(pool, line) end
    i = i + 1
  end
  headers = {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Authorization"] = "Basic " .. os.getenv("BASIC"),
    ["Host"] = os.getenv("HOSTHDR"),
  }
end

function request()
  local token = table.remove(pool) or "pcr_pool_ran_dry"
  return wrk.format("POST", "/token", headers, "grant_type=refresh_token&refresh_token=" .. token)
end

function response(status, headers, body)
  local next = body:match('"refresh_token":"([^"]+)"')
  if status == 200 and next then
    rotated = rotated + 1
    table.insert(pool, next)
  else
    non2xx = non2xx + 1
  end
end

function done(summary, latency, requests)
  local bad, ok = 0, 0
  for _, t in ipairs(threads) do
    bad = bad + t:get("non2xx")
    ok = ok + t:get("rotated")
  end
  io.write(string.format("RESULT requests=%d rps=%.0f p50_ms=%.2f p99_ms=%.2f rotated=%d non2xx=%d socket_errors=%d\n",
    summary.requests, summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, ok, bad,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
