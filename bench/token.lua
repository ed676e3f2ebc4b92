-- wrk script: client_credentials grants, counting non-2xx responses and checking that every
-- access token carries a distinct jti (decoded from the JWT payload).
local threads = {}
local b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
local dec = {}
for i = 1, #b64 do dec[b64:sub(i, i)] = i - 1 end

local function b64url_decode(s)
  local out, bits, nbits = {}, 0, 0
  for i = 1, #s do
    local v = dec[s:sub(i, i)]
    if v then
      bits = bits * 64 + v
      nbits = nbits + 6
      if nbits >= 8 then
        nbits = nbits - 8
        local byte = math.floor(bits / (2 ^ nbits)) % 256
        out[#out + 1] = string.char(byte)
        bits = bits % (2 ^ nbits)
      end
    end
  end
  return table.concat(out)
end

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  wrk.method = "POST"
  wrk.body = "grant_type=client_credentials&scope=read%3Athings"
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  wrk.headers["Authorization"] = "Basic " .. os.getenv("BASIC")
  wrk.headers["Host"] = os.getenv("HOSTHDR")
  non2xx = 0
  jtis = {}
  count = 0
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    return
  end
  local token = body:match('"access_token":"([^"]+)"')
  local payload = token and token:match("^[^.]+%.([^.]+)%.")
  local jti = payload and b64url_decode(payload):match('"jti":"([^"]+)"')
  if jti then
    count = count + 1
    jtis[count] = jti
  else
    non2xx = non2xx + 1
  end
end

function done(summary, latency, requests)
  local seen, total, dup, bad = {}, 0, 0, 0
  for _, t in ipairs(threads) do
    bad = bad + t:get("non2xx")
    local list = t:get("jtis")
    for _, j in ipairs(list) do
      total = total + 1
      if seen[j] then dup = dup + 1 else seen[j] = true end
    end
  end
  io.write(string.format("RESULT requests=%d rps=%.0f p50_ms=%.2f p99_ms=%.2f non2xx=%d jti_checked=%d jti_duplicates=%d socket_errors=%d\n",
    summary.requests, summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, bad, total, dup,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
